//! A real corral cluster for integration tests: each node is a separate
//! process of the built `corral` binary, on a free loopback port, with its
//! RocksDB in a temporary folder.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The nodes' log filter unless a test asks for another.
const DEFAULT_LOG: &str = "info,openraft=warn";

/// Generous: the test machine is small and shared.
pub(crate) const LEADER_TIMEOUT: Duration = Duration::from_secs(20);

/// One node process.
pub(crate) struct NodeProc {
    pub id: u64,
    /// Where it serves clients (and peers, unless `peer_addr`).
    pub addr: String,
    /// Where it serves peers, when apart from clients (`--peer-listen`).
    pub peer_addr: Option<String>,
    pub data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    /// Started with `--join` instead of `--initial-cluster`.
    joins: bool,
}

/// What makes a node's data folder before it first starts: given the
/// node's id and the folder.
pub(crate) type Prepare<'a> = &'a dyn Fn(u64, &std::path::Path);

/// A cluster of node processes; dropping it kills them all.
pub(crate) struct Cluster {
    pub nodes: Vec<NodeProc>,
    spec: String,
    extra_args: Vec<String>,
    rust_log: String,
    dir: tempfile::TempDir,
    pub http: reqwest::Client,
    /// `http` or, for clusters that serve clients over TLS, `https`.
    scheme: &'static str,
    /// Files the nodes read, removed with the cluster.
    files: Vec<tempfile::TempPath>,
}

/// A free loopback port for a node, below the kernel's ephemeral range
/// (32768 and up), so that the clients' own outgoing connections cannot take
/// it between this check and the node's bind. Each test process starts at
/// its own offset, and takes the ports in turn.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 200) as u16 * 50;
    for _ in 0..10_000 {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % 12_000;
        let port = 20_000 + (base - 20_000 + offset) % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port below 32000");
}

impl Cluster {
    /// Starts `n` nodes and waits until they agree on a leader.
    pub(crate) async fn start(n: u64) -> Cluster {
        Cluster::start_with(n, &[]).await
    }

    /// Starts `n` nodes with extra `corral server` flags.
    pub(crate) async fn start_with(n: u64, extra_args: &[&str]) -> Cluster {
        Cluster::start_logging(n, extra_args, DEFAULT_LOG).await
    }

    /// Starts `n` nodes with extra flags, logging by the `RUST_LOG` filter
    /// `rust_log`.
    pub(crate) async fn start_logging(n: u64, extra_args: &[&str], rust_log: &str) -> Cluster {
        Cluster::start_nodes(n, extra_args, rust_log, false, None, None).await
    }

    /// Starts `n` nodes that serve their peers apart (`--peer-listen`).
    pub(crate) async fn start_apart(n: u64, extra_args: &[&str]) -> Cluster {
        Cluster::start_nodes(n, extra_args, DEFAULT_LOG, true, None, None).await
    }

    /// Starts `n` nodes after `prepare` has made each one's data folder
    /// (given the node's id and the folder).
    pub(crate) async fn start_prepared(n: u64, prepare: Prepare<'_>) -> Cluster {
        Cluster::start_nodes(n, &[], DEFAULT_LOG, false, None, Some(prepare)).await
    }

    /// Starts `n` nodes that serve peers apart and clients over TLS (the
    /// flags in `extra_args`), talking to them with `https_client`.
    pub(crate) async fn start_tls(
        n: u64,
        extra_args: &[&str],
        https_client: reqwest::Client,
    ) -> Cluster {
        let http = Some((https_client, "https"));
        Cluster::start_nodes(n, extra_args, DEFAULT_LOG, true, http, None).await
    }

    /// Starts `n` nodes that serve peers apart, with auth on and
    /// `root_secret` as the root token, which `http` sends with every
    /// request (a request's own `Authorization` header wins).
    pub(crate) async fn start_auth(n: u64, root_secret: &str, extra_args: &[&str]) -> Cluster {
        let file = tempfile::NamedTempFile::new().expect("root token file");
        std::fs::write(file.path(), root_secret).expect("write the root token");
        let path = file.into_temp_path();
        let mut args = vec![
            "--auth-root-token-file",
            path.to_str().expect("a UTF-8 path"),
        ];
        args.extend_from_slice(extra_args);
        let mut headers = reqwest::header::HeaderMap::new();
        let bearer = format!("Bearer {root_secret}")
            .parse()
            .expect("a header value");
        headers.insert(reqwest::header::AUTHORIZATION, bearer);
        let http = Cluster::client_builder().default_headers(headers).build();
        let http = Some((http.expect("http client"), "http"));
        let mut cluster = Cluster::start_nodes(n, &args, DEFAULT_LOG, true, http, None).await;
        cluster.files.push(path);
        cluster
    }

    async fn start_nodes(
        n: u64,
        extra_args: &[&str],
        rust_log: &str,
        apart: bool,
        http: Option<(reqwest::Client, &'static str)>,
        prepare: Option<Prepare<'_>>,
    ) -> Cluster {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let nodes: Vec<NodeProc> = (1..=n)
            .map(|id| NodeProc {
                id,
                addr: format!("127.0.0.1:{}", free_port()),
                peer_addr: apart.then(|| format!("127.0.0.1:{}", free_port())),
                data_dir: dir.path().join(format!("n{id}")),
                log_path: dir.path().join(format!("n{id}.log")),
                child: None,
                joins: false,
            })
            .collect();
        let spec = nodes
            .iter()
            .map(|node| {
                format!(
                    "{}={}",
                    node.id,
                    node.peer_addr.as_ref().unwrap_or(&node.addr)
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        let (http, scheme) = http.unwrap_or_else(|| {
            let http = Cluster::client_builder().build().expect("http client");
            (http, "http")
        });
        let extra_args = extra_args.iter().map(|a| a.to_string()).collect();
        let mut cluster = Cluster {
            nodes,
            spec,
            extra_args,
            rust_log: rust_log.to_string(),
            dir,
            http,
            scheme,
            files: Vec::new(),
        };
        for id in 1..=n {
            if let Some(prepare) = prepare {
                prepare(id, &cluster.node_mut(id).data_dir);
            }
            cluster.spawn(id);
        }
        cluster.wait_leader().await;
        cluster
    }

    /// The builder of the tests' HTTP client: generous timeouts.
    pub(crate) fn client_builder() -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(70))
            .connect_timeout(Duration::from_secs(2))
    }

    fn node_mut(&mut self, id: u64) -> &mut NodeProc {
        self.nodes.iter_mut().find(|n| n.id == id).expect("node id")
    }

    fn spawn(&mut self, id: u64) {
        let spec = self.spec.clone();
        let extra_args = self.extra_args.clone();
        let rust_log = self.rust_log.clone();
        let node = self.node_mut(id);
        assert!(node.child.is_none(), "node {id} is running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log_path)
            .expect("node log");
        let membership = match node.joins {
            true => vec!["--join".to_string()],
            false => vec!["--initial-cluster".to_string(), spec],
        };
        let child = Command::new(env!("CARGO_BIN_EXE_corral"))
            .args([
                "server",
                "--node-id",
                &id.to_string(),
                "--listen",
                &node.addr,
            ])
            .args(&membership)
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(node.peer_addr.iter().flat_map(|a| ["--peer-listen", a]))
            .args(&extra_args)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start corral server");
        node.child = Some(child);
    }

    /// kill -9 of one node.
    pub(crate) fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.node_mut(id).child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("reap");
        }
    }

    /// Starts a new node `id` with `--join`, on fresh ports and a fresh
    /// folder, serving peers apart if the others do; an admin then adds it.
    pub(crate) fn spawn_joining(&mut self, id: u64) {
        assert!(self.nodes.iter().all(|n| n.id != id), "node {id} exists");
        let apart = self.nodes.iter().any(|n| n.peer_addr.is_some());
        self.nodes.push(NodeProc {
            id,
            addr: format!("127.0.0.1:{}", free_port()),
            peer_addr: apart.then(|| format!("127.0.0.1:{}", free_port())),
            data_dir: self.dir.path().join(format!("n{id}")),
            log_path: self.dir.path().join(format!("n{id}.log")),
            child: None,
            joins: true,
        });
        self.spawn(id);
    }

    /// Deletes a stopped node's data folder, as a dead disk would.
    pub(crate) fn wipe(&mut self, id: u64) {
        let node = self.node_mut(id);
        assert!(node.child.is_none(), "node {id} is running");
        std::fs::remove_dir_all(&node.data_dir).expect("remove the data folder");
    }

    /// Node `id`'s peer address (its client one when peers share it).
    pub(crate) fn peer_addr(&self, id: u64) -> String {
        let node = self.nodes.iter().find(|n| n.id == id).expect("node id");
        node.peer_addr.clone().unwrap_or_else(|| node.addr.clone())
    }

    /// Waits (at most `timeout`) for node `id`'s process to exit by
    /// itself; its exit code, or `None` if it still runs.
    pub(crate) async fn wait_exit(&mut self, id: u64, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let node = self.node_mut(id);
            let child = node.child.as_mut().expect("node is running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                node.child = None;
                return Some(status.code().unwrap_or(-1));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// SIGSTOP (`pause`) or SIGCONT (`resume`) to one node's process.
    fn signal(&self, id: u64, signal: &str) {
        let node = self.nodes.iter().find(|n| n.id == id).expect("node id");
        let pid = node.child.as_ref().expect("node is running").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Freezes a node's process, as a long GC pause or a stopped VM would.
    pub(crate) fn pause(&self, id: u64) {
        self.signal(id, "-STOP");
    }

    /// Lets a paused node run again.
    pub(crate) fn resume(&self, id: u64) {
        self.signal(id, "-CONT");
    }

    /// Waits until the nodes `ids` agree on a leader among themselves.
    pub(crate) async fn wait_leader_among(&self, ids: &[u64]) -> u64 {
        let start = Instant::now();
        loop {
            let mut leaders = Vec::new();
            for id in ids {
                let (status, body) = self.get(*id, "/v1/cluster").await;
                leaders.push(
                    (status == 200)
                        .then(|| body["leader_id"].as_u64())
                        .flatten(),
                );
            }
            if let Some(Some(leader)) = leaders.first() {
                if ids.contains(leader) && leaders.iter().all(|l| *l == Some(*leader)) {
                    return *leader;
                }
            }
            assert!(
                start.elapsed() < LEADER_TIMEOUT,
                "no leader among {ids:?}: {leaders:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts a killed node again on the same data folder.
    pub(crate) fn restart(&mut self, id: u64) {
        self.spawn(id);
    }

    /// Ids of the nodes whose processes run.
    pub(crate) fn live(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.id)
            .collect()
    }

    pub(crate) fn url(&self, id: u64, path: &str) -> String {
        let node = self.nodes.iter().find(|n| n.id == id).expect("node id");
        format!("{}://{}{path}", self.scheme, node.addr)
    }

    /// The URL of `path` on node `id`'s peer listener.
    pub(crate) fn peer_url(&self, id: u64, path: &str) -> String {
        let node = self.nodes.iter().find(|n| n.id == id).expect("node id");
        let addr = node.peer_addr.as_ref().unwrap_or(&node.addr);
        format!("http://{addr}{path}")
    }

    /// Waits until every live node names the same live leader; returns it.
    pub(crate) async fn wait_leader(&self) -> u64 {
        let start = Instant::now();
        loop {
            let mut leaders = Vec::new();
            for id in self.live() {
                let (status, body) = self.get(id, "/v1/cluster").await;
                leaders.push(
                    (status == 200)
                        .then(|| body["leader_id"].as_u64())
                        .flatten(),
                );
            }
            if let Some(Some(leader)) = leaders.first() {
                if leaders.iter().all(|l| *l == Some(*leader)) && self.live().contains(leader) {
                    // The leader answers linearizable reads once it has
                    // committed an entry of its term.
                    let (status, _) = self.get(*leader, "/v1/locks?prefix=").await;
                    if status == 200 {
                        return *leader;
                    }
                }
            }
            assert!(
                start.elapsed() < LEADER_TIMEOUT,
                "no agreed leader within {LEADER_TIMEOUT:?}: {leaders:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn request(
        &self,
        method: reqwest::Method,
        id: u64,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        send(self.http.request(method, self.url(id, path)), body, None).await
    }

    /// POSTs `body` to node `id` with an `Idempotency-Key` header.
    pub(crate) async fn post_keyed(
        &self,
        id: u64,
        path: &str,
        key: &str,
        body: Value,
    ) -> (u16, Value) {
        send(self.http.post(self.url(id, path)), Some(body), Some(key)).await
    }

    /// The live nodes other than `leader`.
    pub(crate) fn followers_of(&self, leader: u64) -> Vec<u64> {
        self.live().into_iter().filter(|id| *id != leader).collect()
    }

    /// Kills every node, then starts them all again at once.
    pub(crate) fn restart_all(&mut self) {
        let ids: Vec<u64> = self.nodes.iter().map(|n| n.id).collect();
        for id in &ids {
            self.kill(*id);
        }
        for id in ids {
            self.restart(id);
        }
    }
    pub(crate) async fn get(&self, id: u64, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::GET, id, path, None).await
    }

    pub(crate) async fn post(&self, id: u64, path: &str, body: Value) -> (u16, Value) {
        self.request(reqwest::Method::POST, id, path, Some(body))
            .await
    }

    /// Sends raw bytes as a POST body.
    pub(crate) async fn post_raw(
        &self,
        id: u64,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(id, path))
            .body(body)
            .send()
            .await
            .expect("send");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Grants a lease through node `id`; returns its id.
    pub(crate) async fn lease(&self, id: u64, ttl_ms: u64) -> String {
        let (status, body) = self
            .post(id, "/v1/leases", json!({ "ttl_ms": ttl_ms }))
            .await;
        assert_eq!(status, 201, "grant lease: {body}");
        body["lease_id"].as_str().expect("lease_id").to_string()
    }

    /// Acquires through node `id`; returns the status and body.
    pub(crate) async fn acquire(
        &self,
        id: u64,
        lease: &str,
        name: &str,
        wait_ms: u64,
    ) -> (u16, Value) {
        self.post(
            id,
            "/v1/locks/acquire",
            json!({ "lease_id": lease, "name": name, "wait_ms": wait_ms }),
        )
        .await
    }

    pub(crate) async fn release(&self, id: u64, lease: &str, name: &str) -> (u16, Value) {
        self.post(
            id,
            "/v1/locks/release",
            json!({ "lease_id": lease, "name": name }),
        )
        .await
    }

    /// `GET /v1/locks?name=` through node `id`.
    pub(crate) async fn lock(&self, id: u64, name: &str) -> Value {
        let (status, body) = self.get(id, &format!("/v1/locks?name={name}")).await;
        assert_eq!(status, 200, "read lock {name}: {body}");
        body
    }

    /// Waits until at least `count` leases wait for `name`, as node `id`
    /// reads it.
    pub(crate) async fn wait_queued(&self, id: u64, name: &str, count: usize) {
        let deadline = Instant::now() + LEADER_TIMEOUT;
        loop {
            let lock = self.lock(id, name).await;
            if lock["waiters"].as_array().map_or(0, Vec::len) >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{count} waiters never queued for {name}: {lock}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Makes node `id` drop its traffic to the nodes `blocked` (the cluster
    /// must run with `--test-faults`).
    pub(crate) async fn block(&self, id: u64, blocked: &[u64]) {
        let addrs: Vec<String> = blocked
            .iter()
            .map(|b| {
                let node = self.nodes.iter().find(|n| n.id == *b).expect("node id");
                node.peer_addr.clone().unwrap_or_else(|| node.addr.clone())
            })
            .collect();
        let (status, body) = self
            .post(id, "/test/faults", json!({ "blocked": addrs }))
            .await;
        assert_eq!(status, 200, "setting faults on node {id}: {body}");
    }

    /// Splits the live nodes into groups that cannot reach each other.
    pub(crate) async fn partition(&self, groups: &[&[u64]]) {
        for group in groups {
            let others: Vec<u64> = groups
                .iter()
                .filter(|g| !std::ptr::eq(**g, *group))
                .flat_map(|g| g.iter().copied())
                .collect();
            for id in *group {
                if self.live().contains(id) {
                    self.block(*id, &others).await;
                }
            }
        }
    }

    /// Ends every partition among the live nodes.
    pub(crate) async fn heal(&self) {
        for id in self.live() {
            self.block(id, &[]).await;
        }
    }

    /// Sets node `id`'s clock skew.
    pub(crate) async fn skew_clock(&self, id: u64, offset_ms: i64) {
        let (status, body) = self
            .post(id, "/test/faults", json!({ "clock_offset_ms": offset_ms }))
            .await;
        assert_eq!(status, 200, "skewing node {id}'s clock: {body}");
    }

    /// Makes node `id`'s log flusher sleep `delay_ms` before each WAL sync
    /// (0: not at all), as a slow disk would: what it appends meanwhile is
    /// only in its memory (the cluster must run with `--test-faults`).
    pub(crate) async fn slow_log_sync(&self, id: u64, delay_ms: u64) {
        let (status, body) = self
            .post(id, "/test/faults", json!({ "log_sync_delay_ms": delay_ms }))
            .await;
        assert_eq!(status, 200, "slowing node {id}'s log sync: {body}");
    }

    /// Every node's address, comma-separated, for `--endpoints`.
    pub(crate) fn endpoints(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.addr.clone())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// POSTs `body` to node `id` in a task of its own, for a request that
    /// waits while the test goes on (even while it kills nodes).
    pub(crate) fn spawn_post(
        &self,
        id: u64,
        path: &str,
        body: Value,
    ) -> tokio::task::JoinHandle<(u16, Value)> {
        let (http, url) = (self.http.clone(), self.url(id, path));
        tokio::spawn(async move {
            match http.post(url).json(&body).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    (status, response.json().await.unwrap_or(Value::Null))
                }
                Err(e) => (0, Value::String(e.to_string())),
            }
        })
    }

    /// Polls `GET path` on node `id` until `ready` holds for the body.
    pub(crate) async fn wait_for(
        &self,
        id: u64,
        path: &str,
        ready: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + LEADER_TIMEOUT;
        loop {
            let (status, body) = self.get(id, path).await;
            if status == 200 && ready(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "GET {path} never got ready: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The value of metric `name` (a line that starts with it) on node
    /// `id`, if the node answers and has it.
    pub(crate) async fn metric(&self, id: u64, name: &str) -> Option<f64> {
        let (status, text) = self.get(id, "/metrics").await;
        if status != 200 {
            return None;
        }
        text.as_str()?
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|value| value.parse().ok())
    }

    /// The whole log of one node.
    pub(crate) fn log_of(&self, id: u64) -> String {
        let node = self.nodes.iter().find(|n| n.id == id).expect("node id");
        std::fs::read_to_string(&node.log_path).unwrap_or_default()
    }

    /// Every node's log, for a failing test's message.
    pub(crate) fn logs(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let log = std::fs::read_to_string(&node.log_path).unwrap_or_default();
            let tail: Vec<&str> = log
                .lines()
                .rev()
                .take(if std::env::var_os("CORRAL_TEST_LOGS").is_some() {
                    4000
                } else {
                    40
                })
                .collect();
            out.push_str(&format!("--- node {} ({}) ---\n", node.id, node.addr));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("CORRAL_TEST_LOGS").is_some() {
            eprintln!("{}", self.logs());
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = &self.dir;
    }
}

/// Sends `request` with an optional JSON body and idempotency key; the
/// status and the body as JSON (or as a string when it is not JSON), or
/// status 0 and the error when nothing came back.
pub(crate) async fn send(
    mut request: reqwest::RequestBuilder,
    body: Option<Value>,
    key: Option<&str>,
) -> (u16, Value) {
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            (status, value)
        }
        Err(e) => (0, Value::String(e.to_string())),
    }
}

/// The error code of an error body, if it is one.
pub(crate) fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

/// The fencing token of a grant body.
pub(crate) fn token(body: &Value) -> u64 {
    body["fencing_token"]
        .as_u64()
        .unwrap_or_else(|| panic!("no token in {body}"))
}
