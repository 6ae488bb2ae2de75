//! Scale-out across hosts (issue 16 part 3, docs/decisions/0022): the topology of
//! `deploy/netns/scale-topology.sh`, two hosts each with a pair of boards in hot backup
//! for its own service-location (host A: location 1, slot 1 backup slot 2; host B:
//! location 2, slot 3 backup slot 4), one configuration for all four. Each board's BIRD
//! announces what aftrd keeps in its `route-table 100` (`deploy/bird/aftr-board.conf`,
//! host A in AS 65001, host B in AS 65002); the upstream router
//! (`deploy/bird/upstream-ecmp.conf`) installs the shared endpoint as one ECMP route
//! over both hosts' active boards and each pool share by its location's active board,
//! and hashes on the outer source address alone.
//!
//! B4s behind the router (raw IPv4-in-IPv6 from 24 addresses, two flows each with
//! their own flow labels and ports) send UDP to an echo server that says whom it saw.
//! Checked, for both ways of configuring the instance:
//! - the upstream's routes; one B4 is never split over the hosts (all its flows
//!   answered, or none); every answered B4 is translated to an address of its own
//!   location's share and the answers come back by the announced shares; each host
//!   serves some B4s;
//! - one instance over both locations (a B4's location by the plan's buckets): a B4
//!   that the router sends to the other location's host is refused there and counted
//!   (`drop_b4_elsewhere`), never translated with a wrong share; handing it on across
//!   hosts is open;
//! - an instance per pair on the one endpoint: every B4 is served, by the host the
//!   router sends it to, none refused;
//! - after `kill -9` of host B's active board its standby takes over, the upstream's
//!   routes follow (the killed board's lingering routes lose within its AS and are not
//!   merged into the ECMP route: `deterministic med`), host B's B4s are answered again
//!   with the same address and port, and host A is untouched (roles, routes, no gap).
//!
//! And: a board whose only route towards the Internet comes over its BGP session gives
//! its role up when the session goes down (unfit: no next hop), and takes it back when
//! the session returns.
//!
//! Needs root, BIRD 2 and the workspace's binaries.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ha, start_board, start_servers_in, stats, take_turn, wait_for};
use dataplane::testing::{Lab, is_root, skip, statistic};

/// Four boards, two hosts, one location each; the instances follow.
const SLOTS: &str = "sysname scale-lab
slot 1
 host hostA
 worker-cores 0
 interface softwire a1-sw
 interface internet a1-in
 ha-address 192.0.2.1 port 62000
 packet-poll blocking
 route-table 100
slot 2
 host hostA
 worker-cores 1
 interface softwire a2-sw
 interface internet a2-in
 ha-address 192.0.2.2 port 62000
 packet-poll blocking
 route-table 100
slot 3
 host hostB
 worker-cores 0
 interface softwire a3-sw
 interface internet a3-in
 ha-address 192.0.2.3 port 62000
 packet-poll blocking
 route-table 100
slot 4
 host hostB
 worker-cores 1
 interface softwire a4-sw
 interface internet a4-in
 ha-address 192.0.2.4 port 62000
 packet-poll blocking
 route-table 100
service-ha hot-backup enable
service-ha delay-time 1
service-ha preempt-time 3
service-ha heartbeat interval 50 dead-count 4
service-ha preshared-key e2e-secret-0123456789ab
service-location 1
 location slot 1 backup slot 2
service-location 2
 location slot 3 backup slot 4
";

/// One instance over both locations: each B4 belongs to a location by the plan's
/// buckets (decision 0012).
const ONE_INSTANCE: &str = "service-instance-group g
 service-location 1
 service-location 2
ds-lite address-group pool
 section 0 198.51.100.0 mask 24
ds-lite instance d id 1
 service-instance-group g
 local-ipv6 2001:db8::1
 remote-ipv6 2001:db8:b4:: prefix-length 64
 ds-lite address-group pool
";

/// An instance per pair on the one endpoint (decision 0022): a B4 belongs to the host
/// the router sends it to.
const PER_PAIR: &str = "service-instance-group ga
 service-location 1
service-instance-group gb
 service-location 2
ds-lite address-group pool-a
 section 0 198.51.100.0 mask 25
ds-lite address-group pool-b
 section 0 198.51.100.128 mask 25
ds-lite instance a id 1
 service-instance-group ga
 local-ipv6 2001:db8::1
 remote-ipv6 2001:db8:b4:: prefix-length 64
 ds-lite address-group pool-a
ds-lite instance b id 2
 service-instance-group gb
 local-ipv6 2001:db8::1
 remote-ipv6 2001:db8:b4:: prefix-length 64
 ds-lite address-group pool-b
";

/// B4s by raw sockets: IPv4-in-IPv6 built here (any source, any flow label), answers
/// read from a raw socket of protocol 4. Arguments: the B4 addresses (comma
/// separated), flows per B4, seconds. Each datagram says `b4 I flow J seq N`; each
/// answer is printed as `TIME I J EXT:PORT` (what the echo server saw).
const B4S: &str = r#"
import select, socket, struct, sys, time
b4s, flows, secs = sys.argv[1].split(","), int(sys.argv[2]), float(sys.argv[3])
EP = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
SRC4, DST4 = socket.inet_aton("192.168.1.10"), socket.inet_aton("203.0.113.80")
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def frame(i, j, n):
    data = b"b4 %d flow %d seq %d" % (i, j, n)
    udp = struct.pack("!HHHH", 5000 + j, 7, 8 + len(data), 0) + data
    c = csum(SRC4 + DST4 + struct.pack("!BBH", 0, 17, len(udp)) + udp) or 0xffff
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xffff, 0, 64, 17, 0, SRC4, DST4)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:] + udp
    # A flow label of its own per flow: the router must not hash on it.
    label = (i * 64 + j * 7 + 1) & 0xfffff
    src = socket.inet_pton(socket.AF_INET6, b4s[i])
    return struct.pack("!IHBB", (6 << 28) | label, len(ip), 4, 64) + src + EP + ip
tx = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
rx = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 4)
end, n = time.time() + secs, 0
print("started", flush=True)
while time.time() < end:
    for i in range(len(b4s)):
        for j in range(flows):
            tx.sendto(frame(i, j, n), ("2001:db8::1", 0))
    n += 1
    until = time.time() + 0.05
    while True:
        left = until - time.time()
        if left <= 0 or not select.select([rx], [], [], left)[0]:
            break
        d = rx.recv(2048)
        words = d[(d[0] & 15) * 4 + 8:].decode(errors="replace").split()
        if len(words) == 8 and words[0] == "b4" and words[6] == "from":
            print("%.3f %s %s %s" % (time.time(), words[1], words[3], words[7]), flush=True)
"#;

const B4_COUNT: usize = 24;
const FLOWS: usize = 2;

fn run(lab: &Lab, ns: &str, args: &[&str]) -> String {
    let o = lab.exec(ns, args).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// The upstream kernel's route to `prefix`, on one line (a multipath route's next
/// hops joined).
fn upstream_route(lab: &Lab, prefix: &str) -> String {
    let family = if prefix.contains(':') { "-6" } else { "-4" };
    run(lab, "up", &["ip", family, "route", "show", prefix]).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Board `slot`'s BIRD configuration: `deploy/bird/aftr-board.conf` with its host's AS
/// and its own addresses, its IPv6 session on its softwire segment.
fn board_bird(template: &str, slot: u32) -> String {
    let seg = if slot <= 2 { "a" } else { "b" };
    let r = template
        .replace("router id 203.0.113.1;", &format!("router id 203.0.113.{slot};"))
        .replace("local 203.0.113.1;", &format!("local 203.0.113.{slot};"))
        .replace("local 2001:db8:ffff::1;", &format!("local 2001:db8:f{seg}::{slot};"))
        .replace("neighbor 2001:db8:ffff::80 as", &format!("neighbor 2001:db8:f{seg}::80 as"));
    if slot <= 2 { r } else { r.replace("local as 65001;", "local as 65002;") }
}

/// Whether the upstream routes the endpoint over host A's board `a` and host B's board
/// `b` (ECMP), and location 1's share via `a`, location 2's via `b`.
fn upstream_follows(lab: &Lab, shares: &[(u32, String)], a: u32, b: u32) -> bool {
    let ep = upstream_route(lab, "2001:db8::1/128");
    ep.contains(&format!("via 2001:db8:fa::{a} "))
        && ep.contains(&format!("via 2001:db8:fb::{b} "))
        && ep.matches(" via ").count() == 2
        && shares.iter().all(|(loc, p)| {
            let via = if *loc == 1 { a } else { b };
            upstream_route(lab, p).starts_with(&format!("{p} via 203.0.113.{via} "))
        })
}

/// The lab of `deploy/netns/scale-topology.sh`, the boards' configuration `SLOTS` and
/// `instances` written as its `aftr.conf`, once it is this test's turn (the guard);
/// None, the test skipped, without root or BIRD.
fn scale_lab(name: &str, instances: &str) -> Option<(std::sync::MutexGuard<'static, ()>, Lab, String)> {
    if !is_root() {
        skip("needs root for network namespaces");
        return None;
    }
    if Command::new("bird").arg("--version").stderr(Stdio::null()).status().is_err() {
        skip("needs BIRD 2 (bash scripts/setup.sh installs it)");
        return None;
    }
    let turn = take_turn();
    let lab = Lab::of("deploy/netns/scale-topology.sh", name, std::path::Path::new(".."));
    let config = format!("{SLOTS}{instances}");
    std::fs::write(lab.dir.join("aftr.conf"), &config).unwrap();
    Some((turn, lab, config))
}

/// BIRD on the upstream and on every board, and the echo server on the upstream;
/// returns the upstream's control socket.
fn start_routers(lab: &mut Lab) -> String {
    let read = |f: &str| std::fs::read_to_string(std::path::Path::new("..").join(f)).unwrap();
    let up = lab.bird("up", &read("deploy/bird/upstream-ecmp.conf")).unwrap();
    let template = read("deploy/bird/aftr-board.conf");
    for slot in 1..=4 {
        lab.bird(&format!("a{slot}"), &board_bird(&template, slot)).unwrap();
    }
    start_servers_in(lab, "up");
    up
}

/// Each host's pair: its preferred board active, the other standby and in sync.
fn start_pairs(lab: &mut Lab) {
    for (active, standby) in [(1, 2), (3, 4)] {
        start_board(lab, active);
        wait_for(&format!("slot {active} active"), 10, || ha(lab, active).contains("role: active"));
        start_board(lab, standby);
        wait_for(&format!("slot {standby} standby and in sync"), 10, || {
            let s = ha(lab, standby);
            s.contains("role: standby") && s.contains("in sync: yes")
        });
    }
}

/// A board whose only route towards the Internet came by BGP loses it with its
/// session: a second later it is unfit and hands its location to its peer, and the
/// upstream follows the peer (decision 0022). When the session is back, the board is
/// fit again and takes its role back after preempt-time.
#[test]
fn a_board_whose_bgp_session_is_down_gives_its_role_up() {
    let Some((_turn, mut lab, config)) = scale_lab("sd", PER_PAIR) else { return };
    start_routers(&mut lab);
    // The boards' way to the Internet: only what BGP gives them.
    for slot in 1..=4 {
        let ns = format!("a{slot}");
        wait_for(&format!("slot {slot}'s default route by BGP"), 20, || {
            run(&lab, &ns, &["ip", "route", "show", "default"]).contains("via 203.0.113.80 dev a")
                && run(&lab, &ns, &["ip", "route", "show", "default", "proto", "bird"]).contains("via 203.0.113.80")
        });
        assert!(lab.exec(&ns, &["ip", "route", "del", "default", "proto", "boot"]).status().unwrap().success());
    }
    start_pairs(&mut lab);
    let (c, _) = control::parse::parse(&config).unwrap();
    let shares: Vec<(u32, String)> = control::plan::plan(&c)
        .instances
        .values()
        .flat_map(|ip| ip.pool_shares.clone())
        .flat_map(|(l, r)| {
            r.into_iter()
                .flat_map(|(a, b)| control::plan::range_to_prefixes(a, b))
                .map(move |p| (l, format!("{}/{}", std::net::Ipv4Addr::from(p.addr), p.len)))
        })
        .collect();
    wait_for("the upstream to follow slots 1 and 3", 20, || upstream_follows(&lab, &shares, 1, 3));

    // Slot 1's IPv4 session goes down (as when its link to the upstream or its BIRD
    // fails while aftrd runs).
    let a1 = lab.dir.join("a1.ctl").to_string_lossy().into_owned();
    assert!(run(&lab, "a1", &["birdc", "-s", &a1, "disable", "up4"]).contains("disabled"));
    let t = Instant::now();
    wait_for("slot 2 to take over", 10, || ha(&lab, 2).contains("role: active"));
    let took = t.elapsed();
    let h1 = ha(&lab, 1);
    assert!(h1.contains("role: standby") && h1.contains("no next hop towards the Internet"), "{h1}");
    wait_for("the upstream to follow slot 2", 10, || upstream_follows(&lab, &shares, 2, 3));
    eprintln!(
        "bgp session down: slot 2 active {} ms after slot 1's session went down, the upstream following it {} ms after",
        took.as_millis(),
        t.elapsed().as_millis()
    );
    assert!(ha(&lab, 3).contains("role: active"), "host B untouched");

    // The session back: slot 1 is fit again, and takes its role back (preempt-time 3 s).
    assert!(run(&lab, "a1", &["birdc", "-s", &a1, "enable", "up4"]).contains("enabled"));
    wait_for("slot 1 active again", 20, || ha(&lab, 1).contains("role: active"));
    wait_for("the upstream to follow slot 1 again", 10, || upstream_follows(&lab, &shares, 1, 3));
}

/// The answers of the B4s' log: (time, B4, flow, EXT:PORT).
fn answers(log: &str) -> Vec<(f64, usize, usize, String)> {
    log.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            Some((w.first()?.parse().ok()?, w.get(1)?.parse().ok()?, w.get(2)?.parse().ok()?, w.get(3)?.to_string()))
        })
        .collect()
}

#[test]
fn one_instance_over_two_hosts_serves_only_the_b4s_the_router_sends_to_their_own_host() {
    scale_out(ONE_INSTANCE, true);
}

#[test]
fn an_instance_per_host_on_one_endpoint_serves_every_b4_where_the_router_sends_it() {
    scale_out(PER_PAIR, false);
}

/// The scenario on `SLOTS` with `instances`; `by_bucket`: one instance, whose B4s
/// belong to a location by the plan (else each B4 to the host the router picks).
fn scale_out(instances: &str, by_bucket: bool) {
    let Some((_turn, mut lab, config)) = scale_lab("so", instances) else { return };
    let dir = lab.dir.to_str().unwrap().to_string();

    // Each location's share, and where each B4 belongs (by bucket), as the boards plan it.
    let (c, _) = control::parse::parse(&config).unwrap();
    let plan = control::plan::plan(&c);
    let pool_shares: Vec<(u32, Vec<(std::net::Ipv4Addr, std::net::Ipv4Addr)>)> =
        plan.instances.values().flat_map(|ip| ip.pool_shares.clone()).collect();
    let b4s: Vec<String> = (0..B4_COUNT).map(|i| format!("2001:db8:b4::1:{:x}", i + 1)).collect();
    let by_plan: Vec<u32> = b4s
        .iter()
        .map(|b| {
            plan.instances.values().next().unwrap().location_of(&b.parse::<std::net::Ipv6Addr>().unwrap().octets())
        })
        .collect();
    let shares: Vec<(u32, String)> = pool_shares
        .iter()
        .flat_map(|(l, ranges)| {
            ranges
                .iter()
                .flat_map(|(a, b)| control::plan::range_to_prefixes(*a, *b))
                .map(|p| (*l, format!("{}/{}", std::net::Ipv4Addr::from(p.addr), p.len)))
        })
        .collect();
    let location_of_ext = |ext: &str| -> Option<u32> {
        let a: std::net::Ipv4Addr = ext.split(':').next()?.parse().ok()?;
        pool_shares.iter().find(|(_, r)| r.iter().any(|(x, y)| (*x..=*y).contains(&a))).map(|(l, _)| *l)
    };
    assert_eq!(shares.len(), 2, "a share per location: {shares:?}");
    assert!(!by_bucket || (1..=2).all(|l| by_plan.contains(&l)), "the B4s span both locations: {by_plan:?}");

    let up = start_routers(&mut lab);
    start_pairs(&mut lab);
    let t = Instant::now();
    while !upstream_follows(&lab, &shares, 1, 3) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the upstream did not learn the ECMP endpoint and the shares: {} | {:?}\n{}",
            upstream_route(&lab, "2001:db8::1/128"),
            shares.iter().map(|(_, p)| upstream_route(&lab, p)).collect::<Vec<_>>(),
            run(&lab, "up", &["birdc", "-s", &up, "show", "route", "all"])
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The B4s: addresses on the subscriber side (the router resolves them), then UDP
    // through both hosts for 9 s; host B's active board dies after 3.
    for b in &b4s {
        assert!(
            lab.exec("sub", &["ip", "-6", "addr", "add", &format!("{b}/64"), "dev", "b4", "nodad"])
                .status()
                .unwrap()
                .success()
        );
    }
    std::fs::write(lab.dir.join("b4s.py"), B4S).unwrap();
    let log_path = lab.dir.join("b4s.log");
    let flows = lab
        .exec("sub", &["python3", &format!("{dir}/b4s.py"), &b4s.join(","), &FLOWS.to_string(), "9"])
        .stdout(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    lab.keep(flows);
    std::thread::sleep(Duration::from_secs(3));
    let elsewhere = |slot| statistic(&stats(&lab, slot), "drop_b4_elsewhere");
    let refused_before = [elsewhere(1), elsewhere(3)];
    let killed_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let a3 = Command::new("pgrep").args(["-f", &format!("aftrd --config {dir}/aftr.conf --slot 3 ")]).output().unwrap();
    let a3 = String::from_utf8_lossy(&a3.stdout).trim().to_string();
    assert!(!a3.is_empty() && Command::new("kill").args(["-9", &a3]).status().unwrap().success(), "kill slot 3");
    let killed = Instant::now();
    while !upstream_follows(&lab, &shares, 1, 4) {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "the upstream did not follow slot 4: {}\n{}",
            upstream_route(&lab, "2001:db8::1/128"),
            run(&lab, "up", &["birdc", "-s", &up, "show", "route", "all", "for", "2001:db8::1/128"])
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let moved = killed.elapsed();
    assert!(ha(&lab, 4).contains("role: active"), "{}", ha(&lab, 4));
    // Host A: untouched.
    assert!(ha(&lab, 1).contains("role: active") && ha(&lab, 2).contains("role: standby"));
    wait_for("the B4s to finish", 20, || {
        Command::new("pgrep").args(["-f", &format!("{dir}/b4s.py")]).output().unwrap().stdout.is_empty()
    });
    assert!(ha(&lab, 1).contains("role: active") && ha(&lab, 2).contains("role: standby"));
    assert!(upstream_follows(&lab, &shares, 1, 4), "the routes stay");

    let log = std::fs::read_to_string(&log_path).unwrap();
    let seen = answers(&log);
    let before: Vec<_> = seen.iter().filter(|a| a.0 < killed_at).collect();
    // What each B4's flows were answered with before the kill.
    let mut mapped: BTreeMap<(usize, usize), BTreeSet<String>> = BTreeMap::new();
    for (_, i, j, ext) in &before {
        mapped.entry((*i, *j)).or_default().insert(ext.clone());
    }
    // Where each B4 belongs: by the plan, or where the router sent it (the share it
    // was answered from; every B4 must be answered).
    let owner: Vec<u32> = (0..B4_COUNT)
        .map(|i| match mapped.get(&(i, 0)) {
            _ if by_bucket => by_plan[i],
            Some(exts) => location_of_ext(exts.iter().next().unwrap()).unwrap_or(0),
            None => panic!("B4 {} not answered with an instance per host\n{log}", b4s[i]),
        })
        .collect();
    let mut served = [0usize; 2];
    let mut refused = [0usize; 2];
    for i in 0..B4_COUNT {
        let answered: Vec<usize> = (0..FLOWS).filter(|j| mapped.contains_key(&(i, *j))).collect();
        // Never split: all of a B4's flows are answered, or none.
        assert!(answered.is_empty() || answered.len() == FLOWS, "B4 {} split over the hosts: {answered:?}", b4s[i]);
        if answered.is_empty() {
            refused[owner[i] as usize - 1] += 1;
            continue;
        }
        served[owner[i] as usize - 1] += 1;
        for j in 0..FLOWS {
            let exts = &mapped[&(i, j)];
            assert_eq!(exts.len(), 1, "B4 {} flow {j}: one mapping: {exts:?}", b4s[i]);
            let ext = exts.iter().next().unwrap();
            assert_eq!(location_of_ext(ext), Some(owner[i]), "B4 {} of location {} seen as {ext}", b4s[i], owner[i]);
        }
    }
    eprintln!(
        "scale-out: B4s served by their own location's host {served:?}, sent by the router to the other host and \
         refused there {refused:?} (location 1, 2); the upstream followed slot 4 {} ms after kill -9 of slot 3",
        moved.as_millis()
    );
    assert!(served.iter().all(|n| *n > 0), "each host serves some B4s: {served:?}\n{log}");
    assert!(by_bucket || refused == [0, 0], "none refused with an instance per host: {refused:?}");
    // A B4 of location 2 that the router sent to host A is refused and counted there,
    // and the other way round.
    assert_eq!(refused_before[0] > 0, refused[1] > 0, "slot 1 counts what it refuses: {refused_before:?}");
    assert_eq!(refused_before[1] > 0, refused[0] > 0, "slot 3 counts what it refuses: {refused_before:?}");

    // After the kill: every served B4 answered again with the same mapping; host A's
    // without a gap.
    let mut untouched_gap: f64 = 0.0;
    for ((i, j), exts) in &mapped {
        let times: Vec<f64> = seen.iter().filter(|a| a.1 == *i && a.2 == *j).map(|a| a.0).collect();
        let after: BTreeSet<&String> =
            seen.iter().filter(|a| a.1 == *i && a.2 == *j && a.0 > killed_at).map(|a| &a.3).collect();
        assert!(
            after.len() == 1 && exts.contains(after.iter().next().unwrap().as_str()),
            "B4 {} flow {j} after the kill: {after:?}, before {exts:?}",
            b4s[*i]
        );
        let last = times.iter().cloned().fold(0.0, f64::max);
        assert!(last > killed_at + 4.0, "B4 {} flow {j} answered to the end", b4s[*i]);
        if owner[*i] == 1 {
            let gap = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
            assert!(gap < 1.0, "host A's B4 {} flow {j} had a gap of {gap:.3} s", b4s[*i]);
            untouched_gap = untouched_gap.max(gap);
        }
    }
    eprintln!("scale-out: the longest silence of a host A B4 while host B failed over: {:.0} ms", untouched_gap * 1e3);
}
