//! IPv6 header view (RFC 8200) and the walk over its extension headers.

use super::{WireError, WireResult, get_u16, get_u32, proto, set_u16, set_u32};

pub const HEADER_LEN: usize = 40;
pub const FRAG_HEADER_LEN: usize = 8;
/// The smallest MTU of any IPv6 link (RFC 8200 section 5).
pub const MIN_MTU: usize = 1280;
/// Extension headers skipped before giving up (a hostile chain could be long).
const MAX_EXTENSIONS: usize = 8;

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// A view over an IPv6 packet whose payload length has been checked against the buffer.
#[derive(Debug)]
pub struct Ipv6Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub fn new_checked(buf: T) -> WireResult<Self> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(WireError::BadVersion);
        }
        if HEADER_LEN + get_u16(b, field::PAYLOAD_LEN) as usize > b.len() {
            return Err(WireError::BadLength);
        }
        Ok(Ipv6Packet { buf })
    }
    pub fn new_unchecked(buf: T) -> Self {
        Ipv6Packet { buf }
    }
    #[inline]
    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (get_u16(self.b(), field::VER_TC_FLOW) >> 4) as u8
    }
    #[inline]
    pub fn flow_label(&self) -> u32 {
        get_u32(self.b(), field::VER_TC_FLOW) & 0x000f_ffff
    }
    #[inline]
    pub fn payload_len(&self) -> usize {
        get_u16(self.b(), field::PAYLOAD_LEN) as usize
    }
    #[inline]
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.b()[field::NEXT_HEADER]
    }
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.b()[field::HOP_LIMIT]
    }
    #[inline]
    pub fn src(&self) -> [u8; 16] {
        self.b()[field::SRC..field::SRC + 16].try_into().unwrap()
    }
    #[inline]
    pub fn dst(&self) -> [u8; 16] {
        self.b()[field::DST..field::DST + 16].try_into().unwrap()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    pub fn set_payload_len(&mut self, len: u16) {
        set_u16(self.buf.as_mut(), field::PAYLOAD_LEN, len)
    }
    pub fn set_next_header(&mut self, nh: u8) {
        self.buf.as_mut()[field::NEXT_HEADER] = nh
    }
    pub fn set_hop_limit(&mut self, h: u8) {
        self.buf.as_mut()[field::HOP_LIMIT] = h
    }
}

/// Writes a 40-byte IPv6 header at the start of `buf`.
pub fn write_header(
    buf: &mut [u8],
    traffic_class: u8,
    flow_label: u32,
    payload_len: u16,
    next_header: u8,
    hop_limit: u8,
    src: &[u8; 16],
    dst: &[u8; 16],
) {
    set_u32(buf, field::VER_TC_FLOW, (6 << 28) | ((traffic_class as u32) << 20) | (flow_label & 0x000f_ffff));
    set_u16(buf, field::PAYLOAD_LEN, payload_len);
    buf[field::NEXT_HEADER] = next_header;
    buf[field::HOP_LIMIT] = hop_limit;
    buf[field::SRC..field::SRC + 16].copy_from_slice(src);
    buf[field::DST..field::DST + 16].copy_from_slice(dst);
}

/// What a Fragment header says (RFC 8200 section 4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragInfo {
    /// Offset of the Fragment header from the start of the IPv6 header.
    pub header_offset: usize,
    /// Fragment offset in bytes.
    pub offset: usize,
    pub more: bool,
    pub ident: u32,
}

/// Where the upper-layer header starts after the extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upper {
    pub protocol: u8,
    /// Offset of the upper-layer header from the start of the IPv6 header.
    pub offset: usize,
    /// Offset of the byte holding `protocol` (to rewrite the chain when a header goes).
    pub next_header_at: usize,
    pub frag: Option<FragInfo>,
}

/// Walks Hop-by-Hop, Routing, Destination Options and Fragment headers of a checked packet
/// (`pkt` ends at the IPv6 total length). After a non-first fragment the upper header is
/// not present: `offset` then points at fragment data. A first fragment must hold the
/// whole chain up to the upper-layer header (RFC 8200 section 4.5, RFC 7112), else
/// `Truncated`.
pub fn walk(pkt: &[u8]) -> WireResult<Upper> {
    walk_from(pkt, false)
}

/// Walks the headers of a packet rebuilt from fragments: an IPv6 header whose next
/// header is the one the first fragment's Fragment header named, then the fragmentable
/// part. A Hop-by-Hop header (it must follow the IPv6 header, RFC 8200 section 4.1) or a
/// second Fragment header there is `BadExtension`.
pub fn walk_reassembled(pkt: &[u8]) -> WireResult<Upper> {
    walk_from(pkt, true)
}

fn walk_from(pkt: &[u8], reassembled: bool) -> WireResult<Upper> {
    let mut nh = pkt[field::NEXT_HEADER];
    let mut at = HEADER_LEN;
    let mut nh_at = field::NEXT_HEADER;
    let mut frag = None;
    for _ in 0..MAX_EXTENSIONS {
        match nh {
            proto::IPV6_HOPOPTS | proto::IPV6_ROUTE | proto::IPV6_OPTS => {
                // RFC 8200 section 4.3: Hop-by-Hop must come first.
                if nh == proto::IPV6_HOPOPTS && (at != HEADER_LEN || reassembled) {
                    return Err(WireError::BadExtension);
                }
                if pkt.len() < at + 8 {
                    return Err(WireError::Truncated);
                }
                // RFC 8200 section 4.4: with segments left, this node is not the
                // packet's destination, and it routes by no routing type.
                if nh == proto::IPV6_ROUTE && pkt[at + 3] != 0 {
                    return Err(WireError::BadExtension);
                }
                let len = (pkt[at + 1] as usize + 1) * 8;
                if pkt.len() < at + len {
                    return Err(WireError::Truncated);
                }
                nh_at = at;
                nh = pkt[at];
                at += len;
            }
            proto::IPV6_FRAG => {
                if frag.is_some() || reassembled {
                    return Err(WireError::BadExtension);
                }
                if pkt.len() < at + FRAG_HEADER_LEN {
                    return Err(WireError::Truncated);
                }
                let off_flags = get_u16(pkt, at + 2);
                frag = Some(FragInfo {
                    header_offset: at,
                    offset: (off_flags & 0xfff8) as usize,
                    more: off_flags & 1 != 0,
                    ident: get_u32(pkt, at + 4),
                });
                nh_at = at;
                nh = pkt[at];
                at += FRAG_HEADER_LEN;
                if let Some(f) = frag
                    && f.offset != 0
                {
                    // Later headers are inside the first fragment.
                    return Ok(Upper { protocol: nh, offset: at, next_header_at: nh_at, frag });
                }
            }
            _ => return Ok(Upper { protocol: nh, offset: at, next_header_at: nh_at, frag }),
        }
    }
    Err(WireError::BadExtension)
}

/// Writes a Fragment header at the start of `buf`.
pub fn write_frag_header(buf: &mut [u8], next_header: u8, offset: usize, more: bool, ident: u32) {
    buf[0] = next_header;
    buf[1] = 0;
    set_u16(buf, 2, (offset as u16 & 0xfff8) | more as u16);
    set_u32(buf, 4, ident);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(nh: u8, ext: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; HEADER_LEN];
        write_header(
            &mut v,
            0x20,
            0x12345,
            (ext.len() + payload.len()) as u16,
            nh,
            64,
            &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        );
        v.extend_from_slice(ext);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn header_fields() {
        let v = packet(4, &[], &[0; 20]);
        let p = Ipv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(
            (p.traffic_class(), p.flow_label(), p.payload_len(), p.next_header(), p.hop_limit()),
            (0x20, 0x12345, 20, 4, 64)
        );
        assert_eq!(walk(&v).unwrap(), Upper { protocol: 4, offset: 40, next_header_at: 6, frag: None });
        assert_eq!(Ipv6Packet::new_checked(&v[..59]).unwrap_err(), WireError::BadLength);
    }

    #[test]
    fn skips_options_and_reads_fragment_header() {
        // Hop-by-Hop (8 bytes, PadN) -> Destination Options (16 bytes) -> Fragment -> IPv4.
        let mut ext = vec![proto::IPV6_OPTS, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(&[proto::IPV6_FRAG, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut fh = [0u8; 8];
        write_frag_header(&mut fh, 4, 0, true, 0xdeadbeef);
        ext.extend_from_slice(&fh);
        let v = packet(proto::IPV6_HOPOPTS, &ext, &[0x45; 24]);
        let u = walk(&v).unwrap();
        assert_eq!(u.protocol, 4);
        assert_eq!(u.offset, 40 + 8 + 16 + 8);
        assert_eq!(u.frag, Some(FragInfo { header_offset: 64, offset: 0, more: true, ident: 0xdeadbeef }));
    }

    #[test]
    fn rejects_hostile_chains() {
        // Hop-by-Hop not first.
        let v = packet(proto::IPV6_OPTS, &[proto::IPV6_HOPOPTS, 0, 1, 4, 0, 0, 0, 0, 4, 0, 1, 4, 0, 0, 0, 0], &[]);
        assert_eq!(walk(&v).unwrap_err(), WireError::BadExtension);
        // Options header running past the end.
        let v = packet(proto::IPV6_OPTS, &[4, 3, 1, 4, 0, 0, 0, 0], &[]);
        assert_eq!(walk(&v).unwrap_err(), WireError::Truncated);
        // An endless chain of destination options.
        let ext: Vec<u8> = (0..10).flat_map(|_| [proto::IPV6_OPTS, 0, 1, 4, 0, 0, 0, 0]).collect();
        let v = packet(proto::IPV6_OPTS, &ext, &[]);
        assert_eq!(walk(&v).unwrap_err(), WireError::BadExtension);
        // A Routing header with segments left: not this node's packet.
        let v = packet(proto::IPV6_ROUTE, &[4, 0, 4, 1, 0, 0, 0, 0], &[]);
        assert_eq!(walk(&v).unwrap_err(), WireError::BadExtension);
        let v = packet(proto::IPV6_ROUTE, &[4, 0, 4, 0, 0, 0, 0, 0], &[0x45; 20]);
        assert_eq!(walk(&v).unwrap().offset, 48);
    }

    #[test]
    fn the_chain_of_a_first_fragment_goes_on_after_the_fragment_header() {
        // Fragment (offset 0, more) -> Destination Options (8 bytes) -> IPv4.
        let mut fh = [0u8; 8];
        write_frag_header(&mut fh, proto::IPV6_OPTS, 0, true, 7);
        let mut ext = fh.to_vec();
        ext.extend_from_slice(&[4, 0, 1, 4, 0, 0, 0, 0]);
        let v = packet(proto::IPV6_FRAG, &ext, &[0x45; 24]);
        let u = walk(&v).unwrap();
        assert_eq!((u.protocol, u.offset, u.next_header_at), (4, 56, 48));
        // Cut inside the Destination Options: the chain is not whole (RFC 7112).
        assert_eq!(walk(&v[..52]).unwrap_err(), WireError::Truncated);
    }

    #[test]
    fn a_reassembled_packet_has_no_hop_by_hop_nor_fragment_header() {
        let v = packet(proto::IPV6_OPTS, &[4, 0, 1, 4, 0, 0, 0, 0], &[0x45; 20]);
        assert_eq!(walk_reassembled(&v).unwrap(), Upper { protocol: 4, offset: 48, next_header_at: 40, frag: None });
        for nh in [proto::IPV6_HOPOPTS, proto::IPV6_FRAG] {
            let v = packet(nh, &[4, 0, 0, 0, 0, 0, 0, 0], &[0x45; 20]);
            assert_eq!(walk_reassembled(&v).unwrap_err(), WireError::BadExtension);
            assert!(walk(&v).is_ok());
        }
    }
}
