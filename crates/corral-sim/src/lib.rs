//! Deterministic simulation of corral clusters.
//!
//! A run puts 3 or 5 corral nodes in one process, on one thread: each is
//! the real openraft core with corral's type config, log store, state
//! machine store and lock table ([`corral_raft::start_on`]), on a disk in
//! memory that loses what was not synced when the node crashes, talking
//! over a network that delays, loses, duplicates and cuts messages. Time
//! is tokio's paused clock, so minutes of a run take a moment; every
//! choice (faults, delays, openraft's election timeouts, the clients'
//! moves) comes from the run's seed, so a seed replays the same run, which
//! [`Report::trace_hash`] shows.
//!
//! Clients take leases with ttls of a few seconds and keep them alive,
//! take locks, write to fenced registers under their tokens and release,
//! retrying writes of unknown outcome with their idempotency keys; now and
//! then one walks away from a lock, or its keepalive comes late, and its
//! lease expires. Each node runs corral's leader rules
//! ([`corral_leader`]): the sweep that expires leases whose deadline
//! passed, bound to its term, and keepalives acked only after a quorum
//! confirms the leadership. Clients stay with the leader they found until
//! it fails them, so a deposed or paused leader gets their requests.
//!
//! The run checks, as it goes and at the end:
//! - no token is acked twice, and a grant's token is above every token
//!   acked before it was asked for;
//! - a holder's fenced write and release are never refused while its lease
//!   lives;
//! - no lease expires before its proven deadline (the send time of its
//!   grant or last acked keepalive, plus its ttl);
//! - each lock's history is linearizable ([`corral_check::FencedMutex`]);
//! - the cluster serves again after the faults heal, the replicas apply the
//!   same log to the same table that keeps its invariants, and no acked
//!   grant or write is lost.
//!
//! Proposals are stamped as a corral leader stamps them
//! ([`corral_leader::stamp_ms`]: state-machine time follows the leader's
//! monotonic clock), so a node's wall clock may drift, or jump by an hour,
//! without moving a window or a deadline. A panic in any task fails the
//! run; a run stuck for minutes of real time ends the process, naming its
//! seed.
//!
//! Not simulated: RocksDB itself, HTTP and forwarding, real clocks, and a
//! drift between the nodes' monotonic clocks (they all run on virtual
//! time). The process-level chaos suite (`tests/chaos.rs`) covers the
//! first three.

mod check;
mod clock;
mod cluster;
mod disk;
mod faults;
mod history;
mod leader;
mod net;
mod rng;
mod workload;

use std::sync::{mpsc, Arc, Mutex, MutexGuard, Once};
use std::thread::ThreadId;
use std::time::Duration;

use crate::cluster::Cluster;
use crate::history::History;
use crate::net::Net;
use crate::rng::SimRng;
use crate::workload::World;

/// The shape of a run.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// Nodes in the cluster: 3 or 5.
    pub nodes: u64,
    /// Clients taking locks.
    pub clients: usize,
    /// Virtual time with faults, before everything heals.
    pub faults_ms: u64,
}

impl Default for Scenario {
    fn default() -> Scenario {
        Scenario {
            nodes: 3,
            clients: 3,
            faults_ms: 30_000,
        }
    }
}

/// What a run did and found.
#[derive(Clone, Debug)]
pub struct Report {
    /// The seed of the run.
    pub seed: u64,
    /// A hash of the trace: two runs of one seed give the same.
    pub trace_hash: u64,
    /// Every event of the run, one line each, stamped with virtual time.
    pub trace: Vec<String>,
    /// Guarantees broken; empty when the run passed.
    pub violations: Vec<String>,
    /// Grants the clients were told of.
    pub grants: usize,
}

impl Report {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// The panics of each thread while it runs a simulation: a panic in any
/// task of a run fails the run.
static PANICS: Mutex<Vec<(ThreadId, Vec<String>)>> = Mutex::new(Vec::new());

fn panics() -> MutexGuard<'static, Vec<(ThreadId, Vec<String>)>> {
    PANICS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The panics caught on `thread`, taken out when `take`.
fn caught_on(thread: ThreadId, take: bool) -> Vec<String> {
    let mut panics = panics();
    let Some(at) = panics.iter().position(|(t, _)| *t == thread) else {
        return Vec::new();
    };
    if take {
        return panics.remove(at).1;
    }
    panics[at].1.clone()
}

/// Sends the panics of a thread that runs a simulation to its run; others
/// go to the hook that was there.
fn catch_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current().id();
            let mut panics = panics();
            let list = panics.iter_mut().find(|(t, _)| *t == thread);
            let at_ms = clock::elapsed_ms();
            let caught = list
                .map(|(_, list)| list.push(format!("at {at_ms} ms: {info}")))
                .is_some();
            drop(panics);
            if !caught {
                previous(info);
            }
        }));
    });
}

/// The longest a run may take in real time. A run that takes longer is
/// stuck (a task that spins, or waits on itself): the process ends, naming
/// the seed and what panicked, since the stuck thread cannot be stopped.
const RUN_REAL_TIME_MAX: Duration = Duration::from_secs(120);

/// Ends the process if the run of `seed` on `thread` is not over by
/// [`RUN_REAL_TIME_MAX`]; drop the answer to call it off.
fn watchdog(seed: u64, thread: ThreadId) -> mpsc::Sender<()> {
    let (done, finished) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(RUN_REAL_TIME_MAX) {
            let caught = caught_on(thread, false);
            eprintln!(
                "seed {seed}: the run is stuck after {RUN_REAL_TIME_MAX:?} of real time; panics: {caught:#?}"
            );
            std::process::exit(3);
        }
    });
    done
}

/// Runs the simulation of `scenario` for `seed`, on this thread.
pub fn run(seed: u64, scenario: Scenario) -> Report {
    debug_assert!(scenario.nodes == 3 || scenario.nodes == 5);
    catch_panics();
    let thread = std::thread::current().id();
    panics().push((thread, Vec::new()));
    let watchdog = watchdog(seed, thread);
    corral_raft::seed_thread_rng(Some(seed));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build();
    let mut report = match runtime {
        Ok(runtime) => runtime.block_on(simulate(seed, scenario)),
        Err(e) => failed(seed, format!("no runtime: {e}")),
    };
    corral_raft::seed_thread_rng(None);
    drop(watchdog);
    let caught = caught_on(thread, true);
    report
        .violations
        .extend(caught.into_iter().map(|p| format!("a task panicked: {p}")));
    report
}

fn failed(seed: u64, why: String) -> Report {
    Report {
        seed,
        trace_hash: 0,
        trace: Vec::new(),
        violations: vec![why],
        grants: 0,
    }
}

async fn simulate(seed: u64, scenario: Scenario) -> Report {
    clock::start();
    let rng = SimRng::new(seed);
    let net = Net::new(rng.clone());
    let history = History::default();
    let cluster = Cluster::start(scenario.nodes, net, history.clone(), rng.clone()).await;
    let world = World {
        cluster: Arc::new(cluster),
        history,
        rng,
    };
    let end_ms = scenario.faults_ms;
    let clients: Vec<_> = (0..scenario.clients as u64)
        .map(|n| tokio::spawn(workload::client(world.clone(), n, end_ms)))
        .collect();
    faults::inject(world.clone(), end_ms).await;
    for client in clients {
        if let Err(e) = client.await {
            world.history.violation(format!("a client failed: {e}"));
        }
    }
    check::heal_and_check(&world).await;
    Report {
        seed,
        trace_hash: world.history.trace_hash(),
        trace: world.history.lines(),
        violations: world.history.violations(),
        grants: world.history.grants().len(),
    }
}
