//! The permission rule of every route, in one table: docs/api.md lists the
//! same table, and a test holds the two (and the router) together. A route
//! missing here is refused with 403, never served unchecked.

/// What a route asks of its caller before its handler runs. Handlers check
/// more where the rule says so: the resource a request names, and the
/// lease it uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rule {
    /// No token: health, readiness, the UI page, and the peer endpoints
    /// (which peer mTLS guards, on their own listener).
    Open,
    /// Open, unless `--auth-metrics` asks for a token.
    Metrics,
    /// Any token the cluster knows; the handler (and apply) check the
    /// named resource and the lease's owner.
    Token,
    /// A cluster admin's token: `admin` on `*` with the empty prefix.
    Admin,
}

/// Every route: method, path as the router spells it, rule.
pub(crate) const RULES: &[(&str, &str, Rule)] = &[
    ("GET", "/healthz", Rule::Open),
    ("GET", "/readyz", Rule::Open),
    ("GET", "/ui", Rule::Open),
    ("GET", "/metrics", Rule::Metrics),
    ("GET", "/v1/cluster", Rule::Token),
    ("POST", "/v1/leases", Rule::Token),
    ("GET", "/v1/leases", Rule::Token),
    ("GET", "/v1/leases/{id}", Rule::Token),
    ("DELETE", "/v1/leases/{id}", Rule::Token),
    ("POST", "/v1/leases/{id}/keepalive", Rule::Token),
    ("POST", "/v1/leases/keepalive", Rule::Token),
    ("GET", "/v1/locks", Rule::Token),
    ("POST", "/v1/locks/acquire", Rule::Token),
    ("POST", "/v1/locks/acquire-all", Rule::Token),
    ("POST", "/v1/locks/release", Rule::Token),
    ("POST", "/v1/locks/validate", Rule::Token),
    ("GET", "/v1/locks/history", Rule::Token),
    ("GET", "/v1/semaphores", Rule::Token),
    ("POST", "/v1/semaphores/acquire", Rule::Token),
    ("POST", "/v1/semaphores/release", Rule::Token),
    ("GET", "/v1/elections", Rule::Token),
    ("GET", "/v1/elections/observe", Rule::Token),
    ("POST", "/v1/elections/campaign", Rule::Token),
    ("POST", "/v1/elections/proclaim", Rule::Token),
    ("POST", "/v1/elections/resign", Rule::Token),
    ("GET", "/v1/kv", Rule::Token),
    ("PUT", "/v1/kv", Rule::Token),
    ("DELETE", "/v1/kv", Rule::Token),
    ("GET", "/v1/queues", Rule::Token),
    ("GET", "/v1/queues/{queue}", Rule::Token),
    ("PUT", "/v1/queues/{queue}", Rule::Token),
    ("GET", "/v1/queues/{queue}/items", Rule::Token),
    ("POST", "/v1/queues/{queue}/items", Rule::Token),
    ("POST", "/v1/queues/{queue}/claim", Rule::Token),
    ("POST", "/v1/queues/{queue}/ack", Rule::Token),
    ("POST", "/v1/queues/{queue}/extend", Rule::Token),
    ("POST", "/v1/queues/{queue}/nack", Rule::Token),
    ("GET", "/v1/auth/tokens", Rule::Admin),
    ("POST", "/v1/auth/tokens", Rule::Admin),
    ("DELETE", "/v1/auth/tokens/{name}", Rule::Admin),
    ("GET", "/v1/snapshot", Rule::Admin),
    ("POST", "/v1/cluster/snapshot", Rule::Admin),
    ("GET", "/v1/cluster/members", Rule::Admin),
    ("POST", "/v1/cluster/members", Rule::Admin),
    ("DELETE", "/v1/cluster/members/{id}", Rule::Admin),
    ("POST", "/test/faults", Rule::Admin),
    ("POST", "/test/load", Rule::Admin),
    ("POST", "/raft/append", Rule::Open),
    ("POST", "/raft/append-stream", Rule::Open),
    ("POST", "/raft/vote", Rule::Open),
    ("POST", "/raft/snapshot", Rule::Open),
    ("POST", "/raft/snapshot-chunk", Rule::Open),
    ("POST", "/raft/join", Rule::Open),
    ("POST", "/raft/propose-stream", Rule::Open),
    ("POST", "/raft/read-index", Rule::Open),
    ("POST", "/raft/keepalive", Rule::Open),
    ("GET", "/raft/member", Rule::Open),
];

/// The rule of `method` on the route `path`; `None` for a route missing
/// from the table. `HEAD` is served by `GET` routes, under their rule.
pub(crate) fn rule_of(method: &str, path: &str) -> Option<Rule> {
    let method = if method == "HEAD" { "GET" } else { method };
    RULES
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, rule)| *rule)
}
