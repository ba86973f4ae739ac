//! `corral`: run a node of the lock service or a local 3-node cluster, and
//! the client commands (`corral lock NAME -- CMD`, `corral locks list`, ...).

/// `print!` for a command's output: an `io::Result` to return with `?`
/// (see [`cli::output::write`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::write(format_args!($($arg)*))
    };
}

/// `println!` for a command's output, as [`out!`].
macro_rules! outln {
    () => {
        out!("\n")
    };
    ($($arg:tt)*) => {
        out!("{}\n", format_args!($($arg)*))
    };
}

mod cli;
mod dev;
mod local_cluster;

use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use corral_server::{
    parse_initial_cluster, parse_lock_order, RaftSettings, ServerConfig, TlsFiles,
};

// A node allocates and frees many small buffers per request on one or two
// threads; mimalloc's per-thread free lists cost less there than glibc's
// arenas.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "corral",
    version,
    about = "A replicated lock service: leases, fenced locks, FIFO waiting.",
    after_help = cli::EXIT_CODES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
    #[command(flatten)]
    connection: cli::Connection,
}

#[derive(Subcommand)]
enum Commands {
    /// Run one node of a cluster.
    Server(Box<ServerArgs>),
    /// Run a local 3-node cluster on 127.0.0.1:7101-7103, each node its own
    /// process; Ctrl-C stops all three.
    Dev(dev::DevArgs),
    #[command(flatten)]
    Client(cli::ClientCommand),
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Log lines as text for people, or as one JSON object per line for
    /// log shippers. Filter with RUST_LOG (default info,openraft=warn).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "CORRAL_LOG_FORMAT")]
    log_format: LogFormat,
    /// This node's id: one of the ids in --initial-cluster.
    #[arg(long)]
    node_id: u64,
    /// Address to listen on for clients, and for peers too unless
    /// --peer-listen is given.
    #[arg(long)]
    listen: std::net::SocketAddr,
    /// Address to listen on for peers (raft and forwarding), apart from
    /// clients: the client listener then serves no /raft/* route, and
    /// --initial-cluster lists these addresses. Without it, peers share the
    /// client listener, unauthenticated.
    #[arg(long)]
    peer_listen: Option<std::net::SocketAddr>,
    /// The host:port clients reach this node on, as the other members show
    /// it in GET /v1/cluster (default: --listen).
    #[arg(long)]
    advertise: Option<String>,
    /// Serve clients over HTTPS with this certificate chain (PEM); needs
    /// --tls-key and --peer-listen. Replacing the files takes effect for
    /// new connections without a restart.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM); needs
    /// --tls-cert.
    #[arg(long, requires = "tls_cert")]
    client_ca: Option<PathBuf>,
    /// Mutual TLS between peers: this node's certificate chain (PEM),
    /// presented on --peer-listen and to the peers it connects to; needs
    /// --peer-tls-key, --peer-ca and --peer-listen. A peer connection
    /// without a certificate of --peer-ca is refused in the handshake.
    #[arg(long, requires_all = ["peer_tls_key", "peer_ca"])]
    peer_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --peer-tls-cert.
    #[arg(long, requires = "peer_tls_cert")]
    peer_tls_key: Option<PathBuf>,
    /// The CA (PEM) every peer's certificate must be signed by.
    #[arg(long, requires = "peer_tls_cert")]
    peer_ca: Option<PathBuf>,
    /// The most connections the client listener keeps open; more are
    /// closed as they arrive. Without --peer-listen, peers' connections
    /// count too.
    #[arg(
        long,
        default_value_t = corral_server::CLIENT_CONNECTIONS_MAX_DEFAULT,
        value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u32).range(1..=1_000_000), |n| n as usize)
    )]
    client_connections_max: usize,
    /// How long a client may take to send a request's headers (or its
    /// first request on a new connection, TLS handshake included, or its
    /// next request on an idle one, or a request's body), in milliseconds;
    /// slower connections are closed.
    #[arg(
        long,
        default_value_t = corral_server::HEADER_READ_TIMEOUT_MS_DEFAULT,
        value_parser = clap::value_parser!(u64).range(100..=600_000)
    )]
    header_read_timeout_ms: u64,
    /// Folder of this node's RocksDB database (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// Every member at first start, as id=host:port,... (their
    /// --peer-listen addresses, or --listen without it). The cluster forms
    /// once all are up; a restart never re-initializes it.
    #[arg(long, required_unless_present = "join", conflicts_with = "join")]
    initial_cluster: Option<String>,
    /// Join a running cluster instead of forming one: the node waits, its
    /// peer listener open, until an admin adds it (`corral cluster add`).
    /// Keep the flag on restarts.
    #[arg(long)]
    join: bool,
    /// Raft heartbeat interval, in milliseconds.
    #[arg(long, default_value_t = RaftSettings::default().heartbeat_ms)]
    heartbeat_ms: u64,
    /// Shortest raft election timeout, in milliseconds.
    #[arg(long, default_value_t = RaftSettings::default().election_timeout_min_ms)]
    election_timeout_min_ms: u64,
    /// Longest raft election timeout, in milliseconds. Leases must be at
    /// least twice as long.
    #[arg(long, default_value_t = RaftSettings::default().election_timeout_max_ms)]
    election_timeout_max_ms: u64,
    /// Snapshot the lock table once the log since the last snapshot holds
    /// at least this many entries, and at least as many as the table holds
    /// items; then purge the log before it.
    #[arg(long, default_value_t = RaftSettings::default().snapshot_logs)]
    snapshot_logs: u64,
    /// The cluster's lock order, as name prefixes, lowest rank first (e.g.
    /// `user/,cart/,inventory/`): an acquire of a lock ranked before one the
    /// lease holds is refused. Give every node the same value; the
    /// leader's is written into the replicated state.
    #[arg(long, default_value = "")]
    lock_order: String,
    /// How long the cluster remembers the answer to a request sent with an
    /// `Idempotency-Key` header, in milliseconds of state-machine time.
    #[arg(long, default_value_t = corral_server::IDEMPOTENCY_WINDOW_MS_DEFAULT)]
    idempotency_window_ms: u64,
    /// The most keys the fenced key-value store may hold (deleted keys
    /// count: they keep the highest token that wrote them).
    #[arg(long, default_value_t = corral_server::KV_KEYS_MAX_DEFAULT)]
    kv_keys_max: usize,
    /// The most bytes the fenced key-value store may hold: keys plus values
    /// as JSON (so snapshots stay small enough to ship).
    #[arg(long, default_value_t = corral_server::KV_BYTES_MAX_DEFAULT)]
    kv_bytes_max: usize,
    /// The most items one work queue may hold; an enqueue past it is
    /// refused with 429 and adds nothing.
    #[arg(long, default_value_t = corral_server::QUEUE_ITEMS_MAX_DEFAULT)]
    queue_items_max: usize,
    /// The most work queues there may be.
    #[arg(long, default_value_t = corral_server::QUEUES_MAX_DEFAULT)]
    queues_max: usize,
    /// Turn auth on: a file holding the root token's secret (at least 16
    /// bytes; generate one with `openssl rand -hex 32`). At the cluster's
    /// first start with it, its hash goes into the replicated state, and
    /// from then on every /v1 request needs `Authorization: Bearer`. Needs
    /// --peer-listen.
    #[arg(long)]
    auth_root_token_file: Option<PathBuf>,
    /// With auth on, /metrics needs a token too.
    #[arg(long)]
    auth_metrics: bool,
    /// The most live leases of a token added without quotas of its own.
    #[arg(long, default_value_t = corral_server::TOKEN_LEASES_MAX_DEFAULT)]
    token_leases_max: u32,
    /// The most locks, permits and leaderships held plus waits queued over
    /// the leases of a token added without quotas of its own.
    #[arg(long, default_value_t = corral_server::TOKEN_HOLDS_MAX_DEFAULT)]
    token_holds_max: u32,
    /// The most fenced keys a token added without quotas of its own may
    /// create.
    #[arg(long, default_value_t = corral_server::TOKEN_KV_KEYS_MAX_DEFAULT)]
    token_kv_keys_max: u32,
    /// Threads that run requests and raft. 1 runs them all on one thread,
    /// which costs fewest thread wake-ups per write and is fastest when
    /// nodes share cores; 0 means one per CPU. Log syncs and snapshot
    /// encoding always run on threads of their own.
    #[arg(long, default_value_t = 1, env = "CORRAL_WORKER_THREADS")]
    worker_threads: usize,
    /// FAILURE TESTS ONLY: accept POST /test/faults, which partitions this
    /// node from peers, skews its clock and slows its log sync. Never in
    /// production.
    #[arg(long)]
    test_faults: bool,
    /// FAILURE TESTS ONLY (needs --test-faults): offset this node's wall
    /// clock by this many milliseconds, forward or backward.
    #[arg(
        long,
        default_value_t = 0,
        allow_negative_numbers = true,
        requires = "test_faults"
    )]
    test_clock_offset_ms: i64,
}

fn main() -> anyhow::Result<()> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let ended = match cli.command {
        Commands::Server(args) => return run_server(*args),
        Commands::Dev(args) => dev::run(args),
        Commands::Client(command) => {
            let mut connection = cli.connection;
            connection
                .settle_token(&matches)
                .unwrap_or_else(|e| e.exit());
            cli::run(connection, command).map(|code| std::process::exit(code))
        }
    };
    match ended {
        Err(e) if cli::output::closed_stdout(&e) => end_by_sigpipe(),
        ended => ended,
    }
}

/// A client command whose reader went away (`corral locks list | head`)
/// ends as Unix tools do, by SIGPIPE, once it has given back what it held.
/// The signal is only raised here, at the end: until then it stays ignored
/// (Rust's default), so that no write, to stdout or to a child's stdin,
/// kills the process midway.
fn end_by_sigpipe() -> ! {
    // SAFETY: restores the default disposition and raises the signal; no
    // handler of ours runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    // Only if the signal did not end the process: the shell's code for it.
    std::process::exit(128 + libc::SIGPIPE)
}

/// How a server writes its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines, with span fields (request ids) inline.
    Text,
    /// One JSON object per line: timestamp, level, target, fields, and the
    /// spans it happened in.
    Json,
}

fn run_server(args: ServerArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match args.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
    let config = ServerConfig {
        node_id: args.node_id,
        listen: args.listen,
        peer_listen: args.peer_listen,
        advertise: args.advertise,
        tls: args.tls_cert.zip(args.tls_key).map(|(cert, key)| TlsFiles {
            cert,
            key,
            ca: args.client_ca,
        }),
        peer_tls: args
            .peer_tls_cert
            .zip(args.peer_tls_key)
            .map(|(cert, key)| TlsFiles {
                cert,
                key,
                ca: args.peer_ca,
            }),
        client_connections_max: args.client_connections_max,
        header_read_timeout_ms: args.header_read_timeout_ms,
        data_dir: args.data_dir,
        initial_cluster: match &args.initial_cluster {
            Some(spec) => parse_initial_cluster(spec)?,
            None => Default::default(),
        },
        join: args.join,
        raft: RaftSettings {
            heartbeat_ms: args.heartbeat_ms,
            election_timeout_min_ms: args.election_timeout_min_ms,
            election_timeout_max_ms: args.election_timeout_max_ms,
            snapshot_logs: args.snapshot_logs,
        },
        lock_order: parse_lock_order(&args.lock_order)?,
        idempotency_window_ms: args.idempotency_window_ms,
        kv_keys_max: args.kv_keys_max,
        kv_bytes_max: args.kv_bytes_max,
        queue_items_max: args.queue_items_max,
        queues_max: args.queues_max,
        auth_root_token_file: args.auth_root_token_file,
        token_quotas: corral_server::Quotas {
            leases_max: args.token_leases_max,
            holds_max: args.token_holds_max,
            kv_keys_max: args.token_kv_keys_max,
        },
        auth_metrics: args.auth_metrics,
        test_faults: args.test_faults,
        test_clock_offset_ms: args.test_clock_offset_ms,
    };
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let runtime = server_runtime(args.worker_threads).context("starting the tokio runtime")?;
    // The signal handlers need the runtime: installed inside it.
    let served =
        runtime.block_on(async move { corral_server::serve(config, shutdown_signal()).await });
    match served {
        // A removed node must not come back: the exit status tells its
        // supervisor so (the systemd unit does not restart on it).
        Err(e @ corral_server::ServeError::Removed { .. }) => {
            tracing::error!("{e}");
            std::process::exit(corral_server::EXIT_REMOVED)
        }
        served => Ok(served?),
    }
}

/// The server's runtime: one thread, or a pool of `threads` (0: one per
/// CPU).
fn server_runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads == 1 {
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if threads > 1 {
        builder.worker_threads(threads);
    }
    builder.enable_all().build()
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed by this call,
/// before the node listens and tells systemd it is ready: a signal that
/// came before them would meet the default action and end the process
/// without a clean shutdown.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let handlers = signal(SignalKind::terminate()).and_then(|term| {
        let interrupt = signal(SignalKind::interrupt())?;
        Ok((term, interrupt))
    });
    async move {
        let (mut term, mut interrupt) = match handlers {
            Ok(handlers) => handlers,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM and SIGINT; stop this node with SIGKILL");
                return std::future::pending().await;
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
        }
    }
}
