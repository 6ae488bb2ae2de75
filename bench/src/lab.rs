//! The lab of the I/O benchmarks (`bench-report`, `hostile-bench`): two namespaces, the
//! generator's and the device under test's, joined by two veth pairs, made for one run
//! and removed when it ends, even on failure; and `aftrd` started in it, read through
//! its management socket (`aftrctl display statistics`, `display sessions`).
//!
//!   [gen] g-sw <-> d-sw [dut] d-in <-> g-in [gen]
//!
//! The DUT's namespace has the board's addresses and its upstream router, the
//! generator's `g-in` (a permanent neighbour entry: the generator's kernel owns no
//! address, so it answers nothing and sends nothing back; it drops what it receives at
//! the ingress hook, after counting and tapping it: `sink`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::start::wait_for_socket;

/// A program of the workspace, beside this one.
pub fn bin(name: &str) -> PathBuf {
    std::env::current_exe().expect("own path").with_file_name(name)
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The namespaces of a run; removed on drop.
pub struct Topology {
    pub gen_ns: String,
    pub dut_ns: String,
}

impl Topology {
    /// Namespaces `TAG-gen-PID` and `TAG-dut-PID`, veths of `queues` TX and RX queues
    /// each way. Namespaces of this tag left by a run that no longer exists (killed
    /// before it could clean up) are removed first.
    pub fn up(tag: &str, queues: u32) -> Result<Topology, String> {
        remove_stale(tag);
        let id = std::process::id();
        let t = Topology { gen_ns: format!("{tag}-gen-{id}"), dut_ns: format!("{tag}-dut-{id}") };
        let (g, d) = (t.gen_ns.as_str(), t.dut_ns.as_str());
        for ns in [g, d] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        let q = queues.to_string();
        let q = ["numtxqueues", &q, "numrxqueues", &q];
        for (a, b) in [("g-sw", "d-sw"), ("g-in", "d-in")] {
            let mut args = vec!["-n", g, "link", "add", a];
            args.extend(q);
            args.extend(["type", "veth", "peer", "name", b]);
            args.extend(q);
            args.extend(["netns", d]);
            ip(&args)?;
        }
        for (ns, dev) in [(g, "g-sw"), (g, "g-in"), (d, "d-sw"), (d, "d-in")] {
            ip(&["-n", ns, "link", "set", dev, "mtu", "1600", "up"])?;
            let _ = Command::new("ip")
                .args(["netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", "rx", "off", "gso", "off", "tso", "off"])
                .args(["gro", "off"])
                .output();
        }
        sink(g)?;
        let gmac =
            Command::new("ip").args(["-n", g, "-br", "link", "show", "g-in"]).output().map_err(|e| e.to_string())?;
        let gmac = String::from_utf8_lossy(&gmac.stdout).split_whitespace().nth(2).unwrap_or("").to_string();
        ip(&["-n", d, "-6", "addr", "add", "2001:db8:b4::1/64", "dev", "d-sw", "nodad"])?;
        ip(&["-n", d, "addr", "add", "203.0.113.1/24", "dev", "d-in"])?;
        ip(&["-n", d, "neigh", "add", "203.0.113.80", "lladdr", &gmac, "dev", "d-in", "nud", "permanent"])?;
        ip(&["-n", d, "route", "add", "default", "via", "203.0.113.80"])?;
        Ok(t)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.gen_ns, &self.dut_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The generator's interfaces drop what they receive at the ingress hook, after the
/// kernel has counted it and the tap has seen it, before any protocol handler: with no
/// addresses, the generator's IPv4 stack would look up a route for every frame, make
/// and free a route entry and answer through `ip_error` (about a quarter of the DUT's
/// core at 64 bytes: veth runs the receiver's stack on the sender's core), while IPv6
/// frames are dropped for a fraction of that. The bare forwarder sends the IPv6
/// softwire frames back where `aftrd` sends IPv4, and the other way round, so the sink
/// charged the two DUTs different costs for the same frames (decision 0008).
fn sink(ns: &str) -> Result<(), String> {
    let rules = r#"table netdev sink {
    chain g_sw { type filter hook ingress device "g-sw" priority 0; policy drop; }
    chain g_in { type filter hook ingress device "g-in" priority 0; policy drop; }
}
"#;
    let mut nft = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft (bash scripts/setup.sh installs it): {e}"))?;
    nft.stdin.take().expect("piped").write_all(rules.as_bytes()).map_err(|e| format!("nft: {e}"))?;
    let out = nft.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("nft, the sink's drop at ingress: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The namespaces of the run of process `pid` with `tag` (`TAG-gen-PID`, `TAG-dut-PID`)
/// that exist now.
pub fn namespaces_of(tag: &str, pid: u32) -> Vec<String> {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return Vec::new() };
    let ours = [format!("{tag}-gen-{pid}"), format!("{tag}-dut-{pid}")];
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| ours.iter().any(|o| o == n))
        .map(String::from)
        .collect()
}

/// Removes the namespaces `TAG-gen-PID` and `TAG-dut-PID` of processes that are gone.
fn remove_stale(tag: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for name in String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split_whitespace().next()) {
        let pid = ["gen", "dut"].iter().find_map(|side| name.strip_prefix(&format!("{tag}-{side}-")));
        if let Some(pid) = pid.filter(|p| p.parse::<u32>().is_ok())
            && !Path::new("/proc").join(pid).exists()
        {
            eprintln!("removing {name}, left by an earlier run");
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// A running DUT, with `aftrd`'s management socket (none for the bare forwarder);
/// stopped (SIGTERM) on drop, after `aftrd`'s drop counters are shown.
pub struct Running {
    pub child: Child,
    pub socket: Option<PathBuf>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(s) = self.statistics() {
            let drops: Vec<String> =
                s.0.iter().filter(|(k, v)| k.contains("drop") && *v > 0).map(|(k, v)| format!("{k} {v}")).collect();
            if !drops.is_empty() {
                eprintln!("  aftrd counted: {}", drops.join("; "));
            }
        }
        // Through kill(1): this crate keeps its unsafe code in `tun`.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).stderr(Stdio::null()).status();
        let _ = self.child.wait();
    }
}

/// `aftrctl display statistics`: each counter's total over the workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statistics(pub Vec<(String, u64)>);

impl Statistics {
    pub fn parse(text: &str) -> Statistics {
        Statistics(
            text.lines()
                .filter_map(|l| {
                    let mut w = l.split_whitespace();
                    Some((w.next()?.to_string(), w.next()?.parse().ok()?))
                })
                .collect(),
        )
    }

    /// Counter `name` (0 when absent: `display statistics` leaves out drops never counted).
    pub fn get(&self, name: &str) -> u64 {
        self.0.iter().find(|(k, _)| k == name).map_or(0, |&(_, v)| v)
    }

    /// What each counter counted since `before`, those that moved.
    pub fn since(&self, before: &Statistics) -> Statistics {
        Statistics(
            self.0.iter().map(|(k, v)| (k.clone(), v.saturating_sub(before.get(k)))).filter(|&(_, d)| d > 0).collect(),
        )
    }
}

/// One session of `aftrctl display sessions`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionLine {
    pub b4: std::net::Ipv6Addr,
    /// `ADDR:PORT` inside and outside, and the protocol's name.
    pub inside: String,
    pub external: String,
    pub proto: String,
}

impl Running {
    /// What `aftrctl WORDS` says (an error when it fails, or for the bare forwarder).
    pub fn aftrctl(&self, words: &[&str]) -> Result<String, String> {
        let Some(sock) = &self.socket else { return Err("the bare forwarder has no management socket".into()) };
        let out = Command::new(bin("aftrctl"))
            .arg("--socket")
            .arg(sock)
            .args(words)
            .output()
            .map_err(|e| format!("aftrctl: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!("aftrctl {}: {}{}", words.join(" "), text, String::from_utf8_lossy(&out.stderr)));
        }
        Ok(text)
    }

    /// aftrd's counters now.
    pub fn statistics(&self) -> Result<Statistics, String> {
        let text = self.aftrctl(&["display", "statistics"])?;
        if !text.contains("rx_frames") {
            return Err(format!("aftrctl display statistics: {text}"));
        }
        Ok(Statistics::parse(&text))
    }

    /// aftrd's sessions now.
    pub fn sessions(&self) -> Result<Vec<SessionLine>, String> {
        let text = self.aftrctl(&["display", "sessions"])?;
        let total = text.lines().last().unwrap_or("");
        let list: Vec<SessionLine> = text
            .lines()
            .skip(1)
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                Some(SessionLine {
                    b4: w.first()?.parse().ok()?,
                    inside: w.get(1)?.to_string(),
                    external: w.get(2)?.to_string(),
                    proto: w.get(3)?.to_string(),
                })
            })
            .collect();
        if total != format!("total {} sessions", list.len()) {
            return Err(format!("aftrctl display sessions: {} lines read, and it ends with {total:?}", list.len()));
        }
        Ok(list)
    }

    /// Whether the DUT still runs: one that ended mid-run measured nothing after.
    pub fn alive(&mut self, what: &str) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("{what} ended during the run ({status})")),
            Err(e) => Err(format!("{what}: {e}")),
        }
    }
}

/// Starts `aftrd` in the DUT's namespace (files in `dir`) with `workers` workers (on core
/// 1, a second on core 0), AF_XDP on `d-sw` and `d-in`, the lab's instance (endpoint
/// 2001:db8::1, B4s in 2001:db8:b400::/48, pool 198.51.100.0/24) with the lines
/// `instance_extra` (each ` command\n`) added; returns once its socket answers.
pub fn start_aftrd(t: &Topology, dir: &Path, workers: u32, instance_extra: &str) -> Result<Running, String> {
    let cores = if workers == 1 { "1" } else { "1 0" };
    let cfg = dir.join("aftr.conf");
    std::fs::write(
        &cfg,
        format!(
            "sysname bench\nslot 1\n worker-cores {cores}\n interface softwire d-sw\n interface internet d-in\n packet-io af-xdp\n\
             service-location 1\n location slot 1\nservice-instance-group g\n service-location 1\n\
             ds-lite address-group pool\n section 0 198.51.100.0 mask 24\n\
             ds-lite instance d id 1\n service-instance-group g\n local-ipv6 2001:db8::1\n remote-ipv6 2001:db8:b400:: prefix-length 48\n\
             ds-lite address-group pool\n{instance_extra}"
        ),
    )
    .map_err(|e| e.to_string())?;
    let sock = dir.join("slot1.sock");
    let log = dir.join("aftrd.log");
    let _ = std::fs::remove_file(&sock);
    let c = Command::new("ip")
        .args(["netns", "exec", &t.dut_ns])
        .arg(bin("aftrd"))
        .arg("--config")
        .arg(&cfg)
        .args(["--slot", "1", "--socket"])
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?)
        .spawn()
        .map_err(|e| format!("aftrd: {e}"))?;
    let mut running = Running { child: c, socket: Some(sock.clone()) };
    wait_for_socket(&mut running.child, &sock, &log, "aftrd")?;
    Ok(running)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_read_totals_and_differences() {
        let before = Statistics::parse(
            "packet-io                        AF_XDP\nrx_frames                                   10  per worker [10]\n\
             drop_no_session                              2  per worker [2]\n",
        );
        let after = Statistics::parse(
            "packet-io                        AF_XDP\nrx_frames                                   25  per worker [25]\n\
             drop_no_session                              2  per worker [2]\ndrop_malformed_ipv4 7  per worker [7]\n",
        );
        assert_eq!(after.get("rx_frames"), 25);
        assert_eq!(after.get("drop_frag_timeout"), 0);
        assert_eq!(after.since(&before).0, vec![("rx_frames".to_string(), 15), ("drop_malformed_ipv4".to_string(), 7)]);
    }
}
