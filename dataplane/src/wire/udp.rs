//! UDP header (RFC 768).

use super::{WireError, WireResult, get_u16, set_u16};

pub const HEADER_LEN: usize = 8;
pub const CHECKSUM_AT: usize = 6;

/// Checks that `seg` holds a UDP header whose length field fits the segment.
pub fn check(seg: &[u8]) -> WireResult<()> {
    if seg.len() < HEADER_LEN {
        return Err(WireError::Truncated);
    }
    let len = get_u16(seg, 4) as usize;
    if len < HEADER_LEN || len > seg.len() {
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
/// The length field: header and data.
#[inline]
pub fn get_len(seg: &[u8]) -> usize {
    get_u16(seg, 4) as usize
}
#[inline]
pub fn set_len(seg: &mut [u8], len: u16) {
    set_u16(seg, 4, len)
}
/// Stores `c` as it is (0 before a checksum is computed over the segment).
#[inline]
pub fn set_checksum_raw(seg: &mut [u8], c: u16) {
    set_u16(seg, CHECKSUM_AT, c)
}
#[inline]
pub fn checksum(seg: &[u8]) -> u16 {
    get_u16(seg, CHECKSUM_AT)
}
/// Stores an incrementally updated checksum; a UDP checksum of zero means "none" over
/// IPv4, so a computed zero is sent as 0xffff (RFC 768).
#[inline]
pub fn set_checksum(seg: &mut [u8], c: u16) {
    set_u16(seg, CHECKSUM_AT, if c == 0 { 0xffff } else { c })
}
