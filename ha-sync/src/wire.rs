//! The HA channel's messages on the wire (documented in `ha-sync/README.md`).
//!
//! Every message is one UDP datagram: a fixed header, a payload of records, and an
//! HMAC-SHA256 tag (first 16 bytes) over both, keyed with a key derived from the
//! configured secret for the pair of boards and the path (`Key::pair`). A message that
//! is short, of another version, or whose tag does not verify is refused with a reason
//! the caller counts; nothing of it is used.

use std::net::SocketAddr;

use dataplane::nat::events::{BlockRecord, SessionRecord};
use dataplane::nat::pcp::PcpLease;
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::role::{PeerState, Role};

pub const MAGIC: [u8; 4] = *b"AFHA";
/// 2: heartbeats carry a state per service-location, switchovers name theirs.
/// 3: each location's state says for how long the sender has been active.
/// 4: the header carries the sender's nonce and the receiver's as last heard (the
/// handshake that refuses replays across restarts).
/// 5: sessions with a PCP lease (record 6, decision 0023).
pub const VERSION: u8 = 5;
pub const HEADER: usize = field::RECORDS.end;
pub const TAG: usize = 16;
/// The largest datagram we send: fits a 1500-byte path with IPv6 and UDP headers.
pub const MAX_DATAGRAM: usize = 1400;
pub const SESSION_LEN: usize = 46;
/// A session with its PCP lease: the session's 46 bytes, then the lease's end (4, Unix
/// seconds), whether it is open (1) and the client's nonce (12).
pub const LEASED_SESSION_LEN: usize = SESSION_LEN + 17;
pub const BLOCK_LEN: usize = 30;
pub const COVER_LEN: usize = 6;

/// Where each header field is (big-endian integers).
mod field {
    use std::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: usize = 4;
    pub const KIND: usize = 5;
    pub const FLAGS: usize = 6;
    // 7: zero.
    pub const SLOT: Range<usize> = 8..10;
    // 10..12: zero.
    pub const EPOCH: Range<usize> = 12..20;
    pub const NONCE: Range<usize> = 20..36;
    pub const ECHO: Range<usize> = 36..52;
    pub const SEQ: Range<usize> = 52..60;
    pub const ACK: Range<usize> = 60..68;
    pub const LEN: Range<usize> = 68..70;
    pub const RECORDS: Range<usize> = 70..72;
}

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// The sender's role and state; every heartbeat interval, on every path.
    Heartbeat = 1,
    /// Records of the replication stream, sequenced and acknowledged.
    Data = 2,
    /// Cumulative acknowledgement of the peer's stream, with missing ranges (NACK).
    Ack = 3,
    /// A standby asks for the whole eligible table (bulk sync).
    BulkRequest = 4,
    /// Role hand-over: a request, or its answer (`flags`).
    Switchover = 5,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Heartbeat,
            2 => Kind::Data,
            3 => Kind::Ack,
            4 => Kind::BulkRequest,
            5 => Kind::Switchover,
            _ => return None,
        })
    }
}

/// Data flags.
pub const FLAG_BULK: u8 = 1;
/// The last message of a bulk sync: the receiver is in sync once it has all before it.
pub const FLAG_BULK_END: u8 = 2;
/// The stream starts again at `seq` (the sender's queue overflowed or it restarted the
/// stream): the receiver forgets its gaps and waits for a bulk sync.
pub const FLAG_RESET: u8 = 4;
/// Switchover flags: the request, and the answer that the sender has let go.
pub const FLAG_TAKE_OVER: u8 = 1;
pub const FLAG_RELEASED: u8 = 2;

/// The fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub flags: u8,
    /// The sending board's slot.
    pub slot: u16,
    /// The sender's incarnation: microseconds since the epoch at its start. A message
    /// of an older incarnation than one already heard is a replay.
    pub epoch: u64,
    /// The sender's nonce: random, drawn at its start (one per incarnation).
    pub nonce: u128,
    /// The receiver's nonce as the sender last heard it (0: not heard yet). A message is
    /// believed only by the incarnation whose nonce it echoes.
    pub echo: u128,
    /// Data: the stream's sequence number. Other kinds: a counter that only grows
    /// within an epoch (replay protection).
    pub seq: u64,
    /// Cumulative acknowledgement of the peer's data stream (all before it arrived).
    pub ack: u64,
}

/// One replicated change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Session(SessionRecord),
    SessionDeleted(SessionRecord),
    Block(BlockRecord),
    BlockReleased(BlockRecord),
    /// A bulk sync holds the whole eligible table of the location with this id: what
    /// the receiver holds of it and the bulk did not bring goes at its end.
    Cover(u32),
}

impl Record {
    /// The record with its instance number translated by `f` (None: `f` knows none).
    pub fn with_instance(self, f: impl Fn(u8) -> Option<u8>) -> Option<Record> {
        Some(match self {
            Record::Session(s) => Record::Session(SessionRecord { inst: f(s.inst)?, ..s }),
            Record::SessionDeleted(s) => Record::SessionDeleted(SessionRecord { inst: f(s.inst)?, ..s }),
            Record::Block(b) => Record::Block(BlockRecord { inst: f(b.inst)?, ..b }),
            Record::BlockReleased(b) => Record::BlockReleased(BlockRecord { inst: f(b.inst)?, ..b }),
            Record::Cover(id) => Record::Cover(id),
        })
    }
}

/// Why a datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("shorter than a header and a tag")]
    Short,
    #[error("not an AFHA message")]
    Magic,
    #[error("version {0} is not spoken here")]
    Version(u8),
    #[error("unknown message kind {0}")]
    Kind(u8),
    #[error("the authentication tag does not verify")]
    Auth,
    #[error("the payload length disagrees with the datagram")]
    Length,
    #[error("a record is malformed")]
    Record,
    #[error("a heartbeat payload is malformed")]
    Heartbeat,
}

/// The configured secret (`service-ha preshared-key`) that the keys are derived from.
/// Its `Debug` never shows it: settings and configurations that hold it may be logged.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into())
    }

    /// The secret itself: for deriving keys, and for `save` of an inline key.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(******)")
    }
}

/// What a key derived from the secret is for. Each path has a key of its own, so that
/// a tag heard on one (witness heartbeats are multicast on the subscribers' segment) is
/// worth nothing on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The HA channel between the two boards of a pair.
    Link,
    /// Witness heartbeats on the softwire segment.
    Witness,
}

impl Purpose {
    fn name(self) -> &'static str {
        match self {
            Purpose::Link => "link",
            Purpose::Witness => "witness",
        }
    }
}

/// A key, ready to sign and verify.
#[derive(Clone)]
pub struct Key(Hmac<Sha256>);

impl Key {
    /// A key used as it is (HMAC-SHA256 takes any length).
    pub fn new(key: &[u8]) -> Key {
        Key(Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length"))
    }

    /// The key for `info`, derived from `secret` with HKDF-SHA256 (RFC 5869, no salt:
    /// the secret is already a key of at least 128 bits; `info` keeps the uses apart).
    pub fn derive(secret: &Secret, info: &[u8]) -> Key {
        let mut okm = [0u8; 32];
        Hkdf::<Sha256>::new(None, secret.expose())
            .expand(info, &mut okm)
            .expect("32 bytes is within what HKDF-SHA256 gives");
        Key::new(&okm)
    }

    /// The key of `purpose` between two boards, each named by its slot and HA address:
    /// the same at both ends (they are sorted), and another for any other pair, also
    /// for boards of another chassis that reuse the slot numbers and the secret.
    pub fn pair(secret: &Secret, purpose: Purpose, a: (u16, SocketAddr), b: (u16, SocketAddr)) -> Key {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let end = |(slot, at): (u16, SocketAddr)| format!("slot {slot} at {} port {}", at.ip(), at.port());
        let info = format!("aftr-ha {} v1: {}, {}", purpose.name(), end(lo), end(hi));
        Key::derive(secret, info.as_bytes())
    }

    /// The (truncated) HMAC-SHA256 tag of `bytes`.
    pub fn tag(&self, bytes: &[u8]) -> [u8; TAG] {
        let mut m = self.0.clone();
        m.update(bytes);
        let full = m.finalize().into_bytes();
        let mut t = [0u8; TAG];
        t.copy_from_slice(&full[..TAG]);
        t
    }

    /// Whether `tag` is the tag of `bytes` (in constant time).
    pub fn verify(&self, bytes: &[u8], tag: &[u8]) -> bool {
        let mut m = self.0.clone();
        m.update(bytes);
        m.verify_truncated_left(tag).is_ok()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Builds one datagram: header, then records or raw payload, then the tag.
#[derive(Clone)]
pub struct Builder {
    buf: Vec<u8>,
    records: u16,
}

impl Builder {
    pub fn new(h: &Header) -> Builder {
        let mut buf = Vec::with_capacity(MAX_DATAGRAM);
        // Zeros where nothing goes; the payload length and record count are filled in
        // by `finish`.
        buf.resize(HEADER, 0);
        buf[field::MAGIC].copy_from_slice(&MAGIC);
        buf[field::VERSION] = VERSION;
        buf[field::KIND] = h.kind as u8;
        buf[field::FLAGS] = h.flags;
        buf[field::SLOT].copy_from_slice(&h.slot.to_be_bytes());
        buf[field::EPOCH].copy_from_slice(&h.epoch.to_be_bytes());
        buf[field::NONCE].copy_from_slice(&h.nonce.to_be_bytes());
        buf[field::ECHO].copy_from_slice(&h.echo.to_be_bytes());
        buf[field::SEQ].copy_from_slice(&h.seq.to_be_bytes());
        buf[field::ACK].copy_from_slice(&h.ack.to_be_bytes());
        Builder { buf, records: 0 }
    }

    /// Room left for payload in a datagram of at most `MAX_DATAGRAM` bytes.
    pub fn room(&self) -> usize {
        MAX_DATAGRAM - TAG - self.buf.len()
    }

    pub fn records(&self) -> u16 {
        self.records
    }

    /// Appends a record if it fits; false if the datagram is full.
    pub fn push(&mut self, r: &Record) -> bool {
        let need = match r {
            Record::Session(s) if s.pcp.is_some() => LEASED_SESSION_LEN,
            Record::Session(_) | Record::SessionDeleted(_) => SESSION_LEN,
            Record::Block(_) | Record::BlockReleased(_) => BLOCK_LEN,
            Record::Cover(_) => COVER_LEN,
        };
        if self.room() < need {
            return false;
        }
        match r {
            Record::Session(s) | Record::SessionDeleted(s) => {
                let lease = s.pcp.filter(|_| matches!(r, Record::Session(_)));
                self.buf.push(match r {
                    Record::Session(_) if lease.is_some() => 6,
                    Record::Session(_) => 1,
                    _ => 2,
                });
                self.buf.push(s.inst);
                self.buf.extend_from_slice(&s.b4);
                self.buf.extend_from_slice(&s.inner_addr.to_be_bytes());
                self.buf.extend_from_slice(&s.inner_port.to_be_bytes());
                self.buf.extend_from_slice(&s.ext_addr.to_be_bytes());
                self.buf.extend_from_slice(&s.ext_port.to_be_bytes());
                self.buf.push(s.proto);
                self.buf.push(s.flags);
                self.buf.extend_from_slice(&s.created.to_be_bytes());
                self.buf.extend_from_slice(&s.last_seen.to_be_bytes());
                self.buf.extend_from_slice(&s.mac);
                if let Some(l) = lease {
                    self.buf.extend_from_slice(&l.until.to_be_bytes());
                    self.buf.push(l.open as u8);
                    self.buf.extend_from_slice(&l.nonce);
                }
            }
            Record::Block(b) | Record::BlockReleased(b) => {
                self.buf.push(if matches!(r, Record::Block(_)) { 3 } else { 4 });
                self.buf.push(b.inst);
                self.buf.extend_from_slice(&b.b4);
                self.buf.extend_from_slice(&b.ext_addr.to_be_bytes());
                self.buf.extend_from_slice(&b.first_port.to_be_bytes());
                self.buf.extend_from_slice(&b.size.to_be_bytes());
                self.buf.extend_from_slice(&b.at.to_be_bytes());
            }
            Record::Cover(id) => {
                self.buf.extend_from_slice(&[5, 0]);
                self.buf.extend_from_slice(&id.to_be_bytes());
            }
        }
        self.records += 1;
        true
    }

    /// Sets the header's flags (known only once the records are in).
    pub fn set_flags(&mut self, flags: u8) {
        self.buf[field::FLAGS] = flags;
    }

    /// Appends raw payload bytes (acknowledgement ranges, heartbeat state).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Seals the datagram with the key.
    pub fn finish(mut self, key: &Key) -> Vec<u8> {
        let len = (self.buf.len() - HEADER) as u16;
        self.buf[field::LEN].copy_from_slice(&len.to_be_bytes());
        self.buf[field::RECORDS].copy_from_slice(&self.records.to_be_bytes());
        let tag = key.tag(&self.buf);
        self.buf.extend_from_slice(&tag);
        self.buf
    }
}

/// A verified datagram: its header and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub header: Header,
    pub records: u16,
    pub payload: &'a [u8],
}

/// The slot a datagram says it comes from, if it is a message of this version at all;
/// not believed until its tag is checked ([`open`]), but enough to tell the peer's
/// messages from our own multicast and from other boards' before any key is tried.
pub fn sender(d: &[u8]) -> Result<u16, WireError> {
    if d.len() < HEADER + TAG {
        return Err(WireError::Short);
    }
    if d[field::MAGIC] != MAGIC {
        return Err(WireError::Magic);
    }
    if d[field::VERSION] != VERSION {
        return Err(WireError::Version(d[field::VERSION]));
    }
    Ok(u16::from_be_bytes([d[field::SLOT.start], d[field::SLOT.start + 1]]))
}

/// Checks a datagram and returns its header and payload. The tag is checked before
/// anything of the content is believed.
pub fn open<'a>(key: &Key, d: &'a [u8]) -> Result<Message<'a>, WireError> {
    let slot = sender(d)?;
    let (body, tag) = d.split_at(d.len() - TAG);
    if !key.verify(body, tag) {
        return Err(WireError::Auth);
    }
    let kind = Kind::from_u8(d[field::KIND]).ok_or(WireError::Kind(d[field::KIND]))?;
    let be = |at: std::ops::Range<usize>| d[at].iter().fold(0u128, |v, &b| v << 8 | b as u128);
    let len = be(field::LEN) as usize;
    if HEADER + len != body.len() {
        return Err(WireError::Length);
    }
    Ok(Message {
        header: Header {
            kind,
            flags: d[field::FLAGS],
            slot,
            epoch: be(field::EPOCH) as u64,
            nonce: be(field::NONCE),
            echo: be(field::ECHO),
            seq: be(field::SEQ) as u64,
            ack: be(field::ACK) as u64,
        },
        records: be(field::RECORDS) as u16,
        payload: &body[HEADER..],
    })
}

/// A heartbeat's payload: the digest of the sender's running configuration (8 bytes,
/// big-endian), so that boards whose configurations drifted apart say so; the MAC of
/// its softwire interface (6 bytes; zeros: unknown), where the other board sends on
/// the softwire frames of the sender's locations that reach it; the number of
/// service-locations (1 byte); then per location its id (4 bytes, big-endian), the
/// sender's role for it (0 init, 1 standby, 2 active) and its flags (1: the sender is
/// the location's preferred board, 2: the sender, a standby, holds the whole eligible
/// table, 4: the sender's links are up, 8: the sender, active, became so without the
/// other board's table: `role.rs`'s cold activation; a board that does not know the
/// bit ignores it).
pub fn encode_heartbeat(me: &[(u32, PeerState)], config_digest: u64, mac: [u8; 6]) -> Vec<u8> {
    let n = me.len().min(u8::MAX as usize);
    let mut p = Vec::with_capacity(15 + ENTRY * n);
    p.extend_from_slice(&config_digest.to_be_bytes());
    p.extend_from_slice(&mac);
    p.push(n as u8);
    for (id, st) in &me[..n] {
        p.extend_from_slice(&id.to_be_bytes());
        p.push(st.role.to_u8());
        p.push(st.preferred as u8 | (st.in_sync as u8) << 1 | (st.fit as u8) << 2 | (st.cold as u8) << 3);
        p.extend_from_slice(&st.active_ms.to_be_bytes());
    }
    p
}

/// A location's entry in a heartbeat: id, role, flags, milliseconds active.
const ENTRY: usize = 10;

/// What a heartbeat says: the sender's state per location, its configuration digest and
/// its softwire MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatPayload {
    pub locations: Vec<(u32, PeerState)>,
    pub config_digest: u64,
    pub mac: [u8; 6],
}

/// Reads a heartbeat's payload.
pub fn decode_heartbeat(p: &[u8]) -> Result<HeartbeatPayload, WireError> {
    let (Some(digest), Some(mac), Some(&n)) = (p.get(..8), p.get(8..14), p.get(14)) else {
        return Err(WireError::Heartbeat);
    };
    let entries = p.get(15..15 + ENTRY * n as usize).ok_or(WireError::Heartbeat)?;
    let states = entries
        .chunks_exact(ENTRY)
        .map(|e| {
            let role = Role::from_u8(e[4]).ok_or(WireError::Heartbeat)?;
            let id = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            let active_ms = u32::from_be_bytes([e[6], e[7], e[8], e[9]]);
            let (preferred, in_sync, fit, cold) = (e[5] & 1 != 0, e[5] & 2 != 0, e[5] & 4 != 0, e[5] & 8 != 0);
            Ok((id, PeerState { role, preferred, in_sync, fit, active_ms, cold }))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HeartbeatPayload {
        locations: states,
        config_digest: u64::from_be_bytes(digest.try_into().expect("8 bytes")),
        mac: mac.try_into().expect("6 bytes"),
    })
}

/// The records of a Data payload, in order; a malformed record ends the payload with
/// an error (the message was authentic, so this is a bug of the peer, still counted).
pub fn records(payload: &[u8]) -> impl Iterator<Item = Result<Record, WireError>> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= payload.len() {
            return None;
        }
        let p = &payload[at..];
        let be32 = |x: &[u8]| u32::from_be_bytes(x.try_into().expect("4 bytes"));
        let be16 = |x: &[u8]| u16::from_be_bytes(x.try_into().expect("2 bytes"));
        let r = match p[0] {
            1 | 2 | 6 if p.len() >= if p[0] == 6 { LEASED_SESSION_LEN } else { SESSION_LEN } => {
                let s = SessionRecord {
                    inst: p[1],
                    b4: p[2..18].try_into().expect("16 bytes"),
                    inner_addr: be32(&p[18..22]),
                    inner_port: be16(&p[22..24]),
                    ext_addr: be32(&p[24..28]),
                    ext_port: be16(&p[28..30]),
                    proto: p[30],
                    flags: p[31],
                    created: be32(&p[32..36]),
                    last_seen: be32(&p[36..40]),
                    mac: p[40..46].try_into().expect("6 bytes"),
                    pcp: (p[0] == 6).then(|| PcpLease {
                        until: be32(&p[46..50]),
                        open: p[50] != 0,
                        nonce: p[51..63].try_into().expect("12 bytes"),
                    }),
                };
                at += if p[0] == 6 { LEASED_SESSION_LEN } else { SESSION_LEN };
                if p[0] == 2 { Record::SessionDeleted(s) } else { Record::Session(s) }
            }
            3 | 4 if p.len() >= BLOCK_LEN => {
                let b = BlockRecord {
                    inst: p[1],
                    b4: p[2..18].try_into().expect("16 bytes"),
                    ext_addr: be32(&p[18..22]),
                    first_port: be16(&p[22..24]),
                    size: be16(&p[24..26]),
                    at: be32(&p[26..30]),
                };
                at += BLOCK_LEN;
                if p[0] == 3 { Record::Block(b) } else { Record::BlockReleased(b) }
            }
            5 if p.len() >= COVER_LEN => {
                at += COVER_LEN;
                Record::Cover(be32(&p[2..6]))
            }
            _ => {
                at = payload.len();
                return Some(Err(WireError::Record));
            }
        };
        Some(Ok(r))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(n: u32) -> SessionRecord {
        SessionRecord {
            inst: 0,
            b4: [0x20, 1, 0xd, 0xb8, 0, 0xb4, 0, 0, 0, 0, 0, 0, 0, 0, 0, n as u8],
            inner_addr: 0xc0a8_0100 + n,
            inner_port: 1000 + n as u16,
            ext_addr: 0xc633_6401,
            ext_port: 4096 + n as u16,
            proto: 17,
            flags: 0,
            created: 1_700_000_000,
            last_seen: 1_700_000_100 + n,
            mac: [2, 0, 0, 0, 0, n as u8],
            pcp: None,
        }
    }

    fn header(kind: Kind) -> Header {
        Header { kind, flags: 0, slot: 1, epoch: 42, nonce: 0x0a0b, echo: 0x0c0d, seq: 7, ack: 3 }
    }

    #[test]
    fn the_header_is_laid_out_as_documented() {
        let mut b = Builder::new(&Header { flags: FLAG_RESET, ..header(Kind::Data) });
        b.raw(&[0xee]);
        let d = b.finish(&Key::new(b"k"));
        #[rustfmt::skip]
        let want: [u8; HEADER] = [
            b'A', b'F', b'H', b'A', VERSION, 2, FLAG_RESET, 0, 0, 1, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 42, // epoch
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0x0b, // nonce
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0c, 0x0d, // echo
            0, 0, 0, 0, 0, 0, 0, 7, // seq
            0, 0, 0, 0, 0, 0, 0, 3, // ack
            0, 1, 0, 0, // payload length, records
        ];
        assert_eq!(d[..HEADER], want);
        assert_eq!((d[HEADER], d.len()), (0xee, HEADER + 1 + TAG));
        assert_eq!(sender(&d), Ok(1));
    }

    #[test]
    fn a_session_with_a_pcp_lease_is_record_6() {
        let lease = PcpLease { until: 1_700_000_900, open: true, nonce: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] };
        let leased = SessionRecord { pcp: Some(lease), ..session(1) };
        let mut b = Builder::new(&header(Kind::Data));
        assert!(b.push(&Record::Session(leased)));
        // Its deletion needs no lease: record 2.
        assert!(b.push(&Record::SessionDeleted(leased)));
        let key = Key::new(b"k");
        let d = b.finish(&key);
        let m = open(&key, &d).unwrap();
        let p = m.payload;
        assert_eq!((p[0], p.len()), (6, LEASED_SESSION_LEN + SESSION_LEN));
        assert_eq!(&p[46..63], &[0x65, 0x53, 0xf4, 0x84, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(p[LEASED_SESSION_LEN], 2);
        let got: Vec<Record> = records(p).map(|r| r.unwrap()).collect();
        assert_eq!(got, vec![Record::Session(leased), Record::SessionDeleted(session(1))]);
        // Cut short: refused, not read past its end.
        assert_eq!(records(&p[..LEASED_SESSION_LEN - 1]).next(), Some(Err(WireError::Record)));
    }

    #[test]
    fn keys_are_derived_per_pair_and_per_purpose() {
        let secret = Secret::new(*b"0123456789abcdefghijkl");
        let at = |s: &str| -> SocketAddr { s.parse().unwrap() };
        let (one, two) = ((1, at("192.0.2.1:62000")), (2, at("192.0.2.2:62000")));
        let mut b = Builder::new(&header(Kind::Heartbeat));
        b.raw(&[1, 2, 3]);
        let d = b.finish(&Key::pair(&secret, Purpose::Link, one, two));
        // Both ends derive the same key, whichever is first.
        assert!(open(&Key::pair(&secret, Purpose::Link, two, one), &d).is_ok());
        // Another path, another pair, another chassis with the same slots, another secret.
        let three = (3, at("192.0.2.3:62000"));
        let elsewhere = (2, at("198.18.0.2:62000"));
        for other in [
            Key::pair(&secret, Purpose::Witness, one, two),
            Key::pair(&secret, Purpose::Link, one, three),
            Key::pair(&secret, Purpose::Link, one, elsewhere),
            Key::pair(&Secret::new(*b"0123456789abcdefghijkm"), Purpose::Link, one, two),
            Key::new(secret.expose()),
        ] {
            assert_eq!(open(&other, &d), Err(WireError::Auth));
        }
        assert_eq!(format!("{secret:?}"), "Secret(******)", "never shown, not even in a debug print");
    }

    #[test]
    fn records_round_trip_and_fill_a_datagram() {
        let key = Key::new(b"secret");
        let mut b = Builder::new(&header(Kind::Data));
        let mut sent = Vec::new();
        let block =
            BlockRecord { inst: 0, b4: session(1).b4, ext_addr: 0xc633_6401, first_port: 4096, size: 512, at: 9 };
        assert!(b.push(&Record::Cover(0x0102_0304)));
        sent.push(Record::Cover(0x0102_0304));
        assert!(b.push(&Record::Block(block)));
        sent.push(Record::Block(block));
        let mut n = 0;
        loop {
            let r = if n % 5 == 4 { Record::SessionDeleted(session(n)) } else { Record::Session(session(n)) };
            if !b.push(&r) {
                break;
            }
            sent.push(r);
            n += 1;
        }
        let d = b.finish(&key);
        assert!(d.len() <= MAX_DATAGRAM && d.len() > MAX_DATAGRAM - SESSION_LEN - TAG, "{}", d.len());
        let m = open(&key, &d).unwrap();
        assert_eq!(m.header, header(Kind::Data));
        assert_eq!(m.records as usize, sent.len());
        let got: Vec<Record> = records(m.payload).map(|r| r.unwrap()).collect();
        assert_eq!(got, sent);
    }

    #[test]
    fn forged_tampered_and_foreign_messages_are_refused() {
        let key = Key::new(b"secret");
        let mut b = Builder::new(&header(Kind::Heartbeat));
        b.raw(&[1, 2, 3]);
        let d = b.finish(&key);
        assert!(open(&key, &d).is_ok());
        // Another key (a forger without the secret).
        assert_eq!(open(&Key::new(b"guess"), &d), Err(WireError::Auth));
        // Any bit flipped anywhere.
        for i in 0..d.len() {
            let mut t = d.clone();
            t[i] ^= 0x10;
            assert!(open(&key, &t).is_err(), "byte {i} flipped was accepted");
        }
        assert_eq!(open(&key, &d[..HEADER]), Err(WireError::Short));
        let mut v = d.clone();
        v[4] = 9;
        assert_eq!(open(&key, &v), Err(WireError::Version(9)));
    }

    #[test]
    fn a_malformed_record_in_an_authentic_message_is_an_error_not_a_panic() {
        let key = Key::new(b"k");
        let mut b = Builder::new(&header(Kind::Data));
        b.raw(&[1, 0, 0]);
        let d = b.finish(&key);
        let m = open(&key, &d).unwrap();
        assert_eq!(records(m.payload).collect::<Vec<_>>(), vec![Err(WireError::Record)]);
    }

    #[test]
    fn heartbeat_payloads_round_trip_and_bad_ones_are_refused() {
        let st = |role, preferred, in_sync| PeerState {
            role,
            preferred,
            in_sync,
            fit: true,
            active_ms: 7,
            cold: role == Role::Active,
        };
        let me = vec![(1, st(Role::Active, true, false)), (0x0102_0304, st(Role::Standby, false, true))];
        let mac = [2, 0, 0, 0, 0, 0xa1];
        let p = encode_heartbeat(&me, 0x0102_0304_0506_0708, mac);
        let want = [
            // Location 1: active, preferred (1), links up (4), cold (8): 13.
            1, 2, 3, 4, 5, 6, 7, 8, 2, 0, 0, 0, 0, 0xa1, 2, 0, 0, 0, 1, 2, 13, 0, 0, 0, 7, 1, 2, 3, 4, 1, 6, 0, 0, 0, 7,
        ];
        assert_eq!(p, want);
        let said = HeartbeatPayload { locations: me, config_digest: 0x0102_0304_0506_0708, mac };
        assert_eq!(decode_heartbeat(&p), Ok(said));
        assert_eq!(decode_heartbeat(&p[..15]), Err(WireError::Heartbeat), "two locations said, none there");
        assert_eq!(decode_heartbeat(&p[..34]), Err(WireError::Heartbeat), "one cut short");
        assert_eq!(decode_heartbeat(&[0; 14]), Err(WireError::Heartbeat), "no count");
        let mut bad = p.clone();
        bad[19] = 3;
        assert_eq!(decode_heartbeat(&bad), Err(WireError::Heartbeat), "no such role");
        let empty = [0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0];
        let none = HeartbeatPayload { locations: vec![], config_digest: 9, mac: [0; 6] };
        assert_eq!(decode_heartbeat(&empty), Ok(none), "a board of no location");
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_refused_or_parsed_without_panic(d in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1500)) {
            let key = Key::new(b"k");
            if let Ok(m) = open(&key, &d) {
                for _ in records(m.payload) {}
            }
        }
    }
}
