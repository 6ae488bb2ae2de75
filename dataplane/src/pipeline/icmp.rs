//! ICMP on the packet path: echo to the AFTR endpoint, ICMP errors in both directions
//! (RFC 5508 section 3.2: embedded IP and transport headers translated, both checksums
//! fixed), ICMPv6 errors about the tunnel turned into ICMPv4 (RFC 2473 section 8), a
//! Packet Too Big taken as the path MTU towards its B4 (RFC 8201), and
//! the errors the AFTR generates (time exceeded, fragmentation needed). An ICMP error
//! never creates, refreshes or deletes a session. Slow path but allocation-free.

use super::BatchCtx;
use crate::counters::Counter;
use crate::frame::{Egress, Frame, Sink, Verdict};
use crate::nat::session::Session;
use crate::wire::checksum;
use crate::wire::icmp::{self as wicmp, v4, v6};
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::{get_u16, proto, set_u16, tcp, udp};

use super::flow_label;
use super::in2out::AFTR_IPV4;

/// Largest ICMPv4 error: RFC 1812 section 4.3.2.3 (576 bytes).
const MAX_ICMP4_ERROR: usize = 576;

/// The fields of an embedded (quoted) IPv4 packet that locate its session.
struct Quoted {
    at: usize,
    hl: usize,
    len: usize,
    src: u32,
    dst: u32,
    proto: u8,
    sport: u16,
    dport: u16,
}

/// Reads the IPv4 packet quoted at `at` (up to `end`): header and 8 transport bytes.
fn quoted(buf: &[u8], at: usize, end: usize) -> Result<Quoted, Counter> {
    if end < at + ipv4::MIN_HEADER_LEN {
        return Err(Counter::DropMalformedL4);
    }
    let p = Ipv4Packet::new_unchecked(&buf[at..end]);
    let hl = p.header_len();
    if buf[at] >> 4 != 4 || hl < ipv4::MIN_HEADER_LEN || end < at + hl + 8 {
        return Err(Counter::DropMalformedL4);
    }
    let l4 = &buf[at + hl..end];
    let (sport, dport) = match p.protocol() {
        proto::UDP | proto::TCP => (udp::src_port(l4), udp::dst_port(l4)),
        proto::ICMP => {
            let t = wicmp::msg_type(l4);
            if t != v4::ECHO_REQUEST && t != v4::ECHO_REPLY {
                // RFC 1122 section 3.2.2: no error about an error.
                return Err(Counter::DropIcmpErrorAboutError);
            }
            let id = wicmp::echo_ident(l4);
            (id, id)
        }
        _ => return Err(Counter::DropUnsupportedProtocol),
    };
    Ok(Quoted { at, hl, len: end - at, src: p.src(), dst: p.dst(), proto: p.protocol(), sport, dport })
}

/// Rewrites the quoted packet's source (`src == true`) or destination address and port,
/// fixing its header checksum and, when quoted, its transport checksum.
fn rewrite_quoted(buf: &mut [u8], q: &Quoted, src: bool, addr: u32, port: u16) {
    let mut p = Ipv4Packet::new_unchecked(&mut buf[q.at..q.at + q.len]);
    let (old_addr, old_port) = if src { (q.src, q.sport) } else { (q.dst, q.dport) };
    if src {
        p.set_src_adjust(addr)
    } else {
        p.set_dst_adjust(addr)
    }
    let l4_len = q.len - q.hl;
    let l4 = &mut buf[q.at + q.hl..q.at + q.len];
    match q.proto {
        proto::UDP | proto::TCP => {
            set_u16(l4, if src { 0 } else { 2 }, port);
            let at = if q.proto == proto::UDP { udp::CHECKSUM_AT } else { tcp::CHECKSUM_AT };
            if l4_len >= at + 2 {
                let c = get_u16(l4, at);
                if !(q.proto == proto::UDP && c == 0) {
                    let n = checksum::adjust_addr_port(c, old_addr, addr, old_port, port);
                    set_u16(l4, at, if q.proto == proto::UDP && n == 0 { 0xffff } else { n });
                }
            }
        }
        _ => {
            wicmp::set_echo_ident(l4, port);
            let c = checksum::adjust_u16(wicmp::checksum(l4), old_port, port);
            wicmp::set_checksum(l4, c);
        }
    }
}

/// Recomputes the checksum of the ICMPv4 message in `m`.
fn fix_icmp4_checksum(m: &mut [u8]) {
    wicmp::set_checksum(m, 0);
    let c = checksum::checksum(m);
    wicmp::set_checksum(m, c);
}

impl BatchCtx<'_> {
    /// Writes, in front of the IPv4 packet at `ip_at`, an ICMPv4 error from `src` to that
    /// packet's source quoting up to `MAX_ICMP4_ERROR` bytes. Returns (start, length).
    fn icmp4_error_in_place(
        &mut self,
        f: &mut Frame,
        ip_at: usize,
        avail: usize,
        ty: u8,
        code: u8,
        rest: u32,
        src: u32,
    ) -> (usize, usize) {
        let to = Ipv4Packet::new_unchecked(&f.buf[ip_at..]).src();
        let q = avail.min(MAX_ICMP4_ERROR - 28);
        let at = ip_at - 28;
        let id = self.nat.random() as u16;
        ipv4::write_header(&mut f.buf[at..], 0, (28 + q) as u16, id, 0, 64, proto::ICMP, src, to);
        let m = &mut f.buf[at + 20..at + 28 + q];
        m[0] = ty;
        m[1] = code;
        m[4..8].copy_from_slice(&rest.to_be_bytes());
        fix_icmp4_checksum(m);
        (at, 28 + q)
    }

    /// TTL expired on a packet from a subscriber: ICMPv4 time exceeded from 192.0.0.1,
    /// back through the softwire.
    pub(crate) fn time_exceeded_to_b4(
        &mut self,
        f: &mut Frame,
        ip_at: usize,
        inst: u8,
        b4: &[u8; 16],
        sink: &mut dyn Sink,
    ) -> Verdict {
        let kind = (v4::TIME_EXCEEDED, 0, 0);
        self.error_to_b4(f, ip_at, inst, b4, kind, Counter::DropTtlExpired, Counter::TimeExceededSent, sink)
    }

    /// No mapping could be made for a subscriber's packet (a table, a limit or the
    /// ports ran out; the reason is `why`): RFC 6888 REQ-11 asks for a destination
    /// unreachable, code 1 (host unreachable), to the sender. RFC 5508 REQ-9 said code 13
    /// (administratively prohibited), which hosts may take as a hard error; RFC 6888,
    /// written for CGNs, chose code 1 so that they try again later.
    pub(crate) fn unreachable_to_b4(
        &mut self,
        f: &mut Frame,
        ip_at: usize,
        inst: u8,
        b4: &[u8; 16],
        why: Counter,
        sink: &mut dyn Sink,
    ) -> Verdict {
        let (ty, code) = (v4::DEST_UNREACH, v4::CODE_HOST_UNREACH);
        self.error_to_b4(f, ip_at, inst, b4, (ty, code, 0), why, Counter::UnreachableSent, sink)
    }

    /// A subscriber's DF packet larger than the Internet MTU: "fragmentation needed"
    /// with that MTU back to the host (RFC 1191, RFC 792), which lowers its path MTU.
    pub(crate) fn frag_needed_to_b4(
        &mut self,
        f: &mut Frame,
        ip_at: usize,
        inst: u8,
        b4: &[u8; 16],
        mtu: u16,
        sink: &mut dyn Sink,
    ) -> Verdict {
        let kind = (v4::DEST_UNREACH, v4::CODE_FRAG_NEEDED, mtu as u32);
        self.error_to_b4(f, ip_at, inst, b4, kind, Counter::DropFragTooBig, Counter::FragNeededSent, sink)
    }

    /// Drops the subscriber's packet at `ip_at` for `why` and answers it, when allowed,
    /// with an ICMPv4 error (type, code, and the rest of its header: the next-hop MTU
    /// of "fragmentation needed") from 192.0.0.1 back through the softwire it came from.
    #[allow(clippy::too_many_arguments)]
    fn error_to_b4(
        &mut self,
        f: &mut Frame,
        ip_at: usize,
        inst: u8,
        b4: &[u8; 16],
        (ty, code, rest): (u8, u8, u32),
        why: Counter,
        sent: Counter,
        sink: &mut dyn Sink,
    ) -> Verdict {
        if !self.may_send_error_about(f, ip_at) {
            return self.drop(why);
        }
        let avail = Ipv4Packet::new_unchecked(&f.buf[ip_at..]).total_len();
        let (at, len) = self.icmp4_error_in_place(f, ip_at, avail, ty, code, rest, AFTR_IPV4);
        self.count(why);
        self.count(sent);
        self.softwire_dst = self.rx_mac;
        let mtu = self.hot[inst as usize].tunnel_mtu as usize;
        self.encapsulate(f, at, len, inst, b4, 0, mtu, sink)
    }

    /// TTL expired on a packet from the Internet: time exceeded from the pool address.
    pub(crate) fn time_exceeded_send_outbound(&mut self, f: &mut Frame, ip_at: usize) -> Verdict {
        if !self.may_send_error_about(f, ip_at) {
            return self.drop(Counter::DropTtlExpired);
        }
        let (dst, avail) = {
            let p = Ipv4Packet::new_unchecked(&f.buf[ip_at..]);
            (p.dst(), p.total_len())
        };
        let (at, len) = self.icmp4_error_in_place(f, ip_at, avail, v4::TIME_EXCEEDED, 0, 0, dst);
        self.count(Counter::DropTtlExpired);
        self.count(Counter::TimeExceededSent);
        self.emit_l3(f, at, len, Egress::Internet)
    }

    /// A DF packet too big for the tunnel: ICMPv4 3/4 with the usable MTU (RFC 1191).
    pub(crate) fn frag_needed_send_outbound(&mut self, f: &mut Frame, ip_at: usize, mtu: u16) -> Verdict {
        if !self.may_send_error_about(f, ip_at) {
            return self.drop(Counter::DropFragTooBig);
        }
        let (dst, avail) = {
            let p = Ipv4Packet::new_unchecked(&f.buf[ip_at..]);
            (p.dst(), p.total_len())
        };
        let (at, len) =
            self.icmp4_error_in_place(f, ip_at, avail, v4::DEST_UNREACH, v4::CODE_FRAG_NEEDED, mtu as u32, dst);
        self.count(Counter::FragNeededSent);
        self.emit_l3(f, at, len, Egress::Internet)
    }

    /// May the AFTR answer the packet at `ip_at` with an ICMP error? Not about an ICMP
    /// error or a non-first fragment (RFC 1812 section 4.3.2.7), and not beyond the
    /// worker's budget of generated errors (RFC 1812 section 4.3.2.8; counted in
    /// `icmp_errors_suppressed`).
    fn may_send_error_about(&mut self, f: &Frame, ip_at: usize) -> bool {
        let p = Ipv4Packet::new_unchecked(&f.buf[ip_at..]);
        if p.frag_offset() != 0 {
            return false;
        }
        if p.protocol() == proto::ICMP {
            let l4 = &f.buf[ip_at + p.header_len()..ip_at + p.total_len()];
            if !l4.is_empty() && wicmp::v4_is_error(l4[0]) {
                return false;
            }
        }
        self.icmp_error_budget()
    }

    /// Takes one generated ICMP error from the worker's budget; false (counted) when
    /// it is spent.
    pub(crate) fn icmp_error_budget(&mut self) -> bool {
        if self.state.icmp_errors.take(self.now_ms) {
            return true;
        }
        self.count(Counter::IcmpErrorsSuppressed);
        false
    }

    /// An ICMPv4 error from a subscriber's host about a packet it received from outside.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn icmp_error_in2out(
        &mut self,
        f: &mut Frame,
        ip_at: usize,
        l4: usize,
        l4_end: usize,
        inst: u8,
        b4: &[u8; 16],
        sink: &mut dyn Sink,
    ) -> Verdict {
        let q = match quoted(f.buf, l4 + 8, l4_end) {
            Ok(q) => q,
            Err(c) => return self.drop(c),
        };
        let Some(i) = self.nat.find_inside(inst, b4, q.dst, q.dport, q.proto) else {
            return self.drop(Counter::DropIcmpErrorNoSession);
        };
        let s = *self.nat.sessions.get(i);
        Ipv4Packet::new_unchecked(&mut f.buf[ip_at..]).set_src_adjust(s.ext_addr);
        rewrite_quoted(f.buf, &q, false, s.ext_addr, s.ext_port);
        fix_icmp4_checksum(&mut f.buf[l4..l4_end]);
        self.count(Counter::IcmpErrorsIn2Out);
        let (dst, ip_len) = {
            let p = Ipv4Packet::new_unchecked(&f.buf[ip_at..]);
            (p.dst(), p.total_len())
        };
        let mtu = self.hot[inst as usize].internet_mtu as usize;
        self.send_outbound(f, ip_at, ip_len, dst, mtu, sink)
    }

    /// An ICMPv4 error from the Internet about a packet a subscriber sent.
    pub(crate) fn icmp_error_out2in(
        &mut self,
        f: &mut Frame,
        ip_at: usize,
        l4: usize,
        l4_end: usize,
        sink: &mut dyn Sink,
    ) -> Verdict {
        let q = match quoted(f.buf, l4 + 8, l4_end) {
            Ok(q) => q,
            Err(c) => return self.drop(c),
        };
        if let Some(w) = self.nat.foreign_port_owner(q.src, q.sport) {
            return self.handoff_to(w, Counter::HandedOffInternet);
        }
        let Some(i) = self.nat.find_outside(q.src, q.sport, q.proto) else {
            return self.drop(Counter::DropIcmpErrorNoSession);
        };
        if f.buf[ip_at + 8] <= 1 {
            // No error about an error (RFC 1812 section 4.3.2.7).
            return self.drop(Counter::DropTtlExpired);
        }
        let s = *self.nat.sessions.get(i);
        let (inst, b4) = {
            let sub = self.nat.subs.get(s.sub);
            (sub.inst, sub.b4)
        };
        Ipv4Packet::new_unchecked(&mut f.buf[ip_at..]).set_dst_adjust(s.inner_addr);
        rewrite_quoted(f.buf, &q, true, s.inner_addr, s.inner_port);
        fix_icmp4_checksum(&mut f.buf[l4..l4_end]);
        let ip_len = {
            let mut p = Ipv4Packet::new_unchecked(&mut f.buf[ip_at..]);
            p.decrement_ttl();
            p.total_len()
        };
        self.count(Counter::IcmpErrorsOut2In);
        self.towards_subscriber(s.sub);
        let mtu = self.nat.path_mtu(s.sub, self.hot[inst as usize].tunnel_mtu) as usize;
        self.encapsulate(f, ip_at, ip_len, inst, &b4, flow_label(i), mtu, sink)
    }

    /// ICMPv6 addressed to an AFTR endpoint: echo is answered; errors about softwire
    /// packets become ICMPv4 errors; neighbour discovery and the rest go to the kernel.
    pub(crate) fn icmpv6_to_endpoint(
        &mut self,
        f: &mut Frame,
        l3: usize,
        total: usize,
        off: usize,
        inst: u8,
    ) -> Verdict {
        let m = l3 + off;
        let end = l3 + total;
        if end - m < wicmp::HEADER_LEN {
            return self.drop(Counter::DropMalformedL4);
        }
        let t = wicmp::msg_type(&f.buf[m..]);
        if !matches!(t, v6::ECHO_REQUEST | v6::DEST_UNREACH | v6::PACKET_TOO_BIG | v6::TIME_EXCEEDED) {
            return self.pass();
        }
        let (src, dst) = {
            let p = Ipv6Packet::new_unchecked(&f.buf[l3..]);
            (p.src(), p.dst())
        };
        let pseudo = checksum::pseudo_v6(&src, &dst, proto::ICMPV6, (end - m) as u32);
        if checksum::fold(checksum::sum(&f.buf[m..end], pseudo)) != 0xffff {
            return self.drop(Counter::DropMalformedL4);
        }
        if t == v6::ECHO_REQUEST {
            if off != ipv6::HEADER_LEN {
                return self.drop(Counter::DropUnsupportedIcmp);
            }
            // RFC 4443 section 4.2: reply from the endpoint with the same data.
            f.buf[l3 + 8..l3 + 24].copy_from_slice(&dst);
            f.buf[l3 + 24..l3 + 40].copy_from_slice(&src);
            f.buf[l3 + 7] = self.hot[inst as usize].hop_limit;
            let old = get_u16(&f.buf[m..], 0);
            f.buf[m] = v6::ECHO_REPLY;
            let c = checksum::adjust_u16(wicmp::checksum(&f.buf[m..]), old, get_u16(&f.buf[m..], 0));
            wicmp::set_checksum(&mut f.buf[m..], c);
            self.count(Counter::EndpointEchoReplies);
            self.softwire_dst = self.rx_mac;
            return self.emit_l3(f, l3, total, Egress::Softwire);
        }
        self.icmpv6_error_to_icmpv4(f, m, end, inst)
    }

    /// An ICMPv6 Packet Too Big about the softwire packet quoted in `q`, which we sent
    /// to the B4 of session `s` (the caller checked: from our endpoint, to a B4 of ours,
    /// with a session for the inner packet). The MTU becomes the path MTU towards that B4
    /// (`NatState::path_mtu`), used to fragment the outer packets of non-DF packets
    /// (RFC 2473 section 7, RFC 6333 section 5.3) and to refuse DF ones with ICMPv4 3/4.
    /// An MTU below 1280 is no IPv6 link's (RFC 8200 section 5): ignored, counted. The
    /// Internet sender hears fragmentation needed only if its packet had DF set (RFC 2473
    /// section 8.3): the AFTR fragments the others.
    fn packet_too_big(&mut self, f: &mut Frame, q: &Quoted, s: Session, mtu: u32) -> Verdict {
        if mtu < ipv6::MIN_MTU as u32 {
            return self.drop(Counter::DropPtbBelowMinimum);
        }
        let inst = self.nat.subs.get(s.sub).inst;
        let tunnel = self.hot[inst as usize].tunnel_mtu;
        if !self.nat.learn_path_mtu(s.sub, mtu.min(u16::MAX as u32) as u16, tunnel) {
            return self.drop(Counter::DropPtbNotSmaller);
        }
        self.count(Counter::SoftwireMtuLearned);
        let df = Ipv4Packet::new_unchecked(&f.buf[q.at..]).dont_frag();
        if !df || !self.icmp_error_budget() {
            return Verdict::Consumed;
        }
        let next_hop_mtu = self.nat.path_mtu(s.sub, tunnel) as u32 - ipv6::HEADER_LEN as u32;
        rewrite_quoted(f.buf, q, false, s.ext_addr, s.ext_port);
        let (at, len) =
            self.icmp4_error_in_place(f, q.at, q.len, v4::DEST_UNREACH, v4::CODE_FRAG_NEEDED, next_hop_mtu, s.ext_addr);
        self.count(Counter::Icmpv6ErrorsTranslated);
        self.count(Counter::FragNeededSent);
        self.emit_l3(f, at, len, Egress::Internet)
    }

    /// RFC 2473 section 8.3 / RFC 6333 section 5.3: an ICMPv6 error about a softwire
    /// packet we sent to a B4 is reported to the IPv4 source of the inner packet.
    fn icmpv6_error_to_icmpv4(&mut self, f: &mut Frame, m: usize, end: usize, inst: u8) -> Verdict {
        let (t, code, rest) = {
            let b = &f.buf[m..end];
            (wicmp::msg_type(b), wicmp::code(b), wicmp::rest_of_header(b))
        };
        let e6 = m + 8;
        if end < e6 + ipv6::HEADER_LEN {
            return self.drop(Counter::DropMalformedL4);
        }
        let (esrc, edst, enh) = {
            let p = Ipv6Packet::new_unchecked(&f.buf[e6..]);
            (p.src(), p.dst(), p.next_header())
        };
        if esrc != self.hot[inst as usize].endpoint || enh != proto::IPV4_IN_IP {
            return self.drop(Counter::DropIcmpErrorNoSession);
        }
        if let Some(w) = self.nat.foreign_owner(self.prehash, inst, &edst) {
            return self.handoff_to(w, Counter::HandedOffSoftwire);
        }
        let q = match quoted(f.buf, e6 + ipv6::HEADER_LEN, end) {
            Ok(q) => q,
            Err(c) => return self.drop(c),
        };
        let Some(i) = self.nat.find_inside(inst, &edst, q.dst, q.dport, q.proto) else {
            return self.drop(Counter::DropIcmpErrorNoSession);
        };
        let s = *self.nat.sessions.get(i);
        if t == v6::PACKET_TOO_BIG {
            return self.packet_too_big(f, &q, s, rest);
        }
        let (ty, c4, rest4) = match t {
            v6::TIME_EXCEEDED => (v4::TIME_EXCEEDED, 0, 0),
            _ => match code {
                1 => (v4::DEST_UNREACH, v4::CODE_ADMIN_PROHIBITED, 0),
                4 => (v4::DEST_UNREACH, v4::CODE_PORT_UNREACH, 0),
                _ => (v4::DEST_UNREACH, v4::CODE_HOST_UNREACH, 0),
            },
        };
        // The quoted packet is shown as the Internet host sent it: towards the mapping.
        rewrite_quoted(f.buf, &q, false, s.ext_addr, s.ext_port);
        let (at, len) = self.icmp4_error_in_place(f, q.at, q.len, ty, c4, rest4, s.ext_addr);
        self.count(Counter::Icmpv6ErrorsTranslated);
        self.emit_l3(f, at, len, Egress::Internet)
    }
}
