//! `corral bench --workload snapshots`: a 3-node cluster of this binary,
//! started for the run, filled with a working set of `--leases` leases,
//! each holding a lock of its own; then what the working set's size costs
//! in snapshots:
//!
//! 1. the leader builds a snapshot when asked (`POST
//!    /v1/cluster/snapshot`): its size and build time, from the leader's
//!    `/metrics`;
//! 2. a fourth node starts with `--join` and is added: the time until it
//!    serves a linearizable read showing the lock taken after all the
//!    others, which it can only do once it has installed the snapshot and
//!    applied the log after it;
//! 3. a follower is killed with SIGKILL and restarted on its data: the
//!    time until it serves the same read, which it can only do once it
//!    has restored its own snapshot and replayed its log.
//!
//! The leases' ttl outlasts the run, so nothing renews them while the
//! cluster is timed.

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use corral_bench::{KeepaliveSpec, SnapshotsReport, Target};
use tokio::time::Instant;

use super::failover::{leader_of, ready};
use crate::local_cluster::{LocalCluster, RunDir};

/// The leases' time to live: longer than a whole run at a million leases
/// (about two minutes to load, then seconds to a minute per step), so
/// that none is renewed while the cluster is timed: renewals would load
/// the leader during the builds and installs measured.
const LEASE_TTL: Duration = Duration::from_secs(600);
/// The working set's lock names start with this.
const PREFIX: &str = "working-set/";
/// How long a node may take to serve the read, from its start.
const SERVE_WAIT: Duration = Duration::from_secs(300);
/// How long the added node may take to catch up (the most an add waits).
const CATCH_UP: Duration = Duration::from_millis(corral_api::CATCH_UP_MS_MAX);
/// How long the new node's peer listener may take to open.
const LISTEN_WAIT: Duration = Duration::from_secs(30);
/// The sample of the leader's build times, and of how many there were.
const BUILD_SUM: &str = "corral_raft_snapshot_build_seconds_sum";
const BUILD_COUNT: &str = "corral_raft_snapshot_build_seconds_count";

/// The lock taken after the whole working set. A node that reads it held,
/// linearizably, has applied every grant and lock before it.
struct Marker {
    name: String,
    lease_id: String,
    token: u64,
}

/// What the leader's snapshot measured.
struct Built {
    index: u64,
    bytes: u64,
    build_seconds: f64,
    call_seconds: f64,
}

/// Measures a working set of `leases` on a cluster started on ports from
/// `base_port`.
pub(super) async fn run(leases: usize, base_port: u16) -> anyhow::Result<SnapshotsReport> {
    let dir = RunDir::new("snapshots");
    let cluster = LocalCluster::start(&dir.0, base_port, 3)?;
    measure(ready(cluster).await?, leases).await
}

async fn measure(mut cluster: LocalCluster, leases: usize) -> anyhow::Result<SnapshotsReport> {
    let target = Target::corral(&cluster.addrs)?;
    let started = Instant::now();
    let spec = KeepaliveSpec {
        leases,
        ttl: LEASE_TTL,
        batch: corral_api::KEEPALIVE_BATCH_MAX,
        duration: Duration::ZERO,
        locks: Some(PREFIX.to_string()),
    };
    let load = corral_bench::keepalive(&target, spec).await;
    ensure!(
        load.granted == leases && load.locks == leases,
        "the working set was not loaded: {} leases and {} locks of {leases}",
        load.granted,
        load.locks
    );
    let marker = take_marker(&target).await?;
    let leader = leader_of(&target).await?;
    let built = build_on(&target, cluster.addr(leader)?).await?;
    let (join_seconds, add_seconds, installed) =
        join_new_node(&mut cluster, &target, leader, &marker).await?;
    let restart_seconds = restart_follower(&mut cluster, &target, leader, &marker).await?;
    ensure!(
        started.elapsed() < LEASE_TTL,
        "the run outlasted the leases' ttl ({LEASE_TTL:?}): some may have expired while measured"
    );
    Ok(SnapshotsReport {
        target: "corral".into(),
        leases,
        load,
        snapshot_index: built.index,
        snapshot_bytes: built.bytes,
        build_seconds: built.build_seconds,
        snapshot_call_seconds: built.call_seconds,
        join_seconds,
        join_installed_snapshot: installed,
        add_seconds,
        restart_seconds,
    })
}

/// Takes the marker lock under a lease of its own.
async fn take_marker(target: &Target) -> anyhow::Result<Marker> {
    let lease = target.grant_lease(0, LEASE_TTL).await?;
    let name = format!("{PREFIX}marker");
    let held = target.lock(0, &lease, &name, Duration::ZERO).await?;
    Ok(Marker {
        name,
        lease_id: lease.id,
        token: held.token,
    })
}

/// Asks the node at `addr` for a snapshot and reads its size and build
/// time from its `/metrics`. Should a build the node began by itself end
/// during the call, the time is the mean of the builds that ended.
async fn build_on(target: &Target, addr: &str) -> anyhow::Result<Built> {
    let sample = |name| async move { target.node_metric(addr, name).await.unwrap_or(0.0) };
    let (sum_before, count_before) = (sample(BUILD_SUM).await, sample(BUILD_COUNT).await);
    let asked = Instant::now();
    let index = target.build_snapshot(addr).await?;
    let call_seconds = asked.elapsed().as_secs_f64();
    let (sum, count) = (sample(BUILD_SUM).await, sample(BUILD_COUNT).await);
    let builds = count - count_before;
    ensure!(
        builds >= 1.0,
        "the node at {addr} counted no snapshot build"
    );
    Ok(Built {
        index,
        bytes: sample("corral_raft_snapshot_bytes").await as u64,
        build_seconds: (sum - sum_before) / builds,
        call_seconds,
    })
}

/// Starts a fourth node with `--join`, has the leader add it, and times
/// both until it serves the marker and until the add is answered; and
/// whether it installed a snapshot.
async fn join_new_node(
    cluster: &mut LocalCluster,
    target: &Target,
    leader: u64,
    marker: &Marker,
) -> anyhow::Result<(f64, f64, bool)> {
    let id = cluster.join()?;
    let started = Instant::now();
    let (addr, peer_addr) = (cluster.addr(id)?, cluster.peer_addr(id)?);
    let add = add_when_listening(target, cluster.addr(leader)?, id, peer_addr, started);
    let serves = until_serves(target, addr, marker, started);
    let (join_seconds, add_seconds) = tokio::try_join!(serves, add)?;
    let installed = target
        .node_metric(addr, "corral_raft_snapshots_installed_total")
        .await
        .context("reading the new node's metrics")?;
    Ok((join_seconds, add_seconds, installed > 0.0))
}

/// Adds node `id` through the leader at `leader_addr`, trying again while
/// the node may still be opening its listener; seconds from `started` to
/// the answer.
async fn add_when_listening(
    target: &Target,
    leader_addr: &str,
    id: u64,
    peer_addr: &str,
    started: Instant,
) -> anyhow::Result<f64> {
    loop {
        match target
            .add_member(leader_addr, id, peer_addr, CATCH_UP)
            .await
        {
            Ok(()) => return Ok(started.elapsed().as_secs_f64()),
            Err(_) if started.elapsed() < LISTEN_WAIT => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e).context(format!("adding node {id}")),
        }
    }
}

/// Kills a follower of the three first nodes with SIGKILL, starts it again
/// on its data, and times it until it serves the marker.
async fn restart_follower(
    cluster: &mut LocalCluster,
    target: &Target,
    leader: u64,
    marker: &Marker,
) -> anyhow::Result<f64> {
    let follower = (1..=3).find(|id| *id != leader).context("no follower")?;
    cluster.kill(follower)?;
    let started = Instant::now();
    cluster.spawn(follower)?;
    until_serves(target, cluster.addr(follower)?, marker, started).await
}

/// Seconds from `started` until the node at `addr` reads the marker held
/// as it was taken. A read that fails (the node is starting, has no
/// leader yet, or has not caught up) is tried again; one that answers
/// anything else is a bug, and fails the run.
async fn until_serves(
    target: &Target,
    addr: &str,
    marker: &Marker,
    started: Instant,
) -> anyhow::Result<f64> {
    loop {
        match target.holder_on(addr, &marker.name).await {
            Ok(Some((lease_id, token))) if lease_id == marker.lease_id && token == marker.token => {
                return Ok(started.elapsed().as_secs_f64());
            }
            Ok(other) => bail!(
                "the node at {addr} reads {} held by {other:?}, not by the marker's lease",
                marker.name
            ),
            Err(_) if started.elapsed() < SERVE_WAIT => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e).context(format!("the node at {addr} never served the read")),
        }
    }
}
