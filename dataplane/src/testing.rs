//! Support for the project's network tests (here, in `control` and in `bench`): a lab
//! of namespaces built by `deploy/netns/topology.sh`, processes started inside it, and
//! the rule for prerequisites. Not used by the packet path.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// Is this process root (needed for namespaces)?
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// Outside CI a missing prerequisite skips a test; in CI (where the set-up installs
/// everything and runs as root) it is a failure, so a test cannot pass by not running.
pub fn skip(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "cannot run in CI: {why}");
    eprintln!("skipped: {why}");
}

/// The total of counter `name` in the text of `aftrctl display statistics` (0 when
/// the line is absent).
pub fn statistic(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The test topology of `deploy/netns/topology.sh` under a prefix of its own, with a
/// scratch directory and the processes started in it; all removed on drop, even when
/// the test fails.
pub struct Lab {
    pub prefix: String,
    pub dir: PathBuf,
    script: PathBuf,
    children: Vec<Child>,
}

impl Lab {
    /// Brings the topology up; `workspace` is the repository root.
    pub fn up(name: &str, workspace: &Path) -> Lab {
        Lab::of("deploy/netns/topology.sh", name, workspace)
    }

    /// Brings up the topology of another script of the same usage (`up|down PREFIX`),
    /// e.g. `deploy/netns/ha-topology.sh`.
    pub fn of(script: &str, name: &str, workspace: &Path) -> Lab {
        let prefix = format!("{name}{}-", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("aftr-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let script = workspace.join(script);
        let lab = Lab { prefix, dir, script, children: Vec::new() };
        let out =
            Command::new("bash").arg(&lab.script).args(["up", &lab.prefix]).output().expect("run the topology script");
        assert!(out.status.success(), "topology up: {}", String::from_utf8_lossy(&out.stderr));
        lab
    }

    /// The full name of namespace `sub`, `aftr` or `inet`, or of an interface.
    pub fn name(&self, n: &str) -> String {
        format!("{}{n}", self.prefix)
    }

    /// A command to run inside namespace `ns` (`sub`, `aftr`, `inet`).
    pub fn exec(&self, ns: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name(ns)]).args(args);
        c
    }

    /// Keeps `c` to be killed when the lab goes.
    pub fn keep(&mut self, c: Child) -> &mut Child {
        self.children.push(c);
        self.children.last_mut().expect("just pushed")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("bash").arg(&self.script).args(["down", &self.prefix]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A bare network namespace for a test, deleted on drop (even when the test fails).
pub struct Netns(pub String);

impl Netns {
    pub fn new(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).status();
        let ok = Command::new("ip").args(["netns", "add", name]).status().expect("run ip").success();
        assert!(ok, "ip netns add {name}");
        Netns(name.to_string())
    }

    /// Runs `ip -n NAME ARGS`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        let ok = Command::new("ip").args(["-n", &self.0]).args(args).status().expect("run ip").success();
        assert!(ok, "ip -n {} {args:?}", self.0);
    }

    /// The output of `ip -n NAME ARGS`.
    pub fn output(&self, args: &[&str]) -> String {
        let o = Command::new("ip").args(["-n", &self.0]).args(args).output().expect("run ip");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}
