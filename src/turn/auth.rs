//! TURN credentials in the style of the TURN REST API (draft-uberti-behave-turn-rest): the
//! username is `expiry:peer` and the password `base64(HMAC-SHA1(secret, username))`, so the
//! server checks a credential without keeping any, and one that leaks stops working at its
//! expiry. Nonces are stateless too (a timestamp and its MAC), so a flood of unauthenticated
//! requests leaves nothing behind.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use rtc_crypto::{HashAlgorithm, HmacAlgorithm, RTCCryptoProvider};
use serde::Serialize;

/// How long a nonce is accepted before the client is asked to take a new one (438).
pub const NONCE_LIFETIME: Duration = Duration::from_secs(600);

/// A credential handed to a client, with the URLs it is good for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IceServer {
    /// `turn:` / `turns:` URLs.
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

/// Why a username was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("the username is not `expiry:peer`")]
    Malformed,
    #[error("the credential expired")]
    Expired,
}

/// Mints and checks credentials and nonces with the server's TURN secret.
#[derive(Clone)]
pub struct Credentials {
    secret: Vec<u8>,
    realm: String,
    lifetime: Duration,
    crypto: Arc<dyn RTCCryptoProvider>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("realm", &self.realm)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Credentials derived from the server's auth secret: the TURN secret is a MAC of a fixed
    /// label, so a TURN password never reveals anything about room tokens.
    pub fn new(auth_secret: &[u8], realm: &str, lifetime: Duration) -> Result<Self, String> {
        let crypto = rtc_crypto::default_provider().map_err(|e| e.to_string())?;
        let mut secret = vec![0u8; 32];
        crypto
            .crypto()
            .new_hmac(HmacAlgorithm::Sha256, auth_secret)
            .and_then(|mut m| m.sign(&[b"ketang turn secret v1"], &mut secret))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            secret,
            realm: realm.to_owned(),
            lifetime,
            crypto,
        })
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    pub(crate) fn crypto(&self) -> &dyn rtc_crypto::RTCCrypto {
        self.crypto.crypto()
    }

    /// A username and password for `peer`, valid for the configured lifetime from `now`.
    pub fn mint(&self, peer: &str, now: SystemTime) -> (String, String) {
        let expiry = unix(now) + self.lifetime.as_secs();
        // ':' separates the fields; keep the peer part free of it.
        let peer: String = peer
            .chars()
            .filter(|c| *c != ':' && !c.is_control())
            .take(64)
            .collect();
        let username = format!("{expiry}:{peer}");
        let password = self.password(&username);
        (username, password)
    }

    /// The password of `username`, if it is well formed and not expired at `now`.
    pub fn check(&self, username: &str, now: SystemTime) -> Result<String, CredentialError> {
        let (expiry, _peer) = username.split_once(':').ok_or(CredentialError::Malformed)?;
        let expiry: u64 = expiry.parse().map_err(|_| CredentialError::Malformed)?;
        if expiry < unix(now) {
            return Err(CredentialError::Expired);
        }
        Ok(self.password(username))
    }

    /// The MESSAGE-INTEGRITY key of a long-term credential: MD5(username:realm:password).
    pub fn integrity_key(&self, username: &str, password: &str) -> Vec<u8> {
        let text = format!("{username}:{}:{password}", self.realm);
        self.crypto()
            .hash(HashAlgorithm::Md5, text.as_bytes())
            .unwrap_or_default()
    }

    fn password(&self, username: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.mac_sha1(username.as_bytes()))
    }

    fn mac_sha1(&self, data: &[u8]) -> [u8; 20] {
        let mut out = [0u8; 20];
        // HMAC-SHA1 with a 32-byte key cannot fail with a working provider; a failure leaves
        // zeros, which match no client's MAC.
        let _ = self
            .crypto()
            .new_hmac(HmacAlgorithm::Sha1, &self.secret)
            .and_then(|mut m| m.sign(&[data], &mut out));
        out
    }

    /// A nonce for a client at `ip`: its issue time and a MAC binding it to the address.
    pub fn nonce(&self, ip: IpAddr, now: SystemTime) -> String {
        let t = unix(now);
        format!("{t:x}-{}", self.nonce_mac(ip, t))
    }

    /// Whether `nonce` was issued by this server to `ip` and is still fresh at `now`.
    pub fn nonce_fresh(&self, nonce: &str, ip: IpAddr, now: SystemTime) -> bool {
        let Some((t, mac)) = nonce.split_once('-') else {
            return false;
        };
        let Ok(t) = u64::from_str_radix(t, 16) else {
            return false;
        };
        let now = unix(now);
        t <= now + 5
            && now.saturating_sub(t) <= NONCE_LIFETIME.as_secs()
            && rtc_crypto::constant_time_eq(mac.as_bytes(), self.nonce_mac(ip, t).as_bytes())
    }

    fn nonce_mac(&self, ip: IpAddr, t: u64) -> String {
        let mut data = t.to_be_bytes().to_vec();
        data.extend_from_slice(ip.to_string().as_bytes());
        let mac = self.mac_sha1(&data);
        mac[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials::new(&[7u8; 32], "ketang", Duration::from_secs(3600)).unwrap()
    }

    #[test]
    fn a_minted_credential_checks_until_it_expires() {
        let c = creds();
        let now = SystemTime::now();
        let (user, pass) = c.mint("peer-1", now);
        assert!(user.ends_with(":peer-1"), "{user}");
        assert_eq!(c.check(&user, now), Ok(pass.clone()));
        assert_eq!(
            c.check(&user, now + Duration::from_secs(3601)),
            Err(CredentialError::Expired)
        );
        assert_eq!(c.check("peer-1", now), Err(CredentialError::Malformed));
    }

    #[test]
    fn a_forged_username_gets_a_different_password() {
        let c = creds();
        let now = SystemTime::now();
        let (user, pass) = c.mint("peer-1", now);
        // Moving the expiry changes the MAC: the old password is no good for it.
        let (expiry, peer) = user.split_once(':').unwrap();
        let later = format!("{}:{peer}", expiry.parse::<u64>().unwrap() + 86_400);
        assert_ne!(c.check(&later, now).unwrap(), pass);
        // Another server's secret gives other passwords.
        let other = Credentials::new(&[8u8; 32], "ketang", Duration::from_secs(3600)).unwrap();
        assert_ne!(other.check(&user, now).unwrap(), pass);
    }

    #[test]
    fn the_password_is_the_rest_api_hmac() {
        let c = creds();
        let (user, pass) = c.mint("p", SystemTime::now());
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(pass)
            .unwrap();
        assert_eq!(bytes.len(), 20, "HMAC-SHA1");
        assert_eq!(c.integrity_key(&user, "x").len(), 16, "MD5");
    }

    #[test]
    fn nonces_are_bound_to_the_address_and_go_stale() {
        let c = creds();
        let now = SystemTime::now();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let n = c.nonce(ip, now);
        assert!(c.nonce_fresh(&n, ip, now));
        assert!(!c.nonce_fresh(&n, "10.0.0.2".parse().unwrap(), now));
        assert!(!c.nonce_fresh(&n, ip, now + NONCE_LIFETIME + Duration::from_secs(1)));
        assert!(!c.nonce_fresh("0-00", ip, now));
    }
}
