//! What an operator's tools read: two boards on one host (two aftrd, slots 1 and 3, in
//! hot backup over the loopback), each serving its metrics at its own address; the
//! exposition checked by `promtool check metrics`; the alert rules by `promtool check
//! rules` and their unit tests; every metric the Grafana dashboard and the alerts query
//! present in the exposition.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The boards of one host, killed and their directory removed when dropped.
struct Boards {
    children: Vec<Child>,
    dir: PathBuf,
}

impl Drop for Boards {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free TCP or UDP port on the loopback (the kernel's choice, released at once).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn scrape(port: u16) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
    let mut page = String::new();
    s.read_to_string(&mut page)?;
    Ok(page.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default())
}

/// Two boards of host `lab`, each in backup of the other, each with its own metrics
/// listener (`metrics http` in its slot view); waits until both serve metrics.
/// Each board's log (stderr) is `DIR/slotN.log`; `args` go to both.
fn two_boards(args: &[&str]) -> (Boards, [u16; 2]) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("aftr-operator-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (m1, m3, h1, h3, log) = (free_port(), free_port(), free_port(), free_port(), free_port());
    let config = format!(
        "sysname aftr-lab\n\
         service-ha hot-backup enable\n\
         service-ha preshared-key lab-only-secret-change-me-0123\n\
         nat log syslog 127.0.0.1 port {log}\n\
         slot 1\n host lab\n ha-address 127.0.0.1 port {h1}\n metrics http 127.0.0.1 port {m1}\n\
         slot 3\n host lab\n ha-address 127.0.0.1 port {h3}\n metrics http 127.0.0.1 port {m3}\n\
         service-location 1\n location slot 1 backup slot 3\n\
         service-location 2\n location slot 3 backup slot 1\n\
         service-instance-group g\n service-location 1\n service-location 2\n\
         ds-lite address-group p\n section 0 198.51.100.0 mask 24\n\
         ds-lite instance d id 1\n service-instance-group g\n local-ipv6 2001:db8::1\n \
         remote-ipv6 2001:db8:b4:: prefix-length 48\n ds-lite address-group p\n"
    );
    let file = dir.join("aftr.conf");
    std::fs::write(&file, config).unwrap();
    let mut boards = Boards { children: vec![], dir: dir.clone() };
    for slot in ["1", "3"] {
        let socket = dir.join(format!("slot{slot}.sock"));
        let child = Command::new(env!("CARGO_BIN_EXE_aftrd"))
            .args(["--config", file.to_str().unwrap(), "--slot", slot, "--socket", socket.to_str().unwrap()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("slot{slot}.log"))).unwrap())
            .spawn()
            .unwrap();
        boards.children.push(child);
    }
    let t = Instant::now();
    for port in [m1, m3] {
        while scrape(port).is_err() {
            for c in &mut boards.children {
                assert!(c.try_wait().unwrap().is_none(), "an aftrd stopped: {:?}", c.try_wait());
            }
            assert!(t.elapsed() < Duration::from_secs(10), "no metrics at port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    (boards, [m1, m3])
}

/// Runs promtool with `args` (and `stdin`); its exit status and what it said.
fn promtool(args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/prometheus"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/setup.sh installs it)");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The metric names (`aftr_...`) in `text`, as PromQL uses them.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("aftr_") {
        let name: String = rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        rest = &rest[i + name.len()..];
        names.insert(name);
    }
    names
}

#[test]
fn two_boards_on_one_host_serve_metrics_that_promtool_accepts() {
    let (_boards, ports) = two_boards(&[]);
    // Wait for the roles to settle: every location active on one board.
    let t = Instant::now();
    let pages = loop {
        let pages: Vec<String> = ports.iter().map(|p| scrape(*p).unwrap()).collect();
        let active = |loc: &str| {
            pages.iter().any(|p| p.lines().any(|l| l.contains(&format!("location=\"{loc}\",role=\"active\"}} 1"))))
        };
        if active("1") && active("2") {
            break pages;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "roles did not settle:\n{}", pages.join("\n"));
        std::thread::sleep(Duration::from_millis(100));
    };
    for (page, slot) in pages.iter().zip(["1", "3"]) {
        let build = format!("aftr_build_info{{slot=\"{slot}\",version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
        assert!(page.lines().any(|l| l == build), "{build} not in\n{page}");
        // The board's pool share: half of a /24 per location, a location per board.
        assert!(page.lines().any(|l| l.starts_with(&format!("aftr_pool_addresses{{slot=\"{slot}\"}} "))), "{page}");
        assert!(page.lines().any(|l| l == format!("aftr_ha_peer_alive{{slot=\"{slot}\"}} 1")), "{page}");
        let (ok, said) = promtool(&["check", "metrics"], page);
        assert!(ok && said.trim().is_empty(), "promtool check metrics:\n{said}");
    }
    // Every metric the dashboard and the alerts query is in the exposition.
    let served: std::collections::BTreeSet<String> = pages
        .iter()
        .flat_map(|p| p.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next().map(String::from)))
        .collect();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let dashboard = Command::new("python3")
        .args(["-c", "import json,sys\nd=json.load(open(sys.argv[1]))\nfor p in d['panels']:\n  for t in p['targets']: print(t['expr'])"])
        .arg(format!("{root}/deploy/grafana/aftr.json"))
        .output()
        .unwrap();
    assert!(dashboard.status.success(), "the dashboard is not JSON: {}", String::from_utf8_lossy(&dashboard.stderr));
    let queries = String::from_utf8(dashboard.stdout).unwrap();
    let alerts = std::fs::read_to_string(format!("{root}/deploy/prometheus/alerts.yml")).unwrap();
    for (what, text) in [("deploy/grafana/aftr.json", &queries), ("deploy/prometheus/alerts.yml", &alerts)] {
        let names = metric_names(text);
        assert!(names.len() > 5, "{what}: {names:?}");
        let missing: Vec<_> = names.difference(&served).collect();
        assert!(missing.is_empty(), "{what} queries metrics aftrd does not serve: {missing:?}");
    }
}

/// The logs: levels, and a line for every change of role with its reason.
#[test]
fn role_changes_are_logged_at_info_which_log_level_warn_leaves_out() {
    for (args, shown) in [(&[][..], true), (&["--log-level", "warn"][..], false)] {
        let (boards, _) = two_boards(args);
        let log = boards.dir.join("slot1.log");
        let t = Instant::now();
        let said = loop {
            let said = std::fs::read_to_string(&log).unwrap();
            if said.contains("management socket") || t.elapsed() > Duration::from_secs(3) {
                std::thread::sleep(Duration::from_millis(500));
                break std::fs::read_to_string(&log).unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let role = said.lines().any(|l| l.contains(" INFO slot 1: service-location 1: active: "));
        assert_eq!(role, shown, "{args:?}:\n{said}");
        assert_eq!(said.contains(" INFO "), shown, "{args:?}:\n{said}");
    }
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let (ok, said) = promtool(&["check", "rules", "alerts.yml"], "");
    assert!(ok && said.contains("SUCCESS"), "{said}");
    let (ok, said) = promtool(&["test", "rules", "alerts_test.yml"], "");
    assert!(ok, "{said}");
}

/// The unit's capabilities are enough for the data plane: aftrd, its bounding set
/// reduced to the unit's `CapabilityBoundingSet=` (setpriv, as systemd does for a root
/// service), loads and attaches the XDP program and opens AF_XDP sockets; without
/// CAP_BPF it falls back to AF_PACKET (so the check can tell).
#[test]
fn the_units_capabilities_are_enough_for_af_xdp() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let unit = std::fs::read_to_string(format!("{root}/deploy/aftrd@.service")).unwrap();
    let caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit has a CapabilityBoundingSet=")
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_lowercase())
        .collect();
    let p = format!("oc{}-", std::process::id() % 10000);
    struct Topology(String, String);
    impl Drop for Topology {
        fn drop(&mut self) {
            let _ =
                Command::new("bash").args([&format!("{}/deploy/netns/topology.sh", self.0), "down", &self.1]).output();
        }
    }
    let up = Command::new("bash").args([&format!("{root}/deploy/netns/topology.sh"), "up", &p]).output().unwrap();
    let _topology = Topology(root.to_string(), p.clone());
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("aftr.conf");
    std::fs::write(
        &config,
        format!(
            "slot 1\n interface softwire {p}sw\n interface internet {p}in\n\
             service-location 1\n location slot 1\n\
             service-instance-group g\n service-location 1\n\
             ds-lite address-group pool1\n section 0 198.51.100.0 mask 24\n\
             ds-lite instance d id 1\n service-instance-group g\n local-ipv6 2001:db8::1\n \
             remote-ipv6 2001:db8:b4:: prefix-length 64\n ds-lite address-group pool1\n"
        ),
    )
    .unwrap();
    let run = |caps: &[String]| -> String {
        let bounding = format!("-all,{}", caps.iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(","));
        let log = dir.path().join("aftrd.log");
        let socket = dir.path().join("slot1.sock");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &format!("{p}aftr"), "setpriv", &format!("--bounding-set={bounding}")])
            .arg(env!("CARGO_BIN_EXE_aftrd"))
            .args(["--config", config.to_str().unwrap(), "--slot", "1", "--socket", socket.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let t = Instant::now();
        let said = loop {
            let said = std::fs::read_to_string(&log).unwrap();
            if said.contains(" workers (")
                || t.elapsed() > Duration::from_secs(10)
                || child.try_wait().unwrap().is_some()
            {
                break said;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let _ = child.kill();
        let _ = child.wait();
        said
    };
    let said = run(&caps);
    assert!(said.contains("AF_XDP (") && !said.contains("using AF_PACKET"), "with {caps:?}:\n{said}");
    let without_bpf: Vec<String> = caps.iter().filter(|c| *c != "bpf").cloned().collect();
    let said = run(&without_bpf);
    assert!(said.contains("using AF_PACKET"), "with {without_bpf:?}:\n{said}");
}
