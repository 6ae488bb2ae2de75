//! TCP header (RFC 9293): ports, flags, and the MSS option (clamped per RFC 6908).

use super::checksum;
use super::{WireError, WireResult, get_u16, set_u16};

pub const MIN_HEADER_LEN: usize = 20;
pub const CHECKSUM_AT: usize = 16;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

/// Checks that `seg` holds the whole TCP header, options included. A non-first fragment
/// never reaches here.
pub fn check(seg: &[u8]) -> WireResult<()> {
    if seg.len() < MIN_HEADER_LEN {
        return Err(WireError::Truncated);
    }
    let hl = header_len(seg);
    if hl < MIN_HEADER_LEN || hl > seg.len() {
        return Err(WireError::BadLength);
    }
    Ok(())
}

#[inline]
pub fn src_port(seg: &[u8]) -> u16 {
    get_u16(seg, 0)
}
#[inline]
pub fn dst_port(seg: &[u8]) -> u16 {
    get_u16(seg, 2)
}
#[inline]
pub fn set_src_port(seg: &mut [u8], p: u16) {
    set_u16(seg, 0, p)
}
#[inline]
pub fn set_dst_port(seg: &mut [u8], p: u16) {
    set_u16(seg, 2, p)
}
#[inline]
pub fn header_len(seg: &[u8]) -> usize {
    ((seg[12] >> 4) as usize) * 4
}
#[inline]
pub fn flags(seg: &[u8]) -> u8 {
    seg[13]
}
#[inline]
pub fn checksum(seg: &[u8]) -> u16 {
    get_u16(seg, CHECKSUM_AT)
}
#[inline]
pub fn set_checksum(seg: &mut [u8], c: u16) {
    set_u16(seg, CHECKSUM_AT, c)
}

/// Lowers the MSS option of a SYN to `max` if it is larger, fixing the checksum
/// (RFC 6908 section 4 / RFC 4459). Returns true if the segment was changed. Malformed
/// options are left alone: the end host judges them.
pub fn clamp_mss(seg: &mut [u8], max: u16) -> bool {
    let hl = header_len(seg);
    let mut i = MIN_HEADER_LEN;
    while i < hl {
        match seg[i] {
            0 => return false,
            1 => i += 1,
            kind => {
                if i + 1 >= hl {
                    return false;
                }
                let len = seg[i + 1] as usize;
                if len < 2 || i + len > hl {
                    return false;
                }
                if kind == 2 && len == 4 {
                    let at = i + 2;
                    let mss = get_u16(seg, at);
                    if mss <= max {
                        return false;
                    }
                    // The value may sit at an odd offset: adjust over the aligned words
                    // that contain it.
                    let start = at & !1;
                    let end = (at + 2 + 1) & !1;
                    let mut old = [0u8; 4];
                    let n = end - start;
                    old[..n].copy_from_slice(&seg[start..end]);
                    set_u16(seg, at, max);
                    let c = checksum::adjust_bytes(checksum(seg), &old[..n], &seg[start..end]);
                    set_checksum(seg, c);
                    return true;
                }
                i += len;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syn(options: &[u8]) -> Vec<u8> {
        let hl = MIN_HEADER_LEN + options.len();
        let mut s = vec![0u8; hl];
        s[0..2].copy_from_slice(&1234u16.to_be_bytes());
        s[2..4].copy_from_slice(&80u16.to_be_bytes());
        s[12] = ((hl / 4) as u8) << 4;
        s[13] = SYN;
        s[MIN_HEADER_LEN..].copy_from_slice(options);
        let c = checksum::checksum(&s);
        set_checksum(&mut s, c);
        s
    }

    #[test]
    fn clamps_aligned_and_unaligned_mss() {
        for opts in [&[2, 4, 0x05, 0xb4, 1, 1, 1, 0][..], &[1, 2, 4, 0x05, 0xb4, 1, 1, 0][..]] {
            let mut s = syn(opts);
            assert!(clamp_mss(&mut s, 1420));
            let at = if opts[0] == 2 { 22 } else { 23 };
            assert_eq!(get_u16(&s, at), 1420);
            let c = checksum(&s);
            s[16] = 0;
            s[17] = 0;
            assert_eq!(checksum::checksum(&s), c);
        }
    }

    #[test]
    fn leaves_small_or_malformed_alone() {
        let mut s = syn(&[2, 4, 0x04, 0x00]);
        assert!(!clamp_mss(&mut s, 1420));
        let mut s = syn(&[3, 9, 0, 0]);
        assert!(!clamp_mss(&mut s, 1420));
        let mut s = syn(&[3, 0, 0, 0]);
        assert!(!clamp_mss(&mut s, 1420));
    }
}
