//! Real applications over the softwire: curl downloads a file over HTTP, and a TCP
//! stream runs both ways, from the subscriber namespace through the user-space B4 and
//! `aftrd` to servers in the Internet namespace. Needs root, curl and python3 (CI has
//! them; the set-up installs them), and the workspace's binaries (`scripts/test.sh`
//! builds them first); elsewhere it says so and passes. Removes all it created.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use dataplane::testing::{Lab, is_root, skip, statistic};
use std::time::{Duration, Instant};

/// `aftrd`, built beside this test (target/<profile>/aftrd).
fn aftrd_path() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("aftrd");
    p.exists().then_some(p)
}

/// A TCP server that, per connection, reads until the client half-closes, answers with
/// the number of bytes it got and then streams back the number of bytes asked for.
const STREAM_SERVER: &str = r#"
import socket, threading, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("203.0.113.80", 5201)); s.listen(4)
print("ready", flush=True)
def serve(c):
    want = int(c.recv(16).decode().strip())
    got = 0
    while True:
        b = c.recv(65536)
        if not b: break
        got += len(b)
    c.sendall(f"{got}\n".encode())
    chunk = bytes(range(256)) * 256
    left = want
    while left > 0:
        n = min(left, len(chunk)); c.sendall(chunk[:n]); left -= n
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

const STREAM_CLIENT: &str = r#"
import socket, sys
up, down = int(sys.argv[1]), int(sys.argv[2])
c = socket.create_connection(("203.0.113.80", 5201), timeout=30)
c.sendall(f"{down:<16}".encode()[:16])
chunk = b"x" * 65536
left = up
while left > 0:
    n = min(left, len(chunk)); c.sendall(chunk[:n]); left -= n
c.shutdown(socket.SHUT_WR)
f = c.makefile("rb")
got_up = int(f.readline())
got_down = 0
while True:
    b = f.read(65536)
    if not b: break
    got_down += len(b)
print(got_up, got_down)
"#;

fn wait_line(c: &mut Child) -> String {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(c.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    line.trim().to_string()
}

#[test]
fn curl_and_a_tcp_stream_through_the_b4_and_aftrd() {
    real_apps("0", "r");
}

/// Two workers: the kernel spreads frames over both (PACKET_FANOUT), each frame that
/// lands on the wrong one reaches its owner through the handoff mesh. (Whether any
/// frame lands on the wrong worker depends on the kernel's flow hash, about 7 runs in
/// 8; the handoff itself is tested deterministically in the engine's tests.)
#[test]
fn the_same_with_two_workers() {
    let handed = real_apps("0 1", "w");
    eprintln!("frames handed to their owner: {handed}");
}

/// Runs the applications through a board with `cores`; returns frames handed off.
fn real_apps(cores: &str, name: &str) -> u64 {
    let Some(aftrd) = aftrd_path() else {
        skip("aftrd is not built beside the tests (scripts/test.sh builds it)");
        return 1;
    };
    if !is_root() || Command::new("curl").arg("--version").output().is_err() {
        skip("needs root and curl");
        return 1;
    }
    let mut lab = Lab::up(name, std::path::Path::new(".."));
    let (prefix, dir) = (lab.prefix.clone(), lab.dir.clone());
    std::fs::create_dir_all(dir.join("www")).unwrap();
    let cfg = dir.join("aftr.conf");
    std::fs::write(
        &cfg,
        format!(
            "slot 1\n worker-cores {cores}\n interface softwire {p}sw\n interface internet {p}in\n\
             service-location 1\n location slot 1\nservice-instance-group g\n service-location 1\n\
             ds-lite address-group pool\n section 0 198.51.100.0 mask 24\n\
             ds-lite instance d id 1\n service-instance-group g\n local-ipv6 2001:db8::1\n remote-ipv6 2001:db8:b4:: prefix-length 64\n ds-lite address-group pool\n",
            p = prefix,
            cores = cores
        ),
    )
    .unwrap();
    let sock = dir.join("slot1.sock");
    let d = lab
        .exec(
            "aftr",
            &[
                aftrd.to_str().unwrap(),
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
    lab.keep(d);
    let b4 = lab
        .exec(
            "sub",
            &[env!("CARGO_BIN_EXE_b4"), "--b4", "2001:db8:b4::2", "--aftr", "2001:db8::1", "--ipv4", "192.168.1.10"],
        )
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    lab.keep(b4);
    // A file to download, served by Python's HTTP server; the stream server.
    let blob: Vec<u8> = (0..2_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(dir.join("www/blob"), &blob).unwrap();
    let mut http = lab
        .exec("inet", &["python3", "-u", "-c", "import http.server,functools,sys; h=functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1]); s=http.server.ThreadingHTTPServer(('203.0.113.80',8080),h); print('ready',flush=True); s.serve_forever()", dir.join("www").to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(wait_line(&mut http), "ready");
    lab.keep(http);
    std::fs::write(dir.join("server.py"), STREAM_SERVER).unwrap();
    std::fs::write(dir.join("client.py"), STREAM_CLIENT).unwrap();
    let mut stream = lab
        .exec("inet", &["python3", "-u", dir.join("server.py").to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(wait_line(&mut stream), "ready");
    lab.keep(stream);
    let t = Instant::now();
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "aftrd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The B4 is ready once its default route through the TUN device exists.
    let t = Instant::now();
    loop {
        let r = Command::new("ip").args(["-n", &lab.name("sub"), "route", "show", "default"]).output().unwrap();
        if String::from_utf8_lossy(&r.stdout).contains("b4tun") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "the B4 did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }

    // curl over the softwire: the file arrives whole.
    let got = dir.join("got");
    let c = lab
        .exec(
            "sub",
            &[
                "curl",
                "-sS",
                "-m",
                "30",
                "-o",
                got.to_str().unwrap(),
                "-w",
                "%{http_code}",
                "http://203.0.113.80:8080/blob",
            ],
        )
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&c.stdout), "200", "{}", String::from_utf8_lossy(&c.stderr));
    assert_eq!(std::fs::read(&got).unwrap(), blob, "the download is byte for byte the file");

    // A TCP stream: 8 MB up, 8 MB down.
    let s =
        lab.exec("sub", &["python3", dir.join("client.py").to_str().unwrap(), "8000000", "8000000"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&s.stdout).trim(), "8000000 8000000", "{}", String::from_utf8_lossy(&s.stderr));

    // The sessions are there, from the B4, on a pool address.
    let o = Command::new(aftrd.parent().unwrap().join("aftrctl"))
        .arg("--socket")
        .arg(&sock)
        .args(["display", "sessions", "b4", "2001:db8:b4::2"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("192.168.1.10:") && text.contains("198.51.100."), "{text}");
    let o = Command::new(aftrd.parent().unwrap().join("aftrctl"))
        .arg("--socket")
        .arg(&sock)
        .args(["display", "statistics"])
        .output()
        .unwrap();
    let stats = String::from_utf8_lossy(&o.stdout).to_string();
    let value = |k: &str| statistic(&stats, k);
    assert_eq!(value("drop_handoff_full"), 0, "{stats}");
    value("handed_off_softwire") + value("handed_off_internet")
}
