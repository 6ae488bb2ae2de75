//! The board's XDP program (`bpf/aftr_xdp.c`) on one interface: loaded and attached with
//! `aya`, told which addresses the data plane owns (AFTR endpoints, pool prefixes) and
//! whether the board is active, and given the AF_XDP socket of each RX queue.
//!
//! Attachment goes through a BPF link, so the program leaves the interface when
//! [`Steering`] is dropped, and also when the process dies however it dies (the kernel
//! closes the link). Programs attached the older way (netlink) by an earlier tool or run
//! are removed before attaching ([`detach_stale`]).

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use aya::Ebpf;
use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap, MapData, PerCpuArray, XskMap};
use aya::programs::{Xdp, XdpMode};

use crate::config::Ipv4Prefix;

/// The compiled program (dataplane/build.rs).
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/aftr_xdp.o"));

/// Which XDP mode to attach in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Native (driver) when the driver has it, generic otherwise.
    #[default]
    Auto,
    Native,
    Generic,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Auto => "auto",
            Mode::Native => "native",
            Mode::Generic => "generic",
        })
    }
}

/// What the program did with the frames it saw (summed over CPUs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SteeringStats {
    /// Sent towards the queue's AF_XDP socket.
    pub redirected: u64,
    /// Passed to the kernel: not to an endpoint or a pool.
    pub not_ours: u64,
    /// Passed to the kernel: ours, but the board is not active.
    pub standby: u64,
    /// Passed to the kernel: neighbour discovery to an endpoint.
    pub neighbour_discovery: u64,
}

impl SteeringStats {
    /// The counters with their names in `display statistics`.
    pub fn named(&self) -> [(&'static str, u64); 4] {
        [
            ("xdp_redirected", self.redirected),
            ("xdp_passed_not_ours", self.not_ours),
            ("xdp_passed_standby", self.standby),
            ("xdp_passed_neighbour_discovery", self.neighbour_discovery),
        ]
    }
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Our XDP program attached to one interface.
pub struct Steering {
    ifname: String,
    mode: Mode,
    xsks: XskMap<MapData>,
    endpoints: HashMap<MapData, [u8; 16], u32>,
    pools: LpmTrie<MapData, u32, u32>,
    active: Array<MapData, u32>,
    stats: PerCpuArray<MapData, u64>,
    pools_now: Vec<Ipv4Prefix>,
    endpoints_now: Vec<[u8; 16]>,
    // Dropped last: detaches the program.
    _ebpf: Ebpf,
}

impl Steering {
    /// Loads the program and attaches it to `ifname` in `mode` (`Auto`: native, then
    /// generic if the driver refuses). The board starts inactive: nothing is redirected
    /// until [`Steering::set_active`].
    pub fn attach(ifname: &str, mode: Mode) -> io::Result<Steering> {
        let ifindex = super::af_packet::ifindex(ifname)?;
        detach_stale(ifindex)?;
        let mut ebpf = Ebpf::load(PROGRAM).map_err(other)?;
        let prog: &mut Xdp = ebpf
            .program_mut("aftr_xdp")
            .ok_or_else(|| other("the XDP object has no aftr_xdp program"))?
            .try_into()
            .map_err(other)?;
        prog.load().map_err(other)?;
        let used = match mode {
            Mode::Native => prog.attach(ifname, XdpMode::Driver).map(|_| Mode::Native),
            Mode::Generic => prog.attach(ifname, XdpMode::Skb).map(|_| Mode::Generic),
            Mode::Auto => prog
                .attach(ifname, XdpMode::Driver)
                .map(|_| Mode::Native)
                .or_else(|_| prog.attach(ifname, XdpMode::Skb).map(|_| Mode::Generic)),
        }
        .map_err(|e| other(format!("cannot attach XDP ({mode}) to {ifname}: {e}")))?;
        let mut take = |name: &str| ebpf.take_map(name).ok_or_else(|| other(format!("no map {name}")));
        let xsks = XskMap::try_from(take("xsks")?).map_err(other)?;
        let endpoints = HashMap::try_from(take("endpoints")?).map_err(other)?;
        let pools = LpmTrie::try_from(take("pools")?).map_err(other)?;
        let active = Array::try_from(take("active")?).map_err(other)?;
        let stats = PerCpuArray::try_from(take("stats")?).map_err(other)?;
        Ok(Steering {
            ifname: ifname.to_string(),
            mode: used,
            xsks,
            endpoints,
            pools,
            active,
            stats,
            pools_now: Vec::new(),
            endpoints_now: Vec::new(),
            _ebpf: ebpf,
        })
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The mode the program runs in (never `Auto`).
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Sets the addresses the data plane owns: packets to these endpoints and pools are
    /// redirected (while active), all others pass to the kernel.
    pub fn set_targets(&mut self, endpoints: &[[u8; 16]], pools: &[Ipv4Prefix]) -> io::Result<()> {
        for e in endpoints {
            self.endpoints.insert(e, 1, 0).map_err(other)?;
        }
        for old in std::mem::take(&mut self.endpoints_now) {
            if !endpoints.contains(&old) {
                self.endpoints.remove(&old).map_err(other)?;
            }
        }
        self.endpoints_now = endpoints.to_vec();
        let key = |p: &Ipv4Prefix| {
            let (first, _) = p.range();
            Key::new(p.len.min(32) as u32, first.to_be())
        };
        for p in pools {
            self.pools.insert(&key(p), 1, 0).map_err(other)?;
        }
        for old in std::mem::take(&mut self.pools_now) {
            if !pools.contains(&old) {
                self.pools.remove(&key(&old)).map_err(other)?;
            }
        }
        self.pools_now = pools.to_vec();
        Ok(())
    }

    /// Starts (true) or stops (false) redirecting what the data plane owns.
    pub fn set_active(&mut self, on: bool) -> io::Result<()> {
        self.active.set(0, on as u32, 0).map_err(other)
    }

    /// Redirects the frames of RX queue `queue` to the AF_XDP socket `fd`. The kernel
    /// drops the entry by itself when the socket closes.
    pub fn register(&mut self, queue: u32, fd: RawFd) -> io::Result<()> {
        struct Raw(RawFd);
        impl AsRawFd for Raw {
            fn as_raw_fd(&self) -> RawFd {
                self.0
            }
        }
        self.xsks.set(queue, Raw(fd), 0).map_err(other)
    }

    pub fn stats(&self) -> SteeringStats {
        let sum = |i: u32| self.stats.get(&i, 0).map(|v| v.iter().sum()).unwrap_or(0);
        SteeringStats { redirected: sum(0), not_ours: sum(1), standby: sum(2), neighbour_discovery: sum(3) }
    }
}

/// The number of RX queues of `ifname` (as sysfs lists them; at least 1).
pub fn rx_queues(ifname: &str) -> u32 {
    std::fs::read_dir(format!("/sys/class/net/{ifname}/queues"))
        .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count() as u32)
        .unwrap_or(1)
        .max(1)
}

const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// Removes XDP programs attached through netlink (by `ip link`, or a tool that died
/// without detaching) from interface `ifindex`, in both modes. A program held by a live
/// BPF link (another running process) is left alone and reported as an error.
pub fn detach_stale(ifindex: i32) -> io::Result<()> {
    for mode in [XDP_FLAGS_SKB_MODE, XDP_FLAGS_DRV_MODE] {
        if let Err(e) = super::rtnl::set_xdp_none(ifindex as u32, mode) {
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "an XDP program is attached to interface {ifindex} and cannot be removed ({e}): is another aftrd running on it?"
                ),
            ));
        }
    }
    Ok(())
}
