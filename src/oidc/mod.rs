//! Teacher sign-in with the school's identity provider: OpenID Connect, authorization code
//! flow with PKCE (S256), a `state` and a `nonce`. The provider's discovery document and keys
//! are fetched on first use and kept an hour (refetched once when a token names an unknown
//! key). The ID token must be signed (RS256/384/512, PS256, ES256/384) by a key of the
//! provider's JWKS, issued by the configured issuer for this client, unexpired, with our
//! nonce; the claim `oidc.teacher_claim` names the Ketang teacher (`tch_...`).
//!
//! `portal` serves the pages: `/teacher/login`, `/teacher/callback`, `/teacher` and
//! `/teacher/api/me` (her lessons and her own room links only).

pub mod portal;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::config::accounts::OidcConfig;

/// How long discovery and keys are kept.
const CACHE_FOR: Duration = Duration::from_secs(3600);

/// What can go wrong talking to the provider or checking its token. Never includes tokens.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("teacher sign-in is not configured (oidc.issuer)")]
    Off,
    #[error("the identity provider could not be reached: {0}")]
    Provider(String),
    #[error("the identity provider's answer is not usable: {0}")]
    Protocol(String),
    #[error("the ID token was refused: {0}")]
    Token(String),
}

/// The endpoints from the discovery document.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// The provider, discovered.
pub struct Client {
    cfg: OidcConfig,
    http: oidc_http::Client,
    cache: Mutex<Option<(Discovery, JwkSet, Instant)>>,
}

/// One sign-in in progress: kept in the browser in a signed cookie until the callback.
#[derive(Debug, Clone, serde::Serialize, Deserialize, PartialEq, Eq)]
pub struct Pending {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

impl Pending {
    pub fn new() -> Self {
        let r = || URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        Self {
            state: r(),
            nonce: r(),
            verifier: r(),
        }
    }

    /// The PKCE S256 challenge of the verifier.
    pub fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.as_bytes()))
    }
}

impl Default for Pending {
    fn default() -> Self {
        Self::new()
    }
}

/// Who signed in.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The value of `oidc.teacher_claim`.
    pub teacher: String,
    /// The value of `oidc.name_claim`, or the teacher claim.
    pub name: String,
}

impl Client {
    pub fn new(cfg: &OidcConfig) -> Result<Self, OidcError> {
        if cfg.issuer.is_none() {
            return Err(OidcError::Off);
        }
        let http = oidc_http::Client::builder()
            .timeout(Duration::from_secs(10))
            // The provider's answers are read, never followed elsewhere.
            .redirect(oidc_http::redirect::Policy::none())
            .build()
            .map_err(|e| OidcError::Provider(e.to_string()))?;
        Ok(Self {
            cfg: cfg.clone(),
            http,
            cache: Mutex::new(None),
        })
    }

    fn issuer(&self) -> &str {
        self.cfg
            .issuer
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/')
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, OidcError> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| OidcError::Provider(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(OidcError::Provider(format!(
                "{url} answered {}",
                resp.status()
            )));
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| OidcError::Provider(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| OidcError::Protocol(format!("{url}: {e}")))
    }

    /// Discovery and keys, from the cache or the provider (`refresh` forces the latter).
    async fn provider(&self, refresh: bool) -> Result<(Discovery, JwkSet), OidcError> {
        let mut cache = self.cache.lock().await;
        if !refresh
            && let Some((d, k, at)) = cache.as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return Ok((d.clone(), k.clone()));
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer());
        let d: Discovery = self.get_json(&url).await?;
        if d.issuer.trim_end_matches('/') != self.issuer() {
            return Err(OidcError::Protocol(format!(
                "the discovery document names issuer {:?}, not {:?}",
                d.issuer,
                self.issuer()
            )));
        }
        let keys: JwkSet = self.get_json(&d.jwks_uri).await?;
        *cache = Some((d.clone(), keys.clone(), Instant::now()));
        Ok((d, keys))
    }

    /// The provider's authorization URL for `pending`, returning to `redirect_uri`.
    pub async fn authorize_url(
        &self,
        pending: &Pending,
        redirect_uri: &str,
    ) -> Result<String, OidcError> {
        let mut scopes = vec!["openid".to_owned()];
        scopes.extend(self.cfg.scopes.iter().filter(|s| *s != "openid").cloned());
        let (d, _) = self.provider(false).await?;
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.cfg.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", &pending.state)
            .append_pair("nonce", &pending.nonce)
            .append_pair("code_challenge", &pending.challenge())
            .append_pair("code_challenge_method", "S256")
            .finish();
        let sep = if d.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        Ok(format!("{}{sep}{query}", d.authorization_endpoint))
    }

    /// Exchanges `code` (client_secret_post) and checks the ID token.
    pub async fn finish(
        &self,
        code: &str,
        pending: &Pending,
        redirect_uri: &str,
    ) -> Result<Identity, OidcError> {
        let (d, _) = self.provider(false).await?;
        // Built before any await: the serializer is not Send.
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "authorization_code")
                .append_pair("code", code)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("client_id", &self.cfg.client_id)
                .append_pair("code_verifier", &pending.verifier);
            if let Some(secret) = &self.cfg.client_secret {
                form.append_pair("client_secret", secret);
            }
            form.finish()
        };
        let resp = self
            .http
            .post(&d.token_endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form)
            .send()
            .await
            .map_err(|e| OidcError::Provider(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(OidcError::Provider(format!(
                "the token endpoint answered {}",
                resp.status()
            )));
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            id_token: String,
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| OidcError::Provider(e.to_string()))?;
        let t: TokenResponse = serde_json::from_slice(&bytes)
            .map_err(|_| OidcError::Protocol("the token response has no id_token".to_owned()))?;
        self.check_id_token(&t.id_token, &pending.nonce).await
    }

    async fn check_id_token(&self, token: &str, nonce: &str) -> Result<Identity, OidcError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| OidcError::Token(format!("not a JWT: {e}")))?;
        let allowed = [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::ES256,
            Algorithm::ES384,
        ];
        if !allowed.contains(&header.alg) {
            return Err(OidcError::Token(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let mut key = None;
        for refresh in [false, true] {
            let (_, keys) = self.provider(refresh).await?;
            key = match &header.kid {
                Some(kid) => keys.find(kid).cloned(),
                None if keys.keys.len() == 1 => keys.keys.first().cloned(),
                None => None,
            };
            if key.is_some() {
                break;
            }
        }
        let jwk = key.ok_or_else(|| OidcError::Token("signed by an unknown key".to_owned()))?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| OidcError::Token(e.to_string()))?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[self.issuer(), &format!("{}/", self.issuer())]);
        v.set_audience(&[&self.cfg.client_id]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = 60;
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v)
            .map_err(|e| OidcError::Token(e.to_string()))?
            .claims;
        if claims["nonce"].as_str() != Some(nonce) {
            return Err(OidcError::Token("the nonce does not match".to_owned()));
        }
        let teacher = claims[&self.cfg.teacher_claim]
            .as_str()
            .ok_or_else(|| OidcError::Token(format!("no {:?} claim", self.cfg.teacher_claim)))?
            .to_owned();
        let name = claims[&self.cfg.name_claim]
            .as_str()
            .unwrap_or(&teacher)
            .chars()
            .take(64)
            .collect();
        Ok(Identity { teacher, name })
    }
}
