//! Handing frames to the worker that owns them (DESIGN.md: a packet received elsewhere
//! is handed to the owner).
//!
//! Every (sender, receiver) pair of workers has its own lane, so no lane is shared by
//! two senders. Frames travel in batches: the sender copies each frame into a slot of
//! the lane's open batch, and a batch crosses to the receiver when it is full or when
//! the sender [`Mailbox::flush`]es (the worker does after each round of received
//! batches). A frame waits for the end of its sender's round, and, while the receiver
//! is behind (half the lane's batches queued), until its batch fills or the receiver
//! catches up: never longer than the receiver makes it wait anyway. Batches come from a pool allocated at start and go
//! back through a second channel once the receiver is done, so nothing is allocated
//! while packets flow, and the channels' synchronisation is paid once a batch rather
//! than once a frame (measured by engine-bench's scaling rows: per-frame sends cost
//! two workers at 50% hand-offs half of one worker's rate). A lane with no free batch
//! refuses at once ([`HandoffFull`]): the sender counts it and goes on; receive paths
//! never block. The receiver processes the frames in place in the batch's slots.

use std::cell::RefCell;

use arrayvec::ArrayVec;
use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::frame::{FragmentPorts, Frame, HEADROOM, WorkerId};

/// The owner's lane is full (or all its buffers are in flight); the frame was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("handoff lane to worker {0} is full")]
pub struct HandoffFull(pub WorkerId);

/// Frames handed to the engine at once.
pub const BATCH: usize = 64;
/// The most one batch of a lane holds: a worker's receive batch (32 frames), so that a
/// batch flushed after each received batch is not mostly empty slots.
const LANE_BATCH: usize = 32;

/// Frames in transit between two workers: `slots` buffers of `HEADROOM + frame_size`
/// bytes, one after the other, of which the first `frames.len()` are filled.
struct Batch {
    buf: Box<[u8]>,
    /// (length, hint) of each filled slot.
    frames: ArrayVec<(usize, Option<FragmentPorts>), LANE_BATCH>,
}

struct Lane {
    tx: Sender<Box<Batch>>,
    free: Receiver<Box<Batch>>,
    /// The batch being filled, sent on flush or when full.
    open: RefCell<Option<Box<Batch>>>,
}

struct InLane {
    rx: Receiver<Box<Batch>>,
    free: Sender<Box<Batch>>,
}

/// One worker's end of the mesh: lanes to every other worker and from every other.
/// Used by its worker thread alone (it may move to that thread, but is not shared).
pub struct Mailbox {
    me: WorkerId,
    out: Vec<Option<Lane>>,
    inbox: Vec<Option<InLane>>,
    frame_size: usize,
    /// Slots per batch.
    slots: usize,
    /// Batches per lane.
    batches: usize,
}

/// Builds the mailboxes of `workers` workers: up to `depth` frames of up to
/// `frame_size` bytes in flight per lane, in batches of up to 32.
pub fn mesh(workers: u16, depth: usize, frame_size: usize) -> Vec<Mailbox> {
    let n = workers as usize;
    let slots = depth.clamp(1, LANE_BATCH);
    let batches = depth.div_ceil(slots).max(1);
    let mut boxes: Vec<Mailbox> = (0..n)
        .map(|me| Mailbox {
            me: me as WorkerId,
            out: (0..n).map(|_| None).collect(),
            inbox: (0..n).map(|_| None).collect(),
            frame_size,
            slots,
            batches,
        })
        .collect();
    for from in 0..n {
        for to in 0..n {
            if from == to {
                continue;
            }
            let (tx, rx) = crossbeam_channel::bounded(batches);
            let (free_tx, free_rx) = crossbeam_channel::bounded(batches);
            for _ in 0..batches {
                let buf = vec![0u8; (HEADROOM + frame_size) * slots].into_boxed_slice();
                free_tx.send(Box::new(Batch { buf, frames: ArrayVec::new() })).expect("room for the pool");
            }
            boxes[from].out[to] = Some(Lane { tx, free: free_rx, open: RefCell::new(None) });
            boxes[to].inbox[from] = Some(InLane { rx, free: free_tx });
        }
    }
    boxes
}

impl Mailbox {
    pub fn worker(&self) -> WorkerId {
        self.me
    }

    fn slot(&self) -> usize {
        HEADROOM + self.frame_size
    }

    /// Copies `frame` into the open batch of the lane to `to`; the batch is sent when
    /// full, or at the next [`Mailbox::flush`]. Never blocks.
    pub fn send(&self, to: WorkerId, frame: &[u8], hint: Option<FragmentPorts>) -> Result<(), HandoffFull> {
        let lane = self.out.get(to as usize).and_then(|l| l.as_ref()).ok_or(HandoffFull(to))?;
        if frame.len() > self.frame_size {
            return Err(HandoffFull(to));
        }
        let mut open = lane.open.borrow_mut();
        if open.is_none() {
            *open = Some(lane.free.try_recv().map_err(|_| HandoffFull(to))?);
        }
        let batch = open.as_mut().expect("a batch is open");
        let at = batch.frames.len() * self.slot() + HEADROOM;
        batch.buf[at..at + frame.len()].copy_from_slice(frame);
        batch.frames.push((frame.len(), hint));
        if batch.frames.len() == self.slots {
            let full = open.take().expect("a batch is open");
            // The channel holds every batch of the pool: it cannot be full.
            let _ = lane.tx.try_send(full);
        }
        Ok(())
    }

    /// Sends every lane's open batch, unless the receiver is behind: while half of a
    /// lane's batches wait for it, the open batch stays open and fills up, so that a
    /// slow receiver gets full batches (the lane then holds its whole depth in frames,
    /// not one frame a batch) and a frame waits no longer than the receiver makes it.
    pub fn flush(&self) {
        for lane in self.out.iter().flatten() {
            let mut open = lane.open.borrow_mut();
            if open.is_some() && lane.tx.len() * 2 < self.batches {
                let _ = lane.tx.try_send(open.take().expect("a batch is open"));
            }
        }
    }

    /// Sends every lane's open batch, whatever the receiver's backlog (at the end of a
    /// run, or in tests).
    pub fn flush_all(&self) {
        for lane in self.out.iter().flatten() {
            if let Some(b) = lane.open.borrow_mut().take() {
                let _ = lane.tx.try_send(b);
            }
        }
    }

    /// Receives frames from all lanes, calling `each` on every one (as a [`Frame`] with
    /// headroom, ready for [`crate::Engine::process`]). Returns how many.
    pub fn receive(&self, max: usize, mut each: impl FnMut(&mut Frame)) -> usize {
        self.receive_batch(max, |frames| frames.iter_mut().for_each(&mut each))
    }

    /// Receives whole batches from all lanes until `max` frames or more have come,
    /// handing each to `each` (for [`crate::Engine::process_batch`] and one transmit
    /// call), in place in the batch's slots. Returns how many frames.
    pub fn receive_batch(&self, max: usize, mut each: impl FnMut(&mut [Frame])) -> usize {
        let mut got = 0;
        let slot = self.slot();
        for lane in self.inbox.iter().flatten() {
            while got < max {
                let mut batch = match lane.rx.try_recv() {
                    Ok(b) => b,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                };
                got += batch.frames.len();
                {
                    let Batch { buf, frames } = &mut *batch;
                    // The frames were written on the sender's core: ask for their headers
                    // all at once rather than one cache miss after another.
                    for (k, &(len, _)) in frames.iter().enumerate() {
                        let at = k * slot + HEADROOM;
                        for line in (at..at + len.min(128)).step_by(64) {
                            crate::prefetch::prefetch(buf[line..].as_ptr());
                        }
                    }
                    let mut views: ArrayVec<Frame, LANE_BATCH> = buf
                        .chunks_mut(slot)
                        .zip(frames.iter())
                        .map(|(b, &(len, hint))| {
                            let mut f = Frame::new(b, HEADROOM, len);
                            f.hint = hint;
                            f
                        })
                        .collect();
                    each(&mut views);
                }
                batch.frames.clear();
                // The pool holds exactly the lane's batches: this never fails while the
                // sender lives, and a dead sender needs none back.
                let _ = lane.free.try_send(batch);
            }
        }
        got
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_reach_the_owner_and_a_full_lane_refuses() {
        let m = mesh(3, 4, 256);
        for k in 0..4u8 {
            m[0].send(2, &[k; 60], Some(FragmentPorts { port: k as u16, remote_port: 1 })).unwrap();
        }
        assert_eq!(m[0].send(2, &[9; 60], None), Err(HandoffFull(2)), "depth 4");
        m[1].send(2, &[7; 60], None).unwrap();
        assert_eq!(m[0].send(0, &[1; 60], None), Err(HandoffFull(0)), "no lane to itself");
        assert_eq!(m[0].send(1, &[1; 300], None), Err(HandoffFull(1)), "too big");
        let mut seen = vec![];
        // The full batch of four went at once; the lone frame of worker 1 waits for a flush.
        assert_eq!(m[2].receive(64, |f| seen.push((f.bytes()[0], f.len, f.hint, f.start))), 4);
        m[1].flush();
        assert_eq!(m[2].receive(64, |f| seen.push((f.bytes()[0], f.len, f.hint, f.start))), 1);
        assert_eq!(seen[0], (0, 60, Some(FragmentPorts { port: 0, remote_port: 1 }), HEADROOM));
        assert_eq!(seen[3], (3, 60, Some(FragmentPorts { port: 3, remote_port: 1 }), HEADROOM));
        assert_eq!(seen[4], (7, 60, None, HEADROOM));
        // Buffers came back: the lane takes four more, and a receive takes whole batches.
        for k in 0..4u8 {
            m[0].send(2, &[k; 60], None).unwrap();
        }
        assert_eq!(m[2].receive(2, |_| {}), 4, "whole batches");
        assert_eq!(m[2].receive(2, |_| {}), 0);
    }

    #[test]
    fn a_flushed_partial_batch_arrives_and_its_batch_returns() {
        let m = mesh(2, 128, 256);
        for round in 0..10u8 {
            for k in 0..3u8 {
                m[0].send(1, &[round, k], None).unwrap();
            }
            assert_eq!(m[1].receive(usize::MAX, |_| {}), 0, "nothing before the flush");
            m[0].flush();
            let mut seen = vec![];
            assert_eq!(m[1].receive(usize::MAX, |f| seen.push(f.bytes().to_vec())), 3);
            assert_eq!(seen, vec![vec![round, 0], vec![round, 1], vec![round, 2]]);
        }
    }

    #[test]
    fn a_receiver_that_is_behind_gets_full_batches() {
        // 4 batches of 32: flushing after every frame while nobody receives sends two
        // one-frame batches, then keeps filling the open one instead of wasting more.
        let m = mesh(2, 128, 256);
        let mut sent = 0;
        while m[0].send(1, &[1; 60], None).is_ok() {
            m[0].flush();
            sent += 1;
        }
        assert_eq!(sent, 2 + 32 + 32, "two flushed singles, then full batches");
        m[0].flush_all();
        assert_eq!(m[1].receive(usize::MAX, |_| {}), sent);
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
            tx.flush_all();
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
