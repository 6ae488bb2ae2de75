//! Fragments. Hot path (see `pipeline/mod.rs`).
//!
//! - Softwire packets fragmented in IPv6 by a B4 are reassembled (RFC 6333 section 5.3),
//!   only once the B4 is known to be authorised (the caller checks), in the worker's
//!   reassembly table (`nat::fragments` over `nat::frag_table`, decision 0013: found by
//!   hash, a limit per B4 address, shared fairly when full, expiry in deadline order),
//!   with a timeout; an overlapping fragment discards the whole datagram (RFC 5722). The
//!   fragmentable part starts right after the Fragment header, extension headers and all
//!   (RFC 8200 section 4.5); the rebuilt packet's headers are walked again. An atomic
//!   fragment is a whole packet, processed alone (RFC 6946). Then the packet goes down
//!   the normal softwire path.
//! - IPv4 fragments from a subscriber: the first carries the ports and finds the session;
//!   the others need only the subscriber's paired address (RFC 6888 REQ-2), so they are
//!   translated as they come, in any order, without reassembly.
//! - IPv4 fragments from the Internet: the first fragment tells the ports. The
//!   datagram's entry (keyed by source, destination, protocol, identification; charged
//!   to the source) keeps them only once the first fragment has been let through,
//!   filtering included, and else keeps only that it was refused: every later fragment
//!   gets the first one's verdict. Later fragments carry the ports (`Frame::hint`) to
//!   the port's owner, which filters them as it filtered the first (RFC 4787 section 5).
//!   Fragments that arrive before their first are held (bounded) and released or
//!   dropped with it (RFC 4787 REQ-14: in-order and out-of-order fragments). Overlaps
//!   discard the datagram.
//! - Encapsulated packets larger than the path MTU are fragmented in IPv6 (never inside
//!   IPv4, RFC 6333 section 5.3), in place in the frame's buffer.

use super::BatchCtx;
use crate::counters::Counter;
use crate::frame::{Egress, FragmentPorts, Frame, HEADROOM, Sink, Verdict};
use crate::nat::fragments::{First, HELD_MAX, Key4, Key6, MAX_PIECES4, REASM_HEADROOM};
use crate::wire::icmp as wicmp;
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::ipv6::{self, Ipv6Packet, Upper};
use crate::wire::{WireError, ethernet, proto, udp};

impl BatchCtx<'_> {
    /// Adds an IPv6 fragment of a softwire packet from an authorised B4; processes the
    /// packet once whole.
    pub(crate) fn reassemble6(
        &mut self,
        f: &mut Frame,
        l3: usize,
        total: usize,
        up: Upper,
        inst: u8,
        sink: &mut dyn Sink,
    ) -> Verdict {
        let Some(fi) = up.frag else { return self.drop(Counter::DropMalformedIpv6) };
        if fi.offset == 0 && !fi.more {
            // RFC 6946: an atomic fragment is never mixed with a datagram in progress.
            return self.softwire_upper(f, l3, total, up.protocol, up.offset, inst, sink);
        }
        let (src, dst) = {
            let p = Ipv6Packet::new_unchecked(&f.buf[l3..]);
            (p.src(), p.dst())
        };
        // RFC 8200 section 4.5: the fragmentable part follows the Fragment header.
        let at = l3 + fi.header_offset + ipv6::FRAG_HEADER_LEN;
        let len = (l3 + total).saturating_sub(at);
        let (start, end) = (fi.offset, fi.offset + len);
        // All but the last fragment are multiples of 8 bytes.
        if (fi.more && !len.is_multiple_of(8)) || len == 0 {
            return self.drop(Counter::DropMalformedIpv6);
        }
        let key = Key6 { b4: src, endpoint: dst, ident: fi.ident };
        if end > self.frag6.limits.max_datagram {
            if let Some(d) = self.frag6.table.find(&key) {
                self.frag6.table.remove(d);
            }
            return self.drop(Counter::DropFragTooBig);
        }
        let d = match self.frag6.open(key, self.now_ms, self.counters) {
            Ok(d) => d,
            Err(r) => return self.drop(r.counter()),
        };
        let r = &mut self.frag6.slots[d as usize];
        if !r.pieces.add(start, end, !fi.more) {
            self.frag6.table.remove(d);
            return self.drop(Counter::DropFragOverlap);
        }
        if start == 0 {
            r.next_header = f.buf[l3 + fi.header_offset];
        }
        let base = REASM_HEADROOM + ipv6::HEADER_LEN;
        r.buf[base + start..base + end].copy_from_slice(&f.buf[at..at + len]);
        if !r.pieces.whole() {
            return Verdict::Consumed;
        }
        let (t, nh) = (r.pieces.seen, r.next_header);
        let mut buf = std::mem::take(&mut r.buf);
        self.frag6.table.remove(d);
        // Whole: an IPv6 header, then the fragmentable part. The traffic class (ECN) is
        // the last fragment's.
        ipv6::write_header(&mut buf[REASM_HEADROOM..], 0, 0, t as u16, nh, 64, &src, &dst);
        buf[REASM_HEADROOM..REASM_HEADROOM + 2].copy_from_slice(&f.buf[l3..l3 + 2]);
        self.count(Counter::Reassembled);
        let v = self.reassembled6(&mut buf, ipv6::HEADER_LEN + t, nh, inst, sink);
        self.frag6.slots[d as usize].buf = buf;
        v
    }

    /// The softwire path of the packet rebuilt at `REASM_HEADROOM` in `buf`, `len` bytes
    /// long, whose first header after the IPv6 header is `nh`.
    fn reassembled6(&mut self, buf: &mut [u8], len: usize, nh: u8, inst: u8, sink: &mut dyn Sink) -> Verdict {
        let (protocol, off) = if nh == proto::IPV4_IN_IP {
            (nh, ipv6::HEADER_LEN)
        } else {
            match ipv6::walk_reassembled(&buf[REASM_HEADROOM..REASM_HEADROOM + len]) {
                Ok(u) => (u.protocol, u.offset),
                Err(WireError::BadExtension) => return self.drop(Counter::DropIpv6Extension),
                Err(_) => return self.drop(Counter::DropMalformedIpv6),
            }
        };
        let mut whole = Frame::new(buf, REASM_HEADROOM, len);
        match self.softwire_upper(&mut whole, REASM_HEADROOM, len, protocol, off, inst, sink) {
            Verdict::Forward(e) => sink.emit(e, whole.bytes()),
            Verdict::Handoff(w) => sink.handoff(w, whole.bytes(), whole.hint),
            Verdict::Drop(c) => return Verdict::Drop(c),
            Verdict::Pass | Verdict::Consumed => {}
        }
        Verdict::Consumed
    }

    /// A non-first IPv4 fragment from a subscriber: only the source address changes.
    pub(crate) fn in2out_fragment(
        &mut self,
        f: &mut Frame,
        ip_at: usize,
        ip_len: usize,
        inst: u8,
        b4: &[u8; 16],
        dst: u32,
        sink: &mut dyn Sink,
    ) -> Verdict {
        let Ok(si) = self.nat.subscriber(inst, b4, None, self.rx_mac) else {
            return self.drop(Counter::DropFragNoSubscriber);
        };
        if self.nat.serves(dst) {
            return self.drop(Counter::DropFragHairpin);
        }
        let ext = self.nat.subs.get(si).ext_addr;
        let src = Ipv4Packet::new_unchecked(&f.buf[ip_at..]).src();
        self.rewrite_ident(f, ip_at, b4, src);
        let mut p = Ipv4Packet::new_unchecked(&mut f.buf[ip_at..]);
        p.set_src_adjust(ext);
        p.decrement_ttl();
        self.count(Counter::Ipv4FragmentsTranslated);
        self.count(Counter::In2Out);
        let mtu = self.hot[inst as usize].internet_mtu as usize;
        if ip_len > mtu {
            // A fragment larger than the Internet MTU is cut again (DF is never set on
            // a fragment that has an offset).
            return self.fragment_ipv4(f, ip_at, ip_len, mtu, sink);
        }
        self.emit_l3(f, ip_at, ip_len, Egress::Internet)
    }

    /// An inbound IPv4 fragment without known ports: the first one decides for the whole
    /// datagram; the others follow it, or wait for it.
    pub(crate) fn inbound_fragment(&mut self, f: &mut Frame, ip_at: usize, sink: &mut dyn Sink) -> Verdict {
        let (key, off, len, more, hl) = {
            let p = Ipv4Packet::new_unchecked(&f.buf[ip_at..]);
            let key = Key4 { src: p.src(), dst: p.dst(), ident: p.ident(), protocol: p.protocol() };
            (key, p.frag_offset(), p.total_len() - p.header_len(), p.more_frags(), p.header_len())
        };
        if !matches!(key.protocol, proto::UDP | proto::TCP | proto::ICMP) {
            return self.drop(Counter::DropUnsupportedProtocol);
        }
        // All but the last fragment are multiples of 8 bytes (RFC 791).
        if len == 0 || (more && !len.is_multiple_of(8)) {
            return self.drop(Counter::DropMalformedIpv4);
        }
        // What the first fragment says is read before anything is kept for it.
        let ports = if off == 0 {
            match first_fragment_ports(key.protocol, &f.buf[ip_at + hl..ip_at + hl + len]) {
                Ok(p) => Some(p),
                Err(c) => return self.drop(c),
            }
        } else {
            None
        };
        let d = match self.frag4.open(key, self.now_ms, self.counters) {
            Ok(d) => d,
            Err(r) => return self.drop(r.counter()),
        };
        let e = &mut self.frag4.slots[d as usize];
        if !e.pieces.add(off, off + len, !more) {
            let held = self.frag4.table.remove(d);
            self.counters.add(Counter::DropFragOverlap, held as u64);
            return self.drop(Counter::DropFragOverlap);
        }
        let whole = e.pieces.whole();
        let v = match (ports, e.first) {
            (Some(p), First::Awaited) => {
                f.hint = Some(p);
                let v = self.nat_out2in(f, ip_at, sink);
                let first = match v {
                    Verdict::Drop(c) => First::Refused(c),
                    _ => First::Passed(p),
                };
                self.frag4.slots[d as usize].first = first;
                self.release_held(d, first, sink);
                v
            }
            // A second first fragment overlaps the first: `add` refused it above.
            (Some(_), _) => self.drop(Counter::DropFragOverlap),
            (None, First::Passed(p)) => {
                f.hint = Some(p);
                self.nat_out2in(f, ip_at, sink)
            }
            (None, First::Refused(c)) => self.drop(c),
            // Before its first fragment: hold a copy.
            (None, First::Awaited) => {
                let held = match f.len <= HELD_MAX {
                    true => self.frag4.hold(d, f.bytes(), self.counters).map_err(|r| r.counter()),
                    false => Err(Counter::DropFragTooBig),
                };
                if let Err(c) = held {
                    // The datagram cannot be completed: it goes, with what it held.
                    let lost = self.frag4.table.remove(d);
                    self.counters.add(c, lost as u64);
                    return self.drop(c);
                }
                Verdict::Consumed
            }
        };
        // Every byte seen: the entry has done its work.
        if whole {
            self.frag4.table.remove(d);
        }
        v
    }

    /// Releases the fragments held for datagram `d` now that its first fragment decided:
    /// through to the subscriber with the first one's ports, or dropped for its reason.
    fn release_held(&mut self, d: u32, first: First, sink: &mut dyn Sink) {
        let mut held = [0u32; MAX_PIECES4];
        let mut n = 0;
        for (slot, p) in held.iter_mut().zip(self.frag4.table.parts(d)) {
            *slot = p;
            n += 1;
        }
        for &p in &held[..n] {
            let ports = match first {
                First::Passed(ports) => ports,
                First::Refused(c) => {
                    self.count(c);
                    continue;
                }
                First::Awaited => continue,
            };
            let len = self.frag4.slots[p as usize].len;
            let mut buf = std::mem::take(&mut self.frag4.slots[p as usize].buf);
            let mut fr = Frame::new(&mut buf, HEADROOM, len);
            fr.hint = Some(ports);
            if let Ok(l2) = ethernet::parse(fr.bytes()) {
                match self.nat_out2in(&mut fr, HEADROOM + l2.l3_offset, sink) {
                    Verdict::Forward(e) => sink.emit(e, fr.bytes()),
                    Verdict::Handoff(w) => sink.handoff(w, fr.bytes(), fr.hint),
                    _ => {}
                }
            }
            self.frag4.slots[p as usize].buf = buf;
        }
        self.frag4.table.remove_parts(d);
    }

    /// Splits the IPv6 packet at `v6_at` into fragments of at most `mtu` bytes, emitted
    /// through the sink (RFC 8200 section 4.5). Each fragment's headers are written in
    /// the frame's buffer just before its data, over the end of the fragment before,
    /// which has already left: the sink's copy is the only one.
    pub(crate) fn fragment_outer(
        &mut self,
        f: &mut Frame,
        v6_at: usize,
        len: usize,
        mtu: usize,
        sink: &mut dyn Sink,
    ) -> Verdict {
        let l2 = crate::config::EgressL2 { dst: self.softwire_dst, ..self.softwire_l2 };
        if l2.dst == [0; 6] {
            return self.drop(Counter::DropNoNextHop);
        }
        let hl = ethernet::header_len(l2.vlan);
        let headers = hl + ipv6::HEADER_LEN + ipv6::FRAG_HEADER_LEN;
        let chunk = mtu.saturating_sub(ipv6::HEADER_LEN + ipv6::FRAG_HEADER_LEN) & !7;
        // Room for the first fragment's headers before its data, and the packet inside
        // the buffer: always so for the frames the pipeline makes; checked, not assumed.
        if chunk == 0 || v6_at + ipv6::HEADER_LEN < headers || v6_at + len > f.buf.len() || len < ipv6::HEADER_LEN {
            return self.drop(Counter::DropNoHeadroom);
        }
        let mut header = [0u8; ipv6::HEADER_LEN];
        header.copy_from_slice(&f.buf[v6_at..v6_at + ipv6::HEADER_LEN]);
        let nh = header[6];
        let ident = self.nat.random();
        let payload = len - ipv6::HEADER_LEN;
        let mut off = 0;
        let mut n = 0;
        while off < payload {
            let take = chunk.min(payload - off);
            let more = off + take < payload;
            let data = v6_at + ipv6::HEADER_LEN + off;
            let start = data - headers;
            let ip =
                start + ethernet::write_header(&mut f.buf[start..], l2.dst, l2.src, l2.vlan, ethernet::ETHERTYPE_IPV6);
            f.buf[ip..ip + ipv6::HEADER_LEN].copy_from_slice(&header);
            let mut p = Ipv6Packet::new_unchecked(&mut f.buf[ip..]);
            p.set_next_header(proto::IPV6_FRAG);
            p.set_payload_len((ipv6::FRAG_HEADER_LEN + take) as u16);
            ipv6::write_frag_header(&mut f.buf[data - ipv6::FRAG_HEADER_LEN..], nh, off, more, ident);
            sink.emit(Egress::Softwire, &f.buf[start..data + take]);
            off += take;
            n += 1;
        }
        self.count(Counter::OuterFragmented);
        self.counters.add(Counter::OuterFragmentsSent, n);
        Verdict::Consumed
    }
}

impl BatchCtx<'_> {
    /// Splits the IPv4 packet at `ip_at` (`len` bytes, DF clear), larger than the
    /// Internet MTU `mtu`, into fragments of at most `mtu` bytes to the Internet
    /// (RFC 791); a packet that was a fragment already keeps its offset and, on its last
    /// piece, its more-fragments flag. Every fragment gets a 20-byte header: options
    /// are not carried (subscribers' packets have none in practice, and a CGN's path
    /// drops source routes anyway). As in `fragment_outer`, each header is written in
    /// the frame's buffer just before its data, over the end of the fragment before,
    /// which the sink has already copied.
    pub(crate) fn fragment_ipv4(
        &mut self,
        f: &mut Frame,
        ip_at: usize,
        len: usize,
        mtu: usize,
        sink: &mut dyn Sink,
    ) -> Verdict {
        let l2 = match self.internet_next_hop(f.buf.get(ip_at..ip_at + len).unwrap_or_default()) {
            Ok(l2) => l2,
            Err(c) => return self.drop(c),
        };
        let (hl, tos, ident, ttl, protocol, src, dst, base, last_more) = {
            let p = Ipv4Packet::new_unchecked(&f.buf[ip_at..]);
            let h = (p.header_len(), p.tos(), p.ident(), p.ttl(), p.protocol(), p.src(), p.dst());
            (h.0, h.1, h.2, h.3, h.4, h.5, h.6, p.frag_offset(), p.more_frags())
        };
        let headers = ethernet::header_len(l2.vlan) + ipv4::MIN_HEADER_LEN;
        let chunk = mtu.saturating_sub(ipv4::MIN_HEADER_LEN) & !7;
        if chunk == 0 || ip_at + hl < headers || ip_at + len > f.buf.len() || len < hl {
            return self.drop(Counter::DropNoHeadroom);
        }
        let payload = len - hl;
        let (mut off, mut n) = (0, 0);
        while off < payload {
            let take = chunk.min(payload - off);
            let more = off + take < payload || last_more;
            let data = ip_at + hl + off;
            let start = data - headers;
            let ip =
                start + ethernet::write_header(&mut f.buf[start..], l2.dst, l2.src, l2.vlan, ethernet::ETHERTYPE_IPV4);
            let flags_frag = ((base + off) / 8) as u16 | if more { ipv4::FLAG_MF } else { 0 };
            let total = (ipv4::MIN_HEADER_LEN + take) as u16;
            ipv4::write_header(&mut f.buf[ip..], tos, total, ident, flags_frag, ttl, protocol, src, dst);
            sink.emit(Egress::Internet, &f.buf[start..data + take]);
            off += take;
            n += 1;
        }
        self.count(Counter::Ipv4Fragmented);
        self.counters.add(Counter::Ipv4FragmentsSent, n);
        Verdict::Consumed
    }
}

/// The ports of an inbound datagram from its first fragment's transport header: TCP or
/// UDP, or an ICMP echo reply (an ICMP error is translated whole or not at all).
fn first_fragment_ports(protocol: u8, l4: &[u8]) -> Result<FragmentPorts, Counter> {
    match protocol {
        proto::UDP | proto::TCP if l4.len() >= 4 => {
            Ok(FragmentPorts { port: udp::dst_port(l4), remote_port: udp::src_port(l4) })
        }
        proto::ICMP if l4.len() >= wicmp::HEADER_LEN => {
            if wicmp::msg_type(l4) == wicmp::v4::ECHO_REPLY {
                Ok(FragmentPorts { port: wicmp::echo_ident(l4), remote_port: 0 })
            } else {
                Err(Counter::DropUnsupportedIcmp)
            }
        }
        _ => Err(Counter::DropMalformedL4),
    }
}
