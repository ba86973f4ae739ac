//! The rule of every route: each route of the table is routed, and answers
//! a request without a token as its rule says; docs/api.md lists the same
//! table.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::Request;
use serde_json::Value;
use tower::ServiceExt;

use super::rules::{rule_of, Rule, RULES};
use crate::test_support::{uninitialized_node_with_auth, TempDir};

const ROOT_SECRET: &str = "a-root-secret-of-enough-bytes";

/// A path of the table with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{id}", "0000000000000000000000000000002a")
        .replace("{name}", "some-token")
}

/// Sends `method path` with an empty JSON body and `authorization`, if
/// any; the status and the error code, if the body has one.
async fn send(
    router: &axum::Router,
    method: &str,
    path: &str,
    authorization: Option<&str>,
) -> (u16, Option<String>) {
    let mut request = Request::builder()
        .method(method)
        .uri(concrete(path))
        .header("content-type", "application/json");
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let request = request.body(Body::from("{}")).expect("a request");
    let response = router.clone().oneshot(request).await.expect("an answer");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await;
    let body: Option<Value> = bytes.ok().and_then(|b| serde_json::from_slice(&b).ok());
    let code = body.and_then(|b| b["error"]["code"].as_str().map(String::from));
    (status, code)
}

/// Every route of the table exists in the router (none answers the 404 or
/// 405 of the fallbacks), and with auth on a request without a token gets
/// 401 everywhere but on the open routes. The open routes are sent at once:
/// some wait for a leader this node never gets.
#[tokio::test]
async fn every_route_is_routed_and_asks_for_what_its_rule_says() {
    let dir = TempDir::new("rules");
    let node = uninitialized_node_with_auth(&dir, ROOT_SECRET, false).await;
    let router = super::router(node);
    let answers = RULES.iter().map(|(method, path, rule)| {
        let router = router.clone();
        async move { (method, path, rule, send(&router, method, path, None).await) }
    });
    for (method, path, rule, (status, code)) in futures::future::join_all(answers).await {
        let code = code.unwrap_or_default();
        assert!(
            code != "not_found" && code != "method_not_allowed",
            "{method} {path} is not routed: {status} {code}"
        );
        match rule {
            Rule::Open | Rule::Metrics => {
                assert_ne!(status, 401, "{method} {path} is open, got {code}")
            }
            Rule::Token | Rule::Admin => assert_eq!(
                (status, code.as_str()),
                (401, "unauthenticated"),
                "{method} {path} needs a token"
            ),
        }
    }
}

/// A token the cluster does not know is refused like no token; the root
/// token of this node's file is taken before auth is on in the state; a
/// route outside the table is refused; `/metrics` needs a token when asked.
#[tokio::test]
async fn tokens_are_checked_and_unlisted_routes_refused() {
    let dir = TempDir::new("rules-tokens");
    let node = uninitialized_node_with_auth(&dir, ROOT_SECRET, true).await;
    // Leading, so that an unknown token can be looked up again after a
    // read barrier before it is refused.
    let members = std::collections::BTreeMap::from([(1, "127.0.0.1:1".to_string())]);
    node.raft
        .initialize_once(&members)
        .await
        .expect("initialized");
    let router = super::router(node);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while send(&router, "GET", "/readyz", None).await.0 != 200 {
        assert!(std::time::Instant::now() < deadline, "the node never led");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, code) = send(&router, "GET", "/v1/cluster", Some("Bearer wrong")).await;
    assert_eq!((status, code.as_deref()), (401, Some("unauthenticated")));
    let root = format!("Bearer {ROOT_SECRET}");
    let (status, _) = send(&router, "GET", "/v1/cluster", Some(&root)).await;
    assert_eq!(status, 200);
    let (status, _) = send(&router, "GET", "/metrics", None).await;
    assert_eq!(status, 401, "/metrics is protected");
    let (status, _) = send(&router, "GET", "/metrics", Some(&root)).await;
    assert_eq!(status, 200);
    assert_eq!(rule_of("GET", "/v1/not-a-route"), None);
    assert_eq!(rule_of("HEAD", "/healthz"), Some(Rule::Open));
}

/// The permission table of docs/api.md: its rows, as (method, path, rule
/// word).
fn documented_rules() -> BTreeSet<(String, String, String)> {
    let docs = include_str!("../../../../docs/api.md");
    let section = docs
        .split("\n## Permissions")
        .nth(1)
        .expect("docs/api.md has a Permissions section");
    let table = section.split("\n## ").next().unwrap_or(section);
    table
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line
                .split('|')
                .map(|c| c.trim().trim_matches('`'))
                .collect();
            match cells.as_slice() {
                ["", method, path, rule, ..] if path.starts_with('/') => {
                    Some((method.to_string(), path.to_string(), rule.to_string()))
                }
                _ => None,
            }
        })
        .collect()
}

#[test]
fn docs_api_md_lists_the_rules_of_the_code() {
    let word = |rule: &Rule| match rule {
        Rule::Open => "open",
        Rule::Metrics => "open, or token with --auth-metrics",
        Rule::Token => "token",
        Rule::Admin => "admin",
    };
    let coded: BTreeSet<(String, String, String)> = RULES
        .iter()
        .map(|(m, p, r)| (m.to_string(), p.to_string(), word(r).to_string()))
        .collect();
    assert_eq!(coded.len(), RULES.len(), "a route is listed twice");
    assert_eq!(documented_rules(), coded);
}
