//! Passwords: argon2id hashes (PHC strings), one-time passwords for new accounts, and the
//! rule a chosen password must meet.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Shortest password a person may choose.
pub const MIN_CHARS: usize = 12;

fn hasher() -> Argon2<'static> {
    // OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string of `password` with a fresh salt.
pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| format!("cannot make a salt: {e}"))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches the PHC string `phc`. A damaged hash matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    hasher()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A hash no password matches, verified against for unknown names so that a sign-in for a
/// name that does not exist takes as long as one for a name that does.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash(&crate::api::keys::generate()).unwrap_or_default())
}

/// A one-time password: 20 characters without look-alikes (no 0/O, 1/l/I).
pub fn one_time() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..20)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A chosen password: at least 12 characters from at least three of lower case, upper case,
/// digits and other characters (the level-3 complexity rule).
pub fn check_strength(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_CHARS {
        return Err(format!("must be at least {MIN_CHARS} characters"));
    }
    if password.chars().count() > 256 {
        return Err("must be at most 256 characters".to_owned());
    }
    let classes = [
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ];
    if classes.iter().filter(|c| **c).count() < 3 {
        return Err(
            "must mix at least three of: lower case, upper case, digits, other characters"
                .to_owned(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_round_trip() {
        let h = hash("correct horse 1A").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse 1A", &h));
        assert!(!verify("correct horse 1B", &h));
        assert!(!verify("x", "not a hash"));
        assert!(!verify("x", decoy()));
    }

    #[test]
    fn strength() {
        assert!(check_strength("short1A!").is_err());
        assert!(check_strength("alllowercaseletters").is_err());
        assert!(check_strength("Lower and Upper 9").is_ok());
        let otp = one_time();
        assert_eq!(otp.len(), 20);
        assert_ne!(otp, one_time());
    }
}
