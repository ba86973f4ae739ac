//! `corral dev`: three (or five) nodes as processes of this binary, on
//! loopback, with their data and logs in one folder.

use std::path::PathBuf;
use std::time::Duration;

use crate::local_cluster::LocalCluster;

#[derive(clap::Args)]
pub(crate) struct DevArgs {
    /// Folder for the nodes' data and logs.
    #[arg(long, default_value = "data/dev")]
    data_dir: PathBuf,
    /// Client port of node 1; the other nodes take the next ones. Each
    /// node serves its peers 100 ports above its client port.
    #[arg(long, default_value_t = 7101)]
    base_port: u16,
    /// How many nodes: 3 survive the loss of one, 5 of two. A data folder
    /// keeps the size it was first started with.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=9))]
    nodes: u16,
}

pub(crate) fn run(args: DevArgs) -> anyhow::Result<()> {
    let stop = stop_requested();
    let mut cluster = LocalCluster::start(&args.data_dir, args.base_port, args.nodes)?;
    let outcome = cluster.wait_ready().and_then(|()| {
        announce(&args, &cluster.addrs)?;
        supervise(&mut cluster, stop)
    });
    cluster.stop_all();
    outcome
}

fn announce(args: &DevArgs, addrs: &[String]) -> std::io::Result<()> {
    outln!(
        "corral dev cluster is up: {} nodes, each its own process.",
        addrs.len()
    )?;
    for (i, a) in addrs.iter().enumerate() {
        outln!("  node {}: http://{a}", i + 1)?;
    }
    outln!("data and logs: {}", args.data_dir.display())?;
    outln!("try:")?;
    outln!(
        "  LEASE=$(curl -s -XPOST {base}/v1/leases -d '{{\"ttl_ms\":30000}}' | sed 's/.*\"lease_id\":\"\\([0-9a-f]*\\)\".*/\\1/')",
        base = format_args!("http://{}", addrs[0])
    )?;
    outln!(
        "  curl -s -XPOST http://{}/v1/locks/acquire -d \"{{\\\"lease_id\\\":\\\"$LEASE\\\",\\\"name\\\":\\\"invoice/42\\\"}}\"",
        addrs[1]
    )?;
    outln!("Ctrl-C stops them all.")
}

/// Waits until a node exits or this process is told to stop.
fn supervise(
    cluster: &mut LocalCluster,
    stop: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<()> {
    loop {
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        cluster.check()?;
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A flag set by SIGINT or SIGTERM.
fn stop_requested() -> &'static std::sync::atomic::AtomicBool {
    static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    extern "C" fn on_signal(_: libc::c_int) {
        STOP.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    &STOP
}
