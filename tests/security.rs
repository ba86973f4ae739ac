//! Security: peers served apart from clients, TLS for clients and mutual
//! TLS between peers, and limits against hostile clients.

// A scenario reads best as one function, step after step.
#![allow(clippy::too_many_lines)]

mod harness;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use harness::{Cluster, LEADER_TIMEOUT};
use serde_json::{json, Value};

/// Every peer endpoint, as a client might try it on the client listener.
const PEER_ROUTES: [(&str, &str); 9] = [
    ("POST", "/raft/append"),
    ("POST", "/raft/append-stream"),
    ("POST", "/raft/vote"),
    ("POST", "/raft/snapshot"),
    ("POST", "/raft/snapshot-chunk"),
    ("POST", "/raft/propose-stream"),
    ("POST", "/raft/read-index"),
    ("POST", "/raft/keepalive"),
    ("GET", "/raft/member"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peers_apart_serve_no_raft_route_to_clients_and_the_cluster_fails_over() {
    let mut cluster = Cluster::start_apart(3, &[]).await;
    for (method, path) in PEER_ROUTES {
        let method = method.parse().expect("a method");
        let url = cluster.url(1, path);
        let answer = cluster.http.request(method, url).body("{}").send().await;
        let answer = answer.expect("the client listener answers");
        assert_eq!(answer.status(), 404, "{path} on the client listener");
        let body: Value = answer.json().await.expect("an error body");
        assert_eq!(body["error"]["code"], "not_found", "{path}: {body}");
    }
    // A peer request of another cluster, or of a newer format, is refused.
    let (_, view) = cluster.get(2, "/v1/cluster").await;
    let cluster_id = view["cluster_id"]
        .as_str()
        .expect("an identity")
        .to_string();
    assert_eq!(cluster_id.len(), 16, "{view}");
    let stranger = cluster
        .http
        .get(cluster.peer_url(2, "/raft/member"))
        .header("x-corral-cluster", "0000000000000000")
        .send()
        .await;
    let stranger = stranger.expect("an answer");
    assert_eq!(stranger.status(), 403);
    // Every peer answer, a refusal too, names the newest format its node
    // reads: how a sender learns what to frame its streams in.
    let reads = stranger.headers().get("x-corral-format");
    assert_eq!(reads.and_then(|v| v.to_str().ok()), Some("2"));
    let newer = cluster
        .http
        .get(cluster.peer_url(2, "/raft/member"))
        .header("x-corral-format", "200")
        .send()
        .await;
    assert_eq!(newer.expect("an answer").status(), 403);
    // No identity at all: a node older than identities, taken.
    let older = cluster
        .http
        .get(cluster.peer_url(2, "/raft/member"))
        .send()
        .await;
    assert_eq!(older.expect("an answer").status(), 200);
    let member: Value = cluster
        .http
        .get(cluster.peer_url(2, "/raft/member"))
        .header("x-corral-cluster", &cluster_id)
        .send()
        .await
        .expect("the peer listener answers")
        .json()
        .await
        .expect("a member body");
    assert_eq!(member["node_id"], 2);
    assert_eq!(member["client_addr"], cluster.nodes[1].addr.as_str());
    wait_client_addrs_known(&cluster, 1).await;

    // Writes through a follower reach the leader over the peer listener,
    // before and after the leader is lost.
    writes_through_followers_survive_losing_the_leader(&mut cluster).await;
}

/// A lock taken through a follower; the leader killed; another lock taken
/// through a follower of the new leader.
async fn writes_through_followers_survive_losing_the_leader(cluster: &mut Cluster) {
    let leader = cluster.wait_leader().await;
    let follower = cluster.followers_of(leader)[0];
    let lease = cluster.lease(follower, 30_000).await;
    let (status, body) = cluster.acquire(follower, &lease, "invoice/1", 0).await;
    assert_eq!(status, 200, "{body}");
    cluster.kill(leader);
    let new_leader = cluster.wait_leader().await;
    let survivor = cluster.followers_of(new_leader)[0];
    let lease = cluster.lease(survivor, 30_000).await;
    let (status, body) = cluster.acquire(survivor, &lease, "invoice/2", 0).await;
    assert_eq!(status, 200, "{body}");
}

/// Waits until node `id` shows every member's client and peer address.
async fn wait_client_addrs_known(cluster: &Cluster, id: u64) {
    let start = Instant::now();
    loop {
        let (status, view) = cluster.get(id, "/v1/cluster").await;
        assert_eq!(status, 200, "{view}");
        let members = view["members"].as_array().cloned().unwrap_or_default();
        let shown = |node: &harness::NodeProc| {
            members.iter().any(|m| {
                m["id"] == node.id
                    && m["client_addr"] == node.addr.as_str()
                    && Some(m["addr"].as_str().unwrap_or_default()) == node.peer_addr.as_deref()
            })
        };
        if members.len() == cluster.nodes.len() && cluster.nodes.iter().all(shown) {
            return;
        }
        assert!(
            start.elapsed() < LEADER_TIMEOUT,
            "node {id} does not show every member's addresses: {view}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_listener_still_serves_peers_and_shows_its_client_address() {
    let cluster = Cluster::start(3).await;
    let (status, view) = cluster.get(2, "/v1/cluster").await;
    assert_eq!(status, 200);
    let me = view["members"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["id"] == 2).cloned())
        .unwrap_or(json!(null));
    assert_eq!(me["client_addr"], me["addr"], "{view}");
}

/// A connection that sends part of a request's headers, or nothing, is
/// closed once the header timeout has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_that_never_finishes_its_headers_is_closed() {
    let cluster = Cluster::start_apart(1, &["--header-read-timeout-ms", "1000"]).await;
    let addr = cluster.nodes[0].addr.clone();
    for sent in ["", "P", "GET /healthz HTTP/1.1\r\nHost: x\r\n"] {
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        stream.write_all(sent.as_bytes()).await.expect("send");
        let start = Instant::now();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest));
        // Closed (maybe after a 408) or reset: either way, not held.
        let _closed_or_reset = read.await.expect("the server closes the connection");
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{sent:?} held for {:?}",
            start.elapsed()
        );
    }
}

/// A request whose body stalls is answered 400 once the body timeout has
/// passed, and its connection does not stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_whose_body_never_arrives_is_refused() {
    let cluster = Cluster::start_apart(1, &["--header-read-timeout-ms", "1000"]).await;
    let addr = cluster.nodes[0].addr.clone();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = "POST /v1/leases HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{";
    stream.write_all(head.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer));
    let _closed_or_reset = read.await.expect("the server answers and closes");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("invalid_argument"), "{answer}");
}

/// A node whose peer CA is its client CA refuses to start: any client
/// certificate would pass as a peer.
#[test]
fn the_peer_ca_must_not_be_the_client_ca() {
    let ca = Ca::new("one CA for all");
    let dir = PemDir::new();
    let (cert, key) = ca.issue_for(&[
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ]);
    let (cert, key) = (dir.write("cert.pem", &cert), dir.write("key.pem", &key));
    let ca_file = dir.write("ca.pem", &ca.cert.pem());
    let data = dir.0.path().join("data");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_corral"))
        .args([
            "server",
            "--node-id",
            "1",
            "--initial-cluster",
            "1=127.0.0.1:1",
        ])
        .args(["--listen", "127.0.0.1:0", "--peer-listen", "127.0.0.1:0"])
        .args([
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--client-ca",
            &ca_file,
        ])
        .args([
            "--peer-tls-cert",
            &cert,
            "--peer-tls-key",
            &key,
            "--peer-ca",
            &ca_file,
        ])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("run corral server");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--peer-ca is the same CA as --client-ca"),
        "{stderr}"
    );
}

/// Holds `count` connections to `addr` open, each trickling a byte of a
/// request's headers now and then, opening another whenever one closes,
/// until `stop`.
async fn slow_loris(addr: String, count: usize, stop: tokio::sync::watch::Receiver<bool>) {
    let mut tasks = Vec::new();
    for _ in 0..count {
        let (addr, stop) = (addr.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !*stop.borrow() {
                let Ok(mut stream) = tokio::net::TcpStream::connect(&addr).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                for byte in b"GET /v1/cluster HTTP/1.1\r\nX-Slow: ".iter().cycle() {
                    if *stop.borrow() || stream.write_all(&[*byte]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// A slow-loris client that holds more connections than node 1's client
/// listener allows cannot stop the cluster from serving through the other
/// nodes or from electing a new leader; node 1 serves again once it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_loris_client_stops_neither_serving_nor_elections() {
    let flags = [
        "--client-connections-max",
        "64",
        "--header-read-timeout-ms",
        "2000",
    ];
    let mut cluster = Cluster::start_apart(3, &flags).await;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let attack = tokio::spawn(slow_loris(cluster.nodes[0].addr.clone(), 200, stop));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let leader = cluster.wait_leader().await;
    let other = cluster
        .live()
        .into_iter()
        .find(|id| *id != leader && *id != 1);
    let other = other.unwrap_or(2);
    let lease = cluster.lease(other, 30_000).await;
    let (status, body) = cluster.acquire(other, &lease, "invoice/1", 0).await;
    assert_eq!(status, 200, "{body}");
    cluster.kill(leader);
    let start = Instant::now();
    let survivor = loop {
        let live: Vec<u64> = cluster.live().into_iter().filter(|id| *id != 1).collect();
        let (status, view) = cluster.get(live[0], "/v1/cluster").await;
        let elected = view["leader_id"].as_u64().filter(|id| *id != leader);
        if status == 200 && elected.is_some() {
            break live[0];
        }
        assert!(start.elapsed() < LEADER_TIMEOUT, "no new leader: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let lease = cluster.lease(survivor, 30_000).await;
    let (status, body) = cluster.acquire(survivor, &lease, "invoice/2", 0).await;
    assert_eq!(status, 200, "{body}");

    let _ = stop_tx.send(true);
    attack.await.expect("the attack ends");
    if cluster.live().contains(&1) {
        let start = Instant::now();
        while cluster.get(1, "/healthz").await.0 != 200 {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "node 1 does not serve again"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A certificate authority of the tests.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().expect("a key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("a CA certificate");
        Ca { cert, key }
    }

    /// A certificate it signs, for a server on 127.0.0.1 or for a client:
    /// (certificate PEM, key PEM).
    fn issue(&self, server: bool) -> (String, String) {
        let usage = if server {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        };
        self.issue_for(&[usage])
    }

    /// A certificate it signs for `usages`, naming 127.0.0.1 when it may
    /// serve.
    fn issue_for(&self, usages: &[rcgen::ExtendedKeyUsagePurpose]) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("a key");
        let serves = usages.contains(&rcgen::ExtendedKeyUsagePurpose::ServerAuth);
        let names = if serves {
            vec!["127.0.0.1".to_string(), "localhost".to_string()]
        } else {
            Vec::new()
        };
        let mut params = rcgen::CertificateParams::new(names).expect("params");
        params.extended_key_usages = usages.to_vec();
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("a signed certificate");
        (cert.pem(), key.serialize_pem())
    }
}

/// A folder of PEM files, removed when dropped.
struct PemDir(tempfile::TempDir);

impl PemDir {
    fn new() -> PemDir {
        PemDir(tempfile::TempDir::new().expect("temp dir"))
    }

    /// Writes (or replaces) file `name`; answers its path.
    fn write(&self, name: &str, pem: &str) -> String {
        let path = self.0.path().join(name);
        std::fs::write(&path, pem).expect("write a PEM file");
        path.display().to_string()
    }
}

/// An HTTPS client that trusts only `ca` and presents `identity` (a
/// certificate PEM and its key PEM), if any.
fn https_client(ca: &Ca, identity: Option<&(String, String)>) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(ca.cert.pem().as_bytes()).expect("a CA");
    let mut builder = Cluster::client_builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root);
    if let Some((cert, key)) = identity {
        let pem = format!("{cert}{key}");
        builder =
            builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("an identity"));
    }
    builder.build().expect("an https client")
}

/// Whether a GET of `url` by `client` is answered at all.
async fn answered(client: &reqwest::Client, url: &str) -> bool {
    client.get(url).send().await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_need_a_certificate_of_the_client_ca_and_certificates_rotate() {
    let (ca, other_ca) = (Ca::new("corral test CA"), Ca::new("another CA"));
    let dir = PemDir::new();
    let write = |name: &str, pem: &str| dir.write(name, pem);
    let (server_cert, server_key) = ca.issue(true);
    let cert = write("server.pem", &server_cert);
    let key = write("server-key.pem", &server_key);
    let client_ca = write("client-ca.pem", &ca.cert.pem());
    let client = ca.issue(false);
    let flags = [
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--client-ca",
        &client_ca,
    ];
    let cluster = Cluster::start_tls(3, &flags, https_client(&ca, Some(&client))).await;

    // The cluster formed (the harness asked every node over HTTPS) and
    // serves a write through a follower.
    let leader = cluster.wait_leader().await;
    let follower = cluster.followers_of(leader)[0];
    let lease = cluster.lease(follower, 30_000).await;
    let (status, body) = cluster.acquire(follower, &lease, "invoice/1", 0).await;
    assert_eq!(status, 200, "{body}");

    // Plain HTTP, no client certificate, or one of another CA: refused.
    let healthz = cluster.url(1, "/healthz");
    let plain = Cluster::client_builder().build().expect("client");
    assert!(!answered(&plain, &healthz.replace("https://", "http://")).await);
    assert!(!answered(&https_client(&ca, None), &healthz).await);
    let stranger = other_ca.issue(false);
    assert!(!answered(&https_client(&ca, Some(&stranger)), &healthz).await);
    assert!(answered(&https_client(&ca, Some(&client)), &healthz).await);

    // The CLI and the Rust client, over HTTPS with a client certificate.
    let (client_cert, client_key) = (
        write("client.pem", &client.0),
        write("client-key.pem", &client.1),
    );
    let ca_file = write("ca.pem", &ca.cert.pem());
    let endpoint = cluster.url(1, "");
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["--endpoints", &endpoint, "--cacert", &ca_file])
        .args([
            "--cert",
            &client_cert,
            "--key",
            &client_key,
            "cluster",
            "status",
        ])
        .output()
        .expect("run the CLI");
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let tls = corral_client::TlsOptions {
        ca: Some(ca_file.clone().into()),
        cert: Some(client_cert.clone().into()),
        key: Some(client_key.clone().into()),
    };
    let addr = endpoint.trim_start_matches("https://");
    let rust_client =
        corral_client::Client::with_tls([addr], Default::default(), &tls).expect("a TLS client");
    let lease = rust_client.grant_lease_id(Duration::from_secs(30)).await;
    lease.expect("a lease over HTTPS");

    // New server files take effect for new connections, without a restart.
    let (new_cert, new_key) = other_ca.issue(true);
    write("server-key.pem", &new_key);
    write("server.pem", &new_cert);
    let start = Instant::now();
    while !answered(&https_client(&other_ca, Some(&client)), &healthz).await {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the new certificate is not served"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(!answered(&https_client(&ca, Some(&client)), &healthz).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peers_speak_mutual_tls_and_refuse_strangers() {
    use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let (ca, other_ca) = (Ca::new("corral peer CA"), Ca::new("another CA"));
    let dir = PemDir::new();
    let write = |name: &str, pem: &str| dir.write(name, pem);
    // One certificate for every node: it serves peers and connects to them.
    let (peer_cert, peer_key) = ca.issue_for(&[ServerAuth, ClientAuth]);
    let cert = write("peer.pem", &peer_cert);
    let key = write("peer-key.pem", &peer_key);
    let peer_ca = write("peer-ca.pem", &ca.cert.pem());
    let flags = [
        "--peer-tls-cert",
        &cert,
        "--peer-tls-key",
        &key,
        "--peer-ca",
        &peer_ca,
    ];
    let mut cluster = Cluster::start_apart(3, &flags).await;

    // The peer listener refuses plain HTTP, and TLS without a certificate
    // of the peer CA.
    let member = cluster.peer_url(1, "/raft/member");
    let plain = Cluster::client_builder().build().expect("client");
    assert!(!answered(&plain, &member).await);
    let member = member.replace("http://", "https://");
    assert!(!answered(&https_client(&ca, None), &member).await);
    let stranger = other_ca.issue_for(&[ClientAuth]);
    assert!(!answered(&https_client(&ca, Some(&stranger)), &member).await);
    let peer = ca.issue_for(&[ClientAuth]);
    let (_, view) = cluster.get(1, "/v1/cluster").await;
    let cluster_id = view["cluster_id"]
        .as_str()
        .expect("an identity")
        .to_string();
    let reply = https_client(&ca, Some(&peer))
        .get(&member)
        .header("x-corral-cluster", &cluster_id)
        .send()
        .await;
    assert_eq!(reply.expect("a peer is answered").status(), 200);

    // Replication, forwarding and elections run over it.
    let leader = cluster.wait_leader().await;
    wait_client_addrs_known(&cluster, cluster.followers_of(leader)[0]).await;
    writes_through_followers_survive_losing_the_leader(&mut cluster).await;
}
