//! The role matrix (docs/admin-api.md §1, "Roles"), walked for every operation of the OpenAPI
//! document and every role: a key of a role the matrix refuses gets 403; any other key gets
//! anything but 403 (2xx, or 404/422 for the placeholder ids and empty bodies). A new route is
//! covered as soon as it is in the document.

mod api_common;

use api_common::{Api, Engine};
use ketang::accounts::AdminRole;
use ketang::api::roles::{Access, MATRIX};
use serde_json::{Value, json};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// What the documentation's table says `role` may do with `method` on a route tagged `tag`.
fn documented(role: AdminRole, tag: &str, method: &str) -> bool {
    if role == AdminRole::All || tag == "session" || tag == "docs" {
        return true;
    }
    let column = match role {
        AdminRole::System => 0,
        AdminRole::Security => 1,
        AdminRole::Audit => 2,
        AdminRole::All => unreachable!(),
    };
    match MATRIX.iter().find(|(t, _)| *t == tag) {
        None => false,
        Some((_, row)) => match row[column] {
            Access::Full => true,
            Access::Read => method == "get",
            Access::None => false,
        },
    }
}

async fn walk(api: &Api) {
    let mut keys = Vec::new();
    for role in [
        AdminRole::System,
        AdminRole::Security,
        AdminRole::Audit,
        AdminRole::All,
    ] {
        let mut conn = api.server.state.db.pool.acquire().await.unwrap();
        let key = ketang::api::keys::create_with_role(
            &mut conn,
            &format!("{role} key"),
            role,
            api.server.state.clock.now_ms(),
        )
        .await
        .unwrap()
        .1;
        keys.push((role, key));
    }
    let doc = serde_json::to_value(ketang::api::openapi()).unwrap();
    let mut walked = 0;
    let mut refused = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        // Library routes check the id's shape before the caller (a link names its recording):
        // give them a well-formed id of a recording that does not exist.
        let placeholder = if path.starts_with("/api/v1/library/") {
            ketang::library::ids::RecordingId::generate(1).to_string()
        } else {
            "x1".to_owned()
        };
        let concrete: String = path
            .split('/')
            .map(|s| {
                if s.starts_with('{') {
                    placeholder.as_str()
                } else {
                    s
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let tag = op["tags"][0].as_str().unwrap_or("");
            assert!(
                tag == "session" || tag == "docs" || MATRIX.iter().any(|(t, _)| *t == tag),
                "{method} {path}: tag {tag:?} is not in the role matrix (docs/admin-api.md)"
            );
            for (role, key) in &keys {
                let body = (method != "get" && method != "delete").then(|| json!({}));
                let r = api
                    .send(&method.to_uppercase(), &concrete, body, Some(key))
                    .await;
                let allowed = documented(*role, tag, method);
                if allowed {
                    assert_ne!(r.status, 403, "{role} {method} {path}: {}", r.body);
                    assert!(r.status < 500, "{role} {method} {path}: {}", r.body);
                } else {
                    assert_eq!(r.status, 403, "{role} {method} {path}: {}", r.body);
                    assert_eq!(r.body["type"], Value::from("urn:ketang:problem:forbidden"));
                    refused += 1;
                }
                walked += 1;
            }
        }
    }
    assert!(
        walked > 150 && refused > 80,
        "walked {walked}, refused {refused}"
    );
}

on_both_engines! {
    async fn every_route_and_role_gets_what_the_matrix_says(api: Api) {
        walk(api).await;
    }
}

#[test]
fn audit_admins_may_only_read_the_audit_log() {
    for (tag, row) in MATRIX {
        let expected = if *tag == "audit" {
            Access::Read
        } else {
            Access::None
        };
        assert_eq!(row[2], expected, "{tag}");
    }
}
