//! Announcements by BGP through BIRD 2 end to end (docs/decisions/0016): the two
//! boards of `deploy/netns/ha-topology.sh` with `route-table 100`, each with its own
//! BIRD (`deploy/bird/aftr-board.conf`), and an upstream router in the Internet
//! namespace running BIRD (`deploy/bird/upstream-example.conf`) with BGP sessions to
//! both. The upstream's kernel has no route to the pool but what BGP gives it, so
//! the echo server's answers reach a board only through the announced route.
//!
//! Checked: the active board's table holds its endpoint /128 and pool share, the
//! standby's is empty; the upstream learns both routes from the active (`birdc show
//! route`) and installs them in its kernel; a UDP echo through the B4 gets answers;
//! after `kill -9` of the active board (its kernel routes and its BIRD stay and go on
//! announcing them) the upstream's routes move to the new active within 3 s (the time
//! is printed) and the echo answers again; the killed board's aftrd, started again,
//! empties its table, and when it takes its role back (preempt) the upstream follows
//! it without a moment without a route (the other board's routes linger a second),
//! and the other board's table is empty afterwards. A board without a peer routes
//! everything from the start, and SIGTERM empties its table (after the linger) before
//! aftrd exits. Needs root and BIRD 2
//! (`scripts/setup.sh` installs it).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{CONFIG, FLOW, ha, start_b4, start_board, start_pair, start_servers, take_turn, wait_for};
use dataplane::testing::{Lab, is_root, skip};

fn run(lab: &Lab, ns: &str, args: &[&str]) -> String {
    let o = lab.exec(ns, args).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// `birdc -s SOCK show route all PREFIX`.
fn bird_route(lab: &Lab, sock: &str, prefix: &str) -> String {
    run(lab, "inet", &["birdc", "-s", sock, "show", "route", "all", "for", prefix])
}

/// The upstream kernel's route to `prefix` (`ip route show`), one line.
fn kernel_route(lab: &Lab, prefix: &str) -> String {
    let family = if prefix.contains(':') { "-6" } else { "-4" };
    run(lab, "inet", &["ip", family, "route", "show", prefix]).trim().to_string()
}

/// A board's table 100, both families (a table that was never used: empty).
fn table(lab: &Lab, slot: u32) -> String {
    let show =
        |family| lab.exec(&format!("a{slot}"), &["ip", family, "route", "show", "table", "100"]).output().unwrap();
    String::from_utf8_lossy(&show("-4").stdout).into_owned() + &String::from_utf8_lossy(&show("-6").stdout)
}

/// Whether the upstream's kernel sends the pool and the endpoint to board `slot`.
fn upstream_follows(lab: &Lab, slot: u32) -> bool {
    kernel_route(lab, "198.51.100.0/24").starts_with(&format!("198.51.100.0/24 via 203.0.113.{slot} "))
        && kernel_route(lab, "2001:db8::1/128").starts_with(&format!("2001:db8::1 via 2001:db8:ffff::{slot} "))
}

#[test]
fn bgp_announcements_follow_the_active_board() {
    if !is_root() {
        return skip("needs root for network namespaces");
    }
    if Command::new("bird").arg("--version").stderr(Stdio::null()).status().is_err() {
        return skip("needs BIRD 2 (bash scripts/setup.sh installs it)");
    }
    let _turn = take_turn();
    let mut lab = Lab::of("deploy/netns/ha-topology.sh", "bg", std::path::Path::new(".."));
    std::fs::write(
        lab.dir.join("aftr.conf"),
        CONFIG.replace(" packet-poll blocking\n", " packet-poll blocking\n route-table 100\n"),
    )
    .unwrap();
    std::fs::write(lab.dir.join("flow.py"), FLOW).unwrap();
    let dir = lab.dir.to_str().unwrap().to_string();
    // BGP on the Internet segment, over IPv4 for the pool and IPv6 for the endpoint;
    // the upstream reaches the pool only by what BGP says.
    let up = lab.bgp(std::path::Path::new("..")).unwrap();
    start_servers(&mut lab);

    let [a1, _] = start_pair(&mut lab);
    // The active board's table holds its routes, the standby's nothing.
    let t1 = table(&lab, 1);
    assert!(t1.contains("blackhole 198.51.100.0/24 proto static metric "), "{t1}");
    assert!(t1.contains("blackhole 2001:db8::1 dev lo proto static metric "), "{t1}");
    assert_eq!(table(&lab, 2), "", "the standby announces nothing");
    // The upstream learns them over BGP, with the metric as the MED, and installs them.
    wait_for("the upstream to follow slot 1", 20, || upstream_follows(&lab, 1));
    let metric1: String = t1.split("metric ").nth(1).unwrap().split_whitespace().next().unwrap().into();
    for (prefix, via) in [("198.51.100.0/24", "203.0.113.1"), ("2001:db8::1/128", "2001:db8:ffff::1")] {
        let r = bird_route(&lab, &up, prefix);
        assert!(r.contains(&format!("via {via} ")) && r.contains(&format!("BGP.med: {metric1}")), "{r}");
    }

    // Traffic through the active board: the echo answers.
    start_b4(&mut lab);
    let flow_log = lab.dir.join("flow.log");
    let flow = lab
        .exec("sub", &["python3", &format!("{dir}/flow.py"), "5000", "8"])
        .stdout(std::fs::File::create(&flow_log).unwrap())
        .spawn()
        .unwrap();
    lab.keep(flow);
    wait_for("echoes through slot 1", 10, || std::fs::read_to_string(&flow_log).unwrap().contains(" from 198.51.100."));

    // The active board dies; its routes stay in its kernel and its BIRD announces them.
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(Command::new("kill").args(["-9", &a1.to_string()]).status().unwrap().success());
    let killed = Instant::now();
    while !upstream_follows(&lab, 2) {
        assert!(
            killed.elapsed() < Duration::from_secs(3),
            "the upstream still sends to the dead board\n{}",
            bird_route(&lab, &up, "198.51.100.0/24")
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let moved = killed.elapsed();
    assert!(table(&lab, 1).contains("198.51.100.0/24"), "the dead board's route lingers");
    let r = bird_route(&lab, &up, "198.51.100.0/24");
    assert!(
        r.contains("via 203.0.113.1 ") && r.contains("via 203.0.113.2 "),
        "both announced, the new active's best\n{r}"
    );

    // The echo answers again, through slot 2.
    wait_for("the flow to end", 20, || {
        let t = std::fs::read_to_string(&flow_log).unwrap();
        t.lines().count() > 100
            && Command::new("pgrep").args(["-f", &format!("{dir}/flow.py 5000")]).output().unwrap().stdout.is_empty()
    });
    let text = std::fs::read_to_string(&flow_log).unwrap();
    let times = |answered: bool| -> Vec<f64> {
        text.lines()
            .filter(|l| l.contains(" from ") == answered)
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect()
    };
    // The outage: the longest time between two answers.
    let answered = times(true);
    let gap = answered.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(answered.iter().any(|t| *t > before + 0.5), "answers after the failover\n{text}");
    let lost = times(false).len();
    eprintln!(
        "bgp failover: upstream routes moved {} ms after kill -9; echo gap {:.0} ms ({lost} of {} datagrams lost)",
        moved.as_millis(),
        gap * 1000.0,
        answered.len() + lost
    );
    let end: Vec<&str> = text.lines().rev().take(20).collect();
    assert!(end.iter().filter(|l| l.contains(" from ")).count() >= 18, "flowing at the end\n{text}");

    // The killed board starts again: its aftrd empties the table (it is not active),
    // then takes its role back after preempt-time, and the upstream follows it. The
    // board that gives the role up announces a while longer (make before break): the
    // upstream has a route to the pool all the while.
    start_board(&mut lab, 1);
    wait_for("slot 1 standby", 10, || ha(&lab, 1).contains("role: standby"));
    assert_eq!(table(&lab, 1), "", "a starting board empties its table");
    let t = Instant::now();
    while !upstream_follows(&lab, 1) {
        let r = kernel_route(&lab, "198.51.100.0/24");
        assert!(r.contains(" via "), "the upstream had no route to the pool at the handover: {r:?}");
        assert!(t.elapsed() < Duration::from_secs(15), "the upstream did not follow slot 1 back");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(ha(&lab, 1).contains("role: active") && table(&lab, 2).contains("198.51.100.0/24"), "slot 2 lingers");
    wait_for("slot 2 to withdraw", 5, || table(&lab, 2).is_empty());
    // BIRD learns the removal from netlink and sends the withdrawal over BGP: a moment
    // later, not at once.
    let t = Instant::now();
    loop {
        let r = bird_route(&lab, &up, "198.51.100.0/24");
        if !r.contains("via 203.0.113.2 ") {
            eprintln!(
                "bgp: slot 2's withdrawal reached the upstream {} ms after its table emptied",
                t.elapsed().as_millis()
            );
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(3), "slot 2's withdrawal did not reach the upstream\n{r}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A board without a peer is active for everything from the start: its routes are in
/// its table at once; SIGTERM takes them away (after the linger) before aftrd exits.
#[test]
fn a_board_alone_routes_everything_until_it_stops() {
    if !is_root() {
        return skip("needs root for network namespaces");
    }
    /// The scratch directory and aftrd, gone even when the test fails.
    struct Alone(std::path::PathBuf, Option<std::process::Child>);
    impl Drop for Alone {
        fn drop(&mut self) {
            if let Some(c) = self.1.as_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let ns = dataplane::testing::Netns::new(&format!("bgalone{}", std::process::id() % 100_000));
    let mut alone = Alone(std::env::temp_dir().join(format!("aftr-bgalone-{}", std::process::id())), None);
    std::fs::create_dir_all(&alone.0).unwrap();
    let cfg = alone.0.join("aftr.conf");
    std::fs::write(
        &cfg,
        "slot 1\n worker-cores 0\n route-table 100\nservice-location 1\n location slot 1\n\
         service-instance-group g\n service-location 1\nds-lite address-group pool\n section 0 198.51.100.0 mask 24\n\
         ds-lite instance d id 1\n service-instance-group g\n local-ipv6 2001:db8::1\n\
         remote-ipv6 2001:db8:b4:: prefix-length 64\n ds-lite address-group pool\n",
    )
    .unwrap();
    let sock = alone.0.join("s1.sock");
    let aftrd = Command::new("ip")
        .args(["netns", "exec", &ns.0, env!("CARGO_BIN_EXE_aftrd"), "--config", cfg.to_str().unwrap()])
        .args(["--slot", "1", "--socket", sock.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = aftrd.id();
    alone.1 = Some(aftrd);
    let routes =
        || ns.output(&["-4", "route", "show", "table", "100"]) + &ns.output(&["-6", "route", "show", "table", "100"]);
    let t = Instant::now();
    while !(routes().contains("blackhole 198.51.100.0/24 ") && routes().contains("blackhole 2001:db8::1 ")) {
        assert!(t.elapsed() < Duration::from_secs(10), "no routes in table 100 within 10 s: {:?}", routes());
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGTERM is aftrd's once its management socket answers.
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "no management socket within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let stopped = Instant::now();
    let status = alone.1.take().map(|mut c| c.wait().unwrap());
    let took = stopped.elapsed();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert_eq!(routes(), "", "a stopped board leaves nothing in its table");
    assert!(took >= Duration::from_millis(900), "the routes lingered a second first: {took:?}");
}
