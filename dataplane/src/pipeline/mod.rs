//! The packet path. Hot path: every function here runs per packet, works in place on
//! the frame's buffer, allocates nothing, and returns a [`Verdict`].
//!
//! - `in2out.rs`: softwire from a B4 -> decapsulation -> NAT inside to outside (and
//!   hairpinning back into `out2in`).
//! - `out2in.rs`: IPv4 to a pool address -> NAT outside to inside -> encapsulation
//!   towards the B4 (outer fragmentation, DF handling).
//! - `icmp.rs`: echo to the AFTR endpoint, ICMP errors in both directions, ICMPv6 errors
//!   about the tunnel turned into ICMPv4, generated errors (time exceeded, frag needed).
//! - `frag.rs`: IPv6 reassembly of softwire packets, IPv4 fragment tracking inbound.

pub mod batch;
pub mod frag;
pub mod icmp;
pub mod in2out;
pub mod out2in;

use crate::counters::Counter;
use crate::engine::{Egress, Engine, Frame, HEADROOM, Sink, Verdict, WorkerId};
use crate::wire::ethernet::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::{icmp as wicmp, proto, tcp, udp};

impl Engine {
    /// Processes one received frame: the whole data plane for that frame.
    pub fn process(&mut self, f: &mut Frame, sink: &mut dyn Sink) -> Verdict {
        self.count(Counter::RxFrames);
        self.process_counted(f, sink)
    }

    /// [`Engine::process`] for a frame already counted in `rx_frames`.
    #[inline]
    pub(crate) fn process_counted(&mut self, f: &mut Frame, sink: &mut dyn Sink) -> Verdict {
        // Valid only for the frame as the batch's first stage saw it: taken here, once.
        self.prehash = f.prehash.take();
        if f.len >= 12 && f.start + 12 <= f.buf.len() {
            self.rx_mac.copy_from_slice(&f.buf[f.start + 6..f.start + 12]);
        }
        self.softwire_dst = self.softwire_l2.dst;
        if f.start < HEADROOM || f.start + f.len > f.buf.len() {
            self.count(Counter::DropNoHeadroom);
            return Verdict::Drop(Counter::DropNoHeadroom);
        }
        let l2 = match ethernet::parse(f.bytes()) {
            Ok(l2) => l2,
            Err(_) => return self.drop(Counter::DropMalformedL2),
        };
        match l2.ethertype {
            ETHERTYPE_IPV6 => self.softwire(f, f.start + l2.l3_offset, sink),
            ETHERTYPE_IPV4 => self.inbound(f, f.start + l2.l3_offset, sink),
            _ => {
                self.count(Counter::PassedToKernel);
                Verdict::Pass
            }
        }
    }

    /// The worker that should process `frame`, or None if no worker needs it (the I/O
    /// layer then processes it where it landed): for softwire frames the worker holding
    /// the B4 (none for a B4 no worker holds yet), for IPv4 the owner of the port.
    pub fn owner_of_frame(&self, frame: &[u8]) -> Option<WorkerId> {
        if self.workers == 1 {
            return Some(0);
        }
        let l2 = ethernet::parse(frame).ok()?;
        let l3 = &frame[l2.l3_offset..];
        match l2.ethertype {
            ETHERTYPE_IPV6 => {
                let p = Ipv6Packet::new_checked(l3).ok()?;
                // An ICMPv6 error about a softwire packet belongs to the B4 it was sent to.
                if p.next_header() == proto::ICMPV6
                    && l3.len() >= 40 + 8 + 40
                    && matches!(l3[40], wicmp::v6::DEST_UNREACH | wicmp::v6::PACKET_TOO_BIG | wicmp::v6::TIME_EXCEEDED)
                {
                    let quoted: [u8; 16] = l3[48 + 24..48 + 40].try_into().ok()?;
                    return self.owners.owner(&quoted);
                }
                self.owners.owner(&p.src())
            }
            ETHERTYPE_IPV4 => {
                let p = Ipv4Packet::new_checked(l3).ok()?;
                if p.is_fragment() {
                    return Some(frag::fragment_worker(p.src(), p.dst(), p.ident(), self.workers));
                }
                let port = inbound_port(p.protocol(), p.payload())?;
                self.owner_of_port(p.dst(), port)
            }
            _ => None,
        }
    }

    #[inline]
    pub(crate) fn drop(&self, c: Counter) -> Verdict {
        self.count(c);
        Verdict::Drop(c)
    }

    /// Puts the egress Ethernet header in front of the layer-3 packet at `l3` and makes
    /// the frame span it.
    #[inline]
    pub(crate) fn emit_l3(&self, f: &mut Frame, l3: usize, l3_len: usize, egress: Egress) -> Verdict {
        let (l2, ethertype) = match egress {
            Egress::Softwire => {
                (crate::config::EgressL2 { dst: self.softwire_dst, ..self.softwire_l2 }, ETHERTYPE_IPV6)
            }
            Egress::Internet => (self.internet_l2, ETHERTYPE_IPV4),
        };
        if l2.dst == [0; 6] {
            // Not resolved yet (no neighbour entry, no frame from that subscriber).
            return self.drop(Counter::DropNoNextHop);
        }
        let hl = ethernet::header_len(l2.vlan);
        let start = l3 - hl;
        ethernet::write_header(&mut f.buf[start..], l2.dst, l2.src, l2.vlan, ethertype);
        f.start = start;
        f.len = hl + l3_len;
        Verdict::Forward(egress)
    }

    /// Encapsulates the IPv4 packet at `ip_at` towards `b4` from the endpoint of instance
    /// `inst` (RFC 6333 section 5.3, RFC 2473). Fragments the outer packet if it exceeds
    /// the tunnel MTU (the caller has already refused DF packets that cannot fit).
    #[inline]
    pub(crate) fn encapsulate(
        &mut self,
        f: &mut Frame,
        ip_at: usize,
        ip_len: usize,
        inst: u8,
        b4: &[u8; 16],
        flow: u32,
        sink: &mut dyn Sink,
    ) -> Verdict {
        let cfg = &self.hot[inst as usize];
        let tos = f.buf[ip_at + 1];
        let v6_at = ip_at - ipv6::HEADER_LEN;
        // Traffic class from the inner TOS: DSCP and ECN copied (RFC 2983 uniform model,
        // RFC 6040 normal mode).
        ipv6::write_header(
            &mut f.buf[v6_at..],
            tos,
            flow & 0x000f_ffff,
            ip_len as u16,
            proto::IPV4_IN_IP,
            cfg.hop_limit,
            &cfg.endpoint,
            b4,
        );
        if ipv6::HEADER_LEN + ip_len > cfg.tunnel_mtu as usize {
            let mtu = cfg.tunnel_mtu as usize;
            return self.fragment_outer(f, v6_at, ipv6::HEADER_LEN + ip_len, mtu, sink);
        }
        self.emit_l3(f, v6_at, ipv6::HEADER_LEN + ip_len, Egress::Softwire)
    }
}

/// The port that decides the owner of an inbound (outside to inside) IPv4 packet.
pub(crate) fn inbound_port(protocol: u8, l4: &[u8]) -> Option<u16> {
    match protocol {
        proto::UDP | proto::TCP if l4.len() >= 4 => Some(udp::dst_port(l4)),
        proto::ICMP if l4.len() >= 8 => {
            let t = wicmp::msg_type(l4);
            if t == wicmp::v4::ECHO_REPLY {
                Some(wicmp::echo_ident(l4))
            } else if wicmp::v4_is_error(t) {
                // The embedded packet is one we sent: its source port is ours.
                let e = Ipv4Packet::new_unchecked(&l4[8..]);
                if l4.len() < 8 + ipv4::MIN_HEADER_LEN {
                    return None;
                }
                let hl = e.header_len();
                let el4 = l4.get(8 + hl..)?;
                match e.protocol() {
                    proto::UDP | proto::TCP if el4.len() >= 2 => Some(tcp::src_port(el4)),
                    proto::ICMP if el4.len() >= 6 => Some(wicmp::echo_ident(el4)),
                    _ => None,
                }
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A flow label for the outer header from the session (RFC 6437: stable per flow).
#[inline]
pub(crate) fn flow_label(session: u32) -> u32 {
    session.wrapping_mul(0x9e37_79b1) >> 12
}
