//! Hot backup end to end: two `aftrd` boards on shared segments
//! (`deploy/netns/ha-topology.sh`), a user-space B4 with real applications behind it,
//! servers on the Internet side. Checked: the standby holds the flows older than
//! delay-time and not the younger ones; a forged HA message is refused; a cut HA link
//! makes no second active board (the witness on the softwire segment still hears the
//! peer); after `kill -9` of the active board the standby takes over, the UDP flow goes
//! on from the same external address and port, and a TCP download through the B4
//! completes intact; the returning preferred board syncs and gets its role back after
//! preempt-time; `aftrctl switchover` hands the role over; heartbeats tell whether both
//! boards run the same configuration, before and after a commit. Needs root, as CI has.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dataplane::testing::{Lab, is_root, skip};

const CONFIG: &str = "sysname ha-lab
slot 1
 worker-cores 0
 interface softwire a1-sw
 interface internet a1-in
 ha-address 192.0.2.1 port 4789
 packet-poll blocking
slot 2
 worker-cores 1
 interface softwire a2-sw
 interface internet a2-in
 ha-address 192.0.2.2 port 4789
 packet-poll blocking
service-ha hot-backup enable
service-ha delay-time 1
service-ha preempt-time 3
service-ha heartbeat interval 50 dead-count 4
service-ha preshared-key e2e-secret
service-location 1
 location slot 1 backup slot 2
service-instance-group g
 service-location 1
ds-lite address-group pool
 section 0 198.51.100.0 mask 24
ds-lite instance d id 1
 service-instance-group g
 local-ipv6 2001:db8::1
 remote-ipv6 2001:db8:b4:: prefix-length 64
 ds-lite address-group pool
";

/// UDP echo on 7 that says whom it saw, and an HTTP server of a 24 MB file on 8080.
const SERVERS: &str = r#"
import socket, threading, http.server, os, sys
os.chdir(sys.argv[1])
with open("file.bin", "wb") as f:
    f.write(os.urandom(24 << 20))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("203.0.113.80", 7))
h = http.server.ThreadingHTTPServer(("203.0.113.80", 8080), http.server.SimpleHTTPRequestHandler)
threading.Thread(target=h.serve_forever, daemon=True).start()
print("ready", flush=True)
while True:
    d, peer = u.recvfrom(2048)
    u.sendto(d + (" from %s:%d" % peer).encode(), peer)
"#;

/// A UDP flow from a fixed port: one datagram every 20 ms for a while; each line says
/// what came back (or `lost`).
const FLOW: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(0.05)
end = time.time() + float(sys.argv[2])
n = 0
print("started", flush=True)
while time.time() < end:
    s.sendto(b"seq %d" % n, ("203.0.113.80", 7)); n += 1
    try:
        print("%.3f %s" % (time.time(), s.recv(2048).decode()), flush=True)
    except socket.timeout:
        print("%.3f lost" % time.time(), flush=True)
    time.sleep(0.02)
"#;

const FORGE: &str = r#"
import socket, struct, time
# A well-formed heartbeat of slot 2 in a new epoch, tagged with a guessed key.
# Payload (wire version 2): configuration digest, softwire MAC, one location (id 1:
# active, preferred).
payload = b"\0" * 8 + bytes([2, 0, 0, 0, 0, 0x66]) + bytes([1]) + struct.pack(">IBB", 1, 2, 1)
hdr = b"AFHA" + bytes([2, 1, 0, 0]) + struct.pack(">HH", 2, 0) + struct.pack(">QQQ", int(time.time() * 1e6) + 10**9, 1, 0) + struct.pack(">HH", len(payload), 0)
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(hdr + payload + b"\0" * 16, ("192.0.2.1", 4789))
"#;

/// The user-space B4 of the bench crate, built beside the tests (scripts/test.sh builds
/// every binary first).
fn b4_path() -> String {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().and_then(|d| d.parent()).unwrap().join("b4");
    assert!(p.exists(), "{} is not built: cargo build --workspace --release --bins", p.display());
    p.to_string_lossy().into_owned()
}

fn ctl(lab: &Lab, slot: u32, args: &[&str]) -> String {
    let sock = lab.dir.join(format!("s{slot}.sock"));
    let o = Command::new(env!("CARGO_BIN_EXE_aftrctl")).arg("--socket").arg(&sock).args(args).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn ha(lab: &Lab, slot: u32) -> String {
    ctl(lab, slot, &["display", "service-ha"])
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the board of `slot` and returns its pid.
fn start_board(lab: &mut Lab, slot: u32) -> u32 {
    let cfg = lab.dir.join("aftr.conf");
    let sock = lab.dir.join(format!("s{slot}.sock"));
    let _ = std::fs::remove_file(&sock);
    let log = std::fs::File::create(lab.dir.join(format!("a{slot}.log"))).unwrap();
    let c = lab
        .exec(&format!("a{slot}"), &[env!("CARGO_BIN_EXE_aftrd"), "--config", cfg.to_str().unwrap()])
        .args(["--slot", &slot.to_string(), "--socket", sock.to_str().unwrap()])
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = c.id();
    lab.keep(c);
    wait_for("the management socket", 10, || std::os::unix::net::UnixStream::connect(&sock).is_ok());
    pid
}

/// The session line of inside port `port` in `display sessions` of `slot`, if any.
fn session(lab: &Lab, slot: u32, port: u16) -> Option<String> {
    ctl(lab, slot, &["display", "sessions", "inside", "192.168.1.10"])
        .lines()
        .find(|l| l.contains(&format!("192.168.1.10:{port} ")))
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

#[test]
fn hot_backup_between_two_boards() {
    if !is_root() {
        return skip("needs root for network namespaces");
    }
    let mut lab = Lab::of("deploy/netns/ha-topology.sh", "hb", std::path::Path::new(".."));
    std::fs::write(lab.dir.join("aftr.conf"), CONFIG).unwrap();
    for (name, text) in [("servers.py", SERVERS), ("flow.py", FLOW), ("forge.py", FORGE)] {
        std::fs::write(lab.dir.join(name), text).unwrap();
    }
    let dir = lab.dir.to_str().unwrap().to_string();
    let mut servers =
        lab.exec("inet", &["python3", &format!("{dir}/servers.py"), &dir]).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(servers.stdout.take().unwrap()).read_line(&mut line).unwrap();
    lab.keep(servers);
    assert_eq!(line.trim(), "ready");

    let a1 = start_board(&mut lab, 1);
    wait_for("slot 1 active", 10, || ha(&lab, 1).contains("role: active"));
    start_board(&mut lab, 2);
    wait_for("slot 2 standby and in sync", 10, || {
        let s = ha(&lab, 2);
        s.contains("role: standby") && s.contains("in sync: yes")
    });
    // Both boards run the file's configuration, and their heartbeats say so.
    for slot in [1, 2] {
        let s = ha(&lab, slot);
        assert!(s.contains("configuration: the same as the peer's"), "slot {slot}: {s}");
    }

    let mut b4 = lab
        .exec("sub", &[&b4_path(), "--b4", "2001:db8:b4::2", "--aftr", "2001:db8::1", "--ipv4", "192.168.1.10"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    std::io::BufReader::new(b4.stderr.take().unwrap()).read_line(&mut said).unwrap();
    lab.keep(b4);
    assert!(said.contains("softwire"), "{said}");

    // A long UDP flow, then (later) a short one.
    let flow_log = lab.dir.join("flow.log");
    let flow = lab
        .exec("sub", &["python3", &format!("{dir}/flow.py"), "5000", "12"])
        .stdout(std::fs::File::create(&flow_log).unwrap())
        .spawn()
        .unwrap();
    lab.keep(flow);
    // A download through the B4 at 8 MB/s (3 s), across the failover below.
    let download = lab.dir.join("got.bin");
    let curl = lab
        .exec("sub", &["curl", "-sS", "-m", "40", "--limit-rate", "8M", "-o", download.to_str().unwrap()])
        .args(["-w", "%{http_code} %{size_download}", "http://203.0.113.80:8080/file.bin"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the flow's session replicated", 10, || session(&lab, 2, 5000).is_some());
    let mapped = session(&lab, 1, 5000).unwrap();
    assert_eq!(session(&lab, 2, 5000).unwrap(), mapped, "the standby holds the same mapping");
    let young = lab.exec("sub", &["python3", &format!("{dir}/flow.py"), "6000", "0.2"]).output().unwrap();
    assert!(String::from_utf8_lossy(&young.stdout).contains("from 198.51.100."));
    assert!(session(&lab, 1, 6000).is_some());
    assert!(session(&lab, 2, 6000).is_none(), "younger than delay-time: not on the standby");

    // A forged message is refused and counted; nothing changes.
    assert!(lab.exec("a2", &["python3", &format!("{dir}/forge.py")]).status().unwrap().success());
    wait_for("the forgery counted", 5, || ha(&lab, 1).contains("refused messages: 1 unauthenticated"));
    assert!(ha(&lab, 1).contains("role: active") && ha(&lab, 2).contains("role: standby"));

    // The HA link is cut: the witness on the softwire segment still hears the peer, so
    // the standby stays standby.
    assert!(lab.exec("a1", &["ip", "link", "set", "a1-ha", "down"]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(800));
    let s2 = ha(&lab, 2);
    assert!(s2.contains("role: standby") && s2.contains("peer: alive, active"), "{s2}");
    assert!(ha(&lab, 1).contains("role: active"));
    assert!(lab.exec("a1", &["ip", "link", "set", "a1-ha", "up"]).status().unwrap().success());

    // The active board dies.
    assert!(Command::new("kill").args(["-9", &a1.to_string()]).status().unwrap().success());
    let killed = Instant::now();
    wait_for("the takeover", 5, || ha(&lab, 2).contains("role: active"));
    let took = killed.elapsed();
    assert!(ha(&lab, 2).contains("the peer went silent"), "{}", ha(&lab, 2));

    let out = curl.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200 25165824", "the download went on across the failover");
    let sent = std::fs::read(lab.dir.join("file.bin")).unwrap();
    assert!(std::fs::read(&download).unwrap() == sent, "and arrived intact");

    // The flow went on from the same external address and port.
    wait_for("the flow to end", 20, || {
        std::fs::read_to_string(&flow_log).unwrap().lines().count() > 100
            && Command::new("pgrep").args(["-f", &format!("{dir}/flow.py 5000")]).output().unwrap().stdout.is_empty()
    });
    let text = std::fs::read_to_string(&flow_log).unwrap();
    let ext = mapped.split_whitespace().nth(2).unwrap().to_string();
    let echoes: Vec<&str> = text.lines().filter(|l| l.contains(" from ")).collect();
    assert!(echoes.iter().all(|l| l.ends_with(&format!("from {ext}"))), "one mapping throughout: {ext}\n{text}");
    let lost = text.lines().filter(|l| l.ends_with("lost")).count();
    eprintln!("failover: takeover seen after {took:?}, {lost} datagrams of the 50 per second flow lost");
    assert!(lost <= 15, "{lost} datagrams lost around the failover (took over after {took:?})\n{text}");
    assert!(text.lines().rev().take(20).all(|l| l.contains(" from ")), "flowing at the end\n{text}");

    // The preferred board comes back: standby, in sync, and after preempt-time active.
    start_board(&mut lab, 1);
    wait_for("slot 1 standby then in sync", 10, || ha(&lab, 1).contains("in sync: yes"));
    assert_eq!(session(&lab, 1, 5000).unwrap(), mapped, "the bulk sync carried the flow");
    wait_for("preempt", 15, || ha(&lab, 1).contains("role: active"));
    assert!(ha(&lab, 1).contains("the peer handed the role over"));
    wait_for("slot 2 standby", 5, || ha(&lab, 2).contains("role: standby"));

    // A switchover on command.
    // Slot 1 (active) sees slot 2 in sync through its heartbeats.
    wait_for("slot 2 in sync", 10, || ha(&lab, 2).contains("in sync: yes") && ha(&lab, 1).contains("in sync: yes"));
    let said = ctl(&lab, 1, &["switchover"]);
    assert!(said.contains("handed the role to the peer"), "{said}");
    wait_for("the switchover", 5, || ha(&lab, 2).contains("role: active") && ha(&lab, 1).contains("role: standby"));

    // A commit on one board only (`commit local`): both say their configurations
    // differ. The commit reaches the HA thread at once.
    let changed = lab.dir.join("changed.conf");
    std::fs::write(&changed, CONFIG.replace("service-ha delay-time 1", "service-ha delay-time 2")).unwrap();
    let said = ctl(&lab, 2, &["commit", "local", changed.to_str().unwrap()]);
    assert!(said.contains("committed"), "{said}");
    assert!(ha(&lab, 2).contains("delay-time: 2 s") && ha(&lab, 1).contains("delay-time: 1 s"));
    for slot in [1, 2] {
        wait_for("the digests to differ", 5, || ha(&lab, slot).contains("configuration: DIFFERS from the peer's"));
    }
    // A commit for the chassis, on either board, reaches both: each checks it, then
    // both apply it, and the answer names each.
    let said = ctl(&lab, 1, &["commit", changed.to_str().unwrap()]);
    assert!(said.contains("slot 1: committed") && said.contains("slot 2: committed"), "{said}");
    assert!(ha(&lab, 1).contains("delay-time: 2 s") && ha(&lab, 2).contains("delay-time: 2 s"));
    for slot in [1, 2] {
        wait_for("the digests to agree", 5, || ha(&lab, slot).contains("configuration: the same as the peer's"));
    }
    // One board refuses (slot 2 cannot change its interface while running): nothing is
    // applied on either.
    let refused = lab.dir.join("refused.conf");
    std::fs::write(
        &refused,
        CONFIG
            .replace("service-ha delay-time 1", "service-ha delay-time 3")
            .replace("interface softwire a2-sw", "interface softwire other0"),
    )
    .unwrap();
    let said = ctl(&lab, 1, &["commit", refused.to_str().unwrap()]);
    assert!(said.contains("slot 2: refused: slot 2: changing `interface softwire`"), "{said}");
    assert!(said.contains("nothing was applied on any board"), "{said}");
    assert!(ha(&lab, 1).contains("delay-time: 2 s") && ha(&lab, 2).contains("delay-time: 2 s"));
    assert!(ha(&lab, 2).contains("role: active") && ha(&lab, 1).contains("role: standby"), "no role moved");
}
