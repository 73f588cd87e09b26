//! Security headers on every response: a Content Security Policy that allows only Ketang's
//! own scripts, styles and connections, `nosniff`, no referrer, and no framing by other sites
//! (unless `http.frame_ancestors` names them).
//!
//! The pages are built for this policy: no inline scripts or styles, no `eval`, text put in
//! with `textContent`. A room link carries its token in the query, so no page sends a
//! referrer; the admin page keeps its key in `sessionStorage`, so no script from elsewhere
//! may run beside it.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// The policy for `frame_ancestors` (the origins that may embed Ketang's pages; none by
/// default). `media-src` allows `blob:` and `mediastream:` for recorded and live media,
/// `img-src` allows `data:` (QR codes) and `blob:`, `connect-src 'self'` covers the page's
/// own `ws:`/`wss:` signaling (CSP Level 3).
pub fn content_security_policy(frame_ancestors: &[String]) -> String {
    let ancestors = if frame_ancestors.is_empty() {
        "'none'".to_owned()
    } else {
        frame_ancestors.join(" ")
    };
    [
        "default-src 'self'".to_owned(),
        "script-src 'self'".to_owned(),
        "style-src 'self'".to_owned(),
        "img-src 'self' data: blob:".to_owned(),
        "media-src 'self' blob: mediastream:".to_owned(),
        "connect-src 'self'".to_owned(),
        "font-src 'self'".to_owned(),
        "object-src 'none'".to_owned(),
        "base-uri 'none'".to_owned(),
        "form-action 'self'".to_owned(),
        format!("frame-ancestors {ancestors}"),
    ]
    .join("; ")
}

/// The headers, built once at start.
#[derive(Clone)]
pub struct SecurityHeaders {
    csp: HeaderValue,
    frame_options: Option<HeaderValue>,
}

impl SecurityHeaders {
    pub fn new(frame_ancestors: &[String]) -> SecurityHeaders {
        let csp = HeaderValue::from_str(&content_security_policy(frame_ancestors))
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
        SecurityHeaders {
            csp,
            // X-Frame-Options cannot name other origins: sent only when nobody may frame.
            frame_options: frame_ancestors
                .is_empty()
                .then_some(HeaderValue::from_static("DENY")),
        }
    }
}

/// Middleware: adds the headers a handler did not set itself.
pub async fn add(State(h): State<SecurityHeaders>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let headers = resp.headers_mut();
    let mut set = |name: HeaderName, value: HeaderValue| {
        headers.entry(name).or_insert(value);
    };
    set(header::CONTENT_SECURITY_POLICY, h.csp);
    set(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    set(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Some(v) = h.frame_options {
        set(header::X_FRAME_OPTIONS, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_only_own_code_and_names_who_may_frame() {
        let p = content_security_policy(&[]);
        assert!(p.contains("script-src 'self';"));
        assert!(!p.contains("unsafe"), "{p}");
        assert!(p.ends_with("frame-ancestors 'none'"));
        let p = content_security_policy(&["https://portal.school.cn".into()]);
        assert!(
            p.ends_with("frame-ancestors https://portal.school.cn"),
            "{p}"
        );
        assert!(SecurityHeaders::new(&[]).frame_options.is_some());
        assert!(
            SecurityHeaders::new(&["https://portal.school.cn".into()])
                .frame_options
                .is_none()
        );
    }
}
