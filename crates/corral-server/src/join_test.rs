//! The join handshake of a node started with `--join`: it takes the
//! cluster's identity once, from a join meant for it, and keeps it.

use axum::body::Body;
use axum::http::Request;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::join::{router, Waiting, PATH_JOIN};
use crate::test_support::{default_config, TempDir};

async fn join(router: &axum::Router, cluster: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = Request::post(PATH_JOIN).header("content-type", "application/json");
    if let Some(id) = cluster {
        request = request.header(corral_raft::CLUSTER_HEADER, id);
    }
    let request = request
        .body(Body::from(body.to_string()))
        .expect("a request");
    let response = router.clone().oneshot(request).await.expect("an answer");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await;
    let body = bytes.ok().and_then(|b| serde_json::from_slice(&b).ok());
    (status, body.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_joining_node_takes_one_identity_from_a_join_meant_for_it() {
    let dir = TempDir::new("join");
    let config = default_config(&dir.0);
    let (waiting, mut done) = Waiting::new(&config);
    let router = router(waiting);

    let (status, body) = join(&router, Some("c1"), json!({"node_id": 2})).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (502, &json!("join_failed"))
    );
    let (status, _) = join(&router, None, json!({"node_id": 1})).await;
    assert_eq!(status, 400, "a join without the cluster's identity");
    let auth = json!({"node_id": 1, "auth_enabled": true});
    let (status, body) = join(&router, Some("c1"), auth).await;
    assert_eq!(status, 502, "auth needs peers apart: {body}");
    assert!(!*done.borrow_and_update(), "nothing taken yet");

    let (status, body) = join(&router, Some("c1"), json!({"node_id": 1})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["node_id"], 1);
    assert!(*done.borrow_and_update(), "the node goes on to start");
    let kept = crate::identity::stored(&dir.0).expect("readable");
    assert_eq!(kept.as_deref(), Some("c1"));
    // The same join again is answered alike; another cluster's is refused.
    let (status, _) = join(&router, Some("c1"), json!({"node_id": 1})).await;
    assert_eq!(status, 200);
    let (status, _) = join(&router, Some("c2"), json!({"node_id": 1})).await;
    assert_eq!(status, 502);
}
