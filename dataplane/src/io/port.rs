//! A worker's port: the AF_XDP sockets or AF_PACKET rings it receives and sends on, and
//! the policy that opens the ports of a board (AF_XDP with its XDP program, or AF_PACKET).

use std::time::Duration;

use arrayvec::ArrayVec;

use crate::config::{EngineConfig, Ipv4Prefix};
use crate::frame::{Egress, Frame, Verdict};
use crate::io::af_packet::{BATCH, PacketRing, PacketTx, RingOptions, wait_any};
use crate::io::xdp::{Mode as XdpMode, Steering, rx_queues};
use crate::io::xsk::{PollMode, XskPair};

/// How a board's workers move packets (docs/decisions/0006-io.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PacketIo {
    /// AF_XDP, and AF_PACKET where the XDP program cannot attach.
    #[default]
    Auto,
    /// AF_XDP only, in this XDP mode (`Auto`: native, else generic).
    AfXdp(XdpMode),
    /// AF_PACKET only.
    AfPacket,
}

/// Packet interfaces of a board and how to drive them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interfaces {
    pub softwire: String,
    pub internet: String,
    pub packet_io: PacketIo,
    pub poll: PollMode,
}

/// A worker's packet I/O.
pub enum Port {
    /// AF_XDP sockets on one RX queue of both interfaces.
    Xdp(Box<XskPair>, PollMode),
    /// AF_PACKET: receive rings (none for a worker of an AF_XDP board that has no RX
    /// queue of its own: it only processes hand-offs) and transmit sockets.
    Packet { rings: Option<(PacketRing, PacketRing)>, sw: PacketTx, inet: PacketTx },
}

impl Port {
    /// Whether the kernel sees the frames this port receives (AF_PACKET taps a copy;
    /// AF_XDP takes them away from it): a frame the engine leaves to the kernel
    /// (`Verdict::Pass`) then reaches it.
    pub fn kernel_sees_frames(&self) -> bool {
        matches!(self, Port::Packet { rings: Some(_), .. })
    }

    /// Waits up to `ms` for frames (a transmit-only port has nothing to wait on; it
    /// naps only when the last round found no work).
    pub fn wait(&self, ms: i32, idle: bool) {
        match self {
            Port::Xdp(x, mode) => x.wait(*mode, ms),
            Port::Packet { rings: Some((a, b)), .. } => {
                let _ = wait_any(&[a, b], ms);
            }
            Port::Packet { rings: None, .. } => {
                if idle {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }

    /// Receives what is waiting on both sides, in batches: `each` processes a batch in
    /// place and fills in its verdicts; forwarded frames are then sent. Returns the
    /// number of frames received.
    pub fn receive(&mut self, mut each: impl FnMut(&mut [Frame], &mut [Verdict])) -> usize {
        let mut n = 0;
        match self {
            Port::Xdp(x, _) => {
                for from in [Egress::Softwire, Egress::Internet] {
                    for _ in 0..8 {
                        let got = x.receive(from, &mut each);
                        n += got;
                        if got == 0 {
                            break;
                        }
                    }
                }
            }
            Port::Packet { rings: Some((a, b)), sw, inet } => {
                let mut verdicts = [Verdict::Pass; BATCH];
                for ring in [a, b] {
                    loop {
                        let got = ring.recv_block(|frames| {
                            let m = frames.len();
                            each(frames, &mut verdicts[..m]);
                            send_forwarded(frames, &verdicts[..m], sw, inet);
                        });
                        n += got;
                        if got == 0 {
                            break;
                        }
                    }
                }
            }
            Port::Packet { rings: None, .. } => {}
        }
        n
    }

    /// Sends the forwarded frames of a batch that is not in this port's own buffers.
    pub fn send_batch(&mut self, frames: &[Frame], verdicts: &[Verdict]) {
        match self {
            Port::Xdp(x, _) => {
                for (f, v) in frames.iter().zip(verdicts) {
                    if let Verdict::Forward(e) = v {
                        x.send_copy(*e, f.bytes());
                    }
                }
            }
            Port::Packet { sw, inet, .. } => send_forwarded(frames, verdicts, sw, inet),
        }
    }

    /// Sends one frame made on the side; false if it could not (no room, or larger
    /// than a UMEM chunk: the caller counts it).
    pub fn send(&mut self, to: Egress, frame: &[u8]) -> bool {
        match self {
            Port::Xdp(x, _) => x.send_copy(to, frame),
            Port::Packet { sw, inet, .. } => {
                if to == Egress::Softwire { sw } else { inet }.send_batch(&[frame]).is_ok_and(|n| n == 1)
            }
        }
    }

    /// Hands what is queued for transmission to the kernel.
    pub fn flush(&mut self) {
        if let Port::Xdp(x, _) = self {
            x.flush();
        }
    }
}

/// Sends the forwarded frames of a batch over AF_PACKET, one call per side.
fn send_forwarded(frames: &[Frame], verdicts: &[Verdict], tx_sw: &PacketTx, tx_in: &PacketTx) {
    let mut out_sw: ArrayVec<&[u8], BATCH> = ArrayVec::new();
    let mut out_in: ArrayVec<&[u8], BATCH> = ArrayVec::new();
    for (f, v) in frames.iter().zip(verdicts) {
        match v {
            Verdict::Forward(Egress::Softwire) => out_sw.push(f.bytes()),
            Verdict::Forward(Egress::Internet) => out_in.push(f.bytes()),
            _ => {}
        }
    }
    let _ = tx_sw.send_batch(&out_sw);
    let _ = tx_in.send_batch(&out_in);
}

/// PACKET_FANOUT group of a board's side (unique per process and slot in a namespace).
fn fanout_group(slot: u32, side: u16) -> u16 {
    ((std::process::id() as u16).wrapping_mul(4) ^ ((slot as u16) << 10)).wrapping_add(side)
}

/// Opens the AF_PACKET port of a worker: with several workers, each has its own rings
/// in a fanout group per side, and what lands on the wrong worker goes to its owner
/// through the hand-off mesh.
fn packet_port(io: &Interfaces, slot: u32, workers: usize, receive: bool) -> std::io::Result<Port> {
    let fan = |side| if workers > 1 { Some(fanout_group(slot, side)) } else { None };
    let rings = if receive {
        Some((
            PacketRing::open(&io.softwire, RingOptions { fanout: fan(0), ..RingOptions::default() })?,
            PacketRing::open(&io.internet, RingOptions { fanout: fan(1), ..RingOptions::default() })?,
        ))
    } else {
        None
    };
    Ok(Port::Packet { rings, sw: PacketTx::open(&io.softwire)?, inet: PacketTx::open(&io.internet)? })
}

/// What the XDP programs steer to the workers: the endpoints and the pools.
pub fn targets(cfg: &EngineConfig) -> (Vec<[u8; 16]>, Vec<Ipv4Prefix>) {
    let endpoints = cfg.instances.iter().map(|i| i.endpoint).collect();
    // The B4s' own addresses are the data plane's too (decision 0019).
    let own = |i: &crate::config::InstanceConfig| {
        i.own_addresses.iter().map(|o| Ipv4Prefix { addr: o.addr, len: 32 }).collect::<Vec<_>>()
    };
    let mut pools: Vec<Ipv4Prefix> = cfg.instances.iter().flat_map(|i| i.pool.iter().copied().chain(own(i))).collect();
    pools.dedup();
    (endpoints, pools)
}

/// Attaches the XDP program to both interfaces and tells it what the board owns.
fn attach_xdp(io: &Interfaces, cfg: &EngineConfig) -> std::io::Result<[Steering; 2]> {
    let mode = match io.packet_io {
        PacketIo::AfXdp(m) => m,
        _ => XdpMode::Auto,
    };
    let (endpoints, pools) = targets(cfg);
    let mut sides = [Steering::attach(&io.softwire, mode)?, Steering::attach(&io.internet, mode)?];
    for s in &mut sides {
        s.set_targets(&endpoints, &pools)?;
    }
    Ok(sides)
}

/// The ports of a board's workers (None: a worker without packets), the XDP programs
/// behind them (empty for AF_PACKET), and a description in words.
pub struct Ports {
    pub ports: Vec<Option<Port>>,
    pub steering: Vec<Steering>,
    pub description: String,
}

impl Ports {
    /// No packet interfaces: workers without packets.
    pub fn none(workers: usize) -> Ports {
        Ports {
            ports: (0..workers).map(|_| None).collect(),
            steering: Vec::new(),
            description: "no packet interfaces configured".into(),
        }
    }

    /// Opens the ports of `workers` workers of board `slot`. AF_XDP unless `io` says
    /// AF_PACKET; `packet-io auto` falls back to AF_PACKET where the program cannot
    /// attach. A port that cannot be opened leaves its worker without packets, said
    /// loudly. The XDP programs start steering frames only if `active`.
    pub fn open(io: &Interfaces, cfg: &EngineConfig, slot: u32, workers: usize, active: bool) -> Result<Ports, String> {
        let n = workers;
        let sides = format!("{} (softwire) and {} (internet)", io.softwire, io.internet);
        let xdp = match io.packet_io {
            PacketIo::AfPacket => None,
            _ => match attach_xdp(io, cfg) {
                Ok(s) => Some(s),
                Err(e) if io.packet_io == PacketIo::Auto => {
                    tracing::warn!("slot {slot}: AF_XDP not available on {sides} ({e}); using AF_PACKET");
                    None
                }
                Err(e) => return Err(format!("AF_XDP on {sides}: {e}")),
            },
        };
        let warn = |id: usize, e: std::io::Error| {
            tracing::error!("worker {id}: cannot open {sides}: {e}; running without packets");
            None
        };
        let unopened = |ports: &[Option<Port>]| {
            ports.iter().all(|p| p.is_none()).then(|| format!("no packets: {sides} cannot be opened"))
        };
        let Some(mut steering) = xdp else {
            let ports: Vec<_> =
                (0..n).map(|id| packet_port(io, slot, n, true).map_or_else(|e| warn(id, e), Some)).collect();
            let description = unopened(&ports).unwrap_or_else(|| format!("AF_PACKET rings on {sides}"));
            return Ok(Ports { ports, steering: Vec::new(), description });
        };
        // One worker per RX queue receives (veth has one); the others process hand-offs.
        let queues = (rx_queues(&io.softwire).min(rx_queues(&io.internet)) as usize).min(n);
        let mut ports = Vec::new();
        for id in 0..n {
            let port = if id < queues {
                XskPair::open(&io.softwire, &io.internet, id as u32).and_then(|x| {
                    let (a, b) = x.fds();
                    steering[0].register(id as u32, a)?;
                    steering[1].register(id as u32, b)?;
                    Ok(Port::Xdp(Box::new(x), io.poll))
                })
            } else {
                packet_port(io, slot, n, false)
            };
            ports.push(port.map_or_else(|e| warn(id, e), Some));
        }
        for s in &mut steering {
            s.set_active(active).map_err(|e| format!("XDP on {}: {e}", s.ifname()))?;
        }
        let description = format!(
            "AF_XDP ({} XDP, {} poll) on {sides}; {queues} of {n} workers on RX queues",
            steering[0].mode(),
            if io.poll == PollMode::Busy { "busy" } else { "blocking" }
        );
        Ok(Ports { ports, steering: steering.into(), description })
    }
}
