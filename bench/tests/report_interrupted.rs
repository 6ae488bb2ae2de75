//! bench-report stopped by SIGTERM in the middle of a run ends at its next trial with an
//! error, and leaves neither its namespaces (`br-gen-PID`, `br-dut-PID`) nor its DUT
//! behind. Needs root and the workspace's binaries (`scripts/test.sh` builds them first);
//! elsewhere it says so and passes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bench::lab::namespaces_of;
use dataplane::testing::{is_root, skip};

/// The child processes of `pid` now.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .flat_map(|c| c.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
        .collect()
}

#[test]
fn a_run_stopped_by_sigterm_removes_its_namespaces_and_dut() {
    let exe = Path::new(env!("CARGO_BIN_EXE_bench-report"));
    if !exe.with_file_name("xdp-forward").exists() {
        skip("xdp-forward is not built beside bench-report (scripts/test.sh builds it)");
        return;
    }
    if !is_root() {
        skip("needs root");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let mut run = Command::new(exe)
        .args(["--duts", "bare", "--sizes", "64", "--rounds", "1", "--skip-engine", "--skip-ha", "--skip-hostile"])
        .arg("--out")
        .arg(out.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = run.id();
    // Once the bare forwarder runs in its namespaces, stop the run.
    let t = Instant::now();
    let dut = loop {
        let forwarder = children_of(pid)
            .into_iter()
            .find(|c| std::fs::read_to_string(format!("/proc/{c}/cmdline")).is_ok_and(|l| l.contains("xdp-forward")));
        if let Some(f) = forwarder.filter(|_| namespaces_of("br", pid).len() == 2) {
            break f;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "bench-report started no forwarder");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let t = Instant::now();
    let status = loop {
        if let Some(s) = run.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(60) {
            let _ = run.kill();
            panic!("bench-report did not end within 60 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::io::read_to_string(run.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted by a signal"), "{stderr}");
    assert_eq!(namespaces_of("br", pid), Vec::<String>::new(), "{stderr}");
    assert!(!Path::new(&format!("/proc/{dut}")).exists(), "the bare forwarder still runs: {stderr}");
    assert!(std::fs::read_dir(out.path()).unwrap().next().is_none(), "no report written");
}
