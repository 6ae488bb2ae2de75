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

/// A sink that collects into vectors (tests, benchmarks, slow paths).
#[derive(Debug, Default)]
pub struct VecSink {
    pub emitted: Vec<(Egress, Vec<u8>)>,
    pub handed: Vec<(WorkerId, Vec<u8>, Option<FragmentPorts>)>,
}

impl Sink for VecSink {
    fn emit(&mut self, egress: Egress, frame: &[u8]) {
        self.emitted.push((egress, frame.to_vec()));
    }
    fn handoff(&mut self, worker: WorkerId, frame: &[u8], hint: Option<FragmentPorts>) {
        self.handed.push((worker, frame.to_vec(), hint));
    }
}
