//! ICMPv4 (RFC 792) and ICMPv6 (RFC 4443): the first 8 bytes are laid out alike.

use super::{WireError, WireResult, get_u16, set_u16};

pub const HEADER_LEN: usize = 8;
pub const CHECKSUM_AT: usize = 2;

pub mod v4 {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACH: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAM_PROBLEM: u8 = 12;
    pub const SOURCE_QUENCH: u8 = 4;
    pub const CODE_HOST_UNREACH: u8 = 1;
    pub const CODE_PORT_UNREACH: u8 = 3;
    pub const CODE_FRAG_NEEDED: u8 = 4;
    pub const CODE_ADMIN_PROHIBITED: u8 = 13;
}

pub mod v6 {
    pub const DEST_UNREACH: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
}

pub fn check(msg: &[u8]) -> WireResult<()> {
    if msg.len() < HEADER_LEN {
        return Err(WireError::Truncated);
    }
    Ok(())
}

#[inline]
pub fn msg_type(m: &[u8]) -> u8 {
    m[0]
}
#[inline]
pub fn code(m: &[u8]) -> u8 {
    m[1]
}
#[inline]
pub fn checksum(m: &[u8]) -> u16 {
    get_u16(m, CHECKSUM_AT)
}
#[inline]
pub fn set_checksum(m: &mut [u8], c: u16) {
    set_u16(m, CHECKSUM_AT, c)
}
/// Echo identifier: the "port" of an ICMP query (RFC 5508 section 3.1).
#[inline]
pub fn echo_ident(m: &[u8]) -> u16 {
    get_u16(m, 4)
}
#[inline]
pub fn set_echo_ident(m: &mut [u8], id: u16) {
    set_u16(m, 4, id)
}
/// The 32-bit field after the checksum (MTU of Packet Too Big, next-hop MTU of 3/4).
#[inline]
pub fn rest_of_header(m: &[u8]) -> u32 {
    super::get_u32(m, 4)
}

/// Is this ICMPv4 type an error that carries the offending packet (RFC 5508 section 3.2)?
pub fn v4_is_error(t: u8) -> bool {
    matches!(t, v4::DEST_UNREACH | v4::TIME_EXCEEDED | v4::PARAM_PROBLEM | v4::SOURCE_QUENCH)
}
