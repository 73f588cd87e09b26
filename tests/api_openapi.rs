//! The router and the OpenAPI document agree: every `/api/v1` route is documented with its
//! methods, and every documented operation is routed. The router's path table is read from its
//! `Debug` output (axum lists its paths there) and then each path is probed with every method.

mod api_common;

use std::collections::{BTreeMap, BTreeSet};

use api_common::{Api, Engine};
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Path → documented methods.
fn documented() -> (Value, BTreeMap<String, BTreeSet<String>>) {
    let doc = serde_json::to_value(ketang::api::openapi()).expect("serialise");
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let methods = METHODS
            .iter()
            .filter(|m| item.get(**m).is_some())
            .map(|m| (*m).to_owned())
            .collect();
        out.insert(path.clone(), methods);
    }
    (doc, out)
}

/// The `/api/v1` paths in a router's route table (its `Debug` output).
fn routed_paths(debug: &str) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    let mut rest = debug;
    while let Some(i) = rest.find("\"/api/v1") {
        let tail = &rest[i + 1..];
        let end = tail.find('"').expect("closing quote");
        paths.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    // The catch-alls that answer unknown API paths with a problem document.
    paths.remove("/api/v1/{*rest}");
    paths.remove("/api/v1");
    paths
}

/// A concrete URL path for a template (any value will do: routing happens before parsing).
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|seg| if seg.starts_with('{') { "x1" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn the_document_is_openapi_3_1_with_bearer_auth_on_every_operation() {
    let (doc, paths) = documented();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["adminKey"]["scheme"],
        "bearer"
    );
    assert!(paths.len() >= 20, "{paths:?}");
    for (path, methods) in &paths {
        for m in methods {
            let op = &doc["paths"][path][m];
            let public = path == "/api/v1/openapi.json" || path == "/api/v1/docs";
            if !public {
                assert!(
                    op["responses"]["401"].is_object(),
                    "{m} {path} documents no 401"
                );
                let problem = &op["responses"]["401"]["content"]["application/problem+json"];
                assert!(problem.is_object(), "{m} {path}: 401 is a problem document");
            }
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.keys().any(|k| k.starts_with('2')), "{m} {path}");
            for (status, r) in responses {
                // OpenAPI requires a description on every response.
                let described = r["description"].as_str().is_some_and(|d| !d.is_empty());
                assert!(described, "{m} {path} {status} has no description");
            }
        }
    }
}

on_both_engines! {
    async fn every_documented_method_is_served_and_no_other(api: Api) {
        let (_, documented) = documented();
        // The whole server's router, not just the API's: an `/api/v1` route added anywhere
        // must be in the document.
        let routed = routed_paths(&format!("{:?}", ketang::http::router(api.server.state.clone())));
        assert!(!routed.is_empty(), "the router's Debug output no longer lists paths: update the test");
        let paths: BTreeSet<String> = documented.keys().cloned().collect();
        assert_eq!(routed, paths, "router vs document");

        for (path, methods) in &documented {
            let url = concrete(path);
            for m in METHODS {
                let r = api.send(&m.to_uppercase(), &url, None, None).await;
                let kind = r.body["type"].as_str().unwrap_or("");
                assert_ne!(kind, "urn:ketang:problem:no-route", "{m} {url}");
                if methods.contains(m) {
                    assert_ne!(r.status, 405, "{m} {path} is documented but not routed");
                } else {
                    assert_eq!(r.status, 405, "{m} {path} is routed but not documented: {:#}", r.body);
                    assert_eq!(kind, "urn:ketang:problem:method-not-allowed");
                }
            }
        }
        // And a path that is in neither.
        let r = api.get("/api/v1/nothing").await;
        assert_eq!((r.status, r.body["type"].as_str()), (404, Some("urn:ketang:problem:no-route")));
    }
}
