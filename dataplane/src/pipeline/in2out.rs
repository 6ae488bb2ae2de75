//! Softwire from a B4 to the Internet: validation, decapsulation, NAT inside to outside.
//! Hot path (see `pipeline/mod.rs`).

use super::BatchCtx;
use super::statics::outbound_port;
use crate::counters::Counter;
use crate::frame::{Egress, Frame, Sink, Verdict};
use crate::nat::ports::PortClass;
use crate::nat::session::{Session, TimerClass, tcp_flags};
use crate::wire::checksum;
use crate::wire::icmp as wicmp;
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::{WireError, pcp, proto, tcp, udp};

/// 192.0.0.1, the AFTR's IPv4 address on the softwire (RFC 6333 section 5.7): the source
/// of ICMPv4 errors the AFTR sends to a B4's hosts.
pub const AFTR_IPV4: u32 = 0xc000_0001;

impl BatchCtx<'_> {
    /// An IPv6 frame: softwire traffic or ICMPv6 to one of our endpoints; anything else
    /// goes to the kernel.
    pub(crate) fn softwire(&mut self, f: &mut Frame, l3: usize, sink: &mut dyn Sink) -> Verdict {
        let end = f.start + f.len;
        let (dst, src, total, nh) = match Ipv6Packet::new_checked(&f.buf[l3..end]) {
            Ok(p) => (p.dst(), p.src(), p.total_len(), p.next_header()),
            Err(_) => return self.drop(Counter::DropMalformedIpv6),
        };
        let Some(inst) = self.instance_of_endpoint(&dst) else {
            return self.pass();
        };
        if nh == proto::IPV4_IN_IP || nh == proto::IPV6_FRAG {
            // A B4 of a location the peer board serves: on to it, fragments and all.
            if let Some(v) = self.steer_to_peer(f, l3, total, inst, &src) {
                return v;
            }
        }
        if nh == proto::IPV4_IN_IP {
            // The common case: no extension headers.
            return self.softwire_upper(f, l3, total, nh, ipv6::HEADER_LEN, inst, sink);
        }
        let up = match ipv6::walk(&f.buf[l3..l3 + total]) {
            Ok(u) => u,
            Err(WireError::BadExtension) => return self.drop(Counter::DropIpv6Extension),
            Err(_) => return self.drop(Counter::DropMalformedIpv6),
        };
        if up.frag.is_some() {
            // A fragment of a softwire packet (RFC 6333 section 5.3: the AFTR reassembles),
            // kept only for an authorised B4 (section 5.2; decision 0013).
            if !self.b4_authorised(inst, &src) {
                return self.drop(Counter::DropB4NotAuthorised);
            }
            // Nor for a B4 this board does not serve now (decision 0012).
            if let Err(c) = self.nat.b4_served(inst, &src) {
                return self.drop(c);
            }
            if let Some(w) = self.nat.foreign_owner(self.prehash, inst, &src) {
                return self.handoff_to(w, Counter::HandedOffSoftwire);
            }
            return self.reassemble6(f, l3, total, up, inst, sink);
        }
        self.softwire_upper(f, l3, total, up.protocol, up.offset, inst, sink)
    }

    /// Sends a softwire frame from `b4` on to the peer board when the board is standby
    /// for the B4's location and the peer active for it (decision 0012): the ND answer
    /// for the endpoint brings every location's B4s to one board. None: not the peer's.
    #[inline]
    fn steer_to_peer(&mut self, f: &mut Frame, l3: usize, total: usize, inst: u8, b4: &[u8; 16]) -> Option<Verdict> {
        let (mac, peer_active) = self.peer;
        if peer_active == 0 || mac == [0; 6] || self.nat.b4_served(inst, b4) != Err(Counter::DropLocationStandby) {
            return None;
        }
        let loc = self.nat.config(inst).location_of_b4(b4);
        if peer_active & (1 << (loc % 64)) == 0 || !self.b4_authorised(inst, b4) {
            return None;
        }
        // Routed on, one hop further: a transient loop between two boards ends.
        let hl = &mut f.buf[l3 + 7];
        if *hl <= 1 {
            return Some(self.drop(Counter::DropPeerHopLimit));
        }
        *hl -= 1;
        self.count(Counter::SteeredToPeer);
        self.softwire_dst = mac;
        Some(self.emit_l3(f, l3, total, Egress::Softwire))
    }

    /// A whole (unfragmented or reassembled) IPv6 packet to endpoint `inst`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn softwire_upper(
        &mut self,
        f: &mut Frame,
        l3: usize,
        total: usize,
        protocol: u8,
        off: usize,
        inst: u8,
        sink: &mut dyn Sink,
    ) -> Verdict {
        match protocol {
            proto::IPV4_IN_IP => {}
            proto::ICMPV6 => return self.icmpv6_to_endpoint(f, l3, total, off, inst),
            _ => return self.drop(Counter::DropSoftwireNextHeader),
        }
        let (b4, tc) = {
            let p = Ipv6Packet::new_unchecked(&f.buf[l3..]);
            (p.src(), p.traffic_class())
        };
        // RFC 6333 section 5.2 / 7: only authorised B4s.
        if !self.b4_authorised(inst, &b4) {
            return self.drop(Counter::DropB4NotAuthorised);
        }
        if let Err(c) = self.nat.b4_served(inst, &b4) {
            return self.drop(c);
        }
        if let Some(w) = self.nat.foreign_owner(self.prehash, inst, &b4) {
            return self.handoff_to(w, Counter::HandedOffSoftwire);
        }
        let ip_at = l3 + off;
        let avail = l3 + total - ip_at;
        let ok = match Ipv4Packet::new_checked(&f.buf[ip_at..ip_at + avail]) {
            Ok(p) => p.verify_checksum(),
            Err(_) => return self.drop(Counter::DropMalformedIpv4),
        };
        if !ok {
            return self.drop(Counter::DropBadIpv4Checksum);
        }
        // RFC 6040 section 4.2: the outer ECN field combines into the inner one, and a CE
        // mark on a packet whose sender cannot take it is dropped.
        let tos = f.buf[ip_at + 1];
        match ecn_decapsulate(tc & 3, tos & 3) {
            None => return self.drop(Counter::DropEcnCeNotEct),
            Some(ecn) if ecn != tos & 3 => {
                Ipv4Packet::new_unchecked(&mut f.buf[ip_at..]).set_tos_adjust(tos & !3 | ecn);
            }
            Some(_) => {}
        }
        self.nat_in2out(f, ip_at, inst, &b4, sink)
    }

    /// NAT inside to outside of the decapsulated IPv4 packet at `ip_at` from `b4`.
    #[inline]
    pub(crate) fn nat_in2out(
        &mut self,
        f: &mut Frame,
        ip_at: usize,
        inst: u8,
        b4: &[u8; 16],
        sink: &mut dyn Sink,
    ) -> Verdict {
        let (src, dst, ttl, protocol, hl, ip_len, frag_off, is_frag) = {
            let p = Ipv4Packet::new_unchecked(&f.buf[ip_at..]);
            (p.src(), p.dst(), p.ttl(), p.protocol(), p.header_len(), p.total_len(), p.frag_offset(), p.is_fragment())
        };
        let cfg = &self.hot[inst as usize];
        let internet_mtu = cfg.internet_mtu as usize;
        // RFC 6333 section 5.7: inner sources are private or 192.0.0.0/29; others by
        // policy, but for the B4's own address (or port range: decision 0019).
        let mut own = false;
        if !ipv4::is_private_or_b4(src) {
            let port = outbound_port(protocol, is_frag && frag_off != 0, &f.buf[ip_at + hl..ip_at + ip_len]);
            match self.nat.statics.outbound(inst, b4, src, port) {
                Some(Ok(())) => own = true,
                Some(Err(c)) => return self.drop(c),
                None if !cfg.allow_public_inner => return self.drop(Counter::DropInnerSourcePolicy),
                None => {}
            }
        }
        if !own
            && cfg.pcp_server != 0
            && dst == cfg.pcp_server
            && protocol == proto::UDP
            && ip_len >= hl + udp::HEADER_LEN
            && udp::dst_port(&f.buf[ip_at + hl..]) == pcp::PORT
        {
            // To the PCP server (decision 0023).
            return self.pcp_request(f, ip_at, inst, b4, sink);
        }
        if is_martian(dst) {
            return self.drop(Counter::DropMartian);
        }
        if ttl <= 1 {
            // RFC 1812 section 5.3.1: time exceeded back to the host, through its softwire.
            return self.time_exceeded_to_b4(f, ip_at, inst, b4, sink);
        }
        if ip_len > internet_mtu && Ipv4Packet::new_unchecked(&f.buf[ip_at..]).dont_frag() && !self.nat.serves(dst) {
            // RFC 1191: too big for the Internet side, and not to be fragmented.
            return self.frag_needed_to_b4(f, ip_at, inst, b4, internet_mtu as u16, sink);
        }
        if own {
            self.learn_softwire_next_hop();
            self.count(Counter::OwnAddressIn2Out);
            return self.send_outbound(f, ip_at, ip_len, dst, internet_mtu, sink);
        }
        let l4 = ip_at + hl;
        let l4_end = ip_at + ip_len;
        if is_frag && frag_off != 0 {
            return self.in2out_fragment(f, ip_at, ip_len, inst, b4, dst, sink);
        }
        let verdict = match protocol {
            proto::UDP | proto::TCP => self.in2out_l4(f, ip_at, l4, l4_end, protocol, inst, b4, src, dst, is_frag),
            proto::ICMP => {
                if wicmp::check(&f.buf[l4..l4_end]).is_err() {
                    return self.drop(Counter::DropMalformedL4);
                }
                match wicmp::msg_type(&f.buf[l4..]) {
                    // A first fragment carries the identifier; the checksum update is incremental.
                    wicmp::v4::ECHO_REQUEST => self.in2out_echo(f, ip_at, l4, inst, b4, src, dst),
                    t if wicmp::v4_is_error(t) && !is_frag => {
                        return self.icmp_error_in2out(f, ip_at, l4, l4_end, inst, b4, sink);
                    }
                    _ => return self.drop(Counter::DropUnsupportedIcmp),
                }
            }
            _ => return self.drop(Counter::DropUnsupportedProtocol),
        };
        match verdict {
            Ok(()) => {}
            Err(c) if no_mapping(c) => return self.unreachable_to_b4(f, ip_at, inst, b4, c, sink),
            Err(c) => return self.drop(c),
        }
        self.rewrite_ident(f, ip_at, b4, src);
        self.count(Counter::In2Out);
        self.send_outbound(f, ip_at, ip_len, dst, internet_mtu, sink)
    }

    /// Rewrites the identification of the outbound IPv4 packet at `ip_at` from host
    /// `src` behind `b4` when the datagram is not atomic (DF clear, or a fragment): the
    /// hosts behind one external address choose their identifications alone, and a
    /// server reassembling their fragments would mix two datagrams with one
    /// (RFC 6864, RFC 7857's IP Identification requirement). The host's value is shifted
    /// by a secret offset per (B4, host, destination, protocol): every fragment of a
    /// datagram gets the same new value, in any order and without state, and the host's
    /// own uniqueness within its flow is kept. Atomic datagrams keep theirs (RFC 6864
    /// section 4: their identification means nothing).
    #[inline]
    pub(crate) fn rewrite_ident(&mut self, f: &mut Frame, ip_at: usize, b4: &[u8; 16], src: u32) {
        let (atomic, ident, dst, protocol) = {
            let p = Ipv4Packet::new_unchecked(&f.buf[ip_at..]);
            (p.dont_frag() && !p.is_fragment(), p.ident(), p.dst(), p.protocol())
        };
        if atomic {
            return;
        }
        let new = ident.wrapping_add(self.nat.ident_offset(b4, src, dst, protocol));
        Ipv4Packet::new_unchecked(&mut f.buf[ip_at..]).set_ident_adjust(new);
    }

    /// Sends a translated packet to the Internet, in fragments if it is larger than
    /// `mtu` (DF packets that large were refused before translation), or hairpins it
    /// to another subscriber when its destination is one of our external addresses
    /// (RFC 4787 REQ-9, RFC 5382 REQ-8, RFC 5508 REQ-7). A hairpinned packet is
    /// forwarded once: one TTL decrement.
    #[inline]
    pub(crate) fn send_outbound(
        &mut self,
        f: &mut Frame,
        ip_at: usize,
        ip_len: usize,
        dst: u32,
        mtu: usize,
        sink: &mut dyn Sink,
    ) -> Verdict {
        // Hairpinned here when this board serves the address; an address of a location
        // the peer is active for goes out, and the routers bring it to the peer.
        if self.nat.serves(dst) {
            self.count(Counter::Hairpin);
            let v = self.nat_out2in(f, ip_at, sink);
            if let Verdict::Handoff(_) = v {
                // The owner takes it as an IPv4 frame from outside.
                self.emit_l3(f, ip_at, ip_len, Egress::Internet);
            }
            return v;
        }
        if self.nat.statics.is_owned(dst) {
            // Another B4's own address: to it, untranslated.
            self.count(Counter::Hairpin);
            return self.own_out2in(f, ip_at, sink);
        }
        Ipv4Packet::new_unchecked(&mut f.buf[ip_at..]).decrement_ttl();
        if ip_len > mtu {
            return self.fragment_ipv4(f, ip_at, ip_len, mtu, sink);
        }
        self.emit_l3(f, ip_at, ip_len, Egress::Internet)
    }

    /// Finds or creates the session of an outbound TCP/UDP packet and rewrites it.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn in2out_l4(
        &mut self,
        f: &mut Frame,
        ip_at: usize,
        l4: usize,
        l4_end: usize,
        protocol: u8,
        inst: u8,
        b4: &[u8; 16],
        src: u32,
        dst: u32,
        is_frag: bool,
    ) -> Result<(), Counter> {
        let seg = &f.buf[l4..l4_end];
        let ok = if protocol == proto::UDP {
            // The UDP length covers the datagram, longer than a first fragment.
            if is_frag { seg.len() >= udp::HEADER_LEN } else { udp::check(seg).is_ok() }
        } else {
            tcp::check(seg).is_ok()
        };
        if !ok {
            return Err(Counter::DropMalformedL4);
        }
        let sport = udp::src_port(seg);
        let dport = udp::dst_port(seg);
        // Port 0 is reserved (RFC 6335 section 6): never mapped, never a destination.
        if sport == 0 || dport == 0 {
            return Err(Counter::DropMalformedL4);
        }
        let tflags = if protocol == proto::TCP { tcp::flags(seg) } else { 0 };
        let i = match self.find_session(inst, b4, src, sport, protocol) {
            Some(i) => i,
            None => {
                // A static forwarding's inside end (decision 0019): no session.
                if let Some((ext_addr, ext_port)) = self.nat.statics.inside(inst, b4, src, sport, protocol) {
                    self.translate_src(f, ip_at, inst, (src, sport), (ext_addr, ext_port));
                    self.learn_softwire_next_hop();
                    self.count(Counter::StaticIn2Out);
                    return Ok(());
                }
                self.create_for(inst, b4, src, sport, protocol, dst, dport, tflags)?
            }
        };
        let s = *self.nat.sessions.get(i);
        self.nat.learn_mac(s.sub, self.rx_mac);
        let (flags, tracked) =
            if protocol == proto::TCP { tcp_outbound(&s, dst, dport, tflags) } else { (s.flags, true) };
        self.nat.touch(i, inst, flags);
        if tracked {
            self.nat.remember_remote(i, dst, dport);
        } else {
            self.nat.remember_other_remote(i, dst, dport);
        }
        self.translate_src(f, ip_at, inst, (src, sport), (s.ext_addr, s.ext_port));
        Ok(())
    }

    /// Rewrites the source address and port of the outbound TCP or UDP packet at `ip_at`
    /// from `from` to `to`, and fixes the IPv4 and transport checksums (RFC 1624); MSS
    /// clamped on a SYN.
    #[inline]
    fn translate_src(&mut self, f: &mut Frame, ip_at: usize, inst: u8, from: (u32, u16), to: (u32, u16)) {
        let ((src, sport), (ext_addr, ext_port)) = (from, to);
        let (protocol, l4, l4_end) = {
            let p = Ipv4Packet::new_unchecked(&f.buf[ip_at..]);
            (p.protocol(), ip_at + p.header_len(), ip_at + p.total_len())
        };
        Ipv4Packet::new_unchecked(&mut f.buf[ip_at..]).set_src_adjust(ext_addr);
        let seg = &mut f.buf[l4..l4_end];
        if protocol == proto::UDP {
            udp::set_src_port(seg, ext_port);
            let c = udp::checksum(seg);
            if c != 0 {
                udp::set_checksum(seg, checksum::adjust_addr_port(c, src, ext_addr, sport, ext_port));
            }
        } else {
            tcp::set_src_port(seg, ext_port);
            let c = checksum::adjust_addr_port(tcp::checksum(seg), src, ext_addr, sport, ext_port);
            tcp::set_checksum(seg, c);
            if tcp::flags(seg) & tcp::SYN != 0 {
                self.clamp_mss(inst, &mut f.buf[l4..l4_end]);
            }
        }
    }

    pub(crate) fn clamp_mss(&mut self, inst: u8, seg: &mut [u8]) {
        let cfg = &self.hot[inst as usize];
        // RFC 6908 section 4: IPv6 and IPv4 headers, 40 + 20, and TCP, 20.
        if cfg.mss_clamp && tcp::clamp_mss(seg, cfg.tunnel_mtu.saturating_sub(80)) {
            self.count(Counter::MssClamped);
        }
    }

    /// The session of an outbound packet's inside key, if there is one.
    #[inline]
    fn find_session(&mut self, inst: u8, b4: &[u8; 16], src: u32, sport: u16, protocol: u8) -> Option<u32> {
        // The batch's first stage hashed this same key (see `batch_hash`).
        let h = match self.prehash.take() {
            Some(h) => h,
            None => self.nat.inside_hash(inst, b4, src, sport, protocol),
        };
        self.nat.find_inside_hashed(h, inst, b4, src, sport, protocol)
    }

    /// A new session (and subscriber, if need be) for an outbound packet without one.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn create_for(
        &mut self,
        inst: u8,
        b4: &[u8; 16],
        src: u32,
        sport: u16,
        protocol: u8,
        dst: u32,
        dport: u16,
        tflags: u8,
    ) -> Result<u32, Counter> {
        self.learn_softwire_next_hop();
        // ICMP identifiers have no range class.
        let class = if protocol == proto::ICMP { PortClass::Dynamic } else { PortClass::of(sport) };
        let si = match self.nat.subscriber(inst, b4, Some(class), self.rx_mac) {
            Ok(si) => si,
            Err(c) => {
                self.nat.limit_hit(inst, b4, src, None, c);
                return Err(c);
            }
        };
        let flags = if protocol == proto::TCP { tcp_track(0, tflags, true) } else { 0 };
        let r = self.nat.create_session(si, src, sport, protocol, dst, dport, flags);
        if let Err(c) = r {
            self.nat.limit_hit(inst, b4, src, Some(si), c);
            self.nat.drop_if_idle(si);
        }
        r
    }

    /// ICMP echo request from a subscriber host: the identifier is the port (RFC 5508
    /// section 3.1), taken from the subscriber's blocks like any port.
    #[allow(clippy::too_many_arguments)]
    fn in2out_echo(
        &mut self,
        f: &mut Frame,
        ip_at: usize,
        l4: usize,
        inst: u8,
        b4: &[u8; 16],
        src: u32,
        dst: u32,
    ) -> Result<(), Counter> {
        let id = wicmp::echo_ident(&f.buf[l4..]);
        let i = match self.find_session(inst, b4, src, id, proto::ICMP) {
            Some(i) => i,
            None => self.create_for(inst, b4, src, id, proto::ICMP, dst, 0, 0)?,
        };
        let s = *self.nat.sessions.get(i);
        self.nat.learn_mac(s.sub, self.rx_mac);
        self.nat.touch(i, inst, s.flags);
        self.nat.remember_remote(i, dst, 0);
        Ipv4Packet::new_unchecked(&mut f.buf[ip_at..]).set_src_adjust(s.ext_addr);
        let m = &mut f.buf[l4..];
        wicmp::set_echo_ident(m, s.ext_port);
        let c = checksum::adjust_u16(wicmp::checksum(m), id, s.ext_port);
        wicmp::set_checksum(m, c);
        Ok(())
    }
}

/// Is `c` a reason why no mapping could be made (resources or quotas, RFC 6888 REQ-11),
/// which the sender hears about?
fn no_mapping(c: Counter) -> bool {
    matches!(
        c,
        Counter::DropSessionTableFull
            | Counter::DropSubscriberTableFull
            | Counter::DropSessionLimit
            | Counter::DropBlockLimit
            | Counter::DropPortsExhausted
            | Counter::DropRateLimited
    )
}

/// Destinations no packet from a subscriber may reach (RFC 1812 section 5.3.7).
pub(crate) fn is_martian(a: u32) -> bool {
    let top = a >> 24;
    top == 0 || top == 127 || top >= 224
}

/// The inner ECN field after decapsulation (RFC 6040 section 4.2, figure 4), from the
/// outer and inner fields (0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE); None: drop the packet
/// (outer CE on a Not-ECT inner packet, whose endpoints cannot see congestion any other
/// way). Outer ECT with a Not-ECT inner packet leaves it Not-ECT.
pub(crate) fn ecn_decapsulate(outer: u8, inner: u8) -> Option<u8> {
    const NOT_ECT: u8 = 0;
    const ECT1: u8 = 1;
    const ECT0: u8 = 2;
    const CE: u8 = 3;
    match (inner, outer) {
        (NOT_ECT, CE) => None,
        (NOT_ECT, _) => Some(NOT_ECT),
        (_, CE) | (CE, _) => Some(CE),
        (ECT0, ECT1) => Some(ECT1),
        (i, _) => Some(i),
    }
}

/// The TCP state of session `s` after an outbound segment with flags `seen` to `dst`:
/// `dport`, and whether that remote is (now) the session's connection.
///
/// A session is one mapping (endpoint-independent, RFC 4787 REQ-1), and its TCP state is
/// that of one connection through it: the one with the session's remote. Segments to
/// other remotes refresh the mapping without touching that state, but for a SYN when the
/// tracked connection is not established (or is closing): that starts the connection
/// the session tracks from then on.
pub(crate) fn tcp_outbound(s: &Session, dst: u32, dport: u16, seen: u8) -> (u8, bool) {
    if s.remote_addr == dst && s.remote_port == dport {
        return (tcp_track(s.flags, seen, true), true);
    }
    if seen & tcp::SYN != 0 && TimerClass::of(proto::TCP, s.flags) != TimerClass::TcpEstablished {
        return (tcp_track(0, seen, true), true);
    }
    (s.flags, false)
}

/// The TCP state of session `s` after an inbound segment with flags `seen` from `src`:
/// `sport`. Only the session's connection changes it: an RST (or any segment) from
/// another remote does not (RFC 7857 section 2.2; counted in `tcp_rst_ignored`).
pub(crate) fn tcp_inbound(s: &Session, src: u32, sport: u16, seen: u8) -> Option<u8> {
    (s.remote_addr == src && s.remote_port == sport).then(|| tcp_track(s.flags, seen, false))
}

/// TCP tracking (RFC 7857 section 2.2, RFC 6146 section 3.5.2) of one connection: which
/// directions have opened, closed or reset it.
///
/// An RST puts the connection on the transitory timer; any later segment without RST
/// takes it back (RFC 6146 section 3.5.2.2, TRANS to ESTABLISHED): the endpoints did not
/// take the RST. So an RST that the endpoints ignore, forged or out of their window,
/// costs nothing once the connection speaks again. There is no sequence-number window
/// here: it would need the segment numbers of both directions in every session, which
/// the 40-byte session has no room for (decision 0002); the check is the remote's
/// address and port (`tcp_inbound`).
pub(crate) fn tcp_track(mut flags: u8, tcp_flags_seen: u8, outbound: bool) -> u8 {
    use tcp_flags::*;
    if tcp_flags_seen & tcp::RST != 0 {
        return flags | RST;
    }
    if tcp_flags_seen & tcp::SYN != 0 {
        // A new SYN after a close or reset starts the connection again.
        if flags & (RST | FIN_IN | FIN_OUT) != 0 && flags & EST != 0 {
            flags = 0;
        }
        flags |= if outbound { SYN_OUT } else { SYN_IN };
    }
    flags &= !RST;
    if tcp_flags_seen & tcp::FIN != 0 {
        flags |= if outbound { FIN_OUT } else { FIN_IN };
    }
    if flags & SYN_OUT != 0 && flags & SYN_IN != 0 && tcp_flags_seen & tcp::ACK != 0 {
        flags |= EST;
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::ecn_decapsulate;

    #[test]
    fn rfc_6040_decapsulation_table() {
        // Rows: inner Not-ECT, ECT(0), ECT(1), CE; columns: outer Not-ECT, ECT(0), ECT(1), CE.
        let want = [
            (0, [Some(0), Some(0), Some(0), None]),
            (2, [Some(2), Some(2), Some(1), Some(3)]),
            (1, [Some(1), Some(1), Some(1), Some(3)]),
            (3, [Some(3), Some(3), Some(3), Some(3)]),
        ];
        for (inner, row) in want {
            for (outer, w) in [0, 2, 1, 3].into_iter().zip(row) {
                assert_eq!(ecn_decapsulate(outer, inner), w, "outer {outer} inner {inner}");
            }
        }
    }
}
