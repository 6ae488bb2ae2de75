//! Hot backup end to end: two `aftrd` boards on shared segments
//! (`deploy/netns/ha-topology.sh`), a user-space B4 with real applications behind it,
//! servers on the Internet side. Checked: the standby holds the flows older than
//! delay-time and not the younger ones; a forged HA message is refused; a cut HA link
//! makes no second active board (the witness on the softwire segment still hears the
//! peer); after `kill -9` of the active board the standby takes over, the UDP flow goes
//! on from the same external address and port, and a TCP download through the B4
//! completes intact; the returning preferred board syncs and gets its role back after
//! preempt-time; `aftrctl switchover` hands the role over; heartbeats tell whether both
//! boards run the same configuration, before and after a commit.
//!
//! Mutual backup (decision 0012): the same boards, location 1 on slot 1 and location 2
//! on slot 2, each the other's backup, weights 1 and 3, and 1,000 on-link B4s crafted
//! in scapy. Checked: one neighbour advertisement per solicitation, each B4 answered
//! by its location's board and given an address of its location's share, a quarter of
//! them on location 1 (within 5 points), per-board counters as the plan says; kill -9
//! of slot 2 moves location 2 to slot 1 with every address and port kept; its return
//! and preempt bring location 2 back, again keeping them; `switchover location 2`
//! moves one location alone; B4s with a stale neighbour cache reach the wrong board
//! and are sent on to the right one; a commit on slot 1 (a pool section, delay-time,
//! a weight) reaches both boards, is saved, keeps exactly the B4s whose location still
//! holds their address, and the counters count on. Needs root and scapy, as CI has.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    CONFIG, FLOW, ctl, ha, mac_of, start_b4, start_board, start_pair, start_servers, stats, take_turn, wait_for,
};
use dataplane::testing::{Lab, is_root, skip, statistic};

/// A well-formed heartbeat of slot 2 in a new epoch, tagged with a guessed key, in the
/// wire version of this build.
fn forge() -> String {
    format!(
        r#"
import os, socket, struct, time
# Payload: configuration digest, softwire MAC, one location (id 1: active, preferred,
# links up, active for a second).
payload = b"\0" * 8 + bytes([2, 0, 0, 0, 0, 0x66]) + bytes([1]) + struct.pack(">IBBI", 1, 2, 5, 1000)
# Header: magic, version, kind, flags, slot, epoch, nonce and echo (16 bytes each), seq,
# ack, payload length, records.
hdr = b"AFHA" + bytes([{version}, 1, 0, 0]) + struct.pack(">HH", 2, 0) + struct.pack(">Q", int(time.time() * 1e6) + 10**9)
hdr += os.urandom(32) + struct.pack(">QQHH", 1, 0, len(payload), 0)
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(hdr + payload + b"\0" * 16, ("192.0.2.1", 62000))
"#,
        version = ha_sync::wire::VERSION
    )
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
    let _turn = take_turn();
    let mut lab = Lab::of("deploy/netns/ha-topology.sh", "hb", std::path::Path::new(".."));
    std::fs::write(lab.dir.join("aftr.conf"), CONFIG).unwrap();
    for (name, text) in [("flow.py", FLOW.to_string()), ("forge.py", forge())] {
        std::fs::write(lab.dir.join(name), text).unwrap();
    }
    let dir = lab.dir.to_str().unwrap().to_string();
    start_servers(&mut lab);

    let [a1, _] = start_pair(&mut lab);
    // Both boards run the file's configuration, and their heartbeats say so.
    for slot in [1, 2] {
        let s = ha(&lab, slot);
        assert!(s.contains("configuration: the same as the peer's"), "slot {slot}: {s}");
    }

    start_b4(&mut lab);

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

/// The same boards in mutual backup, weights 1 and 3 (decision 0012).
fn mutual() -> String {
    CONFIG.replace(
        "service-location 1\n location slot 1 backup slot 2\nservice-instance-group g\n service-location 1\n",
        "service-location 1\n location slot 1 backup slot 2\nservice-location 2\n location slot 2 backup slot 1\n\
         service-instance-group g\n service-location 1 weight 1\n service-location 2 weight 3\n",
    )
}

/// N on-link B4s (2001:db8:b4::1000 and up) each resolve the endpoint themselves (a
/// neighbour solicitation from their own address), then send one datagram through the
/// softwire to the echo server from 192.168.1.10:5000 (once more if no echo came, as a
/// UDP application would). Prints how many advertisements
/// came (`advertisements N`), then per B4 that got its echo a line: the B4, the MAC
/// that answered for the endpoint, the external address and port the server saw. With
/// a third argument, a MAC, the B4s send there without asking (a stale neighbour cache).
const B4S: &str = r#"
import sys, time
from socket import inet_pton, inet_ntop, AF_INET6
from scapy.all import Ether, IPv6, IP, UDP, Raw, ICMPv6ND_NS, ICMPv6ND_NA, ICMPv6NDOptSrcLLAddr, sendp, AsyncSniffer, conf, get_if_hwaddr
from scapy.utils6 import in6_getnsma, in6_getnsmac
conf.verb = 0
EP = "2001:db8::1"
n, tag = int(sys.argv[1]), sys.argv[2]
me = get_if_hwaddr("b4")
b4s = ["2001:db8:b4::%x" % (0x1000 + i) for i in range(n)]
def sniffing(flt):
    s = AsyncSniffer(iface="b4", filter=flt, store=True)
    s.start()
    time.sleep(0.5)
    return s
nsma = in6_getnsma(inet_pton(AF_INET6, EP))
if len(sys.argv) > 3:
    nas, mac = [], {b: sys.argv[3] for b in b4s}
else:
    sn = sniffing("icmp6 and ip6[40] == 136")
    sendp([Ether(src=me, dst=in6_getnsmac(nsma)) / IPv6(src=b, dst=inet_ntop(AF_INET6, nsma)) / ICMPv6ND_NS(tgt=EP) / ICMPv6NDOptSrcLLAddr(lladdr=me) for b in b4s], iface="b4")
    time.sleep(1.5)
    sn.stop()
    nas = [p for p in sn.results if ICMPv6ND_NA in p and p[ICMPv6ND_NA].tgt == EP and p[IPv6].dst in b4s]
    mac = {p[IPv6].dst: p[Ether].src for p in nas}
def exchange(who):
    sn = sniffing("ip6 and src host 2001:db8::1 and ip6[6] == 4")
    sendp([Ether(src=me, dst=mac[b]) / IPv6(src=b, dst=EP) / IP(src="192.168.1.10", dst="203.0.113.80") / UDP(sport=5000, dport=7) / Raw(("%s %s" % (tag, b)).encode()) for b in who], iface="b4", inter=0.0005)
    time.sleep(2)
    sn.stop()
    return {p[IPv6].dst: bytes(p[Raw].load).decode().split(" from ")[1] for p in sn.results if UDP in p and p[IP].src == "203.0.113.80" and Raw in p}
# A B4 whose datagram or echo was lost (UDP) sends once more, as an application would.
got = exchange([b for b in b4s if b in mac])
got.update(exchange([b for b in b4s if b in mac and b not in got]))
print("advertisements", len(nas))
for b, seen in got.items():
    print(b, mac.get(b), seen)
"#;

/// One round of `B4S`: (advertisements, per B4 the answering MAC and what the server saw).
fn b4_round(
    lab: &Lab,
    n: usize,
    tag: &str,
    to: Option<&str>,
) -> (u64, std::collections::BTreeMap<String, (String, String)>) {
    let script = lab.dir.join("b4s.py");
    let n = n.to_string();
    let mut args = vec!["python3", script.to_str().unwrap(), &n, tag];
    args.extend(to);
    let o = lab.exec("sub", &args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let mut lines = out.lines();
    let ads = lines.next().and_then(|l| l.strip_prefix("advertisements ")).and_then(|n| n.parse().ok());
    let got = lines
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(w.len(), 3, "{l}");
            (w[0].to_string(), (w[1].to_string(), w[2].to_string()))
        })
        .collect();
    (ads.unwrap_or_else(|| panic!("no count in {out}")), got)
}

#[test]
fn mutual_backup_serves_each_location_from_its_own_board() {
    if !is_root() {
        return skip("needs root for network namespaces");
    }
    let _turn = take_turn();
    if let Err(why) = dataplane::testing::can_capture() {
        return skip(why);
    }
    let mut lab = Lab::of("deploy/netns/ha-topology.sh", "mb", std::path::Path::new(".."));
    let config = mutual();
    assert!(config.contains("location slot 2 backup slot 1"));
    std::fs::write(lab.dir.join("aftr.conf"), &config).unwrap();
    std::fs::write(lab.dir.join("b4s.py"), B4S).unwrap();
    start_servers(&mut lab);

    // Where each B4 belongs, by the plan both boards compute.
    let (c, _) = control::parse::parse(&config).unwrap();
    let plan = control::plan::plan(&c);
    let ip = &plan.instances["d"];
    let location_of = |b4: &str| ip.location_of(&b4.parse::<std::net::Ipv6Addr>().unwrap().octets());
    let in_share = |loc: u32, seen: &str| {
        let ext: std::net::Ipv4Addr = seen.split(':').next().unwrap().parse().unwrap();
        ip.pool_shares[&loc].iter().any(|(a, b)| (*a..=*b).contains(&ext))
    };

    start_board(&mut lab, 1);
    let a2 = start_board(&mut lab, 2);
    let settled = |lab: &Lab| {
        let (s1, s2) = (ha(lab, 1), ha(lab, 2));
        s1.contains("service-location 1: active")
            && s1.contains("service-location 2: standby,")
            && s2.contains("service-location 2: active")
            && s2.contains("service-location 1: standby,")
            && s1.contains("in sync: yes")
            && s2.contains("in sync: yes")
    };
    let t = Instant::now();
    while !settled(&lab) {
        let shown = || format!("slot 1:\n{}\nslot 2:\n{}", ha(&lab, 1), ha(&lab, 2));
        assert!(t.elapsed() < Duration::from_secs(15), "the boards did not settle:\n{}", shown());
        std::thread::sleep(Duration::from_millis(20));
    }
    let macs = [mac_of(&lab, 1), mac_of(&lab, 2)];
    let board_of = |loc: u32| macs[loc as usize - 1].clone();

    // Round 1: every B4 finds its location's board and gets an address of its share.
    let n = 1000;
    let (ads, first) = b4_round(&lab, n, "first", None);
    assert_eq!(ads, n as u64, "one advertisement per solicitation: one answerer per B4");
    assert_eq!(first.len(), n, "every B4 got its echo");
    let per_loc = |l: u32| first.keys().filter(|b| location_of(b) == l).count();
    let (n1, n2) = (per_loc(1), per_loc(2));
    // Weights 1 and 3: location 1 serves a quarter, within 5 points.
    assert!((200..=300).contains(&n1) && n1 + n2 == n, "weights 1 and 3: {n1} and {n2} of {n}");
    for (b4, (via, seen)) in &first {
        let loc = location_of(b4);
        assert_eq!(via, &board_of(loc), "{b4} of location {loc} answered by the wrong board");
        assert!(in_share(loc, seen), "{b4} of location {loc} seen as {seen}, outside its share");
    }
    // One datagram per B4 (two where an echo was lost), each on its location's board.
    let (i1, i2) = (statistic(&stats(&lab, 1), "in2out"), statistic(&stats(&lab, 2), "in2out"));
    assert!((n1 as u64..=2 * n1 as u64).contains(&i1) && (n2 as u64..=2 * n2 as u64).contains(&i2), "{i1} {i2}");
    assert_eq!(statistic(&stats(&lab, 1), "steered_to_peer") + statistic(&stats(&lab, 2), "steered_to_peer"), 0);

    // Slot 2 dies once its sessions are older than delay-time and replicated: slot 1
    // takes location 2 and keeps location 1; every B4 keeps its address and port.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(Command::new("kill").args(["-9", &a2.to_string()]).status().unwrap().success());
    wait_for("slot 1 active for both locations", 5, || ha(&lab, 1).contains("service-location 2: active"));
    let (_, second) = b4_round(&lab, n, "second", None);
    assert_eq!(second.len(), n, "every B4 got its echo after the failure");
    for (b4, (via, seen)) in &second {
        assert_eq!(via, &macs[0], "{b4}: slot 1 answers for everyone now");
        assert_eq!(seen, &first[b4].1, "{b4}: the same external address and port across the failure");
    }

    // Slot 2 returns: it syncs, takes location 2 back after preempt-time, and its B4s
    // keep their addresses and ports again.
    start_board(&mut lab, 2);
    wait_for("location 2 back on slot 2", 20, || settled(&lab));
    let (_, third) = b4_round(&lab, n, "third", None);
    assert_eq!(third.len(), n, "every B4 got its echo after the return");
    for (b4, (via, seen)) in &third {
        assert_eq!(via, &board_of(location_of(b4)), "{b4}: back on its own board");
        assert_eq!(seen, &first[b4].1, "{b4}: the same external address and port after the return");
    }

    // A switchover of location 2 alone, on command: slot 1 takes it, location 1 stays.
    std::thread::sleep(Duration::from_millis(1500));
    let said = ctl(&lab, 2, &["switchover", "location", "2"]);
    assert!(said.contains("location 2: handed the role to the peer"), "{said}");
    wait_for("location 2 on slot 1", 5, || ha(&lab, 1).contains("service-location 2: active"));
    assert!(ha(&lab, 2).contains("service-location 1: standby,"), "{}", ha(&lab, 2));
    // Every B4 still sends to slot 2 (a stale neighbour cache): slot 2 serves none of
    // them now and sends each frame on to slot 1, which answers them all, from the same
    // address and port as before.
    let before = statistic(&stats(&lab, 2), "steered_to_peer");
    let (_, fourth) = b4_round(&lab, n, "fourth", Some(&macs[1]));
    assert_eq!(fourth.len(), n, "every B4 got its echo through the wrong board");
    for (b4, (_, seen)) in &fourth {
        assert_eq!(seen, &first[b4].1, "{b4}: the same external address and port through the wrong board");
    }
    // Location 1's B4s all went through slot 2 to slot 1 (location 2 may come back to
    // slot 2 by preempt-time during the round, and its B4s then stay there).
    let steered = statistic(&stats(&lab, 2), "steered_to_peer") - before;
    assert!(steered >= n1 as u64, "{steered} sent on, of {n1} B4s of location 1");

    // One commit on slot 1 for the chassis: a second pool section, delay-time 2 and
    // weight 2 for location 2. Both boards apply it and save it; the B4s whose location
    // still holds their address keep it and their port, the others start again in
    // their location's new share; the counters go on counting.
    wait_for("location 2 back on slot 2 after preempt-time", 15, || settled(&lab));
    assert!(lab.exec("inet", &["ip", "route", "add", "198.51.101.0/24", "dev", "srv"]).status().unwrap().success());
    let next = config
        .replace(
            " section 0 198.51.100.0 mask 24\n",
            " section 0 198.51.100.0 mask 24\n section 1 198.51.101.0 mask 24\n",
        )
        .replace("service-ha delay-time 1", "service-ha delay-time 2")
        .replace("service-location 2 weight 3", "service-location 2 weight 2");
    let file = lab.dir.join("next.conf");
    std::fs::write(&file, &next).unwrap();
    let in2out = |lab: &Lab| statistic(&stats(lab, 1), "in2out") + statistic(&stats(lab, 2), "in2out");
    let counted = in2out(&lab);
    let said = ctl(&lab, 1, &["commit", file.to_str().unwrap()]);
    assert!(said.contains("slot 1: committed") && said.contains("slot 2: committed"), "{said}");
    for slot in [1, 2] {
        assert!(ha(&lab, slot).contains("delay-time: 2 s"), "slot {slot}: {}", ha(&lab, slot));
        wait_for("the same digest in the peer's heartbeat", 2, || {
            ha(&lab, slot).contains("configuration: the same as the peer's")
        });
        let saved = ctl(&lab, slot, &["save"]);
        assert!(!saved.contains("Error"), "slot {slot}: {saved}");
    }
    // The file is the running configuration; the display masks the key, `save` writes it.
    let key = "service-ha preshared-key e2e-secret-0123456789ab\n";
    let saved = std::fs::read_to_string(lab.dir.join("aftr.conf")).unwrap();
    assert!(saved.contains(key), "{saved}");
    assert_eq!(
        saved.replace(key, "service-ha preshared-key ******\n"),
        ctl(&lab, 1, &["display", "current-configuration"])
    );
    let (c2, _) = control::parse::parse(&next).unwrap();
    let ip2 = control::plan::plan(&c2).instances["d"].clone();
    let new_loc = |b4: &str| ip2.location_of(&b4.parse::<std::net::Ipv6Addr>().unwrap().octets());
    let in_new_share = |loc: u32, seen: &str| {
        let ext: std::net::Ipv4Addr = seen.split(':').next().unwrap().parse().unwrap();
        ip2.pool_shares[&loc].iter().any(|(a, b)| (*a..=*b).contains(&ext))
    };
    let keeps = first.iter().filter(|(b4, (_, seen))| in_new_share(new_loc(b4), seen)).count();
    assert!(keeps > 0 && keeps < n, "the test needs B4s that keep and B4s that move: {keeps} of {n}");
    let (_, fifth) = b4_round(&lab, n, "fifth", None);
    assert_eq!(fifth.len(), n, "every B4 got its echo after the commit");
    let mut kept = 0;
    for (b4, (via, seen)) in &fifth {
        let loc = new_loc(b4);
        assert_eq!(via, &board_of(loc), "{b4}: its new location's board");
        assert!(in_new_share(loc, seen), "{b4} of location {loc} seen as {seen}, outside its new share");
        kept += (seen == &first[b4].1) as usize;
    }
    assert_eq!(kept, keeps, "exactly the B4s whose location still holds their address kept it");
    // Each B4 sent once, or twice if its echo was lost.
    let sent = in2out(&lab) - counted;
    assert!((n as u64..=2 * n as u64).contains(&sent), "the counters count on across the commit: {sent}");

    // Slot 1's Internet link goes down (its process lives on): it hands location 1 to
    // slot 2 at once, every B4 keeps its address and port; the link returns and
    // location 1 comes back after preempt-time.
    std::thread::sleep(Duration::from_millis(2500));
    let link = |state: &str| {
        assert!(lab.exec("a1", &["ip", "link", "set", "a1-in", state]).status().unwrap().success());
    };
    link("down");
    let t = Instant::now();
    wait_for("slot 2 active for both", 5, || ha(&lab, 2).contains("service-location 1: active"));
    let handed = t.elapsed();
    assert!(ha(&lab, 1).contains("fit: no, link a1-in is down"), "{}", ha(&lab, 1));
    let (_, sixth) = b4_round(&lab, n, "sixth", None);
    assert_eq!(sixth.len(), n, "every B4 got its echo with slot 1's Internet link down");
    for (b4, (via, seen)) in &sixth {
        assert_eq!(via, &macs[1], "{b4}: slot 2 answers for everyone");
        assert_eq!(seen, &fifth[b4].1, "{b4}: the same address and port across the link failure");
    }
    link("up");
    // Setting the link down took the default route with it: without a next hop towards
    // the Internet slot 1 stays unfit, until its network configuration adds it again.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(ha(&lab, 1).contains("fit: no, no next hop towards the Internet"), "{}", ha(&lab, 1));
    assert!(lab.exec("a1", &["ip", "route", "add", "default", "via", "203.0.113.80"]).status().unwrap().success());
    wait_for("location 1 back on slot 1 after preempt-time", 20, || settled(&lab));
    eprintln!("slot 1's Internet link down: location 1 on slot 2 after {handed:?}");
}
