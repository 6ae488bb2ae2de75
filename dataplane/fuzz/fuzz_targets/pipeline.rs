//! Fuzzes the whole pipeline: the input is a sequence of frames, each prefixed by a
//! two-byte length and a one-byte clock step. The engine must never panic and must
//! leave no session, subscriber or block behind once every timer has run out.
//!
//! Run: `cargo fuzz run pipeline` in `dataplane/` (cargo-fuzz, nightly or RUSTC_BOOTSTRAP=1).
#![no_main]

use dataplane::config::{EgressL2, EngineConfig, InstanceConfig, Ipv4Prefix, Ipv6Prefix};
use dataplane::{Engine, Frame, HEADROOM, VecSink};
use libfuzzer_sys::fuzz_target;

fn engine() -> Engine {
    let mut endpoint = [0u8; 16];
    endpoint[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    endpoint[15] = 1;
    let mut b4 = endpoint;
    b4[15] = 0;
    let inst = InstanceConfig::new("fuzz", endpoint, Ipv6Prefix { addr: b4, len: 32 }, Ipv4Prefix { addr: 0xc633_6400, len: 30 });
    let mut cfg = EngineConfig::new(vec![inst]);
    cfg.max_sessions = 256;
    cfg.max_subscribers = 16;
    cfg.softwire_l2 = EgressL2::default();
    cfg.internet_l2 = EgressL2::default();
    Engine::new(&cfg, 0, 7).expect("valid").0
}

fuzz_target!(|data: &[u8]| {
    let mut e = engine();
    let mut now = 1_700_000_000_000u64;
    e.set_clock(now);
    let mut rest = data;
    let mut buf = vec![0u8; HEADROOM + 65536 + 64];
    while rest.len() >= 3 {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        now += rest[2] as u64 * 1000;
        rest = &rest[3..];
        let n = len.min(rest.len());
        buf[HEADROOM..HEADROOM + n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        e.set_clock(now);
        let mut f = Frame::new(&mut buf, HEADROOM, n);
        let mut sink = VecSink::default();
        let _ = e.process(&mut f, &mut sink);
        e.expire(64);
    }
    e.set_clock(now + 10_000_000);
    while e.expire(1024) > 0 {}
    assert_eq!(e.session_count(), 0);
    assert_eq!(e.subscriber_count(), 0);
});
