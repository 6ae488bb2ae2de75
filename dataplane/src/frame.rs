//! The contract between the engine and whoever moves frames: a frame in a buffer with
//! headroom, the verdict on it, and the sink for frames made on the side. Shared by the
//! pipeline, the NAT state, the hand-off mesh and the I/O layer, so that none of them
//! needs the engine for these.

use crate::counters::Counter;

pub type WorkerId = u16;

/// Bytes that must precede a frame in its buffer: room for an outer IPv6 header, a VLAN
/// tag and the headers of a generated ICMP error.
pub const HEADROOM: usize = 128;

/// Which side a frame leaves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Egress {
    /// Towards the B4s (IPv6).
    Softwire,
    /// Towards the Internet (IPv4).
    Internet,
}

/// What to do with a processed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the (rewritten) frame.
    Forward(Egress),
    /// Drop it; the reason has been counted.
    Drop(Counter),
    /// Give it to another worker (with `Frame::hint`).
    Handoff(WorkerId),
    /// Not the data plane's: give it to the kernel.
    Pass,
    /// The frame was used up: its content left through the sink (fragments) or is held.
    Consumed,
}

/// What the first fragment of an inbound IPv4 datagram told about its ports, carried
/// with the later fragments, which have no transport header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentPorts {
    /// The destination port (echo identifier for ICMP): finds the session and its worker.
    pub port: u16,
    /// The remote's source port (0 for ICMP): address-and-port-dependent filtering.
    pub remote_port: u16,
}

/// A frame in a buffer with headroom: the bytes are `buf[start..start + len]`.
#[derive(Debug)]
pub struct Frame<'a> {
    pub buf: &'a mut [u8],
    pub start: usize,
    pub len: usize,
    /// For an inbound IPv4 fragment: the ports of its datagram, from the first fragment,
    /// set by the worker that tracks the datagram's fragments (`pipeline::frag`).
    pub hint: Option<FragmentPorts>,
    /// The inside-key hash computed by the batch's first stage, consumed by `process`.
    pub(crate) prehash: Option<u32>,
}

impl<'a> Frame<'a> {
    pub fn new(buf: &'a mut [u8], start: usize, len: usize) -> Self {
        Frame { buf, start, len, hint: None, prehash: None }
    }
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

/// Where frames beyond the one being processed go: outer fragments, held fragments
/// released, packets handed to another worker.
pub trait Sink {
    fn emit(&mut self, egress: Egress, frame: &[u8]);
    fn handoff(&mut self, worker: WorkerId, frame: &[u8], hint: Option<FragmentPorts>);
}

/// A sink that collects copies into vectors (the worker between a batch and the port,
/// tests, benchmarks). Drained with [`VecSink::drain`], the copies' buffers are kept and
/// reused: once warm it allocates nothing.
#[derive(Debug, Default)]
pub struct VecSink {
    pub emitted: Vec<(Egress, Vec<u8>)>,
    pub handed: Vec<(WorkerId, Vec<u8>, Option<FragmentPorts>)>,
    /// Buffers of drained copies, for the next ones.
    spare: Vec<Vec<u8>>,
}

impl VecSink {
    fn copy(&mut self, frame: &[u8]) -> Vec<u8> {
        let mut v = self.spare.pop().unwrap_or_default();
        v.clear();
        v.extend_from_slice(frame);
        v
    }

    /// Gives each frame handed to another worker to `handed`, then each frame emitted to
    /// `emitted`, in order, and keeps their buffers for the next copies.
    pub fn drain(
        &mut self,
        mut handed: impl FnMut(WorkerId, &[u8], Option<FragmentPorts>),
        mut emitted: impl FnMut(Egress, &[u8]),
    ) {
        for (w, f, hint) in self.handed.drain(..) {
            handed(w, &f, hint);
            self.spare.push(f);
        }
        for (e, f) in self.emitted.drain(..) {
            emitted(e, &f);
            self.spare.push(f);
        }
    }
}

impl Sink for VecSink {
    fn emit(&mut self, egress: Egress, frame: &[u8]) {
        let v = self.copy(frame);
        self.emitted.push((egress, v));
    }
    fn handoff(&mut self, worker: WorkerId, frame: &[u8], hint: Option<FragmentPorts>) {
        let v = self.copy(frame);
        self.handed.push((worker, v, hint));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_sink_copies_into_the_buffers_it_kept() {
        let mut sink = VecSink::default();
        sink.emit(Egress::Internet, &[1; 1500]);
        sink.handoff(1, &[2; 100], None);
        let first: Vec<*const u8> = [sink.emitted[0].1.as_ptr(), sink.handed[0].1.as_ptr()].into();
        let (mut handed, mut emitted) = (Vec::new(), Vec::new());
        sink.drain(|w, f, _| handed.push((w, f.to_vec())), |e, f| emitted.push((e, f.to_vec())));
        assert_eq!(handed, vec![(1, vec![2; 100])]);
        assert_eq!(emitted, vec![(Egress::Internet, vec![1; 1500])]);
        assert!(sink.emitted.is_empty() && sink.handed.is_empty());
        // The next copies land in the same two buffers: no allocation once warm.
        sink.emit(Egress::Softwire, &[3; 60]);
        sink.emit(Egress::Softwire, &[4; 60]);
        let again = [sink.emitted[0].1.as_ptr(), sink.emitted[1].1.as_ptr()];
        assert!(again.iter().all(|p| first.contains(p)), "reused");
        assert_eq!(sink.emitted[1].1, vec![4; 60]);
    }
}
