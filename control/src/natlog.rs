//! NAT event logging in RFC 5424 syslog, the fields of VPP's NAT syslog with the B4
//! address (`SV6ENC`), as RFC 6888 REQ-12 and RFC 7422 ask of a carrier-grade NAT: who
//! (B4 IPv6, inside address and port) had which external address and port (or port
//! block), for which protocol, when. Destinations are never logged (RFC 6888 REQ-13).
//!
//! Port blocks are always logged (`BLKADD`/`BLKDEL`); sessions (`SADD`/`SDEL`) only
//! when asked, since with port blocks they only repeat what the block says.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use dataplane::nat::events::{BlockRecord, SessionEvent, SessionRecord};

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

fn session_sd(r: &SessionRecord) -> String {
    format!(
        "[nsess SSUBIX=\"{}\" IATYP=\"IPv4\" ISADDR=\"{}\" ISPORT=\"{}\" XATYP=\"IPv4\" XSADDR=\"{}\" XSPORT=\"{}\" PROTO=\"{}\" SV6ENC=\"{}\"]",
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
        "[nblk SSUBIX=\"{}\" XATYP=\"IPv4\" XSADDR=\"{}\" XSPORTSTART=\"{}\" XSPORTEND=\"{}\" SV6ENC=\"{}\"]",
        b.inst,
        Ipv4Addr::from(b.ext_addr),
        b.first_port,
        b.first_port as u32 + b.size as u32 - 1,
        Ipv6Addr::from(b.b4)
    )
}

/// The RFC 5424 message for an event, or None for events not logged.
pub fn format(e: &SessionEvent, hostname: &str, sessions: bool) -> Option<String> {
    let (msgid, at, sd) = match e {
        SessionEvent::BlockAllocated(b) => ("BLKADD", b.at, block_sd(b)),
        SessionEvent::BlockReleased(b) => ("BLKDEL", b.at, block_sd(b)),
        SessionEvent::Created(r) if sessions => ("SADD", r.created, session_sd(r)),
        SessionEvent::Deleted(r) if sessions => ("SDEL", r.last_seen, session_sd(r)),
        _ => return None,
    };
    // HEADER: PRI VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID, then SD, no MSG.
    Some(format!("<{PRI}>1 {} {hostname} aftrd {} {msgid} {sd}", rfc3339(at as u64), std::process::id()))
}

/// Sends NAT events to syslog collectors over UDP (RFC 5426).
pub struct NatLogger {
    socket: UdpSocket,
    targets: Vec<SocketAddr>,
    hostname: String,
    pub sessions: bool,
    pub sent: u64,
    pub failed: u64,
}

impl NatLogger {
    pub fn new(targets: Vec<SocketAddr>, hostname: &str) -> std::io::Result<Self> {
        let bind: SocketAddr = if targets.iter().any(|t| t.is_ipv6()) {
            "[::]:0".parse().expect("literal")
        } else {
            "0.0.0.0:0".parse().expect("literal")
        };
        Ok(NatLogger {
            socket: UdpSocket::bind(bind)?,
            targets,
            hostname: hostname.to_string(),
            sessions: false,
            sent: 0,
            failed: 0,
        })
    }

    pub fn log(&mut self, e: &SessionEvent) {
        let Some(msg) = format(e, &self.hostname, self.sessions) else { return };
        for t in &self.targets {
            match self.socket.send_to(msg.as_bytes(), t) {
                Ok(_) => self.sent += 1,
                Err(_) => self.failed += 1,
            }
        }
    }
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

    #[test]
    fn block_and_session_messages() {
        let b4 = "2001:db8:b4::1".parse::<Ipv6Addr>().unwrap().octets();
        let blk = BlockRecord { inst: 1, b4, ext_addr: 0xc633_6407, first_port: 1536, size: 512, at: 1_795_995_045 };
        let m = format(&SessionEvent::BlockAllocated(blk), "aftr1", false).unwrap();
        assert_eq!(
            m,
            format!(
                "<134>1 2026-11-29T23:30:45Z aftr1 aftrd {} BLKADD [nblk SSUBIX=\"1\" XATYP=\"IPv4\" XSADDR=\"198.51.100.7\" XSPORTSTART=\"1536\" XSPORTEND=\"2047\" SV6ENC=\"2001:db8:b4::1\"]",
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
        };
        assert_eq!(format(&SessionEvent::Created(s), "h", false), None, "sessions off by default");
        let m = format(&SessionEvent::Created(s), "h", true).unwrap();
        assert!(
            m.contains(" SADD [nsess ")
                && m.contains("ISADDR=\"192.168.1.10\" ISPORT=\"5000\"")
                && m.contains("XSPORT=\"1600\" PROTO=\"17\"")
        );
        assert!(!m.contains("203.0.113"), "no destination");
        assert_eq!(format(&SessionEvent::Refreshed(s), "h", true), None);
    }

    #[test]
    fn messages_reach_a_collector() {
        let collector = UdpSocket::bind("127.0.0.1:0").unwrap();
        collector.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let mut l = NatLogger::new(vec![collector.local_addr().unwrap()], "aftr-test").unwrap();
        let blk = BlockRecord {
            inst: 0,
            b4: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            ext_addr: 0x0a00_0001,
            first_port: 1024,
            size: 64,
            at: 0,
        };
        l.log(&SessionEvent::BlockReleased(blk));
        let mut buf = [0u8; 1024];
        let n = collector.recv(&mut buf).unwrap();
        let m = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(
            m.starts_with("<134>1 1970-01-01T00:00:00Z aftr-test aftrd ")
                && m.contains("BLKDEL")
                && m.contains("XSPORTEND=\"1087\""),
            "{m}"
        );
        assert_eq!((l.sent, l.failed), (1, 0));
    }
}
