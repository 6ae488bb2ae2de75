//! The forwarding table towards the Internet (decision 0015) against the kernel's own
//! tables, over real namespaces: `aftrd` on `deploy/netns/topology.sh`, its routes and
//! neighbours changed with `ip` while scapy sends softwire traffic from the subscriber,
//! tcpdump recording what reaches the Internet side and scapy reading each frame's
//! destination MAC. The next hops are addresses of the Internet segment with permanent
//! neighbour entries of made-up MACs: the frames reach the Internet namespace's veth
//! whatever their destination MAC, and tcpdump records them. Needs root, scapy and
//! tcpdump; elsewhere it says so and passes. Everything it creates is removed.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dataplane::testing::{Capture, Lab, can_capture, skip, statistic};

/// `send IFACE DST FLOWS ROUNDS GAP`: ROUNDS rounds of one UDP packet per flow (source
/// ports 10000..) to DST through the softwire, GAP seconds apart; `read PCAP`: per
/// frame, its destination MAC, translated source port and round.
const TRAFFIC: &str = r#"
import sys, time
from scapy.all import *
conf.verb = 0
if sys.argv[1] == "send":
    iface, dst, flows, rounds, gap = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
    s = conf.L2socket(iface=iface)
    base = Ether()/IPv6(src="2001:db8:b4::2", dst="2001:db8::1")
    for r in range(rounds):
        for f in range(flows):
            s.send(base/IP(src="192.168.1.10", dst=dst)/UDP(sport=10000 + f, dport=9)/Raw(b"%d" % r))
        time.sleep(gap)
else:
    for p in rdpcap(sys.argv[2]):
        if UDP in p:
            print(p[Ether].dst, p[UDP].sport, bytes(p[UDP].payload).decode())
"#;

/// A board running `aftrd` (AF_PACKET rings) on a lab whose board has no default route.
struct Board {
    lab: Lab,
    sock: PathBuf,
    script: PathBuf,
}

/// The made-up MAC of next hop `n` (203.0.113.n).
fn mac(n: u8) -> String {
    format!("02:00:00:00:00:{n:02x}")
}

impl Board {
    fn start(name: &str) -> Board {
        let lab = Lab::up(name, std::path::Path::new(".."));
        let (p, dir) = (lab.prefix.clone(), lab.dir.clone());
        let cfg = dir.join("aftr.conf");
        std::fs::write(
            &cfg,
            format!(
                "slot 1\n worker-cores 0\n interface softwire {p}sw\n interface internet {p}in\n packet-io af-packet\nslot 2\n worker-cores 1\n\
                 service-location 1\n location slot 1\nservice-instance-group g\n service-location 1\n\
                 ds-lite address-group pool\n section 0 198.51.100.0 mask 24\n\
                 ds-lite instance d id 1\n service-instance-group g\n local-ipv6 2001:db8::1\n remote-ipv6 2001:db8:b4:: prefix-length 64\n ds-lite address-group pool\n"
            ),
        )
        .unwrap();
        let script = dir.join("traffic.py");
        std::fs::write(&script, TRAFFIC).unwrap();
        let b = Board { sock: dir.join("slot1.sock"), lab, script };
        // Only a specific route, through a neighbour with a permanent entry.
        b.ip(&["route", "del", "default"]);
        for n in [81, 82] {
            b.neighbour(n, &mac(n));
        }
        b.ip(&["route", "add", "192.0.2.0/24", "via", "203.0.113.81"]);
        let d = b
            .lab
            .exec("aftr", &[env!("CARGO_BIN_EXE_aftrd"), "--config", cfg.to_str().unwrap(), "--slot", "1", "--socket"])
            .arg(&b.sock)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut b = b;
        b.lab.keep(d);
        let t = Instant::now();
        while std::os::unix::net::UnixStream::connect(&b.sock).is_err() {
            assert!(t.elapsed() < Duration::from_secs(10), "aftrd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        b
    }

    /// `ip ARGS` in the board's namespace.
    fn ip(&self, args: &[&str]) {
        let o = self.lab.exec("aftr", &[&["ip"], args].concat()).output().unwrap();
        assert!(o.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }

    fn neighbour(&self, n: u8, mac: &str) {
        let dev = self.lab.name("in");
        let ip = format!("203.0.113.{n}");
        self.ip(&["neigh", "replace", &ip, "lladdr", mac, "nud", "permanent", "dev", &dev]);
    }

    fn stats(&self) -> String {
        let o = Command::new(env!("CARGO_BIN_EXE_aftrctl"))
            .arg("--socket")
            .arg(&self.sock)
            .args(["display", "statistics"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Sends `flows` x `rounds` packets to `dst`, `gap` apart, while `during` runs;
    /// waits for `expect` frames at the Internet side; returns (MAC, port, round) of
    /// each frame recorded there.
    fn traffic(
        &self,
        dst: &str,
        (flows, rounds, gap): (u32, u32, f64),
        expect: usize,
        during: impl FnOnce(&Capture),
    ) -> Vec<(String, u16, u32)> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let pcap = self.lab.dir.join(format!("fib-{}.pcap", N.fetch_add(1, Ordering::Relaxed)));
        // From the pool: the translated frames, not the kernel's own datagrams to port 9.
        let filter = format!("udp and src net 198.51.100.0/24 and dst host {dst} and dst port 9");
        let cap = Capture::start(&self.lab.name("inet"), &self.lab.name("srv"), &filter, &pcap);
        let b4 = self.lab.name("b4");
        let args = [flows.to_string(), rounds.to_string(), gap.to_string()];
        let mut sender = self
            .lab
            .exec("sub", &["python3", self.script.to_str().unwrap(), "send", &b4, dst, &args[0], &args[1], &args[2]])
            .spawn()
            .unwrap();
        during(&cap);
        assert!(sender.wait().unwrap().success());
        cap.wait_for(expect, Duration::from_secs(5));
        let pcap = cap.stop();
        let o = self
            .lab
            .exec("sub", &["python3", self.script.to_str().unwrap(), "read", pcap.to_str().unwrap()])
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&pcap);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[0].to_string(), f[1].parse().unwrap(), f[2].parse().unwrap())
            })
            .collect()
    }
}

/// Whether the test can run here; if so, the test's turn: one board at a time (each
/// polls its rings on core 0, and three at once on a loaded machine lose frames).
fn ready() -> Option<std::sync::MutexGuard<'static, ()>> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    match can_capture() {
        Ok(()) => Some(SERIAL.lock().unwrap_or_else(|e| e.into_inner())),
        Err(why) => {
            skip(why);
            None
        }
    }
}

/// The MACs of `frames` in the order of their rounds, runs of one MAC merged.
fn runs(frames: &[(String, u16, u32)]) -> Vec<String> {
    let mut f = frames.to_vec();
    f.sort_by_key(|x| x.2);
    let mut out: Vec<String> = Vec::new();
    for (m, _, _) in f {
        if out.last() != Some(&m) {
            out.push(m);
        }
    }
    out
}

#[test]
fn a_specific_route_without_default_forwards_and_follows_route_and_neighbour_changes() {
    let Some(_turn) = ready() else { return };
    let b = Board::start("fa");
    assert_eq!(statistic(&b.stats(), "drop_neighbour_unresolved"), 0);
    // The specific route: every frame to its neighbour's MAC.
    let got = b.traffic("192.0.2.9", (1, 5, 0.05), 5, |_| {});
    assert_eq!(got.len(), 5, "{got:?}\n{}", b.stats());
    assert!(got.iter().all(|(m, _, _)| *m == mac(81)), "{got:?}");
    assert_eq!(statistic(&b.stats(), "drop_no_next_hop"), 0);
    // No route: counted drops.
    b.traffic("10.9.9.9", (1, 3, 0.0), 0, |_| {});
    assert!(statistic(&b.stats(), "drop_no_next_hop") >= 3, "{}", b.stats());

    // An on-link destination the board's kernel has no entry for: the first frames
    // are counted drops, the kernel is asked, then the host's own MAC.
    let srv = b.lab.exec("inet", &["cat", &format!("/sys/class/net/{}/address", b.lab.name("srv"))]).output().unwrap();
    let srv = String::from_utf8_lossy(&srv.stdout).trim().to_string();
    let got = b.traffic("203.0.113.80", (1, 30, 0.05), 25, |_| {});
    assert!(statistic(&b.stats(), "drop_neighbour_unresolved") >= 1, "{}", b.stats());
    assert!(got.len() >= 20 && got.iter().all(|(m, _, _)| *m == srv), "{srv}: {got:?}");

    // The route moves to another next hop while traffic runs.
    let got = b.traffic("192.0.2.9", (1, 40, 0.05), 40, |cap| {
        cap.wait_for(5, Duration::from_secs(10));
        b.ip(&["route", "replace", "192.0.2.0/24", "via", "203.0.113.82"]);
    });
    assert!(got.len() >= 38, "{got:?}");
    assert_eq!(runs(&got), vec![mac(81), mac(82)], "{got:?}");

    // The next hop's MAC changes.
    let got = b.traffic("192.0.2.9", (1, 40, 0.05), 40, |cap| {
        cap.wait_for(5, Duration::from_secs(10));
        b.neighbour(82, &mac(0x92));
    });
    assert!(got.len() >= 38, "{got:?}");
    assert_eq!(runs(&got), vec![mac(82), mac(0x92)], "{got:?}");
}

#[test]
fn ecmp_splits_flows_over_both_next_hops_each_flow_on_one() {
    let Some(_turn) = ready() else { return };
    let b = Board::start("fe");
    b.ip(&["route", "replace", "192.0.2.0/24", "nexthop", "via", "203.0.113.81", "nexthop", "via", "203.0.113.82"]);
    std::thread::sleep(Duration::from_millis(300));
    let got = b.traffic("192.0.2.9", (32, 3, 0.05), 96, |_| {});
    // A frame lost on a loaded machine is no failure; each flow's frames must agree.
    assert!(got.len() >= 80, "{got:?}\n{}", b.stats());
    let mut of_flow: std::collections::HashMap<u16, Vec<String>> = Default::default();
    for (m, port, _) in &got {
        of_flow.entry(*port).or_default().push(m.clone());
    }
    assert!(of_flow.len() >= 28, "32 flows, 32 translated ports: {of_flow:?}");
    assert!(of_flow.values().all(|ms| ms.iter().all(|m| *m == ms[0])), "each flow on one next hop: {of_flow:?}");
    let on = |n: u8| of_flow.values().filter(|ms| ms[0] == mac(n)).count();
    assert_eq!(on(81) + on(82), of_flow.len(), "{of_flow:?}");
    assert!(on(81) >= 6 && on(82) >= 6, "flows split over both: {} and {}", on(81), on(82));
}

#[test]
fn the_link_going_down_drops_and_counts_then_recovers() {
    let Some(_turn) = ready() else { return };
    let b = Board::start("fl");
    let dev = b.lab.name("in");
    let got = b.traffic("192.0.2.9", (1, 60, 0.05), 40, |cap| {
        cap.wait_for(5, Duration::from_secs(10));
        b.ip(&["link", "set", &dev, "down"]);
        std::thread::sleep(Duration::from_millis(800));
        b.ip(&["link", "set", &dev, "up"]);
        // The kernel removed the routes through the interface when it went down.
        b.ip(&["route", "replace", "192.0.2.0/24", "via", "203.0.113.81"]);
        b.neighbour(81, &mac(81));
    });
    let stats = b.stats();
    assert!(statistic(&stats, "drop_link_down") > 0, "{stats}");
    let rounds: Vec<u32> = got.iter().map(|x| x.2).collect();
    assert!(rounds.iter().any(|&r| r < 10), "forwarded before: {rounds:?}\n{stats}");
    assert!(rounds.iter().any(|&r| r > 50), "forwarded again after: {rounds:?}\n{stats}");
    assert!(got.iter().all(|(m, _, _)| *m == mac(81)));
}
