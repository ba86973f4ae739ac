//! The command matrix (issue 17): every write of the HTTP API, sent with an
//! `Idempotency-Key` through a follower and through the leader, replayed,
//! sent again without a key, then carried through snapshots, a snapshot
//! installed on a lagging node, and a restart of the whole cluster. The
//! cluster runs with auth on and every request goes as root, so that each
//! command carries its caller through every one of those encodings too.
//!
//! Why: the answer to a keyed write is remembered in the replicated state,
//! so every kind of answer, success or refusal, must survive every encoding
//! the cluster puts it through: the forward stream from the leader to a
//! follower, the snapshot, the snapshot shipped to a lagging node, and the
//! restart from disk. One that did not (acquire-all's, issue 17) stopped
//! every node at the next snapshot, and answered 503 through followers.
//!
//! **To add a command, add one row to [`ROWS`]** (and, if it needs state to
//! act on, a lease to [`LEASES`] or a step to [`SETUP`]). The test
//! `every_write_route_and_command_has_a_row` reads the router's source and
//! fails for any POST, PUT or DELETE route that no row sends, unless
//! [`NOT_COMMANDS`] says why it proposes nothing; and for any `Command`
//! variant that neither a route of [`COMMANDS_BY_ROUTE`] nor
//! [`INTERNAL_COMMANDS`] accounts for.
//!
//! Templates: `{p}` is the pass (`f`, `l`, `n`), so each pass works on its
//! own names; `{lease:NAME}` is the pass's lease from [`LEASES`]; `{gone}`
//! is a lease id never granted; `{guard}` is the token under which the
//! pass's `holder` holds `guard/{p}`; `{item:N}` and `{claim:N}` are the
//! Nth item `holder` claimed of `mq-{p}` in SETUP, and its claim's token. A check is `pointer=value`: a string
//! compares as text, anything else as JSON; `?u64` and `?id` accept any
//! token and any lease id.

mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use harness::Cluster;
use serde_json::Value;

/// One request: a row's, or a step that sets the stage.
#[derive(Clone, Copy)]
struct Step {
    method: &'static str,
    path: &'static str,
    /// A JSON template; empty: no body.
    body: &'static str,
    status: u16,
    /// A request that waits: it is sent in a task of its own, and the test
    /// goes on once a lease queues for this lock (a name template).
    queued_on: Option<&'static str>,
    /// Whether it takes an `Idempotency-Key` (adding a token does not: a
    /// retry could not show the secret again).
    keyed: bool,
}

const fn post(path: &'static str, body: &'static str, status: u16) -> Step {
    Step {
        method: "POST",
        path,
        body,
        status,
        queued_on: None,
        keyed: true,
    }
}

const fn put(path: &'static str, body: &'static str, status: u16) -> Step {
    Step {
        method: "PUT",
        ..post(path, body, status)
    }
}

const fn delete(path: &'static str, body: &'static str, status: u16) -> Step {
    Step {
        method: "DELETE",
        ..post(path, body, status)
    }
}

impl Step {
    const fn queued_on(self, lock: &'static str) -> Step {
        Step {
            queued_on: Some(lock),
            ..self
        }
    }

    /// Sent without a key in every pass, and never replayed.
    const fn unkeyed(self) -> Step {
        Step {
            keyed: false,
            ..self
        }
    }

    /// `key`, if this step takes one.
    fn key(&self, key: Option<String>) -> Option<String> {
        key.filter(|_| self.keyed)
    }
}

/// One command of the matrix.
struct Row {
    /// What it shows, for failure messages.
    what: &'static str,
    step: Step,
    /// What the answer must hold.
    checks: &'static [&'static str],
    /// For a row that waits in a queue: the step that lets it through.
    unblock: Option<Step>,
}

const fn row(what: &'static str, step: Step, checks: &'static [&'static str]) -> Row {
    Row {
        what,
        step,
        checks,
        unblock: None,
    }
}

impl Row {
    const fn unblocked_by(self, step: Step) -> Row {
        Row {
            unblock: Some(step),
            ..self
        }
    }
}

/// Every write of the API, in the order each pass sends them (later rows
/// may act on what earlier ones did). Refusals are rows too: they are
/// remembered answers like any other. No row undoes an earlier row's grant
/// (releases, proclaims and resigns act on what [`SETUP`] granted), so
/// every grant still holds when it is replayed after the restart. One row a line, unformatted, so the
/// table reads as one.
#[rustfmt::skip]
const ROWS: &[Row] = &[
    // Leases.
    row("grant a lease", post("/v1/leases", r#"{"ttl_ms":600000}"#, 201), &["/lease_id=?id", "/ttl_ms=600000"]),
    row("grant a lease with options", post("/v1/leases", r#"{"ttl_ms":600000,"lock_order":"lexicographic","lock_delay_ms":1000}"#, 201), &["/lease_id=?id"]),
    row("keepalive", post("/v1/leases/{lease:holder}/keepalive", "", 200), &["/lease_id={lease:holder}", "/ttl_ms=600000"]),
    row("keepalive many", post("/v1/leases/keepalive", r#"{"lease_ids":["{lease:holder}","{gone}"]}"#, 200), &["/renewed/0/lease_id={lease:holder}", "/not_found/0={gone}"]),
    // Locks.
    row("acquire", post("/v1/locks/acquire", r#"{"lease_id":"{lease:holder}","name":"x/{p}"}"#, 200), &["/name=x/{p}", "/lease_id={lease:holder}", "/mode=exclusive", "/fencing_token=?u64"]),
    row("acquire shared", post("/v1/locks/acquire", r#"{"lease_id":"{lease:holder}","name":"sh/{p}","mode":"shared"}"#, 200), &["/name=sh/{p}", "/mode=shared", "/fencing_token=?u64"]),
    row("acquire waiting, free", post("/v1/locks/acquire", r#"{"lease_id":"{lease:holder}","name":"w/{p}","wait_ms":5000}"#, 200), &["/name=w/{p}", "/fencing_token=?u64"]),
    row("acquire waiting, queued then granted", post("/v1/locks/acquire", r#"{"lease_id":"{lease:holder}","name":"queue/{p}","wait_ms":30000}"#, 200).queued_on("queue/{p}"), &["/name=queue/{p}", "/lease_id={lease:holder}", "/fencing_token=?u64"])
        .unblocked_by(post("/v1/locks/release", r#"{"lease_id":"{lease:blocker}","name":"queue/{p}"}"#, 200)),
    row("acquire waiting, timed out", post("/v1/locks/acquire", r#"{"lease_id":"{lease:holder}","name":"busy/{p}","wait_ms":300}"#, 409), &["/error/code=wait_timeout"]),
    row("acquire busy", post("/v1/locks/acquire", r#"{"lease_id":"{lease:holder}","name":"busy/{p}"}"#, 409), &["/error/code=lock_busy", "/error/holder_token=?u64"]),
    row("acquire in the other mode", post("/v1/locks/acquire", r#"{"lease_id":"{lease:holder}","name":"shared-held/{p}"}"#, 409), &["/error/code=mode_conflict"]),
    row("acquire against the lease's order", post("/v1/locks/acquire", r#"{"lease_id":"{lease:lexi}","name":"lexi/a/{p}"}"#, 409), &["/error/code=order_violation", "/error/name=lexi/a/{p}", "/error/held=lexi/b/{p}"]),
    row("acquire against the cluster's order", post("/v1/locks/acquire", r#"{"lease_id":"{lease:other}","name":"ord/a/{p}"}"#, 409), &["/error/code=order_violation", "/error/held=ord/b/{p}"]),
    row("acquire closing a cycle", post("/v1/locks/acquire", r#"{"lease_id":"{lease:dla}","name":"dl/2/{p}","wait_ms":1000}"#, 409), &["/error/code=deadlock", "/error/cycle/0/lease_id={lease:dla}", "/error/cycle/1/lease_id={lease:dlb}"]),
    row("acquire for no lease", post("/v1/locks/acquire", r#"{"lease_id":"{gone}","name":"x/{p}"}"#, 404), &["/error/code=lease_not_found"]),
    row("acquire-all", post("/v1/locks/acquire-all", r#"{"lease_id":"{lease:holder}","names":["all/b/{p}","all/a/{p}"]}"#, 200), &["/lease_id={lease:holder}", "/grants/0/name=all/a/{p}", "/grants/1/name=all/b/{p}", "/grants/1/mode=exclusive", "/grants/1/fencing_token=?u64"]),
    row("acquire-all shared", post("/v1/locks/acquire-all", r#"{"lease_id":"{lease:holder}","names":["allsh/a/{p}","allsh/b/{p}"],"mode":"shared"}"#, 200), &["/grants/0/mode=shared", "/grants/1/name=allsh/b/{p}"]),
    row("acquire-all waiting, queued then granted", post("/v1/locks/acquire-all", r#"{"lease_id":"{lease:holder}","names":["queue-all/{p}","qa-free/{p}"],"wait_ms":30000}"#, 200).queued_on("queue-all/{p}"), &["/grants/0/name=qa-free/{p}", "/grants/1/name=queue-all/{p}"])
        .unblocked_by(post("/v1/locks/release", r#"{"lease_id":"{lease:blocker}","name":"queue-all/{p}"}"#, 200)),
    row("acquire-all busy", post("/v1/locks/acquire-all", r#"{"lease_id":"{lease:holder}","names":["ab/{p}","busy/{p}"]}"#, 409), &["/error/code=lock_busy"]),
    row("release", post("/v1/locks/release", r#"{"lease_id":"{lease:holder}","name":"rel/{p}"}"#, 200), &["/released=true"]),
    row("release not held", post("/v1/locks/release", r#"{"lease_id":"{lease:holder}","name":"busy/{p}"}"#, 409), &["/error/code=not_holder"]),
    // Semaphores.
    row("semaphore acquire", post("/v1/semaphores/acquire", r#"{"lease_id":"{lease:holder}","name":"sem/{p}","limit":3,"permits":2}"#, 200), &["/name=sem/{p}", "/permits=2", "/fencing_token=?u64"]),
    row("semaphore acquire waiting, free", post("/v1/semaphores/acquire", r#"{"lease_id":"{lease:other}","name":"sem/{p}","limit":3,"wait_ms":5000}"#, 200), &["/lease_id={lease:other}", "/permits=1"]),
    row("semaphore acquire busy", post("/v1/semaphores/acquire", r#"{"lease_id":"{lease:holder}","name":"sem-busy/{p}","limit":1}"#, 409), &["/error/code=lock_busy", "/error/holder_token=?u64"]),
    row("semaphore acquire, limit mismatch", post("/v1/semaphores/acquire", r#"{"lease_id":"{lease:holder}","name":"sem-busy/{p}","limit":2}"#, 409), &["/error/code=limit_mismatch", "/error/limit=1"]),
    row("semaphore acquire, permits conflict", post("/v1/semaphores/acquire", r#"{"lease_id":"{lease:holder}","name":"sem/{p}","limit":3,"permits":1}"#, 409), &["/error/code=permits_conflict"]),
    row("semaphore release", post("/v1/semaphores/release", r#"{"lease_id":"{lease:other}","name":"sem-rel/{p}"}"#, 200), &["/released=true"]),
    row("semaphore release not held", post("/v1/semaphores/release", r#"{"lease_id":"{lease:holder}","name":"sem-busy/{p}"}"#, 409), &["/error/code=not_holder"]),
    // Elections.
    row("campaign", post("/v1/elections/campaign", r#"{"lease_id":"{lease:holder}","name":"el/{p}","value":"v1"}"#, 200), &["/name=el/{p}", "/leader/lease_id={lease:holder}", "/leader/value=v1", "/leader/fencing_token=?u64"]),
    row("campaign, taken", post("/v1/elections/campaign", r#"{"lease_id":"{lease:holder}","name":"el-taken/{p}","value":"h"}"#, 409), &["/error/code=lock_busy"]),
    row("campaign waiting, timed out", post("/v1/elections/campaign", r#"{"lease_id":"{lease:holder}","name":"el-taken/{p}","value":"h","wait_ms":300}"#, 409), &["/error/code=wait_timeout"]),
    row("proclaim", post("/v1/elections/proclaim", r#"{"lease_id":"{lease:holder}","name":"el-pro/{p}","value":"v2"}"#, 200), &["/name=el-pro/{p}", "/leader/value=v2", "/leader/fencing_token=?u64"]),
    row("proclaim, not leading", post("/v1/elections/proclaim", r#"{"lease_id":"{lease:holder}","name":"el-taken/{p}","value":"h"}"#, 409), &["/error/code=not_leader"]),
    row("resign", post("/v1/elections/resign", r#"{"lease_id":"{lease:holder}","name":"el-gone/{p}"}"#, 200), &["/resigned=true"]),
    row("resign, not leading", post("/v1/elections/resign", r#"{"lease_id":"{lease:holder}","name":"el-taken/{p}"}"#, 409), &["/error/code=not_leader"]),
    // The fenced store.
    row("kv put", put("/v1/kv", r#"{"key":"kv/{p}","value":"v-{p}","fence":{"lock":"guard/{p}","fencing_token":{guard}}}"#, 200), &["/key=kv/{p}", "/fencing_token={guard}"]),
    row("kv put, to delete", put("/v1/kv", r#"{"key":"kv-del/{p}","value":"d","fence":{"lock":"guard/{p}","fencing_token":{guard}}}"#, 200), &["/key=kv-del/{p}"]),
    row("kv delete", delete("/v1/kv", r#"{"key":"kv-del/{p}","fence":{"lock":"guard/{p}","fencing_token":{guard}}}"#, 200), &["/key=kv-del/{p}", "/fencing_token={guard}"]),
    row("kv put, stale token", put("/v1/kv", r#"{"key":"kv/{p}","value":"old","fence":{"lock":"guard/{p}","fencing_token":1}}"#, 409), &["/error/code=stale_token"]),
    row("kv delete, never written", delete("/v1/kv", r#"{"key":"kv-never/{p}","fence":{"lock":"guard/{p}","fencing_token":{guard}}}"#, 404), &["/error/code=key_not_found"]),
    // A release that names its grant's token: another token ends nothing
    // (a late release), its own token ends the grant.
    row("release naming another token", post("/v1/locks/release", r#"{"lease_id":"{lease:holder}","name":"guard/{p}","fencing_token":1}"#, 409), &["/error/code=not_holder"]),
    row("release naming its token", post("/v1/locks/release", r#"{"lease_id":"{lease:holder}","name":"guard/{p}","fencing_token":{guard}}"#, 200), &["/released=true"]),
    // Ending a lease that holds a lock, permits and an election.
    row("revoke", delete("/v1/leases/{lease:doomed}", "", 200), &[r#"/released=["doomed/{p}"]"#, r#"/released_semaphores=["doomed-sem/{p}"]"#, r#"/resigned=["doomed-el/{p}"]"#]),
    row("revoke, no such lease", delete("/v1/leases/{gone}", "", 404), &["/error/code=lease_not_found"]),
    // Tokens (the matrix runs with auth on, as root).
    row("add a token", post("/v1/auth/tokens", r#"{"name":"mx-{p}","permissions":[{"kind":"lock","prefix":"mx/{p}/","access":"write"}],"quotas":{"leases_max":5,"holds_max":6,"kv_keys_max":7}}"#, 201).unkeyed(), &["/name=mx-{p}"]),
    row("add a token, name taken", post("/v1/auth/tokens", r#"{"name":"taken-{p}","permissions":[]}"#, 409).unkeyed(), &["/error/code=token_exists"]),
    row("revoke a token", delete("/v1/auth/tokens/rv-{p}", "", 200), &["/revoked=true"]),
    row("revoke a token, not found", delete("/v1/auth/tokens/never-{p}", "", 404), &["/error/code=token_not_found"]),
    // Work queues: SETUP enqueued four items in mq-{p} and claimed three
    // as `holder` ({item:N} under {claim:N}).
    row("configure a queue", put("/v1/queues/mqc-{p}", r#"{"max_attempts":2,"dead_letter":"mqd-{p}"}"#, 200), &["/queue=mqc-{p}", "/max_attempts=2", "/dead_letter=mqd-{p}"]),
    row("enqueue", post("/v1/queues/mq-new-{p}/items", r#"{"payload":{"n":1}}"#, 201), &["/item_id=?u64", "/seq=0", "/duplicate=false"]),
    row("enqueue with a dedup id", post("/v1/queues/mq-new-{p}/items", r#"{"payload":"d","dedup_id":"d-{p}"}"#, 201), &["/seq=1"]),
    row("enqueue, dedup id again", post("/v1/queues/mq-new-{p}/items", r#"{"payload":"d2","dedup_id":"d-{p}"}"#, 200), &["/seq=1", "/duplicate=true"]),
    row("claim", post("/v1/queues/mq-{p}/claim", r#"{"lease_id":"{lease:other}","visibility_ms":600000}"#, 200), &["/items/0/seq=3", "/items/0/attempt=1", "/items/0/fencing_token=?u64", "/items/0/payload/n=3"]),
    row("claim, none ready", post("/v1/queues/mq-empty-{p}/claim", r#"{"lease_id":"{lease:other}","visibility_ms":1000}"#, 200), &["/items=[]"]),
    row("claim waiting, timed out", post("/v1/queues/mq-empty-{p}/claim", r#"{"lease_id":"{lease:other}","visibility_ms":1000,"wait_ms":300}"#, 200), &["/items=[]"]),
    row("claim for no lease", post("/v1/queues/mq-{p}/claim", r#"{"lease_id":"{gone}","visibility_ms":1000}"#, 404), &["/error/code=lease_not_found"]),
    row("ack", post("/v1/queues/mq-{p}/ack", r#"{"item_id":{item:0},"fencing_token":{claim:0}}"#, 200), &["/item_id={item:0}"]),
    row("extend", post("/v1/queues/mq-{p}/extend", r#"{"item_id":{item:1},"fencing_token":{claim:1},"visibility_ms":600000}"#, 200), &["/item_id={item:1}", "/visible_at_ms=?u64"]),
    row("nack", post("/v1/queues/mq-{p}/nack", r#"{"item_id":{item:2},"fencing_token":{claim:2},"delay_ms":600000}"#, 200), &["/item_id={item:2}", "/dead_lettered=false"]),
    row("ack, stale token", post("/v1/queues/mq-{p}/ack", r#"{"item_id":{item:1},"fencing_token":1}"#, 409), &["/error/code=stale_token", "/error/current_token={claim:1}"]),
    row("ack, no such item", post("/v1/queues/mq-{p}/ack", r#"{"item_id":999999999,"fencing_token":1}"#, 404), &["/error/code=item_not_found"]),
];

/// Each pass's leases, granted through the leader (as SETUP is).
const LEASES: &[(&str, &str)] = &[
    ("holder", r#"{"ttl_ms":600000}"#),
    ("other", r#"{"ttl_ms":600000}"#),
    ("doomed", r#"{"ttl_ms":600000}"#),
    ("blocker", r#"{"ttl_ms":600000}"#),
    ("lexi", r#"{"ttl_ms":600000,"lock_order":"lexicographic"}"#),
    ("dla", r#"{"ttl_ms":600000}"#),
    ("dlb", r#"{"ttl_ms":600000}"#),
    // Expires during the pass, so that expiry and lock-delay are in the
    // log and the snapshots too.
    ("mortal", r#"{"ttl_ms":1200,"lock_delay_ms":500}"#),
];

/// What each pass's rows act on, sent through the leader, each with a key
/// of its own so that it may be retried (see [`send`]).
#[rustfmt::skip]
const SETUP: &[Step] = &[
    post("/v1/locks/acquire", r#"{"lease_id":"{lease:holder}","name":"guard/{p}"}"#, 200),
    post("/v1/locks/acquire", r#"{"lease_id":"{lease:holder}","name":"shared-held/{p}","mode":"shared"}"#, 200),
    post("/v1/locks/acquire", r#"{"lease_id":"{lease:other}","name":"busy/{p}"}"#, 200),
    post("/v1/locks/acquire", r#"{"lease_id":"{lease:other}","name":"ord/b/{p}"}"#, 200),
    post("/v1/locks/acquire", r#"{"lease_id":"{lease:lexi}","name":"lexi/b/{p}"}"#, 200),
    post("/v1/locks/acquire", r#"{"lease_id":"{lease:blocker}","name":"queue/{p}"}"#, 200),
    post("/v1/locks/acquire", r#"{"lease_id":"{lease:blocker}","name":"queue-all/{p}"}"#, 200),
    post("/v1/locks/acquire", r#"{"lease_id":"{lease:doomed}","name":"doomed/{p}"}"#, 200),
    post("/v1/semaphores/acquire", r#"{"lease_id":"{lease:doomed}","name":"doomed-sem/{p}","limit":2}"#, 200),
    post("/v1/elections/campaign", r#"{"lease_id":"{lease:doomed}","name":"doomed-el/{p}","value":"d"}"#, 200),
    post("/v1/semaphores/acquire", r#"{"lease_id":"{lease:other}","name":"sem-busy/{p}","limit":1}"#, 200),
    post("/v1/elections/campaign", r#"{"lease_id":"{lease:other}","name":"el-taken/{p}","value":"o"}"#, 200),
    post("/v1/locks/acquire", r#"{"lease_id":"{lease:holder}","name":"rel/{p}"}"#, 200),
    post("/v1/semaphores/acquire", r#"{"lease_id":"{lease:other}","name":"sem-rel/{p}","limit":2}"#, 200),
    post("/v1/elections/campaign", r#"{"lease_id":"{lease:holder}","name":"el-pro/{p}","value":"v1"}"#, 200),
    post("/v1/elections/campaign", r#"{"lease_id":"{lease:holder}","name":"el-gone/{p}","value":"g"}"#, 200),
    post("/v1/locks/acquire", r#"{"lease_id":"{lease:mortal}","name":"mortal/{p}"}"#, 200),
    post("/v1/locks/acquire", r#"{"lease_id":"{lease:dla}","name":"dl/1/{p}"}"#, 200),
    post("/v1/locks/acquire", r#"{"lease_id":"{lease:dlb}","name":"dl/2/{p}"}"#, 200),
    post("/v1/auth/tokens", r#"{"name":"taken-{p}","permissions":[{"kind":"*","prefix":"","access":"read"}]}"#, 201).unkeyed(),
    post("/v1/auth/tokens", r#"{"name":"rv-{p}","permissions":[]}"#, 201).unkeyed(),
    post("/v1/queues/mq-{p}/items", r#"{"payload":{"n":0}}"#, 201),
    post("/v1/queues/mq-{p}/items", r#"{"payload":{"n":1}}"#, 201),
    post("/v1/queues/mq-{p}/items", r#"{"payload":{"n":2}}"#, 201),
    post("/v1/queues/mq-{p}/items", r#"{"payload":{"n":3}}"#, 201),
    post("/v1/queues/mq-{p}/claim", r#"{"lease_id":"{lease:holder}","visibility_ms":600000,"max":3}"#, 200),
    // A claim that runs out at once, so that the leader's tick is in the
    // log and the snapshots.
    post("/v1/queues/mq-tick-{p}/items", r#"{"payload":"t"}"#, 201),
    post("/v1/queues/mq-tick-{p}/claim", r#"{"lease_id":"{lease:other}","visibility_ms":1}"#, 200),
    // dlb waits for dla's lock until TEARDOWN revokes dlb; dla then asking
    // for dlb's lock closes a cycle.
    post("/v1/locks/acquire", r#"{"lease_id":"{lease:dlb}","name":"dl/1/{p}","wait_ms":60000}"#, 404).queued_on("dl/1/{p}"),
];

/// After a pass's rows: ends the waits SETUP left open.
const TEARDOWN: &[Step] = &[delete("/v1/leases/{lease:dlb}", "", 200)];

/// POST, PUT and DELETE routes that propose nothing of their own, so have
/// no row.
const NOT_COMMANDS: &[(&str, &str)] = &[
    (
        "POST /v1/locks/validate",
        "a linearizable read of one token",
    ),
    (
        "POST /test/faults",
        "the failure tests' fault switch, off outside them",
    ),
    (
        "POST /test/load",
        "a measurement, off outside the failure tests' flag: it proposes \
         grants, acquires, releases and revokes, each with rows of its own \
         route",
    ),
    (
        "POST /v1/cluster/members",
        "a raft membership entry, not a command (tests/membership.rs)",
    ),
    (
        "DELETE /v1/cluster/members/{id}",
        "a raft membership entry, not a command (tests/membership.rs)",
    ),
    (
        "POST /v1/cluster/snapshot",
        "a snapshot of the answering node, not a command",
    ),
];

/// The commands each write route proposes (its own, and the withdrawal of
/// a wait that ran out); keepalives are served from the leader's memory.
const COMMANDS_BY_ROUTE: &[(&str, &[&str])] = &[
    ("POST /v1/leases/{id}/keepalive", &[]),
    ("POST /v1/leases/keepalive", &[]),
    ("POST /v1/leases", &["GrantLease"]),
    ("DELETE /v1/leases/{id}", &["RevokeLease"]),
    ("POST /v1/locks/acquire", &["Acquire", "CancelWait"]),
    (
        "POST /v1/locks/acquire-all",
        &["AcquireAll", "CancelWaitAll"],
    ),
    ("POST /v1/locks/release", &["Release"]),
    (
        "POST /v1/semaphores/acquire",
        &["AcquirePermits", "CancelWait"],
    ),
    ("POST /v1/semaphores/release", &["Release"]),
    ("POST /v1/elections/campaign", &["Campaign", "CancelWait"]),
    ("POST /v1/elections/proclaim", &["Proclaim"]),
    ("POST /v1/elections/resign", &["Resign"]),
    ("PUT /v1/kv", &["KvPut"]),
    ("DELETE /v1/kv", &["KvDelete"]),
    ("POST /v1/auth/tokens", &["AddToken"]),
    ("DELETE /v1/auth/tokens/{name}", &["RevokeToken"]),
    ("PUT /v1/queues/{queue}", &["ConfigureQueue"]),
    ("POST /v1/queues/{queue}/items", &["Enqueue"]),
    (
        "POST /v1/queues/{queue}/claim",
        &["Claim", "CancelClaimWait"],
    ),
    ("POST /v1/queues/{queue}/ack", &["Ack"]),
    ("POST /v1/queues/{queue}/extend", &["ExtendClaim"]),
    ("POST /v1/queues/{queue}/nack", &["Nack"]),
];

/// Commands only the nodes propose, never with a key; the matrix still
/// puts each in the log and the snapshots: the `mortal` lease expires and
/// its lock-delay is lifted, the cluster runs with `--lock-order`, and
/// auth goes on with its root token, and a claim of `mq-tick-{p}` runs
/// out for the leader to tick. `Restore` is the first command of a
/// restored cluster, which tests/backup.rs snapshots and restarts.
const INTERNAL_COMMANDS: &[&str] = &[
    "ExpireLease",
    "LiftLockDelays",
    "SetLockOrder",
    "EnableAuth",
    "Restore",
    "TickQueue",
];

/// Reads that make up the state compared across nodes and restarts: all
/// of it, and each pass's elections, keys and lock timelines.
const STATE_READS: &[&str] = &[
    "/v1/locks?prefix=",
    "/v1/semaphores?prefix=",
    "/v1/leases",
    "/v1/auth/tokens",
];
const PASS_READS: &[&str] = &[
    "/v1/elections?name=el/{p}",
    "/v1/elections?name=el-pro/{p}",
    "/v1/elections?name=el-taken/{p}",
    "/v1/elections?name=el-gone/{p}",
    "/v1/elections?name=doomed-el/{p}",
    "/v1/kv?key=kv/{p}",
    "/v1/kv?key=kv-del/{p}",
    "/v1/locks/history?name=x/{p}",
    "/v1/locks/history?name=queue-all/{p}",
    "/v1/locks/history?name=mortal/{p}",
    "/v1/locks/history?name=guard/{p}",
    "/v1/queues/mq-{p}/items",
    "/v1/queues/mq-new-{p}/items",
    "/v1/queues/mq-tick-{p}/items",
];

/// The root token every request of the matrix is sent with.
const ROOT: &str = "the-command-matrix-root-token";

/// A lease id no one was granted.
const GONE: &str = "0badc0de0badc0de0badc0de0badc0de";

/// Generous bounds for a small shared machine.
const SETTLE: Duration = Duration::from_secs(30);

/// One pass over the rows: through which node, with keys or not.
struct Pass {
    tag: &'static str,
    /// The node the rows go through.
    via: u64,
    /// Where a keyed row is replayed at once; `None`: the pass sends no
    /// keys.
    replay_via: Option<u64>,
    leases: BTreeMap<String, String>,
    guard: u64,
    /// The items `holder` claimed in SETUP, with their claims' tokens.
    claims: Vec<(u64, u64)>,
}

/// A keyed row as first answered, to replay later.
struct Sent {
    what: String,
    method: &'static str,
    path: String,
    body: Option<Value>,
    key: String,
    status: u16,
    answer: Value,
}

/// Sends one request, with an `Idempotency-Key` when `key` is given. A
/// keyed request is sent again while its outcome is unknown (503, or no
/// answer): the key makes that safe, and a leader change on a busy
/// machine must not fail the test. A write that can never be answered
/// (as acquire-all's through a follower before issue 17's fix) still
/// fails, after a few tries.
async fn send(
    http: reqwest::Client,
    url: String,
    method: &'static str,
    body: Option<Value>,
    key: Option<String>,
) -> (u16, Value) {
    let tries = if key.is_some() { 5 } else { 1 };
    let mut answer = (0, Value::Null);
    for _ in 0..tries {
        answer = send_once(http.clone(), url.clone(), method, body.clone(), key.clone()).await;
        if answer.0 != 503 && answer.0 != 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    answer
}

async fn send_once(
    http: reqwest::Client,
    url: String,
    method: &'static str,
    body: Option<Value>,
    key: Option<String>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    harness::send(http.request(method, url), body, key.as_deref()).await
}

/// Fills a template for `pass`; refuses one that names what the pass lacks.
fn fill(template: &str, pass: &Pass) -> Result<String> {
    let mut text = template
        .replace("{p}", pass.tag)
        .replace("{gone}", GONE)
        .replace("{guard}", &pass.guard.to_string());
    for (n, (item, token)) in pass.claims.iter().enumerate() {
        text = text
            .replace(&format!("{{item:{n}}}"), &item.to_string())
            .replace(&format!("{{claim:{n}}}"), &token.to_string());
    }
    for (name, id) in &pass.leases {
        text = text.replace(&format!("{{lease:{name}}}"), id);
    }
    ensure!(
        !text.contains("{lease:"),
        "unknown lease in template {template}"
    );
    Ok(text)
}

/// A step's path and body, filled for `pass`.
fn request_of(step: &Step, pass: &Pass) -> Result<(String, Option<Value>)> {
    let path = fill(step.path, pass)?;
    let body = match step.body {
        "" => None,
        body => Some(
            serde_json::from_str(&fill(body, pass)?)
                .with_context(|| format!("row body is not JSON: {body}"))?,
        ),
    };
    Ok((path, body))
}

/// Checks one `pointer=value` of a row against an answer.
fn check_field(check: &str, answer: &Value, pass: &Pass) -> Result<()> {
    let (pointer, want) = check
        .split_once('=')
        .ok_or_else(|| anyhow!("check `{check}` has no `=`"))?;
    let got = answer
        .pointer(pointer)
        .ok_or_else(|| anyhow!("no {pointer} in {answer}"))?;
    let ok = match want {
        "?u64" => got.as_u64().is_some_and(|t| t > 0),
        "?id" => got
            .as_str()
            .is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())),
        want => {
            let want = fill(want, pass)?;
            match got {
                Value::String(got) => *got == want,
                got => serde_json::from_str::<Value>(&want).ok().as_ref() == Some(got),
            }
        }
    };
    ensure!(ok, "{pointer} is {got}, wanted {want}");
    Ok(())
}

/// Polls node `id`'s view of `lock` (a lock or a semaphore of that name)
/// until some lease waits for it.
async fn wait_queued(cluster: &Cluster, id: u64, lock: &str) -> Result<()> {
    let deadline = Instant::now() + SETTLE;
    loop {
        for kind in ["locks", "semaphores"] {
            let (status, view) = cluster.get(id, &format!("/v1/{kind}?name={lock}")).await;
            let waiting = view["waiters"].as_array().map_or(0, Vec::len);
            if status == 200 && waiting > 0 {
                return Ok(());
            }
        }
        ensure!(Instant::now() < deadline, "no lease ever queued for {lock}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends a step through node `id`; a step that waits is left running in a
/// task once it has queued.
async fn start_step(
    cluster: &Cluster,
    id: u64,
    step: &Step,
    pass: &Pass,
    key: Option<String>,
) -> Result<tokio::task::JoinHandle<(u16, Value)>> {
    let (path, body) = request_of(step, pass)?;
    let task = tokio::spawn(send(
        cluster.http.clone(),
        cluster.url(id, &path),
        step.method,
        body,
        step.key(key),
    ));
    if let Some(lock) = step.queued_on {
        wait_queued(cluster, id, &fill(lock, pass)?).await?;
    }
    Ok(task)
}

/// Sends a step that is no row through node `id` and checks its status.
/// It goes with a key of its own, so that it may be retried.
async fn run_step(cluster: &Cluster, id: u64, step: &Step, pass: &Pass) -> Result<Value> {
    let key = Some(setup_key());
    let (status, answer) = start_step(cluster, id, step, pass, key).await?.await?;
    ensure!(
        status == step.status,
        "{} {} answered {status}, wanted {}: {answer}",
        step.method,
        fill(step.path, pass)?,
        step.status
    );
    Ok(answer)
}

/// A new key for a step that is no row.
fn setup_key() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("setup-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Grants the pass's leases and sets the stage; returns the waits left
/// open, with the status each must end with.
async fn set_up(
    cluster: &Cluster,
    leader: u64,
    pass: &mut Pass,
) -> Result<Vec<(u16, tokio::task::JoinHandle<(u16, Value)>)>> {
    for (name, body) in LEASES {
        let grant = post("/v1/leases", body, 201);
        let answer = run_step(cluster, leader, &grant, pass).await?;
        let id = answer["lease_id"].as_str().context("lease_id")?.to_string();
        pass.leases.insert(name.to_string(), id);
    }
    let mut open = Vec::new();
    for step in SETUP {
        if step.queued_on.is_some() {
            let task = start_step(cluster, leader, step, pass, Some(setup_key())).await?;
            open.push((step.status, task));
        } else {
            let answer = run_step(cluster, leader, step, pass).await?;
            if fill(step.body, pass)?.contains(&format!("\"guard/{}\"", pass.tag)) {
                pass.guard = answer["fencing_token"].as_u64().context("guard token")?;
            }
            if fill(step.path, pass)? == format!("/v1/queues/mq-{}/claim", pass.tag) {
                pass.claims = claims_of(&answer)?;
            }
        }
    }
    Ok(open)
}

/// The items of a claim's answer, with their tokens.
fn claims_of(answer: &Value) -> Result<Vec<(u64, u64)>> {
    let items = answer["items"].as_array().context("claimed items")?;
    items
        .iter()
        .map(|item| {
            let id = item["item_id"].as_u64().context("item_id")?;
            let token = item["fencing_token"].as_u64().context("fencing_token")?;
            Ok((id, token))
        })
        .collect()
}

/// Sends one row through the pass's node, checks the answer and, with a
/// key, replays it through another node.
async fn run_row(cluster: &Cluster, pass: &Pass, index: usize, row: &Row) -> Result<Option<Sent>> {
    let key = row.step.key(
        pass.replay_via
            .map(|_| format!("matrix-{}-{index}", pass.tag)),
    );
    let task = start_step(cluster, pass.via, &row.step, pass, key.clone()).await?;
    if let Some(unblock) = &row.unblock {
        run_step(cluster, pass.via, unblock, pass).await?;
    }
    let (status, answer) = task.await?;
    ensure!(
        status == row.step.status,
        "answered {status}, wanted {}: {answer}",
        row.step.status
    );
    for check in row.checks {
        check_field(check, &answer, pass)?;
    }
    let (Some(key), Some(replay_via)) = (key, pass.replay_via) else {
        return Ok(None);
    };
    let (path, body) = request_of(&row.step, pass)?;
    let sent = Sent {
        what: format!("{} (pass {})", row.what, pass.tag),
        method: row.step.method,
        path,
        body,
        key,
        status,
        answer,
    };
    replay(cluster, replay_via, &sent).await?;
    Ok(Some(sent))
}

/// Sends a keyed request again through node `id`: the first answer must
/// come back.
async fn replay(cluster: &Cluster, id: u64, sent: &Sent) -> Result<()> {
    let url = cluster.url(id, &sent.path);
    let key = Some(sent.key.clone());
    let (status, answer) = send(
        cluster.http.clone(),
        url,
        sent.method,
        sent.body.clone(),
        key,
    )
    .await;
    ensure!(
        (status, &answer) == (sent.status, &sent.answer),
        "replay of {} through node {id} answered {status} {answer}, first {} {}",
        sent.what,
        sent.status,
        sent.answer
    );
    Ok(())
}

/// One pass: set-up, every row, tear-down.
async fn run_pass(cluster: &Cluster, leader: u64, mut pass: Pass) -> Result<Vec<Sent>> {
    let open = set_up(cluster, leader, &mut pass).await?;
    let mut sent = Vec::new();
    for (index, row) in ROWS.iter().enumerate() {
        let keyed = if pass.replay_via.is_some() {
            "with"
        } else {
            "without"
        };
        let context = || {
            let (path, body) = request_of(&row.step, &pass).unwrap_or_default();
            let body = body.map(|b| b.to_string()).unwrap_or_default();
            format!(
                "row {index} `{}` {keyed} a key through node {} (leader {leader}): {} {path} {body}",
                row.what, pass.via, row.step.method
            )
        };
        sent.extend(
            run_row(cluster, &pass, index, row)
                .await
                .with_context(context)?,
        );
    }
    if let Some(grant) = sent.iter().find(|s| s.path == "/v1/leases") {
        mismatched_key_is_refused(cluster, &pass, grant).await?;
    }
    for step in TEARDOWN {
        run_step(cluster, leader, step, &pass).await?;
    }
    for (want, task) in open {
        let (status, answer) = task.await?;
        ensure!(status == want, "a set-up wait answered {status}: {answer}");
    }
    Ok(sent)
}

/// A key sent again with another request is refused, not replayed.
async fn mismatched_key_is_refused(cluster: &Cluster, pass: &Pass, sent: &Sent) -> Result<()> {
    let mut body = sent.body.clone().context("a body to change")?;
    body["ttl_ms"] = Value::from(700_000);
    let url = cluster.url(pass.via, &sent.path);
    let key = Some(sent.key.clone());
    let (status, answer) = send(cluster.http.clone(), url, sent.method, Some(body), key).await;
    ensure!(
        status == 422 && answer["error"]["code"] == "idempotency_mismatch",
        "a reused key with another body answered {status} {answer}"
    );
    Ok(())
}

/// Node `id`'s `/v1/cluster`, waited for until `ready` holds.
async fn view_when(
    cluster: &Cluster,
    id: u64,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let (status, view) = cluster.get(id, "/v1/cluster").await;
        if status == 200 && ready(&view) {
            return Ok(view);
        }
        ensure!(
            Instant::now() < deadline,
            "node {id}: {what} never came: {status} {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn index(view: &Value, field: &str) -> u64 {
    view[field].as_u64().unwrap_or(0)
}

/// A linearizable read through node `id`, retried while the node is not
/// ready yet (a restart, a leader change: 503 or no connection).
async fn read(cluster: &Cluster, id: u64, path: &str) -> Result<(u16, Value)> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let (status, mut body) = cluster.get(id, path).await;
        if status != 0 && status != 503 {
            // When it was read, not what was read.
            if let Some(fields) = body.as_object_mut() {
                fields.remove("now_ms");
            }
            return Ok((status, body));
        }
        ensure!(
            Instant::now() < deadline,
            "node {id} never served {path}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The state as node `id` reads it, by read.
async fn state(cluster: &Cluster, id: u64) -> Result<BTreeMap<String, (u16, Value)>> {
    let mut state = BTreeMap::new();
    let mut paths: Vec<String> = STATE_READS.iter().map(|p| p.to_string()).collect();
    for tag in ["f", "l", "n"] {
        paths.extend(PASS_READS.iter().map(|p| p.replace("{p}", tag)));
    }
    for path in paths {
        let answer = read(cluster, id, &path).await?;
        state.insert(path, answer);
    }
    Ok(state)
}

/// Fails naming the first read where node `id` differs from `want`.
async fn same_state(
    cluster: &Cluster,
    id: u64,
    want: &BTreeMap<String, (u16, Value)>,
    when: &str,
) -> Result<()> {
    let got = state(cluster, id).await?;
    for (path, want) in want {
        let got = &got[path];
        ensure!(
            got == want,
            "{when}: node {id} reads {path} as {} {}, before: {} {}",
            got.0,
            got.1,
            want.0,
            want.1
        );
    }
    Ok(())
}

/// The first number on a metric's line in `/metrics` of node `id`.
async fn metric(cluster: &Cluster, id: u64, name: &str) -> Result<f64> {
    let value = cluster.metric(id, name).await;
    value.with_context(|| format!("no {name} on node {id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_write_survives_forwarding_snapshots_and_restarts() {
    let started = Instant::now();
    // A snapshot every 20 entries, and a cluster lock order, which the
    // leader proposes into the log itself.
    let args = ["--snapshot-logs", "20", "--lock-order", "ord/a/,ord/b/"];
    let mut cluster = Cluster::start_auth(3, ROOT, &args).await;
    if let Err(e) = run(&mut cluster).await {
        // A panic, so that the harness prints the nodes' logs.
        panic!("{e:#}");
    }
    eprintln!("command matrix: passed in {:.1?}", started.elapsed());
}

async fn run(cluster: &mut Cluster) -> Result<()> {
    let leader = cluster.wait_leader().await;
    let followers = cluster.followers_of(leader);
    let (follower, lagging) = (followers[0], followers[1]);
    // One follower misses every command, so that it must catch up from a
    // snapshot that holds them all.
    let lagged_at = index(
        &view_when(cluster, lagging, "a view", |_| true).await?,
        "applied_index",
    );
    cluster.kill(lagging);
    wait_lock_order(cluster, leader).await?;
    let mut sent = Vec::new();
    let passes = [
        ("f", follower, Some(leader)),
        ("l", leader, Some(follower)),
        ("n", follower, None),
    ];
    for (tag, via, replay_via) in passes {
        let pass = Pass {
            tag,
            via,
            replay_via,
            leases: BTreeMap::new(),
            guard: 0,
            claims: Vec::new(),
        };
        sent.extend(run_pass(cluster, leader, pass).await?);
    }
    eprintln!("{} keyed requests answered, replayed once each", sent.len());
    let before = snapshot_and_record(cluster, leader, follower, lagged_at).await?;
    catch_up(cluster, lagging, &before).await?;
    restart_all(cluster, &before, &sent).await
}

/// Waits until the leader has written its `--lock-order` into the state,
/// which a row relies on.
async fn wait_lock_order(cluster: &Cluster, leader: u64) -> Result<()> {
    let lease = cluster.lease(leader, 600_000).await;
    let (status, answer) = cluster.acquire(leader, &lease, "ord/b/probe", 0).await;
    ensure!(status == 200, "probe acquire: {status} {answer}");
    let deadline = Instant::now() + SETTLE;
    loop {
        let (status, answer) = cluster.acquire(leader, &lease, "ord/a/probe", 0).await;
        if status == 409 && answer["error"]["code"] == "order_violation" {
            break;
        }
        ensure!(status == 200, "probe acquire: {status} {answer}");
        let (status, answer) = cluster.release(leader, &lease, "ord/a/probe").await;
        ensure!(status == 200, "probe release: {status} {answer}");
        ensure!(Instant::now() < deadline, "the lock order never came");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let path = format!("/v1/leases/{lease}");
    let (status, answer) = cluster
        .request(reqwest::Method::DELETE, leader, &path, None)
        .await;
    ensure!(status == 200, "probe revoke: {status} {answer}");
    Ok(())
}

/// Writes filler past two snapshots, checks that the live nodes snapshot
/// past every command and that the leader purges the lagging node's
/// entries, and records the state.
async fn snapshot_and_record(
    cluster: &Cluster,
    leader: u64,
    follower: u64,
    lagged_at: u64,
) -> Result<BTreeMap<String, (u16, Value)>> {
    // The mortal leases must be gone and their lock-delays lifted first:
    // the state is compared later, when they could no longer change.
    let deadline = Instant::now() + SETTLE;
    while read(cluster, leader, "/v1/locks?prefix=mortal/").await?.1["locks"]
        != Value::Array(vec![])
    {
        ensure!(Instant::now() < deadline, "the mortal leases never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let matrix_end = index(
        &view_when(cluster, leader, "a view", |_| true).await?,
        "applied_index",
    );
    // Snapshots are paced by the table's size as well as by
    // `--snapshot-logs`: fill the log until both nodes took one past the
    // matrix (bounded).
    for filler in 0..FILLERS_MAX {
        let lease = cluster.lease(leader, 600_000).await;
        let path = format!("/v1/leases/{lease}");
        let (status, answer) = cluster
            .request(reqwest::Method::DELETE, leader, &path, None)
            .await;
        ensure!(status == 200, "filler revoke: {status} {answer}");
        if filler % 10 == 9 && snapshotted_past(cluster, [leader, follower], matrix_end).await {
            break;
        }
    }
    for id in [leader, follower] {
        let view = view_when(cluster, id, "a snapshot past the matrix", |view| {
            index(view, "snapshot_index") > matrix_end
        })
        .await?;
        eprintln!(
            "node {id}: matrix ends at {matrix_end}, snapshot at {}",
            view["snapshot_index"]
        );
    }
    let view = view_when(cluster, leader, "a purge past the lagging node", |view| {
        index(view, "purged_index") > lagged_at
    })
    .await?;
    eprintln!(
        "leader {leader} purged to {}; the lagging node stopped at {lagged_at}",
        view["purged_index"]
    );
    let before = state(cluster, leader).await?;
    same_state(cluster, follower, &before, "before the restarts").await?;
    Ok(before)
}

/// The most lease grants and revokes the matrix adds to reach a snapshot.
const FILLERS_MAX: usize = 2_000;

/// Whether every node of `ids` took a snapshot past `index`.
async fn snapshotted_past(cluster: &Cluster, ids: [u64; 2], past: u64) -> bool {
    for id in ids {
        let (status, view) = cluster.get(id, "/v1/cluster").await;
        if status != 200 || index(&view, "snapshot_index") <= past {
            return false;
        }
    }
    true
}

/// Brings the lagging node back: it must install a snapshot and read the
/// same state.
async fn catch_up(
    cluster: &mut Cluster,
    lagging: u64,
    before: &BTreeMap<String, (u16, Value)>,
) -> Result<()> {
    cluster.restart(lagging);
    let leader = cluster.wait_leader().await;
    let target = index(
        &view_when(cluster, leader, "a view", |_| true).await?,
        "applied_index",
    );
    view_when(cluster, lagging, "catching up", |view| {
        index(view, "applied_index") >= target
    })
    .await?;
    let installed = metric(cluster, lagging, "corral_raft_snapshots_installed_total").await?;
    ensure!(
        installed >= 1.0,
        "node {lagging} caught up without a snapshot"
    );
    eprintln!("node {lagging} caught up to {target}, {installed} snapshot(s) installed");
    same_state(cluster, lagging, before, "on the node that lagged").await
}

/// Kills every node and starts them again: every node must read the same
/// state, and every keyed request must be answered as the first time.
async fn restart_all(
    cluster: &mut Cluster,
    before: &BTreeMap<String, (u16, Value)>,
    sent: &[Sent],
) -> Result<()> {
    cluster.restart_all();
    cluster.wait_leader().await;
    for id in [1, 2, 3] {
        same_state(cluster, id, before, "after the full restart").await?;
    }
    for id in [1, 2, 3] {
        for sent in sent {
            replay(cluster, id, sent)
                .await
                .context("after the full restart")?;
        }
    }
    // The replays applied nothing.
    same_state(cluster, 1, before, "after the replays").await
}

/// The text of a call's arguments: from just after its `(` to the
/// matching `)`.
fn call_args(text: &str) -> Option<&str> {
    let mut depth = 1;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 1 => return Some(&text[..i]),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The HTTP methods in a route's handlers, e.g. `get(show).delete(revoke)`.
fn methods_in(handlers: &str) -> Vec<String> {
    let word_char = |c: char| c.is_alphanumeric() || c == '_';
    handlers
        .match_indices('(')
        .filter_map(|(i, _)| {
            let before = &handlers[..i];
            let start = before.rfind(|c| !word_char(c)).map_or(0, |j| j + 1);
            let word = &before[start..];
            matches!(word, "get" | "post" | "put" | "delete" | "patch").then(|| word.to_uppercase())
        })
        .collect()
}

/// Every `METHOD path` the router's source declares, by file; a path that
/// is a constant keeps the constant's name.
fn declared_routes() -> Result<Vec<(String, String)>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corral-server/src/routes");
    let mut routes = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let text = std::fs::read_to_string(&path)?;
        for (at, _) in text.match_indices(".route(") {
            let args = call_args(&text[at + ".route(".len()..]).context("unclosed .route(")?;
            let (route, handlers) = args.split_once(',').context("a route without handlers")?;
            let route = route.trim().trim_matches('"');
            for method in methods_in(handlers) {
                routes.push((file.clone(), format!("{method} {route}")));
            }
        }
    }
    Ok(routes)
}

/// Whether a row's `METHOD path` template is served by `route`: literal
/// segments equal, and any segment where the route takes a parameter.
fn serves(route: &str, row: &str) -> bool {
    let (route, row) = (route.split(['/', ' ']), row.split(['/', ' ']));
    route.clone().count() == row.clone().count()
        && route.zip(row).all(|(r, w)| r == w || r.starts_with('{'))
}

/// The route a row goes to: of those that serve it, the one with the most
/// literal segments, as the router picks.
fn route_of<'a>(routes: &'a [String], row: &Row) -> Option<&'a String> {
    let row = format!("{} {}", row.step.method, row.step.path);
    let literal = |route: &&String| route.split('/').filter(|s| !s.starts_with('{')).count();
    routes
        .iter()
        .filter(|route| serves(route, &row))
        .max_by_key(literal)
}

/// The variants of `corral_state::Command`, from its source.
fn command_variants() -> Result<Vec<String>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../corral-state/src/command.rs"
    );
    let text = std::fs::read_to_string(path).context(path)?;
    let body = text
        .split_once("pub enum Command {")
        .context("no enum Command")?
        .1;
    let body = body.split_once("\n}").context("enum Command unclosed")?.0;
    Ok(body
        .lines()
        .filter(|line| line.starts_with("    ") && !line.starts_with("     "))
        .map(|line| line.trim())
        .filter(|line| line.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(|line| {
            line.split(|c: char| !c.is_alphanumeric())
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect())
}

/// A write route, or a command, that the matrix does not send is a gap:
/// this fails until it has a row (or a reason in [`NOT_COMMANDS`] or
/// [`INTERNAL_COMMANDS`]).
#[test]
fn every_write_route_and_command_has_a_row() -> Result<()> {
    let declared = declared_routes()?;
    // The peer routes (`/raft/*`, named by constants) serve other nodes,
    // not clients; any other route must be spelled out.
    let client: Vec<String> = declared
        .iter()
        .filter(|(file, _)| file != "peer.rs")
        .map(|(_, route)| route.clone())
        .collect();
    if let Some(route) = client.iter().find(|r| !r.contains(" /")) {
        bail!("route {route} is not a literal path; teach this test to read it");
    }
    ensure!(
        client.iter().any(|r| r == "POST /v1/locks/acquire-all"),
        "the router's source was not read right: {client:?}"
    );
    let mut covered = Vec::new();
    for row in ROWS {
        let route = route_of(&client, row)
            .with_context(|| format!("row `{}` goes to no route", row.what))?;
        covered.push(route.clone());
    }
    let not_commands: Vec<&str> = NOT_COMMANDS.iter().map(|(route, _)| *route).collect();
    let writes = client.iter().filter(|r| !r.starts_with("GET "));
    let missing: Vec<&String> = writes
        .filter(|r| !covered.contains(r) && !not_commands.contains(&r.as_str()))
        .collect();
    ensure!(
        missing.is_empty(),
        "write routes with no row in ROWS: {missing:?}"
    );
    for route in not_commands {
        ensure!(
            client.iter().any(|r| r == route),
            "NOT_COMMANDS names no route {route}"
        );
    }
    let mut mapped: Vec<&str> = COMMANDS_BY_ROUTE.iter().map(|(route, _)| *route).collect();
    mapped.sort();
    covered.sort();
    covered.dedup();
    ensure!(
        mapped == covered,
        "COMMANDS_BY_ROUTE {mapped:?} != routes of ROWS {covered:?}"
    );
    let known: Vec<&str> = COMMANDS_BY_ROUTE
        .iter()
        .flat_map(|(_, commands)| commands.iter().copied())
        .chain(INTERNAL_COMMANDS.iter().copied())
        .collect();
    let variants = command_variants()?;
    ensure!(
        variants.len() >= 10,
        "enum Command was not read right: {variants:?}"
    );
    let unsent: Vec<&String> = variants
        .iter()
        .filter(|v| !known.contains(&v.as_str()))
        .collect();
    ensure!(
        unsent.is_empty(),
        "commands no row or INTERNAL_COMMANDS accounts for: {unsent:?}"
    );
    let stale: Vec<&&str> = known
        .iter()
        .filter(|k| !variants.iter().any(|v| v == *k))
        .collect();
    ensure!(stale.is_empty(), "no such commands: {stale:?}");
    Ok(())
}
