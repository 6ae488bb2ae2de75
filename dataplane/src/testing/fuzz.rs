//! The body of the pipeline fuzz target (`dataplane/fuzz`, `cargo fuzz run pipeline`),
//! here so that a unit test runs it on fixed and random inputs and it cannot rot.
//!
//! The input is a sequence of records: `[kind][clock step][len: 2 bytes][len bytes]`.
//! An even `kind` sends the bytes as a frame; an odd one XORs them into a valid frame
//! so mutations reach the deep paths: below 0x80, softwire UDP from one of a few B4s or
//! an IPv4 reply to a mapping seen so far; from 0x80, a fragment of such a frame (bit 1:
//! the last fragment or the first; bit 2: the reply or softwire; bits 3-4: the B4; bits
//! 5-6: the identification), into fragment tables small enough that a few records fill
//! them. The engine must never panic and must leave no session, subscriber or fragment
//! state behind once every timer has run out.

use super::frames::{self, ENDPOINT, b4};
use crate::config::{EngineConfig, FragLimits, InstanceConfig, Ipv4Prefix, Ipv6Prefix};
use crate::engine::Engine;
use crate::frame::{Egress, Frame, HEADROOM, VecSink, Verdict};

/// Runs the input `data` through a small engine; returns how many frames it forwarded
/// (as the frame's verdict or through the sink).
/// Panics if the engine panics or leaves state behind.
pub fn run(data: &[u8]) -> usize {
    let mut e = engine();
    let mut now = 1_700_000_000_000u64;
    let mut rest = data;
    let mut mapping: Option<(u32, u16)> = None;
    let mut forwarded = 0;
    while rest.len() >= 4 {
        let (kind, step) = (rest[0], rest[1]);
        let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        let n = len.min(rest.len());
        let bytes = &rest[..n];
        rest = &rest[n..];
        now += step as u64 * 1000;
        e.set_clock(now);
        let reply = |payload: &[u8]| {
            let (ext, port) = mapping.unwrap_or((0xc633_6400, 1024));
            frames::ipv4_udp_reply(ext, port, payload)
        };
        let frame: Vec<u8> = if kind & 1 == 0 {
            bytes.to_vec()
        } else if kind & 0x80 != 0 {
            let (last, inbound) = ((kind >> 1) & 1, kind & 4 != 0);
            let (b4n, ident) = ((kind >> 3) as u32 & 3, (kind >> 5) & 3);
            let mut pieces = if inbound {
                frames::ipv4_fragments(&reply(&[0; 300]), &[160], ident as u16)
            } else {
                frames::softwire_fragments(&frames::softwire_udp(b4n, 1024, &[0; 300]), &[160], ident as u32)
            };
            xor(pieces.swap_remove(last as usize), bytes)
        } else {
            let f = match (kind >> 1) % 3 {
                0 | 1 => frames::softwire_udp((kind >> 3) as u32 % 4, 1024 + (kind as u16 >> 5), &[0; 18]),
                _ => reply(&[0; 18]),
            };
            xor(f, bytes)
        };
        let n = frame.len().min(65536);
        // Exactly the frame after the headroom: a write past its end panics here
        // instead of landing in slack.
        let mut buf = vec![0u8; HEADROOM + n];
        buf[HEADROOM..].copy_from_slice(&frame[..n]);
        let mut f = Frame::new(&mut buf, HEADROOM, n);
        let mut sink = VecSink::default();
        let v = e.process(&mut f, &mut sink);
        forwarded += sink.emitted.len();
        if let Verdict::Forward(egress) = v {
            forwarded += 1;
            if egress == Egress::Internet && f.len >= 38 {
                let b = f.bytes();
                mapping = Some((u32::from_be_bytes([b[26], b[27], b[28], b[29]]), u16::from_be_bytes([b[34], b[35]])));
            }
        }
        e.expire(64);
    }
    e.set_clock(now + 10_000_000);
    while e.expire(1024) > 0 {}
    assert_eq!(e.session_count(), 0);
    assert_eq!(e.subscriber_count(), 0);
    assert_eq!(e.fragments_in_progress(), (0, 0));
    forwarded
}

/// `frame` with `bytes` XORed into it from the start.
fn xor(mut frame: Vec<u8>, bytes: &[u8]) -> Vec<u8> {
    for (d, s) in frame.iter_mut().zip(bytes) {
        *d ^= s;
    }
    frame
}

fn engine() -> Engine {
    let inst = InstanceConfig::new(
        "fuzz",
        ENDPOINT,
        Ipv6Prefix { addr: b4(0), len: 48 },
        Ipv4Prefix { addr: 0xc633_6400, len: 30 },
    );
    let mut cfg = EngineConfig::new(vec![inst]);
    cfg.max_sessions = 256;
    cfg.max_subscribers = 16;
    cfg.frag = FragLimits { max_reassemblies: 4, max_datagram: 4096, max_held: 4, max_per_source: 2, timeout_ms: 2000 };
    cfg.event_ring = 64;
    cfg.softwire_l2.dst = [2, 0, 0, 0, 0, 1];
    cfg.internet_l2.dst = [2, 0, 0, 0, 0, 2];
    Engine::new(&cfg, 0, 7).expect("valid").0
}

#[cfg(test)]
mod tests {
    use super::run;

    /// A record of the input format.
    fn record(kind: u8, step: u8, bytes: &[u8]) -> Vec<u8> {
        let mut r = vec![kind, step];
        r.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        r.extend_from_slice(bytes);
        r
    }

    #[test]
    fn fixed_inputs_reach_both_directions() {
        assert_eq!(run(&[]), 0);
        assert_eq!(run(&[1, 2, 3]), 0);
        // B4 0's flow out, the reply to its mapping in, a second B4, a clock step.
        let mut flows = [record(1, 0, &[]), record(5, 0, &[]), record(9, 1, &[]), record(5, 30, &[])].concat();
        assert_eq!(run(&flows), 4);
        // A mutated inner source address (refused) and a raw frame of junk.
        let mut mutation = [0u8; 67];
        mutation[66] = 0x40;
        flows.extend(record(1, 0, &mutation));
        flows.extend(record(0, 0, &[0xff; 100]));
        assert_eq!(run(&flows), 4);
    }

    /// A record that sends a fragment (`last` or first) of a softwire frame from B4
    /// `b4n`, or of a reply to the mapping (`inbound`).
    fn fragment(last: bool, inbound: bool, b4n: u8, ident: u8) -> Vec<u8> {
        record(0x81 | (last as u8) << 1 | (inbound as u8) << 2 | b4n << 3 | ident << 5, 0, &[])
    }

    #[test]
    fn fragments_reach_both_directions_past_a_flood() {
        // B4 0 starts four datagrams it never ends, more than its share of the four slots;
        // B4 1's datagram, last fragment first, is still reassembled and translated.
        let mut input: Vec<u8> = (0..4).flat_map(|i| fragment(false, false, 0, i)).collect();
        input.extend([fragment(true, false, 1, 0), fragment(false, false, 1, 0)].concat());
        assert_eq!(run(&input), 1);
        // A mapping, then a reply to it in two fragments, the last one held first.
        input.extend([record(1, 0, &[]), fragment(true, true, 0, 2), fragment(false, true, 0, 2)].concat());
        assert_eq!(run(&input), 4);
    }

    #[test]
    fn random_inputs_never_panic_nor_leak() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..1000 {
            let len = (next() % 600) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Mostly short records, so that many frames come from each input; some of
            // them fragments.
            for r in data.chunks_mut(40) {
                if r.len() >= 4 {
                    r[2] = 0;
                    // Fragments mostly whole, so that datagrams complete.
                    r[3] %= if r[0] & 0x80 != 0 { 4 } else { 48 };
                }
            }
            run(&data);
        }
    }
}
