//! A failover-bench run that cannot measure fails: it exits 1, names the round or the
//! start-up step and the reason, and prints no summary line (a run once printed
//! `gap_ms=0 ... preserved=0/0` and exited 0 because its B4 never started). Two runs
//! broken on purpose (`--break`): the B4's binary missing, and the echo server gone just
//! before the kill. Needs root and the workspace's binaries (`scripts/test.sh` builds
//! them first); elsewhere it says so and passes.

use std::path::Path;
use std::process::Command;

use dataplane::testing::{is_root, skip};

#[test]
fn a_broken_failover_run_exits_non_zero_and_says_why() {
    let exe = Path::new(env!("CARGO_BIN_EXE_failover-bench"));
    let beside = exe.parent().expect("a directory");
    if !["aftrd", "aftrctl", "b4"].iter().all(|b| beside.join(b).exists()) {
        skip("aftrd, aftrctl and b4 are not built beside failover-bench (scripts/test.sh builds them)");
        return;
    }
    if !is_root() {
        skip("needs root");
        return;
    }
    for (broken, why) in [
        ("no-b4", "FAILED: the B4 did not start: exec of"),
        ("echo-stops", "round 1 (slot 1 killed): the probe got no echo within 5 s after the kill"),
    ] {
        let o = Command::new(exe)
            .args(["--kills", "1", "--records", "10000", "--bulk", "10000", "--break", broken])
            // The topology script is found from the workspace root.
            .current_dir("..")
            .output()
            .expect("run failover-bench");
        let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.status.code(), Some(1), "--break {broken}: {out}\n{err}");
        assert!(err.contains(why), "--break {broken}: no {why:?} in:\n{err}");
        assert!(!out.contains("summary:"), "--break {broken} printed a summary:\n{out}");
    }
}
