//! Handing frames to the worker that owns them (DESIGN.md: a packet received elsewhere
//! is handed to the owner).
//!
//! Every (sender, receiver) pair of workers has its own lane: a bounded channel of
//! frames and a pool of buffers allocated at start that come back through a second
//! channel once the receiver is done, so nothing is allocated while packets flow and no
//! lane is shared by two senders. A full lane refuses at once ([`HandoffFull`]): the
//! sender counts it and goes on; receive paths never block. Receivers drain in batches.

use arrayvec::ArrayVec;
use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::engine::{Frame, HEADROOM, WorkerId};

/// The owner's lane is full (or all its buffers are in flight); the frame was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("handoff lane to worker {0} is full")]
pub struct HandoffFull(pub WorkerId);

/// A frame in transit between workers.
struct Packet {
    buf: Box<[u8]>,
    len: usize,
    hint: Option<u16>,
}

struct Lane {
    tx: Sender<Packet>,
    free: Receiver<Box<[u8]>>,
}

struct InLane {
    rx: Receiver<Packet>,
    free: Sender<Box<[u8]>>,
}

/// One worker's end of the mesh: lanes to every other worker and from every other.
pub struct Mailbox {
    me: WorkerId,
    out: Vec<Option<Lane>>,
    inbox: Vec<Option<InLane>>,
    frame_size: usize,
}

/// Builds the mailboxes of `workers` workers, `depth` frames of up to `frame_size`
/// bytes per lane.
pub fn mesh(workers: u16, depth: usize, frame_size: usize) -> Vec<Mailbox> {
    let n = workers as usize;
    let mut boxes: Vec<Mailbox> = (0..n)
        .map(|me| Mailbox {
            me: me as WorkerId,
            out: (0..n).map(|_| None).collect(),
            inbox: (0..n).map(|_| None).collect(),
            frame_size,
        })
        .collect();
    for from in 0..n {
        for to in 0..n {
            if from == to {
                continue;
            }
            let (tx, rx) = crossbeam_channel::bounded(depth);
            let (free_tx, free_rx) = crossbeam_channel::bounded(depth);
            for _ in 0..depth {
                free_tx.send(vec![0u8; HEADROOM + frame_size].into_boxed_slice()).expect("room for the pool");
            }
            boxes[from].out[to] = Some(Lane { tx, free: free_rx });
            boxes[to].inbox[from] = Some(InLane { rx, free: free_tx });
        }
    }
    boxes
}

impl Mailbox {
    pub fn worker(&self) -> WorkerId {
        self.me
    }

    /// Copies `frame` into a buffer of the lane to `to` and sends it. Never blocks.
    pub fn send(&self, to: WorkerId, frame: &[u8], hint: Option<u16>) -> Result<(), HandoffFull> {
        let lane = self.out.get(to as usize).and_then(|l| l.as_ref()).ok_or(HandoffFull(to))?;
        if frame.len() > self.frame_size {
            return Err(HandoffFull(to));
        }
        let mut buf = lane.free.try_recv().map_err(|_| HandoffFull(to))?;
        buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        lane.tx.try_send(Packet { buf, len: frame.len(), hint }).map_err(|_| HandoffFull(to))
    }

    /// Receives up to `max` frames from all lanes, calling `each` on every one (as a
    /// [`Frame`] with headroom, ready for [`crate::Engine::process`]). Returns how many.
    pub fn receive(&self, max: usize, mut each: impl FnMut(&mut Frame)) -> usize {
        self.receive_batch(max, |frames| frames.iter_mut().for_each(&mut each))
    }

    /// Receives up to `max` frames from all lanes, handing them to `each` in batches of
    /// at most [`BATCH`] (for [`crate::Engine::process_batch`] and one transmit call).
    pub fn receive_batch(&self, max: usize, mut each: impl FnMut(&mut [Frame])) -> usize {
        let mut got = 0;
        for lane in self.inbox.iter().flatten() {
            while got < max {
                let mut packets: ArrayVec<Packet, BATCH> = ArrayVec::new();
                while packets.len() < BATCH && got + packets.len() < max {
                    match lane.rx.try_recv() {
                        Ok(p) => packets.push(p),
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                }
                if packets.is_empty() {
                    break;
                }
                got += packets.len();
                {
                    let mut frames: ArrayVec<Frame, BATCH> = packets
                        .iter_mut()
                        .map(|p| {
                            let mut f = Frame::new(&mut p.buf, HEADROOM, p.len);
                            f.hint = p.hint;
                            f
                        })
                        .collect();
                    each(&mut frames);
                }
                // The pool holds exactly the lane's buffers: this never fails while the
                // sender lives, and a dead sender needs none back.
                for p in packets {
                    let _ = lane.free.try_send(p.buf);
                }
            }
        }
        got
    }
}

/// Frames handed to the engine at once.
pub const BATCH: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_reach_the_owner_and_a_full_lane_refuses() {
        let m = mesh(3, 4, 256);
        for k in 0..4u8 {
            m[0].send(2, &[k; 60], Some(k as u16)).unwrap();
        }
        assert_eq!(m[0].send(2, &[9; 60], None), Err(HandoffFull(2)), "depth 4");
        m[1].send(2, &[7; 60], None).unwrap();
        assert_eq!(m[0].send(0, &[1; 60], None), Err(HandoffFull(0)), "no lane to itself");
        assert_eq!(m[0].send(1, &[1; 300], None), Err(HandoffFull(1)), "too big");
        let mut seen = vec![];
        assert_eq!(m[2].receive(64, |f| seen.push((f.bytes()[0], f.len, f.hint, f.start))), 5);
        assert_eq!(seen[0], (0, 60, Some(0), HEADROOM));
        assert!(seen.contains(&(7, 60, None, HEADROOM)));
        // Buffers came back: the lane takes four more.
        for k in 0..4u8 {
            m[0].send(2, &[k; 60], None).unwrap();
        }
        assert_eq!(m[2].receive(2, |_| {}), 2, "at most max per call");
    }

    #[test]
    fn lanes_work_across_threads() {
        let mut m = mesh(2, 64, 128);
        let rx = m.pop().unwrap();
        let tx = m.pop().unwrap();
        let t = std::thread::spawn(move || {
            let mut sent = 0u32;
            let mut full = 0u32;
            for k in 0..10_000u32 {
                match tx.send(1, &k.to_be_bytes(), None) {
                    Ok(()) => sent += 1,
                    Err(_) => full += 1,
                }
            }
            (sent, full)
        });
        let mut got = 0u32;
        let mut last = None;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            rx.receive(64, |f| {
                let v = u32::from_be_bytes(f.bytes()[..4].try_into().unwrap());
                assert!(last.is_none_or(|l| v > l), "in order");
                last = Some(v);
                got += 1;
            });
            if t.is_finished() {
                break;
            }
            assert!(std::time::Instant::now() < deadline);
        }
        rx.receive(usize::MAX, |_| got += 1);
        let (sent, full) = t.join().unwrap();
        assert_eq!(sent + full, 10_000);
        assert_eq!(got, sent, "every frame sent arrived once; refusals were reported");
    }
}
