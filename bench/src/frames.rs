//! The addresses of the benchmarks' traffic (frames are built by `crate::generator`):
//! the defaults of `generator::Addresses`, which `dslite-gen` can change.

use dataplane::config::Ipv4Prefix;

pub const ENDPOINT: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const SERVER: u32 = 0xcb00_7150; // 203.0.113.80
pub const HOST: u32 = 0xc0a8_010a; // 192.168.1.10
pub const AFTR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
pub const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
/// The AFTR's pool (the benchmarks' `ds-lite address-group`).
pub const POOL: Ipv4Prefix = Ipv4Prefix { addr: 0xc633_6400, len: 24 }; // 198.51.100.0/24

/// B4 number `n` in 2001:db8:b400::/48 (the benchmarks' `remote-ipv6`).
pub fn b4(n: u32) -> [u8; 16] {
    let mut a = [0x20, 0x01, 0x0d, 0xb8, 0xb4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    a[8..12].copy_from_slice(&n.to_be_bytes());
    a[15] = 1;
    a
}
