//! AF_PACKET with a TPACKET_V3 receive ring (the kernel writes frames into blocks of a
//! shared mapping; one wake-up per block, not per frame) and `sendmmsg` for transmit,
//! bypassing the qdisc. The fallback I/O path for interfaces where XDP cannot attach.
//!
//! Frames are handed to the engine in place, inside the ring, in batches:
//! `PACKET_RESERVE` leaves `HEADROOM` bytes before each frame, so the engine can add
//! the outer IPv6 header there. A block goes back to the kernel only after every frame
//! of it was handed out and the caller's closure returned, so nothing refers to a block
//! the kernel may rewrite. Hot path: no allocation.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use arrayvec::ArrayVec;

use crate::frame::{Frame, HEADROOM};

/// Frames handed to the engine at once.
pub const BATCH: usize = 64;

/// Ring geometry.
#[derive(Debug, Clone, Copy)]
pub struct RingOptions {
    /// Bytes per block (a power of two, a multiple of the page size).
    pub block_size: usize,
    pub blocks: usize,
    /// A partly filled block is handed over after this many milliseconds.
    pub block_timeout_ms: u32,
    /// Join this PACKET_FANOUT group (hash mode): the kernel spreads the interface's
    /// frames over the rings of the group, keeping a flow on one ring.
    pub fanout: Option<u16>,
}

impl Default for RingOptions {
    fn default() -> Self {
        RingOptions { block_size: 1 << 18, blocks: 16, block_timeout_ms: 1, fanout: None }
    }
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn setopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` points to a live, initialised value of exactly the size passed.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            v as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// The index of interface `name`.
pub fn ifindex(name: &str) -> io::Result<i32> {
    let c = CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name with a NUL"))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 { Err(io::Error::last_os_error()) } else { Ok(i as i32) }
}

fn packet_socket(protocol: u16, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before it is owned.
    let raw = cvt(unsafe {
        libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC | flags, protocol.to_be() as libc::c_int)
    })?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Sends frames on `fd` out of `ifindex` in one `sendmmsg`; returns how many went out.
fn send_batch(fd: &OwnedFd, ifindex: i32, frames: &[&[u8]]) -> io::Result<usize> {
    if frames.is_empty() {
        return Ok(0);
    }
    // SAFETY: sockaddr_ll is plain data; zeroed is valid, then filled in.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex;
    sll.sll_halen = 6;
    let mut iov: ArrayVec<libc::iovec, BATCH> = ArrayVec::new();
    let mut msgs: ArrayVec<libc::mmsghdr, BATCH> = ArrayVec::new();
    let mut sent = 0;
    for chunk in frames.chunks(BATCH) {
        iov.clear();
        msgs.clear();
        for f in chunk {
            iov.push(libc::iovec { iov_base: f.as_ptr() as *mut libc::c_void, iov_len: f.len() });
        }
        for v in iov.iter_mut() {
            // SAFETY: msghdr is plain data; zeroed is valid, then filled in.
            let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
            h.msg_name = &mut sll as *mut _ as *mut libc::c_void;
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            h.msg_iov = v;
            h.msg_iovlen = 1;
            msgs.push(libc::mmsghdr { msg_hdr: h, msg_len: 0 });
        }
        // SAFETY: every msghdr points at `sll` and at one iovec over a frame borrowed for
        // the whole call; the kernel only reads them.
        let r = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), msgs.len() as u32, 0) };
        if r < 0 {
            return if sent > 0 { Ok(sent) } else { Err(io::Error::last_os_error()) };
        }
        sent += r as usize;
    }
    Ok(sent)
}

/// An AF_PACKET socket bound to one interface, with its receive ring.
pub struct PacketRing {
    fd: OwnedFd,
    ifindex: i32,
    map: *mut u8,
    map_len: usize,
    opts: RingOptions,
    block: usize,
}

// SAFETY: the mapping belongs to this value alone (it is unmapped in Drop) and is only
// reached through `&mut self` or atomics; moving the value moves that ownership.
unsafe impl Send for PacketRing {}

impl PacketRing {
    pub fn open(ifname: &str, opts: RingOptions) -> io::Result<PacketRing> {
        let ifindex = ifindex(ifname)?;
        let fd = packet_socket(libc::ETH_P_ALL as u16, libc::SOCK_NONBLOCK)?;
        setopt(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &(libc::tpacket_versions::TPACKET_V3 as libc::c_int))?;
        setopt(&fd, libc::SOL_PACKET, libc::PACKET_RESERVE, &(HEADROOM as libc::c_uint))?;
        // Our own transmissions are not received again.
        setopt(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &(1 as libc::c_int))?;
        setopt(&fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &(1 as libc::c_int))?;
        let frame_size = 2048u32;
        let req = libc::tpacket_req3 {
            tp_block_size: opts.block_size as u32,
            tp_block_nr: opts.blocks as u32,
            tp_frame_size: frame_size,
            tp_frame_nr: (opts.block_size * opts.blocks) as u32 / frame_size,
            tp_retire_blk_tov: opts.block_timeout_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setopt(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)?;
        let map_len = opts.block_size * opts.blocks;
        // SAFETY: maps the ring the kernel just allocated for this socket; the result is
        // checked, and the mapping lives until Drop unmaps it.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ring = PacketRing { fd, ifindex, map: map as *mut u8, map_len, opts, block: 0 };
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value, then filled in.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
        cvt(unsafe {
            libc::bind(
                ring.fd.as_raw_fd(),
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        })?;
        if let Some(group) = opts.fanout {
            // Hash mode keeps a flow on one ring; DEFRAG keeps the fragments of a datagram
            // together for that choice (each still arrives as it was sent).
            let arg = group as libc::c_uint | ((libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG) << 16);
            setopt(&ring.fd, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg)?;
        }
        Ok(ring)
    }

    /// The status word of block `b`, shared with the kernel.
    fn status(&self, b: usize) -> &AtomicU32 {
        // SAFETY: block `b` lies inside the mapping (b < blocks); `block_status` is the
        // first u32 of its tpacket_hdr_v1, 8 bytes into the block (after `version` and
        // `offset_to_priv`), aligned to 4. The kernel and we access it atomically.
        unsafe { &*(self.map.add(b * self.opts.block_size + 8) as *const AtomicU32) }
    }

    fn ready(&self) -> bool {
        self.status(self.block).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    /// The frames of block `b` (ready, ours): where each starts (HEADROOM bytes before
    /// its first byte), its length, and the kernel's receive time in ns (CLOCK_REALTIME).
    fn spans(block: &[u8]) -> ArrayVec<(usize, usize, u64), 1024> {
        fn rd(b: &[u8], at: usize) -> usize {
            u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
        }
        let num = rd(block, 12);
        // tpacket3_hdr: next_offset @0, sec @4, nsec @8, snaplen @12, mac @24.
        let mut spans = ArrayVec::new();
        let mut at = rd(block, 16);
        for _ in 0..num {
            if at + 28 > block.len() || spans.is_full() {
                break;
            }
            let next = rd(block, at);
            let ts = rd(block, at + 4) as u64 * 1_000_000_000 + rd(block, at + 8) as u64;
            let snap = rd(block, at + 12);
            let mac = u16::from_ne_bytes([block[at + 24], block[at + 25]]) as usize;
            if mac >= HEADROOM && at + mac + snap <= block.len() {
                spans.push((at + mac - HEADROOM, snap, ts));
            }
            if next == 0 {
                break;
            }
            at += next;
        }
        spans
    }

    /// The next ready block, if any: handed to `use_block` (ours while it runs), then
    /// given back to the kernel.
    fn with_block<R>(&mut self, use_block: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        if !self.ready() {
            return None;
        }
        let b = self.block;
        // SAFETY: the block is ours while its status says TP_STATUS_USER (the kernel
        // does not write it until we hand it back below), and it lies inside the mapping.
        let block =
            unsafe { std::slice::from_raw_parts_mut(self.map.add(b * self.opts.block_size), self.opts.block_size) };
        let r = use_block(block);
        self.status(b).store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.block = (b + 1) % self.opts.blocks;
        Some(r)
    }

    /// Hands the frames of the next ready block to `each`, in batches of at most
    /// [`BATCH`] (in place, with `HEADROOM` bytes before each), then returns the block
    /// to the kernel. Returns the number of frames, 0 if no block is ready.
    pub fn recv_block(&mut self, mut each: impl FnMut(&mut [Frame])) -> usize {
        self.with_block(|block| {
            let spans = Self::spans(block);
            // Cut the block into disjoint frames, a batch at a time.
            let mut n = 0;
            let mut rest: &mut [u8] = block;
            let mut consumed = 0;
            for chunk in spans.chunks(BATCH) {
                let mut frames: ArrayVec<Frame, BATCH> = ArrayVec::new();
                for &(from, len, _) in chunk {
                    let r = std::mem::take(&mut rest);
                    let (_, tail) = r.split_at_mut(from - consumed);
                    let (frame, after) = tail.split_at_mut(HEADROOM + len);
                    frames.push(Frame::new(frame, HEADROOM, len));
                    consumed = from + HEADROOM + len;
                    rest = after;
                }
                n += frames.len();
                each(&mut frames);
            }
            n
        })
        .unwrap_or(0)
    }

    /// Hands each frame of the next ready block to `each` with the time the kernel
    /// received it (ns, CLOCK_REALTIME), then returns the block to the kernel. Returns
    /// the number of frames, 0 if no block is ready. For taps, not for the data path.
    pub fn recv_stamped(&mut self, mut each: impl FnMut(&[u8], u64)) -> usize {
        self.with_block(|block| {
            let spans = Self::spans(block);
            for &(from, len, ts) in &spans {
                each(&block[from + HEADROOM..from + HEADROOM + len], ts);
            }
            spans.len()
        })
        .unwrap_or(0)
    }

    /// Keeps only the frames `filter` (classic BPF) accepts; the others cost the kernel
    /// one run of the filter and are not copied into the ring.
    pub fn set_filter(&self, filter: &[FilterInsn]) -> io::Result<()> {
        attach_filter(&self.fd, filter)
    }

    /// Sends frames out of this ring's interface; returns how many went out.
    pub fn send_batch(&self, frames: &[&[u8]]) -> io::Result<usize> {
        send_batch(&self.fd, self.ifindex, frames)
    }

    /// Waits until a block may be ready or `timeout_ms` passed.
    pub fn wait(&self, timeout_ms: i32) -> io::Result<()> {
        wait_any(&[self], timeout_ms)
    }
}

/// Waits until one of `rings` may have a block ready, or `timeout_ms` passed.
pub fn wait_any(rings: &[&PacketRing], timeout_ms: i32) -> io::Result<()> {
    if rings.iter().any(|r| r.ready()) {
        return Ok(());
    }
    let mut fds: ArrayVec<libc::pollfd, 8> = rings
        .iter()
        .take(8)
        .map(|r| libc::pollfd { fd: r.fd.as_raw_fd(), events: libc::POLLIN | libc::POLLERR, revents: 0 })
        .collect();
    // SAFETY: `fds` holds valid pollfds for the duration of the call.
    cvt(unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) })?;
    Ok(())
}

impl Drop for PacketRing {
    fn drop(&mut self) {
        // SAFETY: `map`/`map_len` are exactly what mmap returned in `open`, and no frame
        // borrows it any more (frames only live inside `recv_block`).
        unsafe { libc::munmap(self.map as *mut libc::c_void, self.map_len) };
    }
}

/// A transmit-only AF_PACKET socket on one interface (qdisc bypassed), usable while a
/// ring on the same interface is lending out its frames.
pub struct PacketTx {
    fd: OwnedFd,
    ifindex: i32,
}

impl PacketTx {
    pub fn open(ifname: &str) -> io::Result<PacketTx> {
        let ifindex = ifindex(ifname)?;
        // Protocol 0: this socket receives nothing.
        let fd = packet_socket(0, 0)?;
        setopt(&fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &(1 as libc::c_int))?;
        Ok(PacketTx { fd, ifindex })
    }

    /// Sends frames in as few system calls as possible; returns how many went out.
    pub fn send_batch(&self, frames: &[&[u8]]) -> io::Result<usize> {
        send_batch(&self.fd, self.ifindex, frames)
    }
}

/// A receive-only AF_PACKET socket for one protocol on one interface, optionally with a
/// classic BPF filter, read without blocking: the control plane's view of ARP and
/// neighbour discovery (`control::announce`). Not for the data path.
pub struct PacketRx {
    fd: OwnedFd,
}

/// One instruction of a classic BPF socket filter.
pub type FilterInsn = libc::sock_filter;

fn attach_filter(fd: &OwnedFd, filter: &[FilterInsn]) -> io::Result<()> {
    let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut libc::sock_filter };
    // The kernel copies the program during the call; `filter` outlives it.
    setopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
}

impl PacketRx {
    pub fn open(ifname: &str, protocol: u16, filter: &[FilterInsn]) -> io::Result<PacketRx> {
        let ifindex = ifindex(ifname)?;
        let fd = packet_socket(protocol, libc::SOCK_NONBLOCK)?;
        if !filter.is_empty() {
            attach_filter(&fd, filter)?;
        }
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value, then filled in.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = protocol.to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        })?;
        Ok(PacketRx { fd })
    }

    /// The next frame into `buf`, if one is waiting; its length.
    pub fn recv(&self, buf: &mut [u8]) -> Option<usize> {
        // SAFETY: `buf` is writable for its whole length during the call.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
        (n > 0).then_some(n as usize)
    }

    /// Waits until one of `socks` has a frame, or `timeout_ms` passed.
    pub fn wait_any(socks: &[&PacketRx], timeout_ms: i32) {
        let mut fds: ArrayVec<libc::pollfd, 8> = socks
            .iter()
            .take(8)
            .map(|s| libc::pollfd { fd: s.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 })
            .collect();
        // SAFETY: `fds` holds valid pollfds for the duration of the call.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    }
}
