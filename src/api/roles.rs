//! Separated administrator roles (三权分立): which role may call which route. The rule is by
//! the route's OpenAPI tag, read from the same document the router is built from, so a new
//! route is governed (and walked by the role-matrix test) as soon as it is tagged; an untagged
//! or unknown tag is refused to every role but `all`. docs/admin-api.md shows the matrix.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::http::Method;

use crate::accounts::AdminRole;

/// What a role may do with the routes of one tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Every method.
    Full,
    /// GET and HEAD only.
    Read,
    /// Nothing (403).
    None,
}

/// The matrix: tag → (system, security, audit). `all` keys may do everything; the `docs` and
/// `session` tags are not role-governed (public, or any signed-in person).
pub const MATRIX: &[(&str, [Access; 3])] = {
    use Access::{Full, None, Read};
    &[
        ("schools", [Full, None, None]),
        ("classrooms", [Full, None, None]),
        ("teachers", [Full, None, None]),
        ("lessons", [Full, None, None]),
        ("occurrences", [Full, None, None]),
        ("live", [Full, None, None]),
        ("library", [Full, None, None]),
        ("keys", [None, Full, None]),
        ("accounts", [None, Full, None]),
        ("audit", [None, None, Read]),
    ]
};

/// What `role` may do with routes tagged `tag`.
pub fn access(role: AdminRole, tag: &str) -> Access {
    let column = match role {
        AdminRole::All => return Access::Full,
        AdminRole::System => 0,
        AdminRole::Security => 1,
        AdminRole::Audit => 2,
    };
    MATRIX
        .iter()
        .find(|(t, _)| *t == tag)
        .map_or(Access::None, |(_, row)| row[column])
}

/// Whether `role` may call `method` on the route template `path` (axum's matched path, the
/// same as the OpenAPI path).
pub fn allowed(role: AdminRole, method: &Method, path: &str) -> bool {
    // HEAD is served by the GET route.
    let m = if *method == Method::HEAD {
        "get".to_owned()
    } else {
        method.as_str().to_ascii_lowercase()
    };
    let tag = tags().get(&(m, path.to_owned()));
    let Some(tag) = tag else {
        return role == AdminRole::All;
    };
    match access(role, tag) {
        Access::Full => true,
        Access::Read => *method == Method::GET || *method == Method::HEAD,
        Access::None => false,
    }
}

/// (method, path) → first tag, from the OpenAPI document.
fn tags() -> &'static HashMap<(String, String), String> {
    static TAGS: OnceLock<HashMap<(String, String), String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        let doc = serde_json::to_value(super::openapi()).unwrap_or_default();
        let mut out = HashMap::new();
        if let Some(paths) = doc["paths"].as_object() {
            for (path, item) in paths {
                let Some(ops) = item.as_object() else {
                    continue;
                };
                for (method, op) in ops {
                    if let Some(tag) = op["tags"][0].as_str() {
                        out.insert((method.clone(), path.clone()), tag.to_owned());
                    }
                }
            }
        }
        out
    })
}

/// The 403 detail for `role`.
pub fn refusal(role: AdminRole, method: &Method, path: &str) -> String {
    format!(
        "a {role} admin may not {method} {path}: system admins manage schools, lessons, links \
         and rooms; security admins accounts and keys; audit admins only read the audit log"
    )
}
