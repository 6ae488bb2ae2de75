//! Prometheus metrics over HTTP: the engine counters of every worker, sessions and
//! subscribers, in the text exposition format, at `GET /metrics`.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dataplane::counters::{Counter, WorkerCounters};

pub use dataplane::worker::Gauges;

/// Renders the exposition text.
pub fn render(slot: u32, workers: &[Arc<WorkerCounters>], gauges: &Gauges) -> String {
    let mut o = String::new();
    o.push_str("# HELP aftr_packets_total Packets by path and by drop reason, per worker.\n# TYPE aftr_packets_total counter\n");
    for (w, c) in workers.iter().enumerate() {
        for &k in Counter::ALL {
            o.push_str(&format!(
                "aftr_packets_total{{slot=\"{slot}\",worker=\"{w}\",counter=\"{}\"}} {}\n",
                k.name(),
                c.get(k)
            ));
        }
    }
    o.push_str("# HELP aftr_sessions NAT sessions, per worker.\n# TYPE aftr_sessions gauge\n");
    for (w, v) in gauges.sessions.iter().enumerate() {
        o.push_str(&format!("aftr_sessions{{slot=\"{slot}\",worker=\"{w}\"}} {}\n", v.load(Ordering::Relaxed)));
    }
    o.push_str("# HELP aftr_subscribers Subscribers (B4s) with sessions, per worker.\n# TYPE aftr_subscribers gauge\n");
    for (w, v) in gauges.subscribers.iter().enumerate() {
        o.push_str(&format!("aftr_subscribers{{slot=\"{slot}\",worker=\"{w}\"}} {}\n", v.load(Ordering::Relaxed)));
    }
    o
}

/// The hot-backup state of a board (`display service-ha` as metrics).
pub fn render_ha(slot: u32, st: &ha_sync::node::Status) -> String {
    use ha_sync::role::Role;
    let mut o = String::new();
    o.push_str("# HELP aftr_ha_role The board's role (1 for the current one).\n# TYPE aftr_ha_role gauge\n");
    for r in [Role::Init, Role::Standby, Role::Active] {
        o.push_str(&format!("aftr_ha_role{{slot=\"{slot}\",role=\"{}\"}} {}\n", r.name(), (st.role == r) as u8));
    }
    o.push_str(
        "# HELP aftr_ha_location_role The board's role for each service-location (1 for the current one).\n\
         # TYPE aftr_ha_location_role gauge\n",
    );
    for l in &st.locations {
        for r in [Role::Init, Role::Standby, Role::Active] {
            o.push_str(&format!(
                "aftr_ha_location_role{{slot=\"{slot}\",location=\"{}\",role=\"{}\"}} {}\n",
                l.id,
                r.name(),
                (l.role == r) as u8
            ));
        }
    }
    let gauges: [(&str, &str, u64); 9] = [
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
        ("aftr_ha_lag_milliseconds", "Age of the oldest unacknowledged message.", st.lag_ms),
        ("aftr_ha_sessions_replicated", "Sessions the standby holds, as the stream knows.", st.replicated as u64),
        (
            "aftr_ha_config_differs",
            "The peer's heartbeats carry another configuration digest than this board's (1) or not (0).",
            st.config_differs() as u64,
        ),
    ];
    for (name, help, v) in gauges {
        o.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{slot=\"{slot}\"}} {v}\n"));
    }
    let counters: [(&str, u64); 14] = [
        ("records_sent", st.records_sent),
        ("messages_sent", st.messages_sent),
        ("records_received", st.records_received),
        ("install_refused", st.install_refused),
        ("refused_active_here", st.refused_active_here),
        ("swept", st.swept),
        ("rejected_malformed", st.rejected_malformed),
        ("retransmitted", st.retransmitted),
        ("bulk_syncs", st.bulk_syncs),
        ("overflows", st.overflows),
        ("rejected_unauthenticated", st.rejected_auth),
        ("rejected_replayed", st.rejected_replay),
        ("rejected_other_slot", st.rejected_slot),
        ("events_dropped", st.events_dropped),
    ];
    o.push_str("# HELP aftr_ha_total Hot-backup counters.\n# TYPE aftr_ha_total counter\n");
    for (name, v) in counters {
        o.push_str(&format!("aftr_ha_total{{slot=\"{slot}\",counter=\"{name}\"}} {v}\n"));
    }
    o
}

/// The NAT logger's counters (since it was set up: a commit that changes the collectors
/// starts them again).
pub fn render_log(slot: u32, st: &crate::natlog::LogStats) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let mut o = String::from("# HELP aftr_natlog_total NAT log messages.\n# TYPE aftr_natlog_total counter\n");
    for (name, v) in [("sent", &st.sent), ("dropped", &st.dropped), ("reconnects", &st.reconnects)] {
        o.push_str(&format!("aftr_natlog_total{{slot=\"{slot}\",counter=\"{name}\"}} {}\n", v.load(Relaxed)));
    }
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
            ..Default::default()
        };
        let o = render_ha(2, &st);
        for line in [
            "aftr_ha_role{slot=\"2\",role=\"standby\"} 1",
            "aftr_ha_role{slot=\"2\",role=\"active\"} 0",
            "aftr_ha_in_sync{slot=\"2\"} 1",
            "aftr_ha_config_differs{slot=\"2\"} 1",
            "aftr_ha_total{slot=\"2\",counter=\"records_received\"} 42",
            "aftr_ha_total{slot=\"2\",counter=\"rejected_unauthenticated\"} 1",
            "aftr_ha_total{slot=\"2\",counter=\"rejected_other_slot\"} 4",
            "aftr_ha_total{slot=\"2\",counter=\"install_refused\"} 3",
        ] {
            assert!(o.lines().any(|l| l == line), "{line} not in\n{o}");
        }
    }

    #[test]
    fn metrics_over_http() {
        let c = Arc::new(WorkerCounters::default());
        c.add(Counter::In2Out, 42);
        c.inc(Counter::DropNoSession);
        let g = Arc::new(Gauges { sessions: vec![7.into()], subscribers: vec![3.into()], rounds: vec![9.into()] });
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
        assert!(m.contains("aftr_packets_total{slot=\"1\",worker=\"0\",counter=\"in2out\"} 42\n"));
        assert!(m.contains("counter=\"drop_no_session\"} 1\n"));
        assert!(m.contains("aftr_sessions{slot=\"1\",worker=\"0\"} 7\n"));
        assert!(get("/other").starts_with("HTTP/1.1 404"));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
    }
}
