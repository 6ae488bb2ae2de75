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
    "service-ha preshared-key lab-only-secret-0123456789",
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
fn route_table_of_a_slot() {
    let mut s = Session::new(Config::default());
    run(&mut s, &["system-view", "slot 1", "route-table 100", "quit", "commit"]);
    assert_eq!(s.running.slots[&1].route_table, Some(100));
    assert!(control::display::render(&s.running).contains("slot 1\n route-table 100\n"));
    run(&mut s, &["slot 1"]);
    for (table, name) in [(253, "default"), (254, "main"), (255, "local")] {
        let e = err(&mut s, &format!("route-table {table}"));
        assert_eq!(e.column, 13);
        assert!(e.message.contains(&format!("the kernel's `{name}` table")), "{e}");
    }
    let e = err(&mut s, "route-table 0");
    assert!(e.message.contains("from 1 to 4294967295"), "{e}");
    run(&mut s, &["undo route-table", "quit", "commit"]);
    assert_eq!(s.running.slots[&1].route_table, None);
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
fn instances_share_an_endpoint_only_on_boards_of_their_own_that_route() {
    // Scale-out by ECMP (decision 0022): one endpoint, an instance per pair of boards.
    let slot =
        |n: u32, table: &str| format!("slot {n}\n worker-cores {n}\n ha-address 192.0.2.{n} port 62000\n{table}");
    let rest = |b: u32| {
        format!(
            "service-ha preshared-key e2e-secret-0123456789ab\nservice-location 1\n location slot 1 backup slot 2\n\
             service-location 2\n location slot 3 backup slot {b}\nservice-instance-group ga\n service-location 1\n\
             service-instance-group gb\n service-location 2\nds-lite instance a id 1\n service-instance-group ga\n\
             local-ipv6 2001:db8::1\nds-lite instance b id 2\n service-instance-group gb\n local-ipv6 2001:db8::1\n"
        )
    };
    let routed: String = (1..=4).map(|n| slot(n, " route-table 100\n")).collect();
    parse(&format!("{routed}{}", rest(4))).unwrap();
    // A board of both instances would have two instances on one endpoint.
    has(&parse(&format!("{routed}{}", rest(2))).unwrap_err(), 31, "already used by instance a");
    // Without BGP the pairs would answer neighbour discovery for one address.
    let unrouted: String = (1..=4).map(|n| slot(n, if n == 4 { "" } else { " route-table 100\n" })).collect();
    has(&parse(&format!("{unrouted}{}", rest(4))).unwrap_err(), 30, "each with a route-table");
}

#[test]
fn each_board_of_a_host_serves_its_own_metrics() {
    // The system view's listener, on two boards of one host: the second could not bind.
    let shared = "metrics http 127.0.0.1 port 9100\nslot 1\n host a\nslot 3\n host a\n";
    has(&parse(shared).unwrap_err(), 4, "slot 1 on host a already serves metrics at 127.0.0.1:9100");
    // One per slot view; the system view's for the slots without their own.
    let own = "metrics http 127.0.0.1 port 9100\nslot 1\n host a\n metrics http 127.0.0.1 port 9101\nslot 3\n host a\n";
    let (c, _) = parse(own).unwrap();
    assert_eq!(c.metrics_of(1), Some("127.0.0.1:9101".parse().unwrap()));
    assert_eq!(c.metrics_of(3), Some("127.0.0.1:9100".parse().unwrap()));
    // Printed with the system view's line first, so that it reads back as the system's.
    let printed = control::display::render(&c);
    assert_eq!(parse(&printed).unwrap().0, c, "{printed}");
    // Boards of different hosts may share an address.
    parse("metrics http 127.0.0.1 port 9100\nslot 1\n host a\nslot 3\n host b\n").unwrap();
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
        // As `save` writes it (the key in clear): the same configuration.
        let printed = control::display::render_in_clear(&c);
        let (again, _) = parse(&printed).unwrap_or_else(|e| panic!("{f} printed: {e:?}\n{printed}"));
        assert_eq!(again, c, "{printed}");
        assert_eq!(control::display::render_in_clear(&again), printed);
        // As displays show it: the same but for the key, masked.
        let shown = control::display::render(&c);
        assert_eq!(shown, printed.replace(&key_line(&c), "service-ha preshared-key ******"));
    }
}

/// The key statement of `c`, in clear.
fn key_line(c: &Config) -> String {
    let Some(KeySource::Inline(k)) = &c.ha.key else { panic!("an inline key") };
    format!("service-ha preshared-key {}", std::str::from_utf8(k.expose()).unwrap())
}

/// The boards, paired, with `key` as the key statement (line 1).
fn paired_with(key: &str) -> String {
    format!(
        "{key}\nslot 1\n worker-cores 0\n ha-address 192.0.2.1\nslot 2\n worker-cores 1\n ha-address 192.0.2.2\n\
         service-location 1\n location slot 1 backup slot 2\n"
    )
}

const GOOD_KEY: &str = "tW5m2y0hB4a0XgQx3f8Zr1Kc";

#[test]
fn a_key_too_short_for_128_bits_is_refused_where_it_is_and_changes_nothing() {
    let short = "service-ha preshared-key abcdefghij0123456789x";
    let errors = parse(&paired_with(short)).unwrap_err();
    assert_eq!((errors[0].line, errors[0].column), (1, 26), "{errors:?}");
    let e = &errors[0].message;
    assert!(e.contains("22 to 128 characters, 21 given") && e.contains("openssl rand -base64 24"), "{e}");
    assert!(!e.contains("abcdefghij"), "the error never quotes the key: {e}");
    // In a session: refused at once, the candidate keeps its key.
    let mut s = Session::new(Config::default());
    run(&mut s, BOARDS);
    run(&mut s, &["system-view"]);
    let before = s.candidate.clone();
    let e = err(&mut s, "service-ha preshared-key short");
    assert_eq!((e.line, e.column), (1, 26));
    assert_eq!(s.candidate, before);
    // A key typed with spaces: the rest is not quoted either.
    let e = err(&mut s, &format!("service-ha preshared-key {GOOD_KEY} and-more-secret"));
    assert_eq!(e.column, 51);
    assert!(!e.message.contains("and-more-secret"), "{e}");
    assert_eq!(s.candidate, before);
    // 22 characters (132 bits of base64) are enough.
    parse(&paired_with("service-ha preshared-key abcdefghij0123456789xy")).unwrap();
}

#[test]
fn displays_mask_the_key_and_save_writes_what_reads_back_to_it() {
    let (c, pos) = parse(&paired_with(&format!("service-ha preshared-key {GOOD_KEY}"))).unwrap();
    let shown = control::display::render(&c);
    assert!(shown.contains("service-ha preshared-key ******\n") && !shown.contains(GOOD_KEY), "{shown}");
    assert!(!format!("{c:?}").contains(GOOD_KEY), "not even a debug print shows it");
    // `save` writes it in clear: the file starts the board with the same key.
    let saved = control::display::render_in_clear(&c);
    assert!(saved.contains(&format!("service-ha preshared-key {GOOD_KEY}\n")));
    let (again, _) = parse(&saved).unwrap();
    assert_eq!(again, c);
    // What a display shows reads back as "the key this board runs with": committed to
    // the running board, it keeps that key.
    let (mut shown_back, shown_pos) = parse(&shown).unwrap();
    assert_eq!(shown_back.ha.key, Some(KeySource::Running));
    let secret = control::secret::resolve(&mut shown_back, &shown_pos, Some(&c), None).unwrap();
    assert_eq!(secret.as_ref().map(|s| s.expose()), Some(GOOD_KEY.as_bytes()));
    assert_eq!(shown_back, c);
    // A board that starts has no running key: `******` is an error at the statement.
    let (mut alone, _) = parse(&shown).unwrap();
    let e = control::secret::resolve(&mut alone, &shown_pos, None, None).unwrap_err();
    let line = shown.lines().position(|l| l.starts_with("service-ha preshared-key")).unwrap() + 1;
    assert_eq!((e.line, e.column), (line, 1));
    assert!(e.message.contains("runs with none"), "{e}");
    // The resolved key of the original is the key itself.
    let mut c2 = c.clone();
    let s = control::secret::resolve(&mut c2, &pos, None, None).unwrap().unwrap();
    assert_eq!(s.expose(), GOOD_KEY.as_bytes());
}

#[test]
fn a_key_from_a_file_or_a_systemd_credential() {
    let dir = std::env::temp_dir().join(format!("aftr-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ha.key");
    // As `openssl rand -base64 24 > ha.key` writes it: the final newline is not the key's.
    std::fs::write(&file, format!("{GOOD_KEY}\n")).unwrap();
    let text = paired_with(&format!("service-ha preshared-key file {}", file.display()));
    let (mut c, pos) = parse(&text).unwrap();
    assert_eq!(c.ha.key, Some(KeySource::File(file.clone())));
    // Displays and `save` show where it is, never what it is.
    for printed in [control::display::render(&c), control::display::render_in_clear(&c)] {
        assert!(printed.contains(&format!("service-ha preshared-key file {}\n", file.display())), "{printed}");
        assert!(!printed.contains(GOOD_KEY));
        assert_eq!(parse(&printed).unwrap().0, c);
    }
    let secret = control::secret::resolve(&mut c, &pos, None, None).unwrap().unwrap();
    assert_eq!(secret.expose(), GOOD_KEY.as_bytes());

    // A systemd credential: `$CREDENTIALS_DIRECTORY/NAME`.
    std::fs::write(dir.join("aftr-ha"), GOOD_KEY).unwrap();
    let (mut c, pos) = parse(&paired_with("service-ha preshared-key credential aftr-ha")).unwrap();
    assert!(control::display::render(&c).contains("service-ha preshared-key credential aftr-ha\n"));
    let secret = control::secret::resolve(&mut c.clone(), &pos, None, Some(&dir)).unwrap().unwrap();
    assert_eq!(secret.expose(), GOOD_KEY.as_bytes());
    let e = control::secret::resolve(&mut c, &pos, None, None).unwrap_err();
    assert!(e.message.contains("$CREDENTIALS_DIRECTORY is not set") && e.message.contains("LoadCredential="), "{e}");

    // A file that cannot be read, or holds too little: an error at the statement.
    for (content, why) in
        [(None, "cannot read the key file"), (Some("short\n"), "holds 5 bytes; a key needs at least 22")]
    {
        let f = dir.join("bad.key");
        let _ = std::fs::remove_file(&f);
        if let Some(content) = content {
            std::fs::write(&f, content).unwrap();
        }
        let (mut c, pos) = parse(&paired_with(&format!("service-ha preshared-key file {}", f.display()))).unwrap();
        let e = control::secret::resolve(&mut c, &pos, None, None).unwrap_err();
        assert_eq!((e.line, e.column), (1, 1), "{e}");
        assert!(e.message.contains(why), "{e}");
    }
    // A path is absolute; a credential's name is a name. A key typed there by mistake
    // is not quoted back.
    let e = parse(&paired_with(&format!("service-ha preshared-key file {GOOD_KEY}"))).unwrap_err();
    assert!(e[0].message.contains("an absolute path") && e[0].column == 31, "{e:?}");
    assert!(!e[0].message.contains(GOOD_KEY), "{e:?}");
    let e = parse(&paired_with(&format!("service-ha preshared-key credential {GOOD_KEY}/="))).unwrap_err();
    assert!(e[0].column == 37 && !e[0].message.contains(GOOD_KEY), "{e:?}");
    let e = parse(&paired_with("service-ha preshared-key credential ../ha")).unwrap_err();
    assert_eq!(e[0].column, 37, "{e:?}");
    std::fs::remove_dir_all(&dir).unwrap();
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

#[test]
fn nat_log_collectors_and_events() {
    let mut s = Session::new(Config::default());
    run(
        &mut s,
        &[
            "system-view",
            "nat log host 192.0.2.9 514 type syslog-tcp",
            "nat log host 192.0.2.9 4739 source 192.0.2.1 port 40000 type ipfix",
            "nat log syslog 192.0.2.10",
            "nat log session enable",
            "undo nat log quota enable",
            "nat log ipfix template-refresh time 30 packets 200",
            "commit",
        ],
    );
    let l = &s.running.nat_log;
    let hosts: Vec<(String, LogFormat, Option<String>)> =
        l.hosts.iter().map(|h| (h.addr.to_string(), h.format, h.source.map(|s| s.to_string()))).collect();
    assert_eq!(
        hosts,
        [
            ("192.0.2.9:514".into(), LogFormat::SyslogTcp, None),
            ("192.0.2.9:4739".into(), LogFormat::Ipfix, Some("192.0.2.1:40000".into())),
            ("192.0.2.10:514".into(), LogFormat::SyslogUdp, None),
        ]
    );
    assert_eq!((l.sessions, l.blocks, l.exhaustion, l.quotas), (true, true, true, false));
    assert_eq!((l.template_refresh_secs, l.template_refresh_packets), (30, 200));
    let e = err(&mut s, "nat log host 192.0.2.9 4739 source 2001:db8::1 type ipfix");
    assert_eq!((e.column, &e.message[..]), (36, "the source address is not of the collector's family"));
    let e = err(&mut s, "nat log host 192.0.2.9 4739 type netflow");
    assert_eq!(e.column, 34);
    assert!(e.message.contains("expected `syslog-udp`, `syslog-tcp` or `ipfix`, found `netflow`"), "{e}");
    let e = err(&mut s, "nat log ipfix template-refresh time 0 packets 1");
    assert_eq!(e.column, 37);
    // Printed in the vendor's form, the older `nat log syslog` too.
    run(&mut s, &["undo nat log host 192.0.2.9 514", "commit"]);
    let shown = control::display::render(&s.running);
    for line in [
        "nat log host 192.0.2.9 4739 source 192.0.2.1 port 40000 type ipfix",
        "nat log host 192.0.2.10 514 type syslog-udp",
        "nat log session enable",
        "undo nat log quota enable",
        "nat log ipfix template-refresh time 30 packets 200",
    ] {
        assert!(shown.lines().any(|l| l == line), "{line} not in\n{shown}");
    }
    assert!(!shown.contains("192.0.2.9 514"), "{shown}");
}

/// An instance with a pool and B4s (lines 5-11 after the boards), then `extra`.
fn with_instance(extra: &str) -> String {
    format!(
        "ds-lite address-group p\n section 0 198.51.100.0 mask 25\n\
         ds-lite instance d\n local-ipv6 2001:db8::1\n remote-ipv6 2001:db8:b4:: prefix-length 64\n ds-lite address-group p\n\
         {extra}"
    )
}

#[test]
fn static_forwardings_and_own_addresses_are_checked_at_commit() {
    // Lines 1-4 are the boards, 5-10 the pool and instance: the entries are on 11 on.
    let server = |g: &str, b4: &str| format!(" nat server protocol udp global {g} inside 192.168.1.10 5000 b4 {b4}\n");
    let ok = format!(
        "slot 1\n worker-cores 0\nslot 2\n worker-cores 1\n{}",
        with_instance(&format!(
            "{} nat no-translation b4 2001:db8:b4::3 address 198.51.100.200\n nat no-translation b4 2001:db8:b4::4 address 198.51.100.201 port-range 2048 4095\n",
            server("198.51.100.7 5000", "2001:db8:b4::2")
        ))
    );
    let (c, _) = parse(&ok).unwrap();
    let d = &c.instances["d"];
    assert_eq!(d.servers.len(), 1);
    assert_eq!(d.no_translation[1].ports, Some((2048, 4095)));
    // Printed and read back: the same.
    let printed = control::display::render(&c);
    assert!(
        printed
            .contains(" nat server protocol udp global 198.51.100.7 5000 inside 192.168.1.10 5000 b4 2001:db8:b4::2")
    );
    assert_eq!(parse(&printed).unwrap().0, c, "{printed}");

    // Outside the pool, with the column of the command.
    let e = commit_errors(&with_instance(&server("198.51.100.200 5000", "2001:db8:b4::2")));
    has(&e, 11, "nat server global 198.51.100.200 is not in the instance's pool (address-group p)");
    assert_eq!(e[0].column, 2, "{e:?}");
    // Taken by another entry (of the other protocol it would not be).
    let twice =
        format!("{}{}", server("198.51.100.7 5000", "2001:db8:b4::2"), server("198.51.100.7 5000", "2001:db8:b4::9"));
    has(&commit_errors(&with_instance(&twice)), 12, "already forwarded by the nat server at line 11 column 2");
    let tcp = twice.replacen("protocol udp", "protocol tcp", 1);
    parse(&format!("slot 1\n worker-cores 0\nslot 2\n worker-cores 1\n{}", with_instance(&tcp))).unwrap();
    // A B4 outside the remote-ipv6 prefixes.
    has(
        &commit_errors(&with_instance(&server("198.51.100.7 5000", "2001:db8:66::2"))),
        11,
        "b4 2001:db8:66::2 is not in a remote-ipv6 prefix",
    );
    // Own addresses: not in a pool, not overlapping, authorised, a range in order.
    let own = |b4: &str, rest: &str| format!(" nat no-translation b4 {b4} address {rest}\n");
    has(&commit_errors(&with_instance(&own("2001:db8:b4::3", "198.51.100.9"))), 11, "must be outside every pool");
    let overlap = format!(
        "{}{}",
        own("2001:db8:b4::3", "198.51.100.201 port-range 2048 4095"),
        own("2001:db8:b4::4", "198.51.100.201 port-range 4000 6000")
    );
    has(&commit_errors(&with_instance(&overlap)), 12, "overlap the entry at line 11 column 2");
    has(&commit_errors(&with_instance(&own("2001:db8:66::3", "198.51.100.200"))), 11, "not authorised");
    has(&commit_errors(&with_instance(&own("2001:db8:b4::3", "198.51.100.200 port-range 9 8"))), 11, "is empty");
    // `undo` takes an entry away.
    let mut s = Session::new(c.clone());
    run(
        &mut s,
        &[
            "system-view",
            "ds-lite instance d",
            &format!("undo{}", server("198.51.100.7 5000", "2001:db8:b4::2").trim_end()),
        ],
    );
    assert!(s.candidate.instances["d"].servers.is_empty());
}

#[test]
fn pcp_settings_are_read_printed_and_checked_at_commit() {
    let pcp = " pcp server enable address 192.0.0.1\n pcp lifetime min 60 max 3600\n pcp max-mappings 8\n";
    let (c, _) = parse(&format!("slot 1\n worker-cores 0\nslot 2\n worker-cores 1\n{}", with_instance(pcp))).unwrap();
    let d = &c.instances["d"];
    assert_eq!((d.pcp_server, d.pcp_lifetime, d.pcp_max_mappings), (Some([192, 0, 0, 1].into()), (60, 3600), 8));
    let printed = control::display::render(&c);
    for line in pcp.lines() {
        assert!(printed.lines().any(|l| l == line), "{line:?} not in\n{printed}");
    }
    assert_eq!(parse(&printed).unwrap().0, c, "{printed}");
    // Lifetimes out of order, at the line and column of the command.
    let e = commit_errors(&with_instance(" pcp server enable address 192.0.0.1\n pcp lifetime min 600 max 60\n"));
    has(&e, 12, "pcp lifetime min 600 is above max 60");
    assert_eq!(e[0].column, 2, "{e:?}");
    // A pool address, and no unicast address.
    has(&commit_errors(&with_instance(" pcp server enable address 198.51.100.9\n")), 11, "is in address-group p");
    has(&commit_errors(&with_instance(" pcp server enable address 224.0.0.1\n")), 11, "is not a unicast address");
}
