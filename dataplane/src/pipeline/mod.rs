//! The packet path. Hot path: every function here runs per packet, works in place on
//! the frame's buffer, allocates nothing, and returns a [`Verdict`].
//!
//! The stages are methods of [`BatchCtx`], which the engine builds for each batch from
//! its parts: the NAT state (`nat::table`), the fragment tables (`nat::fragments`), the
//! counters and the settings the path reads ([`PathConfig`]); the values of the frame
//! being processed (its prehashed key, the MAC it came from, the next hop towards the
//! B4) are fields of the context, reset for every frame, never of the engine.
//!
//! - `batch.rs`: a batch: hash keys, prefetch index slots, then records, then process.
//! - `in2out.rs`: softwire from a B4 -> decapsulation -> NAT inside to outside (and
//!   hairpinning back into `out2in`).
//! - `out2in.rs`: IPv4 to a pool address -> NAT outside to inside -> encapsulation
//!   towards the B4 (outer fragmentation, DF handling).
//! - `icmp.rs`: echo to the AFTR endpoint, ICMP errors in both directions, ICMPv6 errors
//!   about the tunnel turned into ICMPv4, Packet Too Big as the path MTU of a B4,
//!   generated errors (time exceeded, frag needed, host unreachable) within a budget.
//! - `pcp.rs`: the PCP server (RFC 6887) that hosts behind the B4s reach through their
//!   softwire (decision 0023): MAP, PEER and ANNOUNCE, answered through the softwire.
//! - `frag.rs`: IPv6 reassembly of softwire packets, IPv4 fragment tracking inbound.

pub mod batch;
pub mod frag;
pub mod icmp;
pub mod in2out;
pub mod out2in;
pub mod pcp;
pub mod statics;

use std::sync::Arc;

use arc_swap::Guard;

use crate::config::{EgressL2, EngineConfig, InstanceConfig};
use crate::counters::{Counter, WorkerCounters};
use crate::fib::{Fib, FibHandle, Next};
use crate::frame::{Egress, Frame, HEADROOM, Sink, Verdict};
use crate::nat::fragments::{FragTracker4, Reassembler};
use crate::nat::table::NatState;
use crate::wire::ethernet::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6, Mac};
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::ipv6;
use crate::wire::{icmp as wicmp, proto, tcp, udp};

/// What the packet path reads of an instance, copied into one small contiguous array
/// so it stays in cache (the full configuration sits behind several pointers).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HotInstance {
    pub endpoint: [u8; 16],
    /// Authorised B4 prefixes as (masked address, mask); the rest, if more, in the
    /// instance's configuration.
    prefixes: [(u128, u128); HOT_PREFIXES],
    nprefixes: u8,
    more_prefixes: bool,
    pub tunnel_mtu: u16,
    pub internet_mtu: u16,
    pub hop_limit: u8,
    pub allow_public_inner: bool,
    pub mss_clamp: bool,
    /// The PCP server's address (decision 0023); 0: no server.
    pub pcp_server: u32,
}

const HOT_PREFIXES: usize = 4;

impl HotInstance {
    fn new(c: &InstanceConfig) -> Self {
        let mut prefixes = [(0u128, u128::MAX); HOT_PREFIXES];
        for (slot, p) in prefixes.iter_mut().zip(&c.b4_prefixes) {
            let len = p.len.min(128) as u32;
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
            *slot = (u128::from_be_bytes(p.addr) & mask, mask);
        }
        HotInstance {
            endpoint: c.endpoint,
            prefixes,
            nprefixes: c.b4_prefixes.len().min(HOT_PREFIXES) as u8,
            more_prefixes: c.b4_prefixes.len() > HOT_PREFIXES,
            tunnel_mtu: c.tunnel_mtu,
            internet_mtu: c.internet_mtu,
            hop_limit: c.hop_limit,
            allow_public_inner: c.allow_public_inner,
            mss_clamp: c.mss_clamp,
            pcp_server: c.pcp.map_or(0, |p| p.server),
        }
    }
}

/// A token bucket in thousandths of a token, refilled from a millisecond clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenBucket {
    /// Tokens per second; 0: no limit.
    rate: u64,
    /// Capacity in thousandths.
    cap: u64,
    milli: u64,
    last_ms: u64,
}

impl TokenBucket {
    pub fn new(per_sec: u32, burst: u32) -> Self {
        let cap = burst.max(1) as u64 * 1000;
        TokenBucket { rate: per_sec as u64, cap, milli: cap, last_ms: 0 }
    }

    /// Takes a token at `now_ms`, if there is one.
    #[inline]
    pub fn take(&mut self, now_ms: u64) -> bool {
        if self.rate == 0 {
            return true;
        }
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        // `rate` tokens a second are `rate` thousandths a millisecond.
        self.milli = self.milli.saturating_add(elapsed.saturating_mul(self.rate)).min(self.cap);
        if self.milli < 1000 {
            return false;
        }
        self.milli -= 1000;
        true
    }
}

/// What the packet path keeps of its own between batches (the NAT state aside): the
/// budget of ICMP errors the AFTR may generate.
pub(crate) struct PathState {
    pub icmp_errors: TokenBucket,
    /// The next hop of the last B4 that got a subscriber, a static forwarding's or an
    /// own address's packet through (learned off the hot path): where packets to a B4
    /// without a subscriber here go (decision 0019); zero until then.
    pub softwire_seen: Mac,
}

impl PathState {
    pub fn new(cfg: &EngineConfig) -> Self {
        PathState {
            icmp_errors: TokenBucket::new(cfg.icmp_errors_per_sec, cfg.icmp_errors_burst),
            softwire_seen: [0; 6],
        }
    }
}

/// The settings the packet path reads: the instances' hot part and the next hops.
pub(crate) struct PathConfig {
    hot: Vec<HotInstance>,
    pub softwire_l2: EgressL2,
    pub internet_l2: EgressL2,
    /// The forwarding table towards the Internet; without it, `internet_l2` is the
    /// one next hop (in-memory engines, tests).
    pub fib: Option<FibHandle>,
    /// The peer board's softwire MAC and the locations it is active for (bits by
    /// index): softwire frames of those locations go on to it.
    pub peer: (Mac, u64),
    /// The kernel sees the frames (AF_PACKET), so `Verdict::Pass` reaches it.
    pub kernel_sees_frames: bool,
}

impl PathConfig {
    pub fn new(cfg: &EngineConfig) -> Self {
        PathConfig {
            hot: cfg.instances.iter().map(HotInstance::new).collect(),
            softwire_l2: cfg.softwire_l2,
            internet_l2: cfg.internet_l2,
            fib: None,
            peer: ([0; 6], 0),
            kernel_sees_frames: true,
        }
    }
}

/// One batch's view of a worker's engine: the parts the stages work on, borrowed for
/// the batch, and the values of the frame being processed.
pub(crate) struct BatchCtx<'e> {
    hot: &'e [HotInstance],
    softwire_l2: EgressL2,
    internet_l2: EgressL2,
    /// The forwarding table as it was when the batch began.
    pub(crate) fib: Option<Guard<Arc<Fib>>>,
    peer: (Mac, u64),
    kernel_sees_frames: bool,
    nat: &'e mut NatState,
    frag6: &'e mut Reassembler,
    frag4: &'e mut FragTracker4,
    state: &'e mut PathState,
    counters: &'e WorkerCounters,
    now_ms: u64,
    // ----- The frame being processed (reset by `process`) -----
    /// Its inside-key hash, from the batch's first stage.
    prehash: Option<u32>,
    /// Its source MAC.
    rx_mac: Mac,
    /// The destination MAC of what it sends towards the B4s.
    softwire_dst: Mac,
}

impl<'e> BatchCtx<'e> {
    pub fn new(
        path: &'e PathConfig,
        nat: &'e mut NatState,
        frag6: &'e mut Reassembler,
        frag4: &'e mut FragTracker4,
        state: &'e mut PathState,
        counters: &'e WorkerCounters,
        now_ms: u64,
    ) -> Self {
        BatchCtx {
            hot: &path.hot,
            softwire_l2: path.softwire_l2,
            internet_l2: path.internet_l2,
            fib: path.fib.as_ref().map(|f| f.load()),
            peer: path.peer,
            kernel_sees_frames: path.kernel_sees_frames,
            nat,
            frag6,
            frag4,
            state,
            counters,
            now_ms,
            prehash: None,
            rx_mac: [0; 6],
            softwire_dst: path.softwire_l2.dst,
        }
    }
}

impl BatchCtx<'_> {
    /// Processes one received frame, already counted in `rx_frames`: the whole data
    /// plane for that frame.
    #[inline]
    pub(crate) fn process(&mut self, f: &mut Frame, sink: &mut dyn Sink) -> Verdict {
        // Valid only for the frame as the batch's first stage saw it: taken here, once.
        self.prehash = f.prehash.take();
        self.rx_mac = match f.buf.get(f.start + 6..f.start + 12) {
            Some(mac) if f.len >= 12 => mac.try_into().unwrap_or_default(),
            _ => [0; 6],
        };
        if self.rx_mac == self.peer.0 {
            // Sent on by the peer board (decision 0012): its MAC is no subscriber's next
            // hop; the one learned from the B4's own frames, or the default, stays.
            self.rx_mac = [0; 6];
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
            _ => self.pass(),
        }
    }

    /// A frame that is not the data plane's: left to the kernel where it sees the frame
    /// (AF_PACKET), dropped and counted where it does not (AF_XDP).
    #[inline]
    pub(crate) fn pass(&self) -> Verdict {
        if self.kernel_sees_frames {
            self.count(Counter::PassedToKernel);
            Verdict::Pass
        } else {
            self.drop(Counter::DropNotSteered)
        }
    }

    #[inline]
    pub(crate) fn count(&self, c: Counter) {
        self.counters.inc(c)
    }

    /// Gives the frame to worker `w`, counted by the side it came from (`counter`).
    pub(crate) fn handoff_to(&mut self, w: u16, counter: Counter) -> Verdict {
        self.count(counter);
        Verdict::Handoff(w)
    }

    /// The instance whose AFTR endpoint is `addr`.
    #[inline]
    pub(crate) fn instance_of_endpoint(&self, addr: &[u8; 16]) -> Option<u8> {
        self.hot.iter().position(|h| h.endpoint == *addr).map(|i| i as u8)
    }

    /// Is `b4` inside an authorised prefix of instance `inst` (RFC 6333 section 5.2)?
    #[inline]
    pub(crate) fn b4_authorised(&self, inst: u8, b4: &[u8; 16]) -> bool {
        let h = &self.hot[inst as usize];
        let a = u128::from_be_bytes(*b4);
        h.prefixes[..h.nprefixes as usize].iter().any(|&(p, m)| a & m == p)
            || (h.more_prefixes && self.nat.config(inst).b4_prefixes.iter().any(|p| p.contains(b4)))
    }

    /// Sends what follows to the subscriber's learned next hop (its B4, or the router
    /// in front of it), or to the default next hop while none is learned.
    #[inline]
    pub(crate) fn towards_subscriber(&mut self, si: u32) {
        let mac = self.nat.subs.get(si).mac;
        self.softwire_dst = if mac == [0; 6] { self.softwire_l2.dst } else { mac };
    }

    #[inline]
    pub(crate) fn drop(&self, c: Counter) -> Verdict {
        self.count(c);
        Verdict::Drop(c)
    }

    /// The layer-2 header towards the Internet for the IPv4 packet `ip`: its route's
    /// next hop in the forwarding table, or the one next hop without a table.
    #[inline]
    pub(crate) fn internet_next_hop(&self, ip: &[u8]) -> Result<EgressL2, Counter> {
        let Some(fib) = &self.fib else {
            return if self.internet_l2.dst == [0; 6] { Err(Counter::DropNoNextHop) } else { Ok(self.internet_l2) };
        };
        match fib.next_of(ip) {
            Next::Mac(dst) => Ok(EgressL2 { dst, ..self.internet_l2 }),
            Next::NoRoute => Err(Counter::DropNoNextHop),
            Next::Unresolved => Err(Counter::DropNeighbourUnresolved),
            Next::LinkDown => Err(Counter::DropLinkDown),
        }
    }

    /// Puts the egress Ethernet header in front of the layer-3 packet at `l3` and makes
    /// the frame span it.
    #[inline]
    pub(crate) fn emit_l3(&self, f: &mut Frame, l3: usize, l3_len: usize, egress: Egress) -> Verdict {
        let (l2, ethertype) = match egress {
            Egress::Softwire => {
                (crate::config::EgressL2 { dst: self.softwire_dst, ..self.softwire_l2 }, ETHERTYPE_IPV6)
            }
            Egress::Internet => match self.internet_next_hop(&f.buf[l3..l3 + l3_len]) {
                Ok(l2) => (l2, ETHERTYPE_IPV4),
                Err(c) => return self.drop(c),
            },
        };
        if l2.dst == [0; 6] {
            // Not resolved yet (no frame from that subscriber).
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
    /// `mtu`, the path MTU towards that B4 (the caller has already refused DF packets
    /// that cannot fit).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn encapsulate(
        &mut self,
        f: &mut Frame,
        ip_at: usize,
        ip_len: usize,
        inst: u8,
        b4: &[u8; 16],
        flow: u32,
        mtu: usize,
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
        if ipv6::HEADER_LEN + ip_len > mtu {
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
