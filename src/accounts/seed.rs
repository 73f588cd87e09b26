//! TOTP seeds at rest: sealed with ChaCha20-Poly1305 under a key derived from the server
//! secret, the account id as associated data (a seed copied to another account's row does
//! not open). A database dump alone then yields no second factor.

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const VERSION: &str = "v1.";

/// The sealing key.
pub struct SeedKey([u8; 32]);

impl SeedKey {
    pub fn new(key: [u8; 32]) -> Self {
        Self(key)
    }

    fn aead(&self) -> Option<LessSafeKey> {
        UnboundKey::new(&CHACHA20_POLY1305, &self.0)
            .ok()
            .map(LessSafeKey::new)
    }

    /// `secret` sealed for account `account`.
    pub fn seal(&self, account: &str, secret: &str) -> Option<String> {
        let nonce: [u8; 12] = rand::random();
        let mut data = secret.as_bytes().to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(account.as_bytes()),
                &mut data,
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Some(format!("{VERSION}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// The secret sealed in `stored` for `account`, if it opens.
    pub fn open(&self, account: &str, stored: &str) -> Option<String> {
        let bytes = URL_SAFE_NO_PAD.decode(stored.strip_prefix(VERSION)?).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, rest) = bytes.split_at(12);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = rest.to_vec();
        let plain = self
            .aead()?
            .open_in_place(nonce, Aad::from(account.as_bytes()), &mut data)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_seeds_open_only_for_their_account_and_key() {
        let key = SeedKey::new([7; 32]);
        let sealed = key.seal("usr_a", "JBSWY3DPEHPK3PXP").expect("seal");
        assert!(sealed.starts_with("v1.") && !sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(
            key.open("usr_a", &sealed).as_deref(),
            Some("JBSWY3DPEHPK3PXP")
        );
        assert_eq!(key.open("usr_b", &sealed), None);
        assert_eq!(SeedKey::new([8; 32]).open("usr_a", &sealed), None);
        assert_eq!(key.open("usr_a", "JBSWY3DPEHPK3PXP"), None);
        assert_ne!(
            key.seal("usr_a", "x"),
            key.seal("usr_a", "x"),
            "fresh nonces"
        );
    }
}
