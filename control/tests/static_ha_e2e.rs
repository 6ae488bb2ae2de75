//! A static port forwarding across a failover (issue 19 part 1, decision 0019): it is
//! configuration, so the standby holds it from its own configuration, not from the
//! peer. A real UDP flow from the host behind the user-space B4, from the forwarding's
//! inside port to the echo server on the Internet side, runs while the active board is
//! killed (`kill -9`): every echo, before and after, is from the forwarding's address
//! and port, and the new active board translates it both ways. Needs root.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use dataplane::testing::{Lab, is_root, skip, statistic};

mod common;
use common::*;

const FORWARDING: &str =
    " nat server protocol udp global 198.51.100.7 5000 inside 192.168.1.10 5000 b4 2001:db8:b4::2\n";

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn a_static_forwarding_is_served_by_the_new_active_board() {
    if !is_root() {
        return skip("needs root for network namespaces");
    }
    let _turn = take_turn();
    let mut lab = Lab::of("deploy/netns/ha-topology.sh", "sh", std::path::Path::new(".."));
    assert!(CONFIG.ends_with(" ds-lite address-group pool\n"), "the instance view ends the configuration");
    std::fs::write(lab.dir.join("aftr.conf"), format!("{CONFIG}{FORWARDING}")).unwrap();
    std::fs::write(lab.dir.join("flow.py"), FLOW).unwrap();
    let dir = lab.dir.to_str().unwrap().to_string();
    start_servers(&mut lab);
    let [a1, _] = start_pair(&mut lab);
    start_b4(&mut lab);

    let flow_log = lab.dir.join("flow.log");
    let flow = lab
        .exec("sub", &["python3", &format!("{dir}/flow.py"), "5000", "6"])
        .stdout(std::fs::File::create(&flow_log).unwrap())
        .spawn()
        .unwrap();
    lab.keep(flow);
    let echoed = || std::fs::read_to_string(&flow_log).unwrap().lines().filter(|l| l.contains(" from ")).count();
    wait_for("echoes through the forwarding", 5, || echoed() >= 10);
    assert!(statistic(&stats(&lab, 1), "static_out2in") >= 10);
    assert_eq!(statistic(&stats(&lab, 2), "static_out2in"), 0, "the standby forwards nothing");

    assert!(Command::new("kill").args(["-9", &a1.to_string()]).status().unwrap().success());
    let killed = now();
    wait_for("the takeover", 5, || ha(&lab, 2).contains("role: active"));
    wait_for("the flow to end", 15, || {
        Command::new("pgrep").args(["-f", &format!("{dir}/flow.py 5000")]).output().unwrap().stdout.is_empty()
    });
    let text = std::fs::read_to_string(&flow_log).unwrap();
    let echoes: Vec<&str> = text.lines().filter(|l| l.contains(" from ")).collect();
    assert!(echoes.iter().all(|l| l.ends_with("from 198.51.100.7:5000")), "the forwarding throughout\n{text}");
    let after = echoes
        .iter()
        .filter(|l| l.split_whitespace().next().and_then(|t| t.parse::<f64>().ok()).is_some_and(|t| t > killed + 0.5))
        .count();
    assert!(after >= 20, "{after} echoes after the failover\n{text}");
    let s2 = stats(&lab, 2);
    assert!(statistic(&s2, "static_in2out") >= 20 && statistic(&s2, "static_out2in") >= 20, "{s2}");
    assert_eq!(statistic(&s2, "sessions_created"), 0, "no session for a forwarding: {s2}");
}
