//! The PCP server (RFC 6887) of a DS-Lite instance, in encapsulated mode (decision
//! 0023): a host behind a B4 (or the B4 for a host behind it, with THIRD_PARTY) sends
//! its request as IPv4 UDP to the server's address, port 5351, through its softwire; the
//! request is served on the worker that owns the B4, and the answer goes back through
//! the same softwire from the server's address. A subscriber is its B4's IPv6 address
//! and the inner IPv4 address, as for every DS-Lite mapping.
//!
//! Slow path (one request per mapping and renewal), but it runs on the workers: it
//! allocates nothing but the lease tables' entries, and never panics on any input.

use super::BatchCtx;
use super::in2out::is_martian;
use crate::counters::Counter;
use crate::frame::{Frame, Sink, Verdict};
use crate::nat::pcp::PcpLease;
use crate::nat::ports::PortClass;
use crate::nat::table::Want;
use crate::wire::pcp::{self, Granted, Parsed, Request, ResultCode, mapped_v4, opcode};
use crate::wire::{checksum, ipv4, proto, udp};

/// Inner sources of the B4 itself (RFC 6333 section 5.7: 192.0.0.0/29, the B4 being
/// 192.0.0.2): the only requesters that may ask for another host (THIRD_PARTY).
fn is_b4_element(a: u32) -> bool {
    a >> 3 == 0xc000_0000 >> 3
}

/// The counter of a result code sent.
fn sent(code: ResultCode) -> Counter {
    use ResultCode::*;
    match code {
        Success => Counter::PcpResultSuccess,
        UnsuppVersion => Counter::PcpResultUnsuppVersion,
        NotAuthorized => Counter::PcpResultNotAuthorized,
        MalformedRequest => Counter::PcpResultMalformedRequest,
        UnsuppOpcode => Counter::PcpResultUnsuppOpcode,
        UnsuppOption => Counter::PcpResultUnsuppOption,
        MalformedOption => Counter::PcpResultMalformedOption,
        NetworkFailure => Counter::PcpResultNetworkFailure,
        NoResources => Counter::PcpResultNoResources,
        UnsuppProtocol => Counter::PcpResultUnsuppProtocol,
        UserExQuota => Counter::PcpResultUserExQuota,
        CannotProvideExternal => Counter::PcpResultCannotProvideExternal,
        AddressMismatch => Counter::PcpResultAddressMismatch,
        ExcessiveRemotePeers => Counter::PcpResultExcessiveRemotePeers,
    }
}

/// The result code for a mapping the NAT refused for `c` (RFC 6887 section 7.4):
/// the subscriber's own quotas, or the device's resources.
fn refused(c: Counter) -> ResultCode {
    match c {
        Counter::DropSessionLimit | Counter::DropBlockLimit | Counter::DropRateLimited => ResultCode::UserExQuota,
        Counter::PcpResultCannotProvideExternal => ResultCode::CannotProvideExternal,
        _ => ResultCode::NoResources,
    }
}

impl BatchCtx<'_> {
    /// A UDP datagram from a host behind `b4` to the PCP server of instance `inst` (the
    /// decapsulated IPv4 packet at `ip_at`, from an authorised B4 this worker owns).
    pub(crate) fn pcp_request(
        &mut self,
        f: &mut Frame,
        ip_at: usize,
        inst: u8,
        b4: &[u8; 16],
        sink: &mut dyn Sink,
    ) -> Verdict {
        self.count(Counter::PcpRequests);
        let (src, dst, hl, ip_len, is_frag) = {
            let p = ipv4::Ipv4Packet::new_unchecked(&f.buf[ip_at..]);
            (p.src(), p.dst(), p.header_len(), p.total_len(), p.is_fragment())
        };
        if is_frag {
            return self.drop(Counter::DropPcpFragment);
        }
        let l4 = ip_at + hl;
        let seg = &f.buf[l4..ip_at + ip_len];
        if udp::check(seg).is_err() {
            return self.drop(Counter::DropMalformedL4);
        }
        let seg = &seg[..udp::get_len(seg)];
        if udp::checksum(seg) != 0 {
            let pseudo = checksum::pseudo_v4(src.to_be_bytes(), dst.to_be_bytes(), proto::UDP, seg.len() as u16);
            if checksum::fold(checksum::sum(seg, pseudo)) != 0xffff {
                return self.drop(Counter::DropPcpBadChecksum);
            }
        }
        let sport = udp::src_port(seg);
        let msg = &seg[udp::HEADER_LEN..];
        let epoch = self.nat.pcp_epoch();
        let mut out = [0u8; pcp::MAX_LEN];
        let (n, code) = match pcp::parse(msg) {
            Parsed::Ignore => return self.drop(Counter::DropPcpIgnored),
            Parsed::Error { opcode, code } => (pcp::write_error(&mut out, msg, opcode, code, epoch), code),
            Parsed::Request(r) => match self.pcp_serve(inst, b4, src, &r) {
                Ok(g) => (pcp::write_success(&mut out, &r, &g, epoch), ResultCode::Success),
                Err(code) => (pcp::write_error(&mut out, msg, r.opcode, code, epoch), code),
            },
        };
        self.pcp_answer(f, ip_at, inst, b4, (dst, src, sport), &out[..n], code, sink)
    }

    /// Sends `msg` in place of the request at `ip_at`: IPv4 UDP from the server (`from`,
    /// port 5351) to the client (`to`, `port`), encapsulated towards `b4`.
    #[allow(clippy::too_many_arguments)]
    fn pcp_answer(
        &mut self,
        f: &mut Frame,
        ip_at: usize,
        inst: u8,
        b4: &[u8; 16],
        (from, to, port): (u32, u32, u16),
        msg: &[u8],
        code: ResultCode,
        sink: &mut dyn Sink,
    ) -> Verdict {
        let udp_len = udp::HEADER_LEN + msg.len();
        let ip_len = ipv4::MIN_HEADER_LEN + udp_len;
        if ip_at + ip_len > f.buf.len() {
            return self.drop(Counter::DropPcpNoRoom);
        }
        let id = self.nat.random() as u16;
        ipv4::write_header(&mut f.buf[ip_at..], 0, ip_len as u16, id, 0, 64, proto::UDP, from, to);
        let seg = &mut f.buf[ip_at + ipv4::MIN_HEADER_LEN..ip_at + ip_len];
        udp::set_src_port(seg, pcp::PORT);
        udp::set_dst_port(seg, port);
        udp::set_len(seg, udp_len as u16);
        udp::set_checksum_raw(seg, 0);
        seg[udp::HEADER_LEN..].copy_from_slice(msg);
        let pseudo = checksum::pseudo_v4(from.to_be_bytes(), to.to_be_bytes(), proto::UDP, udp_len as u16);
        let c = !checksum::fold(checksum::sum(seg, pseudo));
        udp::set_checksum(seg, c);
        self.count(sent(code));
        if self.rx_mac != [0; 6] {
            self.softwire_dst = self.rx_mac;
        }
        let mtu = self.hot[inst as usize].tunnel_mtu as usize;
        self.encapsulate(f, ip_at, ip_len, inst, b4, 0, mtu, sink)
    }

    /// Serves a parsed request from host `src` behind `b4` (RFC 6887 sections 8.3, 11.3,
    /// 12.3, 13.1, 14.1): the mapping granted, or the result code of the refusal.
    fn pcp_serve(&mut self, inst: u8, b4: &[u8; 16], src: u32, r: &Request) -> Result<Granted, ResultCode> {
        // Section 8.3: the client's idea of its address must be the packet's source.
        if mapped_v4(&r.client) != Some(src) {
            return Err(ResultCode::AddressMismatch);
        }
        let Some(cfg) = self.nat.config(inst).pcp else { return Err(ResultCode::NetworkFailure) };
        let Some(f) = r.map else {
            // ANNOUNCE (section 14.1): SUCCESS, lifetime 0.
            return Ok(Granted { lifetime: 0, external_port: 0, external_addr: 0 });
        };
        // Section 13.1: THIRD_PARTY only from the B4 itself, for a host behind it.
        let host = match r.third_party {
            None => src,
            Some(_) if !is_b4_element(src) => return Err(ResultCode::NotAuthorized),
            Some(tp) => match mapped_v4(&tp) {
                Some(h) if ipv4::is_private_or_b4(h) && !is_b4_element(h) => h,
                Some(_) => return Err(ResultCode::NotAuthorized),
                None => return Err(ResultCode::MalformedOption),
            },
        };
        if f.protocol != proto::UDP && f.protocol != proto::TCP {
            return Err(ResultCode::UnsuppProtocol);
        }
        // "All ports" mappings are not offered.
        if f.internal_port == 0 {
            return Err(ResultCode::NotAuthorized);
        }
        let peer = match r.peer {
            None => None,
            Some((port, addr)) => match mapped_v4(&addr) {
                Some(a) if port != 0 && !is_martian(a) => Some((a, port)),
                _ => return Err(ResultCode::MalformedRequest),
            },
        };
        let existing = self.nat.find_inside(inst, b4, host, f.internal_port, f.protocol);
        let now = self.nat.now();
        let mut lease = existing.and_then(|i| self.nat.leases.get(i));
        if let (Some(i), Some(l)) = (existing, lease)
            && !l.live(now)
        {
            // Ended, on a session that traffic kept: gone, whoever asks now (a client
            // restarted with a new nonce gets its mapping again).
            let sub = self.nat.sessions.get(i).sub;
            self.nat.set_lease(i, sub, None);
            lease = None;
        }
        if lease.is_some_and(|l| l.nonce != f.nonce) {
            // Section 11.3: another client's mapping.
            return Err(ResultCode::NotAuthorized);
        }
        if r.lifetime == 0 {
            return Ok(self.pcp_delete(existing, lease, r.opcode, f.external_port));
        }
        let lifetime = r.lifetime.clamp(cfg.min_lifetime, cfg.max_lifetime);
        let i = match existing {
            Some(i) => {
                let s = self.nat.sessions.get(i);
                if r.prefer_failure && f.external_port != 0 && f.external_port != s.ext_port {
                    return Err(ResultCode::CannotProvideExternal);
                }
                if lease.is_none() && self.nat.leases.count(s.sub) >= cfg.max_mappings {
                    return Err(ResultCode::UserExQuota);
                }
                i
            }
            None => self.pcp_create(inst, b4, host, r, peer, cfg.max_mappings)?,
        };
        let s = *self.nat.sessions.get(i);
        self.nat.learn_mac(s.sub, self.rx_mac);
        self.learn_softwire_next_hop();
        let mut until = now.wrapping_add(lifetime);
        let open = r.opcode == opcode::MAP || lease.is_some_and(|l| l.open);
        if let Some(l) = lease
            && l.open
            && r.opcode == opcode::PEER
            && (l.until.wrapping_sub(until) as i32) > 0
        {
            // A PEER of a MAP's own host never shortens the MAP's lease.
            until = l.until;
        }
        let new = PcpLease { until, open, nonce: f.nonce };
        self.nat.set_lease(i, s.sub, Some(new));
        if let Some((a, p)) = peer {
            self.nat.remember_remote(i, a, p);
        }
        // Hot backup and logging hear of a lease that is new or changed: a renewal
        // within the same second changes nothing, so a flood of the same request costs
        // the event ring at most one record a second per lease.
        if lease != Some(new) {
            self.nat.session_changed(i);
        }
        self.count(if lease.is_some() { Counter::PcpMappingsRenewed } else { Counter::PcpMappingsCreated });
        Ok(Granted { lifetime, external_port: s.ext_port, external_addr: s.ext_addr })
    }

    /// A new session for a MAP or PEER request of `host`, on the suggested port when
    /// the subscriber's blocks have it free.
    fn pcp_create(
        &mut self,
        inst: u8,
        b4: &[u8; 16],
        host: u32,
        r: &Request,
        peer: Option<(u32, u16)>,
        max_mappings: u16,
    ) -> Result<u32, ResultCode> {
        let Some(f) = r.map else { return Err(ResultCode::MalformedRequest) };
        let class = PortClass::of(f.internal_port);
        let si = match self.nat.subscriber(inst, b4, Some(class), self.rx_mac) {
            Ok(si) => si,
            Err(c) => {
                self.nat.limit_hit(inst, b4, host, None, c);
                return Err(refused(c));
            }
        };
        if self.nat.leases.count(si) >= max_mappings {
            self.nat.drop_if_idle(si);
            return Err(ResultCode::UserExQuota);
        }
        // The suggested port, if in the subscriber's blocks (section 11.3: a hint).
        let suggested = mapped_v4(&f.external_addr);
        let ext = self.nat.subs.get(si).ext_addr;
        let port = (f.external_port != 0 && suggested.is_none_or(|a| a == 0 || a == ext)).then_some(f.external_port);
        let want = Want { port, only: r.prefer_failure };
        let remote = peer.unwrap_or((0, 0));
        let created = self.nat.create_session_at(si, host, f.internal_port, f.protocol, remote, 0, want);
        created.map_err(|c| {
            self.nat.limit_hit(inst, b4, host, Some(si), c);
            self.nat.drop_if_idle(si);
            refused(c)
        })
    }

    /// A request with lifetime 0 (sections 11.3, 12.3, 15): MAP deletes the mapping it
    /// leased (an implicit one, made by traffic, stays); PEER ends a PEER lease only, the
    /// session going on as one made by traffic, and leaves a MAP's alone. Deleting what
    /// is not there succeeds.
    fn pcp_delete(&mut self, existing: Option<u32>, lease: Option<PcpLease>, op: u8, suggested: u16) -> Granted {
        let Some(i) = existing else {
            return Granted { lifetime: 0, external_port: suggested, external_addr: 0 };
        };
        let s = *self.nat.sessions.get(i);
        if let Some(l) = lease
            && (op == opcode::MAP || !l.open)
        {
            if op == opcode::MAP {
                self.nat.delete_session(i);
            } else {
                self.nat.set_lease(i, s.sub, None);
                self.nat.session_changed(i);
            }
            self.count(Counter::PcpMappingsDeleted);
        }
        Granted { lifetime: 0, external_port: s.ext_port, external_addr: s.ext_addr }
    }
}
