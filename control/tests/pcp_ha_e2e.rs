//! A PCP mapping across a failover (issue 19 part 3, decision 0023): the host behind
//! the user-space B4 asks the active board for a MAP with a real PCP client (a UDP socket
//! and RFC 6887's bytes); the session and its lease go to the standby by hot backup
//! (record 6) at once, not after delay-time. After `kill -9` of the active board, a datagram from a remote the host
//! never spoke to still reaches it (the instance filters by address and port: only an
//! open lease lets it in), now through the new active board, and the client's renewal
//! there keeps the port (the nonce came with the lease). Needs root.

use std::process::Command;
use std::time::Duration;

use dataplane::testing::{Lab, is_root, skip, statistic};

mod common;
use common::*;

/// `map LIFETIME PORT`: one MAP request for UDP PORT from 192.168.1.10 port 40001 to
/// the server, sent again after 1 s without an answer (RFC 6887 section 8.1.1), up to 5
/// times; prints the answer: result, lifetime, epoch, external port and address.
/// `listen PORT`: prints each datagram that reaches 192.168.1.10:PORT and its sender.
/// `send DST PORT DATA`: one datagram from the Internet side's 203.0.113.80 port 9999.
const SCRIPT: &str = r#"
import socket, struct, sys
side = sys.argv[1]
if side == "map":
    lifetime, port = int(sys.argv[2]), int(sys.argv[3])
    v4mapped = lambda a: b"\0" * 10 + b"\xff\xff" + socket.inet_aton(a)
    msg = struct.pack("!BBHI", 2, 1, 0, lifetime) + v4mapped("192.168.1.10")
    msg += bytes(range(1, 13)) + struct.pack("!B3xHH", 17, port, 0) + v4mapped("0.0.0.0")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("192.168.1.10", 40001))
    s.settimeout(1)
    for _ in range(5):
        s.sendto(msg, ("192.0.0.1", 5351))
        try:
            a = s.recv(1100)
            break
        except socket.timeout:
            pass
    else:
        sys.exit("no answer")
    result, life, epoch = a[3], struct.unpack("!I", a[4:8])[0], struct.unpack("!I", a[8:12])[0]
    print(result, life, epoch, struct.unpack("!H", a[42:44])[0], socket.inet_ntoa(a[56:60]), flush=True)
elif side == "listen":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("192.168.1.10", int(sys.argv[2])))
    print("ready", flush=True)
    while True:
        d, peer = s.recvfrom(2048)
        print("%s from %s:%d" % (d.decode(), peer[0], peer[1]), flush=True)
elif side == "send":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("203.0.113.80", 9999))
    s.sendto(sys.argv[4].encode(), (sys.argv[2], int(sys.argv[3])))
"#;

/// The instance filters by address and port, and serves PCP.
const PCP: &str = " filtering address-and-port-dependent\n pcp server enable address 192.0.0.1\n";

#[test]
fn a_pcp_mapping_survives_a_failover() {
    if !is_root() {
        return skip("needs root for network namespaces");
    }
    let _turn = take_turn();
    let mut lab = Lab::of("deploy/netns/ha-topology.sh", "ph", std::path::Path::new(".."));
    assert!(CONFIG.ends_with(" ds-lite address-group pool\n"), "the instance view ends the configuration");
    // A delay-time no test waits out: a PCP mapping goes to the standby at once.
    let config = CONFIG.replace("service-ha delay-time 1\n", "service-ha delay-time 120\n");
    assert_ne!(config, CONFIG);
    std::fs::write(lab.dir.join("aftr.conf"), format!("{config}{PCP}")).unwrap();
    let script = lab.dir.join("pcp.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let script = script.to_str().unwrap().to_string();
    let [a1, _] = start_pair(&mut lab);
    start_b4(&mut lab);
    let listened = lab.dir.join("listen.log");
    let listener = lab
        .exec("sub", &["python3", &script, "listen", "8080"])
        .stdout(std::fs::File::create(&listened).unwrap())
        .spawn()
        .unwrap();
    lab.keep(listener);
    wait_for("the listener", 5, || std::fs::read_to_string(&listened).unwrap().contains("ready"));
    let py = |ns: &str, args: &[&str]| -> String {
        let o = lab.exec(ns, &[&["python3", script.as_str()], args].concat()).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let heard =
        |data: &str| std::fs::read_to_string(&listened).unwrap().contains(&format!("{data} from 203.0.113.80:9999"));

    // MAP for 600 s on the active board.
    let first = py("sub", &["map", "600", "8080"]);
    let f: Vec<&str> = first.split(' ').collect();
    assert_eq!((f[0], f[1]), ("0", "600"), "SUCCESS for 600 s: {first}");
    let (port, ext) = (f[3].to_string(), f[4].to_string());
    assert!(ext.starts_with("198.51.100."), "{first}");
    py("inet", &["send", &ext, &port, "before"]);
    wait_for("the datagram before the failover", 5, || heard("before"));
    assert_eq!(statistic(&stats(&lab, 1), "pcp_result_success"), 1);

    // The standby has the session, long before delay-time, when the active one goes.
    let mapping = format!("{ext}:{port}");
    wait_for("the session on the standby", 10, || ctl(&lab, 2, &["display", "sessions"]).contains(&mapping));
    assert!(Command::new("kill").args(["-9", &a1.to_string()]).status().unwrap().success());
    wait_for("the takeover", 5, || ha(&lab, 2).contains("role: active"));

    // A datagram of a remote the host never spoke to: in through the open lease, now on
    // slot 2 (sent again while the upstream learns where the pool went).
    let mut n = 0;
    wait_for("the datagram after the failover", 10, || {
        n += 1;
        py("inet", &["send", &ext, &port, &format!("after-{n}")]);
        std::thread::sleep(Duration::from_millis(200));
        (1..=n).any(|k| heard(&format!("after-{k}")))
    });
    let s2 = stats(&lab, 2);
    assert!(statistic(&s2, "out2in") >= 1, "{s2}");
    assert_eq!(statistic(&s2, "drop_filtered"), 0, "the lease came with the session: {s2}");

    // The client renews on the new active board: the same port, its nonce known there.
    let renewed = py("sub", &["map", "600", "8080"]);
    let r: Vec<&str> = renewed.split(' ').collect();
    assert_eq!((r[0], r[3], r[4]), ("0", port.as_str(), ext.as_str()), "{renewed} after {first}");
    let s2 = stats(&lab, 2);
    assert_eq!(statistic(&s2, "pcp_mappings_renewed"), 1, "{s2}");
    assert_eq!(statistic(&s2, "pcp_mappings_created"), 0, "{s2}");
}
