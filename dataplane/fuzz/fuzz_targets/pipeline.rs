//! Fuzzes the whole pipeline. The input is a sequence of records:
//! `[kind][clock step][len: 2 bytes][len bytes]`. An even `kind` sends the bytes as a
//! frame; an odd one XORs them into a valid frame (softwire UDP from one of a few B4s,
//! or an IPv4 reply to a mapping seen so far) so mutations reach the deep paths. The
//! engine must never panic and must leave no session, subscriber or block behind once
//! every timer has run out.
//!
//! Run: `cargo fuzz run pipeline` in `dataplane/` (cargo-fuzz; nightly, or
//! `RUSTC_BOOTSTRAP=1` on a stable toolchain).
#![no_main]

use bench::frames;
use bench::generator::{self, L4};
use dataplane::config::{EngineConfig, FragLimits, InstanceConfig, Ipv4Prefix, Ipv6Prefix};
use dataplane::{Egress, Engine, Frame, HEADROOM, VecSink, Verdict};
use libfuzzer_sys::fuzz_target;

fn engine() -> Engine {
    let inst = InstanceConfig::new(
        "fuzz",
        frames::ENDPOINT,
        Ipv6Prefix { addr: frames::b4(0), len: 48 },
        Ipv4Prefix { addr: 0xc633_6400, len: 30 },
    );
    let mut cfg = EngineConfig::new(vec![inst]);
    cfg.max_sessions = 256;
    cfg.max_subscribers = 16;
    cfg.frag = FragLimits { max_reassemblies: 4, max_datagram: 4096, max_held: 4, timeout_ms: 2000 };
    cfg.event_ring = 64;
    cfg.softwire_l2.dst = [2, 0, 0, 0, 0, 1];
    cfg.internet_l2.dst = [2, 0, 0, 0, 0, 2];
    Engine::new(&cfg, 0, 7).expect("valid").0
}

fuzz_target!(|data: &[u8]| {
    let mut e = engine();
    let mut now = 1_700_000_000_000u64;
    let mut rest = data;
    let mut buf = vec![0u8; HEADROOM + 65536 + 64];
    let mut mapping: Option<(u32, u16)> = None;
    while rest.len() >= 4 {
        let (kind, step) = (rest[0], rest[1]);
        let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        let n = len.min(rest.len());
        let bytes = &rest[..n];
        rest = &rest[n..];
        now += step as u64 * 1000;
        e.set_clock(now);
        let frame: Vec<u8> = if kind & 1 == 0 {
            bytes.to_vec()
        } else {
            let mut f = match (kind >> 1) % 3 {
                0 | 1 => generator::softwire((kind >> 3) as u32 % 4, L4::Udp, 1024 + (kind as u16 >> 5), 64).bytes,
                _ => {
                    let (ext, port) = mapping.unwrap_or((0xc633_6400, 1024));
                    generator::inbound(L4::Udp, ext, port, 64).bytes
                }
            };
            for (d, s) in f.iter_mut().zip(bytes) {
                *d ^= s;
            }
            f
        };
        let n = frame.len().min(65536);
        buf[HEADROOM..HEADROOM + n].copy_from_slice(&frame[..n]);
        let mut f = Frame::new(&mut buf, HEADROOM, n);
        let mut sink = VecSink::default();
        if e.process(&mut f, &mut sink) == Verdict::Forward(Egress::Internet) && f.len >= 38 {
            let b = f.bytes();
            mapping = Some((u32::from_be_bytes(b[26..30].try_into().unwrap()), u16::from_be_bytes([b[34], b[35]])));
        }
        e.expire(64);
    }
    e.set_clock(now + 10_000_000);
    while e.expire(1024) > 0 {}
    assert_eq!(e.session_count(), 0);
    assert_eq!(e.subscriber_count(), 0);
});
