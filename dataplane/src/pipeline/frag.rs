//! Fragments.
//!
//! - Softwire packets fragmented in IPv6 by a B4 are reassembled (RFC 6333 section 5.3),
//!   in a fixed pool of buffers, with a timeout; an overlapping fragment discards the
//!   whole datagram (RFC 5722). The fragmentable part starts right after the Fragment
//!   header, extension headers and all (RFC 8200 section 4.5); the rebuilt packet's
//!   headers are walked again. An atomic fragment is a whole packet, processed alone
//!   (RFC 6946). Then the packet goes down the normal softwire path.
//! - IPv4 fragments from a subscriber: the first carries the ports and finds the session;
//!   the others need only the subscriber's paired address (RFC 6888 REQ-2), so they are
//!   translated as they come, in any order, without reassembly.
//! - IPv4 fragments from the Internet: the first fragment tells the port; later ones
//!   find it in a small table keyed by (source, destination, protocol, identification);
//!   fragments that arrive before their first are held (bounded) and released when it
//!   comes (RFC 4787 REQ-14: in-order and out-of-order fragments). Overlaps discard the
//!   datagram. All fragments of a datagram are handled by one worker chosen by hash.
//! - Encapsulated packets larger than the tunnel MTU are fragmented in IPv6 (never inside
//!   IPv4, RFC 6333 section 5.3).

use super::BatchCtx;
use crate::counters::Counter;
use crate::frame::{Egress, Frame, HEADROOM, Sink, Verdict, WorkerId};
use crate::nat::fragments::{HELD_MAX, MAX_PIECES, Piece, REASM_HEADROOM, overlaps};
use crate::wire::ethernet;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6::{self, Ipv6Packet, Upper};
use crate::wire::{WireError, proto};

/// The worker that handles all fragments of an inbound IPv4 datagram.
pub fn fragment_worker(src: u32, dst: u32, ident: u16, workers: u16) -> WorkerId {
    let h = (src ^ dst.rotate_left(16) ^ ident as u32).wrapping_mul(0x9e37_79b1);
    ((h >> 16) % workers as u32) as WorkerId
}

impl BatchCtx<'_> {
    /// Adds an IPv6 fragment of a softwire packet; processes the packet once whole.
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
        let data = &f.buf[at..l3 + total];
        let (start, end) = (fi.offset, fi.offset + data.len());
        // All but the last fragment are multiples of 8 bytes.
        if (fi.more && !data.len().is_multiple_of(8)) || data.is_empty() {
            return self.drop(Counter::DropMalformedIpv6);
        }
        let limits = self.frag6.limits;
        let key = (src, dst, fi.ident);
        let slot = match self.frag6.slots.iter().position(|s| s.live && s.key == key) {
            Some(i) => i,
            None => {
                let Some(i) = self.frag6.slots.iter().position(|s| !s.live) else {
                    return self.drop(Counter::DropFragTableFull);
                };
                let s = &mut self.frag6.slots[i];
                s.live = true;
                s.key = key;
                s.deadline = self.now_ms + limits.timeout_ms;
                self.frag6.earliest = self.frag6.earliest.min(s.deadline);
                s.npieces = 0;
                s.total = None;
                i
            }
        };
        let s = &mut self.frag6.slots[slot];
        if end > limits.max_datagram {
            s.live = false;
            return self.drop(Counter::DropFragTooBig);
        }
        let bad_end = match s.total {
            Some(t) => end > t || (!fi.more && end != t),
            None => !fi.more && s.pieces[..s.npieces].iter().any(|p| p.end > end),
        };
        if overlaps(&s.pieces[..s.npieces], start, end) || bad_end || s.npieces == MAX_PIECES {
            s.live = false;
            return self.drop(Counter::DropFragOverlap);
        }
        if start == 0 {
            s.next_header = f.buf[l3 + fi.header_offset];
        }
        if !fi.more {
            s.total = Some(end);
        }
        let base = REASM_HEADROOM + ipv6::HEADER_LEN;
        s.buf[base + start..base + end].copy_from_slice(data);
        s.pieces[s.npieces] = Piece { start, end };
        s.npieces += 1;
        let have: usize = s.pieces[..s.npieces].iter().map(|p| p.end - p.start).sum();
        let Some(t) = s.total else { return Verdict::Consumed };
        if have != t {
            return Verdict::Consumed;
        }
        // Whole: an IPv6 header, then the fragmentable part. The traffic class (ECN) is
        // the last fragment's.
        s.live = false;
        let nh = s.next_header;
        let mut buf = std::mem::take(&mut s.buf);
        ipv6::write_header(&mut buf[REASM_HEADROOM..], 0, 0, t as u16, nh, 64, &src, &dst);
        buf[REASM_HEADROOM..REASM_HEADROOM + 2].copy_from_slice(&f.buf[l3..l3 + 2]);
        self.count(Counter::Reassembled);
        let v = self.reassembled6(&mut buf, ipv6::HEADER_LEN + t, nh, inst, sink);
        self.frag6.slots[slot].buf = buf;
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
    ) -> Verdict {
        let Ok(si) = self.nat.subscriber(inst, b4, None, self.rx_mac) else {
            return self.drop(Counter::DropFragNoSubscriber);
        };
        if self.nat.pool_lookup(dst).is_some() {
            return self.drop(Counter::DropFragHairpin);
        }
        let ext = self.nat.subs.get(si).ext_addr;
        let mut p = Ipv4Packet::new_unchecked(&mut f.buf[ip_at..]);
        p.set_src_adjust(ext);
        p.decrement_ttl();
        self.count(Counter::Ipv4FragmentsTranslated);
        self.count(Counter::In2Out);
        self.emit_l3(f, ip_at, ip_len, Egress::Internet)
    }

    /// An inbound IPv4 fragment without a resolved port.
    pub(crate) fn inbound_fragment(&mut self, f: &mut Frame, ip_at: usize, sink: &mut dyn Sink) -> Verdict {
        let (key, off, len, more, hl) = {
            let p = Ipv4Packet::new_unchecked(&f.buf[ip_at..]);
            (
                (p.src(), p.dst(), p.ident(), p.protocol()),
                p.frag_offset(),
                p.total_len() - p.header_len(),
                p.more_frags(),
                p.header_len(),
            )
        };
        if !matches!(key.3, proto::UDP | proto::TCP | proto::ICMP) {
            return self.drop(Counter::DropUnsupportedProtocol);
        }
        let limits = self.frag4.limits;
        let d = match self.frag4.find(key) {
            Some(d) => d,
            None => {
                let Some(d) = self.frag4.datagrams.iter().position(|d| !d.live) else {
                    return self.drop(Counter::DropFragTableFull);
                };
                let dg = &mut self.frag4.datagrams[d];
                dg.live = true;
                dg.key = key;
                dg.port = None;
                dg.npieces = 0;
                dg.total = None;
                dg.seen = 0;
                dg.deadline = self.now_ms + limits.timeout_ms;
                self.frag4.earliest = self.frag4.earliest.min(dg.deadline);
                d
            }
        };
        let dg = &mut self.frag4.datagrams[d];
        let (start, end) = (off, off + len);
        if overlaps(&dg.pieces[..dg.npieces], start, end)
            || dg.npieces == dg.pieces.len()
            || (more && !len.is_multiple_of(8))
        {
            dg.live = false;
            return self.drop(Counter::DropFragOverlap);
        }
        let past_end = match dg.total {
            Some(t) => end > t || (!more && end != t),
            None => !more && dg.pieces[..dg.npieces].iter().any(|p| p.end > end),
        };
        if past_end {
            dg.live = false;
            return self.drop(Counter::DropFragOverlap);
        }
        dg.pieces[dg.npieces] = Piece { start, end };
        dg.npieces += 1;
        dg.seen += len;
        if !more {
            dg.total = Some(end);
        }
        // Every byte seen: the entry has done its work (held fragments, if any, are
        // released below with the first fragment, which must then be this one).
        if dg.total == Some(dg.seen) {
            dg.live = false;
        }
        if off == 0 {
            let port = match super::inbound_port(key.3, &f.buf[ip_at + hl..ip_at + hl + len]) {
                Some(p) => p,
                None => {
                    self.frag4.datagrams[d].live = false;
                    return self.drop(Counter::DropMalformedL4);
                }
            };
            self.frag4.datagrams[d].port = Some(port);
            f.hint = Some(port);
            let v = self.nat_out2in(f, ip_at, sink);
            self.release_held(key, port, sink);
            return v;
        }
        if let Some(port) = self.frag4.datagrams[d].port {
            f.hint = Some(port);
            return self.nat_out2in(f, ip_at, sink);
        }
        // Before its first fragment: hold a copy.
        let flen = f.len;
        if flen > HELD_MAX {
            return self.drop(Counter::DropFragTooBig);
        }
        let Some(h) = self.frag4.held.iter().position(|h| !h.live) else {
            return self.drop(Counter::DropFragTableFull);
        };
        let hs = &mut self.frag4.held[h];
        hs.live = true;
        hs.key = key;
        hs.deadline = self.now_ms + limits.timeout_ms;
        self.frag4.earliest = self.frag4.earliest.min(hs.deadline);
        hs.len = flen;
        hs.buf[HEADROOM..HEADROOM + flen].copy_from_slice(f.bytes());
        Verdict::Consumed
    }

    fn release_held(&mut self, key: (u32, u32, u16, u8), port: u16, sink: &mut dyn Sink) {
        for h in 0..self.frag4.held.len() {
            if !(self.frag4.held[h].live && self.frag4.held[h].key == key) {
                continue;
            }
            self.frag4.held[h].live = false;
            let len = self.frag4.held[h].len;
            let mut buf = std::mem::take(&mut self.frag4.held[h].buf);
            let mut fr = Frame::new(&mut buf, HEADROOM, len);
            fr.hint = Some(port);
            let l3 = match ethernet::parse(fr.bytes()) {
                Ok(l2) => HEADROOM + l2.l3_offset,
                Err(_) => {
                    self.frag4.held[h].buf = buf;
                    continue;
                }
            };
            match self.nat_out2in(&mut fr, l3, sink) {
                Verdict::Forward(e) => sink.emit(e, fr.bytes()),
                Verdict::Handoff(w) => sink.handoff(w, fr.bytes(), fr.hint),
                _ => {}
            }
            self.frag4.held[h].buf = buf;
        }
    }

    /// Splits the IPv6 packet at `v6_at` into fragments of at most `mtu` bytes, emitted
    /// through the sink (RFC 8200 section 4.5).
    pub(crate) fn fragment_outer(
        &mut self,
        f: &mut Frame,
        v6_at: usize,
        len: usize,
        mtu: usize,
        sink: &mut dyn Sink,
    ) -> Verdict {
        let ident = self.nat.random();
        let payload = len - ipv6::HEADER_LEN;
        let chunk = (mtu - ipv6::HEADER_LEN - ipv6::FRAG_HEADER_LEN) & !7;
        let nh = Ipv6Packet::new_unchecked(&f.buf[v6_at..]).next_header();
        let l2 = crate::config::EgressL2 { dst: self.softwire_dst, ..self.softwire_l2 };
        let hl = ethernet::header_len(l2.vlan);
        let mut out = [0u8; 9216 + 128];
        let mut off = 0;
        let mut n = 0;
        while off < payload {
            let take = chunk.min(payload - off);
            let more = off + take < payload;
            let mut at = ethernet::write_header(&mut out, l2.dst, l2.src, l2.vlan, ethernet::ETHERTYPE_IPV6);
            out[at..at + ipv6::HEADER_LEN].copy_from_slice(&f.buf[v6_at..v6_at + ipv6::HEADER_LEN]);
            {
                let mut p = Ipv6Packet::new_unchecked(&mut out[at..]);
                p.set_next_header(proto::IPV6_FRAG);
                p.set_payload_len((ipv6::FRAG_HEADER_LEN + take) as u16);
            }
            at += ipv6::HEADER_LEN;
            ipv6::write_frag_header(&mut out[at..], nh, off, more, ident);
            at += ipv6::FRAG_HEADER_LEN;
            let from = v6_at + ipv6::HEADER_LEN + off;
            out[at..at + take].copy_from_slice(&f.buf[from..from + take]);
            sink.emit(Egress::Softwire, &out[..at + take]);
            off += take;
            n += 1;
        }
        debug_assert!(hl <= 18);
        self.count(Counter::OuterFragmented);
        self.counters.add(Counter::OuterFragmentsSent, n);
        Verdict::Consumed
    }
}
