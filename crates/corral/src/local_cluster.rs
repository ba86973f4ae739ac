//! A cluster of this binary's `corral server` processes on loopback, with
//! their data and logs in one folder: what `corral dev` runs, what
//! `corral bench --workload failover` kills nodes of, and what `--workload
//! snapshots` adds a node to.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How far above its client port a node serves its peers.
pub(crate) const PEER_PORT_OFFSET: u16 = 100;

/// How long the nodes get to elect a leader.
pub(crate) const READY_WAIT: Duration = Duration::from_secs(30);

/// Nodes of this binary on 127.0.0.1, each a child process, for `corral
/// dev` and the failover benchmark.
pub(crate) struct LocalCluster {
    exe: PathBuf,
    data_dir: PathBuf,
    /// Node 1's client port; node `i + 1` takes the `i`-th port above it.
    base_port: u16,
    /// Nodes 1 to `initial` formed the cluster; later ones joined it.
    initial: usize,
    /// Node `i + 1` serves clients on `addrs[i]`.
    pub addrs: Vec<String>,
    /// Node `i + 1` serves peers on `peer_addrs[i]`.
    peer_addrs: Vec<String>,
    spec: String,
    children: Vec<Option<Child>>,
}

impl LocalCluster {
    /// Starts `nodes` nodes on client ports from `base_port` up (and peer
    /// ports from [`PEER_PORT_OFFSET`] above it), with data and logs under
    /// `data_dir`.
    pub(crate) fn start(
        data_dir: &Path,
        base_port: u16,
        nodes: u16,
    ) -> anyhow::Result<LocalCluster> {
        let exe = std::env::current_exe().context("finding the corral binary")?;
        let (addrs, peer_addrs): (Vec<String>, Vec<String>) =
            (0..nodes).map(|i| addrs_of(base_port, i)).unzip();
        let spec = peer_addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}={a}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = LocalCluster {
            exe,
            data_dir: data_dir.to_path_buf(),
            base_port,
            initial: usize::from(nodes),
            addrs,
            peer_addrs,
            spec,
            children: (0..nodes).map(|_| None).collect(),
        };
        for id in 1..=u64::from(nodes) {
            cluster.spawn(id)?;
        }
        Ok(cluster)
    }

    /// Starts node `id` (again) on its data folder.
    pub(crate) fn spawn(&mut self, id: u64) -> anyhow::Result<()> {
        let index = self.index(id)?;
        let dir = self.data_dir.join(format!("n{id}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log_path = self.data_dir.join(format!("n{id}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        // A node that joined keeps `--join` on restarts, as an operator's
        // would.
        let membership = if index < self.initial {
            vec!["--initial-cluster", self.spec.as_str()]
        } else {
            vec!["--join"]
        };
        let child = Command::new(&self.exe)
            .args(["server", "--node-id", &id.to_string()])
            .args(["--listen", &self.addrs[index]])
            .args(["--peer-listen", &self.peer_addrs[index]])
            .args(membership)
            .arg("--data-dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting node {id}"))?;
        self.children[index] = Some(child);
        Ok(())
    }

    /// Starts one more node, with `--join` and the next id and ports: it
    /// waits until a member adds it. Its id.
    pub(crate) fn join(&mut self) -> anyhow::Result<u64> {
        let next = u16::try_from(self.children.len()).context("too many nodes")?;
        let (addr, peer_addr) = addrs_of(self.base_port, next);
        self.addrs.push(addr);
        self.peer_addrs.push(peer_addr);
        self.children.push(None);
        let id = u64::from(next) + 1;
        self.spawn(id)?;
        Ok(id)
    }

    /// Where node `id` serves clients.
    pub(crate) fn addr(&self, id: u64) -> anyhow::Result<&str> {
        Ok(&self.addrs[self.index(id)?])
    }

    /// Where node `id` serves its peers.
    pub(crate) fn peer_addr(&self, id: u64) -> anyhow::Result<&str> {
        Ok(&self.peer_addrs[self.index(id)?])
    }

    fn index(&self, id: u64) -> anyhow::Result<usize> {
        match usize::try_from(id) {
            Ok(n) if (1..=self.children.len()).contains(&n) => Ok(n - 1),
            _ => bail!("no node {id}"),
        }
    }

    /// kill -9 of node `id`.
    pub(crate) fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        let index = self.index(id)?;
        if let Some(mut child) = self.children[index].take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Waits until every running node knows a leader; fails if a node
    /// exits.
    pub(crate) fn wait_ready(&mut self) -> anyhow::Result<()> {
        let start = Instant::now();
        while start.elapsed() < READY_WAIT {
            self.check()?;
            let running = self
                .children
                .iter()
                .zip(&self.addrs)
                .filter(|(child, _)| child.is_some());
            if running.clone().count() > 0 && running.into_iter().all(|(_, a)| is_ready(a)) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("the cluster did not elect a leader within {READY_WAIT:?}; see the node logs")
    }

    /// Fails if a node that should run has exited.
    pub(crate) fn check(&mut self) -> anyhow::Result<()> {
        for (i, child) in self.children.iter_mut().enumerate() {
            if let Some(child) = child {
                if let Some(status) = child.try_wait()? {
                    bail!("node {} exited ({status}); see its log", i + 1);
                }
            }
        }
        Ok(())
    }

    /// Sends SIGTERM to every node still running and waits for it.
    pub(crate) fn stop_all(&mut self) {
        for child in self.children.iter().flatten() {
            // SAFETY: kill(2) with a pid we spawned and a valid signal.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
        for child in self.children.iter_mut() {
            if let Some(mut child) = child.take() {
                let _ = child.wait();
            }
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// A folder of its own for one run's cluster, emptied when made and
/// removed when dropped: drop it after the cluster, whose nodes write
/// there until they stop.
pub(crate) struct RunDir(pub(crate) PathBuf);

impl RunDir {
    /// `corral-NAME-PID` in the temporary folder.
    pub(crate) fn new(name: &str) -> RunDir {
        let dir = std::env::temp_dir().join(format!("corral-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        RunDir(dir)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The client and peer addresses of the node at `index` (node `index +
/// 1`), on ports from `base_port`.
fn addrs_of(base_port: u16, index: u16) -> (String, String) {
    (
        format!("127.0.0.1:{}", base_port + index),
        format!("127.0.0.1:{}", base_port + PEER_PORT_OFFSET + index),
    )
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
