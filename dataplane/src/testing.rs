//! Support for the project's tests (here, in `control` and in `bench`): a lab of
//! namespaces built by `deploy/netns/topology.sh`, processes started inside it, packet
//! captures (tcpdump writes, the test analyses afterwards: decision 0009), the rule for
//! prerequisites; frame builders (`frames`) and the body of the fuzz target (`fuzz`).
//! Not used by the packet path.

pub mod frames;
pub mod fuzz;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Is this process root (needed for namespaces)?
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// What the tests that craft packets with scapy and record them with [`Capture`] need:
/// root, scapy importable by `python3` (the first on `PATH`, as the tests run it) and
/// tcpdump; or why they cannot run.
pub fn can_capture() -> Result<(), &'static str> {
    let works = |cmd: &str, args: &[&str]| Command::new(cmd).args(args).output().is_ok_and(|o| o.status.success());
    if !is_root() {
        Err("needs root")
    } else if !works("python3", &["-c", "import scapy"]) {
        Err("needs scapy (bash scripts/setup.sh)")
    } else if !works("tcpdump", &["--version"]) {
        Err("needs tcpdump (bash scripts/setup.sh)")
    } else {
        Ok(())
    }
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

    /// Announcements by BGP on a lab of `deploy/netns/ha-topology.sh` (decision 0016):
    /// IPv6 on the Internet segment (2001:db8:ffff::1, ::2, ::80), no route to the pool
    /// in `inet` but what BGP gives, and BIRD running `deploy/bird/`'s configurations in
    /// `a1`, `a2` (board 2's with its own addresses) and `inet` (the upstream), each in
    /// the foreground with its control socket `NS.ctl` in the lab's directory, killed
    /// with the lab. Returns the upstream's control socket. The boards' slots need
    /// `route-table 100`.
    pub fn bgp(&mut self, workspace: &Path) -> Result<String, String> {
        let run = |ns: &str, args: &[&str]| match self.exec(ns, args).output() {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!("{ns}: {args:?}: {}", String::from_utf8_lossy(&o.stderr).trim())),
            Err(e) => Err(format!("{ns}: {args:?}: {e}")),
        };
        for (ns, dev, a) in [("a1", "a1-in", "1"), ("a2", "a2-in", "2"), ("inet", "srv", "80")] {
            run(ns, &["ip", "-6", "addr", "add", &format!("2001:db8:ffff::{a}/64"), "dev", dev, "nodad"])?;
        }
        run("inet", &["ip", "route", "del", "198.51.100.0/24"])?;
        let read = |f: &str| std::fs::read_to_string(workspace.join(f)).map_err(|e| format!("{f}: {e}"));
        let board = read("deploy/bird/aftr-board.conf")?;
        let board2 = board.replace("203.0.113.1;", "203.0.113.2;").replace("2001:db8:ffff::1;", "2001:db8:ffff::2;");
        let upstream = self.bird("inet", &read("deploy/bird/upstream-example.conf")?)?;
        self.bird("a1", &board)?;
        self.bird("a2", &board2)?;
        Ok(upstream)
    }

    /// Runs BIRD with configuration `conf` in namespace `ns`, in the foreground with its
    /// control socket `NS.ctl` in the lab's directory (messages in `NS.bird.log`), killed
    /// with the lab; returns the control socket once it answers.
    pub fn bird(&mut self, ns: &str, conf: &str) -> Result<String, String> {
        let path = self.dir.join(format!("{ns}.bird.conf"));
        std::fs::write(&path, conf).map_err(|e| e.to_string())?;
        let sock = self.dir.join(format!("{ns}.ctl")).to_string_lossy().into_owned();
        let pid = self.dir.join(format!("{ns}.bird.pid")).to_string_lossy().into_owned();
        let log = std::fs::File::create(self.dir.join(format!("{ns}.bird.log"))).map_err(|e| e.to_string())?;
        let bird = self
            .exec(ns, &["bird", "-f", "-c", path.to_str().unwrap_or_default(), "-s", &sock, "-P", &pid])
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("bird (bash scripts/setup.sh installs it): {e}"))?;
        self.keep(bird);
        let t = Instant::now();
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            if t.elapsed() > Duration::from_secs(10) {
                return Err(format!("BIRD in {ns} did not open {sock} within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(sock)
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
        // A leftover of an earlier run, if any (usually none: no message about that).
        let _ = Command::new("ip").args(["netns", "del", name]).stderr(Stdio::null()).status();
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

/// A packet capture by tcpdump into a pcap file, inside a namespace: the test records
/// first and analyses the file afterwards, so no analysis has to keep up with the
/// traffic (live dissection in scapy missed about 1 frame in 8 at 5,000 pps here). The
/// filter should match exactly the frames the test expects, so that it can wait for
/// their number. tcpdump is killed on drop; the file stays until the caller removes it.
pub struct Capture {
    child: Child,
    path: PathBuf,
}

impl Capture {
    /// Starts `tcpdump -i IFACE` in namespace `netns` with the pcap filter `filter`,
    /// writing every frame as it comes to `path` (a name ending in `.pcap`); returns
    /// once tcpdump says it is listening, i.e. once the capture is armed.
    pub fn start(netns: &str, iface: &str, filter: &str, path: &Path) -> Capture {
        let _ = std::fs::remove_file(path);
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns, "tcpdump", "-i", iface, "-w"])
            .arg(path)
            // Each frame written when it comes; root keeps the right to write `path`
            // (Debian's tcpdump otherwise drops to its own user).
            .args(["-U", "--immediate-mode", "-n", "-s", "0", "-Z", "root", filter])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run tcpdump");
        // tcpdump's messages, read by a thread so that the pipe never fills.
        let (tx, stderr) = mpsc::channel();
        let pipe = BufReader::new(child.stderr.take().expect("piped"));
        std::thread::spawn(move || {
            for line in pipe.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut said = String::new();
        let limit = Instant::now() + Duration::from_secs(10);
        loop {
            match stderr.recv_timeout(limit.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains("listening on") => break,
                Ok(line) => said += &format!("{line}\n"),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("tcpdump -i {iface} in {netns} did not start listening: {said}");
                }
            }
        }
        Capture { child, path: path.to_path_buf() }
    }

    /// The number of frames written so far.
    pub fn count(&self) -> usize {
        std::fs::read(&self.path).map(|b| pcap_records(&b)).unwrap_or(0)
    }

    /// Waits until at least `n` frames are written or `limit` has passed; returns the
    /// number written.
    pub fn wait_for(&self, n: usize, limit: Duration) -> usize {
        let end = Instant::now() + limit;
        loop {
            let got = self.count();
            if got >= n || Instant::now() >= end {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops tcpdump (SIGINT: it writes what it holds and exits) and returns the file.
    pub fn stop(mut self) -> PathBuf {
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
        self.path.clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number of complete records in the pcap file `b` (classic format, either byte
/// order, micro- or nanosecond stamps): a 24-byte global header, then per record a
/// 16-byte header whose third word is the captured length. A record still being
/// written at the end is not counted.
pub fn pcap_records(b: &[u8]) -> usize {
    let Some(magic) = b.get(..4) else { return 0 };
    let word: fn([u8; 4]) -> u32 = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => u32::from_le_bytes,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => u32::from_be_bytes,
        _ => return 0,
    };
    let (mut at, mut n) = (24, 0);
    while let Some(h) = b.get(at..at + 16) {
        let len = word(h[8..12].try_into().expect("4 bytes")) as usize;
        at += 16 + len;
        if at > b.len() {
            break;
        }
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::pcap_records;

    /// A pcap file of frames of `lens` bytes, in the machine's byte order.
    fn pcap(lens: &[u32]) -> Vec<u8> {
        let mut b = Vec::new();
        for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 262_144, 1] {
            b.extend_from_slice(&w.to_ne_bytes());
        }
        b.truncate(24);
        for &len in lens {
            for w in [1u32, 2, len, len] {
                b.extend_from_slice(&w.to_ne_bytes());
            }
            b.extend(std::iter::repeat_n(0xee, len as usize));
        }
        b
    }

    #[test]
    fn counts_complete_records_only() {
        let b = pcap(&[60, 104, 1514]);
        assert_eq!(pcap_records(&b), 3);
        // A record still being written, at any point, is not counted yet.
        for cut in [b.len() - 1, b.len() - 1514, b.len() - 1514 - 8, b.len() - 1514 - 16] {
            assert_eq!(pcap_records(&b[..cut]), 2, "cut at {cut}");
        }
        assert_eq!(pcap_records(&pcap(&[])), 0);
        assert_eq!(pcap_records(&b[..10]), 0);
        assert_eq!(pcap_records(b"not a pcap file at all, really not"), 0);
        // The other byte order.
        let mut sw = b.clone();
        for w in sw.chunks_exact_mut(4).take(6) {
            w.reverse();
        }
        let mut at = 24;
        while at < sw.len() {
            let len = u32::from_ne_bytes(sw[at + 8..at + 12].try_into().unwrap()) as usize;
            for w in sw[at..at + 16].chunks_exact_mut(4) {
                w.reverse();
            }
            at += 16 + len;
        }
        assert_eq!(pcap_records(&sw), 3);
    }
}
