//! `corral queue push|stats|items|configure|work`: work queues. `work`
//! runs a command for each item it claims, through `hold::run_while`, the
//! child handling of `corral lock`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use corral_api::VISIBILITY_MS_MAX;
use corral_client::{
    ClaimGuard, Client, EnqueueResponse, Error, FencingToken, ItemId, ItemList, ItemState,
    ItemView, Lease, LeaseId, LockName, Queue, QueueView,
};
use serde_json::Value;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::hold::{run_while, Job, Ran};
use super::inspect::finish;
use super::output::{self, date_time, duration, parse_duration};
use super::{exit, lock_name};

/// How long one claim of `work` waits server-side for an item.
const CLAIM_WAIT: Duration = Duration::from_secs(30);
/// How long `work` pauses after the cluster did not answer a claim.
const UNAVAILABLE_PAUSE: Duration = Duration::from_secs(1);
/// The most characters of a payload `items` shows.
const PAYLOAD_SHOWN_MAX: usize = 60;

/// `corral queue ...`.
#[derive(Subcommand, Debug)]
pub(crate) enum QueueCommand {
    /// Push an item, and print its id.
    Push(PushArgs),
    /// Show a queue's counts and settings.
    Stats {
        /// The queue: 1 to 512 bytes, no control characters.
        queue: String,
    },
    /// List a queue's items, oldest first.
    Items(ItemsArgs),
    /// Set how a queue treats items that keep coming back.
    Configure(ConfigureArgs),
    /// Run a command for each item of a queue.
    ///
    /// Claims items one at a time per worker under a lease kept alive, and
    /// runs the command with the item's payload (one line of JSON) on
    /// stdin and CORRAL_QUEUE, CORRAL_ITEM_ID, CORRAL_FENCING_TOKEN,
    /// CORRAL_ATTEMPT and CORRAL_LEASE_ID in its environment. The claim is
    /// extended while the command runs; exit 0 acks the item, anything
    /// else nacks it (it is ready again after --nack-delay-ms). If the
    /// claim is lost, the command gets SIGTERM, then SIGKILL after
    /// --grace. SIGINT and SIGTERM are passed to the running commands, and
    /// corral exits once they are done; exit 4 if the lease was lost.
    Work(WorkArgs),
}

/// `corral queue push`.
#[derive(Args, Debug)]
pub(crate) struct PushArgs {
    /// The queue: 1 to 512 bytes, no control characters.
    pub queue: String,
    /// The payload: any JSON (a string in its quotes: '"text"'), at most
    /// 64 KiB.
    #[arg(value_name = "JSON", value_parser = parse_payload)]
    pub payload: Value,
    /// How long until it is ready, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = ms_parser(0))]
    pub delay_ms: u64,
    /// A push with the dedup id of an earlier one (within the cluster's
    /// idempotency window) adds nothing and prints that item.
    #[arg(long, value_name = "ID")]
    pub dedup_id: Option<String>,
}

/// An item's state, as `--state` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum StateArg {
    /// Ready to be claimed.
    Ready,
    /// Claimed now.
    Claimed,
    /// Not ready yet.
    Delayed,
}

impl From<StateArg> for ItemState {
    fn from(state: StateArg) -> ItemState {
        match state {
            StateArg::Ready => ItemState::Ready,
            StateArg::Claimed => ItemState::Claimed,
            StateArg::Delayed => ItemState::Delayed,
        }
    }
}

/// `corral queue items`.
#[derive(Args, Debug)]
pub(crate) struct ItemsArgs {
    /// The queue: 1 to 512 bytes, no control characters.
    pub queue: String,
    /// Only the items in this state.
    #[arg(long, value_enum)]
    pub state: Option<StateArg>,
    /// The most items to list, 1 to 1000.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1_000))]
    pub limit: u16,
}

/// `corral queue configure`.
#[derive(Args, Debug)]
pub(crate) struct ConfigureArgs {
    /// The queue: 1 to 512 bytes, no control characters.
    pub queue: String,
    /// After this many claims, an item that comes back leaves for the
    /// dead-letter queue (or is dropped without one); 0: no limit.
    #[arg(long, value_name = "N")]
    pub max_attempts: u32,
    /// Where items go after --max-attempts.
    #[arg(long, value_name = "QUEUE")]
    pub dead_letter: Option<String>,
}

/// `corral queue work`.
#[derive(Args, Debug)]
pub(crate) struct WorkArgs {
    /// The queue: 1 to 512 bytes, no control characters.
    pub queue: String,
    /// How long a claim lasts unless extended, in milliseconds; it is
    /// extended every third of that while the command runs.
    #[arg(long, value_name = "MS", default_value_t = 30_000, value_parser = ms_parser(1))]
    pub visibility_ms: u64,
    /// How many items are worked on at once, each by its own command.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Stop after this many items (acked or not); without it, work until
    /// SIGINT or SIGTERM.
    #[arg(long, value_name = "N")]
    pub max_items: Option<u64>,
    /// How long a nacked item waits before it is ready again, in
    /// milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = ms_parser(0))]
    pub nack_delay_ms: u64,
    /// The lease's time to live; keepalives go every ttl/3.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub ttl: Duration,
    /// After a claim is lost, how long the command gets between SIGTERM
    /// and SIGKILL.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub grace: Duration,
    /// The command to run for each item, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Milliseconds from `min` to the longest visibility or delay.
fn ms_parser(min: u64) -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(min..=VISIBILITY_MS_MAX)
}

/// A payload: any JSON.
pub(super) fn parse_payload(text: &str) -> Result<Value, String> {
    serde_json::from_str(text)
        .map_err(|e| format!("not JSON ({e}); a string needs its quotes: '\"text\"'"))
}

/// Runs a `corral queue` command; returns the exit code.
pub(super) async fn run(client: Client, command: QueueCommand, json: bool) -> anyhow::Result<i32> {
    match command {
        QueueCommand::Push(args) => {
            let queue = client.queue(&lock_name(&args.queue)?);
            let delay = Duration::from_millis(args.delay_ms);
            let pushed = queue
                .push_with(&args.payload, delay, args.dedup_id.as_deref())
                .await;
            finish(pushed, json, |p| outln!("{}", pushed_line(queue.name(), p)))
        }
        QueueCommand::Stats { queue } => {
            let queue = client.queue(&lock_name(&queue)?);
            finish(queue.stats().await, json, show_stats)
        }
        QueueCommand::Items(args) => {
            let queue = client.queue(&lock_name(&args.queue)?);
            let state = args.state.map(ItemState::from);
            let items = queue.items(state, usize::from(args.limit)).await;
            finish(items, json, show_items)
        }
        QueueCommand::Configure(args) => {
            let queue = client.queue(&lock_name(&args.queue)?);
            let dead_letter = args.dead_letter.as_deref().map(lock_name).transpose()?;
            let view = queue
                .configure(args.max_attempts, dead_letter.as_ref())
                .await;
            finish(view, json, |v| outln!("{}: {}", v.queue, settings(v)))
        }
        QueueCommand::Work(args) => work(client, args).await,
    }
}

/// What a push did, for people.
pub(super) fn pushed_line(queue: &LockName, pushed: &EnqueueResponse) -> String {
    match pushed.duplicate {
        false => format!(
            "pushed item {} to {queue} (seq {})",
            pushed.item_id, pushed.seq
        ),
        true => format!(
            "item {} (seq {}) was pushed before with that dedup id; nothing added",
            pushed.item_id, pushed.seq
        ),
    }
}

/// The header of the stats table.
pub(super) const STATS_HEADER: [&str; 8] = [
    "QUEUE",
    "READY",
    "CLAIMED",
    "DELAYED",
    "WAITING CLAIMS",
    "OLDEST READY",
    "DEAD-LETTERED",
    "DROPPED",
];

/// The row of the stats table.
pub(super) fn stats_row(view: &QueueView) -> Vec<String> {
    let oldest = view
        .oldest_ready_age_ms
        .map_or_else(|| "-".to_string(), |ms| duration(Duration::from_millis(ms)));
    vec![
        view.queue.to_string(),
        view.ready.to_string(),
        view.claimed.to_string(),
        view.delayed.to_string(),
        view.waiting_claims.to_string(),
        oldest,
        view.dead_lettered_total.to_string(),
        view.dropped_total.to_string(),
    ]
}

/// A queue's settings, for people.
pub(super) fn settings(view: &QueueView) -> String {
    match (view.max_attempts, &view.dead_letter) {
        (0, _) => "no limit on attempts".to_string(),
        (n, Some(dead)) => format!("after {n} attempts an item moves to {dead}"),
        (n, None) => format!("after {n} attempts an item is dropped"),
    }
}

fn show_stats(view: &QueueView) -> std::io::Result<()> {
    output::table(&STATS_HEADER, &[stats_row(view)])?;
    outln!("{}", settings(view))
}

/// The header of the items table.
pub(super) const ITEMS_HEADER: [&str; 7] = [
    "ITEM",
    "SEQ",
    "STATE",
    "ATTEMPTS",
    "VISIBLE AT (UTC)",
    "TOKEN",
    "PAYLOAD",
];

/// A row of the items table: the payload as compact JSON, cut short.
pub(super) fn item_row(item: &ItemView) -> Vec<String> {
    let state = match item.state {
        ItemState::Ready => "ready",
        ItemState::Claimed => "claimed",
        ItemState::Delayed => "delayed",
    };
    let mut payload = item.payload.to_string();
    if payload.chars().count() > PAYLOAD_SHOWN_MAX {
        payload = payload.chars().take(PAYLOAD_SHOWN_MAX - 3).collect();
        payload.push_str("...");
    }
    vec![
        item.item_id.to_string(),
        item.seq.to_string(),
        state.to_string(),
        item.attempt.to_string(),
        date_time(item.visible_at_ms),
        item.fencing_token
            .map_or_else(|| "-".into(), |t| t.to_string()),
        payload,
    ]
}

fn show_items(list: &ItemList) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = list.items.iter().map(item_row).collect();
    output::table(&ITEMS_HEADER, &rows)?;
    if list.truncated {
        outln!("(more items: raise --limit)")?;
    }
    Ok(())
}

/// How many more items `work` may claim (`--max-items`), shared by its
/// workers: each takes one before it claims, and gives it back if no item
/// came.
#[derive(Debug)]
pub(super) struct Budget(Mutex<Option<u64>>);

impl Budget {
    pub(super) fn new(max_items: Option<u64>) -> Budget {
        Budget(Mutex::new(max_items))
    }

    fn left(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        // Every change is one assignment: a panic cannot leave it half
        // written.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes one item of the budget; false when none is left.
    pub(super) fn take(&self) -> bool {
        let mut left = self.left();
        match *left {
            None => true,
            Some(0) => false,
            Some(n) => {
                *left = Some(n - 1);
                true
            }
        }
    }

    /// Gives back one taken item.
    pub(super) fn give_back(&self) {
        if let Some(n) = self.left().as_mut() {
            *n += 1;
        }
    }
}

/// What the workers of one `work` share.
struct Workers {
    lease: Lease,
    queue: Queue,
    args: WorkArgs,
    budget: Budget,
    /// Set on SIGINT or SIGTERM, or when a worker fails: claim no more.
    stop: watch::Sender<bool>,
}

/// `corral queue work`: `--concurrency` workers under one lease, until
/// `--max-items` were taken, a signal, or a failure; then the lease is
/// revoked, which gives back a claim whose answer never came.
async fn work(client: Client, args: WorkArgs) -> anyhow::Result<i32> {
    let queue = client.queue(&lock_name(&args.queue)?);
    // Listening before the first claim: a signal stops the workers rather
    // than this process.
    let stop = stop_on_signals()?;
    let lease = match client.grant_lease(args.ttl).await {
        Ok(lease) => lease,
        Err(e) => return Ok(exit::report(Some("granting a lease"), &e)),
    };
    let workers = Arc::new(Workers {
        lease: lease.clone(),
        queue,
        budget: Budget::new(args.max_items),
        args,
        stop,
    });
    let mut tasks = JoinSet::new();
    for _ in 0..workers.args.concurrency {
        tasks.spawn(work_loop(workers.clone()));
    }
    let mut code = exit::OK;
    while let Some(done) = tasks.join_next().await {
        let done = done.unwrap_or(exit::ERROR);
        if done != exit::OK {
            workers.stop.send_replace(true);
            code = if code == exit::OK { done } else { code };
        }
    }
    if lease.is_held() {
        if let Err(e) = lease.revoke().await {
            eprintln!("corral: revoking the lease failed ({e}); it expires by itself");
        }
    }
    Ok(code)
}

/// A stop flag set on SIGINT or SIGTERM.
fn stop_on_signals() -> anyhow::Result<watch::Sender<bool>> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let (stop, _) = watch::channel(false);
    let set = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("corral: stopping once the items being worked on are done");
        set.send_replace(true);
    });
    Ok(stop)
}

/// One worker: claims an item, runs the command for it, and again, until
/// told to stop or the budget is spent. Returns its exit code.
async fn work_loop(workers: Arc<Workers>) -> i32 {
    let mut stop = workers.stop.subscribe();
    let visibility = Duration::from_millis(workers.args.visibility_ms);
    loop {
        if *stop.borrow_and_update() || !workers.budget.take() {
            return exit::OK;
        }
        let claim = workers
            .lease
            .claim_wait(&workers.queue, visibility, CLAIM_WAIT);
        let claimed = tokio::select! {
            claimed = claim => claimed,
            _ = stop.wait_for(|stop| *stop) => Ok(None),
        };
        let guard = match claimed {
            Ok(Some(guard)) => guard,
            Ok(None) => {
                workers.budget.give_back();
                continue;
            }
            Err(Error::Unavailable(e)) => {
                workers.budget.give_back();
                eprintln!("corral: claiming failed ({e}); trying again");
                tokio::time::sleep(UNAVAILABLE_PAUSE).await;
                continue;
            }
            Err(e) => {
                let what = format!("claiming from {}", workers.queue.name());
                return exit::report(Some(&what), &e);
            }
        };
        if let Some(code) = workers.run_item(guard).await {
            return code;
        }
    }
}

impl Workers {
    /// Runs the command for the item of `guard`, then acks or nacks it.
    /// `Some` exit code when the worker must end.
    async fn run_item(&self, guard: ClaimGuard) -> Option<i32> {
        let what = format!("item {} of {}", guard.item_id(), guard.queue());
        let item = (guard.item_id(), guard.fencing_token(), guard.attempt());
        let job = Job {
            argv: &self.args.command,
            env: item_env(guard.queue(), item, self.lease.id()),
            stdin: Some(stdin_of(guard.payload())),
            what: what.clone(),
            grace: self.args.grace,
        };
        let ran = match run_while(job, guard.lost()).await {
            Ok(ran) => ran,
            Err(e) => {
                eprintln!("corral: cannot run the command for {what}: {e:#}");
                return Some(exit::ERROR);
            }
        };
        let attempt = guard.attempt();
        let settled = match ran {
            Ran::Exited(0) => guard.ack().await.map(|()| "acked".to_string()),
            Ran::Exited(_) | Ran::Failed => {
                let delay = Duration::from_millis(self.args.nack_delay_ms);
                let nacked = guard.nack(delay).await;
                nacked.map(|n| nacked_word(n.dead_lettered, delay))
            }
            Ran::Stopped => {
                drop(guard);
                let lost = !self.lease.is_held();
                return lost.then_some(exit::LEASE_LOST);
            }
        };
        match settled {
            Ok(word) => eprintln!("corral: {what} (attempt {attempt}): {}; {word}", ran_words(ran)),
            Err(e) => eprintln!(
                "corral: {what} (attempt {attempt}): {}; settling it failed ({e}); it comes back when its claim runs out",
                ran_words(ran)
            ),
        }
        None
    }
}

/// What the command of an item (its id, claim token and attempt) finds in
/// its environment.
pub(super) fn item_env(
    queue: &LockName,
    item: (ItemId, FencingToken, u32),
    lease_id: LeaseId,
) -> Vec<(&'static str, String)> {
    let (item_id, token, attempt) = item;
    vec![
        ("CORRAL_QUEUE", queue.to_string()),
        ("CORRAL_ITEM_ID", item_id.to_string()),
        ("CORRAL_FENCING_TOKEN", token.to_string()),
        ("CORRAL_ATTEMPT", attempt.to_string()),
        ("CORRAL_LEASE_ID", lease_id.to_string()),
    ]
}

/// What the command of an item reads on stdin: its payload, one line of
/// JSON.
pub(super) fn stdin_of(payload: &Value) -> Vec<u8> {
    let mut line = payload.to_string().into_bytes();
    line.push(b'\n');
    line
}

/// How a command's run ended, for people.
pub(super) fn ran_words(ran: Ran) -> String {
    match ran {
        Ran::Exited(0) => "done".to_string(),
        Ran::Exited(code) => format!("the command exited with {code}"),
        Ran::Failed => "the command did not run".to_string(),
        Ran::Stopped => "the claim was lost".to_string(),
    }
}

/// What a nack did, for people.
pub(super) fn nacked_word(dead_lettered: bool, delay: Duration) -> String {
    match (dead_lettered, delay.is_zero()) {
        (true, _) => "nacked after its last attempt: it left the queue".to_string(),
        (false, true) => "nacked: ready again".to_string(),
        (false, false) => format!("nacked: ready again in {}", duration(delay)),
    }
}

#[cfg(test)]
#[path = "queue_test.rs"]
mod tests;
