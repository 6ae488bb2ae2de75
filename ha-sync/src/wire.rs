//! The HA channel's messages on the wire (documented in `ha-sync/README.md`).
//!
//! Every message is one UDP datagram: a fixed header, a payload of records, and an
//! HMAC-SHA256 tag (first 16 bytes) over both, keyed with the configured pre-shared key.
//! A message that is short, of another version, or whose tag does not verify is refused
//! with a reason the caller counts; nothing of it is used.

use dataplane::nat::events::{BlockRecord, SessionRecord};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::role::{PeerState, Role};

pub const MAGIC: [u8; 4] = *b"AFHA";
/// 2: heartbeats carry a state per service-location, switchovers name theirs.
/// 3: each location's state says for how long the sender has been active.
pub const VERSION: u8 = 3;
pub const HEADER: usize = 40;
pub const TAG: usize = 16;
/// The largest datagram we send: fits a 1500-byte path with IPv6 and UDP headers.
pub const MAX_DATAGRAM: usize = 1400;
pub const SESSION_LEN: usize = 46;
pub const BLOCK_LEN: usize = 30;
pub const COVER_LEN: usize = 6;

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

/// The pre-shared key, ready to sign and verify.
#[derive(Clone)]
pub struct Key(Hmac<Sha256>);

impl Key {
    pub fn new(secret: &[u8]) -> Key {
        Key(Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length"))
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
pub struct Builder {
    buf: Vec<u8>,
    records: u16,
}

impl Builder {
    pub fn new(h: &Header) -> Builder {
        let mut buf = Vec::with_capacity(MAX_DATAGRAM);
        buf.extend_from_slice(&MAGIC);
        buf.push(VERSION);
        buf.push(h.kind as u8);
        buf.push(h.flags);
        buf.push(0);
        buf.extend_from_slice(&h.slot.to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&h.epoch.to_be_bytes());
        buf.extend_from_slice(&h.seq.to_be_bytes());
        buf.extend_from_slice(&h.ack.to_be_bytes());
        // Payload length and record count, filled in by `finish`.
        buf.extend_from_slice(&[0, 0, 0, 0]);
        debug_assert_eq!(buf.len(), HEADER);
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
            Record::Session(_) | Record::SessionDeleted(_) => SESSION_LEN,
            Record::Block(_) | Record::BlockReleased(_) => BLOCK_LEN,
            Record::Cover(_) => COVER_LEN,
        };
        if self.room() < need {
            return false;
        }
        match r {
            Record::Session(s) | Record::SessionDeleted(s) => {
                self.buf.push(if matches!(r, Record::Session(_)) { 1 } else { 2 });
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
        self.buf[6] = flags;
    }

    /// Appends raw payload bytes (acknowledgement ranges, heartbeat state).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Seals the datagram with the key.
    pub fn finish(mut self, key: &Key) -> Vec<u8> {
        let len = (self.buf.len() - HEADER) as u16;
        self.buf[36..38].copy_from_slice(&len.to_be_bytes());
        self.buf[38..40].copy_from_slice(&self.records.to_be_bytes());
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

/// Checks a datagram and returns its header and payload. The tag is checked before
/// anything of the content is believed.
pub fn open<'a>(key: &Key, d: &'a [u8]) -> Result<Message<'a>, WireError> {
    if d.len() < HEADER + TAG {
        return Err(WireError::Short);
    }
    if d[0..4] != MAGIC {
        return Err(WireError::Magic);
    }
    if d[4] != VERSION {
        return Err(WireError::Version(d[4]));
    }
    let (body, tag) = d.split_at(d.len() - TAG);
    if !key.verify(body, tag) {
        return Err(WireError::Auth);
    }
    let kind = Kind::from_u8(d[5]).ok_or(WireError::Kind(d[5]))?;
    let be64 = |at: usize| u64::from_be_bytes(d[at..at + 8].try_into().expect("8 bytes"));
    let len = u16::from_be_bytes([d[36], d[37]]) as usize;
    if HEADER + len != body.len() {
        return Err(WireError::Length);
    }
    Ok(Message {
        header: Header {
            kind,
            flags: d[6],
            slot: u16::from_be_bytes([d[8], d[9]]),
            epoch: be64(12),
            seq: be64(20),
            ack: be64(28),
        },
        records: u16::from_be_bytes([d[38], d[39]]),
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
/// table, 4: the sender's links are up).
pub fn encode_heartbeat(me: &[(u32, PeerState)], config_digest: u64, mac: [u8; 6]) -> Vec<u8> {
    let n = me.len().min(u8::MAX as usize);
    let mut p = Vec::with_capacity(15 + ENTRY * n);
    p.extend_from_slice(&config_digest.to_be_bytes());
    p.extend_from_slice(&mac);
    p.push(n as u8);
    for (id, st) in &me[..n] {
        p.extend_from_slice(&id.to_be_bytes());
        p.push(st.role.to_u8());
        p.push(st.preferred as u8 | (st.in_sync as u8) << 1 | (st.fit as u8) << 2);
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
            let (preferred, in_sync, fit) = (e[5] & 1 != 0, e[5] & 2 != 0, e[5] & 4 != 0);
            Ok((id, PeerState { role, preferred, in_sync, fit, active_ms }))
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
            1 | 2 if p.len() >= SESSION_LEN => {
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
                };
                at += SESSION_LEN;
                if p[0] == 1 { Record::Session(s) } else { Record::SessionDeleted(s) }
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
        }
    }

    fn header(kind: Kind) -> Header {
        Header { kind, flags: 0, slot: 1, epoch: 42, seq: 7, ack: 3 }
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
        let st = |role, preferred, in_sync| PeerState { role, preferred, in_sync, fit: true, active_ms: 7 };
        let me = vec![(1, st(Role::Active, true, false)), (0x0102_0304, st(Role::Standby, false, true))];
        let mac = [2, 0, 0, 0, 0, 0xa1];
        let p = encode_heartbeat(&me, 0x0102_0304_0506_0708, mac);
        let want = [
            1, 2, 3, 4, 5, 6, 7, 8, 2, 0, 0, 0, 0, 0xa1, 2, 0, 0, 0, 1, 2, 5, 0, 0, 0, 7, 1, 2, 3, 4, 1, 6, 0, 0, 0, 7,
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
