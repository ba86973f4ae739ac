//! The deployment files under `deploy/`: the systemd unit passes
//! `systemd-analyze verify` and the node tells systemd when it is ready;
//! the Kubernetes manifests and the container files have what a lock
//! service's deployment needs. (No container runtime runs on the test
//! machine, so the image itself is not built here: docs/operations.md.)

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_yaml::Value;

/// The repository's top folder.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The unit's `key=value` lines by section; a key set twice keeps both.
fn unit_sections(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut sections: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some((key, value)) = line.split_once('=') {
            let entry = sections.entry(section.clone()).or_default();
            entry.push((key.to_string(), value.to_string()));
        }
    }
    sections
}

fn get<'a>(sections: &'a BTreeMap<String, Vec<(String, String)>>, at: &str, key: &str) -> &'a str {
    sections[at]
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in [{at}]"))
}

#[test]
fn the_systemd_unit_is_valid_and_says_what_a_node_needs() {
    let unit = repo_file("deploy/systemd/corral.service");
    let sections = unit_sections(&unit);
    assert_eq!(get(&sections, "Service", "Type"), "notify");
    assert_eq!(get(&sections, "Service", "Restart"), "always");
    // Longer than the longest election timeout (600 ms by default).
    let restart_sec: f64 = get(&sections, "Service", "RestartSec")
        .parse()
        .expect("seconds");
    assert!(restart_sec > 0.6, "RestartSec {restart_sec}");
    // A removed node exits 78 and must stay down.
    assert_eq!(
        get(&sections, "Service", "RestartPreventExitStatus"),
        corral_server::EXIT_REMOVED.to_string()
    );
    assert_eq!(get(&sections, "Service", "NoNewPrivileges"), "yes");
    assert_eq!(get(&sections, "Service", "ProtectSystem"), "strict");
    let files: u64 = get(&sections, "Service", "LimitNOFILE")
        .parse()
        .expect("a number");
    assert!(files >= 65_536);
    assert_eq!(
        get(&sections, "Service", "EnvironmentFile"),
        "/etc/corral/corral.env"
    );
    assert!(get(&sections, "Service", "ExecStart").contains("corral server $CORRAL_FLAGS"));
    let env = repo_file("deploy/systemd/corral.env");
    assert!(env
        .lines()
        .any(|l| l.starts_with("CORRAL_FLAGS=--node-id ")));

    // Verified with the built binary in ExecStart, as it would be installed.
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = dir.path().join("corral.service");
    let installed = unit.replace("/usr/local/bin/corral", env!("CARGO_BIN_EXE_corral"));
    std::fs::write(&path, installed).expect("write the unit");
    let verified = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze runs (deploy/setup.sh installs systemd)");
    let said = String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success(), "systemd-analyze verify: {said}");
    assert!(
        said.trim().is_empty(),
        "systemd-analyze verify warns: {said}"
    );
}

/// Starts a one-node `corral server` told to notify `socket`, logging to
/// `dir/node.log`. On an address of its own (127.0.0.6), so that no other
/// test's port is in the way.
fn notifying_node(dir: &Path, socket: &Path) -> std::process::Child {
    let listen = "127.0.0.6:7101";
    let log = std::fs::File::create(dir.join("node.log")).expect("a log file");
    Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["server", "--node-id", "1", "--listen", listen])
        .args(["--initial-cluster", &format!("1={listen}")])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("NOTIFY_SOCKET", socket)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("a log handle"))
        .stderr(log)
        .spawn()
        .expect("start corral server")
}

/// The next state the node sends, within 30 s; the node's log if none
/// comes.
fn next_state(socket: &UnixDatagram, dir: &Path) -> String {
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut buffer = [0u8; 256];
    match socket.recv(&mut buffer) {
        Ok(n) => String::from_utf8_lossy(&buffer[..n]).into_owned(),
        Err(e) => {
            let log = std::fs::read_to_string(dir.join("node.log")).unwrap_or_default();
            panic!("no state within 30 s ({e}); the node's log:\n{log}")
        }
    }
}

#[test]
fn a_node_tells_systemd_when_it_is_ready_and_when_it_stops() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path: PathBuf = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    let mut node = notifying_node(dir.path(), &path);
    assert_eq!(next_state(&socket, dir.path()), "READY=1");
    let pid = node.id().to_string();
    let signalled = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(signalled.expect("kill").success());
    assert_eq!(next_state(&socket, dir.path()), "STOPPING=1");
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "the node did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The command line the pod `hostname` runs, with the node-id ConfigMap
/// at `ids`: the manifest's shell, run by `sh` with `echo` for corral.
fn pod_command_line(args: &str, hostname: &str, ids: &std::path::Path) -> String {
    let script = args
        .replace("$$", "$")
        .replace("exec /usr/local/bin/corral", "echo")
        .replace("/etc/corral/node-ids", ids.to_str().expect("a UTF-8 path"));
    let output = Command::new("sh")
        .args(["-c", &script])
        .env("HOSTNAME", hostname)
        .output()
        .expect("sh runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every document of a YAML file.
fn documents(path: &str) -> Vec<Value> {
    let text = repo_file(path);
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| serde::Deserialize::deserialize(document).expect("YAML"))
        .collect()
}

fn of_kind<'a>(documents: &'a [Value], kind: &str) -> Vec<&'a Value> {
    documents
        .iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect()
}

#[test]
fn the_kubernetes_manifests_run_a_statefulset_that_can_form() {
    let documents = documents("deploy/k8s/corral.yaml");
    let set = of_kind(&documents, "StatefulSet")[0];
    let spec = &set["spec"];
    let replicas = spec["replicas"].as_u64().expect("replicas");
    assert_eq!(replicas, 3);
    assert_eq!(spec["podManagementPolicy"].as_str(), Some("Parallel"));
    let peers = spec["serviceName"].as_str().expect("serviceName");
    let services = of_kind(&documents, "Service");
    let headless = services
        .iter()
        .find(|s| s["metadata"]["name"].as_str() == Some(peers))
        .expect("the StatefulSet's Service");
    assert_eq!(headless["spec"]["clusterIP"].as_str(), Some("None"));
    assert_eq!(
        headless["spec"]["publishNotReadyAddresses"].as_bool(),
        Some(true)
    );
    let pod = &spec["template"]["spec"];
    let anti = &pod["affinity"]["podAntiAffinity"];
    assert!(anti["requiredDuringSchedulingIgnoredDuringExecution"].is_sequence());
    let container = &pod["containers"][0];
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    let args = container["args"][0].as_str().expect("the command line");
    // Every replica is a member, at its stable peer name.
    let name = set["metadata"]["name"].as_str().expect("a name");
    let members: Vec<String> = (0..replicas)
        .map(|i| format!("{}={name}-{i}.{peers}:7201", i + 1))
        .collect();
    let forms = format!("--initial-cluster {}", members.join(","));
    let ids = tempfile::TempDir::new().expect("temp dir");
    // Pods 0 to 2 form the cluster as nodes 1 to 3; pod 3 joins as node 4;
    // a pod given a new id in the ConfigMap joins under it.
    let line = pod_command_line(args, "corral-1", ids.path());
    assert!(line.contains("--node-id 2 "), "{line}");
    assert!(line.contains(&forms), "{line}");
    let line = pod_command_line(args, "corral-3", ids.path());
    assert!(
        line.contains("--node-id 4 ") && line.contains(" --join "),
        "{line}"
    );
    std::fs::write(ids.path().join("ordinal-2"), "6").expect("an id entry");
    let line = pod_command_line(args, "corral-2", ids.path());
    assert!(
        line.contains("--node-id 6 ") && line.contains(" --join "),
        "{line}"
    );
    assert!(!line.contains("--initial-cluster"), "{line}");
    let budget = of_kind(&documents, "PodDisruptionBudget")[0];
    assert_eq!(budget["spec"]["maxUnavailable"].as_u64(), Some(1));
}

#[test]
fn the_container_files_build_in_stages_and_ship_what_the_binary_links() {
    let dockerfile = repo_file("deploy/docker/Dockerfile");
    let stages = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .count();
    assert!(stages >= 2, "a multi-stage build");
    // What the binary loads at run time must be in the runtime image.
    let ldd = Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_corral"))
        .output()
        .expect("ldd");
    let linked = String::from_utf8_lossy(&ldd.stdout);
    let runtime = dockerfile
        .split("AS runtime")
        .nth(1)
        .expect("a runtime stage");
    for line in linked.lines() {
        let library = line.split_whitespace().next().unwrap_or("");
        let package = match library {
            l if l.starts_with("libstdc++") => "libstdc++6",
            l if l.starts_with("libgcc_s") => "libgcc-s1",
            // In every Debian image: the C library, the loader, the vDSO.
            l if l.starts_with("libc.") || l.starts_with("libm.") => continue,
            l if l.starts_with("linux-vdso") || l.contains("ld-linux") => continue,
            other => panic!("the binary links {other}: add its package to the runtime stage"),
        };
        assert!(
            runtime.contains(package),
            "the runtime stage lacks {package}"
        );
    }
    let compose = documents("deploy/docker/compose.yaml");
    let services = compose[0]["services"].as_mapping().expect("services");
    assert_eq!(services.len(), 3);
    let mut ids = Vec::new();
    for service in services.values() {
        let command: Vec<&str> = service["command"]
            .as_sequence()
            .expect("a command")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let at = command
            .iter()
            .position(|a| *a == "--node-id")
            .expect("--node-id");
        ids.push(command[at + 1].to_string());
        assert!(command.contains(&"--peer-listen"));
    }
    ids.sort();
    assert_eq!(ids, ["1", "2", "3"]);
}

/// The helpers `deploy/bench.sh` and `deploy/profile.sh` share: every
/// script parses, and the endpoints go out with the leader last, the order
/// the bench's 1-worker rows depend on (with no leader known, in order).
#[test]
fn the_bench_scripts_parse_and_put_the_leader_last() {
    let root = repo_root();
    let bash = |script: &str| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(&root)
            .output()
            .expect("bash runs");
        assert!(out.status.success(), "{script}: {out:?}");
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_string()
    };
    for script in ["deploy/bench.sh", "deploy/profile.sh", "deploy/lib.sh"] {
        bash(&format!("bash -n {script}"));
    }
    let order = |leader: &str, members: &str| {
        bash(&format!(
            "source deploy/lib.sh && leader_last '{leader}' 'n%s' {members}"
        ))
    };
    assert_eq!(order("2", "1 2 3"), "n1,n3,n2");
    assert_eq!(order("1", "1 2 3 4 5"), "n2,n3,n4,n5,n1");
    assert_eq!(order("5", "1 2 3 4 5"), "n1,n2,n3,n4,n5");
    assert_eq!(order("", "1 2 3"), "n1,n2,n3");
}
