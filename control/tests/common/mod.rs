//! What the hot-backup end-to-end tests (`ha_e2e.rs`, `ha_faults.rs`) share: the two
//! boards' configuration on `deploy/netns/ha-topology.sh`, the servers on the Internet
//! side, starting boards and the user-space B4, and talking to a board through
//! `aftrctl`. Each test target uses a part of it.
#![allow(dead_code)]

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dataplane::testing::{Capture, Lab};

/// Two boards of one location: slot 1 preferred, slot 2 its backup; heartbeats every
/// 50 ms, dead after 4; delay-time 1 s, preempt-time 3 s.
pub const CONFIG: &str = "sysname ha-lab
slot 1
 worker-cores 0
 interface softwire a1-sw
 interface internet a1-in
 ha-address 192.0.2.1 port 62000
 packet-poll blocking
slot 2
 worker-cores 1
 interface softwire a2-sw
 interface internet a2-in
 ha-address 192.0.2.2 port 62000
 packet-poll blocking
service-ha hot-backup enable
service-ha delay-time 1
service-ha preempt-time 3
service-ha heartbeat interval 50 dead-count 4
service-ha preshared-key e2e-secret-0123456789ab
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

/// A UDP flow from a fixed port: one datagram every 20 ms for a while; each line says
/// what came back (or `lost`).
pub const FLOW: &str = r#"
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

/// A binary of the bench crate (`b4`, `dslite-gen`), built beside the tests
/// (scripts/test.sh builds every binary first).
pub fn bench_bin(name: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().and_then(|d| d.parent()).unwrap().join(name);
    assert!(p.exists(), "{} is not built: cargo build --workspace --release --bins", p.display());
    p.to_string_lossy().into_owned()
}

/// What `aftrctl ARGS` says to the board of `slot` (stdout, then stderr).
pub fn ctl(lab: &Lab, slot: u32, args: &[&str]) -> String {
    let sock = lab.dir.join(format!("s{slot}.sock"));
    let o = Command::new(env!("CARGO_BIN_EXE_aftrctl")).arg("--socket").arg(&sock).args(args).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// `display service-ha` of the board of `slot`.
pub fn ha(lab: &Lab, slot: u32) -> String {
    ctl(lab, slot, &["display", "service-ha"])
}

/// `display statistics` of a board.
pub fn stats(lab: &Lab, slot: u32) -> String {
    ctl(lab, slot, &["display", "statistics"])
}

/// A board's softwire MAC.
pub fn mac_of(lab: &Lab, slot: u32) -> String {
    let o = lab.exec(&format!("a{slot}"), &["cat", &format!("/sys/class/net/a{slot}-sw/address")]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Waits until `ok`, checking every 20 ms; fails the test after `secs` seconds.
/// The HA tests of a target take turns: each times heartbeats on the machine's cores,
/// which two pairs of boards at once would share.
pub fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the board of `slot` on the configuration `aftr.conf` of the lab's directory
/// (its messages in `a{slot}.log`, appended to across restarts) and returns its pid once
/// its management socket answers.
pub fn start_board(lab: &mut Lab, slot: u32) -> u32 {
    let cfg = lab.dir.join("aftr.conf");
    let sock = lab.dir.join(format!("s{slot}.sock"));
    let _ = std::fs::remove_file(&sock);
    let log = std::fs::OpenOptions::new().create(true).append(true).open(lab.dir.join(format!("a{slot}.log"))).unwrap();
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

/// Starts slot 1, waits until it is active, then slot 2, until it is standby and in
/// sync; returns their pids.
pub fn start_pair(lab: &mut Lab) -> [u32; 2] {
    let a1 = start_board(lab, 1);
    wait_for("slot 1 active", 10, || ha(lab, 1).contains("role: active"));
    let a2 = start_board(lab, 2);
    wait_for("slot 2 standby and in sync", 10, || {
        let s = ha(lab, 2);
        s.contains("role: standby") && s.contains("in sync: yes")
    });
    [a1, a2]
}

/// Starts `SERVERS` on the Internet side and waits until it is ready.
pub fn start_servers(lab: &mut Lab) {
    start_servers_in(lab, "inet")
}

/// Starts `SERVERS` (on 203.0.113.80) in namespace `ns` and waits until it is ready.
pub fn start_servers_in(lab: &mut Lab, ns: &str) {
    let script = lab.dir.join("servers.py");
    std::fs::write(&script, SERVERS).unwrap();
    let dir = lab.dir.to_str().unwrap().to_string();
    let mut servers =
        lab.exec(ns, &["python3", script.to_str().unwrap(), &dir]).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(servers.stdout.take().unwrap()).read_line(&mut line).unwrap();
    lab.keep(servers);
    assert_eq!(line.trim(), "ready");
}

/// Starts the user-space B4 (2001:db8:b4::2, the host 192.168.1.10 behind it) in the
/// subscriber's namespace and waits until it says its softwire is up.
pub fn start_b4(lab: &mut Lab) {
    let mut b4 = lab
        .exec("sub", &[&bench_bin("b4"), "--b4", "2001:db8:b4::2", "--aftr", "2001:db8::1", "--ipv4", "192.168.1.10"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    std::io::BufReader::new(b4.stderr.take().unwrap()).read_line(&mut said).unwrap();
    lab.keep(b4);
    assert!(said.contains("softwire"), "{said}");
}

/// Starts `aftrd` in the lab's board namespace on `cfg` as slot 1 with its management
/// socket at `sock`, and waits for the socket (10 s at most).
pub fn start_aftrd(lab: &mut Lab, cfg: &std::path::Path, sock: &std::path::Path) {
    let aftrd = lab
        .exec(
            "aftr",
            &[
                env!("CARGO_BIN_EXE_aftrd"),
                "--config",
                cfg.to_str().unwrap(),
                "--slot",
                "1",
                "--socket",
                sock.to_str().unwrap(),
            ],
        )
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    lab.keep(aftrd);
    let t = Instant::now();
    while std::os::unix::net::UnixStream::connect(sock).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "aftrd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `args` in namespace `ns` and waits for the line `ready` it prints when it is.
pub fn spawn_ready(lab: &mut Lab, ns: &str, args: &[&str]) {
    let child = lab.exec(ns, args).stdout(Stdio::piped()).spawn().unwrap();
    let child = lab.keep(child);
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
}

/// Records in namespace `ns` on `iface` the frames matching `filter` that `send` brings
/// about, until `n` of them came (`limit` at most); returns the capture file.
pub fn capture_for(
    lab: &Lab,
    ns: &str,
    iface: &str,
    filter: &str,
    n: usize,
    limit: Duration,
    send: impl FnOnce(),
) -> std::path::PathBuf {
    static CAPTURES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let k = CAPTURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = lab.dir.join(format!("capture-{k}.pcap"));
    let cap = Capture::start(&lab.name(ns), iface, filter, &path);
    send();
    cap.wait_for(n, limit);
    cap.stop()
}
