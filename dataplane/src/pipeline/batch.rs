//! Batched processing: the table entries of a whole batch are prefetched, in stages,
//! before each frame is processed, so the cache misses of different packets overlap
//! instead of adding up (VPP processes vectors the same way). Hot path.
//!
//! Stage 1 hashes each frame's key from its headers and prefetches the index slot;
//! stage 2 reads the slot and prefetches the session it points to; stage 3 prefetches
//! the session's subscriber (its B4 address: checked inbound-side on the way out,
//! needed to encapsulate on the way in) — and stage 1 of a softwire frame also
//! prefetches the forwarding table's entry of its destination; stage 4 processes the frame, finding everything
//! in cache.
//! A frame the stages cannot read is simply processed without prefetch.

use super::BatchCtx;
use crate::frame::{Frame, Sink, Verdict};
use crate::wire::ethernet::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use crate::wire::{get_u16, get_u32, proto};

/// Frames prefetched together; larger batches are processed in chunks of this size.
pub const MAX_BATCH: usize = 64;

#[derive(Clone, Copy)]
enum Hint {
    None,
    Inside { sess: u32 },
    Outside { sess: u32 },
    Record(u32),
}

impl BatchCtx<'_> {
    /// Processes `frames`, writing one verdict per frame into `verdicts` (which must be
    /// at least as long). Same results as calling `process` on each in turn.
    ///
    /// A rolling software pipeline: while frame `k` is processed, the records of frame
    /// `k + STEP` and the index slots of frame `k + 2 * STEP` are being fetched, so a
    /// few misses are always in flight without flooding the CPU's miss buffers.
    pub fn process_batch(&mut self, frames: &mut [Frame], verdicts: &mut [Verdict], sink: &mut dyn Sink) {
        const STEP: usize = 4;
        for (fs, vs) in frames.chunks_mut(MAX_BATCH).zip(verdicts.chunks_mut(MAX_BATCH)) {
            let n = fs.len();
            self.counters.add(crate::counters::Counter::RxFrames, n as u64);
            self.counters.add(crate::counters::Counter::RxBytes, fs.iter().map(|f| f.len as u64).sum());
            let mut hints = [Hint::None; MAX_BATCH];
            for k in 0..n + 3 * STEP {
                if k < n {
                    hints[k] = self.batch_hash(&fs[k]);
                    if let Hint::Inside { sess } = hints[k] {
                        fs[k].prehash = Some(sess);
                    }
                }
                if let Some(j) = k.checked_sub(STEP).filter(|&j| j < n) {
                    hints[j] = self.batch_records(hints[j]);
                }
                if let Some(j) = k.checked_sub(2 * STEP).filter(|&j| j < n)
                    && let Hint::Record(i) = hints[j]
                {
                    self.nat.subs.prefetch(self.nat.sessions.get(i).sub);
                }
                if let Some(j) = k.checked_sub(3 * STEP).filter(|&j| j < n) {
                    vs[j] = self.process(&mut fs[j], sink);
                }
            }
        }
    }

    /// Stage 2: reads the index slots and prefetches the records they point to.
    #[inline]
    fn batch_records(&self, h: Hint) -> Hint {
        match h {
            Hint::Inside { sess } => match self.nat.sessions.inside.peek(sess) {
                Some(i) => {
                    self.nat.sessions.prefetch(i);
                    Hint::Record(i)
                }
                None => Hint::None,
            },
            Hint::Outside { sess } => match self.nat.sessions.outside.peek(sess) {
                Some(i) => {
                    self.nat.sessions.prefetch(i);
                    Hint::Record(i)
                }
                None => Hint::None,
            },
            h => h,
        }
    }

    /// Stage 1 for one frame: the hashes of its keys, with the index slots prefetched.
    fn batch_hash(&self, f: &Frame) -> Hint {
        let Some(b) = f.buf.get(f.start..f.start + f.len) else { return Hint::None };
        let Ok(l2) = ethernet::parse(b) else { return Hint::None };
        let l3 = l2.l3_offset;
        match l2.ethertype {
            ETHERTYPE_IPV6 => {
                // Only the plain softwire shape: IPv6 without extensions, then IPv4.
                if b.len() < l3 + 40 + 20 + 4 || b[l3 + 6] != proto::IPV4_IN_IP {
                    return Hint::None;
                }
                let dst: [u8; 16] = b[l3 + 24..l3 + 40].try_into().unwrap_or_default();
                let Some(inst) = self.instance_of_endpoint(&dst) else { return Hint::None };
                let b4: [u8; 16] = b[l3 + 8..l3 + 24].try_into().unwrap_or_default();
                let ip = l3 + 40;
                let ihl = ((b[ip] & 0x0f) as usize) * 4;
                let (protocol, src) = (b[ip + 9], get_u32(b, ip + 12));
                if let Some(fib) = &self.fib {
                    // Where it goes after translation: NAT44 keeps the destination.
                    fib.routes.prefetch(get_u32(b, ip + 16));
                }
                let l4 = ip + ihl;
                // Exactly the key `find_session` looks up: the source port, or the
                // identifier of an echo request (the hash is handed to it).
                let port = match protocol {
                    proto::UDP | proto::TCP if b.len() >= l4 + 2 => get_u16(b, l4),
                    proto::ICMP if b.len() >= l4 + 6 && b[l4] == crate::wire::icmp::v4::ECHO_REQUEST => {
                        get_u16(b, l4 + 4)
                    }
                    _ => return Hint::None,
                };
                let sess = self.nat.inside_hash(inst, &b4, src, port, protocol);
                self.nat.sessions.inside.prefetch(sess);
                Hint::Inside { sess }
            }
            ETHERTYPE_IPV4 => {
                if b.len() < l3 + 20 {
                    return Hint::None;
                }
                let ihl = ((b[l3] & 0x0f) as usize) * 4;
                if get_u16(b, l3 + 6) & 0x3fff != 0 {
                    return Hint::None;
                }
                let (protocol, dst) = (b[l3 + 9], get_u32(b, l3 + 16));
                let Some(l4) = b.get(l3 + ihl..) else { return Hint::None };
                let Some(port) = super::inbound_port(protocol, l4) else { return Hint::None };
                let sess = self.nat.outside_hash(dst, port, protocol);
                self.nat.sessions.outside.prefetch(sess);
                Hint::Outside { sess }
            }
            _ => Hint::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{EngineConfig, InstanceConfig, Ipv4Prefix, Ipv6Prefix};
    use crate::counters::WorkerCounters;
    use crate::frame::{HEADROOM, VecSink};
    use crate::nat::fragments::{FragTracker4, Reassembler};
    use crate::nat::owners::Owners;
    use crate::nat::table::NatState;
    use crate::pipeline::{PathConfig, PathState};
    use crate::wire::{ethernet, ipv4, ipv6};

    #[test]
    fn stage_one_hashes_match_the_lookups() {
        let ep = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let mut b4 = ep;
        b4[15] = 9;
        let inst =
            InstanceConfig::new("t", ep, Ipv6Prefix { addr: ep, len: 32 }, Ipv4Prefix { addr: 0xc6336400, len: 30 });
        let mut cfg = EngineConfig::new(vec![inst]);
        cfg.internet_l2.dst = [2, 0, 0, 0, 0, 1];
        let (tx, _rx) = crossbeam_channel::bounded(cfg.event_ring);
        let counters = Arc::new(WorkerCounters::default());
        let mut nat = NatState::new(&cfg, 0, 3, Arc::new(Owners::new()), counters.clone(), tx);
        let (mut frag6, mut frag4) = (Reassembler::new(cfg.frag, 1), FragTracker4::new(cfg.frag, 2));
        let path = PathConfig::new(&cfg);
        let mut state = PathState::new(&cfg);
        let mut e = BatchCtx::new(&path, &mut nat, &mut frag6, &mut frag4, &mut state, &counters, 0);
        let mut f = vec![0u8; 14 + 40 + 28];
        ethernet::write_header(&mut f, [0; 6], [0; 6], None, ethernet::ETHERTYPE_IPV6);
        ipv6::write_header(&mut f[14..], 0, 0, 28, 4, 64, &b4, &ep);
        ipv4::write_header(&mut f[54..], 0, 28, 0, 0, 64, 17, 0xc0a8_0001, 0x0808_0808);
        f[74..76].copy_from_slice(&1234u16.to_be_bytes());
        f[76..78].copy_from_slice(&53u16.to_be_bytes());
        f[78..80].copy_from_slice(&8u16.to_be_bytes());
        let run = |e: &mut BatchCtx| {
            let mut buf = vec![0u8; HEADROOM + f.len()];
            buf[HEADROOM..].copy_from_slice(&f);
            let fr = Frame::new(&mut buf, HEADROOM, f.len());
            let h = e.batch_hash(&fr);
            let mut frs = [fr];
            let mut v = [Verdict::Pass];
            e.process_batch(&mut frs, &mut v, &mut VecSink::default());
            (h, v[0])
        };
        run(&mut e);
        let (h, v) = run(&mut e);
        assert!(matches!(v, Verdict::Forward(_)));
        let Hint::Inside { sess } = h else { panic!("no hint") };
        assert_eq!(e.nat.sessions.inside.peek(sess), Some(0));
        assert_eq!(counters.get(crate::counters::Counter::RxBytes), 2 * f.len() as u64, "bytes of both frames");
    }
}
