//! Static port forwardings and B4s with an address of their own (decision 0019): the
//! packets the configuration maps, stateless. Reached only where the common path missed
//! (see `nat::statics`). Hot path rules (see `pipeline/mod.rs`).

use super::{BatchCtx, flow_label, inbound_port};
use crate::counters::Counter;
use crate::frame::{Frame, Sink, Verdict};
use crate::nat::statics::Inside;
use crate::wire::icmp as wicmp;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::{ipv6, proto, tcp, udp};

impl BatchCtx<'_> {
    /// An inbound packet (from the Internet, or hairpinned) to external port `port` of
    /// a static forwarding: to its inside end, through the softwire of its B4.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn static_out2in(
        &mut self,
        f: &mut Frame,
        ip_at: usize,
        l4: usize,
        l4_end: usize,
        port: u16,
        to: Inside,
        sink: &mut dyn Sink,
    ) -> Verdict {
        let (dst, protocol, ip_len) = {
            let p = Ipv4Packet::new_unchecked(&f.buf[ip_at..]);
            (p.dst(), p.protocol(), p.total_len())
        };
        let mtu = match self.path_to_b4(f, ip_at, ip_len, to.inst, &to.b4) {
            Ok(mtu) => mtu,
            Err(mtu) => return self.ttl_or_mtu_error(f, ip_at, mtu),
        };
        Ipv4Packet::new_unchecked(&mut f.buf[ip_at..]).set_dst_adjust(to.addr);
        self.translate_dst(f, l4, l4_end, protocol, to.inst, dst, to.addr, port, to.port);
        Ipv4Packet::new_unchecked(&mut f.buf[ip_at..]).decrement_ttl();
        self.count(Counter::Out2In);
        self.count(Counter::StaticOut2In);
        self.encapsulate(f, ip_at, ip_len, to.inst, &to.b4, flow_label(dst ^ port as u32), mtu, sink)
    }

    /// An IPv4 packet (from the Internet, or hairpinned) to address `dst`, which is a
    /// B4's own: to that B4 untranslated, when it holds the destination port.
    pub(crate) fn own_out2in(&mut self, f: &mut Frame, ip_at: usize, sink: &mut dyn Sink) -> Verdict {
        let (dst, protocol, hl, ip_len, later_fragment) = {
            let p = Ipv4Packet::new_unchecked(&f.buf[ip_at..]);
            (p.dst(), p.protocol(), p.header_len(), p.total_len(), p.frag_offset() != 0)
        };
        // A later fragment tells no port: only a whole-address entry takes it.
        let port = if later_fragment { None } else { inbound_port(protocol, &f.buf[ip_at + hl..ip_at + ip_len]) };
        let o = match self.nat.statics.inbound(dst, port) {
            Some(Ok(o)) => *o,
            Some(Err(c)) => return self.drop(c),
            None => return self.pass(),
        };
        if let Err(c) = self.nat.b4_served(o.inst, &o.b4) {
            return self.drop(c);
        }
        let mtu = match self.path_to_b4(f, ip_at, ip_len, o.inst, &o.b4) {
            Ok(mtu) => mtu,
            Err(mtu) => return self.ttl_or_mtu_error(f, ip_at, mtu),
        };
        Ipv4Packet::new_unchecked(&mut f.buf[ip_at..]).decrement_ttl();
        self.count(Counter::OwnAddressOut2In);
        let flow = flow_label(dst ^ port.unwrap_or(0) as u32);
        self.encapsulate(f, ip_at, ip_len, o.inst, &o.b4, flow, mtu, sink)
    }

    /// The path MTU towards `b4`, with the next hop set to the one learned from its
    /// frames (its subscriber on this worker, if any); Err with it when the packet at
    /// `ip_at` may not go: TTL out, or DF and too big (`ttl_or_mtu_error` answers it).
    fn path_to_b4(&mut self, f: &Frame, ip_at: usize, ip_len: usize, inst: u8, b4: &[u8; 16]) -> Result<usize, usize> {
        let tunnel_mtu = self.hot[inst as usize].tunnel_mtu;
        let sub = self.nat.find_subscriber(inst, b4);
        let mtu = sub.map_or(tunnel_mtu, |si| self.nat.path_mtu(si, tunnel_mtu)) as usize;
        let p = Ipv4Packet::new_unchecked(&f.buf[ip_at..]);
        if p.ttl() <= 1 || (p.dont_frag() && ip_len + ipv6::HEADER_LEN > mtu) {
            return Err(mtu);
        }
        match sub {
            Some(si) => self.towards_subscriber(si),
            None if self.state.softwire_seen != [0; 6] => self.softwire_dst = self.state.softwire_seen,
            None => {}
        }
        Ok(mtu)
    }

    /// Remembers where the frame being processed came from, as the next hop towards B4s
    /// without a subscriber here (`path_to_b4`).
    #[inline]
    pub(crate) fn learn_softwire_next_hop(&mut self) {
        if self.rx_mac != [0; 6] {
            self.state.softwire_seen = self.rx_mac;
        }
    }

    /// The ICMP error for a packet `path_to_b4` refused: time exceeded, or fragmentation
    /// needed with the tunnel's room for IPv4.
    fn ttl_or_mtu_error(&mut self, f: &mut Frame, ip_at: usize, mtu: usize) -> Verdict {
        if f.buf[ip_at + 8] <= 1 {
            return self.time_exceeded_send_outbound(f, ip_at);
        }
        let room = (mtu - ipv6::HEADER_LEN) as u16;
        self.frag_needed_send_outbound(f, ip_at, room)
    }

    /// Rewrites the destination port (or echo identifier) of the transport header at
    /// `l4` from `old_port` to `new_port`, the address having gone from `old` to `new`,
    /// with the checksum updated (RFC 1624); MSS clamped on a SYN.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn translate_dst(
        &mut self,
        f: &mut Frame,
        l4: usize,
        l4_end: usize,
        protocol: u8,
        inst: u8,
        old: u32,
        new: u32,
        old_port: u16,
        new_port: u16,
    ) {
        let seg = &mut f.buf[l4..l4_end];
        match protocol {
            proto::UDP => {
                udp::set_dst_port(seg, new_port);
                let c = udp::checksum(seg);
                if c != 0 {
                    udp::set_checksum(seg, crate::wire::checksum::adjust_addr_port(c, old, new, old_port, new_port));
                }
            }
            proto::TCP => {
                tcp::set_dst_port(seg, new_port);
                let c = crate::wire::checksum::adjust_addr_port(tcp::checksum(seg), old, new, old_port, new_port);
                tcp::set_checksum(seg, c);
                if tcp::flags(seg) & tcp::SYN != 0 {
                    self.clamp_mss(inst, &mut f.buf[l4..l4_end]);
                }
            }
            _ => {
                wicmp::set_echo_ident(seg, new_port);
                let c = crate::wire::checksum::adjust_u16(wicmp::checksum(seg), old_port, new_port);
                wicmp::set_checksum(seg, c);
            }
        }
    }
}

/// The port an outbound packet of a B4 with an own address is checked by: the source
/// port of TCP and UDP, the identifier of an echo request; None for a packet without one
/// (a later fragment, another protocol, an ICMP error).
pub(crate) fn outbound_port(protocol: u8, later_fragment: bool, l4: &[u8]) -> Option<u16> {
    if later_fragment {
        return None;
    }
    match protocol {
        proto::UDP | proto::TCP if l4.len() >= 4 => Some(udp::src_port(l4)),
        proto::ICMP if l4.len() >= 8 && wicmp::msg_type(l4) == wicmp::v4::ECHO_REQUEST => Some(wicmp::echo_ident(l4)),
        _ => None,
    }
}
