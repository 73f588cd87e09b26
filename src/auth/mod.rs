//! Room tokens (docs/protocol.md §1): HS256 JWTs that say who may enter which room, as what,
//! and when. Minting is done by `ketang token`; every entry point verifies.
//!
//! Time is always passed in (`now`) rather than read from the clock, so that the expiry and
//! skew rules are tested without sleeping; jsonwebtoken's own time checks are disabled for the
//! same reason and done here.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ketang_sfu::{ClassroomId, Role, RoomId};
use serde::{Deserialize, Serialize};

use crate::config::MIN_SECRET_BYTES;

/// Name of the generated secret file inside `storage.data_dir`.
pub const SECRET_FILE: &str = "auth.secret";

/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Longest validity (`exp - nbf`) of a room token, at minting and at entry. A lesson link
/// spans at most a 12-hour lesson plus a day of lead and a day of grace; a leaked token
/// should not open rooms for longer than that.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// The `aud` of room tokens: a token meant for anything else (a library link, another service
/// sharing the secret) never opens a room.
pub const ROOM_AUDIENCE: &str = "ketang-room";

/// The claims of a room token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomClaims {
    /// The room the token opens.
    pub room: RoomId,
    /// What the holder is in the room.
    pub role: Role,
    /// Display name shown to others.
    pub name: String,
    /// Classroom, for attendance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classroom: Option<ClassroomId>,
    /// The lesson mode of the room (scheduled lessons); absent for ad-hoc rooms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ketang_sfu::LessonMode>,
    /// Not valid before (Unix seconds).
    pub nbf: u64,
    /// Expiry (Unix seconds).
    pub exp: u64,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Unique token id (128 random bits, hex).
    pub jti: String,
    /// Audience: always `ketang-room` in tokens minted now; tokens minted before it was added
    /// have none and are taken within their (capped) validity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// The scheduled occurrence the link is for (its id is also the room id); such tokens are
    /// also checked against the schedule on entry (`AppState::admit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lesson: Option<String>,
    /// The occurrence's link version when the link was minted; reissuing links increments
    /// it, which revokes every older link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lv: Option<u32>,
}

/// Ties a token to a scheduled occurrence (the `lesson` and `lv` claims).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LessonBinding {
    /// The occurrence id.
    pub occurrence: String,
    /// Its current link version.
    pub link_version: u32,
}

/// What to put in a new token.
#[derive(Debug, Clone)]
pub struct MintRequest {
    /// The room the token opens.
    pub room: RoomId,
    /// What the holder is in the room.
    pub role: Role,
    /// Display name, 1–64 characters without control characters.
    pub name: String,
    /// Classroom, for attendance.
    pub classroom: Option<ClassroomId>,
    /// Lesson mode of the room; `None` for an ad-hoc room.
    pub mode: Option<ketang_sfu::LessonMode>,
    /// Start of validity; `None` means now.
    pub not_before: Option<SystemTime>,
    /// Validity, counted from `not_before`.
    pub ttl: Duration,
}

/// Why a token could not be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    /// The display name breaks the rules.
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// A token that is never valid is useless and probably a typo.
    #[error("the validity (ttl) must be longer than zero")]
    ZeroTtl,
    /// The validity window does not fit in Unix seconds.
    #[error("the validity window is out of range")]
    OutOfRange,
    /// Longer than [`MAX_TOKEN_LIFETIME`].
    #[error("the validity (ttl) must be at most {} days", MAX_TOKEN_LIFETIME.as_secs() / 86_400)]
    TooLong,
    /// The signing key is unusable (empty secret) or signing failed.
    #[error("cannot sign the token: {0}")]
    Signing(String),
}

/// Why a token was refused. `code()` is the protocol's `error` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// No token was presented.
    Missing,
    /// Not a JWT, or its claims are missing or invalid.
    Malformed(String),
    /// The signature does not verify, or the algorithm is not HS256.
    Invalid,
    /// `exp` (plus skew) is in the past.
    Expired {
        /// The token's `exp`.
        expired_at: u64,
    },
    /// `nbf` (minus skew) is in the future.
    NotYetValid {
        /// The token's `nbf`.
        valid_from: u64,
    },
    /// The token is for another room.
    WrongRoom {
        /// The room the token names.
        token_room: RoomId,
    },
    /// The lesson link was replaced by newer ones, or its occurrence no longer exists.
    Revoked,
    /// The scheduled occurrence was ended early by an admin.
    LessonEnded,
    /// The scheduled occurrence was cancelled.
    LessonCancelled,
    /// The schedule could not be consulted (database unreachable): refused, to be retried.
    Unavailable,
}

impl TokenError {
    /// The protocol error code (docs/protocol.md §1).
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Missing => "tokenMissing",
            TokenError::Malformed(_) => "tokenMalformed",
            TokenError::Invalid => "tokenInvalid",
            TokenError::Expired { .. } => "tokenExpired",
            TokenError::NotYetValid { .. } => "tokenNotYetValid",
            TokenError::WrongRoom { .. } => "tokenWrongRoom",
            TokenError::Revoked => "tokenRevoked",
            TokenError::LessonEnded => "lessonEnded",
            TokenError::LessonCancelled => "lessonCancelled",
            TokenError::Unavailable => "scheduleUnavailable",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Missing => f.write_str("no room token was given: open the full room link"),
            TokenError::Malformed(why) => write!(f, "the room link is damaged: {why}"),
            TokenError::Invalid => f.write_str(
                "the room link's signature is not valid: it was altered or issued by another server",
            ),
            TokenError::Expired { expired_at } => {
                write!(f, "the room link expired at {}", utc(*expired_at))
            }
            TokenError::NotYetValid { valid_from } => {
                write!(f, "the room link is not valid before {}", utc(*valid_from))
            }
            TokenError::WrongRoom { token_room } => {
                write!(f, "the room link is for room {token_room}, not this one")
            }
            TokenError::Revoked => f.write_str(
                "the room link was replaced by a newer one: ask the organizer for the current link",
            ),
            TokenError::LessonEnded => f.write_str("the lesson has ended"),
            TokenError::LessonCancelled => f.write_str("the lesson was cancelled"),
            TokenError::Unavailable => {
                f.write_str("the schedule cannot be checked right now: try again in a moment")
            }
        }
    }
}

impl std::error::Error for TokenError {}

/// Formats Unix seconds as `2026-11-29 10:00:00 UTC`.
pub fn utc(unix_secs: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(unix_secs);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} UTC", s.trim_end_matches('Z').replacen('T', " ", 1))
}

fn unix_secs(t: SystemTime) -> u64 {
    // A clock before 1970 is a broken clock; treating it as the epoch makes every token look
    // not yet valid or expired rather than panicking.
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Checks a display name: 1–64 characters, no control characters.
pub fn validate_name(name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if name.trim().is_empty() {
        return Err("the name must not be empty".to_owned());
    }
    if chars > MAX_NAME_CHARS {
        return Err(format!(
            "the name must be at most {MAX_NAME_CHARS} characters (got {chars})"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("the name must not contain control characters".to_owned());
    }
    if name.chars().any(is_invisible_format) {
        return Err(
            "the name must not contain invisible or direction-changing characters".to_owned(),
        );
    }
    Ok(())
}

/// Invisible formatting characters: zero-width spaces and joiners, direction marks, embeddings
/// and isolates, the byte-order mark. In a name or chat text they only serve to make text
/// look like something else (a reversed file name, two names that look the same).
pub fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Mints and verifies room tokens with one secret.
pub struct TokenAuthority {
    // `None` only for an empty secret, which jsonwebtoken refuses: every mint then fails and
    // every token is Invalid, instead of `new` having to panic.
    keys: Option<(EncodingKey, DecodingKey)>,
    validation: Validation,
    skew_secs: u64,
}

impl fmt::Debug for TokenAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the keys.
        f.debug_struct("TokenAuthority")
            .field("skew_secs", &self.skew_secs)
            .finish_non_exhaustive()
    }
}

impl TokenAuthority {
    /// An authority for `secret`, tolerating `clock_skew` on `nbf` and `exp`.
    pub fn new(secret: &[u8], clock_skew: Duration) -> Self {
        let keys = EncodingKey::from_secret(secret)
            .and_then(|e| DecodingKey::from_secret(secret).map(|d| (e, d)))
            .ok();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        // Checked when present: tokens from before `aud` have none.
        validation.set_audience(&[ROOM_AUDIENCE]);
        validation.leeway = 0;
        Self {
            keys,
            validation,
            skew_secs: clock_skew.as_secs(),
        }
    }

    /// Signs a token for `req`, issued at `now`.
    pub fn mint(&self, req: &MintRequest, now: SystemTime) -> Result<String, MintError> {
        self.mint_inner(req, None, now)
    }

    /// Signs a token for `req` bound to a scheduled occurrence and its link version.
    pub fn mint_lesson(
        &self,
        req: &MintRequest,
        binding: &LessonBinding,
        now: SystemTime,
    ) -> Result<String, MintError> {
        self.mint_inner(req, Some(binding), now)
    }

    fn mint_inner(
        &self,
        req: &MintRequest,
        binding: Option<&LessonBinding>,
        now: SystemTime,
    ) -> Result<String, MintError> {
        validate_name(&req.name).map_err(MintError::InvalidName)?;
        if req.ttl.is_zero() {
            return Err(MintError::ZeroTtl);
        }
        let iat = unix_secs(now);
        let nbf = req.not_before.map_or(iat, unix_secs);
        // Round the ttl up so that a sub-second ttl does not mint an already-expired token.
        let ttl_secs = req.ttl.as_secs() + u64::from(req.ttl.subsec_nanos() > 0);
        let exp = nbf.checked_add(ttl_secs).ok_or(MintError::OutOfRange)?;
        if ttl_secs > MAX_TOKEN_LIFETIME.as_secs() {
            return Err(MintError::TooLong);
        }
        let claims = RoomClaims {
            room: req.room.clone(),
            role: req.role,
            name: req.name.clone(),
            classroom: req.classroom.clone(),
            mode: req.mode,
            nbf,
            exp,
            iat,
            jti: format!("{:032x}", rand::random::<u128>()),
            aud: Some(ROOM_AUDIENCE.to_owned()),
            lesson: binding.map(|b| b.occurrence.clone()),
            lv: binding.map(|b| b.link_version),
        };
        let (key, _) = self
            .keys
            .as_ref()
            .ok_or_else(|| MintError::Signing("the secret is empty".to_owned()))?;
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, key)
            .map_err(|e| MintError::Signing(e.to_string()))
    }

    /// Checks `token` at `now`: signature, validity window, claims and, if given, the room.
    pub fn verify(
        &self,
        token: &str,
        expected_room: Option<&RoomId>,
        now: SystemTime,
    ) -> Result<RoomClaims, TokenError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        // jsonwebtoken reports an unknown `alg` (such as "none") as a JSON error, which would
        // read as Malformed; the protocol calls any non-HS256 token Invalid, so look first.
        let alg = header_alg(token)?;
        if alg != "HS256" {
            return Err(TokenError::Invalid);
        }
        let (_, key) = self.keys.as_ref().ok_or(TokenError::Invalid)?;
        let data = jsonwebtoken::decode::<RoomClaims>(token, key, &self.validation)
            .map_err(map_jwt_error)?;
        let claims = data.claims;
        validate_name(&claims.name).map_err(TokenError::Malformed)?;
        if claims.exp.saturating_sub(claims.nbf) > MAX_TOKEN_LIFETIME.as_secs() {
            return Err(TokenError::Malformed(format!(
                "it is valid for longer than the {} days a room link may be",
                MAX_TOKEN_LIFETIME.as_secs() / 86_400
            )));
        }

        let now = unix_secs(now);
        if now > claims.exp.saturating_add(self.skew_secs) {
            return Err(TokenError::Expired {
                expired_at: claims.exp,
            });
        }
        if now.saturating_add(self.skew_secs) < claims.nbf {
            return Err(TokenError::NotYetValid {
                valid_from: claims.nbf,
            });
        }
        if let Some(room) = expected_room
            && *room != claims.room
        {
            return Err(TokenError::WrongRoom {
                token_room: claims.room,
            });
        }
        Ok(claims)
    }
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> TokenError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature
        | K::InvalidAlgorithm
        | K::InvalidAlgorithmName
        | K::InvalidAudience => TokenError::Invalid,
        K::Json(err) => TokenError::Malformed(format!("bad claims: {err}")),
        K::Base64(_) | K::Utf8(_) | K::InvalidToken => {
            TokenError::Malformed("not a room token".to_owned())
        }
        other => TokenError::Malformed(format!("{other:?}")),
    }
}

/// The `alg` of a compact JWT's header, without trusting anything else in it.
fn header_alg(token: &str) -> Result<String, TokenError> {
    let not_a_jwt = || TokenError::Malformed("not a room token".to_owned());
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(not_a_jwt());
    };
    let bytes = base64url_decode(header).ok_or_else(not_a_jwt)?;
    #[derive(Deserialize)]
    struct AlgOnly {
        alg: String,
    }
    serde_json::from_slice::<AlgOnly>(&bytes)
        .map(|h| h.alg)
        .map_err(|_| not_a_jwt())
}

/// Unpadded base64url, as used by JWTs. Small enough not to warrant a dependency.
fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A lone trailing character (6 bits) cannot come from any byte string.
    (bits < 6).then_some(out)
}

/// Why the signing secret could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The configured or stored secret is too short to be safe.
    #[error("{origin}: the secret must be at least {MIN_SECRET_BYTES} bytes (got {len})")]
    TooShort {
        /// `auth.secret` or the file path.
        origin: String,
        /// Its length in bytes after decoding.
        len: usize,
    },
    /// Reading or writing the secret file or its directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
}

/// Turns secret text into key bytes: 64+ hex digits are decoded (the generated file's format),
/// anything else is used as is. Config and file go through the same rule, so pasting the
/// file's content into `auth.secret` keeps existing links valid.
fn decode_secret_text(text: &str) -> Vec<u8> {
    let text = text.trim();
    match hex_decode(text) {
        Some(bytes) if bytes.len() >= MIN_SECRET_BYTES => bytes,
        _ => text.as_bytes().to_vec(),
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect()
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the generated secret lives.
pub fn secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SECRET_FILE)
}

/// The signing secret: `auth.secret` if configured; else `{data_dir}/auth.secret`, created with
/// 32 random bytes (hex, mode 0600) on first use. Safe against concurrent first starts: the
/// file appears atomically and whoever loses the race reads the winner's secret.
pub fn load_or_create_secret(
    cfg_secret: Option<&str>,
    data_dir: &Path,
) -> Result<Vec<u8>, SecretError> {
    if let Some(text) = cfg_secret {
        return check_len(decode_secret_text(text), "auth.secret".to_owned());
    }
    let path = secret_path(data_dir);
    match read_secret_file(&path) {
        Err(SecretError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    create_secret_file(data_dir, &path)?;
    read_secret_file(&path)
}

fn check_len(bytes: Vec<u8>, origin: String) -> Result<Vec<u8>, SecretError> {
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(SecretError::TooShort {
            origin,
            len: bytes.len(),
        });
    }
    Ok(bytes)
}

fn read_secret_file(path: &Path) -> Result<Vec<u8>, SecretError> {
    let io_err = |source| SecretError::Io {
        path: path.to_owned(),
        source,
    };
    let text = std::fs::read(path).map_err(io_err)?;
    let text = String::from_utf8_lossy(&text);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the token secret file is readable by other users; chmod 600 it");
        }
    }
    check_len(decode_secret_text(&text), path.display().to_string())
}

fn create_secret_file(data_dir: &Path, path: &Path) -> Result<(), SecretError> {
    let io_err = |p: &Path| {
        let p = p.to_owned();
        move |source| SecretError::Io { path: p, source }
    };
    std::fs::create_dir_all(data_dir).map_err(io_err(data_dir))?;
    let secret: [u8; 32] = rand::random();
    let tmp = data_dir.join(format!(
        ".{SECRET_FILE}.{}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let written = opts.open(&tmp).and_then(|mut f| {
        f.write_all(format!("{}\n", hex_encode(&secret)).as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(&tmp)(e));
    }
    // A hard link fails if the target exists, so only one of several racing starts publishes
    // its secret, and the file is never seen half-written; losers then read the winner's.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated a new token signing secret");
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

#[cfg(test)]
mod tests;
