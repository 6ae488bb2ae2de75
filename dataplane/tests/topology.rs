//! `deploy/netns/topology.sh` builds the three-namespace test topology and removes all
//! of it. Needs root, as CI has; elsewhere it says so and passes.

use std::process::Command;

use dataplane::testing::{is_root, skip};

fn topology(cmd: &str, prefix: &str) -> std::process::Output {
    Command::new("bash").args(["../deploy/netns/topology.sh", cmd, prefix]).output().unwrap()
}

fn namespaces(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(String::from)
        .collect()
}

/// Takes the topology down even if the test fails.
struct Down(String);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = topology("down", &self.0);
    }
}

#[test]
fn the_test_topology_comes_up_and_leaves_nothing_behind() {
    if !is_root() {
        return skip("needs root for network namespaces");
    }
    let prefix = format!("tp{}-", std::process::id() % 100_000);
    let _guard = Down(prefix.clone());
    let up = topology("up", &prefix);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let mut ns = namespaces(&prefix);
    ns.sort();
    assert_eq!(ns, vec![format!("{prefix}aftr"), format!("{prefix}inet"), format!("{prefix}sub")]);
    let addrs = Command::new("ip").args(["-n", &format!("{prefix}aftr"), "-br", "addr"]).output().unwrap();
    let text = String::from_utf8_lossy(&addrs.stdout);
    assert!(text.contains("2001:db8:b4::1/64") && text.contains("203.0.113.1/24"), "{text}");
    let route = Command::new("ip").args(["-n", &format!("{prefix}inet"), "route"]).output().unwrap();
    assert!(String::from_utf8_lossy(&route.stdout).contains("198.51.100.0/24 via 203.0.113.1"));
    // Up again replaces, down removes everything, a second down is harmless.
    assert!(topology("up", &prefix).status.success());
    assert!(topology("down", &prefix).status.success());
    assert!(namespaces(&prefix).is_empty());
    assert!(topology("down", &prefix).status.success());
    let links = Command::new("ip").args(["-br", "link"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains(&prefix), "no veth left in the root namespace");
}
