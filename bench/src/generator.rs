//! The packet generator of the benchmarks (pktgen-style; the kernel here has no pktgen):
//! DS-Lite traffic from many B4s and flows, softwire frames towards the AFTR or IPv4
//! frames from servers towards mapped ports, UDP, TCP and ICMP echo in a given mix, at
//! a given frame size, established flows or a new flow in every frame; sent with AF_XDP
//! (a transmit-only socket per queue, frames written straight into its UMEM) or, as a
//! fallback, AF_PACKET `sendmmsg`, at a given rate or as fast as it goes.
//!
//! Every frame ends with an 18-byte tail that crosses translation and encapsulation
//! unchanged: `[sample flag][0][send time, ns since the epoch, big-endian u64][MARK]`.
//! The flag, and the time on sampled frames, are written as the frame is made and the transport checksum is
//! adjusted for them (RFC 1624), so every frame on the wire is valid. A tap at the other
//! end (`crate::tap`) keeps the sampled frames and measures their latency.

use std::io;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dataplane::config::Ipv4Prefix;
use dataplane::io::af_packet::PacketTx;
use dataplane::io::xsk::XskTx;
use dataplane::testing::frames;
pub use dataplane::testing::frames::{L4, l4_checksum};
use dataplane::wire::checksum;

use crate::frames::{AFTR_MAC, ENDPOINT, HOST, PEER_MAC, POOL, SERVER, b4};

/// The last bytes of every generated frame.
pub const MARK: &[u8; 8] = b"AFTRBNCH";
/// Bytes of the tail: sample flag, zero, send time, mark.
pub const TAIL: usize = 18;
/// Frames per batch handed to the socket.
const BATCH: usize = 32;

/// Which way the traffic goes through the AFTR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Softwire frames from B4s, out as IPv4.
    In2Out,
    /// IPv4 frames from servers to mapped ports, out into the softwires.
    Out2In,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::In2Out => "softwire -> IPv4",
            Direction::Out2In => "IPv4 -> softwire",
        }
    }
}

/// Where the traffic goes and comes from. The defaults are the benchmarks' lab
/// (`crate::frames`: endpoint 2001:db8::1, B4s in 2001:db8:b400::/48, host
/// 192.168.1.10, server 203.0.113.80, pool 198.51.100.0/24); `dslite-gen` sets each
/// from an option, to aim at any AFTR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// The AFTR's softwire endpoint: the destination of softwire frames.
    pub aftr: [u8; 16],
    /// B4 number 0; B4 n is `b4_first + n * 2^b4_shift` (as 128-bit numbers).
    pub b4_first: [u8; 16],
    pub b4_shift: u32,
    /// The hosts behind every B4 (inner IPv4 sources): `inner_count` addresses from
    /// `inner_first`, one after the other over a B4's flows.
    pub inner_first: u32,
    pub inner_count: u32,
    /// The server (remote IPv4 address) and its port (`None`: 53 for UDP, 80 for TCP;
    /// none for ICMP).
    pub server: u32,
    pub server_port: Option<u16>,
    /// The AFTR's pool: where translated frames come from (the tap checks it).
    pub pool: Ipv4Prefix,
    /// Ethernet source and destination of every frame.
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
}

impl Default for Addresses {
    fn default() -> Addresses {
        Addresses {
            aftr: ENDPOINT,
            b4_first: b4(0),
            b4_shift: 32,
            inner_first: HOST,
            inner_count: 1,
            server: SERVER,
            server_port: None,
            pool: POOL,
            src_mac: PEER_MAC,
            dst_mac: AFTR_MAC,
        }
    }
}

impl Addresses {
    /// Whether `b4s` B4s and the inner sources fit in their address spaces.
    pub fn check(&self, b4s: u32) -> Result<(), String> {
        let last = ((b4s.max(1) - 1) as u128).checked_shl(self.b4_shift).filter(|_| self.b4_shift <= 96);
        if last.and_then(|l| u128::from_be_bytes(self.b4_first).checked_add(l)).is_none() {
            return Err(format!(
                "{b4s} B4s {} apart from the first do not fit in IPv6",
                1u128 << self.b4_shift.min(127)
            ));
        }
        if self.inner_count == 0 || self.inner_first.checked_add(self.inner_count - 1).is_none() {
            return Err("the inner sources: 1 or more, all in IPv4".into());
        }
        if self.pool.len > 32 {
            return Err("the pool's prefix length: 0 to 32".into());
        }
        Ok(())
    }

    /// The address of B4 number `n`.
    pub fn b4(&self, n: u32) -> [u8; 16] {
        u128::from_be_bytes(self.b4_first).wrapping_add((n as u128) << self.b4_shift.min(127)).to_be_bytes()
    }

    /// Whether `a` is the address of a B4 (of any number).
    pub fn is_b4(&self, a: &[u8]) -> bool {
        let Ok(a) = <[u8; 16]>::try_from(a) else { return false };
        let d = u128::from_be_bytes(a).wrapping_sub(u128::from_be_bytes(self.b4_first));
        d.trailing_zeros() >= self.b4_shift && d >> self.b4_shift.min(127) <= u32::MAX as u128
    }

    /// The inner source of a B4's flow number `k`.
    pub fn inner(&self, k: usize) -> u32 {
        self.inner_first.wrapping_add((k % self.inner_count.max(1) as usize) as u32)
    }

    pub fn is_inner(&self, a: u32) -> bool {
        a.wrapping_sub(self.inner_first) < self.inner_count
    }

    pub fn in_pool(&self, a: u32) -> bool {
        let (first, last) = self.pool.range();
        (first..=last).contains(&a)
    }

    /// The server's port for `l4` (none for ICMP).
    fn server_port(&self, l4: L4) -> u16 {
        match (l4, self.server_port) {
            (L4::Icmp, _) => 0,
            (_, Some(p)) => p,
            (L4::Udp, None) => 53,
            (L4::Tcp, None) => 80,
        }
    }
}

#[cfg(test)]
impl Addresses {
    /// Another AFTR than the lab's, every address different (for the tests).
    pub(crate) fn elsewhere() -> Addresses {
        Addresses {
            aftr: "2001:db8:ffff::9".parse::<std::net::Ipv6Addr>().unwrap().octets(),
            b4_first: "2001:db8:4444::100".parse::<std::net::Ipv6Addr>().unwrap().octets(),
            b4_shift: 8,
            inner_first: 0x0a00_0001,
            inner_count: 3,
            server: 0x0808_0808,
            server_port: Some(4433),
            pool: Ipv4Prefix { addr: 0xc000_0200, len: 28 },
            src_mac: [0xaa, 1, 2, 3, 4, 5],
            dst_mac: [0xbb, 6, 7, 8, 9, 10],
        }
    }
}

/// Shares of UDP, TCP and ICMP flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    pub udp: u32,
    pub tcp: u32,
    pub icmp: u32,
}

impl Mix {
    pub const UDP: Mix = Mix { udp: 1, tcp: 0, icmp: 0 };

    /// `udp=70,tcp=25,icmp=5` (any subset; missing ones are 0).
    pub fn parse(s: &str) -> Result<Mix, String> {
        let mut m = Mix { udp: 0, tcp: 0, icmp: 0 };
        for part in s.split(',') {
            let (k, v) = part.split_once('=').ok_or_else(|| format!("mix {s:?}: {part:?} is not NAME=SHARE"))?;
            let v: u32 = v.parse().map_err(|_| format!("mix {s:?}: {v:?} is not a number"))?;
            match k {
                "udp" => m.udp = v,
                "tcp" => m.tcp = v,
                "icmp" => m.icmp = v,
                _ => return Err(format!("mix {s:?}: {k:?} is not udp, tcp or icmp")),
            }
        }
        if m.udp + m.tcp + m.icmp == 0 {
            return Err(format!("mix {s:?}: all shares are 0"));
        }
        Ok(m)
    }

    /// The transport of flow `i`: the shares spread evenly over the flows.
    pub fn pick(&self, i: usize) -> L4 {
        let total = (self.udp + self.tcp + self.icmp) as usize;
        // A stride coprime with most totals interleaves the kinds.
        let k = (i * 37 + i / total) % total;
        if k < self.udp as usize {
            L4::Udp
        } else if k < (self.udp + self.tcp) as usize {
            L4::Tcp
        } else {
            L4::Icmp
        }
    }
}

/// A frame to send, and where its parts are.
#[derive(Debug, Clone)]
pub struct Template {
    pub bytes: Vec<u8>,
    /// Offset of the transport header.
    pub l4_at: usize,
    pub l4: L4,
    /// The TX queue it goes out on (as RSS would keep a B4 or a flow on one queue).
    pub queue: u32,
}

/// Payload bytes for an IPv4 frame of `size` bytes on the wire (with the 4-byte FCS),
/// at least the tail, and even (so the tail's words line up with the checksum's).
pub fn payload_len(l4: L4, size: usize) -> usize {
    let p = size.saturating_sub(4 + 14 + 20 + l4.header_len()).max(TAIL);
    p + p % 2
}

/// An IPv4 packet with a correct header and transport checksum, payload zero but for
/// the mark at its end.
fn ipv4_packet(l4: L4, src: u32, dst: u32, sport: u16, dport: u16, outbound: bool, size: usize) -> Vec<u8> {
    let mut payload = vec![0u8; payload_len(l4, size)];
    let n = payload.len();
    payload[n - MARK.len()..].copy_from_slice(MARK);
    frames::ipv4_packet(l4, src, dst, sport, dport, outbound, &payload)
}

/// A softwire frame from B4 number `b4n` (host HOST, port or echo identifier `port`)
/// to the server, of `size` bytes on the IPv4 side (40 more here); the lab's addresses.
pub fn softwire(b4n: u32, l4: L4, port: u16, size: usize) -> Template {
    softwire_from(&Addresses::default(), b4n, 0, l4, port, size)
}

/// A softwire frame from B4 number `b4n`, its inner source number `host`, port or echo
/// identifier `port`, to the server, of `size` bytes on the IPv4 side (40 more here).
pub fn softwire_from(a: &Addresses, b4n: u32, host: usize, l4: L4, port: u16, size: usize) -> Template {
    let inner = ipv4_packet(l4, a.inner(host), a.server, port, a.server_port(l4), true, size);
    let f = frames::softwire_frame(a.dst_mac, a.src_mac, &a.b4(b4n), &a.aftr, &inner);
    Template { bytes: f, l4_at: 74, l4, queue: 0 }
}

/// An IPv4 frame from the server to the mapped `addr`:`port` (echo reply to identifier
/// `port` for ICMP), of `size` bytes on the wire; the lab's addresses.
pub fn inbound(l4: L4, addr: u32, port: u16, size: usize) -> Template {
    inbound_from(&Addresses::default(), l4, addr, port, size)
}

/// The same from the server and MACs of `a`.
pub fn inbound_from(a: &Addresses, l4: L4, addr: u32, port: u16, size: usize) -> Template {
    let p = ipv4_packet(l4, a.server, addr, a.server_port(l4), port, false, size);
    Template { bytes: frames::ipv4_frame(a.dst_mac, a.src_mac, &p), l4_at: 34, l4, queue: 0 }
}

/// Writes the tail's sample flag and send time into `f` (a copy of `t`'s bytes) and
/// adjusts the transport checksum for them.
pub fn stamp(f: &mut [u8], t: &Template, sample: bool, ts_ns: u64) {
    let at = f.len() - TAIL;
    let mut new = [0u8; 10];
    new[0] = sample as u8;
    new[2..10].copy_from_slice(&ts_ns.to_be_bytes());
    let old: [u8; 10] = f[at..at + 10].try_into().expect("a frame holds its tail");
    f[at..at + 10].copy_from_slice(&new);
    let c_at = t.l4_at + t.l4.checksum_at();
    let c = u16::from_be_bytes([f[c_at], f[c_at + 1]]);
    let mut n = checksum::adjust_bytes(c, &old, &new);
    if n == 0 && t.l4 == L4::Udp {
        n = 0xffff;
    }
    f[c_at..c_at + 2].copy_from_slice(&n.to_be_bytes());
}

/// Turns a softwire template into the frame of a new flow: B4 number `b4n` (of the
/// lab's addresses), source port `port` (checksum adjusted).
pub fn renew(f: &mut [u8], t: &Template, b4n: u32, port: u16) {
    renew_from(&Addresses::default(), f, t, b4n, port)
}

/// The same with B4 number `b4n` of `a` (the outer header has no checksum to adjust).
pub fn renew_from(a: &Addresses, f: &mut [u8], t: &Template, b4n: u32, port: u16) {
    f[22..38].copy_from_slice(&a.b4(b4n));
    let at = t.l4_at;
    let old = u16::from_be_bytes([f[at], f[at + 1]]);
    f[at..at + 2].copy_from_slice(&port.to_be_bytes());
    let c_at = at + t.l4.checksum_at();
    let c = u16::from_be_bytes([f[c_at], f[c_at + 1]]);
    let mut n = checksum::adjust_u16(c, old, port);
    if n == 0 && t.l4 == L4::Udp {
        n = 0xffff;
    }
    f[c_at..c_at + 2].copy_from_slice(&n.to_be_bytes());
}

/// What to send.
#[derive(Debug, Clone)]
pub struct Traffic {
    pub templates: Vec<Template>,
    /// Each frame a new flow: B4 `k % b4s`, source port from 1024 up. Only for softwire
    /// UDP templates; `templates[0]` is the base.
    pub new_flows: Option<u32>,
    /// The addresses of the frames (the new flows' B4s are numbered by them).
    pub addrs: Addresses,
}

impl Traffic {
    /// `flows` established flows from `b4s` B4s in the given mix, B4 `n` on queue
    /// `n % queues` (RSS hashes the outer header: a B4 stays on one queue). Flow `i` is
    /// B4 `i % b4s`'s flow number `k = i / b4s`: port `10000 + k`, inner source `k`.
    pub fn softwire(a: &Addresses, flows: usize, b4s: u32, mix: Mix, size: usize, queues: u32) -> Traffic {
        let templates = (0..flows)
            .map(|i| {
                let n = i as u32 % b4s.max(1);
                let k = i / b4s.max(1) as usize;
                let mut t = softwire_from(a, n, k, mix.pick(i), 10_000 + k as u16, size);
                t.queue = n % queues.max(1);
                t
            })
            .collect();
        Traffic { templates, new_flows: None, addrs: *a }
    }

    /// Frames from the server to each mapped `(transport, address, port)`.
    pub fn inbound(a: &Addresses, mapped: &[(L4, u32, u16)], size: usize, queues: u32) -> Traffic {
        let templates = mapped
            .iter()
            .enumerate()
            .map(|(i, &(l4, addr, p))| {
                let mut t = inbound_from(a, l4, addr, p, size);
                t.queue = i as u32 % queues.max(1);
                t
            })
            .collect();
        Traffic { templates, new_flows: None, addrs: *a }
    }

    /// A new UDP flow in every frame, over `b4s` B4s.
    pub fn new_flows(a: &Addresses, b4s: u32, size: usize) -> Traffic {
        Traffic { templates: vec![softwire_from(a, 0, 0, L4::Udp, 1024, size)], new_flows: Some(b4s.max(1)), addrs: *a }
    }
}

/// How to send it.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Frames per second; `None`: as fast as the socket takes them.
    pub rate: Option<f64>,
    pub secs: f64,
    /// Stop after this many frames.
    pub count: u64,
    /// Every n-th frame carries the sample flag (1: all).
    pub sample_every: u64,
}

/// The socket family the generator sends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    AfXdp,
    AfPacket,
}

/// What a run sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent {
    pub frames: u64,
    pub secs: f64,
    /// Frames of a paced run not sent because the generator fell more than a batch
    /// behind its schedule ([`Pace`]).
    pub forfeited: u64,
}

impl Sent {
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 { self.frames as f64 / self.secs } else { 0.0 }
    }
}

/// The schedule of a paced run: frames due at `rate` from its start. A generator that
/// fell behind (its core taken for a while) catches up by at most one batch and lets
/// the rest of its lateness go, counted in `forfeited`: catching all of it up would send
/// at full speed until level, a burst that queues in the DUT for many times the stall
/// and that a tester sending at a constant gap never makes (decision 0008).
struct Pace {
    rate: f64,
    forfeited: u64,
}

impl Pace {
    /// Seconds until the next frame is due (0 or less: now), `sent` frames sent and
    /// `elapsed` seconds after the start.
    fn wait(&mut self, sent: u64, elapsed: f64) -> f64 {
        let late = elapsed - (sent + self.forfeited) as f64 / self.rate;
        let slack = BATCH as f64 / self.rate;
        if late > slack {
            self.forfeited += ((late - slack) * self.rate) as u64;
        }
        (sent + self.forfeited) as f64 / self.rate - elapsed
    }
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// The frames of a run in order: which template, and for new flows which B4 and port.
struct Cursor<'a> {
    traffic: &'a Traffic,
    /// Template indices per queue.
    per_queue: Vec<Vec<usize>>,
    at: Vec<usize>,
    k: u64,
    sample_every: u64,
}

/// Where the frames of a run come from (`send_frames`): the next frame for a TX queue.
pub trait Frames {
    /// Writes the next frame for TX queue `q` into `buf`; its length (0: none for `q`).
    fn fill(&mut self, q: usize, buf: &mut [u8]) -> usize;
    /// The longest frame it writes (the size of AF_PACKET's buffers).
    fn max_len(&self) -> usize;
}

impl Frames for Cursor<'_> {
    fn fill(&mut self, q: usize, buf: &mut [u8]) -> usize {
        self.next(q, buf, now_ns)
    }
    fn max_len(&self) -> usize {
        self.traffic.templates.iter().map(|t| t.bytes.len()).max().unwrap_or(0)
    }
}

impl<'a> Cursor<'a> {
    fn new(traffic: &'a Traffic, queues: u32, sample_every: u64) -> Cursor<'a> {
        let nq = queues.max(1) as usize;
        let mut per_queue = vec![Vec::new(); nq];
        for (i, t) in traffic.templates.iter().enumerate() {
            per_queue[t.queue as usize % nq].push(i);
        }
        let at = vec![0; per_queue.len()];
        Cursor { traffic, per_queue, at, k: 0, sample_every: sample_every.max(1) }
    }

    /// Writes the next frame for queue `q` into `buf`; its length (0: none for `q`).
    /// A sampled frame carries the time `clock` tells as it is written.
    fn next(&mut self, q: usize, buf: &mut [u8], clock: impl Fn() -> u64) -> usize {
        let list = &self.per_queue[q];
        if list.is_empty() {
            return 0;
        }
        let t = &self.traffic.templates[list[self.at[q]]];
        self.at[q] = (self.at[q] + 1) % list.len();
        let len = t.bytes.len();
        if buf.len() < len {
            return 0;
        }
        let f = &mut buf[..len];
        f.copy_from_slice(&t.bytes);
        if let Some(b4s) = self.traffic.new_flows {
            let n = (self.k % b4s as u64) as u32;
            let port = 1024 + ((self.k / b4s as u64) % 64_512) as u16;
            renew_from(&self.traffic.addrs, f, t, n, port);
        }
        self.k += 1;
        let sample = self.k.is_multiple_of(self.sample_every);
        stamp(f, t, sample, if sample { clock() } else { 0 });
        len
    }
}

/// Sends `traffic` out of `ifname` (in the calling thread's namespace) as `plan` says,
/// over `queues` TX queues (AF_XDP; AF_PACKET leaves the queue to the kernel).
/// `progress` is called about once a second with the seconds elapsed and frames sent.
pub fn send(
    ifname: &str,
    io_kind: Io,
    queues: u32,
    traffic: &Traffic,
    plan: &Plan,
    progress: impl FnMut(f64, u64),
) -> io::Result<Sent> {
    if traffic.templates.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no frames to send"));
    }
    let queues = if io_kind == Io::AfXdp { queues.max(1) } else { 1 };
    send_frames(ifname, io_kind, queues, &mut Cursor::new(traffic, queues, plan.sample_every), plan, progress)
}

/// Sends the frames `frames` makes out of `ifname` as `plan` says (its `sample_every`
/// is the source's business), over `queues` TX queues (AF_XDP) or one AF_PACKET socket.
pub fn send_frames(
    ifname: &str,
    io_kind: Io,
    queues: u32,
    frames: &mut dyn Frames,
    plan: &Plan,
    mut progress: impl FnMut(f64, u64),
) -> io::Result<Sent> {
    let queues = if io_kind == Io::AfXdp { queues.max(1) } else { 1 };
    enum Out {
        Xdp(Vec<XskTx>),
        Packet(PacketTx, Vec<Vec<u8>>),
    }
    let mut out = match io_kind {
        Io::AfXdp => Out::Xdp((0..queues).map(|q| XskTx::open(ifname, q)).collect::<io::Result<_>>()?),
        Io::AfPacket => Out::Packet(PacketTx::open(ifname)?, vec![vec![0u8; frames.max_len()]; BATCH]),
    };
    let t0 = Instant::now();
    let (mut sent, mut next_report, mut q) = (0u64, 1.0, 0usize);
    let mut pace = plan.rate.map(|rate| Pace { rate, forfeited: 0 });
    loop {
        let elapsed = t0.elapsed().as_secs_f64();
        if elapsed >= plan.secs || sent >= plan.count {
            break;
        }
        if elapsed >= next_report {
            progress(elapsed, sent);
            next_report += 1.0;
        }
        if let Some(pace) = &mut pace {
            // Not due yet: sleep while the wait is long (leaving the core to others: on
            // a small machine the DUT may share it), spin through the last stretch.
            let wait = pace.wait(sent, elapsed);
            if wait > 0.0 {
                if wait > 200e-6 {
                    std::thread::sleep(std::time::Duration::from_secs_f64(wait - 100e-6));
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
        }
        let want = (BATCH as u64).min(plan.count - sent) as usize;
        let n = match &mut out {
            Out::Xdp(socks) => {
                let n = socks[q].send(want, |buf| frames.fill(q, buf));
                q = (q + 1) % socks.len();
                n
            }
            Out::Packet(tx, bufs) => {
                let mut lens = [0usize; BATCH];
                let mut m = 0;
                for (b, l) in bufs.iter_mut().zip(lens.iter_mut()).take(want) {
                    *l = frames.fill(0, b);
                    if *l == 0 {
                        break;
                    }
                    m += 1;
                }
                let mut refs: [&[u8]; BATCH] = [&[]; BATCH];
                for ((r, b), &l) in refs.iter_mut().zip(bufs.iter()).zip(&lens).take(m) {
                    *r = &b[..l];
                }
                tx.send_batch(&refs[..m]).unwrap_or(0)
            }
        };
        sent += n as u64;
    }
    let forfeited = pace.map_or(0, |p| p.forfeited);
    Ok(Sent { frames: sent, secs: t0.elapsed().as_secs_f64(), forfeited })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(f: &[u8], ip_at: usize) -> bool {
        let p = &f[ip_at..];
        let at = 20 + L4::of_proto(p[9]).unwrap().checksum_at();
        u16::from_be_bytes([p[at], p[at + 1]]) == l4_checksum(p) && checksum::checksum(&p[..20]) == 0
    }

    #[test]
    fn a_late_generator_catches_up_one_batch_and_forfeits_the_rest() {
        let mut p = Pace { rate: 1e6, forfeited: 0 };
        // On time: the next frame is due in a microsecond.
        assert!((p.wait(10, 9e-6) - 1e-6).abs() < 1e-9);
        assert_eq!(p.forfeited, 0);
        // Less than a batch late: sent now, nothing forfeited.
        assert!(p.wait(10, 30e-6) < 0.0);
        assert_eq!(p.forfeited, 0);
        // Stalled for 10 ms: one batch is owed, the rest let go.
        let w = p.wait(10, 10.010e-3);
        assert!((10_000 - BATCH as u64 - 1..=10_000 - BATCH as u64).contains(&p.forfeited), "{}", p.forfeited);
        assert!((w + BATCH as f64 / 1e6).abs() < 2e-6, "{w}");
        // Then on schedule again from there.
        let w = p.wait(10 + BATCH as u64, 10.010e-3);
        assert!(w.abs() < 2e-6, "{w}");
    }

    #[test]
    fn frames_have_the_size_and_checksums_asked_for() {
        for l4 in [L4::Udp, L4::Tcp, L4::Icmp] {
            for size in [64, 512, 1518] {
                let s = softwire(7, l4, 4242, size);
                let i = inbound(l4, 0xc633_6405, 4242, size);
                assert!(valid(&s.bytes, 54) && valid(&i.bytes, 14), "{l4:?} {size}");
                assert_eq!(s.bytes.len(), i.bytes.len() + 40);
                let want = if l4 == L4::Tcp && size == 64 { 72 } else { size - 4 };
                assert_eq!(i.bytes.len(), want, "{l4:?} {size}");
                assert!(s.bytes.ends_with(MARK) && i.bytes.ends_with(MARK));
            }
        }
    }

    #[test]
    fn stamping_and_new_flows_keep_checksums_valid() {
        for l4 in [L4::Udp, L4::Tcp, L4::Icmp] {
            for (t, ip_at) in [(softwire(3, l4, 1000, 64), 54), (inbound(l4, 0xc633_6401, 5000, 511), 14)] {
                for (sample, ts) in [(true, 0x1234_5678_9abc_def0), (false, u64::MAX), (true, 0)] {
                    let mut f = t.bytes.clone();
                    if ip_at == 54 && l4 == L4::Udp {
                        renew(&mut f, &t, 99_999, 65_000);
                        assert_eq!(&f[30..34], &99_999u32.to_be_bytes());
                    }
                    stamp(&mut f, &t, sample, ts);
                    assert!(valid(&f, ip_at), "{l4:?} {sample} {ts:x}");
                    let n = f.len();
                    assert_eq!(f[n - TAIL], sample as u8);
                    assert_eq!(u64::from_be_bytes(f[n - 16..n - 8].try_into().unwrap()), ts);
                }
            }
        }
    }

    #[test]
    fn frames_carry_the_addresses_given_with_valid_checksums() {
        let lab = Addresses::default();
        for n in [0, 1, 77, 65_536] {
            assert_eq!(lab.b4(n), b4(n), "the lab's B4 numbering is frames::b4");
        }
        let a = Addresses::elsewhere();
        let b4_3: std::net::Ipv6Addr = "2001:db8:4444::400".parse().unwrap();
        assert_eq!(a.b4(3), b4_3.octets());
        assert!(a.is_b4(&b4_3.octets()) && !a.is_b4(&lab.b4(3)) && !a.is_b4(&a.b4(3)[..15]));
        for l4 in [L4::Udp, L4::Tcp, L4::Icmp] {
            // B4 3's flow number 4: inner source 10.0.0.1 + 4 % 3.
            let s = softwire_from(&a, 3, 4, l4, 5555, 100);
            let f = &s.bytes;
            assert!(valid(f, 54), "{l4:?}");
            assert_eq!((&f[0..6], &f[6..12]), (&a.dst_mac[..], &a.src_mac[..]));
            assert_eq!((&f[22..38], &f[38..54]), (&b4_3.octets()[..], &a.aftr[..]));
            assert_eq!(&f[54 + 12..54 + 20], &[10, 0, 0, 2, 8, 8, 8, 8]);
            if l4 == L4::Icmp {
                assert_eq!((f[74], &f[78..80]), (8, &[0x15, 0xb3][..]), "echo request, identifier 5555");
            } else {
                assert_eq!(&f[74..78], &[0x15, 0xb3, 0x11, 0x51], "{l4:?}: ports 5555 -> 4433");
            }
            let i = inbound_from(&a, l4, 0xc000_0203, 2000, 100);
            assert!(valid(&i.bytes, 14), "{l4:?}");
            assert_eq!((&i.bytes[0..6], &i.bytes[6..12]), (&a.dst_mac[..], &a.src_mac[..]));
            assert_eq!(&i.bytes[14 + 12..14 + 20], &[8, 8, 8, 8, 192, 0, 2, 3]);
            // The same frames from the lab differ only where the addresses are.
            assert_ne!(softwire(3, l4, 5555, 100).bytes, s.bytes);
        }
        // New flows are numbered as the addresses say.
        let t = Traffic::new_flows(&a, 10, 64);
        let mut c = Cursor::new(&t, 1, 2);
        let mut buf = vec![0u8; 256];
        for k in 0..12u32 {
            let len = c.next(0, &mut buf, || 1);
            assert_eq!(&buf[22..38], &a.b4(k % 10), "frame {k}");
            assert!(valid(&buf[..len], 54), "frame {k}");
        }
        assert!(a.check(1 << 24).is_ok());
        assert!(Addresses { b4_shift: 97, ..a }.check(2).is_err());
        assert!(Addresses { b4_first: [0xff; 16], ..a }.check(2).is_err());
        assert!(Addresses { inner_count: 0, ..a }.check(2).is_err());
        assert!(Addresses { inner_first: u32::MAX, ..a }.check(2).is_err());
    }

    #[test]
    fn mix_parses_and_spreads() {
        let m = Mix::parse("udp=70,tcp=25,icmp=5").unwrap();
        let n: Vec<L4> = (0..1000).map(|i| m.pick(i)).collect();
        let count = |k| n.iter().filter(|&&x| x == k).count();
        assert_eq!((count(L4::Udp), count(L4::Tcp), count(L4::Icmp)), (700, 250, 50));
        assert!(Mix::parse("udp=1,sctp=2").is_err());
        assert!(Mix::parse("udp=0").is_err());
        assert!(Mix::parse("udp").is_err());
        assert_eq!(Mix::parse("tcp=3").unwrap().pick(5), L4::Tcp);
    }

    #[test]
    fn cursor_keeps_each_queue_to_its_b4s_and_samples() {
        let t = Traffic::softwire(&Addresses::default(), 8, 4, Mix::UDP, 64, 2);
        let mut c = Cursor::new(&t, 2, 4);
        let mut buf = vec![0u8; 2048];
        let mut sampled = 0;
        for k in 0..16 {
            let q = k % 2;
            let n = c.next(q, &mut buf, || 5);
            assert!(n > 0);
            assert_eq!(u32::from_be_bytes(buf[30..34].try_into().unwrap()) % 2, q as u32);
            sampled += buf[n - TAIL] as usize;
        }
        assert_eq!(sampled, 4);
    }
}
