//! AF_XDP sockets of one worker: one socket on the softwire interface and one on the
//! Internet interface, bound to the same RX queue index and sharing one UMEM, so that a
//! frame received on one side leaves on the other without a copy in user space (the
//! descriptor moves from one socket's RX ring to the other's TX ring).
//!
//! Frames live in the UMEM: `free` holds the chunks no ring owns. Each side's fill ring
//! is kept topped up from it, and each side's completion ring gives transmitted chunks
//! back to it. A chunk is therefore always in exactly one place: free, in a fill ring,
//! in an RX ring, lent to the caller inside [`XskPair::receive`], or in a TX ring.
//! The rings themselves are `xdpilone`'s (decision 0006).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::num::NonZeroU32;
use std::os::fd::RawFd;
use std::ptr::NonNull;

use arrayvec::ArrayVec;
use xdpilone::xdp::XdpDesc;
use xdpilone::{DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, UmemConfig};

use crate::frame::{Egress, Frame, Verdict};

/// Frames handed to the engine at once.
pub const BATCH: usize = 64;
/// Bytes per UMEM chunk. The kernel puts a received frame 256 bytes in
/// (XDP_PACKET_HEADROOM), more than the engine's headroom (`crate::HEADROOM`).
const CHUNK: u32 = 4096;
/// Where a frame copied into a chunk for transmit starts.
const TX_OFFSET: usize = 256;
/// Ring sizes (descriptors); the UMEM has room for all of them at once.
const RING: u32 = 2048;
const CHUNKS: u32 = 4 * RING;
/// Free chunks never put on a fill ring, so that frames made on the side can be sent.
const TX_RESERVE: usize = 512;

/// An error of step `what` of setting a socket up.
fn failed(what: &'static str) -> impl Fn(xdpilone::Errno) -> io::Error {
    move |e| {
        let os = io::Error::from_raw_os_error(e.get_raw());
        io::Error::new(os.kind(), format!("AF_XDP {what}: {os}"))
    }
}

/// Which side a socket is on; the index into [`XskPair`]'s sides.
fn side_of(e: Egress) -> usize {
    match e {
        Egress::Softwire => 0,
        Egress::Internet => 1,
    }
}

/// Gives the chunks the kernel finished transmitting (completion ring of `fq`) back to
/// `free`, each as its chunk's start whatever offset the frame was sent from.
fn reap(fq: &mut DeviceQueue, free: &mut Vec<u64>) {
    let mut c = fq.complete(RING);
    while let Some(addr) = c.read() {
        free.push(addr - addr % CHUNK as u64);
    }
    c.release();
}

/// Wakes the kernel until it took what is on `tx`. In copy mode each wake-up sends at
/// most 32 frames (the kernel's budget per call); bounded, so that a stuck device does
/// not hold the caller.
fn kick(tx: &RingTx) {
    for _ in 0..RING / 32 + 1 {
        if tx.pending() == 0 || !tx.needs_wakeup() {
            break;
        }
        tx.wake();
    }
}

/// How a worker waits for frames (measured in docs/decisions/0006-io.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PollMode {
    /// Spin on the rings without sleeping, as DPDK and VPP workers do: the worker's
    /// core is the data plane's. A TCP download through aftrd: 139 MB/s.
    #[default]
    Busy,
    /// Sleep in poll(2) while the rings are empty. On veth a frame that arrives while
    /// the worker sleeps is seen 5-25 ms late, and the same download crawls at 15 MB/s;
    /// for boards that must leave their cores idle.
    Block,
}

/// Kernel-side counters of a socket (XDP_STATISTICS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Dropped by the kernel for lack of room in the RX ring.
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    /// The fill ring was empty when a frame arrived.
    pub rx_fill_ring_empty: u64,
    pub tx_ring_empty: u64,
}

struct Side {
    fq: DeviceQueue,
    rx: RingRx,
    tx: RingTx,
    fd: RawFd,
    /// Descriptors put on the TX ring and not yet sent with a wake-up.
    tx_unsent: u32,
}

/// The anonymous mapping behind the UMEM.
struct Area {
    ptr: NonNull<u8>,
    len: usize,
}

impl Area {
    fn new(len: usize) -> io::Result<Area> {
        // SAFETY: a fresh private anonymous mapping; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Area { ptr: NonNull::new(p as *mut u8).expect("mmap does not return null on success"), len })
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `new`; the sockets using it were closed
        // before (XskPair declares `area` last, so it is dropped last).
        unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len) };
    }
}

/// The AF_XDP sockets of one worker on both interfaces.
pub struct XskPair {
    sides: [Side; 2],
    free: Vec<u64>,
    /// Frames dropped because a TX ring was full.
    tx_dropped: u64,
    _umem: Umem,
    area: Area,
}

// SAFETY: the UMEM mapping and the rings belong to this value alone; nothing else in the
// process refers to them, so moving the whole value to another thread moves that
// ownership with it. (xdpilone's types hold raw pointers, hence not Send by default.)
unsafe impl Send for XskPair {}

fn ifinfo(ifname: &str, queue: u32) -> io::Result<IfInfo> {
    let name = CString::new(ifname).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))?;
    let mut info = IfInfo::invalid();
    info.from_name(&name).map_err(failed("interface"))?;
    info.set_queue(queue);
    Ok(info)
}

impl XskPair {
    /// Opens a socket on RX queue `queue` of each interface (softwire, then Internet),
    /// over one UMEM, and fills both fill rings. The sockets receive nothing until an
    /// XDP program redirects to them ([`super::xdp::Steering::register`]).
    pub fn open(softwire: &str, internet: &str, queue: u32) -> io::Result<XskPair> {
        let area = Area::new((CHUNKS * CHUNK) as usize)?;
        let cfg = UmemConfig { fill_size: RING, complete_size: RING, frame_size: CHUNK, headroom: 0, flags: 0 };
        let slice = NonNull::slice_from_raw_parts(area.ptr, area.len);
        // SAFETY: `area` is page aligned (mmap), valid for `len` bytes, and outlives the
        // UMEM: both live in the returned XskPair, where `area` is dropped last.
        let umem = unsafe { Umem::new(cfg, slice) }.map_err(failed("UMEM registration"))?;
        let open_side = |ifname: &str, first: bool| -> io::Result<Side> {
            let info = ifinfo(ifname, queue)?;
            // The first socket is the UMEM's own; the second shares its UMEM.
            let sock =
                if first { Socket::with_shared(&info, &umem) } else { Socket::new(&info) }.map_err(failed("socket"))?;
            // A socket sharing another's UMEM takes its flags from it (the kernel refuses
            // any of its own).
            let rings = SocketConfig {
                rx_size: NonZeroU32::new(RING),
                tx_size: NonZeroU32::new(RING),
                bind_flags: if first { SocketConfig::XDP_BIND_NEED_WAKEUP } else { 0 },
            };
            let fq = umem.fq_cq(&sock).map_err(failed("fill and completion rings"))?;
            let user = umem.rx_tx(&sock, &rings).map_err(failed("RX and TX rings"))?;
            let rx = user.map_rx().map_err(failed("RX ring mapping"))?;
            let tx = user.map_tx().map_err(failed("TX ring mapping"))?;
            umem.bind(&user).map_err(failed("bind"))?;
            let fd = rx.as_raw_fd();
            Ok(Side { fq, rx, tx, fd, tx_unsent: 0 })
        };
        let sw = open_side(softwire, true)?;
        let inet = open_side(internet, false)?;
        let free = (0..CHUNKS as u64).rev().map(|i| i * CHUNK as u64).collect();
        let mut pair = XskPair { sides: [sw, inet], free, tx_dropped: 0, _umem: umem, area };
        pair.refill(0);
        pair.refill(1);
        Ok(pair)
    }

    /// The socket descriptors (softwire, Internet), for the XSKMAP.
    pub fn fds(&self) -> (RawFd, RawFd) {
        (self.sides[0].fd, self.sides[1].fd)
    }

    /// Frames still free (neither in a ring nor lent out).
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// Frames dropped because a TX ring was full.
    pub fn tx_dropped(&self) -> u64 {
        self.tx_dropped
    }

    /// Kernel-side counters of the sockets (softwire, Internet).
    pub fn stats(&self) -> [XskStats; 2] {
        self.sides.each_ref().map(|s| {
            s.fq.statistics_v2()
                .map(|x| XskStats {
                    rx_dropped: x.rx_dropped,
                    rx_invalid_descs: x.rx_invalid_descs,
                    tx_invalid_descs: x.tx_invalid_descs,
                    rx_ring_full: x.rx_ring_full,
                    rx_fill_ring_empty: x.rx_fill_ring_empty_descs,
                    tx_ring_empty: x.tx_ring_empty_descs,
                })
                .unwrap_or_default()
        })
    }

    /// Tops the fill ring of side `s` up from the free chunks, keeping [`TX_RESERVE`]
    /// of them for transmit copies, and wakes the kernel if it asked to be.
    fn refill(&mut self, s: usize) {
        let spare = self.free.len().saturating_sub(TX_RESERVE) as u32;
        if spare == 0 {
            return;
        }
        let side = &mut self.sides[s];
        let n = {
            let mut w = side.fq.fill(spare.min(RING));
            let n = w.insert(self.free.iter().rev().copied());
            w.commit();
            n
        };
        let keep = self.free.len() - n as usize;
        self.free.truncate(keep);
        if side.fq.needs_wakeup() {
            side.fq.wake();
        }
    }

    /// Takes back the chunks both sides finished transmitting.
    fn reap(&mut self) {
        for s in &mut self.sides {
            reap(&mut s.fq, &mut self.free);
        }
    }

    /// Waits until a frame may be waiting on either side, or `timeout_ms` passed.
    pub fn wait(&self, mode: PollMode, timeout_ms: i32) {
        if mode == PollMode::Busy || self.sides.iter().any(|s| s.rx.available() > 0) {
            return;
        }
        let mut fds = self.sides.each_ref().map(|s| libc::pollfd { fd: s.fd, events: libc::POLLIN, revents: 0 });
        // SAFETY: `fds` holds two valid pollfds for the duration of the call.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
    }

    /// Receives up to [`BATCH`] frames from the side of `from`, and lends them to
    /// `each` in place with their verdict slots (the engine fills them in). Afterwards
    /// frames with a `Forward` verdict go onto the TX ring of their side and are sent
    /// (the kernel woken); all others go back to the free chunks, so `each` must copy
    /// what it keeps (hand-offs). Returns the number of frames received.
    pub fn receive(&mut self, from: Egress, mut each: impl FnMut(&mut [Frame], &mut [Verdict])) -> usize {
        self.reap();
        let s = side_of(from);
        let mut descs: ArrayVec<XdpDesc, BATCH> = ArrayVec::new();
        {
            let mut r = self.sides[s].rx.receive(BATCH as u32);
            while let Some(d) = r.read() {
                descs.push(d);
            }
            r.release();
        }
        if descs.is_empty() {
            self.refill(s);
            return 0;
        }
        let n = descs.len();
        let mut verdicts = [Verdict::Pass; BATCH];
        let mut chunks: ArrayVec<u64, BATCH> = ArrayVec::new();
        let mut out: ArrayVec<(usize, XdpDesc), BATCH> = ArrayVec::new();
        {
            let base = self.area.ptr.as_ptr();
            let mut frames: ArrayVec<Frame, BATCH> = ArrayVec::new();
            for d in &descs {
                let chunk = d.addr - d.addr % CHUNK as u64;
                let start = (d.addr - chunk) as usize;
                if chunk + CHUNK as u64 > self.area.len as u64 {
                    continue; // not a chunk of ours: a sound kernel never says so
                }
                if start + d.len as usize > CHUNK as usize {
                    self.free.push(chunk);
                    continue;
                }
                // SAFETY: the chunk lies inside the mapping (checked above), and it is
                // ours: the kernel handed it over on the RX ring and does not touch it
                // until we put it on a fill or TX ring again, which happens only after
                // `frames` (and every borrow of it) is gone at the end of this block.
                // Chunks of one batch are distinct, so the slices do not overlap.
                let buf = unsafe { std::slice::from_raw_parts_mut(base.add(chunk as usize), CHUNK as usize) };
                frames.push(Frame::new(buf, start, d.len as usize));
                chunks.push(chunk);
            }
            let m = frames.len();
            each(&mut frames, &mut verdicts[..m]);
            for ((f, v), &chunk) in frames.iter().zip(&verdicts[..m]).zip(&chunks) {
                match v {
                    Verdict::Forward(e) => {
                        out.push((side_of(*e), XdpDesc { addr: chunk + f.start as u64, len: f.len as u32, options: 0 }))
                    }
                    // Dropped, consumed, handed over (copied) or not ours: free again.
                    _ => self.free.push(chunk),
                }
            }
        }
        // The batch's forwarded frames go onto their TX rings in one write per side, and
        // leave now: a frame waits for no later batch (latency by design, issue 17).
        for side in 0..2 {
            let mut on_side = out.iter().filter(|(to, _)| *to == side).map(|&(_, d)| d).peekable();
            if on_side.peek().is_some() {
                self.push_tx(side, on_side);
                self.kick(side);
            }
        }
        self.refill(s);
        n
    }

    /// Puts the descriptors `ds` on the TX ring of `side` in one write; those a full
    /// ring does not take are dropped frames (their chunks go back to the free ones).
    /// Returns how many went on the ring.
    fn push_tx(&mut self, side: usize, ds: impl Iterator<Item = XdpDesc>) -> u32 {
        let ds: ArrayVec<XdpDesc, BATCH> = ds.collect();
        let s = &mut self.sides[side];
        let queued = {
            let mut w = s.tx.transmit(ds.len() as u32);
            let q = w.insert(ds.iter().copied());
            w.commit();
            q
        };
        s.tx_unsent += queued;
        for d in &ds[queued as usize..] {
            self.free.push(d.addr - d.addr % CHUNK as u64);
            self.tx_dropped += 1;
        }
        queued
    }

    /// Hands what waits on the TX ring of `side` to the kernel (see [`kick`]).
    fn kick(&mut self, side: usize) {
        let s = &mut self.sides[side];
        if s.tx_unsent > 0 {
            s.tx_unsent = 0;
            kick(&s.tx);
        }
    }

    /// Copies `frame` into a free chunk and puts it on the TX ring of `to` (frames made
    /// on the side, or handed over by another worker). False if there was no room, or
    /// the frame is larger than a chunk holds.
    pub fn send_copy(&mut self, to: Egress, frame: &[u8]) -> bool {
        if frame.len() > CHUNK as usize - TX_OFFSET {
            return false;
        }
        if self.free.is_empty() {
            self.reap();
        }
        let Some(chunk) = self.free.pop() else { return false };
        // SAFETY: `chunk` is a free chunk (no ring owns it), inside the mapping, and
        // the copy stays within it (length checked above).
        let dst = unsafe {
            std::slice::from_raw_parts_mut(self.area.ptr.as_ptr().add(chunk as usize + TX_OFFSET), frame.len())
        };
        dst.copy_from_slice(frame);
        let d = XdpDesc { addr: chunk + TX_OFFSET as u64, len: frame.len() as u32, options: 0 };
        self.push_tx(side_of(to), std::iter::once(d)) == 1
    }

    /// Sends what is on the TX rings ([`kick`]), after taking back what was sent
    /// before: the kernel stops sending while a completion ring is full, so a worker
    /// that only transmits (hand-offs, frames made on the side) must reap too.
    pub fn flush(&mut self) {
        self.reap();
        for side in 0..2 {
            self.kick(side);
        }
    }
}

/// A transmit-only AF_XDP socket on one queue of one interface, with a UMEM of its own:
/// the packet generator's (bench). Frames are written straight into free chunks by the
/// caller and sent from there, so the only copy is the kernel's (copy mode).
pub struct XskTx {
    fq: DeviceQueue,
    tx: RingTx,
    free: Vec<u64>,
    _umem: Umem,
    area: Area,
}

// SAFETY: as for XskPair: the mapping and the rings belong to this value alone.
unsafe impl Send for XskTx {}

impl XskTx {
    /// Opens a socket on TX queue `queue` of `ifname`. Needs no XDP program.
    pub fn open(ifname: &str, queue: u32) -> io::Result<XskTx> {
        let area = Area::new((CHUNKS * CHUNK) as usize)?;
        let cfg = UmemConfig { fill_size: RING, complete_size: RING, frame_size: CHUNK, headroom: 0, flags: 0 };
        let slice = NonNull::slice_from_raw_parts(area.ptr, area.len);
        // SAFETY: `area` is page aligned (mmap), valid for `len` bytes, and outlives the
        // UMEM: both live in the returned XskTx, where `area` is dropped last.
        let umem = unsafe { Umem::new(cfg, slice) }.map_err(failed("UMEM registration"))?;
        let info = ifinfo(ifname, queue)?;
        let sock = Socket::with_shared(&info, &umem).map_err(failed("socket"))?;
        let rings = SocketConfig {
            rx_size: None,
            tx_size: NonZeroU32::new(RING),
            bind_flags: SocketConfig::XDP_BIND_NEED_WAKEUP,
        };
        let fq = umem.fq_cq(&sock).map_err(failed("fill and completion rings"))?;
        let user = umem.rx_tx(&sock, &rings).map_err(failed("TX ring"))?;
        let tx = user.map_tx().map_err(failed("TX ring mapping"))?;
        umem.bind(&user).map_err(failed("bind"))?;
        let free = (0..CHUNKS as u64).rev().map(|i| i * CHUNK as u64).collect();
        Ok(XskTx { fq, tx, free, _umem: umem, area })
    }

    /// Writes up to `max` frames, each by `make` into a free chunk (it returns the
    /// frame's length, at most the chunk's 4096 bytes; 0 ends the batch early), puts them on the TX
    /// ring and wakes the kernel until it took them. Returns the frames queued: fewer
    /// than `max` when the ring or the free chunks ran out.
    pub fn send(&mut self, max: usize, mut make: impl FnMut(&mut [u8]) -> usize) -> usize {
        reap(&mut self.fq, &mut self.free);
        let room = (RING - self.tx.pending()) as usize;
        let n = max.min(self.free.len()).min(room);
        let base = self.area.ptr.as_ptr();
        let mut descs: ArrayVec<XdpDesc, BATCH> = ArrayVec::new();
        for _ in 0..n.min(BATCH) {
            let chunk = *self.free.last().expect("n <= free.len()");
            // SAFETY: `chunk` is a free chunk (on no ring), inside the mapping; the slice
            // is that chunk and lives only during `make`.
            let buf = unsafe { std::slice::from_raw_parts_mut(base.add(chunk as usize), CHUNK as usize) };
            let len = make(buf).min(CHUNK as usize);
            if len == 0 {
                break;
            }
            self.free.pop();
            descs.push(XdpDesc { addr: chunk, len: len as u32, options: 0 });
        }
        let queued = {
            let mut w = self.tx.transmit(descs.len() as u32);
            let q = w.insert(descs.iter().copied());
            w.commit();
            q as usize
        };
        // Whatever the ring did not take goes back to the free chunks.
        for d in &descs[queued..] {
            self.free.push(d.addr);
        }
        kick(&self.tx);
        queued
    }
}
