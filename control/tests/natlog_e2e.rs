//! NAT logs from a running `aftrd` to real collectors, in namespaces: rsyslog (imtcp,
//! RFC 6587 octet counting, written by omfile) over TCP, restarted while traffic makes
//! and releases port blocks; and IPFIX, recorded by tcpdump and read by tshark. Every
//! block allocation and release the engine counted is a line of the collector, once.
//! Needs root, scapy, tcpdump, rsyslog and tshark (scripts/setup.sh installs them);
//! elsewhere it says so and passes.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dataplane::testing::{Capture, Lab, can_capture, skip, statistic};

const SYSLOG_PORT: u16 = 10514;
const IPFIX_PORT: u16 = 4739;
const METRICS_PORT: u16 = 9179;

/// UDP from the B4 (2001:db8:b4::2) through the softwire from the host's ports FIRST to
/// FIRST + N - 1: N sessions, N / 8 blocks of 8 ports.
const SEND: &str = r#"
import sys
from scapy.all import *
conf.verb = 0
iface, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
base = Ether()/IPv6(src="2001:db8:b4::2", dst="2001:db8::1")
sendp([base/IP(src="192.168.1.10", dst="203.0.113.80")/UDP(sport=p, dport=7)/Raw(b"x") for p in range(first, first + n)], iface=iface)
"#;

/// rsyslog in the AFTR's namespace: RFC 5424 over TCP on the loopback, each message a
/// line of `nat.log` as it came (RFC 5424 format, structured data included).
fn rsyslog(lab: &Lab) -> Child {
    let dir = &lab.dir;
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{d}\")\n\
             module(load=\"imtcp\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{SYSLOG_PORT}\")\n\
             action(type=\"omfile\" file=\"{d}/nat.log\" template=\"RSYSLOG_SyslogProtocol23Format\")\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let pid = dir.join("rsyslog.pid");
    let child = lab
        .exec("aftr", &["rsyslogd", "-n", "-f", conf.to_str().unwrap(), "-i", pid.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Listening once a connection is taken.
    let t = Instant::now();
    while !lab
        .exec("aftr", &["ss", "-Htln", &format!("sport = :{SYSLOG_PORT}")])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty())
    {
        assert!(t.elapsed() < Duration::from_secs(10), "rsyslogd did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// A collector process, killed when dropped (also when the test fails).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The NAT log lines rsyslog wrote: (MSGID, sequenceId).
fn lines(dir: &Path) -> Vec<(String, u32)> {
    let text = std::fs::read_to_string(dir.join("nat.log")).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains(" aftrd "))
        .map(|l| {
            let msgid = l.split(' ').nth(5).unwrap_or("").to_string();
            let at = l.find("sequenceId=\"").expect("a sequence id") + 12;
            (msgid, l[at..].split('"').next().unwrap().parse().unwrap())
        })
        .collect()
}

#[test]
fn every_block_counted_is_logged_once_across_a_collector_restart() {
    if let Err(why) = can_capture() {
        return skip(why);
    }
    for tool in ["rsyslogd", "tshark"] {
        if Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().map_or(true, |o| !o.status.success())
        {
            return skip("no rsyslogd or tshark (scripts/setup.sh installs them)");
        }
    }
    let mut lab = Lab::up("nl", Path::new(".."));
    let (prefix, dir) = (lab.prefix.clone(), lab.dir.clone());
    let config = format!(
        "sysname nl\nslot 1\n worker-cores 0\n interface softwire {prefix}sw\n interface internet {prefix}in\n packet-io af-packet\n\
         service-location 1\n location slot 1\nservice-instance-group g\n service-location 1\n\
         ds-lite address-group pool\n section 0 198.51.100.0 mask 24\n\
         ds-lite instance d id 1\n service-instance-group g\n local-ipv6 2001:db8::1\n remote-ipv6 2001:db8:b4:: prefix-length 64\n ds-lite address-group pool\n port-block-size 8\n session-limit 30\n\
         nat log host 127.0.0.1 {SYSLOG_PORT} type syslog-tcp\n\
         nat log host 127.0.0.1 {IPFIX_PORT} type ipfix\n\
         metrics http 127.0.0.1 port {METRICS_PORT}\n",
    );
    let cfg = dir.join("aftr.conf");
    std::fs::write(&cfg, config).unwrap();
    let sock = dir.join("slot1.sock");
    let mut collector = Running(rsyslog(&lab));
    let ipfix = Capture::start(&lab.name("aftr"), "lo", &format!("udp port {IPFIX_PORT}"), &dir.join("ipfix.pcap"));
    let aftrd = lab
        .exec("aftr", &[env!("CARGO_BIN_EXE_aftrd"), "--config", cfg.to_str().unwrap(), "--slot", "1", "--socket"])
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    lab.keep(aftrd);
    let t = Instant::now();
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "aftrd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let send = dir.join("send.py");
    std::fs::write(&send, SEND).unwrap();
    let b4 = format!("{prefix}b4");
    let traffic = |first: u16, n: u16| {
        let o = lab
            .exec("sub", &["python3", send.to_str().unwrap(), &b4, &first.to_string(), &n.to_string()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let ctl = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_aftrctl")).arg("--socket").arg(&sock).args(args).output().unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let counted = || {
        let s = ctl(&["display", "statistics"]);
        (statistic(&s, "blocks_allocated"), statistic(&s, "blocks_released"))
    };
    let logged = || {
        let l = lines(&dir);
        (l.iter().filter(|x| x.0 == "BLKADD").count() as u64, l.iter().filter(|x| x.0 == "BLKDEL").count() as u64)
    };
    let settle = |what: &str| {
        let t = Instant::now();
        while logged() != counted() {
            assert!(t.elapsed() < Duration::from_secs(15), "{what}: counted {:?}, logged {:?}", counted(), logged());
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // Until the engine has counted `n` of `what`.
    let reach = |what: &str, n: u64| {
        let t = Instant::now();
        while statistic(&ctl(&["display", "statistics"]), what) < n {
            assert!(t.elapsed() < Duration::from_secs(10), "{what} short of {n}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // Blocks made and released while the collector runs.
    traffic(5000, 24);
    reach("sessions_created", 24);
    ctl(&["reset", "session"]);
    settle("before the restart");
    assert!(counted().0 >= 3 && counted().1 >= 3, "{:?}", counted());

    // The collector goes away; traffic goes on; it comes back: nothing lost.
    // (SIGTERM: rsyslog writes out what it took; plain TCP syslog has no acknowledgement
    // of its own, RELP has.)
    Command::new("kill").args(["-TERM", &collector.0.id().to_string()]).status().unwrap();
    collector.0.wait().unwrap();
    traffic(6000, 40); // 10 beyond the session limit
    reach("drop_session_limit", 10);
    reach("sessions_created", 54);
    let refused = statistic(&ctl(&["display", "statistics"]), "drop_session_limit");
    assert_eq!(refused, 10);
    ctl(&["reset", "session"]);
    std::thread::sleep(Duration::from_millis(500));
    let before = counted();
    let _collector = Running(rsyslog(&lab));
    settle("after the restart");
    assert!(counted().0 >= before.0 && before.0 >= 7, "{before:?}");
    let quotas = lines(&dir).iter().filter(|l| l.0 == "QUOTA").count() as u64;
    assert_eq!(quotas, refused, "each refusal logged (fewer than 50 a second)");

    // Nothing twice either: the sequence ids are 1..N, each once, in order.
    let seqs: Vec<u32> = lines(&dir).iter().map(|l| l.1).collect();
    assert_eq!(seqs, (1..=seqs.len() as u32).collect::<Vec<_>>());
    // The metrics say the same: every message sent, none dropped, one reconnection.
    let page = lab.exec("aftr", &["curl", "-s", &format!("http://127.0.0.1:{METRICS_PORT}/metrics")]).output().unwrap();
    let page = String::from_utf8_lossy(&page.stdout).to_string();
    for want in [
        format!("aftr_natlog_messages_total{{slot=\"1\",kind=\"syslog-tcp\",result=\"sent\"}} {}", seqs.len()),
        "aftr_natlog_messages_total{slot=\"1\",kind=\"syslog-tcp\",result=\"dropped\"} 0".to_string(),
        "aftr_natlog_reconnects_total{slot=\"1\",kind=\"syslog-tcp\"} 1".to_string(),
        format!("aftr_natlog_messages_total{{slot=\"1\",kind=\"ipfix\",result=\"sent\"}} {}", seqs.len()),
    ] {
        assert!(page.lines().any(|l| l == want), "{want} not in\n{page}");
    }

    // The same blocks by IPFIX: allocations (14) and releases (15), and the quota
    // exceeded (11, maximum entries per user, 30), the B4's address in each, as tshark
    // reads the recording of the loopback.
    let (adds, dels) = counted();
    let n = ipfix.wait_for((adds + dels + quotas) as usize, Duration::from_secs(5));
    let pcap = ipfix.stop();
    let out = Command::new("tshark")
        .args(["-r", pcap.to_str().unwrap(), "-d", &format!("udp.port=={IPFIX_PORT},cflow"), "-T", "fields"])
        .args([
            "-E",
            "occurrence=a",
            "-e",
            "cflow.nat_event",
            "-e",
            "cflow.srcaddrv6",
            "-e",
            "cflow.max_entries_per_user",
        ])
        .output()
        .unwrap();
    let rows = String::from_utf8_lossy(&out.stdout).to_string();
    let count = |ev: &str| rows.lines().filter(|l| *l == format!("{ev}\t2001:db8:b4::2\t")).count() as u64;
    let over = rows.lines().filter(|l| *l == "11\t2001:db8:b4::2\t30").count() as u64;
    assert_eq!((count("14"), count("15"), over), (adds, dels, quotas), "{n} datagrams:\n{rows}");
    drop(lab);
}
