//! Zero-copy views over packet bytes, one file per protocol.
//!
//! Each view (`Ipv4Packet`, `Ipv6Packet`, ...) wraps a buffer, validates lengths once in
//! `new_checked`, and then offers infallible getters and, over mutable buffers, setters.
//! The hot path uses these views in place; tests build packets with an independent
//! library (etherparse) and compare bytes.

pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod pcp;
pub mod tcp;
pub mod udp;

/// Why a buffer is not a valid packet of the expected kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("buffer shorter than the header")]
    Truncated,
    #[error("a length field disagrees with the buffer")]
    BadLength,
    #[error("wrong version")]
    BadVersion,
    #[error("header checksum is wrong")]
    BadChecksum,
    #[error("extension header chain is malformed or too long")]
    BadExtension,
}

pub type WireResult<T> = Result<T, WireError>;

#[inline]
pub(crate) fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
pub(crate) fn set_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// IP protocol numbers used by the engine.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const IPV4_IN_IP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6_ROUTE: u8 = 43;
    pub const IPV6_FRAG: u8 = 44;
    pub const ICMPV6: u8 = 58;
    pub const IPV6_NONXT: u8 = 59;
    pub const IPV6_OPTS: u8 = 60;
    pub const IPV6_HOPOPTS: u8 = 0;
}
