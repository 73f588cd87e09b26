//! Library links: a signed token that opens one recording (play, download, notes) for the
//! teacher or anyone it is handed to, without an admin key. HS256 with the server's secret,
//! like room links, but with its own audience claim: a room token is never a library link and
//! a library link never opens a room (each lacks the other's required claims).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::ids::RecordingId;

/// The `aud` of every library link.
pub const AUDIENCE: &str = "ketang-library";

/// What a library link says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkClaims {
    pub aud: String,
    /// The recording it opens.
    pub rec: String,
    /// Who it was issued to; the author of notes posted with it.
    pub name: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
}

/// Why a library link was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    Malformed,
    /// Bad signature, other algorithm, or not a library link.
    Invalid,
    Expired {
        at: u64,
    },
    /// A valid link, for another recording.
    OtherRecording,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Malformed => {
                f.write_str("the library link is damaged or not a library link")
            }
            LinkError::Invalid => f.write_str(
                "the library link's signature is not valid (altered or from another server)",
            ),
            LinkError::Expired { at } => {
                write!(f, "the library link expired at {}", crate::auth::utc(*at))
            }
            LinkError::OtherRecording => f.write_str("the library link is for another recording"),
        }
    }
}

impl std::error::Error for LinkError {}

/// Signs and checks library links.
pub struct LinkSigner {
    keys: Option<(EncodingKey, DecodingKey)>,
    validation: Validation,
    skew_secs: u64,
}

impl fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkSigner").finish_non_exhaustive()
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl LinkSigner {
    pub fn new(secret: &[u8], clock_skew: Duration) -> Self {
        let keys = EncodingKey::from_secret(secret)
            .and_then(|e| DecodingKey::from_secret(secret).map(|d| (e, d)))
            .ok();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        // Time is checked below with the caller's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_audience(&[AUDIENCE]);
        Self {
            keys,
            validation,
            skew_secs: clock_skew.as_secs(),
        }
    }

    /// A link to `rec` for `name`, valid for `ttl` from `now`; returns the token and its
    /// expiry (Unix seconds).
    pub fn mint(
        &self,
        rec: &RecordingId,
        name: &str,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<(String, u64), String> {
        let iat = unix_secs(now);
        let exp = iat.saturating_add(ttl.as_secs().max(1));
        let claims = LinkClaims {
            aud: AUDIENCE.to_owned(),
            rec: rec.to_string(),
            name: name.to_owned(),
            iat,
            exp,
            jti: format!("{:032x}", rand::random::<u128>()),
        };
        let (key, _) = self.keys.as_ref().ok_or("the signing secret is empty")?;
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, key)
            .map(|t| (t, exp))
            .map_err(|e| e.to_string())
    }

    /// Checks `token` for recording `rec` at `now`.
    pub fn verify(
        &self,
        token: &str,
        rec: &RecordingId,
        now: SystemTime,
    ) -> Result<LinkClaims, LinkError> {
        let (_, key) = self.keys.as_ref().ok_or(LinkError::Invalid)?;
        let data = jsonwebtoken::decode::<LinkClaims>(token.trim(), key, &self.validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::InvalidSignature
                    | K::InvalidAlgorithm
                    | K::InvalidAlgorithmName
                    | K::InvalidAudience => LinkError::Invalid,
                    _ => LinkError::Malformed,
                }
            })?;
        let c = data.claims;
        // No link is minted for longer (`recording.link_ttl`, the API's `ttlSeconds`).
        if c.exp.saturating_sub(c.iat) > crate::config::recording::MAX_LINK_TTL.as_secs() {
            return Err(LinkError::Invalid);
        }
        if unix_secs(now) > c.exp.saturating_add(self.skew_secs) {
            return Err(LinkError::Expired { at: c.exp });
        }
        if c.rec != rec.as_str() {
            return Err(LinkError::OtherRecording);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{MintRequest, TokenAuthority};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_link_opens_its_recording_until_it_expires() {
        let s = LinkSigner::new(SECRET, Duration::from_secs(30));
        let rec = RecordingId::generate(1);
        let other = RecordingId::generate(2);
        let now = SystemTime::now();
        let (t, exp) = s
            .mint(&rec, "李老师", Duration::from_secs(3600), now)
            .unwrap();
        assert_eq!(exp, unix_secs(now) + 3600);
        let c = s.verify(&t, &rec, now).expect("valid");
        assert_eq!(c.name, "李老师");
        assert_eq!(s.verify(&t, &other, now), Err(LinkError::OtherRecording));
        let late = now + Duration::from_secs(3600 + 31);
        assert_eq!(
            s.verify(&t, &rec, late),
            Err(LinkError::Expired { at: exp })
        );
        let forged = LinkSigner::new(b"another secret of thirty-two bytes!", Duration::ZERO);
        let (f, _) = forged
            .mint(&rec, "x", Duration::from_secs(60), now)
            .unwrap();
        assert_eq!(s.verify(&f, &rec, now), Err(LinkError::Invalid));
        assert_eq!(s.verify("garbage", &rec, now), Err(LinkError::Malformed));
    }

    #[test]
    fn a_link_valid_for_longer_than_any_minted_one_is_refused() {
        let s = LinkSigner::new(SECRET, Duration::ZERO);
        let rec = RecordingId::generate(1);
        let now = SystemTime::now();
        let iat = unix_secs(now);
        let key = EncodingKey::from_secret(SECRET).unwrap();
        let claims = LinkClaims {
            aud: AUDIENCE.to_owned(),
            rec: rec.to_string(),
            name: "x".into(),
            iat,
            exp: iat + 10 * 366 * 86_400,
            jti: "a".into(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap();
        assert_eq!(s.verify(&token, &rec, now), Err(LinkError::Invalid));
        let year = crate::config::recording::MAX_LINK_TTL;
        let (t, _) = s.mint(&rec, "x", year, now).unwrap();
        assert!(s.verify(&t, &rec, now).is_ok());
    }

    #[test]
    fn room_tokens_and_library_links_do_not_mix() {
        let s = LinkSigner::new(SECRET, Duration::ZERO);
        let rooms = TokenAuthority::new(SECRET, Duration::ZERO);
        let now = SystemTime::now();
        let req = MintRequest {
            room: ketang_sfu::RoomId::new("r1").unwrap(),
            role: ketang_sfu::Role::Teacher,
            name: "t".into(),
            classroom: None,
            mode: None,
            not_before: None,
            ttl: Duration::from_secs(60),
        };
        let room_token = rooms.mint(&req, now).unwrap();
        let rec = RecordingId::generate(1);
        assert!(s.verify(&room_token, &rec, now).is_err());
        let (link, _) = s.mint(&rec, "t", Duration::from_secs(60), now).unwrap();
        assert!(rooms.verify(&link, None, now).is_err());
    }
}
