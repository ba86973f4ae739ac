//! `corral dev`: three nodes as three processes of this binary, on
//! loopback, with their data and logs in one folder.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

#[derive(clap::Args)]
pub struct DevArgs {
    /// Folder for the three nodes' data and logs.
    #[arg(long, default_value = "data/dev")]
    data_dir: PathBuf,
    /// Port of node 1; nodes 2 and 3 take the next two.
    #[arg(long, default_value_t = 7101)]
    base_port: u16,
}

const NODES: u16 = 3;
const READY_WAIT: Duration = Duration::from_secs(30);

pub fn run(args: DevArgs) -> anyhow::Result<()> {
    let stop = stop_requested();
    let exe = std::env::current_exe().context("finding the corral binary")?;
    let addrs: Vec<String> = (0..NODES)
        .map(|i| format!("127.0.0.1:{}", args.base_port + i))
        .collect();
    let cluster = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{}={a}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut children = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let id = i + 1;
        let dir = args.data_dir.join(format!("n{id}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log_path = args.data_dir.join(format!("n{id}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let child = Command::new(&exe)
            .args([
                "server",
                "--node-id",
                &id.to_string(),
                "--listen",
                addr,
                "--initial-cluster",
                &cluster,
            ])
            .arg("--data-dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting node {id}"))?;
        children.push(child);
    }
    let outcome = wait_ready(&addrs, &mut children).and_then(|()| {
        announce(&args, &addrs);
        supervise(&mut children, stop)
    });
    stop_all(&mut children);
    outcome
}

fn wait_ready(addrs: &[String], children: &mut [Child]) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < READY_WAIT {
        check_children(children)?;
        if addrs.iter().all(|a| is_ready(a)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("the cluster did not elect a leader within {READY_WAIT:?}; see the node logs")
}

/// `GET /readyz` answers 200: the node knows a leader.
fn is_ready(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(addr) = addr.parse() else { return false };
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /readyz HTTP/1.0\r\nHost: corral\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}

fn announce(args: &DevArgs, addrs: &[String]) {
    println!("corral dev cluster is up: 3 nodes, each its own process.");
    for (i, a) in addrs.iter().enumerate() {
        println!("  node {}: http://{a}", i + 1);
    }
    println!("data and logs: {}", args.data_dir.display());
    println!("try:");
    println!(
        "  LEASE=$(curl -s -XPOST {base}/v1/leases -d '{{\"ttl_ms\":30000}}' | sed 's/.*\"lease_id\":\"\\([0-9a-f]*\\)\".*/\\1/')",
        base = format_args!("http://{}", addrs[0])
    );
    println!(
        "  curl -s -XPOST http://{}/v1/locks/acquire -d \"{{\\\"lease_id\\\":\\\"$LEASE\\\",\\\"name\\\":\\\"invoice/42\\\"}}\"",
        addrs[1]
    );
    println!("Ctrl-C stops all three.");
}

/// Waits until a node exits or this process is told to stop.
fn supervise(children: &mut [Child], stop: &std::sync::atomic::AtomicBool) -> anyhow::Result<()> {
    loop {
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        check_children(children)?;
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn check_children(children: &mut [Child]) -> anyhow::Result<()> {
    for (i, child) in children.iter_mut().enumerate() {
        if let Some(status) = child.try_wait()? {
            bail!("node {} exited ({status}); see its log", i + 1);
        }
    }
    Ok(())
}

/// Sends SIGTERM to every node still running and waits for it.
fn stop_all(children: &mut [Child]) {
    for child in children.iter() {
        // SAFETY: kill(2) with a pid we spawned and a valid signal number.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    for child in children.iter_mut() {
        let _ = child.wait();
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
