//! The AF_XDP path over veth pairs in a namespace the test creates (and removes, even
//! when it fails): our XDP program steers to the sockets exactly what the data plane
//! owns, frames cross from one interface's socket to the other's without a copy, and the
//! program leaves the interfaces when dropped. Needs root, as CI has.

use std::process::Command;
use std::time::{Duration, Instant};

use dataplane::config::Ipv4Prefix;
use dataplane::io::af_packet::{PacketRing, PacketTx, RingOptions};
use dataplane::io::xdp::{Mode, Steering};
use dataplane::io::xsk::{PollMode, XskPair};
use dataplane::testing::{Netns, is_root, skip};
use dataplane::{Egress, Verdict};

const ENDPOINT: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const ELSEWHERE: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
const POOL: u32 = 0xc633_6400; // 198.51.100.0/24

/// An IPv6 frame to `dst` with next header `nh`, a payload marked with `seq`.
fn v6(dst: [u8; 16], nh: u8, first: u8, seq: u32) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + 24];
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    f[14] = 0x60;
    f[18..20].copy_from_slice(&24u16.to_be_bytes());
    f[20] = nh;
    f[21] = 64;
    f[22..38].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0xb4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    f[38..54].copy_from_slice(&dst);
    f[54] = first;
    f[58..62].copy_from_slice(&seq.to_be_bytes());
    f
}

/// An IPv4 frame to `dst`, a payload marked with `seq`.
fn v4(dst: u32, seq: u32) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 24];
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f[14] = 0x45;
    f[16..18].copy_from_slice(&44u16.to_be_bytes());
    f[22] = 64;
    f[23] = 253; // experimental
    f[26..30].copy_from_slice(&0xcb00_7150u32.to_be_bytes());
    f[30..34].copy_from_slice(&dst.to_be_bytes());
    f[34..38].copy_from_slice(&seq.to_be_bytes());
    f
}

fn seq_of(f: &[u8]) -> Option<u32> {
    match u16::from_be_bytes([f[12], f[13]]) {
        0x86dd if f.len() >= 62 => Some(u32::from_be_bytes([f[58], f[59], f[60], f[61]])),
        0x0800 if f.len() >= 38 => Some(u32::from_be_bytes([f[34], f[35], f[36], f[37]])),
        _ => None,
    }
}

/// Frames with our marks that arrive on `ring` within `wait`.
fn collect(ring: &mut PacketRing, want: usize, wait: Duration) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let t = Instant::now();
    while got.len() < want && t.elapsed() < wait {
        ring.wait(20).unwrap();
        ring.recv_block(|fs| {
            for f in fs.iter() {
                let b = f.bytes();
                if b.len() >= 38 && (b[23] == 253 || b[20] == 4) {
                    got.push(b.to_vec());
                }
            }
        });
    }
    got
}

/// Runs the pair until `until` or a deadline, forwarding what one side receives to the
/// other; returns what each side received (by sequence number).
fn pump(xsk: &mut XskPair, deadline: Duration, until: impl Fn(&[u32], &[u32]) -> bool) -> (Vec<u32>, Vec<u32>) {
    let (mut sw, mut inet) = (Vec::new(), Vec::new());
    let t = Instant::now();
    while !until(&sw, &inet) && t.elapsed() < deadline {
        xsk.wait(PollMode::Block, 20);
        for (from, to, seen) in
            [(Egress::Softwire, Egress::Internet, &mut sw), (Egress::Internet, Egress::Softwire, &mut inet)]
        {
            xsk.receive(from, |frames, verdicts| {
                for (f, v) in frames.iter().zip(verdicts.iter_mut()) {
                    seen.extend(seq_of(f.bytes()));
                    *v = Verdict::Forward(to);
                }
            });
        }
        xsk.flush();
    }
    (sw, inet)
}

#[test]
fn the_xdp_program_steers_what_the_data_plane_owns_to_the_sockets() {
    if !is_root() {
        return skip("needs root for network namespaces");
    }
    let ns = Netns::new(&format!("dpxdp-{}", std::process::id()));
    // sa (B4 side) <-> sb (board), ia (board) <-> ib (Internet side)
    ns.ip(&["link", "add", "sa", "type", "veth", "peer", "name", "sb"]);
    ns.ip(&["link", "add", "ia", "type", "veth", "peer", "name", "ib"]);
    for d in ["sa", "sb", "ia", "ib"] {
        ns.ip(&["link", "set", d, "mtu", "1600", "up"]);
    }
    let name = ns.0.clone();
    let h = std::thread::spawn(move || {
        dataplane::io::netns::enter(&name).unwrap();
        let mut steer_sw = Steering::attach("sb", Mode::Auto).unwrap();
        let mut steer_in = Steering::attach("ia", Mode::Auto).unwrap();
        // veth has native XDP.
        assert_eq!(steer_sw.mode(), Mode::Native);
        let pools = [Ipv4Prefix { addr: POOL, len: 24 }];
        for s in [&mut steer_sw, &mut steer_in] {
            s.set_targets(&[ENDPOINT], &pools).unwrap();
        }
        let mut xsk = XskPair::open("sb", "ia", 0).unwrap();
        let (fd_sw, fd_in) = xsk.fds();
        steer_sw.register(0, fd_sw).unwrap();
        steer_in.register(0, fd_in).unwrap();
        let opts = RingOptions { block_size: 1 << 16, blocks: 8, block_timeout_ms: 1, fanout: None };
        let mut ring_sa = PacketRing::open("sa", opts).unwrap();
        let mut ring_ib = PacketRing::open("ib", opts).unwrap();
        let (tx_sa, tx_ib) = (PacketTx::open("sa").unwrap(), PacketTx::open("ib").unwrap());

        // Inactive: the board owns these but is standby, so the kernel gets them.
        tx_sa.send_batch(&[&v6(ENDPOINT, 4, 0x45, 7)]).unwrap();
        let (sw, _) = pump(&mut xsk, Duration::from_millis(500), |sw, _| !sw.is_empty());
        assert!(sw.is_empty(), "nothing is redirected while inactive");
        assert_eq!(steer_sw.stats().standby, 1);

        steer_sw.set_active(true).unwrap();
        steer_in.set_active(true).unwrap();
        // Softwire packets to the endpoint, traffic to another address, and neighbour
        // solicitations to the endpoint.
        let ours: Vec<Vec<u8>> = (0..200).map(|k| v6(ENDPOINT, 4, 0x45, k)).collect();
        let not_ours: Vec<Vec<u8>> = (1000..1050).map(|k| v6(ELSEWHERE, 4, 0x45, k)).collect();
        let nd: Vec<Vec<u8>> = (2000..2005).map(|k| v6(ENDPOINT, 58, 135, k)).collect();
        for set in [&ours, &not_ours, &nd] {
            for chunk in set.chunks(32) {
                let refs: Vec<&[u8]> = chunk.iter().map(|f| f.as_slice()).collect();
                tx_sa.send_batch(&refs).unwrap();
            }
        }
        let (sw, _) = pump(&mut xsk, Duration::from_secs(5), |sw, _| sw.len() >= 200);
        assert_eq!(sw, (0..200).collect::<Vec<u32>>(), "exactly the softwire frames, in order");
        let out = collect(&mut ring_ib, 200, Duration::from_secs(5));
        assert_eq!(
            out.len(),
            ours.len(),
            "all forwarded: {} of {}; tx dropped {}, free {}",
            out.len(),
            ours.len(),
            xsk.tx_dropped(),
            xsk.free_frames()
        );
        assert_eq!(out, ours, "forwarded to the other interface byte for byte");
        let st = steer_sw.stats();
        assert_eq!((st.redirected, st.not_ours >= 50, st.neighbour_discovery), (200, true, 5));
        // An 802.1ad (S-tag) frame to the endpoint: the data plane parses 802.1Q tags
        // only, so the kernel keeps it (as it keeps QinQ).
        // And ICMPv6 the engine does not handle (an echo reply, MLD): the kernel's too.
        let mut stag = v6(ENDPOINT, 4, 0x45, 6000);
        stag.splice(12..12, [0x88, 0xa8, 0x00, 0x64]);
        for (what, frame) in [("an 802.1ad frame", stag), ("an echo reply", v6(ENDPOINT, 58, 129, 6001))] {
            let before = steer_sw.stats();
            tx_sa.send_batch(&[&frame]).unwrap();
            let t = Instant::now();
            while steer_sw.stats().not_ours == before.not_ours && t.elapsed() < Duration::from_secs(2) {
                std::thread::sleep(Duration::from_millis(5));
            }
            pump(&mut xsk, Duration::from_millis(100), |_, _| false);
            assert_eq!(steer_sw.stats().redirected, before.redirected, "{what} is not redirected");
            assert!(steer_sw.stats().not_ours > before.not_ours, "{what}");
        }

        // IPv4 to the pool from the Internet side comes back out on the softwire side;
        // IPv4 elsewhere stays with the kernel.
        let to_pool: Vec<Vec<u8>> = (3000..3100).map(|k| v4(POOL + 7, k)).collect();
        let refs: Vec<&[u8]> = to_pool.iter().map(|f| f.as_slice()).collect();
        tx_ib.send_batch(&refs[..50]).unwrap();
        tx_ib.send_batch(&refs[50..]).unwrap();
        tx_ib.send_batch(&[&v4(0x0a00_0001, 4000)]).unwrap();
        let (_, inet) = pump(&mut xsk, Duration::from_secs(5), |_, i| i.len() >= 100);
        assert_eq!(inet, (3000..3100).collect::<Vec<u32>>());
        assert_eq!(collect(&mut ring_sa, 100, Duration::from_secs(5)), to_pool);

        // Frames made on the side are copied in and sent.
        assert!(xsk.send_copy(Egress::Softwire, &v4(POOL + 9, 5000)));
        xsk.flush();
        assert_eq!(collect(&mut ring_sa, 1, Duration::from_secs(5)), vec![v4(POOL + 9, 5000)]);
        // Many more: the same chunks go round free -> TX ring -> completion -> free
        // dozens of times (as hand-offs between workers do) and every frame still
        // leaves whole (a chunk must come back as its start, not where the frame sat).
        for round in 0..64u32 {
            let frames: Vec<Vec<u8>> = (0..256).map(|k| v4(POOL + 9, 10_000 + round * 256 + k)).collect();
            for f in &frames {
                assert!(xsk.send_copy(Egress::Softwire, f), "round {round}: no room");
            }
            xsk.flush();
            assert_eq!(collect(&mut ring_sa, 256, Duration::from_secs(5)), frames, "round {round}");
        }
        assert_eq!(xsk.tx_dropped(), 0);
        drop(xsk);
        drop(steer_sw);
        drop(steer_in);
    });
    h.join().unwrap();
    // Dropping the program detached it.
    for d in ["sb", "ia"] {
        assert!(!ns.output(&["link", "show", d]).contains("xdp"), "{d} still has an XDP program");
    }
}

#[test]
fn a_program_left_behind_is_removed_before_attaching() {
    if !is_root() {
        return skip("needs root for network namespaces");
    }
    let ns = Netns::new(&format!("dpxdp2-{}", std::process::id()));
    ns.ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]);
    ns.ip(&["link", "set", "va", "up"]);
    ns.ip(&["link", "set", "vb", "up"]);
    // A program attached the old way (netlink, generic mode) by an earlier run.
    let obj = concat!(env!("OUT_DIR"), "/aftr_xdp.o");
    ns.ip(&["link", "set", "dev", "va", "xdpgeneric", "obj", obj, "sec", "xdp"]);
    assert!(ns.output(&["link", "show", "va"]).contains("xdpgeneric"));
    let name = ns.0.clone();
    std::thread::spawn(move || {
        dataplane::io::netns::enter(&name).unwrap();
        let s = Steering::attach("va", Mode::Native).unwrap();
        assert_eq!(s.mode(), Mode::Native);
        let out = Command::new("ip").args(["link", "show", "va"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!text.contains("xdpgeneric") && text.contains("xdp"), "{text}");
    })
    .join()
    .unwrap();
}
