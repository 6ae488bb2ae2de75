//! IPv4 header view (RFC 791), options included.

use super::checksum;
use super::{WireError, WireResult, get_u16, get_u32, set_u16, set_u32};

pub const MIN_HEADER_LEN: usize = 20;

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTO: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

pub const FLAG_DF: u16 = 0x4000;
pub const FLAG_MF: u16 = 0x2000;

/// A view over an IPv4 packet whose header and total length have been checked against
/// the buffer. The buffer may be longer than the packet (Ethernet padding).
#[derive(Debug)]
pub struct Ipv4Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Checks version, header length and total length; does not verify the checksum.
    pub fn new_checked(buf: T) -> WireResult<Self> {
        let b = buf.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(WireError::BadVersion);
        }
        let ihl = ((b[field::VER_IHL] & 0x0f) as usize) * 4;
        let total = get_u16(b, field::LEN) as usize;
        if ihl < MIN_HEADER_LEN || total < ihl || total > b.len() {
            return Err(WireError::BadLength);
        }
        Ok(Ipv4Packet { buf })
    }

    pub fn new_unchecked(buf: T) -> Self {
        Ipv4Packet { buf }
    }

    #[inline]
    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    #[inline]
    pub fn header_len(&self) -> usize {
        ((self.b()[field::VER_IHL] & 0x0f) as usize) * 4
    }
    #[inline]
    pub fn tos(&self) -> u8 {
        self.b()[field::TOS]
    }
    #[inline]
    pub fn total_len(&self) -> usize {
        get_u16(self.b(), field::LEN) as usize
    }
    #[inline]
    pub fn ident(&self) -> u16 {
        get_u16(self.b(), field::IDENT)
    }
    #[inline]
    pub fn dont_frag(&self) -> bool {
        get_u16(self.b(), field::FLAGS_FRAG) & FLAG_DF != 0
    }
    #[inline]
    pub fn more_frags(&self) -> bool {
        get_u16(self.b(), field::FLAGS_FRAG) & FLAG_MF != 0
    }
    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> usize {
        ((get_u16(self.b(), field::FLAGS_FRAG) & 0x1fff) as usize) * 8
    }
    #[inline]
    pub fn is_fragment(&self) -> bool {
        get_u16(self.b(), field::FLAGS_FRAG) & (FLAG_MF | 0x1fff) != 0
    }
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.b()[field::TTL]
    }
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.b()[field::PROTO]
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.b(), field::CHECKSUM)
    }
    #[inline]
    pub fn src(&self) -> u32 {
        get_u32(self.b(), field::SRC)
    }
    #[inline]
    pub fn dst(&self) -> u32 {
        get_u32(self.b(), field::DST)
    }
    /// True when the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let b = self.b();
        if self.header_len() == MIN_HEADER_LEN {
            // The common header without options: five 32-bit words.
            let w = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as u64;
            let acc = w(0) + w(4) + w(8) + w(12) + w(16);
            let acc = (acc & 0xffff_ffff) + (acc >> 32);
            let acc = (acc & 0xffff) + (acc >> 16);
            let acc = (acc & 0xffff) + (acc >> 16);
            let acc = (acc & 0xffff) + (acc >> 16);
            return acc == 0xffff;
        }
        checksum::fold(checksum::sum(&b[..self.header_len()], 0)) == 0xffff
    }
    /// The payload (after options, up to total length).
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..self.total_len()]
    }
    pub fn into_inner(self) -> T {
        self.buf
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    #[inline]
    fn bm(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.bm(), field::CHECKSUM, v)
    }
    /// Rewrites the source address, fixing the header checksum incrementally.
    pub fn set_src_adjust(&mut self, new: u32) {
        let old = self.src();
        let c = checksum::adjust_u32(self.checksum(), old, new);
        set_u32(self.bm(), field::SRC, new);
        self.set_checksum(c);
    }
    /// Rewrites the destination address, fixing the header checksum incrementally.
    pub fn set_dst_adjust(&mut self, new: u32) {
        let old = self.dst();
        let c = checksum::adjust_u32(self.checksum(), old, new);
        set_u32(self.bm(), field::DST, new);
        self.set_checksum(c);
    }
    /// Rewrites the identification, fixing the header checksum incrementally.
    pub fn set_ident_adjust(&mut self, new: u16) {
        let old = self.ident();
        let c = checksum::adjust_u16(self.checksum(), old, new);
        set_u16(self.bm(), field::IDENT, new);
        self.set_checksum(c);
    }
    /// Decrements TTL by one, fixing the checksum: the TTL is the high byte of a 16-bit
    /// word, so the checksum goes up by 0x0100 with end-around carry (RFC 1141, with
    /// RFC 1624's care: the result is never rewritten from 0xffff to 0).
    #[inline]
    pub fn decrement_ttl(&mut self) {
        let ttl = self.ttl();
        self.bm()[field::TTL] = ttl.wrapping_sub(1);
        let c = self.checksum() as u32 + 0x0100;
        self.set_checksum((c + (c >> 16)) as u16);
    }
    /// Sets TOS fixing the checksum (TOS is the low byte of word 0).
    pub fn set_tos_adjust(&mut self, tos: u8) {
        let old = get_u16(self.b(), 0);
        self.bm()[field::TOS] = tos;
        let new = get_u16(self.b(), 0);
        let c = checksum::adjust_u16(self.checksum(), old, new);
        self.set_checksum(c);
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), self.total_len());
        &mut self.bm()[h..t]
    }
    pub fn as_mut_bytes(&mut self) -> &mut [u8] {
        self.bm()
    }
}

/// Writes a 20-byte IPv4 header without options at the start of `buf`, checksum included.
#[allow(clippy::too_many_arguments)]
pub fn write_header(
    buf: &mut [u8],
    tos: u8,
    total_len: u16,
    ident: u16,
    flags_frag: u16,
    ttl: u8,
    proto: u8,
    src: u32,
    dst: u32,
) {
    buf[field::VER_IHL] = 0x45;
    buf[field::TOS] = tos;
    set_u16(buf, field::LEN, total_len);
    set_u16(buf, field::IDENT, ident);
    set_u16(buf, field::FLAGS_FRAG, flags_frag);
    buf[field::TTL] = ttl;
    buf[field::PROTO] = proto;
    set_u16(buf, field::CHECKSUM, 0);
    set_u32(buf, field::SRC, src);
    set_u32(buf, field::DST, dst);
    let c = checksum::checksum(&buf[..MIN_HEADER_LEN]);
    set_u16(buf, field::CHECKSUM, c);
}

/// True for RFC 1918 private space and 192.0.0.0/29 (RFC 6333 section 5.7): the inner
/// sources a B4 normally uses.
pub fn is_private_or_b4(addr: u32) -> bool {
    (addr >> 24) == 10 || (addr >> 20) == 0xac1 || (addr >> 16) == 0xc0a8 || (addr >> 3) == (0xc000_0000 >> 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A 20-byte header: 10.0.0.1 -> 198.51.100.7, UDP, TTL 64, DF, id 0x1234.
    const HDR: [u8; 20] =
        [0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 10, 0, 0, 1, 198, 51, 100, 7];

    fn with_checksum() -> [u8; 28] {
        let mut b = [0u8; 28];
        b[..20].copy_from_slice(&HDR);
        let c = checksum::checksum(&b[..20]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        b
    }

    #[test]
    fn fields() {
        let b = with_checksum();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!((p.ttl(), p.protocol()), (64, 17));
        assert_eq!(p.src(), 0x0a000001);
        assert_eq!(p.dst(), 0xc6336407);
        assert!(p.verify_checksum());
    }

    #[test]
    fn rejects_bad_lengths() {
        let mut b = with_checksum();
        assert_eq!(Ipv4Packet::new_checked(&b[..19]).unwrap_err(), WireError::Truncated);
        b[0] = 0x44;
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), WireError::BadLength);
        b[0] = 0x65;
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), WireError::BadVersion);
        b[0] = 0x45;
        b[3] = 29;
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), WireError::BadLength);
    }

    #[test]
    fn incremental_rewrites_match_full_checksum() {
        let mut b = with_checksum();
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_src_adjust(0xcb007101);
        p.decrement_ttl();
        p.set_dst_adjust(0x0a0a0a0a);
        p.set_tos_adjust(0xb8);
        assert!(p.verify_checksum());
        let mut again = b;
        again[10] = 0;
        again[11] = 0;
        assert_eq!(checksum::checksum(&again[..20]).to_be_bytes(), [b[10], b[11]]);
    }

    #[test]
    fn ttl_decrement_matches_full_checksum_for_every_start() {
        // Every TTL and every checksum start value, against a recomputation.
        for ttl in 1..=255u8 {
            for seed in [0u16, 1, 0xfeff, 0xff00, 0xffff, 0x1234] {
                let mut b = with_checksum();
                b[8] = ttl;
                b[4..6].copy_from_slice(&seed.to_be_bytes());
                b[10] = 0;
                b[11] = 0;
                let c = checksum::checksum(&b[..20]);
                b[10..12].copy_from_slice(&c.to_be_bytes());
                let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
                p.decrement_ttl();
                assert!(p.verify_checksum(), "ttl {ttl} seed {seed:#x}");
                assert!(Ipv4Packet::new_unchecked(&b[..]).verify_checksum());
            }
        }
    }

    #[test]
    fn private_space() {
        for a in [0x0a000001u32, 0xac100001, 0xac1fffff, 0xc0a80101, 0xc0000002] {
            assert!(is_private_or_b4(a), "{a:#x}");
        }
        for a in [0x08080808u32, 0xac200000, 0xc0000008, 0xcb007101] {
            assert!(!is_private_or_b4(a), "{a:#x}");
        }
    }
}
