//! A failover-bench run that cannot measure fails: it exits 1, names the trial or the
//! start-up step and the reason, and prints no summary line (a run once printed
//! `gap_ms=0 ... preserved=0/0` and exited 0 because its B4 never started). Runs broken
//! on purpose (`--break`): the B4's binary missing; the echo server gone just before the
//! kill, and just before the SIGCONT of a SIGSTOP (a silence after it that never ends);
//! and an HA link cut that also cuts the witness's path, so that the standby takes over,
//! which an HA link cut must never cause (the count of takeovers is seen to count). Needs
//! root and the workspace's binaries (`scripts/test.sh` builds them first); elsewhere it
//! says so and passes.

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
    for (args, why) in [
        // `--kills N`, the first form of `--faults kill9 --trials N`, as bench-report runs it.
        ("--kills 1 --break no-b4", "FAILED: the B4 did not start: exec of"),
        (
            "--kills 1 --break echo-stops",
            "kill9 trial 1 (SIGKILL of slot 1): the probe got no echo in the 5 s after the takeover",
        ),
        (
            "--faults sigstop --trials 1 --break echo-stops-at-sigcont",
            "sigstop trial 1 (SIGSTOP of slot 1 for 2 s): the probe got no echo in the 5 s after the SIGCONT",
        ),
        ("--faults ha-cut --trials 1 --break witness-cut", "ha-cut: a takeover in 1 of 1 trials"),
    ] {
        let o = Command::new(exe)
            .args(args.split_whitespace())
            .args(["--records", "10000", "--bulk", "10000"])
            // The topology script is found from the workspace root.
            .current_dir("..")
            .output()
            .expect("run failover-bench");
        let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.status.code(), Some(1), "{args}: {out}\n{err}");
        assert!(err.contains(why), "{args}: no {why:?} in:\n{err}");
        assert!(!out.contains("summary:"), "{args} printed a summary:\n{out}");
    }
}
