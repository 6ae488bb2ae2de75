//! The AF_PACKET TPACKET_V3 path over a veth pair in a namespace the test creates (and
//! removes, even when it fails). Needs root, as CI has; elsewhere it says so and passes.

use dataplane::testing::{Netns, is_root, skip};
use std::time::{Duration, Instant};

use dataplane::HEADROOM;
use dataplane::io::af_packet::{PacketRing, RingOptions};

/// A frame with a local experimental ethertype (the kernel ignores it) and a sequence
/// number.
fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xaa]);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[18..].iter_mut().enumerate() {
        *b = (i as u32 ^ seq) as u8;
    }
    f
}

#[test]
fn frames_cross_a_veth_pair_through_the_rings() {
    if !is_root() {
        return skip("needs root for network namespaces");
    }
    let ns = Netns::new(&format!("dpio-{}", std::process::id()));
    ns.ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]);
    for d in ["va", "vb"] {
        ns.ip(&["link", "set", d, "mtu", "1600", "up"]);
    }
    let name = ns.0.clone();
    // The sockets live in a thread that entered the namespace.
    let h = std::thread::spawn(move || {
        dataplane::io::netns::enter(&name).unwrap();
        let opts = RingOptions { block_size: 1 << 16, blocks: 8, block_timeout_ms: 1, fanout: None };
        let mut a = PacketRing::open("va", opts).unwrap();
        let mut b = PacketRing::open("vb", opts).unwrap();
        let sent: Vec<Vec<u8>> = (0..300).map(|k| frame(k, 60 + (k as usize * 7) % 1400)).collect();
        for chunk in sent.chunks(32) {
            let refs: Vec<&[u8]> = chunk.iter().map(|f| f.as_slice()).collect();
            assert_eq!(a.send_batch(&refs).unwrap(), refs.len());
        }
        let mut got = Vec::new();
        let t = Instant::now();
        while got.len() < sent.len() && t.elapsed() < Duration::from_secs(5) {
            b.wait(50).unwrap();
            b.recv_block(|frames| {
                assert!(frames.len() <= dataplane::io::af_packet::BATCH);
                for f in frames.iter_mut() {
                    let bytes = f.bytes();
                    if bytes.len() >= 14 && bytes[12..14] == [0x88, 0xb5] {
                        assert_eq!(f.start, HEADROOM);
                        // The headroom is ours to write (the engine puts headers there).
                        f.buf[..HEADROOM].fill(0xee);
                        got.push(f.bytes().to_vec());
                    }
                }
            });
        }
        // Our own transmissions never come back on the sending ring.
        let mut echoed = 0;
        a.recv_block(|fs| echoed += fs.iter().filter(|f| f.bytes()[12..14] == [0x88, 0xb5]).count());
        // A transmit-only socket sends while nothing is borrowed from a ring.
        let tx = dataplane::io::af_packet::PacketTx::open("va").unwrap();
        assert_eq!(tx.send_batch(&[&frame(999, 64)]).unwrap(), 1);
        let t = Instant::now();
        let mut late = None;
        while late.is_none() && t.elapsed() < Duration::from_secs(5) {
            b.wait(50).unwrap();
            b.recv_block(|fs| {
                for f in fs.iter() {
                    if f.bytes()[12..14] == [0x88, 0xb5] {
                        late = Some(f.bytes().to_vec());
                    }
                }
            });
        }
        assert_eq!(late, Some(frame(999, 64)));
        (sent, got, echoed)
    });
    let (sent, got, echoed) = h.join().unwrap();
    assert_eq!(got.len(), sent.len(), "every frame arrived");
    assert_eq!(got, sent, "in order, byte for byte");
    assert_eq!(echoed, 0);
}
