//! Room tokens for the load generator: minted from the server's secret, or read pre-minted.
//!
//! * **Minting** (`--secret-file {data_dir}/auth.secret`): the file holds the HS256 key the
//!   server signs and verifies room links with. Its text is decoded exactly as the server does
//!   (`src/auth`): 64 or more hex digits are the key bytes, anything else is used as is. Claims
//!   follow docs/protocol.md §1: `room`, `role`, `name`, optional `classroom`, `nbf`, `exp`,
//!   `iat`, `jti` (128 random bits, hex). No `mode` claim: rooms are ad-hoc (`open`), where the
//!   role table of §2 applies (classrooms hear each other without floor control).
//! * **Pre-minted** (`--tokens-file PATH`): one token per line (blank lines and `#` comments
//!   skipped), e.g. printed by `ketang token --token-only`. The generator reads each token's
//!   `room` and `role` claims without verifying (the server does that) and hands them out by
//!   role: the scenario's r-th room is the r-th distinct room in the file, and each participant
//!   takes the next unused token of its room and role. Running out is an error naming the
//!   room and role.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Roles the generator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Publishes and receives everyone.
    Teacher,
    /// Publishes; receives teachers and classrooms.
    Classroom,
    /// Receives teachers and classrooms.
    Observer,
    /// Receives teachers.
    Viewer,
}

impl Role {
    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Teacher => "teacher",
            Role::Classroom => "classroom",
            Role::Observer => "observer",
            Role::Viewer => "viewer",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    room: String,
    role: Role,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    classroom: Option<String>,
    nbf: u64,
    exp: u64,
    iat: u64,
    jti: String,
}

/// Where tokens come from.
pub enum TokenSource {
    /// Mint with this HS256 key.
    Secret {
        /// Key bytes.
        key: Vec<u8>,
        /// Validity of minted tokens.
        ttl: Duration,
    },
    /// Pre-minted tokens, grouped by room (in file order) and role.
    Minted {
        /// Distinct rooms in file order.
        rooms: Vec<String>,
        /// Unused tokens per (room, role).
        pool: HashMap<(String, Role), Vec<String>>,
    },
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Secret { ttl, .. } => write!(f, "TokenSource::Secret(ttl {ttl:?})"),
            TokenSource::Minted { rooms, .. } => write!(f, "TokenSource::Minted({rooms:?})"),
        }
    }
}

/// Decode secret text the way the server does: 64+ hex digits are bytes, else raw text.
pub fn decode_secret(text: &str) -> Vec<u8> {
    let text = text.trim();
    let hex: Option<Vec<u8>> = (text.len() >= 64 && text.len().is_multiple_of(2))
        .then(|| {
            (0..text.len())
                .step_by(2)
                .map(|i| {
                    text.get(i..i + 2)
                        .and_then(|p| u8::from_str_radix(p, 16).ok())
                })
                .collect()
        })
        .flatten();
    hex.unwrap_or_else(|| text.as_bytes().to_vec())
}

impl TokenSource {
    /// Mint with the secret in `path` (the server's `{data_dir}/auth.secret`).
    pub fn from_secret_file(path: &Path, ttl: Duration) -> Result<TokenSource, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read secret {}: {e}", path.display()))?;
        let key = decode_secret(&text);
        if key.len() < 32 {
            return Err(format!(
                "{}: the secret is shorter than 32 bytes",
                path.display()
            ));
        }
        Ok(TokenSource::Secret { key, ttl })
    }

    /// Pre-minted tokens from `path`, one per line.
    pub fn from_tokens_file(path: &Path) -> Result<TokenSource, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read tokens {}: {e}", path.display()))?;
        Self::from_tokens_text(&text)
    }

    /// Pre-minted tokens from text, one per line.
    pub fn from_tokens_text(text: &str) -> Result<TokenSource, String> {
        let mut rooms: Vec<String> = Vec::new();
        let mut pool: HashMap<(String, Role), Vec<String>> = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let token = line.trim();
            if token.is_empty() || token.starts_with('#') {
                continue;
            }
            let claims: Claims = jsonwebtoken::dangerous::insecure_decode_claims(token)
                .map_err(|e| format!("line {}: not a room token: {e}", n + 1))?;
            if !rooms.contains(&claims.room) {
                rooms.push(claims.room.clone());
            }
            pool.entry((claims.room, claims.role))
                .or_default()
                .push(token.to_owned());
        }
        // Hand tokens out in file order.
        for v in pool.values_mut() {
            v.reverse();
        }
        Ok(TokenSource::Minted { rooms, pool })
    }

    /// The room name of the scenario's room `index`; minted rooms are `{prefix}-{index}`.
    pub fn room(&self, prefix: &str, index: usize) -> Result<String, String> {
        match self {
            TokenSource::Secret { .. } => Ok(format!("{prefix}-{index}")),
            TokenSource::Minted { rooms, .. } => rooms.get(index).cloned().ok_or_else(|| {
                format!(
                    "the tokens file has {} room(s); the scenario needs room #{}",
                    rooms.len(),
                    index + 1
                )
            }),
        }
    }

    /// A token for `room` and `role`, named `name`.
    pub fn token(
        &mut self,
        room: &str,
        role: Role,
        name: &str,
        classroom: Option<&str>,
    ) -> Result<String, String> {
        match self {
            TokenSource::Secret { key, ttl } => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let claims = Claims {
                    room: room.to_owned(),
                    role,
                    name: name.to_owned(),
                    classroom: classroom.map(str::to_owned),
                    nbf: now,
                    exp: now + ttl.as_secs().max(60),
                    iat: now,
                    jti: format!("{:032x}", rand::random::<u128>()),
                };
                let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
                let key = jsonwebtoken::EncodingKey::from_secret(key)
                    .map_err(|e| format!("unusable secret: {e}"))?;
                jsonwebtoken::encode(&header, &claims, &key).map_err(|e| format!("signing: {e}"))
            }
            TokenSource::Minted { pool, .. } => pool
                .get_mut(&(room.to_owned(), role))
                .and_then(Vec::pop)
                .ok_or_else(|| {
                    format!(
                        "the tokens file has no more {} tokens for room {room}",
                        role.as_str()
                    )
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_text_decodes_like_the_server() {
        let hex = "ab".repeat(32);
        assert_eq!(decode_secret(&format!("{hex}\n")), vec![0xab; 32]);
        assert_eq!(decode_secret("short-secret"), b"short-secret".to_vec());
    }

    #[test]
    fn minted_tokens_round_trip_through_a_tokens_file() {
        let mut src = TokenSource::Secret {
            key: vec![7; 32],
            ttl: Duration::from_secs(600),
        };
        let room = src.room("lt", 0).expect("room");
        let t1 = src.token(&room, Role::Teacher, "T", None).expect("teacher");
        let t2 = src.token(&room, Role::Viewer, "V", None).expect("viewer");
        let claims: Claims = jsonwebtoken::dangerous::insecure_decode_claims(&t1).expect("claims");
        assert_eq!((claims.room.as_str(), claims.role), ("lt-0", Role::Teacher));
        assert!(claims.exp >= claims.nbf + 600 && claims.jti.len() == 32);

        let mut file =
            TokenSource::from_tokens_text(&format!("# tokens\n{t1}\n\n{t2}\n")).expect("parse");
        assert_eq!(file.room("x", 0).expect("room"), "lt-0");
        assert!(file.room("x", 1).is_err());
        assert_eq!(file.token("lt-0", Role::Viewer, "", None).expect("v"), t2);
        assert!(file.token("lt-0", Role::Viewer, "", None).is_err());
    }
}
