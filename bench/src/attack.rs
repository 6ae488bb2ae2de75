//! Hostile traffic for `hostile-bench` (issue 15): the frames of six attacks on an AFTR,
//! sent by `dslite-gen --attack KIND` while a legitimate load runs.
//!
//! - `frag-softwire`: first fragments of softwire datagrams that never complete, each
//!   with a new identification, in turn from the attacking B4, from a new B4 address of
//!   the authorised prefix every time, and from outside the prefix (decision 0013);
//! - `frag-internet`: IPv4 fragments from spoofed Internet sources to pool addresses,
//!   first ones (to ports with no session) and last ones (whose first never comes);
//! - `session-flood`: a new UDP flow in every frame from the attacking B4, a new source
//!   port and destination each time (per-subscriber session limit and rate, 0014);
//! - `ptb`: forged ICMPv6 Packet Too Big to the endpoint: quoting a legitimate flow's
//!   packet with an MTU below 1280, quoting packets of sessions that do not exist, and
//!   quoting a packet that the endpoint did not send;
//! - `malformed-softwire`, `malformed-internet`: frames wrong in one way each
//!   ([`Flaw`]): truncated headers, bad lengths, versions and checksums, unknown next
//!   headers and protocols, garbage.
//!
//! Frame `k` is made from a template and `k` (a fragment's identification, a flow's
//! port and destination, a spoofed source), so a run never repeats itself where that
//! matters. No frame carries the generator's tail (`generator::MARK`): the legitimate
//! load's tap never counts one.

use dataplane::testing::frames::{self, L4};
use dataplane::wire::{checksum, ethernet, ipv4, ipv6, proto};

use crate::generator::{Addresses, Frames};

/// An attack of `hostile-bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Attack {
    FragSoftwire,
    FragInternet,
    SessionFlood,
    Ptb,
    MalformedSoftwire,
    MalformedInternet,
}

impl Attack {
    pub const ALL: [Attack; 6] = [
        Attack::FragSoftwire,
        Attack::FragInternet,
        Attack::SessionFlood,
        Attack::Ptb,
        Attack::MalformedSoftwire,
        Attack::MalformedInternet,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Attack::FragSoftwire => "frag-softwire",
            Attack::FragInternet => "frag-internet",
            Attack::SessionFlood => "session-flood",
            Attack::Ptb => "ptb",
            Attack::MalformedSoftwire => "malformed-softwire",
            Attack::MalformedInternet => "malformed-internet",
        }
    }

    pub fn parse(s: &str) -> Result<Attack, String> {
        Attack::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| format!("{s:?} is not an attack: {}", Attack::ALL.map(|a| a.name()).join(", ")))
    }

    /// Whether it comes from the Internet side (else from a B4's side, the softwire).
    pub fn from_internet(self) -> bool {
        matches!(self, Attack::FragInternet | Attack::MalformedInternet)
    }

    /// What it sends, for the report.
    pub fn what(self) -> &'static str {
        match self {
            Attack::FragSoftwire => {
                "first fragments that never complete, from the attacking B4, a new B4 address each time and \
                 unauthorised sources"
            }
            Attack::FragInternet => "IPv4 first and last fragments that never complete, spoofed sources, to the pool",
            Attack::SessionFlood => "a new UDP flow every frame from one subscriber (new port and destination)",
            Attack::Ptb => {
                "forged ICMPv6 Packet Too Big: legitimate flows quoted with MTU < 1280, sessions that do not exist, \
                 packets the endpoint did not send"
            }
            Attack::MalformedSoftwire => {
                "truncated IPv6 and inner IPv4, bad versions, lengths and checksums, unknown next headers, garbage"
            }
            Attack::MalformedInternet => {
                "truncated IPv4, bad versions, lengths and checksums, truncated UDP/TCP, GRE, ICMP timestamps"
            }
        }
    }

    /// aftrd's counters (`display statistics`) that count this attack's frames where
    /// they end; at least one must move while it runs, or the attack did not reach the
    /// engine.
    pub fn counters(self) -> &'static [&'static str] {
        match self {
            Attack::FragSoftwire => &[
                "drop_frag_source_limit",
                "drop_frag_fair_share",
                "drop_frag_table_full",
                "drop_frag_timeout",
                "drop_b4_not_authorised",
            ],
            Attack::FragInternet => &[
                "drop_frag_source_limit",
                "drop_frag_fair_share",
                "drop_frag_table_full",
                "drop_frag_timeout",
                "drop_no_session",
            ],
            Attack::SessionFlood => &["drop_session_limit", "drop_rate_limited"],
            Attack::Ptb => &["drop_ptb_below_minimum", "drop_icmp_error_no_session"],
            Attack::MalformedSoftwire => &[
                "drop_malformed_ipv6",
                "drop_ipv6_extension",
                "drop_softwire_next_header",
                "drop_malformed_ipv4",
                "drop_bad_ipv4_checksum",
                "drop_malformed_l4",
            ],
            Attack::MalformedInternet => &[
                "drop_malformed_ipv4",
                "drop_bad_ipv4_checksum",
                "drop_malformed_l4",
                "drop_unsupported_protocol",
                "drop_unsupported_icmp",
            ],
        }
    }
}

/// Who the attack comes from and whom it aims at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aim {
    /// The lab: endpoint, B4 numbering, hosts, server, pool, MACs.
    pub addrs: Addresses,
    /// The attacking subscriber's B4 number; new B4 addresses of `frag-softwire` are the
    /// numbers after it.
    pub attacker: u32,
    /// The legitimate load (`Traffic::softwire`'s numbering: flow `i` is B4 `i % b4s`,
    /// host `k % inner_count` and port `10000 + k`, `k = i / b4s`), whose packets a forged
    /// Packet Too Big quotes.
    pub b4s: u32,
    pub flows: usize,
}

impl Aim {
    /// The inner source and port of legitimate flow `i`, and its B4's number.
    pub fn legit_flow(&self, i: usize) -> (u32, u32, u16) {
        let b4s = self.b4s.max(1) as usize;
        let k = i / b4s;
        ((i % b4s) as u32, self.addrs.inner(k), 10_000 + k as u16)
    }
}

/// Sources outside any authorised B4 prefix of the lab: 2001:db8:dead::/48.
pub const UNAUTHORISED: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0xde, 0xad, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// The source of forged Packet Too Big messages "from routers": 2001:db8:ffff::/48.
pub const ROUTERS: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// The source of quoted packets the endpoint did not send: 2001:db8:bad::1.
pub const NOT_THE_ENDPOINT: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0x0b, 0xad, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// The session flood's destinations: 198.18.0.0/15 (RFC 2544's benchmarking range).
pub const FLOOD_SERVERS: u32 = 0xc612_0000;
const FLOOD_SERVER_COUNT: u64 = 131_071;
/// Spoofed Internet sources: 45.0.0.0/12.
pub const SPOOFED: u32 = 0x2d00_0000;
const SPOOFED_COUNT: u64 = 1 << 20;
/// Hosts behind a B4 that no legitimate flow uses (quoted by forged PTBs): 192.168.77.0/24.
pub const NO_SUCH_HOST: u32 = 0xc0a8_4d00;
/// Where fragments are cut: the first carries this many bytes of the inner packet.
const FRAG_CUT: usize = 64;
/// Bytes of payload of the fragmented datagrams.
const FRAG_PAYLOAD: usize = 200;
/// UDP payload of the session flood's and quoted packets: a 64-byte frame on the IPv4 side.
const SMALL_PAYLOAD: usize = 18;
/// Where a softwire frame's IPv6 source and inner IPv4 packet start.
const IPV6_SRC_AT: usize = ethernet::HEADER_LEN + 8;
const INNER_AT: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN;
/// A softwire fragment's identification.
const FRAG_IDENT_AT: usize = INNER_AT + 4;
/// An IPv4 frame's packet.
const IPV4_AT: usize = ethernet::HEADER_LEN;
/// Copies of each malformed frame, with other random bytes and sources.
const MALFORMED_COPIES: u32 = 16;

/// How a malformed frame is wrong, and what aftrd makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    // The softwire side: IPv6 to the endpoint from the attacking B4.
    /// 24 bytes of IPv6 header (the XDP program leaves it to the kernel).
    Ipv6Truncated,
    /// Version 4 in an IPv6 header: `drop_malformed_ipv6`.
    Ipv6Version,
    /// A payload length past the frame's end: `drop_malformed_ipv6`.
    Ipv6LengthBeyond,
    /// A Hop-by-Hop header whose length runs past the end: `drop_malformed_ipv6`.
    Ipv6ExtensionBeyond,
    /// Next header 59 (none): `drop_softwire_next_header`.
    NoNextHeader,
    /// 12 bytes of inner IPv4 header: `drop_malformed_ipv4`.
    InnerTruncated,
    /// An inner IPv4 header length of 12 bytes: `drop_malformed_ipv4`.
    InnerIhl,
    /// An inner total length past the payload: `drop_malformed_ipv4`.
    InnerLengthBeyond,
    /// A wrong inner header checksum: `drop_bad_ipv4_checksum`.
    InnerChecksum,
    /// 4 bytes of UDP header: `drop_malformed_l4`.
    InnerUdpTruncated,
    /// An echo request to the endpoint with a wrong checksum: `drop_malformed_l4`.
    Icmpv6Checksum,
    /// Random bytes, but for a first one that is no IPv4 version, after a valid IPv6
    /// header: `drop_malformed_ipv4`.
    Garbage,
    // The Internet side: IPv4 to a pool address from a spoofed source.
    /// 12 bytes of IPv4 header (left to the kernel).
    Ipv4Truncated,
    /// A header length of 12 bytes: `drop_malformed_ipv4`.
    Ipv4Ihl,
    /// Version 6 in an IPv4 header: `drop_malformed_ipv4`.
    Ipv4Version,
    /// A total length past the frame's end: `drop_malformed_ipv4`.
    Ipv4LengthBeyond,
    /// A total length shorter than the header: `drop_malformed_ipv4`.
    Ipv4LengthShort,
    /// A wrong header checksum: `drop_bad_ipv4_checksum`.
    Ipv4Checksum,
    /// 4 bytes of UDP header: `drop_malformed_l4`.
    UdpTruncated,
    /// A UDP length past the packet's end: `drop_malformed_l4`.
    UdpLengthBeyond,
    /// 10 bytes of TCP header: `drop_malformed_l4`.
    TcpTruncated,
    /// GRE: `drop_unsupported_protocol`.
    Gre,
    /// An ICMP timestamp request: `drop_unsupported_icmp`.
    IcmpTimestamp,
}

impl Flaw {
    pub const SOFTWIRE: [Flaw; 12] = [
        Flaw::Ipv6Truncated,
        Flaw::Ipv6Version,
        Flaw::Ipv6LengthBeyond,
        Flaw::Ipv6ExtensionBeyond,
        Flaw::NoNextHeader,
        Flaw::InnerTruncated,
        Flaw::InnerIhl,
        Flaw::InnerLengthBeyond,
        Flaw::InnerChecksum,
        Flaw::InnerUdpTruncated,
        Flaw::Icmpv6Checksum,
        Flaw::Garbage,
    ];
    pub const INTERNET: [Flaw; 11] = [
        Flaw::Ipv4Truncated,
        Flaw::Ipv4Ihl,
        Flaw::Ipv4Version,
        Flaw::Ipv4LengthBeyond,
        Flaw::Ipv4LengthShort,
        Flaw::Ipv4Checksum,
        Flaw::UdpTruncated,
        Flaw::UdpLengthBeyond,
        Flaw::TcpTruncated,
        Flaw::Gre,
        Flaw::IcmpTimestamp,
    ];

    /// The counter of aftrd's statistics this frame ends in; None: the XDP program leaves
    /// it to the kernel (`xdp_passed_not_ours`), the engine never sees it.
    pub fn counter(self) -> Option<&'static str> {
        Some(match self {
            Flaw::Ipv6Truncated | Flaw::Ipv4Truncated => return None,
            Flaw::Ipv6Version | Flaw::Ipv6LengthBeyond | Flaw::Ipv6ExtensionBeyond => "drop_malformed_ipv6",
            Flaw::NoNextHeader => "drop_softwire_next_header",
            Flaw::InnerTruncated
            | Flaw::InnerIhl
            | Flaw::InnerLengthBeyond
            | Flaw::Garbage
            | Flaw::Ipv4Ihl
            | Flaw::Ipv4Version
            | Flaw::Ipv4LengthBeyond
            | Flaw::Ipv4LengthShort => "drop_malformed_ipv4",
            Flaw::InnerChecksum | Flaw::Ipv4Checksum => "drop_bad_ipv4_checksum",
            Flaw::InnerUdpTruncated
            | Flaw::Icmpv6Checksum
            | Flaw::UdpTruncated
            | Flaw::UdpLengthBeyond
            | Flaw::TcpTruncated => "drop_malformed_l4",
            Flaw::Gre => "drop_unsupported_protocol",
            Flaw::IcmpTimestamp => "drop_unsupported_icmp",
        })
    }
}

/// xorshift64: random bytes that are the same from run to run.
fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes the IPv4 header checksum of the packet at `at` (20-byte header) again.
fn fix_ipv4_checksum(f: &mut [u8], at: usize) {
    f[at + 10..at + 12].fill(0);
    let c = checksum::checksum(&f[at..at + ipv4::MIN_HEADER_LEN]);
    f[at + 10..at + 12].copy_from_slice(&c.to_be_bytes());
}

/// Writes the IPv4 header and transport checksums of the packet at `at` again.
fn fix_ipv4_checksums(f: &mut [u8], at: usize) {
    fix_ipv4_checksum(f, at);
    let p = &f[at..];
    let l4 = L4::of_proto(p[9]).expect("a UDP, TCP or ICMP packet");
    let c = frames::l4_checksum(p);
    let c_at = at + ipv4::MIN_HEADER_LEN + l4.checksum_at();
    f[c_at..c_at + 2].copy_from_slice(&c.to_be_bytes());
}

/// `f` with its IPv4 packet at `at` (20-byte header) cut after `l4` bytes of transport
/// header, the total length and header checksum saying so.
fn cut(mut f: Vec<u8>, at: usize, l4: usize) -> Vec<u8> {
    let len = ipv4::MIN_HEADER_LEN + l4;
    f.truncate(at + len);
    f[at + 2..at + 4].copy_from_slice(&(len as u16).to_be_bytes());
    fix_ipv4_checksum(&mut f, at);
    f
}

/// An Ethernet frame with an IPv6 header from `src` to `dst` and `payload` after it
/// (payload length as it is, next header `nh`).
fn ipv6_frame(a: &Addresses, src: &[u8; 16], dst: &[u8; 16], nh: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; INNER_AT];
    ethernet::write_header(&mut f, a.dst_mac, a.src_mac, None, ethernet::ETHERTYPE_IPV6);
    ipv6::write_header(&mut f[ethernet::HEADER_LEN..], 0, 0, payload.len() as u16, nh, 64, src, dst);
    f.extend_from_slice(payload);
    f
}

/// An ICMPv6 Packet Too Big from `src` to the endpoint, MTU `mtu`, quoting a softwire
/// packet from `quoted_src` to B4 number `b4n` carrying the server's UDP packet to
/// `host`:`port`.
fn packet_too_big(
    a: &Addresses,
    src: &[u8; 16],
    mtu: u32,
    quoted_src: &[u8; 16],
    b4n: u32,
    host: u32,
    port: u16,
) -> Vec<u8> {
    let inner = frames::ipv4_packet(L4::Udp, a.server, host, 53, port, false, &[0u8; SMALL_PAYLOAD]);
    let mut msg = vec![0u8; 8 + ipv6::HEADER_LEN];
    msg[0] = 2; // Packet Too Big (RFC 4443 section 3.2), code 0
    msg[4..8].copy_from_slice(&mtu.to_be_bytes());
    ipv6::write_header(&mut msg[8..], 0, 0, inner.len() as u16, proto::IPV4_IN_IP, 63, quoted_src, &a.b4(b4n));
    msg.extend_from_slice(&inner);
    let pseudo = checksum::pseudo_v6(src, &a.aftr, proto::ICMPV6, msg.len() as u32);
    let c = !checksum::fold(checksum::sum(&msg, pseudo));
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    ipv6_frame(a, src, &a.aftr, proto::ICMPV6, &msg)
}

/// A malformed frame: `flaw`, copy `n` (its random bytes and, from the Internet, its
/// spoofed source), from the attacking B4 `attacker` on the softwire side.
pub fn malformed(a: &Addresses, attacker: u32, flaw: Flaw, n: u32) -> Vec<u8> {
    let b4 = a.b4(attacker);
    // Copies differ in their identification and source port.
    let udp = |src: u32, dst: u32| {
        let mut p = frames::ipv4_packet(L4::Udp, src, dst, 1024 + n as u16, 53, true, &[0u8; 18]);
        p[4..6].copy_from_slice(&(n as u16).to_be_bytes());
        fix_ipv4_checksum(&mut p, 0);
        p
    };
    // A valid softwire packet from the attacker, then spoilt.
    let softwire = |inner: &[u8]| ipv6_frame(a, &b4, &a.aftr, proto::IPV4_IN_IP, inner);
    let (pool_first, pool_last) = a.pool.range();
    let to_pool = pool_first + n % (pool_last - pool_first + 1);
    let from = SPOOFED + n;
    let internet = |l4: L4, len: usize| {
        let p = frames::ipv4_packet(l4, from, to_pool, 53, 1024 + n as u16, false, &vec![0u8; len]);
        frames::ipv4_frame(a.dst_mac, a.src_mac, &p)
    };
    let set_u16 = |f: &mut [u8], at: usize, v: u16| f[at..at + 2].copy_from_slice(&v.to_be_bytes());
    match flaw {
        Flaw::Ipv6Truncated => {
            let mut f = softwire(&udp(a.inner(0), a.server));
            // The flow label tells the copies apart.
            f[ethernet::HEADER_LEN + 2..ethernet::HEADER_LEN + 4].copy_from_slice(&(n as u16).to_be_bytes());
            f.truncate(ethernet::HEADER_LEN + 24);
            f
        }
        Flaw::Ipv6Version => {
            let mut f = softwire(&udp(a.inner(0), a.server));
            f[ethernet::HEADER_LEN] = 0x40 | (f[ethernet::HEADER_LEN] & 0x0f);
            f
        }
        Flaw::Ipv6LengthBeyond => {
            let mut f = softwire(&udp(a.inner(0), a.server));
            set_u16(&mut f, ethernet::HEADER_LEN + 4, 1000 + n as u16);
            f
        }
        Flaw::Ipv6ExtensionBeyond => {
            // Hop-by-Hop: next header IPv4, length (8 + 8 * 200) bytes, far past the end.
            let mut payload = vec![proto::IPV4_IN_IP, 200, 1, 4, 0, 0, 0, 0];
            payload.extend_from_slice(&udp(a.inner(0), a.server));
            ipv6_frame(a, &b4, &a.aftr, proto::IPV6_HOPOPTS, &payload)
        }
        Flaw::NoNextHeader => ipv6_frame(a, &b4, &a.aftr, proto::IPV6_NONXT, &random_bytes(n as u64, 46)),
        Flaw::InnerTruncated => softwire(&udp(a.inner(0), a.server)[..12]),
        Flaw::InnerIhl => {
            let mut f = softwire(&udp(a.inner(0), a.server));
            f[INNER_AT] = 0x43;
            f
        }
        Flaw::InnerLengthBeyond => {
            let mut p = udp(a.inner(0), a.server);
            set_u16(&mut p, 2, 1400);
            fix_ipv4_checksum(&mut p, 0);
            softwire(&p)
        }
        Flaw::InnerChecksum => {
            let mut p = udp(a.inner(0), a.server);
            p[10] ^= 0x5a;
            softwire(&p)
        }
        Flaw::InnerUdpTruncated => softwire(&cut(udp(a.inner(0), a.server), 0, 4)),
        Flaw::Icmpv6Checksum => {
            let mut msg = vec![128, 0, 0, 0, 0, 1, 0, 1];
            msg.extend_from_slice(&random_bytes(n as u64, 32));
            let pseudo = checksum::pseudo_v6(&b4, &a.aftr, proto::ICMPV6, msg.len() as u32);
            let c = !checksum::fold(checksum::sum(&msg, pseudo));
            msg[2..4].copy_from_slice(&(c ^ 0x0101).to_be_bytes());
            ipv6_frame(a, &b4, &a.aftr, proto::ICMPV6, &msg)
        }
        Flaw::Garbage => {
            let mut g = random_bytes(n as u64, 46);
            // Any version but 4.
            if g[0] >> 4 == 4 {
                g[0] ^= 0x80;
            }
            softwire(&g)
        }
        Flaw::Ipv4Truncated => {
            let mut f = internet(L4::Udp, 18);
            // The identification tells the copies apart.
            f[IPV4_AT + 4..IPV4_AT + 6].copy_from_slice(&(n as u16).to_be_bytes());
            f.truncate(IPV4_AT + 12);
            f
        }
        Flaw::Ipv4Ihl => {
            let mut f = internet(L4::Udp, 18);
            f[IPV4_AT] = 0x43;
            f
        }
        Flaw::Ipv4Version => {
            let mut f = internet(L4::Udp, 18);
            f[IPV4_AT] = 0x65;
            f
        }
        Flaw::Ipv4LengthBeyond => {
            let mut f = internet(L4::Udp, 18);
            set_u16(&mut f, IPV4_AT + 2, 1400);
            fix_ipv4_checksum(&mut f, IPV4_AT);
            f
        }
        Flaw::Ipv4LengthShort => {
            let mut f = internet(L4::Udp, 18);
            set_u16(&mut f, IPV4_AT + 2, 16);
            fix_ipv4_checksum(&mut f, IPV4_AT);
            f
        }
        Flaw::Ipv4Checksum => {
            let mut f = internet(L4::Udp, 18);
            f[IPV4_AT + 10] ^= 0x5a;
            f
        }
        Flaw::UdpTruncated => cut(internet(L4::Udp, 18), IPV4_AT, 4),
        Flaw::UdpLengthBeyond => {
            let mut f = internet(L4::Udp, 18);
            set_u16(&mut f, IPV4_AT + ipv4::MIN_HEADER_LEN + 4, 200);
            f
        }
        Flaw::TcpTruncated => cut(internet(L4::Tcp, 0), IPV4_AT, 10),
        Flaw::Gre => {
            let mut f = internet(L4::Udp, 18);
            f[IPV4_AT + 9] = 47;
            fix_ipv4_checksum(&mut f, IPV4_AT);
            f
        }
        Flaw::IcmpTimestamp => {
            let mut f = internet(L4::Icmp, 12);
            f[IPV4_AT + ipv4::MIN_HEADER_LEN] = 13;
            fix_ipv4_checksums(&mut f, IPV4_AT);
            f
        }
    }
}

/// The frames of one attack, frame after frame.
pub struct AttackFrames {
    attack: Attack,
    aim: Aim,
    templates: Vec<Vec<u8>>,
    /// The number of the next frame.
    k: u64,
}

impl AttackFrames {
    pub fn new(attack: Attack, aim: Aim) -> AttackFrames {
        let a = &aim.addrs;
        let (pool_first, _) = a.pool.range();
        let templates = match attack {
            Attack::FragSoftwire => {
                let inner = frames::ipv4_packet(L4::Udp, a.inner(0), a.server, 7, 53, true, &[0u8; FRAG_PAYLOAD]);
                let whole = frames::softwire_frame(a.dst_mac, a.src_mac, &a.b4(aim.attacker), &a.aftr, &inner);
                vec![frames::softwire_fragments(&whole, &[FRAG_CUT], 0).swap_remove(0)]
            }
            Attack::FragInternet => {
                let p = frames::ipv4_packet(L4::Udp, SPOOFED, pool_first, 53, 1024, false, &[0u8; FRAG_PAYLOAD]);
                frames::ipv4_fragments(&frames::ipv4_frame(a.dst_mac, a.src_mac, &p), &[FRAG_CUT], 0)
            }
            Attack::SessionFlood => {
                let p = frames::ipv4_packet(L4::Udp, a.inner(0), FLOOD_SERVERS, 1024, 53, true, &[0u8; SMALL_PAYLOAD]);
                vec![frames::softwire_frame(a.dst_mac, a.src_mac, &a.b4(aim.attacker), &a.aftr, &p)]
            }
            Attack::Ptb => {
                let attacker = a.b4(aim.attacker);
                let legit = aim.flows.clamp(1, 1024);
                (0..legit)
                    .flat_map(|j| {
                        let (b4n, host, port) = aim.legit_flow(j);
                        let mut router = ROUTERS;
                        router[12..16].copy_from_slice(&(j as u32).to_be_bytes());
                        let mtu_below = 68 + (j as u32 * 97) % (ipv6::MIN_MTU as u32 - 68);
                        let nobody = NO_SUCH_HOST + 1 + (j % 250) as u32;
                        [
                            packet_too_big(a, &attacker, mtu_below, &a.aftr, b4n, host, port),
                            packet_too_big(a, &router, 1280, &a.aftr, b4n, nobody, 40_000 + j as u16),
                            packet_too_big(a, &attacker, 1280, &NOT_THE_ENDPOINT, b4n, host, port),
                        ]
                    })
                    .collect()
            }
            Attack::MalformedSoftwire | Attack::MalformedInternet => {
                let flaws: &[Flaw] =
                    if attack == Attack::MalformedSoftwire { &Flaw::SOFTWIRE } else { &Flaw::INTERNET };
                (0..MALFORMED_COPIES)
                    .flat_map(|n| flaws.iter().map(move |&flaw| malformed(a, aim.attacker, flaw, n)))
                    .collect()
            }
        };
        AttackFrames { attack, aim, templates, k: 0 }
    }

    /// Writes frame number `k` into `buf`; its length (0: `buf` is too small).
    pub fn frame(&self, k: u64, buf: &mut [u8]) -> usize {
        let a = &self.aim.addrs;
        let t = match self.attack {
            Attack::FragInternet => &self.templates[(k % 2) as usize],
            Attack::FragSoftwire | Attack::SessionFlood => &self.templates[0],
            _ => &self.templates[(k % self.templates.len() as u64) as usize],
        };
        let Some(f) = buf.get_mut(..t.len()) else { return 0 };
        f.copy_from_slice(t);
        match self.attack {
            Attack::FragSoftwire => {
                // In turn: the attacker, a new B4 of the prefix, an unauthorised source.
                let src = match k % 3 {
                    0 => a.b4(self.aim.attacker),
                    1 => a.b4(self.aim.attacker.wrapping_add(1 + (k / 3 % (1 << 20)) as u32)),
                    _ => {
                        let mut s = UNAUTHORISED;
                        s[12..16].copy_from_slice(&(k as u32).to_be_bytes());
                        s
                    }
                };
                f[IPV6_SRC_AT..IPV6_SRC_AT + 16].copy_from_slice(&src);
                f[FRAG_IDENT_AT..FRAG_IDENT_AT + 4].copy_from_slice(&(k as u32).to_be_bytes());
            }
            Attack::FragInternet => {
                let (first, last) = a.pool.range();
                let dst = first + (k % (last as u64 - first as u64 + 1)) as u32;
                let ip = IPV4_AT;
                f[ip + 4..ip + 6].copy_from_slice(&(k as u16).to_be_bytes());
                f[ip + 12..ip + 16].copy_from_slice(&(SPOOFED + (k / 2 % SPOOFED_COUNT) as u32).to_be_bytes());
                f[ip + 16..ip + 20].copy_from_slice(&dst.to_be_bytes());
                if k.is_multiple_of(2) {
                    // The first fragment's destination port: one with no session, mostly.
                    let port = 1024 + (k / 2 % 64_512) as u16;
                    f[ip + 22..ip + 24].copy_from_slice(&port.to_be_bytes());
                }
                fix_ipv4_checksum(f, ip);
            }
            Attack::SessionFlood => {
                let port = 1024 + (k % 64_512) as u16;
                let dst = FLOOD_SERVERS + (k % FLOOD_SERVER_COUNT) as u32;
                f[INNER_AT + 16..INNER_AT + 20].copy_from_slice(&dst.to_be_bytes());
                f[INNER_AT + 20..INNER_AT + 22].copy_from_slice(&port.to_be_bytes());
                fix_ipv4_checksums(f, INNER_AT);
            }
            Attack::Ptb | Attack::MalformedSoftwire | Attack::MalformedInternet => {}
        }
        t.len()
    }
}

impl Frames for AttackFrames {
    fn fill(&mut self, _q: usize, buf: &mut [u8]) -> usize {
        let n = self.frame(self.k, buf);
        self.k += 1;
        n
    }
    fn max_len(&self) -> usize {
        self.templates.iter().map(Vec::len).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    //! Each attack frame is what it claims, as etherparse reads it.
    use super::*;
    use etherparse::err::ipv4::HeaderError as V4Error;
    use etherparse::err::ipv4::HeaderSliceError as V4SliceError;
    use etherparse::err::ipv6::HeaderError as V6Error;
    use etherparse::err::ipv6::HeaderSliceError as V6SliceError;
    use etherparse::{
        Icmpv4Slice, Icmpv4Type, Icmpv6Slice, Icmpv6Type, IpNumber, Ipv4HeaderSlice, Ipv4Slice,
        Ipv6FragmentHeaderSlice, Ipv6HeaderSlice, Ipv6Slice, TcpHeaderSlice, UdpHeaderSlice,
    };

    fn aim() -> Aim {
        Aim { addrs: Addresses::default(), attacker: 1 << 16, b4s: 64, flows: 1024 }
    }

    /// The frames `0..n` of `attack`.
    fn frames_of(attack: Attack, aim: Aim, n: u64) -> Vec<Vec<u8>> {
        let g = AttackFrames::new(attack, aim);
        let mut buf = vec![0u8; g.max_len()];
        (0..n)
            .map(|k| {
                let len = g.frame(k, &mut buf);
                assert!(len > 0, "{attack:?} frame {k}");
                buf[..len].to_vec()
            })
            .collect()
    }

    fn ipv4_checksum_ok(h: &Ipv4HeaderSlice) -> bool {
        h.header_checksum() == h.to_header().calc_header_checksum()
    }

    /// The inner IPv4 packet of a softwire frame to the lab's endpoint, and its source.
    fn softwire(f: &[u8]) -> (Ipv6Slice<'_>, [u8; 16]) {
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        let v6 = Ipv6Slice::from_slice(&f[14..]).expect("IPv6");
        assert_eq!(v6.header().destination(), aim().addrs.aftr);
        let src = v6.header().source();
        (v6, src)
    }

    #[test]
    fn fragment_floods_are_fragments_that_never_complete() {
        let a = aim();
        let legit: Vec<[u8; 16]> = (0..a.b4s).map(|n| a.addrs.b4(n)).collect();
        let mut idents = std::collections::HashSet::new();
        for (k, f) in frames_of(Attack::FragSoftwire, a, 300).iter().enumerate() {
            let (v6, src) = softwire(f);
            assert_eq!(v6.header().next_header(), IpNumber::IPV6_FRAGMENTATION_HEADER);
            let frag = Ipv6FragmentHeaderSlice::from_slice(&f[54..]).unwrap();
            // A first fragment, more to come (that never do), a new identification.
            assert_eq!((frag.fragment_offset().value(), frag.more_fragments()), (0, true), "frame {k}");
            assert_eq!(frag.next_header(), IpNumber::IPV4);
            assert!(idents.insert(frag.identification()), "frame {k}: identification used before");
            let authorised = src[..6] == a.addrs.b4(0)[..6];
            assert!(!legit.contains(&src), "frame {k}: from a legitimate B4");
            match k % 3 {
                0 => assert_eq!(src, a.addrs.b4(a.attacker), "frame {k}"),
                1 => assert!(authorised && src != a.addrs.b4(a.attacker), "frame {k}: a new B4 of the prefix"),
                _ => assert!(!authorised && src[..6] == UNAUTHORISED[..6], "frame {k}: unauthorised"),
            }
        }
        let (first, last) = a.addrs.pool.range();
        let mut keys = std::collections::HashSet::new();
        for (k, f) in frames_of(Attack::FragInternet, a, 300).iter().enumerate() {
            let ip = Ipv4HeaderSlice::from_slice(&f[14..]).unwrap();
            assert!(ipv4_checksum_ok(&ip), "frame {k}");
            assert!(ip.is_fragmenting_payload(), "frame {k}");
            let dst = u32::from_be_bytes(ip.destination());
            assert!((first..=last).contains(&dst), "frame {k}: to the pool");
            assert_eq!(u32::from_be_bytes(ip.source()) >> 20, SPOOFED >> 20, "frame {k}: spoofed");
            // Alternately a first fragment and a last one, never both of one datagram.
            let off = ip.fragments_offset().value();
            assert_eq!((off == 0, ip.more_fragments()), (k % 2 == 0, k % 2 == 0), "frame {k}");
            assert!(keys.insert((ip.source(), ip.identification())), "frame {k}: a datagram seen before");
        }
    }

    #[test]
    fn a_session_flood_is_new_flows_of_one_subscriber() {
        let a = aim();
        let mut flows = std::collections::HashSet::new();
        for (k, f) in frames_of(Attack::SessionFlood, a, 70_000).iter().enumerate() {
            let (v6, src) = softwire(f);
            assert_eq!(src, a.addrs.b4(a.attacker));
            assert_eq!(v6.payload().ip_number, IpNumber::IPV4);
            let ip = Ipv4Slice::from_slice(v6.payload().payload).expect("inner IPv4");
            assert!(ipv4_checksum_ok(&ip.header()), "frame {k}");
            assert_eq!(ip.header().source(), a.addrs.inner(0).to_be_bytes());
            let udp = UdpHeaderSlice::from_slice(ip.payload().payload).unwrap();
            let want = udp
                .to_header()
                .calc_checksum_ipv4_raw(ip.header().source(), ip.header().destination(), &ip.payload().payload[8..])
                .unwrap();
            assert_eq!(udp.checksum(), want, "frame {k}: UDP checksum");
            assert!(flows.insert((udp.source_port(), ip.header().destination())), "frame {k}: a flow seen before");
        }
        assert!(flows.iter().map(|f| f.0).collect::<std::collections::HashSet<_>>().len() > 60_000);
    }

    #[test]
    fn forged_packet_too_big_quotes_what_it_claims() {
        let a = aim();
        let legit: std::collections::HashSet<(u32, u32, u16)> = (0..a.flows).map(|i| a.legit_flow(i)).collect();
        let g = frames_of(Attack::Ptb, a, 3 * a.flows as u64);
        for (k, f) in g.iter().enumerate() {
            let (v6, src) = softwire(f);
            assert_eq!(v6.payload().ip_number, IpNumber::IPV6_ICMP);
            let icmp = Icmpv6Slice::from_slice(v6.payload().payload).unwrap();
            assert!(icmp.is_checksum_valid(src, a.addrs.aftr), "frame {k}: ICMPv6 checksum");
            let Icmpv6Type::PacketTooBig { mtu } = icmp.icmp_type() else {
                panic!("frame {k}: {:?}", icmp.icmp_type())
            };
            let quoted = Ipv6HeaderSlice::from_slice(icmp.payload()).unwrap();
            let inner = Ipv4Slice::from_slice(&icmp.payload()[40..]).unwrap();
            let udp = UdpHeaderSlice::from_slice(inner.payload().payload).unwrap();
            let b4 = quoted.destination();
            let b4n = (0..a.b4s).find(|&n| a.addrs.b4(n) == b4).expect("quotes a packet to a legitimate B4");
            assert_eq!(inner.header().source(), a.addrs.server.to_be_bytes());
            let flow = (b4n, u32::from_be_bytes(inner.header().destination()), udp.destination_port());
            match k % 3 {
                0 => {
                    // A legitimate flow's packet, as the endpoint sent it, and an MTU no
                    // IPv6 link has.
                    assert!(mtu < 1280, "frame {k}: MTU {mtu}");
                    assert_eq!(quoted.source(), a.addrs.aftr, "frame {k}");
                    assert!(legit.contains(&flow), "frame {k}: {flow:?}");
                    assert_eq!(src, a.addrs.b4(a.attacker));
                }
                1 => {
                    // A plausible MTU, quoting a session that does not exist.
                    assert!(mtu >= 1280, "frame {k}");
                    assert_eq!(quoted.source(), a.addrs.aftr, "frame {k}");
                    assert!(!legit.contains(&flow), "frame {k}: {flow:?} is a legitimate flow");
                    assert_eq!(src[..6], ROUTERS[..6]);
                }
                _ => {
                    // A legitimate flow's packet, but not from the endpoint.
                    assert!(mtu >= 1280, "frame {k}");
                    assert_eq!(quoted.source(), NOT_THE_ENDPOINT, "frame {k}");
                    assert!(legit.contains(&flow), "frame {k}");
                }
            }
        }
    }

    /// What etherparse says of a malformed frame's flaw (the frame and its layers
    /// otherwise read as they should).
    fn check_flaw(flaw: Flaw, f: &[u8]) {
        let a = aim();
        if Flaw::SOFTWIRE.contains(&flaw) {
            assert_eq!(&f[12..14], &[0x86, 0xdd], "{flaw:?}");
            // The XDP program needs the destination to steer it to the engine.
            if flaw != Flaw::Ipv6Truncated {
                assert_eq!(&f[38..54], &a.addrs.aftr, "{flaw:?}");
                assert_eq!(&f[22..38], &a.addrs.b4(a.attacker), "{flaw:?}");
            }
        } else {
            assert_eq!(&f[12..14], &[0x08, 0x00], "{flaw:?}");
            if flaw != Flaw::Ipv4Truncated {
                let dst = u32::from_be_bytes(f[30..34].try_into().unwrap());
                assert!(a.addrs.in_pool(dst), "{flaw:?}: to the pool");
            }
        }
        let v6 = || Ipv6Slice::from_slice(&f[14..]);
        let inner = || Ipv4Slice::from_slice(v6().unwrap().payload().payload);
        let v4 = || Ipv4Slice::from_slice(&f[14..]);
        let l4 = || v4().unwrap().payload().payload;
        match flaw {
            Flaw::Ipv6Truncated => assert!(matches!(Ipv6HeaderSlice::from_slice(&f[14..]), Err(V6SliceError::Len(_)))),
            Flaw::Ipv6Version => assert!(matches!(
                Ipv6HeaderSlice::from_slice(&f[14..]),
                Err(V6SliceError::Content(V6Error::UnexpectedVersion { version_number: 4 }))
            )),
            Flaw::Ipv6LengthBeyond => assert!(matches!(v6(), Err(etherparse::err::ipv6::SliceError::Len(_)))),
            Flaw::Ipv6ExtensionBeyond => {
                assert_eq!(
                    Ipv6HeaderSlice::from_slice(&f[14..]).unwrap().next_header(),
                    IpNumber::IPV6_HEADER_HOP_BY_HOP
                );
                assert!(v6().is_err());
            }
            Flaw::NoNextHeader => assert_eq!(v6().unwrap().payload().ip_number, IpNumber::IPV6_NO_NEXT_HEADER),
            Flaw::InnerTruncated => {
                assert!(matches!(inner(), Err(etherparse::err::ipv4::SliceError::Len(_))));
                assert_eq!(v6().unwrap().payload().payload.len(), 12);
            }
            Flaw::InnerIhl => assert!(matches!(
                Ipv4HeaderSlice::from_slice(v6().unwrap().payload().payload),
                Err(V4SliceError::Content(V4Error::HeaderLengthSmallerThanHeader { ihl: 3 }))
            )),
            Flaw::InnerLengthBeyond => {
                let p = v6().unwrap().payload().payload;
                assert!(ipv4_checksum_ok(&Ipv4HeaderSlice::from_slice(p).unwrap()));
                assert!(matches!(inner(), Err(etherparse::err::ipv4::SliceError::Len(_))));
            }
            Flaw::InnerChecksum => assert!(!ipv4_checksum_ok(&inner().unwrap().header())),
            Flaw::InnerUdpTruncated => {
                let ip = inner().unwrap();
                assert!(ipv4_checksum_ok(&ip.header()) && ip.payload().ip_number == IpNumber::UDP);
                assert!(UdpHeaderSlice::from_slice(ip.payload().payload).is_err());
            }
            Flaw::Icmpv6Checksum => {
                let icmp = Icmpv6Slice::from_slice(v6().unwrap().payload().payload).unwrap();
                assert!(matches!(icmp.icmp_type(), Icmpv6Type::EchoRequest(_)));
                assert!(!icmp.is_checksum_valid(a.addrs.b4(a.attacker), a.addrs.aftr));
            }
            Flaw::Garbage => {
                assert_eq!(v6().unwrap().payload().ip_number, IpNumber::IPV4);
                assert!(matches!(
                    inner(),
                    Err(etherparse::err::ipv4::SliceError::Header(V4Error::UnexpectedVersion { .. }))
                ));
            }
            Flaw::Ipv4Truncated => assert!(matches!(Ipv4HeaderSlice::from_slice(&f[14..]), Err(V4SliceError::Len(_)))),
            Flaw::Ipv4Ihl => assert!(matches!(
                Ipv4HeaderSlice::from_slice(&f[14..]),
                Err(V4SliceError::Content(V4Error::HeaderLengthSmallerThanHeader { ihl: 3 }))
            )),
            Flaw::Ipv4Version => assert!(matches!(
                Ipv4HeaderSlice::from_slice(&f[14..]),
                Err(V4SliceError::Content(V4Error::UnexpectedVersion { version_number: 6 }))
            )),
            Flaw::Ipv4LengthBeyond | Flaw::Ipv4LengthShort => {
                assert!(ipv4_checksum_ok(&Ipv4HeaderSlice::from_slice(&f[14..]).unwrap()));
                assert!(matches!(v4(), Err(etherparse::err::ipv4::SliceError::Len(_))));
            }
            Flaw::Ipv4Checksum => assert!(!ipv4_checksum_ok(&v4().unwrap().header())),
            Flaw::UdpTruncated => {
                assert!(ipv4_checksum_ok(&v4().unwrap().header()));
                assert!(UdpHeaderSlice::from_slice(l4()).is_err());
            }
            Flaw::UdpLengthBeyond => {
                let udp = UdpHeaderSlice::from_slice(l4()).unwrap();
                assert!(udp.length() as usize > l4().len());
            }
            Flaw::TcpTruncated => {
                assert_eq!(v4().unwrap().payload().ip_number, IpNumber::TCP);
                assert!(TcpHeaderSlice::from_slice(l4()).is_err());
            }
            Flaw::Gre => {
                assert!(ipv4_checksum_ok(&v4().unwrap().header()));
                assert_eq!(v4().unwrap().payload().ip_number, IpNumber::GRE);
            }
            Flaw::IcmpTimestamp => {
                let icmp = Icmpv4Slice::from_slice(l4()).unwrap();
                assert!(matches!(icmp.icmp_type(), Icmpv4Type::TimestampRequest(_)), "{:?}", icmp.icmp_type());
            }
        }
    }

    #[test]
    fn malformed_frames_have_the_flaw_they_claim() {
        let a = aim();
        for (attack, flaws) in
            [(Attack::MalformedSoftwire, &Flaw::SOFTWIRE[..]), (Attack::MalformedInternet, &Flaw::INTERNET[..])]
        {
            let g = frames_of(attack, a, MALFORMED_COPIES as u64 * flaws.len() as u64);
            // Frames cycle through the flaws, each flaw in copies that differ.
            for (k, f) in g.iter().enumerate() {
                let flaw = flaws[k % flaws.len()];
                check_flaw(flaw, f);
                assert_eq!(f, &malformed(&a.addrs, a.attacker, flaw, (k / flaws.len()) as u32), "{flaw:?}");
            }
            for flaw in flaws {
                let copies: std::collections::HashSet<Vec<u8>> =
                    (0..MALFORMED_COPIES).map(|n| malformed(&a.addrs, a.attacker, *flaw, n)).collect();
                assert!(copies.len() > 1, "{flaw:?}: every copy the same");
            }
        }
    }

    /// An engine of the lab (the benchmark's instance: B4s in 2001:db8:b400::/48, pool
    /// 198.51.100.0/24) with a small session limit and rate, and the receiving end of
    /// its events.
    fn engine() -> (dataplane::Engine, crossbeam_channel::Receiver<dataplane::nat::events::SessionEvent>) {
        use dataplane::config::{EgressL2, EngineConfig, InstanceConfig, Ipv6Prefix};
        let lab = Addresses::default();
        let mut inst = InstanceConfig::new("lab", lab.aftr, Ipv6Prefix { addr: lab.b4(0), len: 48 }, lab.pool);
        inst.limits.max_sessions = 256;
        inst.limits.new_sessions_per_sec = 100;
        let mut c = EngineConfig::new(vec![inst]);
        let l2 = EgressL2 { src: lab.dst_mac, dst: lab.src_mac, vlan: None };
        (c.softwire_l2, c.internet_l2) = (l2, l2);
        let (mut e, events) = dataplane::Engine::new(&c, 0, 1).expect("the lab's configuration");
        e.set_clock(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64);
        (e, events)
    }

    /// Runs `frames` through `e`; how many it forwarded, and the change of each counter.
    fn run(e: &mut dataplane::Engine, frames: &[Vec<u8>]) -> (usize, Vec<(&'static str, u64)>) {
        use dataplane::counters::Counter;
        use dataplane::{Frame, HEADROOM, VecSink, Verdict};
        let c = e.counters();
        let before: Vec<u64> = Counter::ALL.iter().map(|&k| c.get(k)).collect();
        let mut forwarded = 0;
        let mut sink = VecSink::default();
        for f in frames {
            let mut buf = vec![0u8; HEADROOM + f.len()];
            buf[HEADROOM..].copy_from_slice(f);
            let mut v = [Verdict::Consumed];
            e.process_batch(&mut [Frame::new(&mut buf, HEADROOM, f.len())], &mut v, &mut sink);
            forwarded += matches!(v[0], Verdict::Forward(_)) as usize;
        }
        let moved = Counter::ALL
            .iter()
            .zip(before)
            .map(|(&k, b)| (k.name(), c.get(k) - b))
            .filter(|&(n, d)| d > 0 && n != "rx_frames" && n != "rx_bytes")
            .collect();
        (forwarded, moved)
    }

    fn moved(m: &[(&str, u64)], name: &str) -> u64 {
        m.iter().find(|(n, _)| *n == name).map_or(0, |&(_, v)| v)
    }

    #[test]
    fn the_engine_counts_each_attack_frame_where_its_attack_says() {
        let (mut e, _events) = engine();
        // Every malformed frame is dropped, in the counter its flaw names.
        for flaw in Flaw::SOFTWIRE.into_iter().chain(Flaw::INTERNET) {
            let Some(counter) = flaw.counter() else { continue };
            let attack =
                if Flaw::SOFTWIRE.contains(&flaw) { Attack::MalformedSoftwire } else { Attack::MalformedInternet };
            assert!(attack.counters().contains(&counter), "{flaw:?}: {counter} is not among {attack:?}'s");
            let f = malformed(&aim().addrs, aim().attacker, flaw, 3);
            assert_eq!(run(&mut e, &[f]), (0, vec![(counter, 1)]), "{flaw:?}");
        }
        // Legitimate sessions, which the forged PTBs quote.
        let a = Aim { b4s: 16, flows: 64, ..aim() };
        let legit = crate::generator::Traffic::softwire(&a.addrs, a.flows, a.b4s, crate::generator::Mix::UDP, 64, 1);
        let legit: Vec<Vec<u8>> = legit.templates.into_iter().map(|t| t.bytes).collect();
        assert_eq!(run(&mut e, &legit).0, a.flows, "the legitimate flows go through");
        let ptb = frames_of(Attack::Ptb, a, 3 * a.flows as u64);
        let (fwd, m) = run(&mut e, &ptb);
        assert_eq!(fwd, 0);
        assert_eq!(moved(&m, "drop_ptb_below_minimum"), a.flows as u64, "{m:?}");
        assert_eq!(moved(&m, "drop_icmp_error_no_session"), 2 * a.flows as u64, "{m:?}");
        assert_eq!(moved(&m, "softwire_mtu_learned"), 0, "{m:?}");
        for attack in [Attack::FragSoftwire, Attack::FragInternet, Attack::SessionFlood] {
            let frames = frames_of(attack, a, 3000);
            let (fwd, m) = run(&mut e, &frames);
            let dropped: u64 = attack.counters().iter().map(|c| moved(&m, c)).sum();
            if attack == Attack::SessionFlood {
                // The subscriber's first sessions, up to its rate, go through; of the
                // rest, as many as the ICMP error budget lets hear why (RFC 6888 REQ-11).
                let through = moved(&m, "in2out");
                assert!(through <= 100 && dropped + through == frames.len() as u64, "{m:?}");
                assert_eq!(fwd as u64, through + moved(&m, "dest_unreachable_sent"), "{m:?}");
            } else {
                // Nothing completes; the unauthorised third, at least, is dropped at once.
                assert_eq!(fwd, 0, "{attack:?}: {m:?}");
                assert!(dropped >= 1000, "{attack:?}: {m:?}");
            }
        }
        // The legitimate sessions are all still there, their packets still go through.
        assert_eq!(run(&mut e, &legit), (a.flows, vec![("in2out", a.flows as u64)]));
    }

    #[test]
    fn attacks_parse_by_name() {
        for a in Attack::ALL {
            assert_eq!(Attack::parse(a.name()), Ok(a));
            assert!(!a.counters().is_empty());
        }
        assert!(Attack::parse("smurf").unwrap_err().contains("frag-softwire"));
    }
}
