//! Prometheus metrics over HTTP: the engine counters of every worker, sessions and
//! subscribers, in the text exposition format, at `GET /metrics`.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dataplane::counters::{Counter, WorkerCounters};

pub use dataplane::worker::Gauges;

/// One metric family: its `# HELP` and `# TYPE` lines, then a sample per (labels,
/// value); labels are written as given (`slot="1",worker="0"`).
fn family<V: std::fmt::Display>(
    o: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, V)>,
) {
    use std::fmt::Write as _;
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(o, "{name}{{{labels}}} {v}");
    }
}

/// A label's name and value.
pub type Label = (&'static str, &'static str);

/// A metric family's name and its engine counters, each with its label.
type Family = (String, Vec<(Counter, Option<Label>)>);

/// The metric family of an engine counter, and the label that tells it apart within
/// the family (`reason`, `path`) if it shares one: packets by path, drops by reason,
/// and a family of its own for each count of something else (sessions, port blocks).
pub fn family_of(k: Counter) -> (String, Option<Label>) {
    let name = k.name();
    if let Some(reason) = name.strip_prefix("drop_") {
        return ("aftr_packet_drops_total".into(), Some(("reason", reason)));
    }
    // The PCP server (decision 0023): answers by result code, mappings by event.
    if let Some(result) = name.strip_prefix("pcp_result_") {
        return ("aftr_pcp_results_total".into(), Some(("result", result)));
    }
    if let Some(event) = name.strip_prefix("pcp_mappings_") {
        return ("aftr_pcp_mappings_total".into(), Some(("event", event)));
    }
    match name {
        "pcp_requests" => ("aftr_pcp_requests_total".into(), None),
        "sessions_created"
        | "sessions_expired"
        | "sessions_installed"
        | "sessions_ended_by_commit"
        | "subscribers_created"
        | "events_dropped"
        | "well_known_port_fallbacks" => (format!("aftr_{name}_total"), None),
        "blocks_allocated" | "blocks_released" => (format!("aftr_port_{name}_total"), None),
        "rx_bytes" => ("aftr_received_bytes_total".into(), None),
        _ => ("aftr_packets_total".into(), Some(("path", name))),
    }
}

/// Renders the exposition text of the board's engines: counters of every worker (a
/// family per kind of thing counted), sessions, subscribers, the pools' sizes and their
/// port blocks in use, and the build.
pub fn render(slot: u32, workers: &[Arc<WorkerCounters>], gauges: &Gauges) -> String {
    let mut o = String::new();
    family(
        &mut o,
        "aftr_build_info",
        "gauge",
        "The aftrd build (1), its version as a label.",
        [(format!("slot=\"{slot}\",version=\"{}\"", env!("CARGO_PKG_VERSION")), 1)],
    );
    // Families in the order of their first counter, each counter under its family.
    let mut families: Vec<Family> = Vec::new();
    for &k in Counter::ALL {
        let (f, label) = family_of(k);
        match families.iter_mut().find(|(n, _)| *n == f) {
            Some((_, ks)) => ks.push((k, label)),
            None => families.push((f, vec![(k, label)])),
        }
    }
    for (name, ks) in &families {
        let help = match name.as_str() {
            "aftr_packets_total" => "Packets by path, per worker.".to_string(),
            "aftr_packet_drops_total" => "Packets dropped, by reason, per worker.".to_string(),
            "aftr_pcp_results_total" => "PCP answers sent, by result code (RFC 6887), per worker.".to_string(),
            "aftr_pcp_mappings_total" => "PCP mappings created, renewed and deleted, per worker.".to_string(),
            "aftr_pcp_requests_total" => "PCP requests to the server, per worker.".to_string(),
            _ => format!("Engine counter {}, per worker.", ks[0].0.name()),
        };
        let samples = workers.iter().enumerate().flat_map(|(w, c)| {
            ks.iter().map(move |(k, label)| {
                let extra = label.map(|(l, v)| format!(",{l}=\"{v}\"")).unwrap_or_default();
                (format!("slot=\"{slot}\",worker=\"{w}\"{extra}"), c.get(*k))
            })
        });
        family(&mut o, name, "counter", &help, samples);
    }
    let per_worker = |v: &[std::sync::atomic::AtomicU64]| -> Vec<(String, u64)> {
        v.iter()
            .enumerate()
            .map(|(w, v)| (format!("slot=\"{slot}\",worker=\"{w}\""), v.load(Ordering::Relaxed)))
            .collect()
    };
    family(&mut o, "aftr_sessions", "gauge", "NAT sessions, per worker.", per_worker(&gauges.sessions));
    family(
        &mut o,
        "aftr_subscribers",
        "gauge",
        "Subscribers (B4s) with sessions, per worker.",
        per_worker(&gauges.subscribers),
    );
    let at_slot = |v: u64| [(format!("slot=\"{slot}\""), v)];
    family(
        &mut o,
        "aftr_pool_addresses",
        "gauge",
        "External addresses of the pool shares of the board's locations.",
        at_slot(gauges.pool_addresses.load(Ordering::Relaxed)),
    );
    family(
        &mut o,
        "aftr_port_blocks",
        "gauge",
        "Port blocks of those addresses (65536 ports / port-block-size each).",
        at_slot(gauges.port_blocks.load(Ordering::Relaxed)),
    );
    // Allocated (or installed from the peer) and not released yet; held-down blocks
    // are counted free here although they wait out port-block hold-down.
    let in_use: u64 =
        workers.iter().map(|c| c.get(Counter::BlocksAllocated).saturating_sub(c.get(Counter::BlocksReleased))).sum();
    family(&mut o, "aftr_port_blocks_in_use", "gauge", "Port blocks held by subscribers.", at_slot(in_use));
    o
}

/// The hot-backup state of a board (`display service-ha` as metrics).
pub fn render_ha(slot: u32, st: &ha_sync::node::Status) -> String {
    use ha_sync::role::Role;
    let mut o = String::new();
    let roles = |current: Role, labels: &str| -> Vec<(String, u8)> {
        [Role::Init, Role::Standby, Role::Active]
            .into_iter()
            .map(|r| (format!("slot=\"{slot}\"{labels},role=\"{}\"", r.name()), (current == r) as u8))
            .collect()
    };
    family(&mut o, "aftr_ha_role", "gauge", "The board's role (1 for the current one).", roles(st.role, ""));
    family(
        &mut o,
        "aftr_ha_location_role",
        "gauge",
        "The board's role for each service-location (1 for the current one).",
        st.locations.iter().flat_map(|l| roles(l.role, &format!(",location=\"{}\"", l.id))),
    );
    let gauges: [(&str, &str, u64); 8] = [
        ("aftr_ha_peer_alive", "The peer is heard (1) or not (0).", st.peer_alive as u64),
        (
            "aftr_ha_fit",
            "This board's softwire and Internet links are up and its workers run (1), or not (0): it gives its locations to a fit peer.",
            st.fit as u64,
        ),
        (
            "aftr_ha_witness",
            "Witness heartbeats on the softwire segment are sent and heard (1) or not (0).",
            st.witness as u64,
        ),
        ("aftr_ha_sessions_waiting", "Sessions waiting for their delay-time before replication.", st.young as u64),
        ("aftr_ha_in_sync", "Standby: holds the whole eligible table; active: the peer says so.", st.in_sync as u64),
        ("aftr_ha_queue_depth", "Data messages unacknowledged plus records waiting.", st.queue_depth as u64),
        ("aftr_ha_sessions_replicated", "Sessions the standby holds, as the stream knows.", st.replicated as u64),
        (
            "aftr_ha_config_differs",
            "The peer's heartbeats carry another configuration digest than this board's (1) or not (0).",
            st.config_differs() as u64,
        ),
    ];
    let at_slot = || format!("slot=\"{slot}\"");
    for (name, help, v) in gauges {
        family(&mut o, name, "gauge", help, [(at_slot(), v)]);
    }
    family(
        &mut o,
        "aftr_ha_lag_seconds",
        "gauge",
        "Age of the oldest unacknowledged message.",
        [(at_slot(), st.lag_ms as f64 / 1000.0)],
    );
    let counters: [(&str, &str, u64); 9] = [
        ("aftr_ha_records_sent_total", "Records (sessions, blocks, deletions) sent to the peer.", st.records_sent),
        ("aftr_ha_messages_sent_total", "Data messages sent to the peer.", st.messages_sent),
        ("aftr_ha_records_received_total", "Records received from the peer.", st.records_received),
        ("aftr_ha_retransmitted_total", "Data messages sent again, unacknowledged.", st.retransmitted),
        ("aftr_ha_bulk_syncs_total", "Bulk syncs (the whole table to a joining standby).", st.bulk_syncs),
        ("aftr_ha_swept_total", "Sessions a bulk sync's sweep removed on the standby.", st.swept),
        ("aftr_ha_overflows_total", "Records lost to a full replication queue.", st.overflows),
        ("aftr_ha_events_dropped_total", "Engine events the HA thread could not take.", st.events_dropped),
        (
            "aftr_ha_notify_dropped_total",
            "Role changes whose notify command was not run: its queue was full.",
            st.notify_dropped,
        ),
    ];
    for (name, help, v) in counters {
        family(&mut o, name, "counter", help, [(at_slot(), v)]);
    }
    let by_reason = |reasons: &[(&str, u64)]| -> Vec<(String, u64)> {
        reasons.iter().map(|(r, v)| (format!("slot=\"{slot}\",reason=\"{r}\""), *v)).collect()
    };
    family(
        &mut o,
        "aftr_ha_records_refused_total",
        "counter",
        "Records from the peer this board's engines refused, by reason.",
        by_reason(&[("install", st.install_refused), ("active_here", st.refused_active_here)]),
    );
    family(
        &mut o,
        "aftr_ha_messages_rejected_total",
        "counter",
        "HA messages rejected, by reason.",
        by_reason(&[
            ("malformed", st.rejected_malformed),
            ("unauthenticated", st.rejected_auth),
            ("replayed", st.rejected_replay),
            ("other_slot", st.rejected_slot),
        ]),
    );
    o
}

/// The NAT logger's counters (since the board started with collectors, across commits).
pub fn render_log(slot: u32, st: &crate::natlog::Stats) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let kinds = || crate::config::LogFormat::ALL.into_iter().map(|k| k.keyword()).zip(st.iter());
    let mut o = String::new();
    family(
        &mut o,
        "aftr_natlog_messages_total",
        "counter",
        "NAT log messages sent, or dropped (a failed send, a full queue), by kind of collector.",
        kinds().flat_map(|(k, s)| {
            [("sent", &s.sent), ("dropped", &s.dropped)]
                .map(|(r, v)| (format!("slot=\"{slot}\",kind=\"{k}\",result=\"{r}\""), v.load(Relaxed)))
        }),
    );
    family(
        &mut o,
        "aftr_natlog_reconnects_total",
        "counter",
        "Connections to TCP collectors made again.",
        [(
            format!("slot=\"{slot}\",kind=\"syslog-tcp\""),
            crate::natlog::stats_of(st, crate::config::LogFormat::SyslogTcp).reconnects.load(Relaxed),
        )],
    );
    o
}

fn serve_one(mut s: TcpStream, body: &dyn Fn() -> String) -> std::io::Result<()> {
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    let mut first = String::new();
    let mut r = BufReader::new(s.try_clone()?);
    r.read_line(&mut first)?;
    // Drain the headers.
    let mut line = String::new();
    while r.read_line(&mut line)? > 2 {
        line.clear();
    }
    let (status, text) = match first.split_whitespace().collect::<Vec<_>>()[..] {
        ["GET", "/metrics", _] => ("200 OK", body()),
        ["GET", ..] => ("404 Not Found", "not found\n".to_string()),
        _ => ("405 Method Not Allowed", "only GET\n".to_string()),
    };
    write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )
}

/// Serves metrics on `addr` until `stop` is set (checked between connections).
pub fn serve(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    body: impl Fn() -> String + Send + 'static,
) -> std::io::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let l = TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    let local = l.local_addr()?;
    let h = std::thread::Builder::new().name("metrics".into()).spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = serve_one(s, &body);
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
    })?;
    Ok((local, h))
}

/// What the metrics page shows, rendered on each request.
pub type Body = Arc<dyn Fn() -> String + Send + Sync>;

/// A metrics listener that a commit can move to another address: its own thread and
/// stop flag; stopped when dropped.
pub struct Listener {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    pub fn start(addr: SocketAddr, body: Body) -> std::io::Result<Listener> {
        let stop = Arc::new(AtomicBool::new(false));
        let (addr, thread) = serve(addr, stop.clone(), move || body())?;
        Ok(Listener { addr, stop, thread: Some(thread) })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn hot_backup_state_as_metrics() {
        let st = ha_sync::node::Status {
            role: ha_sync::role::Role::Standby,
            peer_alive: true,
            in_sync: true,
            records_received: 42,
            rejected_auth: 1,
            rejected_slot: 4,
            install_refused: 3,
            config_digest: 7,
            peer_config_digest: Some(8),
            lag_ms: 250,
            notify_dropped: 5,
            ..Default::default()
        };
        let o = render_ha(2, &st);
        for line in [
            "aftr_ha_role{slot=\"2\",role=\"standby\"} 1",
            "aftr_ha_role{slot=\"2\",role=\"active\"} 0",
            "aftr_ha_in_sync{slot=\"2\"} 1",
            "aftr_ha_config_differs{slot=\"2\"} 1",
            "aftr_ha_records_received_total{slot=\"2\"} 42",
            "aftr_ha_notify_dropped_total{slot=\"2\"} 5",
            "aftr_ha_messages_rejected_total{slot=\"2\",reason=\"unauthenticated\"} 1",
            "aftr_ha_messages_rejected_total{slot=\"2\",reason=\"other_slot\"} 4",
            "aftr_ha_records_refused_total{slot=\"2\",reason=\"install\"} 3",
            "aftr_ha_lag_seconds{slot=\"2\"} 0.25",
        ] {
            assert!(o.lines().any(|l| l == line), "{line} not in\n{o}");
        }
    }

    #[test]
    fn metrics_over_http() {
        let c = Arc::new(WorkerCounters::default());
        c.add(Counter::In2Out, 42);
        c.inc(Counter::DropNoSession);
        c.add(Counter::BlocksAllocated, 5);
        c.add(Counter::BlocksReleased, 2);
        c.add(Counter::SessionsCreated, 11);
        c.add(Counter::RxBytes, 1500);
        c.add(Counter::PcpRequests, 4);
        c.add(Counter::PcpResultSuccess, 3);
        c.inc(Counter::PcpResultMalformedRequest);
        c.add(Counter::PcpMappingsCreated, 2);
        let g = Arc::new(Gauges {
            sessions: vec![7.into()],
            subscribers: vec![3.into()],
            rounds: vec![9.into()],
            ..Default::default()
        });
        g.port_blocks.store(512, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let (cc, gg) = (c.clone(), g.clone());
        let (addr, h) =
            serve("127.0.0.1:0".parse().unwrap(), stop.clone(), move || render(1, std::slice::from_ref(&cc), &gg))
                .unwrap();
        let get = |path: &str| {
            let mut s = TcpStream::connect(addr).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let m = get("/metrics");
        assert!(m.starts_with("HTTP/1.1 200 OK"), "{m}");
        for line in [
            "aftr_packets_total{slot=\"1\",worker=\"0\",path=\"in2out\"} 42",
            "aftr_packet_drops_total{slot=\"1\",worker=\"0\",reason=\"no_session\"} 1",
            "aftr_sessions_created_total{slot=\"1\",worker=\"0\"} 11",
            "aftr_received_bytes_total{slot=\"1\",worker=\"0\"} 1500",
            "aftr_port_blocks_allocated_total{slot=\"1\",worker=\"0\"} 5",
            "aftr_pcp_requests_total{slot=\"1\",worker=\"0\"} 4",
            "aftr_pcp_results_total{slot=\"1\",worker=\"0\",result=\"success\"} 3",
            "aftr_pcp_results_total{slot=\"1\",worker=\"0\",result=\"malformed_request\"} 1",
            "aftr_pcp_mappings_total{slot=\"1\",worker=\"0\",event=\"created\"} 2",
            "aftr_sessions{slot=\"1\",worker=\"0\"} 7",
            "aftr_port_blocks{slot=\"1\"} 512",
            "aftr_port_blocks_in_use{slot=\"1\"} 3",
            &format!("aftr_build_info{{slot=\"1\",version=\"{}\"}} 1", env!("CARGO_PKG_VERSION")),
        ] {
            assert!(m.lines().any(|l| l == line), "{line} not in\n{m}");
        }
        // Every family has one name per kind: no packet family counts sessions.
        assert!(!m.lines().any(|l| l.starts_with("aftr_packets_total") && l.contains("sessions")), "{m}");
        assert!(get("/other").starts_with("HTTP/1.1 404"));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
    }
}
