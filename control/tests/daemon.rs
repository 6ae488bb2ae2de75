//! A running aftrd and aftrctl against it: the management socket, commits through the
//! daemon (all or nothing, refused with the reason where the running board cannot take
//! it), `save`, metrics moved by a commit, the interactive session, SIGHUP reload, clean stop;
//! and the board keeping every session a commit still allows.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A daemon in a temporary directory; killed and cleaned up when dropped, even if the
/// test fails.
struct Aftrd {
    child: Option<Child>,
    dir: PathBuf,
    socket: PathBuf,
    config: PathBuf,
}

impl Aftrd {
    fn start(name: &str, config: &str) -> Aftrd {
        Aftrd::start_with(name, config, &[], &[])
    }

    /// [`Aftrd::start`] with files written beside the configuration first (`NAME`,
    /// content), `$CREDENTIALS_DIRECTORY` set to that directory, as systemd does, and
    /// more of the environment (`env`).
    fn start_with(name: &str, config: &str, files: &[(&str, &str)], env: &[(&str, &str)]) -> Aftrd {
        let dir = std::env::temp_dir().join(format!("aftrd-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("slot1.sock");
        let cfg = dir.join("aftr.conf");
        std::fs::write(&cfg, config).unwrap();
        for (name, content) in files {
            std::fs::write(dir.join(name), content).unwrap();
        }
        let child = Command::new(env!("CARGO_BIN_EXE_aftrd"))
            .env("CREDENTIALS_DIRECTORY", &dir)
            .args(["--config", cfg.to_str().unwrap(), "--slot", "1", "--socket", socket.to_str().unwrap()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let d = Aftrd { child: Some(child), dir, socket, config: cfg };
        let t = Instant::now();
        while std::os::unix::net::UnixStream::connect(&d.socket).is_err() {
            assert!(t.elapsed() < Duration::from_secs(10), "aftrd did not open its socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn ctl(&self, args: &[&str]) -> (bool, String, String) {
        let out =
            Command::new(env!("CARGO_BIN_EXE_aftrctl")).arg("--socket").arg(&self.socket).args(args).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        assert!(Command::new("kill").args(["-s", sig, &pid]).status().unwrap().success());
    }
}

impl Drop for Aftrd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn example() -> String {
    std::fs::read_to_string("../deploy/aftr-ha.conf").unwrap()
}

/// The key of the example.
const EXAMPLE_KEY: &str = "lab-only-secret-change-me";

#[test]
fn aftrctl_displays_and_commits_through_the_daemon() {
    let d = Aftrd::start("ctl", &example());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777, 0o600);

    let (ok, text, _) = d.ctl(&["display", "current-configuration"]);
    assert!(ok);
    let (running, _) = control::parse::parse(&text).unwrap();
    // The same configuration, but for the key: masked in every display.
    let mut example_shown = control::parse::parse(&example()).unwrap().0;
    example_shown.ha.key = Some(control::config::KeySource::Running);
    assert_eq!(running, example_shown);
    assert!(text.contains("service-ha preshared-key ******\n") && !text.contains(EXAMPLE_KEY), "{text}");

    // Abbreviated as at the router, from the command line too; an ambiguous word
    // names the keywords it begins; filters and JSON.
    assert_eq!(d.ctl(&["dis", "cur"]), (true, text.clone(), String::new()));
    let (ok, _, err) = d.ctl(&["s"]);
    assert!(!ok && err.contains("ambiguous `s`: `system-view`, `switchover` or `save`"), "{err}");
    let (ok, _, err) = d.ctl(&["dis", "c"]);
    assert!(!ok && err.contains("`current-configuration` or `candidate-configuration`"), "{err}");
    let (ok, only, _) = d.ctl(&["dis", "cur", "|", "inc", "service-ha"]);
    assert!(ok && only.lines().count() == 3 && only.lines().all(|l| l.starts_with("service-ha")), "{only}");
    let json = |args: &[&str]| -> serde_json::Value {
        let (ok, text, err) = d.ctl(&[&["--json"], args].concat());
        assert!(ok, "{err}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    };
    let j = json(&["display", "current-configuration"]);
    assert_eq!(j["configuration"].as_array().unwrap().len(), text.lines().count());
    let (_, global, _) = d.ctl(&["dis", "service-ha", "global-information"]);
    let j = json(&["dis", "service-ha", "global-information"]);
    assert!(global.contains(&format!("Delay-time          : {} (s)", j["delay_time_s"])), "{global} {j}");
    assert!(global.contains(&format!("Preempt-time        : {} (s)", j["preempt_time_s"])), "{global} {j}");
    assert_eq!((j["hot_backup"].as_bool(), j["preshared_key"].as_str()), (Some(true), Some("configured")), "{j}");
    let j = json(&["dis", "service-ha"]);
    assert_eq!((j["slot"].as_u64(), j["delay_time_s"].as_u64()), (Some(1), Some(10)), "{j}");
    assert_eq!(j["locations"][0]["id"], 1, "{j}");
    let j = json(&["dis", "service-location", "|", "json"]);
    assert_eq!(j["service_locations"][0]["slot"], 1, "{j}");
    assert_eq!(j["service_locations"][0]["backup_slot"], 2, "{j}");
    assert_eq!(j["service_locations"][0]["groups"][0], "group1", "{j}");

    let (ok, plan, _) = d.ctl(&["display", "plan"]);
    assert!(ok && plan.contains("slot 1: active for [1]"), "{plan}");
    let (ok, stats, _) = d.ctl(&["display", "statistics"]);
    assert!(ok && stats.contains("rx_frames"), "{stats}");
    let (ok, s, _) = d.ctl(&["display", "sessions", "b4", "2001:db8:b4::1"]);
    assert!(ok && s.contains("total 0 sessions"), "{s}");
    let (ok, _, err) = d.ctl(&["display", "sessions", "b4", "nonsense"]);
    assert!(!ok && err.contains("expected a B4's IPv6 address (an IPv6 address), found `nonsense`"), "{err}");

    // A broken configuration is refused with its position; nothing changes.
    let bad = d.dir.join("bad.conf");
    std::fs::write(&bad, example().replace("service-ha delay-time 10", "service-ha delay-time 10000")).unwrap();
    let (ok, _, err) = d.ctl(&["commit", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains(":23: expected a delay time in seconds from 1 to 300, found `10000`"), "{err}");
    let (_, now, _) = d.ctl(&["display", "current-configuration"]);
    assert_eq!(now, text);

    let good = d.dir.join("good.conf");
    std::fs::write(&good, example().replace("service-ha delay-time 10", "service-ha delay-time 20")).unwrap();
    let (ok, out, err) = d.ctl(&["commit", good.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("committed"));
    let (_, now, _) = d.ctl(&["display", "service-ha"]);
    assert!(now.contains("delay-time: 20 s"), "{now}");
    // The example's HA address (192.0.2.1) is not on this host: the board stays
    // inactive and says why, and a switchover is refused.
    assert!(now.contains("HA channel: down, cannot bind 192.0.2.1:62000"), "{now}");
    assert!(now.contains("role: init"), "{now}");
    assert!(now.contains("service-location 1: init (its preferred board), peer never heard, not in sync"), "{now}");
    let (ok, _, err) = d.ctl(&["switchover"]);
    assert!(!ok && err.contains("switchover refused: location 1: the peer is not there"), "{err}");

    // The vendor's display commands.
    let (ok, g, _) = d.ctl(&["display", "service-ha", "global-information"]);
    assert!(ok && g.contains("Hot-backup          : enable") && g.contains("Delay-time          : 20 (s)"), "{g}");
    let (ok, g, _) = d.ctl(&["display", "service-ha", "global-information", "delay-time"]);
    assert!(ok && g.contains("Delay-time          : 20 (s)") && !g.contains("Preempt"), "{g}");
    let (ok, l, _) = d.ctl(&["display", "service-location", "1"]);
    assert!(ok, "{l}");
    for line in [
        "Location slot ID    : 1",
        "Backup slot ID      : 2",
        "State on slot 1    : init",
        "Batch-backup state  : unfinished",
    ] {
        assert!(l.contains(line), "{line} not in {l}");
    }
    let (ok, _, err) = d.ctl(&["display", "service-location", "9"]);
    assert!(!ok && err.contains("service-location 9 is not configured"), "{err}");

    // What the running board cannot take is refused with the reason; nothing changes.
    let moved = d.dir.join("moved.conf");
    std::fs::write(&moved, example().replace("interface softwire aftr1-sw", "interface softwire other0")).unwrap();
    let (ok, _, err) = d.ctl(&["commit", moved.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("slot 1: changing `interface softwire` needs a restart of the board; nothing was applied"),
        "{err}"
    );
    let (_, after, _) = d.ctl(&["display", "current-configuration"]);
    assert!(after.contains("interface softwire aftr1-sw") && !after.contains("other0"), "{after}");
}

#[test]
fn save_writes_the_running_configuration_and_keeps_the_previous_file() {
    let d = Aftrd::start("save", &example());
    let before = std::fs::read_to_string(&d.config).unwrap();
    let changed = d.dir.join("changed.conf");
    std::fs::write(&changed, example().replace("service-ha delay-time 10", "service-ha delay-time 20")).unwrap();
    let (ok, _, err) = d.ctl(&["commit", changed.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(&d.config).unwrap(), before, "a commit alone does not write the file");
    let (ok, out, err) = d.ctl(&["save"]);
    assert!(ok, "{err}");
    assert!(out.contains("saved to"), "{out}");
    let saved = std::fs::read_to_string(&d.config).unwrap();
    let running = d.ctl(&["display", "current-configuration"]).1;
    // The file is the running configuration, the key in clear (it must start the board
    // with it), and then readable by its owner only; the display masks the key.
    let key_line = format!("service-ha preshared-key {EXAMPLE_KEY}\n");
    assert_eq!(saved.replace(&key_line, "service-ha preshared-key ******\n"), running);
    assert!(saved.contains(&key_line) && !running.contains(EXAMPLE_KEY));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&d.config).unwrap().permissions().mode() & 0o077, 0, "a key in clear");
    let (saved_config, _) = control::parse::parse(&saved).unwrap();
    assert_eq!(saved_config.ha.delay_time, 20);
    assert_eq!(saved_config, control::parse::parse(&std::fs::read_to_string(&changed).unwrap()).unwrap().0);
    let bak = d.dir.join("aftr.conf.bak");
    assert_eq!(std::fs::read_to_string(&bak).unwrap(), before, "the previous file is kept");
    let leftovers: Vec<_> = std::fs::read_dir(&d.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary file left");
    // A reload (SIGHUP) of the saved file changes nothing.
    d.signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.ctl(&["display", "current-configuration"]).1, running);
}

#[test]
fn the_key_is_read_from_a_credential_or_a_file_at_start_and_at_commit() {
    const KEY: &str = "Qm9hcmRzLWtleS0wMTIzNDU2";
    let with = |statement: &str| {
        example().replace(
            &format!("service-ha preshared-key {EXAMPLE_KEY}"),
            &format!("service-ha preshared-key {statement}"),
        )
    };
    // As systemd's LoadCredential= gives it: $CREDENTIALS_DIRECTORY/aftr-ha.
    let d = Aftrd::start_with("credential", &with("credential aftr-ha"), &[("aftr-ha", KEY)], &[]);
    let (_, shown, _) = d.ctl(&["display", "current-configuration"]);
    assert!(shown.contains("service-ha preshared-key credential aftr-ha\n"), "{shown}");
    let (_, g, _) = d.ctl(&["display", "service-ha", "global-information"]);
    assert!(g.contains("Preshared-key       : credential aftr-ha"), "{g}");

    // A key file that cannot be read, or too short a key in it, refuses the commit at
    // the statement (line 42 of the example), and nothing is applied.
    let file = d.dir.join("ha.key");
    let conf = d.dir.join("file.conf");
    let text =
        with(&format!("file {}", file.display())).replace("service-ha delay-time 10", "service-ha delay-time 20");
    std::fs::write(&conf, &text).unwrap();
    for (content, why) in [(None, "cannot read the key file"), (Some("short\n"), "a key needs at least 22")] {
        if let Some(content) = content {
            std::fs::write(&file, content).unwrap();
        }
        let (ok, _, err) = d.ctl(&["commit", conf.to_str().unwrap()]);
        assert!(!ok && err.starts_with("42:1: ") && err.contains(why), "{err}");
        assert!(!err.contains("short"), "{err}");
        assert_eq!(d.ctl(&["display", "current-configuration"]).1, shown, "nothing applied");
    }
    // Readable, long enough: committed; `save` writes where the key is, not the key.
    std::fs::write(&file, format!("{KEY}\n")).unwrap();
    let (ok, _, err) = d.ctl(&["commit", conf.to_str().unwrap()]);
    assert!(ok, "{err}");
    let (_, ha, _) = d.ctl(&["display", "service-ha"]);
    assert!(ha.contains("delay-time: 20 s"), "{ha}");
    assert!(d.ctl(&["save"]).0);
    let saved = std::fs::read_to_string(&d.config).unwrap();
    assert!(saved.contains(&format!("service-ha preshared-key file {}\n", file.display())) && !saved.contains(KEY));

    // `aftrd --check` reads the key as the board would at start.
    let check = |env: Option<&Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_aftrd"));
        c.env_remove("CREDENTIALS_DIRECTORY");
        if let Some(dir) = env {
            c.env("CREDENTIALS_DIRECTORY", dir);
        }
        let cred = d.dir.join("cred.conf");
        std::fs::write(&cred, with("credential aftr-ha")).unwrap();
        c.args(["--check", "--config", cred.to_str().unwrap()]).output().unwrap()
    };
    let out = check(None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cred.conf:42:1: credential aftr-ha: $CREDENTIALS_DIRECTORY is not set"),
        "{err}"
    );
    assert!(check(Some(&d.dir)).status.success());
}

/// A free TCP port on the loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The metrics page at `port`, or the error of connecting.
fn scrape(port: u16) -> std::io::Result<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

#[test]
fn a_commit_moves_the_metrics_listener() {
    let d = Aftrd::start("metrics", &example());
    let with_metrics = |port: u16| {
        example().replace("sysname aftr-lab\n", &format!("sysname aftr-lab\nmetrics http 127.0.0.1 port {port}\n"))
    };
    let (p1, p2) = (free_port(), free_port());
    let file = d.dir.join("metrics.conf");
    std::fs::write(&file, with_metrics(p1)).unwrap();
    let (ok, _, err) = d.ctl(&["commit", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    let page = scrape(p1).expect("metrics where the commit put them");
    assert!(page.contains("aftr_packets_total{slot=\"1\""), "{page}");
    std::fs::write(&file, with_metrics(p2)).unwrap();
    let (ok, _, err) = d.ctl(&["commit", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(scrape(p2).expect("metrics at the new address").contains("aftr_sessions"));
    assert!(scrape(p1).is_err(), "the old address is closed");
    // Without `metrics http` the listener goes.
    std::fs::write(&file, example()).unwrap();
    let (ok, _, err) = d.ctl(&["commit", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(scrape(p2).is_err());
}

#[test]
fn interactive_session_reload_and_clean_stop() {
    let mut d = Aftrd::start("interactive", &example());
    let mut child = Command::new(env!("CARGO_BIN_EXE_aftrctl"))
        .arg("--socket")
        .arg(&d.socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"system-view\nservice-location 1\n ?\n location slot 1 backup slot 1\ncommit\nundo location\nlocation slot 1 backup slot 2\nquit\nservice-ha preempt-time 90\ncommit\nquit\nquit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("<aftr-lab>") && text.contains("[aftr-lab-service-location-1]"), "{text}");
    assert!(text.contains("location slot SLOT [ backup slot SLOT ]"), "? lists the view's commands: {text}");
    assert!(text.contains("Error: service-location 1: the slot and the backup slot are both 1"), "{text}");
    assert!(text.contains("Info: slot 1: committed"), "{text}");
    assert!(text.contains("slot 2 (192.0.2.2:62000): not reached"), "the peer is not running: {text}");
    let (_, ha, _) = d.ctl(&["display", "service-ha"]);
    assert!(ha.contains("preempt-time: 90 s"), "{ha}");

    // SIGHUP: the file is read again, all or nothing.
    std::fs::write(&d.config, example().replace("service-ha preempt-time 60", "service-ha preempt-time 120")).unwrap();
    d.signal("HUP");
    let t = Instant::now();
    loop {
        let (_, ha, _) = d.ctl(&["display", "service-ha"]);
        if ha.contains("preempt-time: 120 s") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "reload did not happen: {ha}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGTERM: stops cleanly, removes its socket.
    d.signal("TERM");
    let mut c = d.child.take().unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = c.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "aftrd did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    assert!(!Path::new(&d.socket).exists(), "socket removed");
}

/// A port block and one UDP session in it, as the peer board would send them.
fn peer_records(
    inst: u8,
    b4: [u8; 16],
    ext: u32,
    first: u16,
    size: u16,
) -> (dataplane::nat::events::BlockRecord, dataplane::nat::events::SessionRecord) {
    let blk = dataplane::nat::events::BlockRecord { inst, b4, ext_addr: ext, first_port: first, size, at: 0 };
    let s = dataplane::nat::events::SessionRecord {
        inst,
        b4,
        inner_addr: 0xc0a8_0001,
        inner_port: 4000,
        ext_addr: ext,
        ext_port: first + 1,
        proto: 17,
        flags: 0,
        created: 1,
        last_seen: u32::MAX / 2,
        mac: [0; 6],
        pcp: None,
    };
    (blk, s)
}

#[test]
fn a_commit_keeps_every_session_the_new_settings_allow() {
    use control::board::SessionFilter;
    let text = std::fs::read_to_string("../deploy/aftr-two-locations.conf").unwrap();
    let (c, _) = control::parse::parse(&text).unwrap();
    let p = control::plan::plan(&c);
    let ec = control::plan::engine_config(&c, &p, 4).unwrap();
    let mut board = control::board::start(4, ec.clone(), &[], None, None, 7, true, |_| {}).unwrap();
    // One session in each instance, as the peer board would send them: a B4 of a
    // location of slot 4, with an address of that location's share.
    let mut installed = 0;
    let mut kept_b4 = None;
    for (inst_name, prefix) in [("dslite-a", "2001:db8:1000::"), ("dslite-b", "2001:db8:2000::")] {
        let inst = ec.instances.iter().position(|i| i.name == inst_name).unwrap() as u8;
        let ip = &p.instances[inst_name];
        let b4 = (1..1000u16)
            .map(|n| {
                let mut a = prefix.parse::<std::net::Ipv6Addr>().unwrap().octets();
                a[14..].copy_from_slice(&n.to_be_bytes());
                a
            })
            .find(|a| ec.locations.contains(&ip.location_of(a)))
            .unwrap();
        let ext: u32 = ip.pool_shares[&ip.location_of(&b4)][0].0.into();
        kept_b4.get_or_insert(b4);
        // A block of some worker: the board installs it, and its sessions, there.
        let w = (inst as u16 + 1) % ec.workers;
        let size = ec.instances[inst as usize].port_block_size;
        let block =
            (0..65536 / size as u32).find(|b| b % ec.workers as u32 == w as u32 && b * size as u32 >= 1024).unwrap();
        let first = (block * size as u32) as u16;
        let (blk, s) = peer_records(inst, b4, ext, first, size);
        assert_eq!(board.install(vec![blk], vec![s]).total(), 0);
        installed += 1;
    }
    assert_eq!(board.sessions(&SessionFilter::default()).len(), installed);
    let commit = |board: &mut control::board::Board, text: &str| {
        let (c, _) = control::parse::parse(text).unwrap();
        let carried = board.reconfigure(control::plan::engine_config(&c, &control::plan::plan(&c), 4).unwrap());
        let carried = carried.unwrap();
        (carried.kept, carried.ended)
    };
    // A policy change of dslite-b: its session is still allowed, so both stay.
    let text2 = text.replace(" inner-source public permit\n", "");
    assert_eq!(commit(&mut board, &text2), (2, 0));
    assert_eq!(board.sessions(&SessionFilter::default()).len(), installed);
    // dslite-b's pool moves: its session's address is no longer the instance's, so that
    // session ends; dslite-a keeps its own.
    let text3 = text2.replace("section 0 192.0.2.128 mask 25", "section 0 192.0.2.0 mask 25");
    assert_eq!(commit(&mut board, &text3), (1, 1));
    let left = board.sessions(&SessionFilter::default());
    assert_eq!(left.len(), 1);
    assert_eq!(Some(left[0].b4), kept_b4);
    board.stop();
}

/// A weight moved by a commit: a subscriber whose bucket or address changed location
/// loses its block and sessions (reported as ended, so logged and removed from the
/// peer); one whose location still holds its address keeps them (decision 0012).
#[test]
fn a_moved_weight_ends_only_the_sessions_whose_location_changed() {
    let text = |w2: u32| {
        format!(
            "slot 1\n worker-cores 0\n ha-address 192.0.2.1\nslot 2\n worker-cores 1\n ha-address 192.0.2.2\n\
             service-ha preshared-key lab-secret-0123456789ab\nservice-location 1\n location slot 1 backup slot 2\n\
             service-location 2\n location slot 2 backup slot 1\nservice-instance-group g\n service-location 1 weight 1\n\
             service-location 2 weight {w2}\nds-lite address-group pool\n section 0 198.51.100.0 mask 24\n\
             ds-lite instance d id 1\n service-instance-group g\n local-ipv6 2001:db8::1\n\
             remote-ipv6 2001:db8:b4:: prefix-length 64\n ds-lite address-group pool\n"
        )
    };
    let plan_of = |w2| {
        let (c, _) = control::parse::parse(&text(w2)).unwrap();
        let p = control::plan::plan(&c);
        (control::plan::engine_config(&c, &p, 1).unwrap(), p.instances["d"].clone())
    };
    let (ec, before) = plan_of(1);
    let mut board = control::board::start(1, ec.clone(), &[], None, None, 7, true, |_| {}).unwrap();
    // 64 subscribers, each with an address of its location's share, as the engine gives.
    let b4s: Vec<[u8; 16]> = (0..64u16)
        .map(|i| {
            let mut a = "2001:db8:b4::".parse::<std::net::Ipv6Addr>().unwrap().octets();
            a[14..].copy_from_slice(&(0x100 + i).to_be_bytes());
            a
        })
        .collect();
    let size = ec.instances[0].port_block_size;
    for (i, b4) in b4s.iter().enumerate() {
        let share = &before.pool_shares[&before.location_of(b4)];
        let ext = u32::from(share[0].0) + (i as u32 % 8);
        let first = (2 + i as u16) * size;
        let (blk, s) = peer_records(0, *b4, ext, first, size);
        assert_eq!(board.install(vec![blk], vec![s]).total(), 0);
    }
    // Weight 3 for location 2: buckets and addresses move from location 1 to 2.
    let (ec3, after) = plan_of(3);
    let stays = |i: usize, b4: &[u8; 16]| {
        let ext = u32::from(before.pool_shares[&before.location_of(b4)][0].0) + (i as u32 % 8);
        let loc = after.location_of(b4);
        after.pool_shares[&loc].iter().any(|(a, b)| (u32::from(*a)..=u32::from(*b)).contains(&ext))
    };
    let expected = b4s.iter().enumerate().filter(|(i, b)| stays(*i, b)).count();
    assert!(expected > 0 && expected < b4s.len(), "the test needs both kinds: {expected} of 64 stay");
    let carried = board.reconfigure(ec3).unwrap();
    assert_eq!((carried.kept, carried.ended), (expected, b4s.len() - expected));
    board.stop();
}

#[test]
fn under_systemd_it_says_ready_pings_the_watchdog_and_says_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&path).unwrap();
    systemd.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    // WatchdogSec=1s: a ping every half second while the workers and the HA thread run.
    let env = [("NOTIFY_SOCKET", path.to_str().unwrap()), ("WATCHDOG_USEC", "1000000")];
    let d = Aftrd::start_with("systemd", &example(), &[], &env);
    let mut said = Vec::new();
    let t = Instant::now();
    let mut buf = [0u8; 256];
    while t.elapsed() < Duration::from_millis(2600) {
        if let Ok(n) = systemd.recv(&mut buf) {
            said.push(String::from_utf8_lossy(&buf[..n]).trim().to_string());
        }
    }
    assert_eq!(said.first().map(String::as_str), Some("READY=1"), "{said:?}");
    let pings = said.iter().filter(|m| *m == "WATCHDOG=1").count();
    assert!((3..=6).contains(&pings), "about one ping a half second: {said:?}");
    d.signal("TERM");
    let t = Instant::now();
    let mut stopping = false;
    while !stopping && t.elapsed() < Duration::from_secs(5) {
        if let Ok(n) = systemd.recv(&mut buf) {
            stopping = String::from_utf8_lossy(&buf[..n]).trim() == "STOPPING=1";
        }
    }
    assert!(stopping, "STOPPING=1 at SIGTERM");
}

#[test]
fn the_command_lines_have_help_version_and_checked_values() {
    let run = |bin: &str, args: &[&str]| {
        let out = Command::new(bin).args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    let (aftrd, aftrctl) = (env!("CARGO_BIN_EXE_aftrd"), env!("CARGO_BIN_EXE_aftrctl"));
    let version = format!("{}\n", env!("CARGO_PKG_VERSION"));
    for bin in [aftrd, aftrctl] {
        let (code, help) = run(bin, &["--help"]);
        assert_eq!(code, Some(0), "{help}");
        assert!(help.contains("Usage:") && help.contains("--socket"), "{help}");
        let (code, v) = run(bin, &["--version"]);
        assert_eq!(code, Some(0));
        assert!(v.ends_with(&version), "{v}");
    }
    // aftrctl's help is its own: nothing is sent to a daemon (there is none here).
    let (code, help) = run(aftrctl, &["--socket", "/nonexistent/aftrd.sock", "--help"]);
    assert_eq!(code, Some(0), "{help}");
    // Bad values are refused with the reason and exit 2, never taken as a default.
    let (code, text) = run(aftrd, &["--config", "../deploy/aftr-ha.conf", "--slot", "abc"]);
    assert_eq!(code, Some(2));
    assert!(text.contains("invalid value 'abc' for '--slot <N>'"), "{text}");
    let (code, text) = run(aftrd, &["--config", "../deploy/aftr-ha.conf", "--slot", "65"]);
    assert_eq!(code, Some(2), "{text}");
    let (code, text) = run(aftrd, &["--config", "../deploy/aftr-ha.conf"]);
    assert_eq!(code, Some(2));
    assert!(text.contains("--slot N is needed to run a board"), "{text}");
    let (code, text) = run(aftrd, &["--config", "../deploy/aftr-ha.conf", "--check", "--verbose"]);
    assert_eq!(code, Some(2));
    assert!(text.contains("unexpected argument '--verbose'"), "{text}");
    // The checks that worked before still do.
    let (code, text) = run(aftrd, &["--check", "--config", "../deploy/aftr-ha.conf"]);
    assert_eq!(code, Some(0), "{text}");
}

/// Drives a program on a pseudo-terminal (Python's standard `pty`): argv is the
/// program; stdin holds the steps, a JSON list of [keys to type, regular expression to
/// wait for in the output]. Prints the whole output; exits 1 at a step not answered
/// within 10 s, saying which.
const PTY_DRIVER: &str = r#"
import json, os, pty, re, select, sys, time
steps = json.load(sys.stdin)
pid, fd = pty.fork()
if pid == 0:
    os.environ["TERM"] = "xterm"
    os.execv(sys.argv[1], sys.argv[1:])
seen = b""
def wait(pattern):
    global seen
    start, deadline = len(seen), time.time() + 10
    while True:
        m = re.compile(pattern.encode()).search(seen, start)
        if m:
            return
        if time.time() > deadline:
            sys.stdout.write(seen.decode(errors="replace"))
            sys.stdout.write("\n---\nno %r after typing %r\n" % (pattern, keys))
            sys.exit(1)
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                pass
for keys, pattern in steps:
    os.write(fd, keys.encode())
    wait(pattern)
os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
"#;

/// aftrctl on a terminal: Tab completes from the command table, `?` lists what may
/// follow at once and gives the words back, abbreviations run (an ambiguous one names the
/// keywords it begins), the Up arrow recalls the previous line, the prompt shows the
/// view and uncommitted changes, and the history file never gets the HA key.
#[test]
fn the_console_completes_abbreviates_and_remembers_on_a_terminal() {
    let d = Aftrd::start("console", &example());
    let state = d.dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let key = "k".repeat(30);
    let steps = serde_json::json!([
        ["", "<aftr-lab>"],
        // Tab: `dis` becomes `display `, so `cur` makes a command.
        ["dis\t", "play"],
        ["cur\r", "(?s)sysname aftr-lab.*return\\r?\\n.*<aftr-lab>"],
        // `?` lists what may follow at once (no Enter); the words come back, to go on with.
        ["dis ?", "(?s)dis \\?.*current-configuration.*statistics.*service-ha.*<aftr-lab>"],
        ["stat | include rx_frames\r", "(?s)rx_frames +\\d+ +\\d+.*<aftr-lab>"],
        // Up: the previous line again.
        ["\x1b[A", "include rx_frames"],
        ["\r", "(?s)rx_frames +\\d+ +\\d+.*<aftr-lab>"],
        ["s\r", "(?s)ambiguous `s`: `system-view`, `switchover` or `save`.*<aftr-lab>"],
        ["sys\r", "\\[aftr-lab\\]"],
        ["ds-lite inst x\r", "\\[\\*aftr-lab-ds-lite-instance-x\\]"],
        ["q\r", "\\[\\*aftr-lab\\]"],
        [format!("service-ha preshared-key {key}\r"), "\\[\\*aftr-lab\\]"],
        ["dis cand | inc ds-lite instance\r", "(?s)ds-lite instance x.*\\[\\*aftr-lab\\]"],
        ["return\r", "<aftr-lab>"],
        ["quit\r", ""],
    ]);
    let mut child = Command::new("python3")
        .args(["-c", PTY_DRIVER, env!("CARGO_BIN_EXE_aftrctl"), "--socket", d.socket.to_str().unwrap()])
        .env("XDG_STATE_HOME", &state)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(steps.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{seen}");
    assert!(!seen.contains("unknown command"), "{seen}");
    let history = std::fs::read_to_string(state.join("aftrctl_history")).unwrap();
    for line in ["dis\tcur", "ds-lite inst x", "stat | include rx_frames"] {
        let line = line.replace("dis\tcur", "display cur");
        assert!(history.contains(&line), "{line}: {history}");
    }
    assert!(!history.contains(&key) && !history.contains("preshared"), "{history}");

    // The same session from `-c`: lines as typed, abbreviations, exit 1 on an error.
    let (ok, said, _) = d.ctl(&["-c", "dis cur | inc delay; sys; service-ha delay-t 20; dis cand | inc delay"]);
    assert!(ok, "{said}");
    assert_eq!(said, "service-ha delay-time 10\nservice-ha delay-time 20\n");
    let (ok, said, _) = d.ctl(&["-c", "sys; s"]);
    assert!(!ok && said.contains("Error: ambiguous `s`"), "{said}");
}

#[test]
fn a_commit_sets_the_nat_log_collectors_or_refuses_a_source_not_on_the_host() {
    let d = Aftrd::start("natlog", &example());
    let port = free_port();
    let with = |log: &str| {
        example()
            .replace("sysname aftr-lab\n", &format!("sysname aftr-lab\nmetrics http 127.0.0.1 port {port}\n{log}\n"))
    };
    let file = d.dir.join("natlog.conf");
    for kind in ["ipfix", "syslog-udp", "syslog-tcp"] {
        std::fs::write(&file, with(&format!("nat log host 127.0.0.1 4739 source 192.0.2.77 type {kind}"))).unwrap();
        let (ok, out, err) = d.ctl(&["commit", file.to_str().unwrap()]);
        let said = format!("{out}{err}");
        assert!(!ok && said.contains("nat log: ") && said.contains("nothing was applied"), "{kind}: {said}");
    }
    std::fs::write(&file, with("nat log host 127.0.0.1 4739 type ipfix")).unwrap();
    let (ok, _, err) = d.ctl(&["commit", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    let page = scrape(port).unwrap();
    assert!(page.contains("aftr_natlog_messages_total{slot=\"1\",kind=\"ipfix\",result=\"sent\"} 0"), "{page}");
    let (_, shown, _) = d.ctl(&["display", "current-configuration"]);
    assert!(shown.lines().any(|l| l == "nat log host 127.0.0.1 4739 type ipfix"), "{shown}");
}

/// The cores in a `Cpus_allowed_list` ("0-2,5").
fn core_list(text: &str) -> Vec<usize> {
    text.split(',')
        .filter(|r| !r.is_empty())
        .flat_map(|r| match r.split_once('-') {
            Some((a, b)) => a.parse().unwrap()..=b.parse().unwrap(),
            None => r.parse().unwrap()..=r.parse().unwrap(),
        })
        .collect()
}

#[test]
fn threads_other_than_the_workers_keep_off_the_worker_cores() {
    let cores = control::cpus::cores_of(0).unwrap();
    if cores.len() < 2 || !cores.contains(&0) {
        eprintln!("cores {cores:?}: the example's worker core 0 and another are needed");
        return;
    }
    // Slot 1's worker on core 0, as in the example; slot 2 on another host, so this
    // host's other cores have no worker.
    let config = example().replacen("slot 2\n", "slot 2\n host other-host\n", 1);
    let d = Aftrd::start("cpus", &config);
    let task = PathBuf::from(format!("/proc/{}/task", d.child.as_ref().unwrap().id()));
    let mut threads: Vec<(String, Vec<usize>)> = Vec::new();
    for t in std::fs::read_dir(&task).unwrap() {
        let t = t.unwrap().path();
        let (Ok(comm), Ok(status)) =
            (std::fs::read_to_string(t.join("comm")), std::fs::read_to_string(t.join("status")))
        else {
            continue; // ended meanwhile
        };
        let allowed = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim();
        threads.push((comm.trim().to_string(), core_list(allowed)));
    }
    let rest: Vec<usize> = cores.iter().copied().filter(|&c| c != 0).collect();
    let (workers, others): (Vec<_>, Vec<_>) = threads.iter().partition(|(comm, _)| comm.starts_with("aftr-slot1-w"));
    assert_eq!(workers.len(), 1, "{threads:?}");
    assert_eq!(workers[0].1, [0], "the worker on its core: {threads:?}");
    assert!(others.len() >= 3, "the main, HA and board threads at least: {threads:?}");
    for (comm, allowed) in &others {
        assert_eq!(allowed, &rest, "{comm} off the worker core: {threads:?}");
    }
}
