//! `/v1/kv`: fenced writes, deletes and reads of the key-value store.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use corral_api::{
    KvDeleteRequest, KvPutRequest, KvValue, KvWriteResponse, KV_BODY_BYTES_MAX, KV_VALUE_BYTES_MAX,
};
use corral_state::{Access, Command, LockName, Refusal, Scope};
use serde::Deserialize;

use super::answer::propose_as;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::idempotency::{scope, IdempotencyKey, Origin};
use crate::json::{JsonBody, QueryOf};
use crate::node::Node;

pub(super) fn router() -> Router<Arc<Node>> {
    Router::new().route("/v1/kv", get(show).put(put).delete(delete))
}

async fn put(
    State(node): State<Arc<Node>>,
    key: IdempotencyKey,
    JsonBody(request): JsonBody<KvPutRequest, KV_BODY_BYTES_MAX>,
) -> Result<Json<KvWriteResponse>, ApiError> {
    if request.value.len() > KV_VALUE_BYTES_MAX {
        return Err(ApiError::invalid(format!(
            "field `value`: must be at most {KV_VALUE_BYTES_MAX} bytes, got {}",
            request.value.len()
        )));
    }
    let origin = key.for_request(&node, scope::KV_PUT, &request);
    let command = Command::KvPut {
        key: request.key,
        value: request.value,
        fence: request.fence,
        keys_max: node.kv_keys_max,
        bytes_max: node.kv_bytes_max,
    };
    write(&node, command, origin).await
}

async fn delete(
    State(node): State<Arc<Node>>,
    key: IdempotencyKey,
    JsonBody(request): JsonBody<KvDeleteRequest>,
) -> Result<Json<KvWriteResponse>, ApiError> {
    let origin = key.for_request(&node, scope::KV_DELETE, &request);
    let command = Command::KvDelete {
        key: request.key,
        fence: request.fence,
    };
    write(&node, command, origin).await
}

async fn write(
    node: &Node,
    command: Command,
    origin: Origin,
) -> Result<Json<KvWriteResponse>, ApiError> {
    propose_as(node, command, origin).await.map(Json)
}

#[derive(Deserialize)]
struct KeyQuery {
    key: String,
}

async fn show(
    State(node): State<Arc<Node>>,
    caller: Caller,
    QueryOf(query): QueryOf<KeyQuery>,
) -> Result<Json<KvValue>, ApiError> {
    let key =
        LockName::new(query.key).map_err(|e| ApiError::invalid(format!("query `key`: {e}")))?;
    let state = node.read_linearized(&caller).await?;
    caller.require(&state.table, Scope::Kv, key.as_str(), Access::Read)?;
    let record = state.table.fenced_value(&key).ok_or(Refusal::KeyNotFound)?;
    let value = record.value.clone().ok_or(Refusal::KeyNotFound)?;
    Ok(Json(KvValue {
        key,
        value,
        fencing_token: record.fencing_token,
        lock: record.lock.clone(),
    }))
}
