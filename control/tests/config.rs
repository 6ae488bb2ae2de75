//! The configuration language: every command of the seed with its undo form, each
//! error class with its line and column, commit atomicity, and the display round trip.

use control::config::*;
use control::error::ConfigError;
use control::parse::{Outcome, Session, View, parse};

/// Runs lines in a session, failing the test on the first error.
fn run(s: &mut Session, lines: &[&str]) {
    for (n, l) in lines.iter().enumerate() {
        if let Err(e) = s.execute(n + 1, l) {
            panic!("line {:?}: {e}", l);
        }
    }
}

fn err(s: &mut Session, line: &str) -> ConfigError {
    s.execute(1, line).expect_err(line)
}

/// The boards (with their HA channels and key) and instance details the seed's
/// procedure takes for granted.
const BOARDS: &[&str] = &[
    "system-view",
    "service-ha preshared-key lab-only-secret",
    "slot 1",
    " worker-cores 0",
    " ha-address 192.0.2.1",
    "slot 2",
    " worker-cores 1",
    " ha-address 192.0.2.2",
    "ds-lite address-group pool1",
    " section 0 198.51.100.0 198.51.100.255",
    "ds-lite instance dslite1 id 1",
    " local-ipv6 2001:db8::1",
    " remote-ipv6 2001:db8:b4:: prefix-length 48",
    " ds-lite address-group pool1",
    " quit",
    "commit",
    "quit",
];

#[test]
fn the_seed_procedure_exactly_as_written() {
    let mut s = Session::new(Config::default());
    run(&mut s, BOARDS);
    assert_eq!(s.view, View::User);
    // Step 1: VSM HA hot backup.
    run(
        &mut s,
        &["system-view", "service-ha hot-backup enable", "service-ha delay-time 10", "service-ha preempt-time 60"],
    );
    assert_eq!(s.execute(5, "commit"), Ok(Outcome::Committed));
    // Step 2: a service-location group.
    run(&mut s, &["system-view", "service-location 1", "location slot 1 backup slot 2", "commit", "quit"]);
    // Step 3: a service-instance group.
    run(&mut s, &["service-instance-group group1", "service-location 1 weight 100", "commit", "quit"]);
    // Step 4: bind the DS-Lite instance.
    run(&mut s, &["ds-lite instance dslite1 id 1", "service-instance-group group1", "commit"]);
    let c = &s.running;
    assert!(c.ha.hot_backup);
    assert_eq!((c.ha.delay_time, c.ha.preempt_time), (10, 60));
    assert_eq!(c.locations[&1], Location { slot: Some(1), backup: Some(2) });
    assert_eq!(c.groups["group1"].locations[&1], 100);
    assert_eq!(c.instances["dslite1"].group.as_deref(), Some("group1"));
    assert_eq!(c.instances["dslite1"].id, Some(1));
    assert_eq!(s.view, View::DsLite("dslite1".into()));
    assert!(!s.dirty());
}

#[test]
fn undo_forms_of_the_seed_commands() {
    let mut s = Session::new(Config::default());
    run(&mut s, BOARDS);
    run(
        &mut s,
        &[
            "system-view",
            "service-ha hot-backup enable",
            "service-ha delay-time 30",
            "service-ha preempt-time 300",
            "service-location 1",
            "location slot 1 backup slot 2",
            "quit",
            "service-location 2",
            "location slot 2 backup slot 1",
            "quit",
            "service-instance-group group1",
            "service-location 1 weight 3",
            "service-location 2",
            "quit",
            "ds-lite instance dslite1",
            "service-instance-group group1",
            "quit",
            "commit",
        ],
    );
    assert_eq!(s.running.groups["group1"].locations[&2], DEFAULT_WEIGHT);
    run(
        &mut s,
        &[
            "undo service-ha hot-backup enable",
            "undo service-ha delay-time",
            "undo service-ha preempt-time 300",
            "ds-lite instance dslite1",
            "undo service-instance-group group1",
            "quit",
            "service-instance-group group1",
            "undo service-location 2",
            "quit",
            "service-location 1",
            "undo location slot 1 backup slot 2",
            "quit",
            "undo service-location 2",
            "commit",
        ],
    );
    let c = &s.running;
    assert!(!c.ha.hot_backup);
    assert_eq!((c.ha.delay_time, c.ha.preempt_time), (DEFAULT_DELAY_TIME, DEFAULT_PREEMPT_TIME));
    assert_eq!(c.instances["dslite1"].group, None);
    assert!(!c.groups["group1"].locations.contains_key(&2));
    assert_eq!(c.locations[&1], Location::default());
    assert!(!c.locations.contains_key(&2));
    run(&mut s, &["undo service-instance-group group1", "undo ds-lite instance dslite1", "commit"]);
    assert!(s.running.groups.is_empty() && s.running.instances.is_empty());
}

#[test]
fn syntax_errors_name_line_column_and_what_was_expected() {
    let mut s = Session::new(Config::default());
    run(&mut s, &["system-view"]);
    let e = err(&mut s, "service-ha delay-time 99999");
    assert_eq!((e.line, e.column), (1, 23));
    assert!(e.message.contains("from 1 to 300"), "{e}");
    let e = err(&mut s, "service-ha preempt-time soon");
    assert_eq!(e.column, 25);
    assert!(e.message.contains("preemption delay"), "{e}");
    let e = err(&mut s, "service-ha hot-backup");
    assert!(e.message.contains("incomplete command: expected `enable`"), "{e}");
    let e = err(&mut s, "  servise-location 1");
    assert_eq!(e.column, 3);
    assert!(e.message.contains("unknown command `servise-location`") && e.message.contains("service-location"), "{e}");
    run(&mut s, &["service-instance-group g"]);
    let e = err(&mut s, "service-location 1 weight 0");
    assert_eq!(e.column, 27);
    assert!(e.message.contains("weight from 1 to 100"), "{e}");
    let e = err(&mut s, "service-location 1 weight 5 extra");
    assert_eq!(e.column, 29);
    assert!(e.message.contains("unexpected `extra`"), "{e}");
    run(&mut s, &["quit", "ds-lite instance d"]);
    let e = err(&mut s, "local-ipv6 2001:db8::zz");
    assert_eq!(e.column, 12);
    assert!(e.message.contains("IPv6 address"), "{e}");
    let e = err(&mut s, "port-block-size 500");
    assert!(e.message.contains("power of two"), "{e}");
    let e = err(&mut s, "aging-time udp 60");
    assert!(e.message.contains("from 120"), "RFC 4787 minimum: {e}");
    // The tunnel MTU ends at a jumbo frame (dataplane::config::MAX_TUNNEL_MTU).
    let e = err(&mut s, "tunnel-mtu 9001");
    assert!(e.message.contains("from 1280 to 9000"), "{e}");
    run(&mut s, &["tunnel-mtu 9000"]);
    let mut u = Session::new(Config::default());
    let e = err(&mut u, "service-location 1");
    assert!(e.message.contains("user view"), "{e}");
}

#[test]
fn packet_io_and_poll_of_a_slot() {
    let mut s = Session::new(Config::default());
    run(&mut s, &["system-view", "slot 1", "packet-io af-xdp generic", "packet-poll blocking", "quit", "commit"]);
    let slot = &s.running.slots[&1];
    assert_eq!((slot.packet_io, slot.poll), (PacketIo::AfXdp(XdpMode::Generic), PollMode::Block));
    run(&mut s, &["slot 1"]);
    let e = err(&mut s, "packet-io af-xdp fast");
    assert_eq!(e.column, 18);
    assert!(e.message.contains("expected `native` or `generic`, found `fast`"), "{e}");
    let e = err(&mut s, "packet-io dpdk");
    assert_eq!(e.column, 11);
    assert!(e.message.contains("expected `auto`, `af-xdp` or `af-packet`, found `dpdk`"), "{e}");
    let e = err(&mut s, "packet-poll");
    assert!(e.message.contains("incomplete command: expected `busy` or `blocking`"), "{e}");
    run(&mut s, &["packet-io af-packet", "undo packet-poll", "quit", "commit"]);
    let slot = &s.running.slots[&1];
    assert_eq!((slot.packet_io, slot.poll), (PacketIo::AfPacket, PollMode::Busy));
    run(&mut s, &["slot 1", "undo packet-io", "quit", "commit"]);
    assert_eq!(s.running.slots[&1].packet_io, PacketIo::Auto);
}

#[test]
fn an_instance_binds_to_one_group_only() {
    let mut s = Session::new(Config::default());
    run(
        &mut s,
        &[
            "system-view",
            "service-instance-group a",
            "quit",
            "service-instance-group b",
            "quit",
            "ds-lite instance d",
            "service-instance-group a",
        ],
    );
    let e = err(&mut s, "service-instance-group b");
    assert!(e.message.contains("only one group"), "{e}");
    assert_eq!(s.candidate.instances["d"].group.as_deref(), Some("a"), "failed command changed nothing");
    run(&mut s, &["undo service-instance-group", "service-instance-group b"]);
    assert_eq!(s.candidate.instances["d"].group.as_deref(), Some("b"));
}

/// Commits `body` after the boards and returns the commit errors.
fn commit_errors(body: &str) -> Vec<ConfigError> {
    let text = format!("slot 1\n worker-cores 0\nslot 2\n worker-cores 1\n{body}");
    parse(&text).expect_err("must not commit")
}

fn has(errors: &[ConfigError], line: usize, text: &str) {
    assert!(
        errors.iter().any(|e| e.line == line && e.message.contains(text)),
        "no error at line {line} with {text:?}: {errors:?}"
    );
}

#[test]
fn semantic_errors_point_at_the_statement() {
    // Lines: 1-4 are the boards.
    has(&commit_errors("service-location 1\n location slot 1 backup slot 1\n"), 6, "must differ");
    has(&commit_errors("service-location 1\n location slot 1 backup slot 9\n"), 6, "slot 9 is not defined");
    // A paired board without its HA channel would run alone and active, with its peer's
    // endpoint and pool; an unauthenticated channel is refused too.
    let unpaired = commit_errors("service-location 1\n location slot 1 backup slot 2\n");
    has(&unpaired, 6, "slot 1 is paired but has no `ha-address`");
    has(&unpaired, 6, "slot 2 is paired but has no `ha-address`");
    has(&unpaired, 6, "needs `service-ha preshared-key`");
    has(&commit_errors("service-instance-group g\n service-location 7\n"), 6, "service-location 7 does not exist");
    has(&commit_errors("ds-lite instance d\n service-instance-group nosuch\n"), 6, "does not exist");
    has(
        &commit_errors(
            "ds-lite address-group p\n section 0 198.51.100.0 mask 24\nds-lite address-group q\n section 3 198.51.100.128 198.51.100.200\n",
        ),
        8,
        "overlaps",
    );
    has(
        &commit_errors("ds-lite instance a\n local-ipv6 2001:db8::1\nds-lite instance b\n local-ipv6 2001:db8::1\n"),
        8,
        "already used by instance a",
    );
    has(
        &commit_errors(
            "ds-lite address-group p\n section 0 198.51.100.0 mask 30\nds-lite instance a\n ds-lite address-group p\nds-lite instance b\n ds-lite address-group p\n",
        ),
        10,
        "pools must not be shared",
    );
    has(&commit_errors("slot 3\n worker-cores 1\n"), 5, "core 1 is already claimed by slot 2");
    // Different hosts may use the same core numbers.
    parse("slot 1\n host a\n worker-cores 0\nslot 2\n host b\n worker-cores 0\n").unwrap();
}

#[test]
fn a_file_with_errors_applies_nothing_and_reports_them_all() {
    let text = "sysname ok\nservice-ha delay-time 5000\nslot 1\n worker-cores x\nservice-location 1\n location slot 1 backup slot 1\n";
    let errors = parse(text).unwrap_err();
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![2, 4], "syntax errors first; the commit is not attempted");
}

#[test]
fn commit_is_atomic() {
    let mut s = Session::new(Config::default());
    run(&mut s, BOARDS);
    run(&mut s, &["system-view", "sysname before", "commit"]);
    let before = s.running.clone();
    run(&mut s, &["sysname after", "service-location 1", "location slot 1 backup slot 1", "quit"]);
    let e = s.execute(9, "commit").unwrap_err();
    assert!(e.message.contains("must differ"), "{e}");
    assert_eq!(s.running, before, "nothing applied");
    assert!(s.dirty());
    s.discard();
    assert_eq!(s.candidate, before);
}

#[test]
fn display_round_trips_the_examples() {
    for f in ["../deploy/aftr-ha.conf", "../deploy/aftr-two-locations.conf"] {
        let text = std::fs::read_to_string(f).unwrap();
        let (c, _) = parse(&text).unwrap_or_else(|e| panic!("{f}: {e:?}"));
        let printed = control::display::render(&c);
        let (again, _) = parse(&printed).unwrap_or_else(|e| panic!("{f} printed: {e:?}\n{printed}"));
        assert_eq!(again, c, "{printed}");
        assert_eq!(control::display::render(&again), printed);
    }
}

#[test]
fn the_examples_use_every_command_of_the_seed() {
    let all = ["../deploy/aftr-ha.conf", "../deploy/aftr-two-locations.conf"]
        .map(|f| std::fs::read_to_string(f).unwrap())
        .join("\n");
    for cmd in [
        "system-view",
        "service-ha hot-backup enable",
        "service-ha delay-time",
        "service-ha preempt-time",
        "service-location",
        "location slot",
        "service-instance-group",
        "weight",
        "ds-lite instance",
        " id ",
        "commit",
        "quit",
    ] {
        assert!(all.contains(cmd), "no `{cmd}` in the examples");
    }
}
