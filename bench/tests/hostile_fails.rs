//! A hostile-bench run that cannot measure fails: it exits 1, says which trial and why,
//! and prints no summary line. Three runs broken on purpose (`--break`): the legitimate
//! frames sent to another endpoint after the warm-up (no legitimate frame delivered at a
//! baseline), an attack generator that sends nothing, and attacks aimed at another
//! endpoint and pool (aftrd's drop counters do not move). Each leaves no namespace
//! behind. Needs root and the workspace's binaries (`scripts/test.sh` builds them first);
//! elsewhere it says so and passes.

use std::path::Path;
use std::process::Command;

use bench::lab::namespaces_of;
use dataplane::testing::{is_root, skip};

#[test]
fn a_broken_hostile_run_exits_non_zero_and_says_why() {
    let exe = Path::new(env!("CARGO_BIN_EXE_hostile-bench"));
    let beside = exe.parent().expect("a directory");
    if !["aftrd", "aftrctl", "dslite-gen"].iter().all(|b| beside.join(b).exists()) {
        skip("aftrd, aftrctl and dslite-gen are not built beside hostile-bench (scripts/test.sh builds them)");
        return;
    }
    if !is_root() {
        skip("needs root");
        return;
    }
    for (broken, attack, why) in [
        ("no-legit", "ptb", "ptb baseline 1: no legitimate frame delivered softwire -> IPv4"),
        ("silent-attacker", "session-flood", "the session-flood generator sent nothing"),
        (
            "attack-elsewhere",
            "frag-softwire",
            "frag-softwire: none of aftrd's counters drop_frag_source_limit, drop_frag_fair_share",
        ),
    ] {
        let child = Command::new(exe)
            .args(["--attacks", attack, "--rounds", "1", "--trial", "1", "--flows", "64", "--b4s", "8"])
            .args(["--legit-rate", "20000", "--paced", "none", "--break", broken])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run hostile-bench");
        let pid = child.id();
        let o = child.wait_with_output().expect("hostile-bench's output");
        let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.status.code(), Some(1), "--break {broken}: {out}\n{err}");
        assert!(err.contains(&format!("FAILED: {why}")), "--break {broken}: no {why:?} in:\n{err}");
        assert!(!out.contains("summary:"), "--break {broken} printed a summary:\n{out}");
        assert_eq!(namespaces_of("hb", pid), Vec::<String>::new(), "--break {broken} left its namespaces");
    }
}
