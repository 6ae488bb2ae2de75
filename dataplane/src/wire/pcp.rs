//! Port Control Protocol messages (RFC 6887 sections 7, 11, 12 and 13): a request as the
//! server reads it, and the response it writes. Slow path: PCP requests are few (one per
//! mapping and renewal), so this module favours plain code over speed, but it allocates
//! nothing and never panics on any input.

use super::{get_u16, get_u32, set_u16, set_u32};

/// The server's UDP port (RFC 6887 section 19.1).
pub const PORT: u16 = 5351;
/// The one version spoken (RFC 6887 section 9).
pub const VERSION: u8 = 2;
/// The longest message, request or response (RFC 6887 section 7).
pub const MAX_LEN: usize = 1100;
/// The common header of requests and responses.
pub const HEADER_LEN: usize = 24;
/// MAP's opcode-specific information (section 11.1).
pub const MAP_LEN: usize = 36;
/// PEER's opcode-specific information (section 12.1).
pub const PEER_LEN: usize = 56;

/// Opcodes (section 19.2).
pub mod opcode {
    pub const ANNOUNCE: u8 = 0;
    pub const MAP: u8 = 1;
    pub const PEER: u8 = 2;
}

/// Option codes (section 19.4); 0-127 must be understood, 128-255 may be ignored.
pub mod option {
    pub const THIRD_PARTY: u8 = 1;
    pub const PREFER_FAILURE: u8 = 2;
    pub const FILTER: u8 = 3;
}

/// Result codes (section 7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ResultCode {
    Success = 0,
    UnsuppVersion = 1,
    NotAuthorized = 2,
    MalformedRequest = 3,
    UnsuppOpcode = 4,
    UnsuppOption = 5,
    MalformedOption = 6,
    NetworkFailure = 7,
    NoResources = 8,
    UnsuppProtocol = 9,
    UserExQuota = 10,
    CannotProvideExternal = 11,
    AddressMismatch = 12,
    ExcessiveRemotePeers = 13,
}

/// Seconds a client waits before trying again after a long-lifetime error (section
/// 7.4 leaves the value to the server; 30 minutes, as its examples).
pub const LONG_ERROR_LIFETIME: u32 = 1800;
/// The same after a short-lifetime error (resources that may come back).
pub const SHORT_ERROR_LIFETIME: u32 = 30;

impl ResultCode {
    /// The lifetime of an error response: short for what may soon change (resources,
    /// quotas, a port taken), long for the rest (section 7.4 names each).
    pub fn error_lifetime(self) -> u32 {
        use ResultCode::*;
        match self {
            NetworkFailure | NoResources | UserExQuota | CannotProvideExternal | ExcessiveRemotePeers => {
                SHORT_ERROR_LIFETIME
            }
            _ => LONG_ERROR_LIFETIME,
        }
    }
}

/// The fields MAP and PEER share (the first 36 octets of both, sections 11.1 and 12.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapFields {
    pub nonce: [u8; 12],
    pub protocol: u8,
    pub internal_port: u16,
    pub external_port: u16,
    pub external_addr: [u8; 16],
}

/// A request that parsed: what the server still has to judge (addresses, protocol,
/// ports, authorisation) is left to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub opcode: u8,
    pub lifetime: u32,
    /// The client's address as it believes it (IPv4-mapped for IPv4, section 5).
    pub client: [u8; 16],
    /// MAP and PEER.
    pub map: Option<MapFields>,
    /// PEER: the remote peer's port and address.
    pub peer: Option<(u16, [u8; 16])>,
    /// THIRD_PARTY (section 13.1): the internal address the request is for.
    pub third_party: Option<[u8; 16]>,
    /// PREFER_FAILURE (section 13.2): the suggested port or nothing.
    pub prefer_failure: bool,
}

/// What a received message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// Silently dropped (section 8.3): shorter than two octets, or a response.
    Ignore,
    /// To be answered with `code` and the request's own bytes (section 8.3).
    Error {
        opcode: u8,
        code: ResultCode,
    },
    Request(Request),
}

/// The IPv4 address an IPv4-mapped IPv6 address (::ffff:a.b.c.d) carries.
pub fn mapped_v4(a: &[u8; 16]) -> Option<u32> {
    (a[..10] == [0; 10] && a[10..12] == [0xff, 0xff]).then(|| get_u32(a, 12))
}

/// The IPv4-mapped form of `v4` (section 5).
pub fn v4_mapped(v4: u32) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[10] = 0xff;
    a[11] = 0xff;
    a[12..].copy_from_slice(&v4.to_be_bytes());
    a
}

fn addr_at(m: &[u8], at: usize) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&m[at..at + 16]);
    a
}

/// Parses the UDP payload `m` of a message to the server, in the order of section 8.3.
pub fn parse(m: &[u8]) -> Parsed {
    if m.len() < 2 || m[1] & 0x80 != 0 {
        return Parsed::Ignore;
    }
    let opcode = m[1] & 0x7f;
    let error = |code| Parsed::Error { opcode, code };
    if m[0] != VERSION {
        return error(ResultCode::UnsuppVersion);
    }
    if m.len() > MAX_LEN || !m.len().is_multiple_of(4) || m.len() < HEADER_LEN {
        return error(ResultCode::MalformedRequest);
    }
    let body = match opcode {
        opcode::ANNOUNCE => 0,
        opcode::MAP => MAP_LEN,
        opcode::PEER => PEER_LEN,
        _ => return error(ResultCode::UnsuppOpcode),
    };
    if m.len() < HEADER_LEN + body {
        return error(ResultCode::MalformedRequest);
    }
    let mut r = Request {
        opcode,
        lifetime: get_u32(m, 4),
        client: addr_at(m, 8),
        map: None,
        peer: None,
        third_party: None,
        prefer_failure: false,
    };
    if body > 0 {
        let o = HEADER_LEN;
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&m[o..o + 12]);
        r.map = Some(MapFields {
            nonce,
            protocol: m[o + 12],
            internal_port: get_u16(m, o + 16),
            external_port: get_u16(m, o + 18),
            external_addr: addr_at(m, o + 20),
        });
    }
    if opcode == opcode::PEER {
        r.peer = Some((get_u16(m, HEADER_LEN + 36), addr_at(m, HEADER_LEN + 40)));
    }
    // Options (section 7.3), each padded to a multiple of four octets.
    let mut at = HEADER_LEN + body;
    while at < m.len() {
        if at + 4 > m.len() {
            return error(ResultCode::MalformedOption);
        }
        let (code, len) = (m[at], get_u16(m, at + 2) as usize);
        let data = at + 4;
        if data + len.next_multiple_of(4) > m.len() {
            return error(ResultCode::MalformedOption);
        }
        match (code, opcode) {
            (option::THIRD_PARTY, opcode::MAP | opcode::PEER) => {
                if len != 16 || r.third_party.is_some() {
                    return error(ResultCode::MalformedOption);
                }
                r.third_party = Some(addr_at(m, data));
            }
            (option::PREFER_FAILURE, opcode::MAP) => {
                if len != 0 || r.prefer_failure {
                    return error(ResultCode::MalformedOption);
                }
                r.prefer_failure = true;
            }
            // Options this server does not implement (FILTER) and options not valid
            // for the opcode, in the range that must be understood.
            (c, _) if c < 128 => return error(ResultCode::UnsuppOption),
            // Optional to process: ignored, and not in the response.
            _ => {}
        }
        at = data + len.next_multiple_of(4);
    }
    Parsed::Request(r)
}

/// Writes a response header at the start of `out` (section 7.2): the reserved octets
/// zero. `out` holds at least [`HEADER_LEN`] octets.
pub fn write_header(out: &mut [u8], opcode: u8, result: ResultCode, lifetime: u32, epoch: u32) {
    out[..HEADER_LEN].fill(0);
    out[0] = VERSION;
    out[1] = 0x80 | (opcode & 0x7f);
    out[3] = result as u8;
    set_u32(out, 4, lifetime);
    set_u32(out, 8, epoch);
}

/// An error response to the request `m` into `out` (at least [`MAX_LEN`] octets): the
/// header, then the request's octets after its header, up to [`MAX_LEN`] in all and a
/// multiple of four (section 8.3: the response copies the request). Returns its length.
pub fn write_error(out: &mut [u8], m: &[u8], opcode: u8, result: ResultCode, epoch: u32) -> usize {
    write_header(out, opcode, result, result.error_lifetime(), epoch);
    let rest = m.get(HEADER_LEN..).unwrap_or(&[]);
    let n = rest.len().min(MAX_LEN - HEADER_LEN) & !3;
    out[HEADER_LEN..HEADER_LEN + n].copy_from_slice(&rest[..n]);
    HEADER_LEN + n
}

/// What the server grants a MAP or PEER request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    pub lifetime: u32,
    pub external_port: u16,
    pub external_addr: u32,
}

/// A successful response to `r` into `out` (at least [`MAX_LEN`] octets): its opcode's
/// information with the assigned external port and address (sections 11.1, 12.1) and the
/// options the server processed (section 7.3). Returns its length.
pub fn write_success(out: &mut [u8], r: &Request, g: &Granted, epoch: u32) -> usize {
    let lifetime = if r.opcode == opcode::ANNOUNCE { 0 } else { g.lifetime };
    write_header(out, r.opcode, ResultCode::Success, lifetime, epoch);
    let mut at = HEADER_LEN;
    if let Some(f) = &r.map {
        let o = &mut out[at..at + MAP_LEN];
        o.fill(0);
        o[..12].copy_from_slice(&f.nonce);
        o[12] = f.protocol;
        set_u16(o, 16, f.internal_port);
        set_u16(o, 18, g.external_port);
        o[20..36].copy_from_slice(&v4_mapped(g.external_addr));
        at += MAP_LEN;
    }
    if let Some((port, addr)) = r.peer {
        let o = &mut out[at..at + PEER_LEN - MAP_LEN];
        o.fill(0);
        set_u16(o, 0, port);
        o[4..20].copy_from_slice(&addr);
        at += PEER_LEN - MAP_LEN;
    }
    if let Some(tp) = r.third_party {
        out[at..at + 4].copy_from_slice(&[option::THIRD_PARTY, 0, 0, 16]);
        out[at + 4..at + 20].copy_from_slice(&tp);
        at += 20;
    }
    if r.prefer_failure {
        out[at..at + 4].copy_from_slice(&[option::PREFER_FAILURE, 0, 0, 0]);
        at += 4;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A MAP request (RFC 6887 figures 2 and 9): version 2, opcode 1, lifetime 3600,
    /// client ::ffff:192.168.1.10, nonce 01..0c, UDP, internal port 8080, suggested
    /// external port 0 and address ::ffff:0.0.0.0, then THIRD_PARTY ::ffff:192.168.1.20.
    #[rustfmt::skip]
    const MAP_REQUEST: [u8; 80] = [
        0x02, 0x01, 0x00, 0x00,  0x00, 0x00, 0x0e, 0x10,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 10,
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        17, 0, 0, 0,  0x1f, 0x90,  0x00, 0x00,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0,
        1, 0, 0, 16,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 20,
    ];

    #[test]
    fn parses_a_map_request_with_third_party() {
        let Parsed::Request(r) = parse(&MAP_REQUEST) else { panic!("{:?}", parse(&MAP_REQUEST)) };
        assert_eq!(r.opcode, opcode::MAP);
        assert_eq!(r.lifetime, 3600);
        assert_eq!(mapped_v4(&r.client), Some(0xc0a8_010a));
        let f = r.map.unwrap();
        assert_eq!(f.nonce, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!((f.protocol, f.internal_port, f.external_port), (17, 8080, 0));
        assert_eq!(mapped_v4(&f.external_addr), Some(0));
        assert_eq!(r.third_party.and_then(|a| mapped_v4(&a)), Some(0xc0a8_0114));
        assert!(r.peer.is_none() && !r.prefer_failure);
    }

    #[test]
    fn writes_the_map_success_response() {
        let Parsed::Request(r) = parse(&MAP_REQUEST) else { panic!() };
        let mut out = [0u8; MAX_LEN];
        let g = Granted { lifetime: 1800, external_port: 40000, external_addr: 0xc633_6407 };
        let n = write_success(&mut out, &r, &g, 77);
        #[rustfmt::skip]
        let want: [u8; 80] = [
            0x02, 0x81, 0x00, 0x00,  0x00, 0x00, 0x07, 0x08,  0x00, 0x00, 0x00, 77,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
            17, 0, 0, 0,  0x1f, 0x90,  0x9c, 0x40,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7,
            1, 0, 0, 16,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 20,
        ];
        assert_eq!(&out[..n], &want[..]);
    }

    #[test]
    fn peer_request_and_response() {
        let mut m = [0u8; 80];
        m[..24].copy_from_slice(&MAP_REQUEST[..24]);
        m[1] = opcode::PEER;
        m[24..60].copy_from_slice(&MAP_REQUEST[24..60]);
        m[60..62].copy_from_slice(&443u16.to_be_bytes());
        m[64..80].copy_from_slice(&v4_mapped(0xcb00_7101));
        let Parsed::Request(r) = parse(&m) else { panic!("{:?}", parse(&m)) };
        assert_eq!(r.peer.map(|(p, a)| (p, mapped_v4(&a))), Some((443, Some(0xcb00_7101))));
        let mut out = [0u8; MAX_LEN];
        let g = Granted { lifetime: 60, external_port: 1234, external_addr: 0x0a00_0001 };
        let n = write_success(&mut out, &r, &g, 5);
        assert_eq!(n, 80);
        assert_eq!(out[1], 0x82);
        assert_eq!(&out[60..62], &443u16.to_be_bytes());
        assert_eq!(&out[64..80], &v4_mapped(0xcb00_7101));
    }

    #[test]
    fn announce_answers_with_lifetime_zero() {
        let mut m = [0u8; 24];
        m[0] = 2;
        m[4..8].copy_from_slice(&600u32.to_be_bytes());
        let Parsed::Request(r) = parse(&m) else { panic!() };
        let mut out = [0u8; MAX_LEN];
        let n = write_success(&mut out, &r, &Granted { lifetime: 600, external_port: 0, external_addr: 0 }, 9);
        assert_eq!(&out[..n], &[2, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn rejections_in_the_order_of_section_8_3() {
        let e = |opcode, code| Parsed::Error { opcode, code };
        assert_eq!(parse(&[2]), Parsed::Ignore);
        let mut response = MAP_REQUEST;
        response[1] |= 0x80;
        assert_eq!(parse(&response), Parsed::Ignore);
        // NAT-PMP (version 0) and a future version.
        assert_eq!(parse(&[0, 0]), e(0, ResultCode::UnsuppVersion));
        let mut v3 = MAP_REQUEST;
        v3[0] = 3;
        assert_eq!(parse(&v3), e(1, ResultCode::UnsuppVersion));
        assert_eq!(parse(&MAP_REQUEST[..78]), e(1, ResultCode::MalformedRequest));
        assert_eq!(parse(&MAP_REQUEST[..20]), e(1, ResultCode::MalformedRequest));
        assert_eq!(parse(&MAP_REQUEST[..56]), e(1, ResultCode::MalformedRequest));
        assert_eq!(parse(&[0u8; MAX_LEN + 4].map(|_| 2)), e(2, ResultCode::MalformedRequest));
        let mut op = [0u8; 24];
        op[0] = 2;
        op[1] = 5;
        assert_eq!(parse(&op), e(5, ResultCode::UnsuppOpcode));
    }

    #[test]
    fn options_are_checked() {
        let e = |code| Parsed::Error { opcode: opcode::MAP, code };
        let with = |opt: &[u8]| {
            let mut m = MAP_REQUEST[..60].to_vec();
            m.extend_from_slice(opt);
            parse(&m)
        };
        // THIRD_PARTY of the wrong length, twice; an option running past the end.
        assert_eq!(with(&[1, 0, 0, 4, 0, 0, 0, 0]), e(ResultCode::MalformedOption));
        assert_eq!(with(&MAP_REQUEST[60..].repeat(2)), e(ResultCode::MalformedOption));
        assert_eq!(with(&[1, 0, 0, 16, 0, 0, 0, 0]), e(ResultCode::MalformedOption));
        // FILTER is not implemented; an unknown mandatory option; an optional one ignored.
        assert_eq!(
            with(&[3, 0, 0, 20].iter().chain(&[0u8; 20]).copied().collect::<Vec<_>>()),
            e(ResultCode::UnsuppOption)
        );
        assert_eq!(with(&[99, 0, 0, 0]), e(ResultCode::UnsuppOption));
        let Parsed::Request(r) = with(&[200, 0, 0, 1, 7, 0, 0, 0, 2, 0, 0, 0]) else { panic!() };
        assert!(r.prefer_failure && r.third_party.is_none());
        // PREFER_FAILURE is MAP's only.
        let mut peer = [0u8; HEADER_LEN + PEER_LEN];
        peer[0] = 2;
        peer[1] = opcode::PEER;
        let mut m = peer.to_vec();
        m.extend_from_slice(&[2, 0, 0, 0]);
        assert_eq!(parse(&m), Parsed::Error { opcode: opcode::PEER, code: ResultCode::UnsuppOption });
    }

    #[test]
    fn an_error_response_copies_the_request() {
        let mut out = [0u8; MAX_LEN];
        let n = write_error(&mut out, &MAP_REQUEST, 1, ResultCode::NotAuthorized, 3);
        assert_eq!(n, 80);
        assert_eq!(&out[..12], &[2, 0x81, 0, 2, 0, 0, 0x07, 0x08, 0, 0, 0, 3]);
        assert_eq!(&out[12..24], &[0; 12]);
        assert_eq!(&out[24..80], &MAP_REQUEST[24..]);
        // A short request: the header only; a ragged one: whole words only.
        assert_eq!(write_error(&mut out, &[0, 0], 0, ResultCode::UnsuppVersion, 3), 24);
        assert_eq!(write_error(&mut out, &MAP_REQUEST[..31], 1, ResultCode::MalformedRequest, 3), 28);
        assert_eq!(ResultCode::NoResources.error_lifetime(), SHORT_ERROR_LIFETIME);
    }

    #[test]
    fn no_input_panics() {
        let mut m = MAP_REQUEST.to_vec();
        for len in 0..m.len() {
            for b in [0u8, 0x80, 0xff] {
                let old = m[len];
                m[len] = b;
                for cut in 0..=m.len() {
                    let _ = parse(&m[..cut]);
                }
                m[len] = old;
            }
        }
    }
}
