//! NAT event logging in RFC 5424 syslog, the fields of VPP's NAT syslog with the B4
//! address (`SV6ENC`), as RFC 6888 REQ-12 and RFC 7422 ask of a carrier-grade NAT: who
//! (B4 IPv6, inside address and port) had which external address and port (or port
//! block), for which protocol, when. Destinations are never logged (RFC 6888 REQ-13).
//!
//! What is logged is configured (`nat log ... enable`): port blocks (`BLKADD`/`BLKDEL`),
//! exhaustion of addresses and ports (`ADDREXH`/`PORTEXH`) and quotas (`QUOTA`) by
//! default; sessions (`SADD`/`SDEL`) only when asked, since with port blocks they only
//! repeat what the block says. Collectors take RFC 5424 over UDP or TCP, or IPFIX
//! (`crate::ipfix`).
//!
//! Only the board active for an event's location logs it (decision 0020): the board that
//! allocates a block logs its allocation, the board active when it is released logs the
//! release; a takeover logs nothing, since the blocks it holds were logged by the board
//! that allocated them.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use dataplane::nat::events::{BlockRecord, Limit, LimitRecord, SessionEvent, SessionRecord};

use crate::config::{LogFormat, LogHost, NatLog};
use crate::ipfix::{Exporter, Refresh};

/// RFC 5424 facility local0 (16), severity informational (6).
const PRI: u8 = 16 * 8 + 6;

/// RFC 3339 UTC time of Unix seconds (days-from-civil, H. Hinnant's algorithm).
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// The private enterprise number in the SD-IDs (RFC 5424 section 7.2.2: an SD-ID of
/// one's own is `name@number`): 32473, which RFC 5612 reserves for documentation and
/// examples, until the project has one of its own from IANA.
pub const ENTERPRISE: u32 = 32473;

fn session_sd(r: &SessionRecord) -> String {
    format!(
        "[nsess@{ENTERPRISE} SSUBIX=\"{}\" IATYP=\"IPv4\" ISADDR=\"{}\" ISPORT=\"{}\" XATYP=\"IPv4\" XSADDR=\"{}\" XSPORT=\"{}\" PROTO=\"{}\" SV6ENC=\"{}\"]",
        r.inst,
        Ipv4Addr::from(r.inner_addr),
        r.inner_port,
        Ipv4Addr::from(r.ext_addr),
        r.ext_port,
        r.proto,
        Ipv6Addr::from(r.b4)
    )
}

fn block_sd(b: &BlockRecord) -> String {
    format!(
        "[nblk@{ENTERPRISE} SSUBIX=\"{}\" XATYP=\"IPv4\" XSADDR=\"{}\" XSPORTSTART=\"{}\" XSPORTEND=\"{}\" SV6ENC=\"{}\"]",
        b.inst,
        Ipv4Addr::from(b.ext_addr),
        b.first_port,
        b.first_port as u32 + b.size as u32 - 1,
        Ipv6Addr::from(b.b4)
    )
}

fn limit_sd(l: &LimitRecord) -> String {
    let what = match l.limit {
        Limit::AddressesExhausted => "addresses",
        Limit::PortsExhausted => "ports",
        Limit::SessionTable => "session-table",
        Limit::SubscriberTable => "subscriber-table",
        Limit::SessionLimit => "session-limit",
        Limit::BlockLimit => "port-block-limit",
        Limit::RateLimit => "new-session-rate",
    };
    format!(
        "[nlim@{ENTERPRISE} SSUBIX=\"{}\" LIMIT=\"{what}\" VALUE=\"{}\" ISADDR=\"{}\" XSADDR=\"{}\" SV6ENC=\"{}\"]",
        l.inst,
        l.value,
        Ipv4Addr::from(l.inner_addr),
        Ipv4Addr::from(l.ext_addr),
        Ipv6Addr::from(l.b4)
    )
}

/// Whether `nat log ... enable` asks for event `e`.
pub fn wanted(e: &SessionEvent, what: &NatLog) -> bool {
    match e {
        SessionEvent::Created(_) | SessionEvent::Deleted(_) => what.sessions,
        SessionEvent::Refreshed(_) => false,
        SessionEvent::BlockAllocated(_) | SessionEvent::BlockReleased(_) => what.blocks,
        SessionEvent::Limit(l) => match l.limit {
            Limit::AddressesExhausted | Limit::PortsExhausted => what.exhaustion,
            _ => what.quotas,
        },
    }
}

/// The RFC 5424 message for an event, with sequence id `seq` (RFC 5424 section 7.3.1:
/// 1 to 2147483647, then 1 again), or None for an event syslog does not carry
/// (refreshes). Whether it is wanted is [`wanted`]'s question.
pub fn format(e: &SessionEvent, hostname: &str, seq: u32) -> Option<String> {
    let (msgid, at, sd) = match e {
        SessionEvent::BlockAllocated(b) => ("BLKADD", b.at, block_sd(b)),
        SessionEvent::BlockReleased(b) => ("BLKDEL", b.at, block_sd(b)),
        SessionEvent::Created(r) => ("SADD", r.created, session_sd(r)),
        SessionEvent::Deleted(r) => ("SDEL", r.last_seen, session_sd(r)),
        SessionEvent::Limit(l) => match l.limit {
            Limit::AddressesExhausted => ("ADDREXH", l.at, limit_sd(l)),
            Limit::PortsExhausted => ("PORTEXH", l.at, limit_sd(l)),
            _ => ("QUOTA", l.at, limit_sd(l)),
        },
        SessionEvent::Refreshed(_) => return None,
    };
    // HEADER: PRI VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID, then SD, no MSG.
    let pid = std::process::id();
    Some(format!("<{PRI}>1 {} {hostname} aftrd {pid} {msgid} [meta sequenceId=\"{seq}\"]{sd}", rfc3339(at as u64)))
}

/// Messages waiting for a TCP collector at most; beyond, they are dropped and counted.
pub const TCP_QUEUE: usize = 65_536;

/// A TCP collector's sender thread retries a lost connection this often.
const RECONNECT: Duration = Duration::from_secs(1);

/// What the logger has done for the collectors of one kind, for metrics.
#[derive(Debug, Default)]
pub struct LogStats {
    /// Messages handed to a socket (UDP: sent; TCP: written whole to the connection).
    pub sent: AtomicU64,
    /// Messages lost: a UDP send failed, or a TCP collector's queue was full.
    pub dropped: AtomicU64,
    /// TCP connections made again after one was lost.
    pub reconnects: AtomicU64,
}

/// The counters of each kind of collector, in the order of [`LogFormat::ALL`].
pub type Stats = [LogStats; 3];

/// The counters of collectors of kind `f`.
pub fn stats_of(stats: &Stats, f: LogFormat) -> &LogStats {
    &stats[LogFormat::ALL.iter().position(|x| *x == f).unwrap_or(0)]
}

/// A UDP socket towards `to`, bound to `source` (any address of `to`'s family if none).
pub fn udp_socket(to: SocketAddr, source: Option<SocketAddr>) -> std::io::Result<UdpSocket> {
    let any: SocketAddr = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse().expect("literal");
    UdpSocket::bind(source.unwrap_or(any))
}

/// One collector: syslog over UDP (RFC 5426), syslog over TCP with octet counting (RFC
/// 6587 section 3.4.1) fed by a thread of its own through a bounded queue, or IPFIX.
enum Collector {
    Udp(UdpSocket, SocketAddr),
    Tcp(Sender<Vec<u8>>),
    Ipfix(Exporter),
}

/// Sends NAT events to the collectors. Never blocks its caller (the board's event
/// thread): UDP sends at once; a TCP collector's thread writes, reconnects every second
/// while it cannot, and keeps what waits (up to [`TCP_QUEUE`] messages), so a collector
/// restart loses nothing; a full queue is counted (`dropped`).
pub struct NatLogger {
    collectors: Vec<Collector>,
    hostname: String,
    what: NatLog,
    seq: u32,
    pub stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
}

impl NatLogger {
    /// The logger of `log`'s collectors for board `slot` (IPFIX's observation domain).
    pub fn new(log: &NatLog, hostname: &str, slot: u32) -> std::io::Result<Self> {
        Self::counting_into(log, hostname, slot, Arc::default())
    }

    /// The same, counting into `stats` (a running logger's: the metrics go on across a
    /// commit).
    pub fn counting_into(log: &NatLog, hostname: &str, slot: u32, stats: Arc<Stats>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let refresh = Refresh {
            every: Duration::from_secs(log.template_refresh_secs as u64),
            messages: log.template_refresh_packets,
        };
        let mut collectors = Vec::new();
        for &LogHost { addr, format, source } in &log.hosts {
            collectors.push(match format {
                LogFormat::SyslogUdp => Collector::Udp(udp_socket(addr, source)?, addr),
                LogFormat::Ipfix => Collector::Ipfix(Exporter::new(addr, udp_socket(addr, source)?, slot, refresh)),
                LogFormat::SyslogTcp => {
                    if let Some(src) = source {
                        // A source not on the host is refused now, not at the first message.
                        tcp_socket(socket2::Domain::for_address(addr), src)?;
                    }
                    let (tx, rx) = bounded(TCP_QUEUE);
                    let (stats, stop) = (stats.clone(), stop.clone());
                    std::thread::Builder::new()
                        .name("aftr-natlog-tcp".into())
                        .spawn(move || tcp_sender(addr, source, &rx, stats_of(&stats, LogFormat::SyslogTcp), &stop))?;
                    Collector::Tcp(tx)
                }
            });
        }
        Ok(NatLogger { collectors, hostname: hostname.to_string(), what: log.clone(), seq: 0, stats, stop })
    }

    /// Goes on from `old`'s syslog sequence id (a commit that changes the collectors
    /// does not start the sequence again).
    pub fn continue_from(&mut self, old: &NatLogger) {
        self.seq = old.seq;
    }

    /// Logs `e` if it is wanted and the board was `active` for its location (decision
    /// 0020: a standby's events are the peer's sessions and blocks, logged there).
    pub fn event(&mut self, e: &SessionEvent, active: bool) {
        if active {
            self.log(e);
        }
    }

    pub fn log(&mut self, e: &SessionEvent) {
        if !wanted(e, &self.what) {
            return;
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32);
        let seq = self.seq % 2_147_483_647 + 1;
        let mut msg = None;
        for c in &mut self.collectors {
            let (ok, kind) = match c {
                Collector::Ipfix(x) => match x.send(e, now) {
                    Some(ok) => (ok, LogFormat::Ipfix),
                    None => continue,
                },
                Collector::Udp(socket, to) => {
                    let Some(m) = msg.get_or_insert_with(|| format(e, &self.hostname, seq)) else { continue };
                    (socket.send_to(m.as_bytes(), *to).is_ok(), LogFormat::SyslogUdp)
                }
                Collector::Tcp(q) => {
                    let Some(m) = msg.get_or_insert_with(|| format(e, &self.hostname, seq)) else { continue };
                    if q.try_send(m.clone().into_bytes()).is_ok() {
                        continue; // counted as sent once written
                    }
                    (false, LogFormat::SyslogTcp)
                }
            };
            let st = stats_of(&self.stats, kind);
            (if ok { &st.sent } else { &st.dropped }).fetch_add(1, Ordering::Relaxed);
        }
        if msg.is_some_and(|m| m.is_some()) {
            self.seq = seq;
        }
    }
}

impl Drop for NatLogger {
    fn drop(&mut self) {
        // The TCP threads end once their queues are empty or they cannot connect.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A TCP socket bound to `src` (reusable: a fixed source port connects again while the
/// last connection is in TIME_WAIT).
fn tcp_socket(family: socket2::Domain, src: SocketAddr) -> std::io::Result<socket2::Socket> {
    let s = socket2::Socket::new(family, socket2::Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.bind(&src.into())?;
    Ok(s)
}

/// A TCP connection to `to`, from `source` if given.
fn connect(to: SocketAddr, source: Option<SocketAddr>) -> std::io::Result<TcpStream> {
    let Some(src) = source else { return TcpStream::connect_timeout(&to, RECONNECT) };
    let s = tcp_socket(socket2::Domain::for_address(to), src)?;
    s.connect_timeout(&to.into(), RECONNECT)?;
    Ok(s.into())
}

/// A TCP collector's thread: connects, writes each message as `LENGTH SP MESSAGE`, and
/// on a failure reconnects (every [`RECONNECT`]) and writes the message again whole.
fn tcp_sender(
    to: SocketAddr,
    source: Option<SocketAddr>,
    queue: &Receiver<Vec<u8>>,
    stats: &LogStats,
    stop: &AtomicBool,
) {
    let mut conn: Option<TcpStream> = None;
    let mut connected_once = false;
    let mut pending: Option<Vec<u8>> = None;
    loop {
        let msg = match pending.take() {
            Some(m) => m,
            None => match queue.recv_timeout(Duration::from_millis(200)) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) if stop.load(Ordering::Relaxed) => return,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            },
        };
        if conn.is_none() {
            match connect(to, source) {
                Ok(c) => {
                    let _ = c.set_write_timeout(Some(Duration::from_secs(5)));
                    if connected_once {
                        stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    connected_once = true;
                    conn = Some(c);
                }
                Err(_) => {
                    pending = Some(msg);
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(RECONNECT);
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let mut frame = format!("{} ", msg.len()).into_bytes();
        frame.extend_from_slice(&msg);
        // A peer that closed is seen by the next write at the latest: check first, so a
        // message is not written into a connection already gone.
        if peer_closed(c) || c.write_all(&frame).is_err() {
            conn = None;
            pending = Some(msg);
            continue;
        }
        stats.sent.fetch_add(1, Ordering::Relaxed);
    }
}

/// The collector closed the connection (a read finds its end, without waiting).
fn peer_closed(c: &TcpStream) -> bool {
    let _ = c.set_nonblocking(true);
    let mut b = [0u8; 64];
    let closed = match (&*c).read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    let _ = c.set_nonblocking(false);
    closed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        // Checked with `date -u -d @1795995045`.
        assert_eq!(rfc3339(1_795_995_045), "2026-11-29T23:30:45Z");
    }

    fn block(port: u16) -> BlockRecord {
        let b4 = "2001:db8:b4::1".parse::<Ipv6Addr>().unwrap().octets();
        BlockRecord { inst: 1, b4, ext_addr: 0xc633_6407, first_port: port, size: 512, at: 1_795_995_045 }
    }

    #[test]
    fn block_and_session_messages() {
        let b4 = "2001:db8:b4::1".parse::<Ipv6Addr>().unwrap().octets();
        let m = format(&SessionEvent::BlockAllocated(block(1536)), "aftr1", 7).unwrap();
        assert_eq!(
            m,
            format!(
                "<134>1 2026-11-29T23:30:45Z aftr1 aftrd {} BLKADD [meta sequenceId=\"7\"][nblk@32473 SSUBIX=\"1\" XATYP=\"IPv4\" XSADDR=\"198.51.100.7\" XSPORTSTART=\"1536\" XSPORTEND=\"2047\" SV6ENC=\"2001:db8:b4::1\"]",
                std::process::id()
            )
        );
        let s = SessionRecord {
            inst: 1,
            b4,
            inner_addr: 0xc0a8_010a,
            inner_port: 5000,
            ext_addr: 0xc633_6407,
            ext_port: 1600,
            proto: 17,
            flags: 0,
            created: 0,
            last_seen: 0,
            mac: [0; 6],
            pcp: None,
        };
        assert!(!wanted(&SessionEvent::Created(s), &NatLog::default()), "sessions off by default");
        let limit = |limit| {
            SessionEvent::Limit(LimitRecord { inst: 0, b4, inner_addr: 0, ext_addr: 0, limit, value: 0, at: 0 })
        };
        let (full, exhausted) = (limit(Limit::SessionTable), limit(Limit::AddressesExhausted));
        let d = NatLog::default();
        assert!(wanted(&full, &d) && wanted(&exhausted, &d) && wanted(&SessionEvent::BlockAllocated(block(0)), &d));
        assert!(!wanted(&full, &NatLog { quotas: false, ..d.clone() }));
        assert!(!wanted(&exhausted, &NatLog { exhaustion: false, ..d.clone() }));
        assert!(!wanted(&SessionEvent::BlockReleased(block(0)), &NatLog { blocks: false, ..d.clone() }));
        assert!(wanted(&SessionEvent::Deleted(s), &NatLog { sessions: true, ..d }));
        let m = format(&SessionEvent::Created(s), "h", 1).unwrap();
        assert!(
            m.contains(" SADD [meta sequenceId=\"1\"][nsess@32473 ")
                && m.contains("ISADDR=\"192.168.1.10\" ISPORT=\"5000\"")
                && m.contains("XSPORT=\"1600\" PROTO=\"17\"")
        );
        assert!(!m.contains("203.0.113"), "no destination");
        assert_eq!(format(&SessionEvent::Refreshed(s), "h", 1), None);
        let l = LimitRecord {
            inst: 1,
            b4,
            inner_addr: 0xc0a8_010a,
            ext_addr: 0xc633_6407,
            limit: Limit::SessionLimit,
            value: 4096,
            at: 0,
        };
        let m = format(&SessionEvent::Limit(l), "h", 2).unwrap();
        assert!(
            m.contains(" QUOTA [meta sequenceId=\"2\"][nlim@32473 SSUBIX=\"1\" LIMIT=\"session-limit\" VALUE=\"4096\" ISADDR=\"192.168.1.10\" XSADDR=\"198.51.100.7\" SV6ENC=\"2001:db8:b4::1\"]"),
            "{m}"
        );
    }

    fn log_to(addr: SocketAddr, format: LogFormat) -> NatLog {
        NatLog { hosts: vec![LogHost { addr, format, source: None }], ..NatLog::default() }
    }

    #[test]
    fn messages_reach_a_udp_collector_numbered() {
        let collector = UdpSocket::bind("127.0.0.1:0").unwrap();
        collector.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut l =
            NatLogger::new(&log_to(collector.local_addr().unwrap(), LogFormat::SyslogUdp), "aftr-test", 1).unwrap();
        l.log(&SessionEvent::BlockReleased(BlockRecord { at: 0, size: 64, first_port: 1024, ..block(0) }));
        l.log(&SessionEvent::BlockAllocated(block(2048)));
        let mut buf = [0u8; 1024];
        let n = collector.recv(&mut buf).unwrap();
        let m = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(
            m.starts_with("<134>1 1970-01-01T00:00:00Z aftr-test aftrd ")
                && m.contains("BLKDEL [meta sequenceId=\"1\"]")
                && m.contains("XSPORTEND=\"1087\""),
            "{m}"
        );
        let n = collector.recv(&mut buf).unwrap();
        assert!(std::str::from_utf8(&buf[..n]).unwrap().contains("BLKADD [meta sequenceId=\"2\"]"));
        let st = l.stats.clone();
        let st = &st[0];
        assert_eq!((st.sent.load(Ordering::Relaxed), st.dropped.load(Ordering::Relaxed)), (2, 0));
        // A standby's events are not logged; refreshes never are.
        l.event(&SessionEvent::BlockAllocated(block(4096)), false);
        assert_eq!(st.sent.load(Ordering::Relaxed), 2);
        // A commit's new logger goes on: the sequence and the counters.
        let log = log_to(collector.local_addr().unwrap(), LogFormat::SyslogUdp);
        let mut next = NatLogger::counting_into(&log, "aftr-test", 1, l.stats.clone()).unwrap();
        next.continue_from(&l);
        next.event(&SessionEvent::BlockAllocated(block(4096)), true);
        let n = collector.recv(&mut buf).unwrap();
        assert!(std::str::from_utf8(&buf[..n]).unwrap().contains("BLKADD [meta sequenceId=\"3\"]"));
        assert_eq!(st.sent.load(Ordering::Relaxed), 3);
    }

    /// Reads octet-counted messages (RFC 6587) from `c` until `n` came or it closes.
    fn frames(c: &mut TcpStream, n: usize) -> Vec<String> {
        let mut got = Vec::new();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        while got.len() < n {
            while let Some(sp) = buf.iter().position(|&b| b == b' ') {
                let len: usize = std::str::from_utf8(&buf[..sp]).unwrap().parse().unwrap();
                if buf.len() < sp + 1 + len {
                    break;
                }
                got.push(String::from_utf8(buf[sp + 1..sp + 1 + len].to_vec()).unwrap());
                buf.drain(..sp + 1 + len);
            }
            if got.len() >= n {
                break;
            }
            match c.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        }
        got
    }

    fn seq_of(m: &str) -> u32 {
        let at = m.find("sequenceId=\"").unwrap() + 12;
        m[at..].split('"').next().unwrap().parse().unwrap()
    }

    #[test]
    fn over_tcp_a_collector_restart_loses_nothing() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut l = NatLogger::new(&log_to(addr, LogFormat::SyslogTcp), "aftr-test", 1).unwrap();
        for k in 0..5 {
            l.log(&SessionEvent::BlockAllocated(block(1024 + 512 * k)));
        }
        let (mut c, _) = listener.accept().unwrap();
        let first = frames(&mut c, 5);
        assert_eq!(first.iter().map(|m| seq_of(m)).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
        // The collector restarts: the connection and the listener go; events go on.
        drop(c);
        drop(listener);
        std::thread::sleep(Duration::from_millis(300));
        for k in 0..20 {
            l.log(&SessionEvent::BlockReleased(block(1024 + 512 * (k % 60))));
        }
        std::thread::sleep(Duration::from_millis(500));
        let listener = std::net::TcpListener::bind(addr).unwrap();
        let (mut c, _) = listener.accept().unwrap();
        let rest = frames(&mut c, 20);
        // Every message after the restart arrives, whole and in order.
        assert_eq!(rest.iter().map(|m| seq_of(m)).collect::<Vec<_>>(), (6..=25).collect::<Vec<_>>());
        assert!(rest.iter().all(|m| m.contains(" BLKDEL ")));
        let st = &l.stats[1];
        assert_eq!(st.sent.load(Ordering::Relaxed), 25);
        assert_eq!(st.dropped.load(Ordering::Relaxed), 0);
        assert_eq!(st.reconnects.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn collectors_hear_from_the_source_address() {
        let (udp, tcp) = (UdpSocket::bind("127.0.0.1:0").unwrap(), std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let src = |port| Some(SocketAddr::from(([127, 0, 0, 2], port)));
        let hosts = vec![
            LogHost { addr: udp.local_addr().unwrap(), format: LogFormat::SyslogUdp, source: src(0) },
            LogHost { addr: tcp.local_addr().unwrap(), format: LogFormat::SyslogTcp, source: src(0) },
        ];
        let mut l = NatLogger::new(&NatLog { hosts, ..NatLog::default() }, "h", 1).unwrap();
        l.log(&SessionEvent::BlockAllocated(block(1024)));
        let (_, from) = udp.recv_from(&mut [0u8; 1024]).unwrap();
        let (_, peer) = tcp.accept().unwrap();
        assert_eq!((from.ip(), peer.ip()), (src(0).unwrap().ip(), src(0).unwrap().ip()));
    }
}
