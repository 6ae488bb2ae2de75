//! The plan: roles of each slot, the weighted split of subscribers between locations
//! and its stability, the split of pools.

use control::parse::parse;
use control::plan::{engine_config, plan, range_to_prefixes};

fn example() -> control::config::Config {
    parse(&std::fs::read_to_string("../deploy/aftr-two-locations.conf").unwrap()).unwrap().0
}

fn b4(n: u32) -> [u8; 16] {
    let mut a = [0x20, 0x01, 0x0d, 0xb8, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    a[8..12].copy_from_slice(&n.to_be_bytes());
    a
}

#[test]
fn slots_know_their_roles_cores_and_peers() {
    let p = plan(&example());
    assert_eq!(p.slots[&1].active_for, vec![1]);
    assert_eq!(p.slots[&2].standby_for, vec![1]);
    assert_eq!(p.slots[&4].active_for, vec![2]);
    assert_eq!(p.slots[&3].standby_for, vec![2]);
    assert_eq!(p.slots[&1].peers.iter().copied().collect::<Vec<_>>(), vec![2]);
    assert_eq!(p.slots[&3].cores, vec![4, 5]);
}

#[test]
fn subscribers_split_by_weight() {
    let p = plan(&example());
    let ip = &p.instances["dslite-a"];
    let n = 100_000;
    let at1 = (0..n).filter(|&k| ip.location_of(&b4(k)) == 1).count() as f64 / n as f64;
    // Weights 2:1: two thirds at location 1, within 1 %.
    assert!((at1 - 2.0 / 3.0).abs() < 0.01, "share at location 1: {at1:.4}");
    let only = &p.instances["dslite-b"];
    assert!((0..1000).all(|k| only.location_of(&b4(k)) == 2));
}

#[test]
fn changing_a_weight_moves_only_the_changed_share() {
    let c = example();
    let before = plan(&c).instances["dslite-a"].clone();
    let mut c2 = c.clone();
    c2.groups.get_mut("group-ab").unwrap().locations.insert(2, 2); // 2:1 -> 2:2
    let after = plan(&c2).instances["dslite-a"].clone();
    let n = 50_000;
    let mut moved_wrong_way = 0;
    let mut moved = 0;
    for k in 0..n {
        let (a, b) = (before.location_of(&b4(k)), after.location_of(&b4(k)));
        if a != b {
            moved += 1;
            if !(a == 1 && b == 2) {
                moved_wrong_way += 1;
            }
        }
    }
    assert_eq!(moved_wrong_way, 0, "only subscribers moving to the location that gained weight");
    // From 2/3 to 1/2 at location 1: about 1/6 of the subscribers move.
    let f = moved as f64 / n as f64;
    assert!((f - 1.0 / 6.0).abs() < 0.01, "moved {f:.4}");

    // A third location takes its share from both, nobody moves between the old ones.
    let mut c3 = c.clone();
    c3.locations.insert(3, control::config::Location { slot: Some(1), backup: Some(2) });
    c3.groups.get_mut("group-ab").unwrap().locations.insert(3, 3);
    let third = plan(&c3).instances["dslite-a"].clone();
    for k in 0..n {
        let (a, b) = (before.location_of(&b4(k)), third.location_of(&b4(k)));
        assert!(a == b || b == 3, "subscriber {k} moved from {a} to {b}");
    }
}

#[test]
fn pools_split_by_weight_into_disjoint_shares() {
    let c = example();
    let p = plan(&c);
    let shares = &p.instances["dslite-a"].pool_shares;
    let count = |v: &Vec<(std::net::Ipv4Addr, std::net::Ipv4Addr)>| {
        v.iter().map(|(a, b)| u32::from(*b) - u32::from(*a) + 1).sum::<u32>()
    };
    assert_eq!(count(&shares[&1]) + count(&shares[&2]), 384);
    assert_eq!(count(&shares[&1]), 256);
    // The engine of slot 1 gets location 1's share only; slot 4 gets location 2's.
    let e1 = engine_config(&c, &p, 1).unwrap();
    let e4 = engine_config(&c, &p, 4).unwrap();
    let pool = |e: &dataplane::config::EngineConfig, name: &str| {
        e.instances.iter().find(|i| i.name == name).unwrap().pool.clone()
    };
    let a1: Vec<u32> = pool(&e1, "dslite-a").iter().flat_map(|p| p.addresses().collect::<Vec<_>>()).collect();
    let a4: Vec<u32> = pool(&e4, "dslite-a").iter().flat_map(|p| p.addresses().collect::<Vec<_>>()).collect();
    assert!(a1.iter().all(|a| !a4.contains(a)), "disjoint");
    assert_eq!(e1.workers, 2);
    // The engine accepts what the plan produces.
    dataplane::Engine::new(&e1, 0, 1).unwrap();
    dataplane::Engine::new(&e4, 1, 1).unwrap();
}

#[test]
fn ranges_become_exact_prefixes() {
    let p = |s: &str| s.parse::<std::net::Ipv4Addr>().unwrap();
    let v = range_to_prefixes(p("10.0.0.1"), p("10.0.0.6"));
    let got: Vec<(u32, u8)> = v.iter().map(|x| (x.addr & 0xff, x.len)).collect();
    assert_eq!(got, vec![(1, 32), (2, 31), (4, 31), (6, 32)]);
    assert_eq!(range_to_prefixes(p("0.0.0.0"), p("255.255.255.255"))[0].len, 0);
}

#[test]
fn instances_without_an_id_take_ids_no_instance_names() {
    // `dslite-a` has no id and sorts first; `dslite-b` names id 1 itself.
    let text = std::fs::read_to_string("../deploy/aftr-two-locations.conf")
        .unwrap()
        .replace("ds-lite instance dslite-a id 1", "ds-lite instance dslite-a")
        .replace("ds-lite instance dslite-b id 2", "ds-lite instance dslite-b id 1");
    let p = plan(&parse(&text).unwrap().0);
    assert_eq!((p.instances["dslite-a"].id, p.instances["dslite-b"].id), (2, 1));
}

#[test]
fn the_data_planes_defences_reach_every_board() {
    let text = std::fs::read_to_string("../deploy/aftr-two-locations.conf").unwrap();
    let plain = engine_config(&example(), &plan(&example()), 1).unwrap();
    assert_eq!((plain.icmp_errors_per_sec, plain.icmp_errors_burst, plain.block_hold_down), (1000, 50, 120));
    let (c, _) = parse(&format!("{text}icmp-error rate 200 burst 10\nport-block hold-down 300\n")).unwrap();
    for slot in [1, 2, 3, 4] {
        let e = engine_config(&c, &plan(&c), slot).unwrap();
        assert_eq!((e.icmp_errors_per_sec, e.icmp_errors_burst, e.block_hold_down), (200, 10, 300), "slot {slot}");
    }
    // A hold-down shorter than RFC 6888 asks is allowed, with a warning.
    let (short, _) = parse(&format!("{text}port-block hold-down 30\n")).unwrap();
    assert!(control::validate::warnings(&short).iter().any(|w| w.contains("RFC 6888 REQ-8")));
}

#[test]
fn table_sizes_reach_every_board_and_print_back() {
    let text = std::fs::read_to_string("../deploy/aftr-two-locations.conf").unwrap();
    let plain = engine_config(&example(), &plan(&example()), 1).unwrap();
    assert_eq!((plain.max_sessions, plain.max_subscribers), (65536, 16384));
    let sized = format!("{text}nat session-table size 1048576\nnat subscriber-table size 65536\n");
    let (c, _) = parse(&sized).unwrap();
    for slot in [1, 2, 3, 4] {
        let e = engine_config(&c, &plan(&c), slot).unwrap();
        assert_eq!((e.max_sessions, e.max_subscribers), (1 << 20, 1 << 16), "slot {slot}");
    }
    let shown = control::display::render(&c);
    assert!(shown.contains("\nnat session-table size 1048576\n"), "{shown}");
    assert!(shown.contains("\nnat subscriber-table size 65536\n"), "{shown}");
    let saved = control::display::render_in_clear(&c);
    assert_eq!(parse(&saved).unwrap().0, c, "what is saved parses back to the same");
    // The defaults are not displayed; a size out of range is refused where it stands.
    assert!(!control::display::render(&example()).contains("session-table"));
    let line = text.lines().count() + 1;
    let e = parse(&format!("{text}nat session-table size 100\n")).unwrap_err()[0].to_string();
    assert!(e.starts_with(&format!("{line}:24: ")) && e.contains("from 1024 to 16777216"), "{e}");
}
