//! The client commands of the `corral` binary.

mod auth;
mod bench;
mod failover;
mod hold;
mod inspect;
mod members;
pub(crate) mod output;
mod queue;
mod snapshot;
mod snapshots;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, Subcommand};
use corral_client::{Client, LockName, RetryPolicy, TlsOptions};

pub(crate) use auth::AuthCommand;
pub(crate) use inspect::{ClusterCommand, KvCommand, LeaseCommand, LocksCommand};

/// Exit codes of the client commands.
pub(crate) mod exit {
    use corral_client::{Error, ErrorKind};

    /// Success (or the command's own code).
    pub(crate) const OK: i32 = 0;
    /// An error from the cluster or a bad argument it refused.
    pub(crate) const ERROR: i32 = 1;
    /// Not acquired: busy, or the wait ran out (or, for `kv`, no such key).
    pub(crate) const NOT_ACQUIRED: i32 = 3;
    /// The lease was lost while holding; the command was stopped.
    pub(crate) const LEASE_LOST: i32 = 4;
    /// No node of the cluster answered.
    pub(crate) const UNAVAILABLE: i32 = 5;

    /// The exit code for a failed call.
    pub(crate) fn for_error(error: &Error) -> i32 {
        match error {
            Error::Busy { .. } | Error::Timeout | Error::Deadlock { .. } => NOT_ACQUIRED,
            Error::LeaseLost => LEASE_LOST,
            Error::Unavailable(_) => UNAVAILABLE,
            _ => ERROR,
        }
    }

    /// What to do about a failed call, when there is more to say than the
    /// error.
    pub(crate) fn hint(error: &Error) -> Option<&'static str> {
        match error {
            Error::Unauthenticated(_) => Some(
                "this needs a token the cluster knows: give it with --token-file FILE or \
                 --token (CORRAL_TOKEN_FILE, CORRAL_TOKEN)",
            ),
            Error::Refused { kind, .. } => membership_hint(kind),
            _ => None,
        }
    }

    /// What to do about a refused membership change.
    fn membership_hint(kind: &ErrorKind) -> Option<&'static str> {
        let hint = match kind {
            ErrorKind::NoReachableMajority => {
                "`corral cluster members` shows which voters are unreachable; --force changes \
                 the membership anyway, and the cluster may then stall until they return"
            }
            ErrorKind::MembershipChangeInProgress => {
                "one membership change at a time: try again once the other one ends"
            }
            ErrorKind::LearnerLagging => {
                "the node stays a learner: run the same `corral cluster add` again to wait \
                 longer, or give a larger --catch-up-ms"
            }
            ErrorKind::JoinFailed => {
                "the node must run `corral server --join` with that --node-id, and the leader \
                 must reach its peer listener at --peer-addr"
            }
            ErrorKind::NodeIdRetired => "ids are never reused: give the new node another --node-id",
            ErrorKind::MemberNotFound => {
                "`corral cluster members` lists the members and the retired ids (a removal \
                 sent again after its answer was lost ends so too)"
            }
            _ => return None,
        };
        Some(hint)
    }

    /// Prints a failed call, `what` it was doing first if given, with its
    /// hint; returns its exit code.
    pub(crate) fn report(what: Option<&str>, error: &Error) -> i32 {
        match what {
            Some(what) => eprintln!("corral: {what}: {error}"),
            None => eprintln!("corral: {error}"),
        }
        if let Some(hint) = hint(error) {
            eprintln!("corral: {hint}");
        }
        for_error(error)
    }
}

/// The text `corral --help` ends with.
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes of the client commands:
  0    success; `lock`, `elect` and `sem` exit with their command's code
       (`queue work` acks an item its command exits 0 for, and nacks the others)
  1    an error: the cluster refused the request, or bad input
  2    bad usage
  3    not acquired: busy, deadlock or the wait ran out (`kv get`: no such key)
  4    the lease was lost while holding (or working); the command was stopped
  5    no node of the cluster answered
  128+N  the command was ended by signal N

Endpoints come from --endpoints or CORRAL_ENDPOINTS
(default 127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103, the `corral dev` cluster).
For a cluster that serves HTTPS, --cacert (CORRAL_CACERT) names the CA that
signed its certificates, trusted instead of the built-in roots, and --cert
and --key (CORRAL_CERT, CORRAL_KEY) the client certificate and key when the
servers require one; with any of them, host:port endpoints use https://.
For a cluster with auth on, --token-file (CORRAL_TOKEN_FILE) names a file
holding the bearer token sent with every request, or --token (CORRAL_TOKEN)
gives it; `corral auth token add` makes one.";

/// Where the cluster is, and how to print.
#[derive(Args, Clone, Debug)]
pub(crate) struct Connection {
    /// Nodes of the cluster, comma-separated (host:port or URLs).
    #[arg(
        long,
        env = "CORRAL_ENDPOINTS",
        default_value = "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103",
        global = true
    )]
    pub endpoints: String,
    /// The CA certificate (PEM) that signed the servers' certificates;
    /// trusted instead of the built-in roots. Endpoints without a scheme
    /// then use https://.
    #[arg(long, env = "CORRAL_CACERT", value_name = "FILE", global = true)]
    pub cacert: Option<PathBuf>,
    // The fields are named apart from the `key` arguments of subcommands
    // (`kv get KEY`), which a global argument of the same id clashes with.
    /// The client certificate chain (PEM), for servers that require client
    /// certificates; needs --key.
    #[arg(
        long = "cert",
        env = "CORRAL_CERT",
        value_name = "FILE",
        requires = "client_key",
        global = true
    )]
    pub client_cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(
        long = "key",
        env = "CORRAL_KEY",
        value_name = "FILE",
        requires = "client_cert",
        global = true
    )]
    pub client_key: Option<PathBuf>,
    /// The bearer token for a cluster with auth on, sent with every request
    /// (surrounding whitespace trimmed). Prefer --token-file: other users
    /// of the machine may see a command line. Not with --token-file (one
    /// on the command line beats one in the environment).
    #[arg(
        long,
        env = "CORRAL_TOKEN",
        value_name = "SECRET",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<Secret>,
    /// A file holding the bearer token (surrounding whitespace trimmed),
    /// for a cluster with auth on.
    #[arg(long, env = "CORRAL_TOKEN_FILE", value_name = "FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// Print JSON for scripts instead of text for people.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A secret given on the command line or in the environment, which
/// `Debug` does not show.
#[derive(Clone)]
pub(crate) struct Secret(String);

impl From<String> for Secret {
    fn from(secret: String) -> Secret {
        Secret(secret)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Connection {
    /// A client for these endpoints, over TLS if any TLS file is given,
    /// sending the token if one is given.
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        let endpoints = self.endpoints.split(',');
        let client = Client::with_tls(endpoints, RetryPolicy::default(), &self.tls())?;
        match self.token()? {
            Some(token) => Ok(client.with_token(token)?),
            None => Ok(client),
        }
    }

    /// Settles a --token given with a --token-file: the one on the command
    /// line wins over the one from the environment, and two from the same
    /// place are a usage error.
    pub(crate) fn settle_token(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        if self.token.is_none() || self.token_file.is_none() {
            return Ok(());
        }
        let on_line = |id| matches.value_source(id) == Some(ValueSource::CommandLine);
        match (on_line("token"), on_line("token_file")) {
            (true, false) => self.token_file = None,
            (false, true) => self.token = None,
            (true, true) => return Err(token_conflict("--token and --token-file")),
            (false, false) => return Err(token_conflict("CORRAL_TOKEN and CORRAL_TOKEN_FILE")),
        }
        Ok(())
    }

    /// Whether a token is given, by --token or --token-file.
    pub(crate) fn has_token(&self) -> bool {
        self.token.is_some() || self.token_file.is_some()
    }

    /// The bearer token given: --token, or what --token-file holds, with
    /// surrounding whitespace trimmed. Errors name the file, never the
    /// token.
    pub(crate) fn token(&self) -> anyhow::Result<Option<String>> {
        if let Some(Secret(token)) = &self.token {
            return match token.trim() {
                "" => Err(anyhow::anyhow!("--token (or CORRAL_TOKEN) is empty")),
                token => Ok(Some(token.to_string())),
            };
        }
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the token file {}", path.display()))?;
        match text.trim() {
            "" => anyhow::bail!("the token file {} is empty", path.display()),
            token => Ok(Some(token.to_string())),
        }
    }

    /// The TLS files given.
    pub(crate) fn tls(&self) -> TlsOptions {
        TlsOptions {
            ca: self.cacert.clone(),
            cert: self.client_cert.clone(),
            key: self.client_key.clone(),
        }
    }
}

/// The usage error of two tokens given by `both`.
fn token_conflict(both: &str) -> clap::Error {
    crate::Cli::command().error(
        clap::error::ErrorKind::ArgumentConflict,
        format!("{both} both give a token: give one"),
    )
}

/// How to hold something while a command runs.
#[derive(Args, Clone, Debug)]
pub(crate) struct HoldArgs {
    /// The lease's time to live; keepalives go every ttl/3.
    #[arg(long, default_value = "10s", value_parser = output::parse_duration)]
    pub ttl: Duration,
    /// How long to wait for it (0: fail at once if it is taken).
    #[arg(long, default_value = "30s", value_parser = output::parse_duration)]
    pub wait: Duration,
    /// After the lease is lost, how long the command gets between SIGTERM
    /// and SIGKILL.
    #[arg(long, default_value = "5s", value_parser = output::parse_duration)]
    pub grace: Duration,
    /// The command to run while holding, after `--`. Without one: hold
    /// until Ctrl-C, printing the token.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// `corral lock`.
#[derive(Args, Debug)]
pub(crate) struct LockArgs {
    /// The lock's name: 1 to 512 bytes, no control characters.
    pub name: String,
    /// Take it shared (a reader) instead of exclusive.
    #[arg(long)]
    pub shared: bool,
    #[command(flatten)]
    pub hold: HoldArgs,
}

/// `corral elect`.
#[derive(Args, Debug)]
pub(crate) struct ElectArgs {
    /// The election's name: 1 to 512 bytes, no control characters.
    pub name: String,
    /// The value to lead with (an address, an id).
    #[arg(long, default_value = "")]
    pub value: String,
    #[command(flatten)]
    pub hold: HoldArgs,
}

/// `corral sem`.
#[derive(Args, Debug)]
pub(crate) struct SemArgs {
    /// The semaphore's name: 1 to 512 bytes, no control characters.
    pub name: String,
    /// Its number of permits (every user must give the same).
    #[arg(long)]
    pub limit: u32,
    /// Permits to take, 1 to --limit.
    #[arg(long, default_value_t = 1)]
    pub permits: u32,
    #[command(flatten)]
    pub hold: HoldArgs,
}

/// The client commands.
#[derive(Subcommand, Debug)]
pub(crate) enum ClientCommand {
    /// Run a command while holding a lock; with none, hold it until Ctrl-C.
    ///
    /// The command gets CORRAL_LOCK_NAME, CORRAL_FENCING_TOKEN and
    /// CORRAL_LEASE_ID in its environment. If the lease is lost, the
    /// command gets SIGTERM, then SIGKILL after --grace, and corral exits
    /// with 4. Ctrl-C is passed to the command. The lock is released on
    /// every way out.
    Lock(LockArgs),
    /// Run a command while leading an election (as `lock` does).
    Elect(ElectArgs),
    /// Run a command while holding permits of a semaphore (as `lock`
    /// does).
    Sem(SemArgs),
    /// Grant, renew, revoke and show leases.
    #[command(subcommand)]
    Lease(LeaseCommand),
    /// List and show locks.
    #[command(subcommand)]
    Locks(LocksCommand),
    /// The cluster's status and members; add and remove members.
    ///
    /// With auth on, `members`, `add` and `remove` need a cluster admin's
    /// token (admin on `*` with the empty prefix).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Read and write the fenced key-value store.
    #[command(subcommand)]
    Kv(KvCommand),
    /// Push to work queues, show them, and work on their items.
    #[command(subcommand)]
    Queue(queue::QueueCommand),
    /// Manage the tokens of a cluster with auth on (needs a cluster
    /// admin's token: admin on `*` with the empty prefix).
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Back the cluster up to a file, and make new nodes from one.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    /// Load a cluster (or an etcd cluster, with --etcd) with
    /// acquire/release cycles and report throughput and latency
    /// percentiles.
    Bench(bench::BenchArgs),
    /// Print `corral bench --json` reports of corral and etcd side by side,
    /// with their ratios, as Markdown.
    BenchReport(bench::BenchReportArgs),
}

/// Runs a client command; returns the exit code.
pub(crate) fn run(connection: Connection, command: ClientCommand) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let client = connection.client()?;
        let json = connection.json;
        match command {
            ClientCommand::Lock(args) => {
                let claim = hold::Claim::Lock {
                    name: lock_name(&args.name)?,
                    shared: args.shared,
                };
                hold::run(client, claim, args.hold).await
            }
            ClientCommand::Elect(args) => {
                let claim = hold::Claim::Election {
                    name: lock_name(&args.name)?,
                    value: args.value,
                };
                hold::run(client, claim, args.hold).await
            }
            ClientCommand::Sem(args) => {
                let claim = hold::Claim::Semaphore {
                    name: lock_name(&args.name)?,
                    limit: args.limit,
                    permits: args.permits,
                };
                hold::run(client, claim, args.hold).await
            }
            ClientCommand::Lease(command) => inspect::lease(&client, command, json).await,
            ClientCommand::Locks(command) => inspect::locks(&client, command, json).await,
            ClientCommand::Cluster(command) => inspect::cluster(&client, command, json).await,
            ClientCommand::Kv(command) => inspect::kv(&client, command, json).await,
            ClientCommand::Queue(command) => queue::run(client, command, json).await,
            ClientCommand::Auth(command) => auth::run(&client, command, json).await,
            ClientCommand::Snapshot(command) => snapshot::run(&client, command).await,
            ClientCommand::Bench(args) => bench::run(&connection, args).await,
            ClientCommand::BenchReport(args) => bench::report(args),
        }
    })
}

/// Checks a lock (or semaphore, election, key) name.
pub(crate) fn lock_name(name: &str) -> anyhow::Result<LockName> {
    LockName::new(name).map_err(|e| anyhow::anyhow!("name `{name}`: {e}"))
}

#[cfg(test)]
#[path = "mod_test.rs"]
mod tests;
