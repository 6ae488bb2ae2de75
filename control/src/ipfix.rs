//! NAT events as IPFIX (RFC 7011) over UDP, in the information elements of RFC 8158:
//! one template per kind of event, each record with the B4's IPv6 address
//! (`sourceIPv6Address`: in DS-Lite the B4 is who the subscriber is) and never a
//! destination (RFC 6888 REQ-13). Decision 0020 says why these elements.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use dataplane::nat::events::{BlockRecord, Limit, LimitRecord, SessionEvent, SessionRecord};

/// Information elements (IANA's IPFIX registry): (id, length in bytes).
mod ie {
    pub const PROTOCOL: (u16, u16) = (4, 1);
    pub const SOURCE_PORT: (u16, u16) = (7, 2);
    pub const SOURCE_IPV4: (u16, u16) = (8, 4);
    pub const SOURCE_IPV6: (u16, u16) = (27, 16);
    pub const POST_NAT_SOURCE_IPV4: (u16, u16) = (225, 4);
    pub const POST_NAPT_SOURCE_PORT: (u16, u16) = (227, 2);
    pub const NAT_EVENT: (u16, u16) = (230, 1);
    pub const NAT_POOL_ID: (u16, u16) = (283, 4);
    pub const OBSERVATION_TIME_MS: (u16, u16) = (323, 8);
    pub const PORT_RANGE_START: (u16, u16) = (361, 2);
    pub const PORT_RANGE_END: (u16, u16) = (362, 2);
    pub const PORT_RANGE_STEP: (u16, u16) = (363, 2);
    pub const PORT_RANGE_PORTS: (u16, u16) = (364, 2);
    pub const QUOTA_EXCEEDED_EVENT: (u16, u16) = (466, 4);
    pub const MAX_SESSION_ENTRIES: (u16, u16) = (471, 4);
    pub const MAX_ENTRIES_PER_USER: (u16, u16) = (473, 4);
    pub const MAX_SUBSCRIBERS: (u16, u16) = (474, 4);
}

/// RFC 8158 natEvent values.
pub mod nat_event {
    pub const SESSION_CREATE: u8 = 1;
    pub const SESSION_DELETE: u8 = 2;
    pub const ADDRESSES_EXHAUSTED: u8 = 3;
    pub const PORTS_EXHAUSTED: u8 = 10;
    pub const QUOTA_EXCEEDED: u8 = 11;
    pub const BLOCK_ALLOCATION: u8 = 14;
    pub const BLOCK_RELEASE: u8 = 15;
}

/// RFC 8158 natQuotaExceededEvent values.
pub mod quota {
    pub const MAX_SESSION_ENTRIES: u32 = 1;
    pub const MAX_ENTRIES_PER_USER: u32 = 3;
    pub const MAX_SUBSCRIBERS: u32 = 4;
}

use ie::*;

/// The templates, by id (256 and up: RFC 7011 section 3.4.1).
pub const TEMPLATES: &[(u16, &[(u16, u16)])] = &[
    (
        256, // NAT44 session create and delete
        &[
            OBSERVATION_TIME_MS,
            NAT_EVENT,
            NAT_POOL_ID,
            SOURCE_IPV6,
            SOURCE_IPV4,
            SOURCE_PORT,
            POST_NAT_SOURCE_IPV4,
            POST_NAPT_SOURCE_PORT,
            PROTOCOL,
        ],
    ),
    (
        257, // port block allocation and release
        &[
            OBSERVATION_TIME_MS,
            NAT_EVENT,
            NAT_POOL_ID,
            SOURCE_IPV6,
            POST_NAT_SOURCE_IPV4,
            PORT_RANGE_START,
            PORT_RANGE_END,
            PORT_RANGE_STEP,
            PORT_RANGE_PORTS,
        ],
    ),
    (258, &[OBSERVATION_TIME_MS, NAT_EVENT, NAT_POOL_ID, SOURCE_IPV6, SOURCE_IPV4]), // addresses exhausted
    (259, &[OBSERVATION_TIME_MS, NAT_EVENT, NAT_POOL_ID, SOURCE_IPV6, SOURCE_IPV4, POST_NAT_SOURCE_IPV4]), // ports exhausted
    (
        260, // quota exceeded: entries per user (sessions, ports, new sessions a second)
        &[
            OBSERVATION_TIME_MS,
            NAT_EVENT,
            QUOTA_EXCEEDED_EVENT,
            NAT_POOL_ID,
            SOURCE_IPV6,
            SOURCE_IPV4,
            MAX_ENTRIES_PER_USER,
        ],
    ),
    (261, &[OBSERVATION_TIME_MS, NAT_EVENT, QUOTA_EXCEEDED_EVENT, SOURCE_IPV6, SOURCE_IPV4, MAX_SESSION_ENTRIES]), // session table full
    (262, &[OBSERVATION_TIME_MS, NAT_EVENT, QUOTA_EXCEEDED_EVENT, SOURCE_IPV6, SOURCE_IPV4, MAX_SUBSCRIBERS]), // subscriber table full
];

/// A value of a record, in the order of its template's fields.
enum V {
    U8(u8),
    U16(u16),
    U32(u32),
    U64(u64),
    V6([u8; 16]),
}

fn ms(unix: u32) -> V {
    V::U64(unix as u64 * 1000)
}

fn session(r: &SessionRecord, event: u8) -> (u16, Vec<V>) {
    let at = if event == nat_event::SESSION_CREATE { r.created } else { r.last_seen };
    let v = vec![
        ms(at),
        V::U8(event),
        V::U32(r.inst as u32),
        V::V6(r.b4),
        V::U32(r.inner_addr),
        V::U16(r.inner_port),
        V::U32(r.ext_addr),
        V::U16(r.ext_port),
        V::U8(r.proto),
    ];
    (256, v)
}

fn block(b: &BlockRecord, event: u8) -> (u16, Vec<V>) {
    let last = (b.first_port as u32 + b.size as u32 - 1) as u16;
    let v = vec![
        ms(b.at),
        V::U8(event),
        V::U32(b.inst as u32),
        V::V6(b.b4),
        V::U32(b.ext_addr),
        V::U16(b.first_port),
        V::U16(last),
        V::U16(1),
        V::U16(b.size),
    ];
    (257, v)
}

fn limit(l: &LimitRecord) -> (u16, Vec<V>) {
    use nat_event::*;
    let (t, pool, b4, inside, value) =
        (ms(l.at), V::U32(l.inst as u32), V::V6(l.b4), V::U32(l.inner_addr), V::U32(l.value));
    let over = |q| [V::U8(QUOTA_EXCEEDED), V::U32(q)];
    match l.limit {
        Limit::AddressesExhausted => (258, vec![t, V::U8(ADDRESSES_EXHAUSTED), pool, b4, inside]),
        Limit::PortsExhausted => (259, vec![t, V::U8(PORTS_EXHAUSTED), pool, b4, inside, V::U32(l.ext_addr)]),
        Limit::SessionLimit | Limit::BlockLimit | Limit::RateLimit => {
            let [e, q] = over(quota::MAX_ENTRIES_PER_USER);
            (260, vec![t, e, q, pool, b4, inside, value])
        }
        Limit::SessionTable => {
            let [e, q] = over(quota::MAX_SESSION_ENTRIES);
            (261, vec![t, e, q, b4, inside, value])
        }
        Limit::SubscriberTable => {
            let [e, q] = over(quota::MAX_SUBSCRIBERS);
            (262, vec![t, e, q, b4, inside, value])
        }
    }
}

/// The template and values of an event, or None for one IPFIX does not carry
/// (refreshes).
fn record(e: &SessionEvent) -> Option<(u16, Vec<V>)> {
    Some(match e {
        SessionEvent::Created(r) => session(r, nat_event::SESSION_CREATE),
        SessionEvent::Deleted(r) => session(r, nat_event::SESSION_DELETE),
        SessionEvent::BlockAllocated(b) => block(b, nat_event::BLOCK_ALLOCATION),
        SessionEvent::BlockReleased(b) => block(b, nat_event::BLOCK_RELEASE),
        SessionEvent::Limit(l) => limit(l),
        SessionEvent::Refreshed(_) => return None,
    })
}

fn put(out: &mut Vec<u8>, v: &V) {
    match v {
        V::U8(x) => out.push(*x),
        V::U16(x) => out.extend_from_slice(&x.to_be_bytes()),
        V::U32(x) => out.extend_from_slice(&x.to_be_bytes()),
        V::U64(x) => out.extend_from_slice(&x.to_be_bytes()),
        V::V6(x) => out.extend_from_slice(x),
    }
}

/// The Template Set of every template (Set ID 2).
fn template_set() -> Vec<u8> {
    let mut s = vec![0, 2, 0, 0];
    for (id, fields) in TEMPLATES {
        s.extend_from_slice(&id.to_be_bytes());
        s.extend_from_slice(&(fields.len() as u16).to_be_bytes());
        for (ie, len) in *fields {
            s.extend_from_slice(&ie.to_be_bytes());
            s.extend_from_slice(&len.to_be_bytes());
        }
    }
    let len = s.len() as u16;
    s[2..4].copy_from_slice(&len.to_be_bytes());
    s
}

/// When templates go again (RFC 7011 section 8.4: over UDP, periodically).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refresh {
    pub every: Duration,
    pub messages: u32,
}

/// One IPFIX collector's exporting process: the Observation Domain (the board's slot),
/// the sequence number (data records sent before each message, RFC 7011 section 3.1),
/// and the template refresh.
pub struct Exporter {
    pub to: SocketAddr,
    socket: UdpSocket,
    domain: u32,
    records: u32,
    refresh: Refresh,
    /// When the templates last went, and messages since.
    templates_at: Option<Instant>,
    since_templates: u32,
}

impl Exporter {
    /// An exporter to `to` over `socket` (bound by the caller, to the configured source).
    pub fn new(to: SocketAddr, socket: UdpSocket, domain: u32, refresh: Refresh) -> Self {
        Exporter { to, socket, domain, records: 0, refresh, templates_at: None, since_templates: 0 }
    }

    /// The message that carries `e` (with the templates first when they are due), or
    /// None for an event IPFIX does not carry. `now`: Unix seconds, the export time.
    pub fn message(&mut self, e: &SessionEvent, now: u32, clock: Instant) -> Option<Vec<u8>> {
        let (template, values) = record(e)?;
        let mut m = vec![0, 10, 0, 0];
        m.extend_from_slice(&now.to_be_bytes());
        m.extend_from_slice(&self.records.to_be_bytes());
        m.extend_from_slice(&self.domain.to_be_bytes());
        let due = match self.templates_at {
            None => true,
            Some(at) => clock.duration_since(at) >= self.refresh.every || self.since_templates >= self.refresh.messages,
        };
        if due {
            m.extend_from_slice(&template_set());
            self.templates_at = Some(clock);
            self.since_templates = 0;
        }
        self.since_templates += 1;
        let set_at = m.len();
        m.extend_from_slice(&template.to_be_bytes());
        m.extend_from_slice(&[0, 0]);
        for v in &values {
            put(&mut m, v);
        }
        let set_len = (m.len() - set_at) as u16;
        m[set_at + 2..set_at + 4].copy_from_slice(&set_len.to_be_bytes());
        let len = m.len() as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
        self.records = self.records.wrapping_add(1);
        Some(m)
    }

    /// Sends `e`; Some(sent) or None when IPFIX does not carry it.
    pub fn send(&mut self, e: &SessionEvent, now: u32) -> Option<bool> {
        let m = self.message(e, now, Instant::now())?;
        Some(self.socket.send_to(&m, self.to).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_their_records() {
        // Every record is as long as its template says, field by field.
        let b4 = [0x20, 1, 0xd, 0xb8, 0, 0xb4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let b = BlockRecord { inst: 1, b4, ext_addr: 0xc633_6407, first_port: 1024, size: 512, at: 1 };
        let mut events = vec![SessionEvent::BlockAllocated(b)];
        for limit in [
            Limit::AddressesExhausted,
            Limit::PortsExhausted,
            Limit::SessionTable,
            Limit::SubscriberTable,
            Limit::SessionLimit,
            Limit::BlockLimit,
            Limit::RateLimit,
        ] {
            events.push(SessionEvent::Limit(LimitRecord {
                inst: 0,
                b4,
                inner_addr: 1,
                ext_addr: 2,
                limit,
                value: 3,
                at: 4,
            }));
        }
        for e in events {
            let (t, values) = record(&e).unwrap();
            let fields = TEMPLATES.iter().find(|x| x.0 == t).unwrap().1;
            assert_eq!(fields.len(), values.len(), "{e:?}");
            for (f, v) in fields.iter().zip(&values) {
                let mut out = Vec::new();
                put(&mut out, v);
                assert_eq!(out.len(), f.1 as usize, "{e:?} field {}", f.0);
            }
        }
    }

    #[test]
    fn templates_again_after_the_refresh_time_or_count() {
        let refresh = Refresh { every: Duration::from_secs(60), messages: 1000 };
        let mut x = Exporter::new("127.0.0.1:9".parse().unwrap(), UdpSocket::bind("127.0.0.1:0").unwrap(), 3, refresh);
        let b = BlockRecord { inst: 0, b4: [0; 16], ext_addr: 1, first_port: 1024, size: 512, at: 1 };
        let e = SessionEvent::BlockAllocated(b);
        let t0 = Instant::now();
        let with_templates = |m: &[u8]| m[16..18] == [0, 2];
        let m = x.message(&e, 1, t0).unwrap();
        assert!(with_templates(&m));
        // Header: version 10, length, export time, sequence (records before), domain.
        assert_eq!((&m[0..2], u16::from_be_bytes([m[2], m[3]]) as usize), (&[0, 10][..], m.len()));
        assert_eq!((&m[8..12], &m[12..16]), (&[0, 0, 0, 0][..], &[0, 0, 0, 3][..]));
        let m = x.message(&e, 1, t0 + Duration::from_secs(59)).unwrap();
        assert!(!with_templates(&m) && m[8..12] == [0, 0, 0, 1]);
        assert!(with_templates(&x.message(&e, 1, t0 + Duration::from_secs(61)).unwrap()));
    }
}
