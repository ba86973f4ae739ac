//! `corral lease|locks|cluster|kv`: one request each, printed for people
//! or as JSON (`corral cluster members|add|remove` are in `members`).

use std::time::Duration;

use clap::Subcommand;
use corral_api::{KvValue, LockView, Mode};
use corral_client::{Client, Error, Fence, FencingToken, LeaseId};
use tokio::time::Instant;

use super::output::{self, duration, parse_duration};
use super::{exit, lock_name, members};

/// `corral lease ...`.
#[derive(Subcommand, Debug)]
pub(crate) enum LeaseCommand {
    /// Grant a lease and print its id. Nothing keeps it alive: send
    /// `corral lease keepalive ID` every ttl/3, or it expires.
    Grant {
        /// How long the lease lives without a keepalive (500ms, 10s, 2m;
        /// a bare number is seconds).
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        ttl: Duration,
    },
    /// Renew a lease once.
    Keepalive {
        /// The lease, as `corral lease grant` printed it: 32 hex digits.
        id: LeaseId,
    },
    /// End a lease, releasing all it holds.
    Revoke {
        /// The lease, as `corral lease grant` printed it: 32 hex digits.
        id: LeaseId,
    },
    /// Show a lease and what it holds.
    Show {
        /// The lease, as `corral lease grant` printed it: 32 hex digits.
        id: LeaseId,
    },
}

/// `corral locks ...`.
#[derive(Subcommand, Debug)]
pub(crate) enum LocksCommand {
    /// List the locks in use, in name order (at most 1000).
    List {
        /// Only names starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Show one lock: holders and queue.
    Show {
        /// The lock's name; one no one holds or waits for shows as free.
        name: String,
    },
    /// Show a lock's recent events (grants, releases, expiries, waits,
    /// refusals), oldest first.
    History {
        /// The lock's name; the cluster keeps its last 100 events.
        name: String,
    },
}

/// `corral cluster ...`.
#[derive(Subcommand, Debug)]
pub(crate) enum ClusterCommand {
    /// Members, leader, term and log indexes, as the first node that
    /// answers sees them.
    Status,
    /// List the members as the leader sees them.
    ///
    /// Each member's role, addresses, how many log entries it is behind,
    /// whether it is reachable and when it last acknowledged the leader;
    /// and the ids retired by removals.
    Members,
    /// Add a node started with `corral server --join`.
    ///
    /// The leader makes it a learner, waits for it to catch up, then makes
    /// it a voter (unless --learner). One membership change at a time.
    Add(members::AddArgs),
    /// Remove a member for good.
    ///
    /// Its id is retired and never taken again. Removing the leader hands
    /// leadership over first.
    Remove(members::RemoveArgs),
}

/// `corral kv ...`.
#[derive(Subcommand, Debug)]
pub(crate) enum KvCommand {
    /// Print a key's value (exit 3 if there is none).
    Get {
        /// The key to read: 1 to 512 bytes, no control characters.
        key: String,
    },
    /// Write a key under a lock's current token.
    Put {
        /// The key to write: 1 to 512 bytes, no control characters.
        key: String,
        /// The value to write: at most 64 KiB.
        value: String,
        /// The lock that guards the key.
        #[arg(long)]
        lock: String,
        /// The fencing token the lock is held under (CORRAL_FENCING_TOKEN
        /// inside `corral lock`). Not `--token`, which is the bearer token
        /// of a cluster with auth on.
        #[arg(long, env = "CORRAL_FENCING_TOKEN")]
        fencing_token: u64,
    },
    /// Delete a key under a lock's current token.
    Delete {
        /// The key to delete. Its highest token stays, so writes under an
        /// older token are still refused.
        key: String,
        /// The lock that guards the key.
        #[arg(long)]
        lock: String,
        /// The fencing token the lock is held under.
        #[arg(long, env = "CORRAL_FENCING_TOKEN")]
        fencing_token: u64,
    },
}

/// Prints `result` with `show` (or as JSON); an error becomes a message
/// and its exit code.
pub(super) fn finish<T: serde::Serialize>(
    result: Result<T, Error>,
    json: bool,
    show: impl FnOnce(&T) -> std::io::Result<()>,
) -> anyhow::Result<i32> {
    match result {
        Ok(value) if json => output::json(&value).map(|()| exit::OK),
        Ok(value) => {
            show(&value)?;
            Ok(exit::OK)
        }
        Err(e) => Ok(exit::report(None, &e)),
    }
}

pub(super) async fn lease(
    client: &Client,
    command: LeaseCommand,
    json: bool,
) -> anyhow::Result<i32> {
    match command {
        LeaseCommand::Grant { ttl } => finish(client.grant_lease_id(ttl).await, json, |granted| {
            outln!("{}", granted.lease_id)
        }),
        LeaseCommand::Keepalive { id } => {
            let sent = Instant::now();
            let renewed = client
                .keepalive(id, sent + Duration::from_secs(10), Duration::from_secs(5))
                .await
                .map(|()| serde_json::json!({ "lease_id": id, "renewed": true }));
            finish(renewed, json, |_| {
                outln!("renewed {id} ({} round trip)", duration(sent.elapsed()))
            })
        }
        LeaseCommand::Revoke { id } => {
            let revoked = client
                .revoke(id)
                .await
                .map(|()| serde_json::json!({ "lease_id": id, "revoked": true }));
            finish(revoked, json, |_| outln!("revoked {id}"))
        }
        LeaseCommand::Show { id } => finish(client.lease(id).await, json, |lease| {
            outln!(
                "lease {}  ttl {}  order {:?}  lock-delay {}",
                lease.lease_id,
                duration(Duration::from_millis(lease.ttl_ms)),
                lease.lock_order,
                duration(Duration::from_millis(lease.lock_delay_ms))
            )?;
            let rows: Vec<Vec<String>> = [
                ("lock", &lease.locks),
                ("semaphore", &lease.semaphores),
                ("election", &lease.elections),
            ]
            .into_iter()
            .flat_map(|(kind, held)| {
                held.iter().map(move |h| {
                    vec![
                        kind.to_string(),
                        h.name.to_string(),
                        h.fencing_token.to_string(),
                    ]
                })
            })
            .collect();
            output::table(&["KIND", "NAME", "TOKEN"], &rows)
        }),
    }
}

/// A lease id, or `(hidden)` where auth keeps it from this token.
fn shown_lease(lease_id: Option<corral_api::LeaseId>) -> String {
    lease_id.map_or_else(|| "(hidden)".to_string(), |id| id.to_string())
}

fn lock_row(lock: &LockView) -> Vec<String> {
    let holders: Vec<String> = lock
        .holders
        .iter()
        .map(|h| shown_lease(h.lease_id))
        .collect();
    let mode = match lock.holders.first().map(|h| h.mode) {
        Some(Mode::Exclusive) => "exclusive",
        Some(Mode::Shared) => "shared",
        None if lock.delayed_until_ms.is_some() => "delayed",
        None => "-",
    };
    let token = lock
        .holders
        .iter()
        .map(|h| h.fencing_token)
        .max()
        .map_or("-".into(), |t: FencingToken| t.to_string());
    vec![
        lock.name.to_string(),
        mode.to_string(),
        token,
        if holders.is_empty() {
            "-".into()
        } else {
            holders.join(",")
        },
        lock.queue.len().to_string(),
    ]
}

/// Unix milliseconds as a time of day, `HH:MM:SS.mmm` (UTC).
fn clock_time(at_ms: u64) -> String {
    let day_ms = at_ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1_000 % 60,
        day_ms % 1_000
    )
}

const LOCK_HEADER: [&str; 5] = ["NAME", "MODE", "TOKEN", "HOLDERS", "WAITERS"];

pub(super) async fn locks(
    client: &Client,
    command: LocksCommand,
    json: bool,
) -> anyhow::Result<i32> {
    match command {
        LocksCommand::List { prefix } => finish(client.locks(&prefix).await, json, |list| {
            let rows: Vec<Vec<String>> = list.locks.iter().map(lock_row).collect();
            output::table(&LOCK_HEADER, &rows)?;
            if list.truncated {
                outln!("(more: narrow the prefix)")?;
            }
            Ok(())
        }),
        LocksCommand::History { name } => {
            let name = lock_name(&name)?;
            finish(client.lock_history(&name).await, json, |history| {
                let rows: Vec<Vec<String>> = history
                    .events
                    .iter()
                    .map(|e| {
                        vec![
                            e.seq.to_string(),
                            clock_time(e.at_ms),
                            format!("{:?}", e.kind),
                            e.lease_id.map_or("-".into(), |l| l.to_string()),
                            e.fencing_token.map_or("-".into(), |t| t.to_string()),
                        ]
                    })
                    .collect();
                output::table(&["SEQ", "TIME (UTC)", "EVENT", "LEASE", "TOKEN"], &rows)
            })
        }
        LocksCommand::Show { name } => {
            let name = lock_name(&name)?;
            finish(client.lock(&name).await, json, |lock| {
                output::table(&LOCK_HEADER, &[lock_row(lock)])?;
                if !lock.queue.is_empty() {
                    outln!()?;
                    let rows: Vec<Vec<String>> = lock
                        .queue
                        .iter()
                        .enumerate()
                        .map(|(i, w)| {
                            vec![
                                i.to_string(),
                                shown_lease(w.lease_id),
                                format!("{:?}", w.mode).to_lowercase(),
                                if w.acquire_all { "yes" } else { "no" }.into(),
                            ]
                        })
                        .collect();
                    output::table(&["#", "WAITING LEASE", "MODE", "ACQUIRE-ALL"], &rows)?;
                }
                Ok(())
            })
        }
    }
}

pub(super) async fn cluster(
    client: &Client,
    command: ClusterCommand,
    json: bool,
) -> anyhow::Result<i32> {
    match command {
        ClusterCommand::Status => status(client, json).await,
        ClusterCommand::Members => members::list(client, json).await,
        ClusterCommand::Add(args) => members::add(client, args, json).await,
        ClusterCommand::Remove(args) => members::remove(client, args, json).await,
    }
}

/// `corral cluster status`.
async fn status(client: &Client, json: bool) -> anyhow::Result<i32> {
    finish(client.cluster().await, json, |view| {
        let show = |i: Option<u64>| i.map_or("-".into(), |i| i.to_string());
        outln!(
            "node {} says: leader {}, term {}, commit {}, applied {}, snapshot {}, auth {}",
            view.node_id,
            show(view.leader_id),
            view.term,
            show(view.commit_index),
            show(view.applied_index),
            show(view.snapshot_index),
            if view.auth_enabled { "on" } else { "off" }
        )?;
        let rows: Vec<Vec<String>> = view
            .members
            .iter()
            .map(|m| {
                let client_addr = m.client_addr.clone().unwrap_or_else(|| "?".into());
                vec![
                    m.id.to_string(),
                    client_addr,
                    m.addr.clone(),
                    m.role.clone(),
                ]
            })
            .collect();
        output::table(&["ID", "CLIENT ADDRESS", "PEER ADDRESS", "ROLE"], &rows)
    })
}

pub(super) async fn kv(client: &Client, command: KvCommand, json: bool) -> anyhow::Result<i32> {
    match command {
        KvCommand::Get { key } => {
            let key = lock_name(&key)?;
            match client.kv_get(&key).await {
                Ok(None) => {
                    eprintln!("corral: no such key {key}");
                    Ok(exit::NOT_ACQUIRED)
                }
                Ok(Some(value)) => finish(Ok(value), json, |v| outln!("{}", v.value)),
                Err(e) => finish::<KvValue>(Err(e), json, |_| Ok(())),
            }
        }
        KvCommand::Put {
            key,
            value,
            lock,
            fencing_token,
        } => {
            let fence = Fence {
                lock: lock_name(&lock)?,
                fencing_token: FencingToken(fencing_token),
            };
            let written = client.kv_put(&lock_name(&key)?, &value, fence).await;
            finish(written, json, |w| {
                outln!("wrote {} under token {}", w.key, w.fencing_token)
            })
        }
        KvCommand::Delete {
            key,
            lock,
            fencing_token,
        } => {
            let fence = Fence {
                lock: lock_name(&lock)?,
                fencing_token: FencingToken(fencing_token),
            };
            let deleted = client.kv_delete(&lock_name(&key)?, fence).await;
            finish(deleted, json, |w| {
                outln!("deleted {} under token {}", w.key, w.fencing_token)
            })
        }
    }
}
