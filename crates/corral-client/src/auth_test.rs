use corral_api::{AddTokenRequest, ErrorKind};

use super::*;
use crate::test_server::{answer_once, body_of};
use crate::{Access, Scope};

#[test]
fn token_paths_are_one_encoded_segment() {
    assert_eq!(token_path("ci-1.a_b").unwrap(), "/v1/auth/tokens/ci-1.a_b");
    assert_eq!(token_path("a/b c").unwrap(), "/v1/auth/tokens/a%2Fb%20c");
    assert_eq!(token_path("a..").unwrap(), "/v1/auth/tokens/a..");
    for name in ["", ".", ".."] {
        assert!(
            matches!(token_path(name), Err(Error::InvalidArgument(_))),
            "{name:?}"
        );
    }
}

#[tokio::test]
async fn every_request_carries_the_token_and_a_401_is_unauthenticated() {
    let body = r#"{"error":{"code":"unauthenticated","message":"this cluster needs a token"}}"#;
    let (endpoint, request) = answer_once("401 Unauthorized", body).await;
    let client = client(&endpoint).with_token("corral_s3cret").unwrap();
    match client.list_tokens().await {
        Err(Error::Unauthenticated(message)) => {
            assert_eq!(message, "this cluster needs a token")
        }
        other => panic!("expected unauthenticated, got {other:?}"),
    }
    let request = request.await.unwrap();
    assert!(
        request.starts_with("GET /v1/auth/tokens HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request
            .to_ascii_lowercase()
            .contains("\r\nauthorization: bearer corral_s3cret\r\n"),
        "{request}"
    );
}

#[tokio::test]
async fn a_client_without_a_token_sends_none() {
    let (endpoint, request) = answer_once("200 OK", r#"{"tokens":[]}"#).await;
    let list = client(&endpoint).list_tokens().await.unwrap();
    assert!(list.tokens.is_empty());
    let request = request.await.unwrap().to_ascii_lowercase();
    assert!(!request.contains("authorization"), "{request}");
}

#[tokio::test]
async fn a_403_is_permission_denied() {
    let body = r#"{"error":{"code":"permission_denied","message":"permission denied: no"}}"#;
    let (endpoint, request) = answer_once("403 Forbidden", body).await;
    let client = client(&endpoint).with_token("t0ken").unwrap();
    match client.revoke_token("ci/x").await {
        Err(error @ Error::PermissionDenied(_)) => {
            assert_eq!(error.to_string(), "permission denied: no");
            assert!(!error.is_transient());
        }
        other => panic!("expected permission denied, got {other:?}"),
    }
    let request = request.await.unwrap();
    assert!(
        request.starts_with("DELETE /v1/auth/tokens/ci%2Fx HTTP/1.1\r\n"),
        "{request}"
    );
    // A revoke is a write like any other: retried under one key.
    let head = request.to_ascii_lowercase();
    assert!(head.contains("\r\nidempotency-key: "), "{request}");
}

#[tokio::test]
async fn add_token_sends_permissions_and_quotas_and_reads_the_secret() {
    let (endpoint, request) =
        answer_once("201 Created", r#"{"name":"ci","token":"corral_ab12"}"#).await;
    let permissions = vec![Permission {
        kind: Scope::Lock,
        prefix: "ci/".into(),
        access: Access::Write,
    }];
    let quotas = Quotas {
        leases_max: 1,
        holds_max: 2,
        kv_keys_max: 3,
    };
    let added = client(&endpoint)
        .add_token("ci", permissions.clone(), Some(quotas))
        .await
        .unwrap();
    assert_eq!(
        (added.name.as_str(), added.token.as_str()),
        ("ci", "corral_ab12")
    );
    let request = request.await.unwrap();
    assert!(
        request.starts_with("POST /v1/auth/tokens HTTP/1.1\r\n"),
        "{request}"
    );
    // The cluster refuses a key on an add.
    let head = request.to_ascii_lowercase();
    assert!(!head.contains("idempotency-key"), "{request}");
    let sent: AddTokenRequest = serde_json::from_str(body_of(&request)).unwrap();
    let expected = AddTokenRequest {
        name: "ci".into(),
        permissions,
        quotas: Some(quotas),
    };
    assert_eq!(sent, expected);
}

#[tokio::test]
async fn token_refusals_keep_their_kind() {
    let body = r#"{"error":{"code":"token_exists","message":"a token with that name exists"}}"#;
    let (endpoint, _request) = answer_once("409 Conflict", body).await;
    let answer = client(&endpoint).add_token("ci", Vec::new(), None).await;
    assert!(
        matches!(
            answer,
            Err(Error::Refused {
                kind: ErrorKind::TokenExists,
                ..
            })
        ),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_token_named_dot_dot_is_refused_before_sending() {
    // No server: nothing may be sent.
    let client = client("127.0.0.1:9");
    for name in [".", ".."] {
        let answer = client.add_token(name, Vec::new(), None).await;
        assert!(
            matches!(answer, Err(Error::InvalidArgument(_))),
            "{answer:?}"
        );
    }
}

#[tokio::test]
async fn list_tokens_reads_permissions_and_quotas() {
    let body = r#"{"tokens":[
        {"name":"ci","permissions":[{"kind":"*","prefix":"","access":"read"}],
         "quotas":{"leases_max":1,"holds_max":2,"kv_keys_max":3},"created_at_ms":5},
        {"name":"root","permissions":[{"kind":"*","prefix":"","access":"admin"}],
         "created_at_ms":1}]}"#;
    let (endpoint, _request) = answer_once("200 OK", body).await;
    let list = client(&endpoint).list_tokens().await.unwrap();
    let names: Vec<&str> = list.tokens.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["ci", "root"]);
    assert_eq!(list.tokens[0].quotas.map(|q| q.holds_max), Some(2));
    assert_eq!(list.tokens[1].quotas, None);
    assert_eq!(list.tokens[1].permissions[0].kind, Scope::Any);
}

/// A quick-to-give-up client of `endpoint`.
fn client(endpoint: &str) -> Client {
    crate::test_server::client(&[endpoint])
}
