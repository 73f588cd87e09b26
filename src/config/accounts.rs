//! `[accounts]`: admin sign-in (passwords, TOTP, lockout, sessions) and the audit log's
//! retention. The defaults are what a 等级保护 level-3 assessment expects.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, duration_str};

/// Audit rows younger than this are never purged, whatever `audit_retention` says.
pub const AUDIT_RETENTION_FLOOR: Duration = Duration::from_secs(180 * 24 * 3600);

/// Longest idle session the configuration accepts (the assessment's upper bound).
pub const MAX_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);

/// `[accounts]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountsConfig {
    /// A session unused this long is over (at most 30 minutes).
    #[serde(with = "duration_str")]
    pub session_idle: Duration,
    /// A session ends this long after sign-in however active it is.
    #[serde(with = "duration_str")]
    pub session_max: Duration,
    /// Consecutive failed sign-ins that lock an account.
    pub max_failures: u32,
    /// How long a locked account stays locked.
    #[serde(with = "duration_str")]
    pub lockout: Duration,
    /// Audit rows older than this are purged (never younger than 180 days).
    #[serde(with = "duration_str")]
    pub audit_retention: Duration,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            session_idle: Duration::from_secs(30 * 60),
            session_max: Duration::from_secs(12 * 3600),
            max_failures: 5,
            lockout: Duration::from_secs(10 * 60),
            audit_retention: Duration::from_secs(365 * 24 * 3600),
        }
    }
}

impl AccountsConfig {
    /// Bounds that types alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.session_idle < Duration::from_secs(60) || self.session_idle > MAX_SESSION_IDLE {
            return Err(ConfigError::invalid(
                "accounts.session_idle",
                "must be between 1m and 30m",
            ));
        }
        if self.session_max < self.session_idle || self.session_max > Duration::from_secs(7 * 86400)
        {
            return Err(ConfigError::invalid(
                "accounts.session_max",
                "must be at least accounts.session_idle and at most 7days",
            ));
        }
        if !(1..=100).contains(&self.max_failures) {
            return Err(ConfigError::invalid(
                "accounts.max_failures",
                "must be between 1 and 100",
            ));
        }
        if self.lockout < Duration::from_secs(60) || self.lockout > Duration::from_secs(86400) {
            return Err(ConfigError::invalid(
                "accounts.lockout",
                "must be between 1m and 1day",
            ));
        }
        if self.audit_retention < AUDIT_RETENTION_FLOOR {
            return Err(ConfigError::invalid(
                "accounts.audit_retention",
                "must be at least 180days (the audit log is kept six months at least)",
            ));
        }
        Ok(())
    }
}

/// `[oidc]`: teachers sign in with the school's identity provider (OpenID Connect,
/// authorization code with PKCE). Off while `issuer` is unset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// The provider's issuer URL (its `/.well-known/openid-configuration` is read from it).
    pub issuer: Option<String>,
    /// This server's client id at the provider.
    pub client_id: String,
    /// The client secret (sent to the token endpoint only).
    pub client_secret: Option<String>,
    /// Scopes asked for (`openid` is always included).
    pub scopes: Vec<String>,
    /// The ID token claim whose value is the teacher's Ketang id (`tch_...`).
    pub teacher_claim: String,
    /// The claim shown as the teacher's name.
    pub name_claim: String,
    /// How long a teacher stays signed in.
    #[serde(with = "duration_str")]
    pub session: Duration,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            client_id: String::new(),
            client_secret: None,
            scopes: vec!["openid".to_owned(), "profile".to_owned()],
            teacher_claim: "ketang_teacher".to_owned(),
            name_claim: "name".to_owned(),
            session: Duration::from_secs(8 * 3600),
        }
    }
}

impl OidcConfig {
    /// Bounds that types alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let Some(issuer) = &self.issuer else {
            return Ok(());
        };
        let loopback_http = issuer.starts_with("http://127.0.0.1")
            || issuer.starts_with("http://localhost")
            || issuer.starts_with("http://[::1]");
        if !issuer.starts_with("https://") && !loopback_http {
            return Err(ConfigError::invalid(
                "oidc.issuer",
                "must be an https:// URL (http:// only on loopback, for tests)",
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::invalid(
                "oidc.client_id",
                "must be set when oidc.issuer is",
            ));
        }
        if self.teacher_claim.trim().is_empty() || self.name_claim.trim().is_empty() {
            return Err(ConfigError::invalid(
                "oidc.teacher_claim",
                "claim names must not be empty",
            ));
        }
        if self.session < Duration::from_secs(60) || self.session > Duration::from_secs(86400) {
            return Err(ConfigError::invalid(
                "oidc.session",
                "must be between 1m and 1day",
            ));
        }
        Ok(())
    }
}
