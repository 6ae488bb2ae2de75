//! Test harness: frames are built and checked with etherparse, an implementation
//! independent of the engine's own wire code, so checksums and layouts are verified
//! against a second opinion.
#![allow(dead_code)]

use crossbeam_channel::Receiver;
use dataplane::config::{EgressL2, EngineConfig, InstanceConfig, Ipv4Prefix, Ipv6Prefix};
use dataplane::counters::Counter;
use dataplane::nat::events::SessionEvent;
use dataplane::{Egress, Engine, FragmentPorts, Frame, HEADROOM, VecSink, Verdict};
use etherparse::{EtherType, Ethernet2Header, IpNumber, Ipv6FlowLabel, Ipv6Header, PacketBuilder, TcpOptionElement};

pub const AFTR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const B4_SIDE_NH: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb4];
pub const INET_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const INET_GW: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];

pub const ENDPOINT: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const B4_A: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0xb4, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
pub const B4_B: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0xb4, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1];
pub const B4_ROGUE: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0x66, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
pub const ROUTER6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0xee, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe];

pub const HOST: [u8; 4] = [192, 168, 1, 10];
pub const SERVER: [u8; 4] = [203, 0, 113, 80];
pub const SERVER2: [u8; 4] = [203, 0, 113, 81];
pub const POOL: [u8; 4] = [198, 51, 100, 0];

pub fn instance() -> InstanceConfig {
    InstanceConfig::new(
        "dslite1",
        ENDPOINT,
        Ipv6Prefix { addr: [0x20, 0x01, 0x0d, 0xb8, 0xb4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], len: 40 },
        Ipv4Prefix { addr: u32::from_be_bytes(POOL), len: 30 },
    )
}

pub fn config(inst: InstanceConfig) -> EngineConfig {
    let mut c = EngineConfig::new(vec![inst]);
    c.softwire_l2 = EgressL2 { src: AFTR_MAC, dst: B4_SIDE_NH, vlan: None };
    c.internet_l2 = EgressL2 { src: INET_MAC, dst: INET_GW, vlan: None };
    c.max_sessions = 4096;
    c.max_subscribers = 256;
    c
}

/// The result of processing one frame.
pub struct Out {
    pub verdict: Verdict,
    pub frame: Vec<u8>,
    /// The frame's hint after processing (set for a fragment handed to another worker).
    pub frame_hint: Option<FragmentPorts>,
    pub sink: VecSink,
}

impl Out {
    /// The frames emitted on the side, each checked to leave by `egress`.
    pub fn emitted_to(&self, egress: Egress) -> Vec<&Vec<u8>> {
        self.sink
            .emitted
            .iter()
            .map(|(e, f)| {
                assert_eq!(*e, egress);
                f
            })
            .collect()
    }
}

pub struct Harness {
    pub eng: Engine,
    pub events: Receiver<SessionEvent>,
    pub now_ms: u64,
}

impl Harness {
    pub fn new(cfg: EngineConfig) -> Self {
        Self::worker(cfg, 0)
    }
    pub fn worker(cfg: EngineConfig, id: u16) -> Self {
        Self::of_board(cfg, id, std::sync::Arc::new(dataplane::nat::owners::Owners::new()))
    }
    /// The `cfg.workers` workers of one board, sharing their claims on subscribers.
    pub fn board(cfg: EngineConfig) -> Vec<Self> {
        let owners = std::sync::Arc::new(dataplane::nat::owners::Owners::new());
        (0..cfg.workers).map(|id| Self::of_board(cfg.clone(), id, owners.clone())).collect()
    }
    fn of_board(cfg: EngineConfig, id: u16, owners: std::sync::Arc<dataplane::nat::owners::Owners>) -> Self {
        let (mut eng, events) = Engine::with_owners(&cfg, id, 42, owners).expect("valid config");
        let now_ms = 1_700_000_000_000;
        eng.set_clock(now_ms);
        Harness { eng, events, now_ms }
    }
    pub fn default() -> Self {
        Self::new(config(instance()))
    }
    pub fn advance(&mut self, secs: u64) {
        self.now_ms += secs * 1000;
        self.eng.set_clock(self.now_ms);
    }
    pub fn advance_ms(&mut self, ms: u64) {
        self.now_ms += ms;
        self.eng.set_clock(self.now_ms);
    }
    pub fn run(&mut self, frame: &[u8]) -> Out {
        self.run_hint(frame, None)
    }
    pub fn run_hint(&mut self, frame: &[u8], hint: Option<FragmentPorts>) -> Out {
        // Exactly the frame after the headroom: a write past its end panics.
        let mut buf = vec![0u8; HEADROOM + frame.len()];
        buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        let mut sink = VecSink::default();
        let mut f = Frame::new(&mut buf, HEADROOM, frame.len());
        f.hint = hint;
        let verdict = self.eng.process(&mut f, &mut sink);
        let out = f.bytes().to_vec();
        Out { verdict, frame: out, frame_hint: f.hint, sink }
    }
    pub fn counter(&self, c: Counter) -> u64 {
        self.eng.counters().get(c)
    }
    pub fn drain_events(&self) -> Vec<SessionEvent> {
        self.events.try_iter().collect()
    }
    /// Runs a frame that must be forwarded out of `egress`, returning the frame.
    pub fn forward(&mut self, frame: &[u8], egress: Egress) -> Vec<u8> {
        let o = self.run(frame);
        assert_eq!(o.verdict, Verdict::Forward(egress), "counters: {:?}", self.eng.counters().nonzero());
        o.frame
    }
    /// Runs a softwire frame that can get no mapping for `reason`: dropped, and its host
    /// answered host unreachable through the softwire (RFC 6888 REQ-11).
    pub fn refused(&mut self, frame: &[u8], reason: Counter) {
        let (before, sent) = (self.counter(reason), self.counter(Counter::UnreachableSent));
        let back = self.forward(frame, Egress::Softwire);
        assert_eq!(&back[54 + 20..54 + 22], &[3, 1], "host unreachable");
        assert_eq!(self.counter(reason), before + 1);
        assert_eq!(self.counter(Counter::UnreachableSent), sent + 1);
    }
    /// Runs a frame that must be dropped for `reason`.
    pub fn dropped(&mut self, frame: &[u8], reason: Counter) {
        let before = self.counter(reason);
        let o = self.run(frame);
        assert_eq!(o.verdict, Verdict::Drop(reason), "counters: {:?}", self.eng.counters().nonzero());
        assert_eq!(self.counter(reason), before + 1);
    }
}

// ----- Builders (etherparse) -----

pub fn ip4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, ttl).udp(sport, dport).write(&mut v, payload).unwrap();
    v
}

pub fn ip4_tcp(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    ttl: u8,
    flags: &str,
    mss: Option<u16>,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ipv4(src, dst, ttl).tcp(sport, dport, 1000, 65535);
    for c in flags.chars() {
        b = match c {
            'S' => b.syn(),
            'A' => b.ack(2000),
            'F' => b.fin(),
            'R' => b.rst(),
            'P' => b.psh(),
            _ => panic!("flag {c}"),
        };
    }
    if let Some(m) = mss {
        b = b
            .options(&[
                TcpOptionElement::MaximumSegmentSize(m),
                TcpOptionElement::Noop,
                TcpOptionElement::Noop,
                TcpOptionElement::SelectiveAcknowledgementPermitted,
            ])
            .unwrap();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

pub fn ip4_echo(src: [u8; 4], dst: [u8; 4], id: u16, seq: u16, ttl: u8, request: bool, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv4(src, dst, ttl);
    let mut v = Vec::new();
    if request {
        b.icmpv4_echo_request(id, seq).write(&mut v, payload).unwrap();
    } else {
        b.icmpv4_echo_reply(id, seq).write(&mut v, payload).unwrap();
    }
    v
}

/// An ICMPv4 error quoting `quoted`.
pub fn ip4_icmp_error(src: [u8; 4], dst: [u8; 4], ty: u8, code: u8, rest: u32, quoted: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest.to_be_bytes());
    m.extend_from_slice(quoted);
    let c = ones_checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    let mut ip = etherparse::Ipv4Header::new(m.len() as u16, 64, IpNumber::ICMP, src, dst).unwrap();
    ip.dont_fragment = false;
    ip.header_checksum = ip.calc_header_checksum();
    let mut v = ip.to_bytes().to_vec();
    v.extend_from_slice(&m);
    v
}

/// RFC 1071 checksum written independently of the engine's.
pub fn ones_checksum(d: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in d.chunks(2) {
        s += u32::from(c[0]) << 8 | c.get(1).map(|&b| u32::from(b)).unwrap_or(0);
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

pub fn eth(dst: [u8; 6], src: [u8; 6], ethertype: EtherType) -> Vec<u8> {
    Ethernet2Header { source: src, destination: dst, ether_type: ethertype }.to_bytes().to_vec()
}

pub fn ip6_header(
    src: [u8; 16],
    dst: [u8; 16],
    nh: IpNumber,
    payload_len: usize,
    hop: u8,
    tc: u8,
    flow: u32,
) -> Vec<u8> {
    Ipv6Header {
        traffic_class: tc,
        flow_label: Ipv6FlowLabel::try_new(flow).unwrap(),
        payload_length: payload_len as u16,
        next_header: nh,
        hop_limit: hop,
        source: src,
        destination: dst,
    }
    .to_bytes()
    .to_vec()
}

/// A softwire frame from `b4` to the endpoint carrying `inner`.
pub fn softwire(b4: [u8; 16], inner: &[u8]) -> Vec<u8> {
    let mut f = eth(AFTR_MAC, B4_SIDE_NH, EtherType::IPV6);
    f.extend(ip6_header(b4, ENDPOINT, IpNumber::IPV4, inner.len(), 64, 0, 0));
    f.extend_from_slice(inner);
    f
}

/// Sets up a UDP mapping for HOST:5000 of B4_A; returns (external address, port).
pub fn udp_mapping(h: &mut Harness) -> ([u8; 4], u16) {
    let out = h.forward(&softwire(B4_A, &ip4_udp(HOST, SERVER, 5000, 53, 64, b"query")), Egress::Internet);
    (out_src(&out), out_sport(&out))
}

/// A softwire frame from `b4` whose outer header has traffic class `tc`.
pub fn softwire_tc(b4: [u8; 16], tc: u8, inner: &[u8]) -> Vec<u8> {
    let mut f = eth(AFTR_MAC, B4_SIDE_NH, EtherType::IPV6);
    f.extend(ip6_header(b4, ENDPOINT, IpNumber::IPV4, inner.len(), 64, tc, 0));
    f.extend_from_slice(inner);
    f
}

/// Rewrites IPv4 header fields with `edit` and recomputes the header checksum.
pub fn edit_ipv4(ip: &[u8], edit: impl FnOnce(&mut etherparse::Ipv4Header)) -> Vec<u8> {
    let mut hdr = etherparse::Ipv4HeaderSlice::from_slice(ip).unwrap().to_header();
    let old_len = hdr.header_len();
    edit(&mut hdr);
    hdr.header_checksum = hdr.calc_header_checksum();
    let mut v = hdr.to_bytes().to_vec();
    v.extend_from_slice(&ip[old_len..]);
    v
}

/// An IPv4 frame from the Internet.
pub fn from_internet(ip: &[u8]) -> Vec<u8> {
    let mut f = eth(INET_MAC, INET_GW, EtherType::IPV4);
    f.extend_from_slice(ip);
    f
}

/// The frame the AFTR should send to the Internet for `ip`.
pub fn to_internet(ip: &[u8]) -> Vec<u8> {
    let mut f = eth(INET_GW, INET_MAC, EtherType::IPV4);
    f.extend_from_slice(ip);
    f
}

/// The frame the AFTR should send to `b4` for `ip` (flow label taken from `actual`, the
/// one field that depends on the engine's session numbering).
pub fn to_b4(b4: [u8; 16], ip: &[u8], actual: &[u8]) -> Vec<u8> {
    let flow = if actual.len() >= 18 { u32::from_be_bytes([0, actual[15] & 0x0f, actual[16], actual[17]]) } else { 0 };
    let mut f = eth(B4_SIDE_NH, AFTR_MAC, EtherType::IPV6);
    f.extend(ip6_header(ENDPOINT, b4, IpNumber::IPV4, ip.len(), 64, ip[1], flow));
    f.extend_from_slice(ip);
    f
}

/// Source port of a TCP/UDP IPv4 frame sent to the Internet (no VLAN).
pub fn out_sport(frame: &[u8]) -> u16 {
    let ihl = ((frame[14] & 0x0f) as usize) * 4;
    u16::from_be_bytes([frame[14 + ihl], frame[15 + ihl]])
}
pub fn out_src(frame: &[u8]) -> [u8; 4] {
    frame[26..30].try_into().unwrap()
}
/// The echo identifier of an ICMP frame to the Internet.
pub fn out_icmp_id(frame: &[u8]) -> u16 {
    let ihl = ((frame[14] & 0x0f) as usize) * 4;
    u16::from_be_bytes([frame[18 + ihl], frame[19 + ihl]])
}

/// Checks every checksum of an Ethernet frame with etherparse (IPv4 header, TCP/UDP/ICMP,
/// and for IPv6 the inner IPv4 packet).
pub fn assert_checksums(frame: &[u8]) {
    let p = etherparse::SlicedPacket::from_ethernet(frame).expect("etherparse parses the frame");
    match &p.net {
        Some(etherparse::NetSlice::Ipv4(v4)) => check_ipv4(v4.header().slice(), frame),
        Some(etherparse::NetSlice::Ipv6(v6)) => {
            if v6.header().next_header() == IpNumber::IPV4 {
                let inner = v6.payload().payload;
                check_ipv4_packet(inner);
            }
        }
        _ => panic!("not IP"),
    }
}

fn check_ipv4(hdr: &[u8], frame: &[u8]) {
    let off = frame.windows(hdr.len()).position(|w| w == hdr).unwrap();
    check_ipv4_packet(&frame[off..]);
}

pub fn check_ipv4_packet(ip: &[u8]) {
    if let Err(e) = ipv4_checksums(ip) {
        panic!("{e}");
    }
}

/// Verifies the checksums of an IPv4 packet (header, and TCP/UDP/ICMP for a whole
/// datagram; the quoted header of an ICMP error).
pub fn ipv4_checksums(ip: &[u8]) -> Result<(), String> {
    let h = etherparse::Ipv4HeaderSlice::from_slice(ip).map_err(|e| format!("ipv4 header: {e}"))?;
    if h.header_checksum() != h.to_header().calc_header_checksum() {
        return Err("IPv4 header checksum".into());
    }
    let hl = h.slice().len();
    let total = h.total_len() as usize;
    if total > ip.len() || total < hl {
        return Err("IPv4 total length".into());
    }
    let l4 = &ip[hl..total];
    if h.more_fragments() || h.fragments_offset().value() != 0 {
        return Ok(());
    }
    match h.protocol() {
        IpNumber::UDP => {
            let u = etherparse::UdpHeaderSlice::from_slice(l4).map_err(|e| e.to_string())?;
            if u.checksum() != 0 {
                let want = u
                    .to_header()
                    .calc_checksum_ipv4_raw(h.source(), h.destination(), &l4[8..])
                    .map_err(|e| e.to_string())?;
                if u.checksum() != want {
                    return Err("UDP checksum".into());
                }
            }
        }
        IpNumber::TCP => {
            let t = etherparse::TcpHeaderSlice::from_slice(l4).map_err(|e| e.to_string())?;
            let payload = &l4[t.slice().len()..];
            let want = t
                .to_header()
                .calc_checksum_ipv4_raw(h.source(), h.destination(), payload)
                .map_err(|e| e.to_string())?;
            if t.checksum() != want {
                return Err("TCP checksum".into());
            }
        }
        IpNumber::ICMP => {
            if ones_checksum(l4) != 0 {
                return Err("ICMP checksum".into());
            }
            // An ICMP error quotes a packet whose header checksum must be right too.
            if matches!(l4[0], 3 | 11 | 12) && l4.len() >= 28 {
                let q = etherparse::Ipv4HeaderSlice::from_slice(&l4[8..]).map_err(|e| e.to_string())?;
                if q.header_checksum() != q.to_header().calc_header_checksum() {
                    return Err("quoted IPv4 header checksum".into());
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// The ICMPv4 error (type `ty`, code `code`, rest of header `rest`) from `src` to `dst`
/// quoting `quoted` whole, as the AFTR writes it: TTL 64, DF clear, the identification
/// taken from `actual` (an Ethernet frame whose IPv4 header is at 14 or, softwire, 54).
pub fn icmp4_error_as_sent(
    src: [u8; 4],
    dst: [u8; 4],
    ty: u8,
    code: u8,
    rest: u32,
    quoted: &[u8],
    actual: &[u8],
) -> Vec<u8> {
    let at = if u16::from_be_bytes([actual[12], actual[13]]) == 0x86dd { 54 } else { 14 };
    let id = u16::from_be_bytes([actual[at + 4], actual[at + 5]]);
    edit_ipv4(&ip4_icmp_error(src, dst, ty, code, rest, quoted), |h| h.identification = id)
}

// ----- Fragments -----

/// Splits the fragmentable part `part` of a softwire packet from `b4` into IPv6
/// fragments at `cuts` (multiples of 8); the Fragment header's next header is `nh`.
pub fn ipv6_fragments_nh(b4: [u8; 16], nh: u8, part: &[u8], cuts: &[usize], ident: u32) -> Vec<Vec<u8>> {
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(part.len());
    bounds
        .windows(2)
        .map(|w| {
            let (a, b) = (w[0], w[1]);
            let more = b < part.len();
            let mut f = eth(AFTR_MAC, B4_SIDE_NH, EtherType::IPV6);
            f.extend(ip6_header(b4, ENDPOINT, IpNumber::IPV6_FRAGMENTATION_HEADER, 8 + b - a, 64, 0, 0));
            f.extend_from_slice(&[nh, 0]);
            f.extend_from_slice(&((a as u16) | more as u16).to_be_bytes());
            f.extend_from_slice(&ident.to_be_bytes());
            f.extend_from_slice(&part[a..b]);
            f
        })
        .collect()
}

/// Splits a softwire packet (IPv6 payload = inner IPv4) into IPv6 fragments at `cuts`.
pub fn ipv6_fragments(b4: [u8; 16], inner: &[u8], cuts: &[usize], ident: u32) -> Vec<Vec<u8>> {
    ipv6_fragments_nh(b4, 4, inner, cuts, ident)
}

/// Splits an IPv4 packet into two fragments at `cut` (a multiple of 8 of the payload),
/// with identification `ident`.
pub fn ipv4_fragments_id(ip: &[u8], cut: usize, ident: u16) -> (Vec<u8>, Vec<u8>) {
    let hdr = etherparse::Ipv4HeaderSlice::from_slice(ip).unwrap().to_header();
    let payload = &ip[20..];
    let mut h1 = hdr.clone();
    h1.dont_fragment = false;
    h1.more_fragments = true;
    h1.identification = ident;
    h1.total_len = (20 + cut) as u16;
    h1.header_checksum = h1.calc_header_checksum();
    let mut h2 = h1.clone();
    h2.more_fragments = false;
    h2.fragment_offset = etherparse::IpFragOffset::try_new((cut / 8) as u16).unwrap();
    h2.total_len = (20 + payload.len() - cut) as u16;
    h2.header_checksum = h2.calc_header_checksum();
    let mut f1 = h1.to_bytes().to_vec();
    f1.extend_from_slice(&payload[..cut]);
    let mut f2 = h2.to_bytes().to_vec();
    f2.extend_from_slice(&payload[cut..]);
    (f1, f2)
}

/// Splits an IPv4 packet into two fragments at `cut` (identification 0x4242).
pub fn ipv4_fragments(ip: &[u8], cut: usize) -> (Vec<u8>, Vec<u8>) {
    ipv4_fragments_id(ip, cut, 0x4242)
}
