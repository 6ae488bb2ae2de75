//! Frames built from their fields, with valid checksums, for tests, benchmarks and the
//! fuzz target: an IPv4 packet (UDP, TCP or ICMP echo), a softwire frame carrying it
//! from a B4, an IPv4 frame from the Internet; and the lab's addresses they use by
//! default. Allocates; never used by the packet path.

use crate::config::Ipv4Prefix;
use crate::wire::ethernet::{self, Mac};
use crate::wire::{checksum, ipv4, ipv6, proto};

/// The AFTR's softwire endpoint in the lab: 2001:db8::1.
pub const ENDPOINT: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// The server on the Internet side: 203.0.113.80.
pub const SERVER: u32 = 0xcb00_7150;
/// The host behind every B4: 192.168.1.10.
pub const HOST: u32 = 0xc0a8_010a;
pub const AFTR_MAC: Mac = [2, 0, 0, 0, 0, 1];
pub const PEER_MAC: Mac = [2, 0, 0, 0, 0, 2];
/// The AFTR's pool (the lab's `ds-lite address-group`): 198.51.100.0/24.
pub const POOL: Ipv4Prefix = Ipv4Prefix { addr: 0xc633_6400, len: 24 };

/// B4 number `n` in 2001:db8:b400::/48 (the lab's `remote-ipv6`).
pub fn b4(n: u32) -> [u8; 16] {
    let mut a = [0x20, 0x01, 0x0d, 0xb8, 0xb4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    a[8..12].copy_from_slice(&n.to_be_bytes());
    a[15] = 1;
    a
}

/// The transport of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum L4 {
    Udp,
    Tcp,
    /// ICMP echo: request from the B4 side, reply from the server side; the identifier
    /// is the port.
    Icmp,
}

impl L4 {
    /// The length of the transport header these builders write.
    pub fn header_len(self) -> usize {
        match self {
            L4::Tcp => 20,
            L4::Udp | L4::Icmp => 8,
        }
    }
    /// Where the checksum sits in the transport header.
    pub fn checksum_at(self) -> usize {
        match self {
            L4::Udp => 6,
            L4::Tcp => 16,
            L4::Icmp => 2,
        }
    }
    pub fn proto(self) -> u8 {
        match self {
            L4::Udp => proto::UDP,
            L4::Tcp => proto::TCP,
            L4::Icmp => proto::ICMP,
        }
    }
    pub fn of_proto(p: u8) -> Option<L4> {
        match p {
            proto::UDP => Some(L4::Udp),
            proto::TCP => Some(L4::Tcp),
            proto::ICMP => Some(L4::Icmp),
            _ => None,
        }
    }
}

/// An IPv4 packet (DF set, TTL 64) from `src`:`sport` to `dst`:`dport` carrying
/// `payload`, with correct header and transport checksums. TCP is a data segment of an
/// established connection (ACK, PSH); ICMP is an echo request (`outbound`, identifier
/// `sport`) or reply (identifier `dport`).
pub fn ipv4_packet(l4: L4, src: u32, dst: u32, sport: u16, dport: u16, outbound: bool, payload: &[u8]) -> Vec<u8> {
    let seg_len = l4.header_len() + payload.len();
    let mut p = vec![0u8; 20 + seg_len];
    ipv4::write_header(&mut p, 0, (20 + seg_len) as u16, 0, ipv4::FLAG_DF, 64, l4.proto(), src, dst);
    let s = &mut p[20..];
    match l4 {
        L4::Udp => {
            s[0..2].copy_from_slice(&sport.to_be_bytes());
            s[2..4].copy_from_slice(&dport.to_be_bytes());
            s[4..6].copy_from_slice(&(seg_len as u16).to_be_bytes());
        }
        L4::Tcp => {
            s[0..2].copy_from_slice(&sport.to_be_bytes());
            s[2..4].copy_from_slice(&dport.to_be_bytes());
            s[4..8].copy_from_slice(&1u32.to_be_bytes());
            s[8..12].copy_from_slice(&1u32.to_be_bytes());
            s[12] = 5 << 4;
            s[13] = 0x18; // ACK, PSH: data of an established connection
            s[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
        }
        L4::Icmp => {
            s[0] = if outbound { 8 } else { 0 }; // echo request / echo reply
            let id = if outbound { sport } else { dport };
            s[4..6].copy_from_slice(&id.to_be_bytes());
            s[6..8].copy_from_slice(&1u16.to_be_bytes());
        }
    }
    s[l4.header_len()..].copy_from_slice(payload);
    let c = l4_checksum(&p);
    let at = 20 + l4.checksum_at();
    p[at..at + 2].copy_from_slice(&c.to_be_bytes());
    p
}

/// The transport checksum the IPv4 packet `p` should carry (its field read as zero).
pub fn l4_checksum(p: &[u8]) -> u16 {
    let hl = ((p[0] & 0x0f) as usize) * 4;
    let proto = p[9];
    let seg = &p[hl..];
    let Some(l4) = L4::of_proto(proto) else { return 0 };
    let at = l4.checksum_at();
    let initial = match l4 {
        L4::Icmp => 0,
        _ => checksum::pseudo_v4(p[12..16].try_into().unwrap(), p[16..20].try_into().unwrap(), proto, seg.len() as u16),
    };
    // The sum without the checksum field.
    let s = checksum::sum(&seg[at + 2..], checksum::sum(&seg[..at], initial));
    let c = !checksum::fold(s);
    if c == 0 && l4 == L4::Udp { 0xffff } else { c }
}

/// An Ethernet frame carrying the IPv4 packet `inner` in IPv6 from `b4` to the AFTR
/// endpoint `aftr` (RFC 6333 softwire, hop limit 64, no extension headers).
pub fn softwire_frame(dst_mac: Mac, src_mac: Mac, b4: &[u8; 16], aftr: &[u8; 16], inner: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + ipv6::HEADER_LEN + inner.len()];
    ethernet::write_header(&mut f, dst_mac, src_mac, None, ethernet::ETHERTYPE_IPV6);
    ipv6::write_header(&mut f[14..], 0, 0, inner.len() as u16, proto::IPV4_IN_IP, 64, b4, aftr);
    f[14 + ipv6::HEADER_LEN..].copy_from_slice(inner);
    f
}

/// An Ethernet frame carrying the IPv4 packet `packet`.
pub fn ipv4_frame(dst_mac: Mac, src_mac: Mac, packet: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + packet.len()];
    ethernet::write_header(&mut f, dst_mac, src_mac, None, ethernet::ETHERTYPE_IPV4);
    f[14..].copy_from_slice(packet);
    f
}

/// A softwire UDP frame from B4 number `b4n` of the lab, its host's port `sport` to the
/// server's port 53, towards the lab's endpoint.
pub fn softwire_udp(b4n: u32, sport: u16, payload: &[u8]) -> Vec<u8> {
    let inner = ipv4_packet(L4::Udp, HOST, SERVER, sport, 53, true, payload);
    softwire_frame(AFTR_MAC, PEER_MAC, &b4(b4n), &ENDPOINT, &inner)
}

/// An IPv4 UDP frame from the lab's server port 53 to the mapping `ext`:`port`: the
/// reply to [`softwire_udp`] once translated.
pub fn ipv4_udp_reply(ext: u32, port: u16, payload: &[u8]) -> Vec<u8> {
    ipv4_frame(AFTR_MAC, PEER_MAC, &ipv4_packet(L4::Udp, SERVER, ext, 53, port, false, payload))
}

/// Byte ranges `0..cuts[0]`, `cuts[0]..cuts[1]`, ..., `..len`.
fn pieces(cuts: &[usize], len: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    let ends = cuts.iter().copied().filter(move |&c| c < len).chain([len]);
    std::iter::once(0).chain(cuts.iter().copied().filter(move |&c| c < len)).zip(ends)
}

/// The softwire frame `frame` (no extension headers) as IPv6 fragments of its inner
/// packet, cut at `cuts` (multiples of 8), identification `ident` (RFC 8200 section 4.5).
pub fn softwire_fragments(frame: &[u8], cuts: &[usize], ident: u32) -> Vec<Vec<u8>> {
    let (head, inner) = frame.split_at(14 + ipv6::HEADER_LEN);
    pieces(cuts, inner.len())
        .map(|(a, b)| {
            let mut f = head.to_vec();
            f[14 + 4..14 + 6].copy_from_slice(&((ipv6::FRAG_HEADER_LEN + b - a) as u16).to_be_bytes());
            f[14 + 6] = proto::IPV6_FRAG;
            let mut fh = [0u8; ipv6::FRAG_HEADER_LEN];
            ipv6::write_frag_header(&mut fh, proto::IPV4_IN_IP, a, b < inner.len(), ident);
            f.extend_from_slice(&fh);
            f.extend_from_slice(&inner[a..b]);
            f
        })
        .collect()
}

/// The IPv4 frame `frame` (20-byte header) as fragments of its payload, cut at `cuts`
/// (multiples of 8), identification `ident`, DF cleared, header checksums right.
pub fn ipv4_fragments(frame: &[u8], cuts: &[usize], ident: u16) -> Vec<Vec<u8>> {
    let (eth, ip) = frame.split_at(14);
    let payload = &ip[20..];
    let (tos, ttl, protocol) = (ip[1], ip[8], ip[9]);
    let (src, dst) =
        (u32::from_be_bytes(ip[12..16].try_into().unwrap()), u32::from_be_bytes(ip[16..20].try_into().unwrap()));
    pieces(cuts, payload.len())
        .map(|(a, b)| {
            let mut f = eth.to_vec();
            let mut h = [0u8; 20];
            let mf = if b < payload.len() { ipv4::FLAG_MF } else { 0 };
            ipv4::write_header(&mut h, tos, (20 + b - a) as u16, ident, mf | (a / 8) as u16, ttl, protocol, src, dst);
            f.extend_from_slice(&h);
            f.extend_from_slice(&payload[a..b]);
            f
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_fields_and_valid_checksums() {
        let s = softwire_udp(3, 4242, &[7; 10]);
        assert_eq!(s.len(), 14 + 40 + 20 + 8 + 10);
        assert_eq!((&s[22..38], &s[38..54]), (&b4(3)[..], &ENDPOINT[..]));
        let ip = &s[54..];
        assert_eq!(checksum::checksum(&ip[..20]), 0);
        assert_eq!(u16::from_be_bytes([ip[26], ip[27]]), l4_checksum(ip));
        assert_eq!(&ip[20..24], &[0x10, 0x92, 0, 53]);
        let r = ipv4_udp_reply(0xc633_6401, 1024, &[]);
        assert_eq!(&r[14 + 16..14 + 20], &[198, 51, 100, 1]);
        assert_eq!(u16::from_be_bytes([r[14 + 26], r[14 + 27]]), l4_checksum(&r[14..]));
    }

    #[test]
    fn fragments_carry_the_packet_in_pieces() {
        let s = softwire_udp(1, 4242, &[5; 100]);
        let f = softwire_fragments(&s, &[64], 9);
        assert_eq!(f.len(), 2);
        assert_eq!(&f[0][14 + 40..14 + 48], &[4, 0, 0, 1, 0, 0, 0, 9]);
        assert_eq!(&f[1][14 + 40..14 + 48], &[4, 0, 0, 64, 0, 0, 0, 9]);
        assert_eq!([&f[0][14 + 48..], &f[1][14 + 48..]].concat(), &s[54..]);
        let r = ipv4_udp_reply(0xc633_6401, 1024, &[3; 100]);
        let f = ipv4_fragments(&r, &[64, 200], 7);
        assert_eq!(f.len(), 2, "a cut past the end is none");
        assert_eq!((&f[0][14 + 4..14 + 8], &f[1][14 + 4..14 + 8]), (&[0, 7, 0x20, 0][..], &[0, 7, 0, 8][..]));
        assert_eq!(checksum::checksum(&f[1][14..34]), 0);
        assert_eq!([&f[0][34..], &f[1][34..]].concat(), &r[34..]);
    }
}
