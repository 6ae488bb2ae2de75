//! Frame templates for benchmarks: a softwire UDP frame from a B4 and an IPv4 UDP frame
//! from a server, with the fields that vary between flows patched in place.

use dataplane::wire::{checksum, ethernet, ipv4, ipv6, proto};

pub const ENDPOINT: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const SERVER: u32 = 0xcb00_7150; // 203.0.113.80
pub const HOST: u32 = 0xc0a8_010a; // 192.168.1.10
pub const AFTR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
pub const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// B4 number `n` in 2001:db8:b4::/48.
pub fn b4(n: u32) -> [u8; 16] {
    let mut a = [0x20, 0x01, 0x0d, 0xb8, 0xb4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    a[8..12].copy_from_slice(&n.to_be_bytes());
    a[15] = 1;
    a
}

/// Offsets of the fields a benchmark patches.
pub const SW_B4_AT: usize = 14 + 8;
pub const SW_SPORT_AT: usize = 14 + 40 + 20;
pub const IN_DST_AT: usize = 14 + 16;
pub const IN_DPORT_AT: usize = 14 + 20 + 2;

/// Fills in the UDP checksum of the IPv4 packet at `ip` (20-byte header).
pub fn udp_checksum(f: &mut [u8], ip: usize) {
    let (src, dst) = (f[ip + 12..ip + 16].try_into().unwrap(), f[ip + 16..ip + 20].try_into().unwrap());
    let len = u16::from_be_bytes([f[ip + 24], f[ip + 25]]);
    let u = &mut f[ip + 20..];
    u[6] = 0;
    u[7] = 0;
    let c = !checksum::fold(checksum::sum(&u[..len as usize], checksum::pseudo_v4(src, dst, proto::UDP, len)));
    u[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
}

/// Changes the UDP port at `at` (source or destination) keeping the checksum right.
pub fn patch_udp_port(f: &mut [u8], ip: usize, at: usize, port: u16) {
    let old = u16::from_be_bytes([f[at], f[at + 1]]);
    f[at..at + 2].copy_from_slice(&port.to_be_bytes());
    let c = u16::from_be_bytes([f[ip + 26], f[ip + 27]]);
    let n = checksum::adjust_u16(c, old, port);
    f[ip + 26..ip + 28].copy_from_slice(&n.to_be_bytes());
}

/// A softwire frame: Ethernet, IPv6 (B4 -> endpoint), IPv4 (HOST -> SERVER), UDP with
/// `payload` bytes and a correct checksum.
pub fn softwire_udp(b4: &[u8; 16], sport: u16, payload: usize) -> Vec<u8> {
    let ip_len = 20 + 8 + payload;
    let mut f = vec![0u8; 14 + 40 + ip_len];
    ethernet::write_header(&mut f, AFTR_MAC, PEER_MAC, None, ethernet::ETHERTYPE_IPV6);
    ipv6::write_header(&mut f[14..], 0, 0, ip_len as u16, proto::IPV4_IN_IP, 64, b4, &ENDPOINT);
    ipv4::write_header(&mut f[54..], 0, ip_len as u16, 0, ipv4::FLAG_DF, 64, proto::UDP, HOST, SERVER);
    let u = &mut f[74..];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&53u16.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    udp_checksum(&mut f, 54);
    f
}

/// An IPv4 frame from SERVER:53 to `ext`:`port`.
pub fn inbound_udp(ext: u32, port: u16, payload: usize) -> Vec<u8> {
    let ip_len = 20 + 8 + payload;
    let mut f = vec![0u8; 14 + ip_len];
    ethernet::write_header(&mut f, AFTR_MAC, PEER_MAC, None, ethernet::ETHERTYPE_IPV4);
    ipv4::write_header(&mut f[14..], 0, ip_len as u16, 0, ipv4::FLAG_DF, 64, proto::UDP, SERVER, ext);
    let u = &mut f[34..];
    u[0..2].copy_from_slice(&53u16.to_be_bytes());
    u[2..4].copy_from_slice(&port.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    udp_checksum(&mut f, 14);
    f
}
