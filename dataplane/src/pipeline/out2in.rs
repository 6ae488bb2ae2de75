//! IPv4 from the Internet to a pool address: NAT outside to inside, then encapsulation
//! towards the session's B4. Hot path (see `pipeline/mod.rs`).

use super::BatchCtx;
use crate::counters::Counter;
use crate::frame::{Frame, Sink, Verdict};
use crate::wire::icmp as wicmp;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6;
use crate::wire::{proto, tcp, udp};

use super::in2out::tcp_inbound;
use super::{flow_label, inbound_port};

impl BatchCtx<'_> {
    /// An IPv4 frame: ours if its destination is a pool address, else the kernel's.
    #[inline]
    pub(crate) fn inbound(&mut self, f: &mut Frame, l3: usize, sink: &mut dyn Sink) -> Verdict {
        let end = f.start + f.len;
        let (dst, ok) = match Ipv4Packet::new_checked(&f.buf[l3..end]) {
            Ok(p) => (p.dst(), p.verify_checksum()),
            Err(_) => return self.drop(Counter::DropMalformedIpv4),
        };
        match self.nat.pool_lookup(dst) {
            // A B4's own address (decision 0019): checked, then untranslated.
            None if self.nat.statics.is_owned(dst) => {
                return if ok { self.own_out2in(f, l3, sink) } else { self.drop(Counter::DropBadIpv4Checksum) };
            }
            None => return self.pass(),
            Some((inst, idx)) if !self.nat.index_active(inst, idx) => return self.drop(Counter::DropLocationStandby),
            Some(_) => {}
        }
        if !ok {
            return self.drop(Counter::DropBadIpv4Checksum);
        }
        self.nat_out2in(f, l3, sink)
    }

    /// NAT outside to inside of the checked IPv4 packet at `ip_at` (from the wire or
    /// hairpinned), then encapsulation.
    #[inline]
    pub(crate) fn nat_out2in(&mut self, f: &mut Frame, ip_at: usize, sink: &mut dyn Sink) -> Verdict {
        let (src, dst, protocol, hl, ip_len, is_frag, frag_off, df) = {
            let p = Ipv4Packet::new_unchecked(&f.buf[ip_at..]);
            (
                p.src(),
                p.dst(),
                p.protocol(),
                p.header_len(),
                p.total_len(),
                p.is_fragment(),
                p.frag_offset(),
                p.dont_frag(),
            )
        };
        let l4 = ip_at + hl;
        let l4_end = ip_at + ip_len;
        // The port that finds the session: from the packet, or resolved from the first
        // fragment of this datagram.
        let port = if let Some(h) = f.hint {
            h.port
        } else if is_frag {
            return self.inbound_fragment(f, ip_at, sink);
        } else {
            match protocol {
                proto::UDP | proto::TCP | proto::ICMP => {}
                _ => return self.drop(Counter::DropUnsupportedProtocol),
            }
            if protocol == proto::ICMP {
                if wicmp::check(&f.buf[l4..l4_end]).is_err() {
                    return self.drop(Counter::DropMalformedL4);
                }
                let t = wicmp::msg_type(&f.buf[l4..]);
                if wicmp::v4_is_error(t) {
                    return self.icmp_error_out2in(f, ip_at, l4, l4_end, sink);
                }
                if t != wicmp::v4::ECHO_REPLY {
                    return self.drop(Counter::DropUnsupportedIcmp);
                }
            }
            match inbound_port(protocol, &f.buf[l4..l4_end]) {
                Some(p) => p,
                None => return self.drop(Counter::DropMalformedL4),
            }
        };
        if let Some(w) = self.nat.foreign_port_owner(dst, port) {
            // A fragment goes with its datagram's ports (`f.hint`).
            return self.handoff_to(w, Counter::HandedOffInternet);
        }
        let first_piece = frag_off == 0;
        if first_piece {
            let ok = match protocol {
                proto::UDP => l4_end - l4 >= udp::HEADER_LEN && (is_frag || udp::check(&f.buf[l4..l4_end]).is_ok()),
                proto::TCP => tcp::check(&f.buf[l4..l4_end]).is_ok(),
                _ => l4_end - l4 >= wicmp::HEADER_LEN,
            };
            if !ok {
                return self.drop(Counter::DropMalformedL4);
            }
        }
        let Some(i) = self.nat.find_outside(dst, port, protocol) else {
            // A static forwarding (decision 0019); fragments only through sessions.
            if f.hint.is_none()
                && !is_frag
                && let Some(to) = self.nat.statics.outside(dst, port, protocol)
            {
                return self.static_out2in(f, ip_at, l4, l4_end, port, to, sink);
            }
            // RFC 5382 REQ-4: an unsolicited SYN gets no answer; silently dropped.
            return self.drop(Counter::DropNoSession);
        };
        let s = *self.nat.sessions.get(i);
        let (inst, b4) = {
            let sub = self.nat.subs.get(s.sub);
            (sub.inst, sub.b4)
        };
        // A later fragment is filtered as its first was, by the ports it told.
        let sport = match f.hint {
            _ if first_piece && protocol != proto::ICMP => udp::src_port(&f.buf[l4..]),
            Some(h) => h.remote_port,
            None => 0,
        };
        if !self.nat.permitted(i, inst, src, sport) {
            return self.drop(Counter::DropFiltered);
        }
        // RFC 1812 section 5.3.1, once the packet is known to belong to a session it may
        // reach: a probe of the pool gets no answer.
        if f.buf[ip_at + 8] <= 1 {
            return self.time_exceeded_send_outbound(f, ip_at);
        }
        // DF packets that do not fit the path to the B4 get ICMPv4 3/4 (RFC 6333 section 5.3),
        // quoting the packet as the sender sent it.
        let mtu = self.nat.path_mtu(s.sub, self.hot[inst as usize].tunnel_mtu) as usize;
        if df && ip_len + ipv6::HEADER_LEN > mtu {
            return self.frag_needed_send_outbound(f, ip_at, (mtu - ipv6::HEADER_LEN) as u16);
        }
        let tflags = if protocol == proto::TCP && first_piece { tcp::flags(&f.buf[l4..]) } else { 0 };
        let flags = if protocol == proto::TCP && first_piece {
            tcp_inbound(&s, src, sport, tflags).unwrap_or_else(|| {
                if tflags & tcp::RST != 0 {
                    self.count(Counter::TcpRstIgnored);
                }
                s.flags
            })
        } else {
            s.flags
        };
        // Inbound traffic refreshes too: a receiving subscriber keeps its mapping.
        self.nat.touch(i, inst, flags);
        Ipv4Packet::new_unchecked(&mut f.buf[ip_at..]).set_dst_adjust(s.inner_addr);
        if first_piece {
            self.translate_dst(f, l4, l4_end, protocol, inst, dst, s.inner_addr, port, s.inner_port);
        } else {
            self.count(Counter::Ipv4FragmentsTranslated);
        }
        Ipv4Packet::new_unchecked(&mut f.buf[ip_at..]).decrement_ttl();
        self.count(Counter::Out2In);
        self.towards_subscriber(s.sub);
        self.encapsulate(f, ip_at, ip_len, inst, &b4, flow_label(i), mtu, sink)
    }
}
