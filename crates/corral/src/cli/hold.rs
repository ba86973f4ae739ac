//! `corral lock`, `corral elect`, `corral sem`: hold something while a
//! command runs, and stop the command if the hold is lost. `corral queue
//! work` runs its commands through [`run_while`] too.

use std::io::IsTerminal;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use corral_client::{Client, Error, Lease, LockGuard, LockName, LostReason, Mode};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};

use super::output::duration;
use super::{exit, HoldArgs};

/// What to hold.
pub(super) enum Claim {
    /// A lock, exclusive or shared.
    Lock { name: LockName, shared: bool },
    /// Leadership of an election, with a value.
    Election { name: LockName, value: String },
    /// Permits of a semaphore.
    Semaphore {
        name: LockName,
        limit: u32,
        permits: u32,
    },
}

impl Claim {
    fn describe(&self) -> String {
        match self {
            Claim::Lock { name, shared: true } => format!("shared lock {name}"),
            Claim::Lock { name, .. } => format!("lock {name}"),
            Claim::Election { name, .. } => format!("leadership of {name}"),
            Claim::Semaphore {
                name,
                limit,
                permits,
            } => format!("{permits} of {limit} permits of {name}"),
        }
    }

    async fn take(&self, lease: &Lease, wait: Duration) -> Result<LockGuard, Error> {
        match self {
            Claim::Lock { name, shared } => {
                let mode = if *shared {
                    Mode::Shared
                } else {
                    Mode::Exclusive
                };
                lease.acquire(name, mode, Some(wait)).await
            }
            Claim::Election { name, value } => lease.campaign(name, value, wait).await,
            Claim::Semaphore {
                name,
                limit,
                permits,
            } => lease.acquire_permits(name, *limit, *permits, wait).await,
        }
    }
}

/// Takes `claim` under a new lease, runs the command while holding it, and
/// gives it back on every way out. Returns the process exit code.
pub(super) async fn run(client: Client, claim: Claim, args: HoldArgs) -> anyhow::Result<i32> {
    let lease = match client.grant_lease(args.ttl).await {
        Ok(lease) => lease,
        Err(e) => return Ok(fail("granting a lease", &e)),
    };
    let what = claim.describe();
    if !args.wait.is_zero() {
        eprintln!("corral: waiting for {what} (up to {})", duration(args.wait));
    }
    let started = tokio::time::Instant::now();
    let guard = match claim.take(&lease, args.wait).await {
        Ok(guard) => guard,
        Err(e) => {
            let _ = lease.revoke().await;
            return Ok(fail(&format!("taking {what}"), &e));
        }
    };
    if !args.wait.is_zero() {
        eprintln!(
            "corral: got {what} after {} under token {}",
            duration(started.elapsed()),
            guard.fencing_token()
        );
    }
    // An error (a closed stdout, a command that did not start) is
    // returned once the claim is given back.
    let code = if args.command.is_empty() {
        hold_until_interrupted(&lease, &guard, &what).await
    } else {
        run_command(&lease, &guard, &args).await
    };
    let lost = !lease.is_held();
    if let Err(e) = guard.release().await {
        eprintln!("corral: releasing {what} failed ({e}); it goes when the lease ends");
    }
    if !lost {
        if let Err(e) = lease.revoke().await {
            eprintln!("corral: revoking the lease failed ({e}); it expires by itself");
        }
    }
    code
}

fn fail(what: &str, error: &Error) -> i32 {
    exit::report(Some(what), error)
}

/// Without a command: print the token and hold until Ctrl-C, SIGTERM or
/// the lease is lost.
async fn hold_until_interrupted(
    lease: &Lease,
    guard: &LockGuard,
    what: &str,
) -> anyhow::Result<i32> {
    outln!(
        "holding {what} under token {} (lease {}); Ctrl-C releases",
        guard.fencing_token(),
        lease.id()
    )?;
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            eprintln!("corral: cannot listen for SIGTERM: {e}");
            return Ok(exit::ERROR);
        }
    };
    Ok(tokio::select! {
        reason = lease.lost() => lost_message(reason, what),
        _ = tokio::signal::ctrl_c() => exit::OK,
        _ = term.recv() => exit::OK,
    })
}

fn lost_message(reason: LostReason, what: &str) -> i32 {
    eprintln!("corral: lost {what}: {reason}");
    exit::LEASE_LOST
}

/// Runs the command with the lock in its environment: see [`run_while`].
async fn run_command(lease: &Lease, guard: &LockGuard, args: &HoldArgs) -> anyhow::Result<i32> {
    let job = Job {
        argv: &args.command,
        env: vec![
            ("CORRAL_LOCK_NAME", guard.name().to_string()),
            ("CORRAL_FENCING_TOKEN", guard.fencing_token().to_string()),
            ("CORRAL_LEASE_ID", lease.id().to_string()),
        ],
        stdin: None,
        what: guard.name().to_string(),
        grace: args.grace,
    };
    Ok(match run_while(job, lease.lost()).await? {
        Ran::Exited(code) => code,
        Ran::Stopped => exit::LEASE_LOST,
        Ran::Failed => exit::ERROR,
    })
}

/// A command to run while something is held.
pub(super) struct Job<'a> {
    /// The command and its arguments.
    pub argv: &'a [String],
    /// What it finds in its environment, besides this process's.
    pub env: Vec<(&'static str, String)>,
    /// What it reads on stdin; `None`: this process's stdin.
    pub stdin: Option<Vec<u8>>,
    /// What is held, for messages.
    pub what: String,
    /// After the hold is lost, how long between SIGTERM and SIGKILL.
    pub grace: Duration,
}

/// How a command's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ran {
    /// It exited with this code (128 + N for signal N).
    Exited(i32),
    /// The hold was lost, and the command stopped.
    Stopped,
    /// It could not be started, or waiting for it failed (it was stopped).
    Failed,
}

/// Runs `job` until it exits, `lost` resolves (the command is stopped:
/// SIGTERM, then SIGKILL after the grace period), or this process is told
/// to stop (passed on to the command).
pub(super) async fn run_while<R: std::fmt::Display>(
    job: Job<'_>,
    lost: impl std::future::Future<Output = R>,
) -> anyhow::Result<Ran> {
    // Listening before the command starts, so no signal slips in between.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let Some((mut child, target)) = spawn(&job) else {
        return Ok(Ran::Failed);
    };
    tokio::pin!(lost);
    loop {
        tokio::select! {
            status = child.wait() => {
                return Ok(match status {
                    Ok(status) => Ran::Exited(exit_code(status)),
                    Err(e) => {
                        eprintln!("corral: waiting for the command failed ({e}); stopping it");
                        stop(&mut child, target, job.grace).await;
                        Ran::Failed
                    }
                });
            }
            reason = &mut lost => {
                eprintln!("corral: lost {} ({reason}); stopping the command", job.what);
                stop(&mut child, target, job.grace).await;
                return Ok(Ran::Stopped);
            }
            // In a shared group the terminal already sent it.
            _ = interrupt.recv() => if target.own_group { target.send(libc::SIGINT) },
            _ = term.recv() => target.send(libc::SIGTERM),
            _ = hangup.recv() => target.send(libc::SIGHUP),
        }
    }
}

/// Starts `job`'s command, feeding it its stdin if it has one; `None`
/// (said why) if it cannot start.
fn spawn(job: &Job<'_>) -> Option<(Child, Target)> {
    // From a terminal the command shares this process's group, so that it
    // can read the terminal; the terminal sends Ctrl-C to both. Otherwise
    // it gets a group of its own, so that stopping it stops its children
    // too.
    let own_group = !std::io::stdin().is_terminal();
    let mut command = Command::new(&job.argv[0]);
    command.args(&job.argv[1..]).envs(job.env.iter().cloned());
    command.stdin(match job.stdin {
        Some(_) => Stdio::piped(),
        None => Stdio::inherit(),
    });
    if own_group {
        command.process_group(0);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("corral: cannot run {}: {e}", job.argv[0]);
            return None;
        }
    };
    if let (Some(mut pipe), Some(input)) = (child.stdin.take(), job.stdin.clone()) {
        // Written apart, so that a command that does not read it cannot
        // stall this process; a command that exits early breaks the pipe,
        // which is its business.
        tokio::spawn(async move {
            let _ = pipe.write_all(&input).await;
        });
    }
    let target = Target {
        pid: child.id(),
        own_group,
    };
    Some((child, target))
}

/// Where to send the command's signals: its process group when it has its
/// own, else the process.
#[derive(Clone, Copy)]
struct Target {
    pid: Option<u32>,
    own_group: bool,
}

impl Target {
    fn send(self, signal: libc::c_int) {
        let Some(pid) = self.pid else {
            return;
        };
        let pid = pid as libc::pid_t;
        let target = if self.own_group { -pid } else { pid };
        // SAFETY: kill(2) on a process (group) this process spawned and
        // has not reaped yet.
        unsafe {
            libc::kill(target, signal);
        }
    }
}

/// SIGTERM, then SIGKILL if the command is still running after `grace`.
async fn stop(child: &mut Child, target: Target, grace: Duration) {
    target.send(libc::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        eprintln!(
            "corral: the command did not stop within {}; killing it",
            duration(grace)
        );
        target.send(libc::SIGKILL);
        let _ = child.wait().await;
    }
}

/// The command's exit code, or 128 + the signal that ended it.
fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(exit::ERROR)
}
