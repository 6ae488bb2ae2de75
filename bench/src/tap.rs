//! The generator's sink: what arrives on the far interface. Counting is the kernel's
//! (the interface's receive counter, [`rx_packets`]); the tap here keeps the frames the
//! generator flagged as samples (a classic BPF filter drops the rest in the kernel, so
//! the tap costs the receiving path little), checks them (mark, addresses, every
//! checksum, as translated by the AFTR) and measures their latency: the kernel's receive
//! time of the frame (TPACKET_V3) minus the send time in its tail.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use dataplane::io::af_packet::{FilterInsn, PacketRing, RingOptions};
use dataplane::wire::checksum;

use crate::generator::{Addresses, Direction, L4, MARK, TAIL, l4_checksum};

/// Frames received by `iface` in namespace `ns` (empty: this process's) so far (the
/// kernel's interface counter). An error when the counter cannot be read: a count of 0
/// in its place would turn into a loss of everything, or one of nothing.
pub fn rx_packets(ns: &str, iface: &str) -> Result<u64, String> {
    let mut ip = Command::new("ip");
    if !ns.is_empty() {
        ip.args(["-n", ns]);
    }
    let out = ip.args(["-s", "link", "show", iface]).output().map_err(|e| format!("ip: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "RX:  bytes packets errors ..." then the figures.
    let mut lines = text.lines().skip_while(|l| !l.trim_start().starts_with("RX:"));
    lines.nth(1).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).ok_or_else(|| {
        format!("no receive counter of {iface} in namespace {ns:?}: {}", String::from_utf8_lossy(&out.stderr).trim())
    })
}

/// What to check of the frames the tap keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Nothing but the mark (the bare forwarder does not translate).
    Mark,
    /// Translated by the AFTR in this direction: IPv4 from the pool, or a softwire
    /// frame from the endpoint to a B4 for one of its hosts, with every checksum right
    /// (pool, endpoint, B4s and hosts those of the addresses).
    Translated(Direction, Addresses),
}

/// What the tap saw.
#[derive(Debug, Default, Clone)]
pub struct TapReport {
    /// Frames kept (flagged, with the mark).
    pub frames: u64,
    /// Frames that failed the check.
    pub bad: u64,
    /// The first few of them ([`KEPT_BAD`]): why each failed, and its bytes.
    pub bad_frames: Vec<BadFrame>,
    /// Latency of each kept frame, ns.
    pub latency_ns: Vec<u64>,
    /// The mappings of translated IPv4 frames: (transport, source address, source port
    /// or echo identifier).
    pub mapped: BTreeSet<(L4, u32, u16)>,
}

/// Failed frames a tap keeps whole, to show in a report.
pub const KEPT_BAD: usize = 4;

/// A frame that failed the check: which check, and the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFrame {
    pub why: &'static str,
    pub bytes: Vec<u8>,
}

impl BadFrame {
    /// One line: why, the length, and the frame in hex (up to `max` bytes).
    pub fn describe(&self, max: usize) -> String {
        let n = self.bytes.len().min(max);
        let hex: String = self.bytes[..n].iter().map(|b| format!("{b:02x}")).collect();
        format!("{} ({} bytes): {hex}{}", self.why, self.bytes.len(), if n < self.bytes.len() { "..." } else { "" })
    }
}

/// The classic BPF program keeping frames whose sample flag (TAIL bytes before the end)
/// is set.
fn sample_filter() -> Vec<FilterInsn> {
    let op = |code: u16, jt: u8, jf: u8, k: u32| FilterInsn { code, jt, jf, k };
    vec![
        op(0x80, 0, 0, 0),           // ld  #len
        op(0x14, 0, 0, TAIL as u32), // sub #TAIL
        op(0x07, 0, 0, 0),           // tax
        op(0x50, 0, 0, 0),           // ldb [x + 0]
        op(0x15, 0, 1, 1),           // jeq #1, keep, drop
        op(0x06, 0, 0, 0xffff),      // keep
        op(0x06, 0, 0, 0),           // drop
    ]
}

/// Checks a translated frame; for IPv4 out of the AFTR, also returns its mapping.
fn check(f: &[u8], dir: Direction, a: &Addresses) -> Result<Option<(L4, u32, u16)>, &'static str> {
    let ip = match dir {
        Direction::In2Out => {
            if f.len() < 34 + 8 || f[12..14] != [8, 0] {
                return Err("not an IPv4 frame");
            }
            &f[14..]
        }
        Direction::Out2In => {
            if f.len() < 54 + 28 || f[12..14] != [0x86, 0xdd] || f[20] != 4 {
                return Err("not a softwire frame (IPv6, IPv4 inside)");
            }
            if f[22..38] != a.aftr || !a.is_b4(&f[38..54]) {
                return Err("softwire addresses not the endpoint's to a B4");
            }
            &f[54..]
        }
    };
    let hl = ((ip[0] & 0x0f) as usize) * 4;
    if ip[0] >> 4 != 4 || hl < 20 || ip.len() < hl + 8 {
        return Err("IPv4 header version or length");
    }
    if checksum::checksum(&ip[..hl]) != 0 {
        return Err("IPv4 header checksum");
    }
    let l4 = L4::of_proto(ip[9]).ok_or("transport protocol")?;
    let at = hl + [6, 16, 2][l4 as usize];
    if ip.len() < at + 2 || u16::from_be_bytes([ip[at], ip[at + 1]]) != l4_checksum(ip) {
        return Err("transport checksum");
    }
    let src = u32::from_be_bytes(ip[12..16].try_into().unwrap());
    let dst = u32::from_be_bytes(ip[16..20].try_into().unwrap());
    let seg = &ip[hl..];
    match dir {
        Direction::In2Out => {
            if !a.in_pool(src) {
                return Err("source not in the pool");
            }
            let port = if l4 == L4::Icmp { [seg[4], seg[5]] } else { [seg[0], seg[1]] };
            Ok(Some((l4, src, u16::from_be_bytes(port))))
        }
        Direction::Out2In => {
            if !a.is_inner(dst) {
                return Err("destination not a host behind a B4");
            }
            Ok(None)
        }
    }
}

/// A running tap; [`Tap::finish`] stops it and gives what it saw.
pub struct Tap {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<TapReport>,
}

impl Tap {
    pub fn finish(self) -> TapReport {
        self.stop.store(true, Ordering::Release);
        self.thread.join().expect("tap thread")
    }
}

/// A tap on `iface` in namespace `ns` (empty: this process's), keeping the sampled
/// frames (or, with `all`, every frame with the mark); returns once it listens, or why
/// it cannot.
pub fn start(ns: String, iface: String, all: bool, what: Check) -> Result<Tap, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let (opened_tx, opened_rx) = std::sync::mpsc::channel();
    let stop2 = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut r = TapReport::default();
        let entered = if ns.is_empty() { Ok(()) } else { dataplane::io::netns::enter(&ns) };
        let opened = entered.and_then(|()| {
            let opts = RingOptions { block_size: 1 << 20, blocks: 64, block_timeout_ms: 2, fanout: None };
            let ring = PacketRing::open(&iface, opts)?;
            if !all {
                ring.set_filter(&sample_filter())?;
            }
            Ok(ring)
        });
        let mut ring = match opened {
            Ok(ring) => ring,
            Err(e) => {
                let _ = opened_tx.send(Err(format!("tap on {iface}: {e}")));
                return r;
            }
        };
        // Frames that arrived before the filter was on are read and left out below.
        let _ = opened_tx.send(Ok(()));
        let drain = |ring: &mut PacketRing, r: &mut TapReport| {
            while ring.recv_stamped(|f, at| {
                if f.len() < TAIL || !f.ends_with(MARK) || (!all && f[f.len() - TAIL] != 1) {
                    return;
                }
                r.frames += 1;
                let n = f.len();
                let sent = u64::from_be_bytes(f[n - 16..n - 8].try_into().unwrap());
                r.latency_ns.push(at.saturating_sub(sent));
                if let Check::Translated(dir, a) = &what {
                    match check(f, *dir, a) {
                        Ok(Some(m)) if r.mapped.len() < 1 << 20 => {
                            r.mapped.insert(m);
                        }
                        Ok(_) => {}
                        Err(why) => {
                            r.bad += 1;
                            if r.bad_frames.len() < KEPT_BAD {
                                r.bad_frames.push(BadFrame { why, bytes: f.to_vec() });
                            }
                        }
                    }
                }
            }) > 0
            {}
        };
        while !stop2.load(Ordering::Acquire) {
            let _ = ring.wait(20);
            drain(&mut ring, &mut r);
        }
        drain(&mut ring, &mut r);
        r
    });
    match opened_rx.recv() {
        Ok(Ok(())) => Ok(Tap { stop, thread }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("the tap's thread ended before it listened".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::{inbound, softwire, softwire_from};
    use dataplane::config::Ipv4Prefix;

    /// What the AFTR would make of a softwire frame: the IPv4 packet from the pool.
    fn translated(l4: L4) -> Vec<u8> {
        let mut t = inbound(l4, 0xcb00_7150, 0, 64);
        // Same layout as an IPv4 frame out of the AFTR: source from the pool.
        let f = &mut t.bytes;
        f[26..30].copy_from_slice(&0xc633_6407u32.to_be_bytes());
        f[30..34].copy_from_slice(&0xcb00_7150u32.to_be_bytes());
        let c = checksum::checksum(&{
            let mut h = f[14..34].to_vec();
            h[10] = 0;
            h[11] = 0;
            h
        });
        f[24..26].copy_from_slice(&c.to_be_bytes());
        let l4c = l4_checksum(&f[14..]);
        let at = 34 + [6, 16, 2][l4 as usize];
        f[at..at + 2].copy_from_slice(&l4c.to_be_bytes());
        t.bytes
    }

    #[test]
    fn checks_find_translations_right_and_wrong() {
        for l4 in [L4::Udp, L4::Tcp, L4::Icmp] {
            let f = translated(l4);
            let lab = Addresses::default();
            assert_eq!(check(&f, Direction::In2Out, &lab).map(|m| m.map(|m| (m.0, m.1))), Ok(Some((l4, 0xc633_6407))));
            let mut bad = f.clone();
            let n = bad.len();
            bad[n - 12] ^= 1; // the payload changed in flight: the checksum says so
            assert_eq!(check(&bad, Direction::In2Out, &lab), Err("transport checksum"));
            // An untranslated softwire frame is not a translated one.
            assert_eq!(check(&softwire(1, l4, 1, 64).bytes, Direction::In2Out, &lab), Err("not an IPv4 frame"));
            // Another pool: the same frame is not from it.
            let other = Addresses { pool: Ipv4Prefix { addr: 0x0a00_0000, len: 8 }, ..lab };
            assert_eq!(check(&f, Direction::In2Out, &other), Err("source not in the pool"));
        }
    }

    /// What the AFTR would send a B4 of `a`: a softwire frame from the endpoint to B4 5
    /// with the server's packet to the host (a generated softwire frame turned round:
    /// swapping sources and destinations keeps every checksum).
    fn to_b4(a: &Addresses, l4: L4) -> Vec<u8> {
        let mut f = softwire_from(a, 5, 0, l4, 7, 64).bytes;
        for (x, y, n) in [(22, 38, 16), (54 + 12, 54 + 16, 4)] {
            let tmp = f[x..x + n].to_vec();
            f.copy_within(y..y + n, x);
            f[y..y + n].copy_from_slice(&tmp);
        }
        f
    }

    #[test]
    fn checks_follow_the_addresses_given() {
        let lab = Addresses::default();
        let a = Addresses::elsewhere();
        for l4 in [L4::Udp, L4::Tcp, L4::Icmp] {
            assert_eq!(check(&to_b4(&a, l4), Direction::Out2In, &a), Ok(None), "{l4:?}");
            assert_eq!(check(&to_b4(&lab, l4), Direction::Out2In, &lab), Ok(None), "{l4:?}");
            assert_eq!(
                check(&to_b4(&a, l4), Direction::Out2In, &lab),
                Err("softwire addresses not the endpoint's to a B4"),
                "{l4:?}"
            );
            assert_eq!(
                check(&to_b4(&lab, l4), Direction::Out2In, &a),
                Err("softwire addresses not the endpoint's to a B4"),
                "{l4:?}"
            );
        }
    }
}
