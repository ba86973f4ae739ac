//! `corral bench --workload failover`: a 3-node cluster of this binary,
//! started for the run; in each trial the leader is killed with SIGKILL
//! and the time until an acquire succeeds through a surviving node is
//! measured. Then the node is restarted and the next trial waits for a
//! healthy cluster.

use std::time::Duration;

use corral_bench::{FailoverReport, Target};
use tokio::time::Instant;

use crate::local_cluster::{LocalCluster, RunDir};

/// Runs `trials` kills of the leader on a cluster started on ports from
/// `base_port`.
pub(super) async fn run(trials: usize, base_port: u16) -> anyhow::Result<FailoverReport> {
    let dir = RunDir::new("failover");
    trials_on(&dir.0, trials, base_port).await
}

async fn trials_on(
    dir: &std::path::Path,
    trials: usize,
    base_port: u16,
) -> anyhow::Result<FailoverReport> {
    let mut cluster = LocalCluster::start(dir, base_port, 3)?;
    let target = Target::corral(&cluster.addrs)?;
    let mut seconds = Vec::with_capacity(trials);
    for trial in 0..trials {
        cluster = ready(cluster).await?;
        let leader = leader_of(&target).await?;
        let survivor = (leader as usize) % 3; // the next node's index
        let lease = target
            .grant_lease(survivor, Duration::from_secs(30))
            .await?;
        let name = format!("failover/{trial}");
        cluster.kill(leader)?;
        let killed = Instant::now();
        loop {
            match target.lock(survivor, &lease, &name, Duration::ZERO).await {
                Ok(held) => {
                    seconds.push(killed.elapsed().as_secs_f64());
                    let _ = target.unlock(survivor, &lease, &held).await;
                    break;
                }
                Err(_) if killed.elapsed() < Duration::from_secs(30) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => anyhow::bail!("no acquire within 30 s of killing the leader: {e}"),
            }
        }
        let _ = target.revoke(survivor, &lease).await;
        cluster.spawn(leader)?;
        // Let the restarted node catch up before the next kill.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(FailoverReport::of("corral", seconds))
}

/// `cluster` once every running node knows a leader, waited for off the
/// runtime (the wait sleeps between polls).
pub(super) async fn ready(mut cluster: LocalCluster) -> anyhow::Result<LocalCluster> {
    tokio::task::spawn_blocking(move || cluster.wait_ready().map(|()| cluster)).await?
}

/// The leader's id, as some node reports it.
pub(super) async fn leader_of(target: &Target) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((leader, _)) = target.leader().await {
            return Ok(leader);
        }
        if Instant::now() > deadline {
            anyhow::bail!("no leader known within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
