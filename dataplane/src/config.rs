//! Typed settings of the engine. The `control` crate produces them from the router-style
//! configuration; the engine never sees configuration text.

use crate::wire::ethernet::Mac;

/// An IPv6 prefix (address and length), e.g. an authorised B4 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Prefix {
    pub addr: [u8; 16],
    pub len: u8,
}

impl Ipv6Prefix {
    pub fn contains(&self, a: &[u8; 16]) -> bool {
        let x = u128::from_be_bytes(self.addr);
        let y = u128::from_be_bytes(*a);
        let len = self.len.min(128) as u32;
        if len == 0 {
            return true;
        }
        let mask = u128::MAX << (128 - len);
        x & mask == y & mask
    }
}

/// An IPv4 prefix, e.g. an address pool section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Prefix {
    pub addr: u32,
    pub len: u8,
}

impl Ipv4Prefix {
    /// First and last address.
    pub fn range(&self) -> (u32, u32) {
        let len = self.len.min(32) as u32;
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        let first = self.addr & mask;
        (first, first | !mask)
    }

    pub fn addresses(&self) -> impl Iterator<Item = u32> + '_ {
        let len = self.len.min(32) as u32;
        let size: u64 = 1u64 << (32 - len);
        let base = if len == 0 { 0 } else { self.addr & (u32::MAX << (32 - len)) };
        (0..size).map(move |i| base.wrapping_add(i as u32))
    }
}

/// How inbound packets are filtered against a mapping (RFC 4787 section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filtering {
    /// Any remote may send to a mapped port (RFC 4787 REQ-8 recommendation for P2P).
    #[default]
    EndpointIndependent,
    /// Only remotes (address and port) that the subscriber has sent to may answer.
    AddressAndPortDependent,
}

/// Session timeouts in seconds (RFC 4787 REQ-5, RFC 5382 REQ-5, RFC 5508 REQ-1, RFC 7857).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub udp: u32,
    pub tcp_established: u32,
    pub tcp_transitory: u32,
    pub icmp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { udp: 300, tcp_established: 7440, tcp_transitory: 240, icmp: 60 }
    }
}

/// Per-subscriber limits (RFC 6888 REQ-3, REQ-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_sessions: u32,
    /// Port blocks per subscriber, at most [`crate::nat::subscriber::MAX_BLOCKS`].
    pub max_blocks: u8,
    /// New sessions per second; 0 disables the limit.
    pub new_sessions_per_sec: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_sessions: 4096, max_blocks: 8, new_sessions_per_sec: 0 }
    }
}

/// One DS-Lite instance: an AFTR endpoint, the B4s it serves and the pool they share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    pub name: String,
    /// The AFTR tunnel endpoint address (`local-ipv6`).
    pub endpoint: [u8; 16],
    /// Authorised B4 prefixes (`remote-ipv6`); softwire traffic from elsewhere is dropped.
    pub b4_prefixes: Vec<Ipv6Prefix>,
    /// External addresses.
    pub pool: Vec<Ipv4Prefix>,
    /// Ports per block, a power of two from 8 to 32768.
    pub port_block_size: u16,
    pub limits: Limits,
    pub timeouts: Timeouts,
    /// MTU of the IPv6 path towards the B4s (RFC 6333 section 5.3), 1280 to
    /// [`MAX_TUNNEL_MTU`].
    pub tunnel_mtu: u16,
    /// Clamp TCP MSS on SYNs to `tunnel_mtu - 80` (RFC 6908 section 4).
    pub mss_clamp: bool,
    /// MTU of the Internet side, [`MIN_INTERNET_MTU`] to [`MAX_TUNNEL_MTU`]: a
    /// subscriber's packet larger than this gets ICMP "fragmentation needed" with it if
    /// it has DF (RFC 1191), and is fragmented otherwise (RFC 791).
    pub internet_mtu: u16,
    pub filtering: Filtering,
    /// Hop limit of encapsulated packets (RFC 2473 section 6.3: a policy, not the TTL).
    pub hop_limit: u8,
    /// Accept inner sources outside RFC 1918 and 192.0.0.0/29 (RFC 6333 section 5.7).
    pub allow_public_inner: bool,
    /// Steering (decision 0012): the board's location (an index into
    /// [`EngineConfig::locations`]) that serves each bucket of B4s ([`bucket_of`]), or
    /// [`ELSEWHERE`]. Empty: every B4 is served by location 0.
    pub buckets: Vec<u8>,
    /// The location of each `pool` prefix, in the same order: a subscriber's address
    /// comes from its location's share, since two boards must never hand out the same
    /// external port. Empty: every prefix is location 0's.
    pub pool_locations: Vec<u8>,
    /// Static port forwardings (`nat server`): configuration, never replicated; their
    /// blocks are never allocated dynamically (decision 0019).
    pub statics: Vec<StaticMapping>,
    /// B4s with a public address, or an address and a port range, of their own (`nat
    /// no-translation`): forwarded with decapsulation and encapsulation only.
    pub own_addresses: Vec<OwnAddress>,
    /// The PCP server of this instance's subscribers (decision 0023), if enabled.
    pub pcp: Option<PcpConfig>,
}

/// A PCP server (RFC 6887) that the hosts behind the B4s reach through their softwire
/// at `server`, UDP port 5351 (decision 0023).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcpConfig {
    /// The server's IPv4 address, as the hosts behind the B4s know it.
    pub server: u32,
    /// The lifetimes granted (seconds): a request's is clamped between them.
    pub min_lifetime: u32,
    pub max_lifetime: u32,
    /// Mappings made or kept by PCP per subscriber (B4), on top of its session limit,
    /// which they count against as every mapping does.
    pub max_mappings: u16,
}

impl Default for PcpConfig {
    fn default() -> Self {
        // RFC 6887 section 15: at least 120 seconds should be granted; a day at most.
        PcpConfig { server: 0xc000_0001, min_lifetime: 120, max_lifetime: 86_400, max_mappings: 64 }
    }
}

/// A static port forwarding: `ext_addr:ext_port` (a pool address) is `inside_addr:
/// inside_port` behind `b4`, both ways, for `proto` (TCP or UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticMapping {
    pub b4: [u8; 16],
    pub proto: u8,
    pub inside_addr: u32,
    pub inside_port: u16,
    pub ext_addr: u32,
    pub ext_port: u16,
}

/// A B4 that holds public address `addr` (no NAT), or its ports `first..=last` only
/// (A+P, RFC 6346): `(1, 65535)` for the whole address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnAddress {
    pub b4: [u8; 16],
    pub addr: u32,
    pub first: u16,
    pub last: u16,
}

impl InstanceConfig {
    /// A usable default instance for the given endpoint, B4 prefix and pool.
    pub fn new(name: &str, endpoint: [u8; 16], b4: Ipv6Prefix, pool: Ipv4Prefix) -> Self {
        InstanceConfig {
            name: name.to_string(),
            endpoint,
            b4_prefixes: vec![b4],
            pool: vec![pool],
            port_block_size: 512,
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            tunnel_mtu: 1500,
            mss_clamp: true,
            internet_mtu: 1500,
            filtering: Filtering::EndpointIndependent,
            hop_limit: 64,
            allow_public_inner: false,
            buckets: Vec::new(),
            pool_locations: Vec::new(),
            statics: Vec::new(),
            own_addresses: Vec::new(),
            pcp: None,
        }
    }

    /// The location (index into [`EngineConfig::locations`]) that serves `b4`, or
    /// [`ELSEWHERE`].
    pub fn location_of_b4(&self, b4: &[u8; 16]) -> u8 {
        if self.buckets.is_empty() { 0 } else { self.buckets[bucket_of(b4) % self.buckets.len()] }
    }

    /// The location whose pool share holds `addr`, if the pool has it.
    pub fn location_of_addr(&self, addr: u32) -> Option<u8> {
        let i = self.pool.iter().position(|p| {
            let (first, last) = p.range();
            (first..=last).contains(&addr)
        })?;
        Some(self.pool_locations.get(i).copied().unwrap_or(0))
    }
}

/// Buckets of B4s: every board maps a B4 address to the same bucket, and the plan
/// gives each bucket to a location by weight (decision 0012).
pub const BUCKETS: usize = 4096;

/// A bucket that no location of this board serves (another board pair's).
pub const ELSEWHERE: u8 = u8::MAX;

/// The bucket of a B4 address: a fixed hash (SplitMix64's finaliser over both halves),
/// the same on every board and in every version, so boards agree without talking.
pub fn bucket_of(b4: &[u8; 16]) -> usize {
    let x = u128::from_be_bytes(*b4);
    let mut h = (x as u64) ^ ((x >> 64) as u64).rotate_left(29);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h % BUCKETS as u64) as usize
}

/// Which of a board's locations holds each external address, instance by instance
/// (engine order): the location of a session or block record, for hot backup and
/// logging, from its external address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolShares(Vec<Vec<(u32, u32, u8)>>);

impl PoolShares {
    pub fn of(cfg: &EngineConfig) -> PoolShares {
        PoolShares(
            cfg.instances
                .iter()
                .map(|i| {
                    let mut r: Vec<(u32, u32, u8)> = i
                        .pool
                        .iter()
                        .enumerate()
                        .map(|(k, p)| {
                            let (first, last) = p.range();
                            (first, last, i.pool_locations.get(k).copied().unwrap_or(0))
                        })
                        .collect();
                    r.sort_unstable();
                    r
                })
                .collect(),
        )
    }

    /// The location of external address `addr` of instance `inst`; None if that pool
    /// does not hold it. With no shares at all, everything is location 0's.
    pub fn location_of(&self, inst: u8, addr: u32) -> Option<u8> {
        if self.0.is_empty() {
            return Some(0);
        }
        let r = self.0.get(inst as usize)?;
        let i = r.partition_point(|e| e.0 <= addr).checked_sub(1)?;
        (addr <= r[i].1).then_some(r[i].2)
    }
}

/// The largest tunnel MTU: a jumbo frame. Packets towards the B4s come from frames the
/// engine received (at most a jumbo frame) or from reassembly (`FragLimits::max_datagram`,
/// 9216 by default); an MTU above every packet would only hide a misconfiguration.
pub const MAX_TUNNEL_MTU: u16 = 9000;
/// The smallest Internet MTU: the datagram every IPv4 host must accept (RFC 791).
pub const MIN_INTERNET_MTU: u16 = 576;

/// Layer-2 addressing of one egress side, filled in by the I/O layer from its neighbour
/// resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EgressL2 {
    pub src: Mac,
    pub dst: Mac,
    pub vlan: Option<u16>,
}

/// Bounds on fragment handling (RFC 6333 section 5.3; RFC 5722 for overlaps; decision
/// 0013 for the sharing between sources).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragLimits {
    /// Concurrent IPv6 reassemblies per worker.
    pub max_reassemblies: usize,
    /// Largest reassembled IPv6 packet.
    pub max_datagram: usize,
    /// Slots per worker for inbound IPv4 datagrams in progress and the fragments held
    /// until their first fragment comes (each takes one).
    pub max_held: usize,
    /// Slots one source may hold in each table: one B4 address of the reassemblies, one
    /// remote IPv4 address of the inbound slots.
    pub max_per_source: usize,
    pub timeout_ms: u64,
}

impl Default for FragLimits {
    fn default() -> Self {
        FragLimits { max_reassemblies: 256, max_datagram: 9216, max_held: 256, max_per_source: 16, timeout_ms: 2000 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    pub instances: Vec<InstanceConfig>,
    /// Number of workers sharing the port space; this engine is one of them.
    pub workers: u16,
    /// Session capacity of one worker.
    pub max_sessions: u32,
    /// Subscriber capacity of one worker.
    pub max_subscribers: u32,
    /// Towards the B4s.
    pub softwire_l2: EgressL2,
    /// Towards the Internet.
    pub internet_l2: EgressL2,
    pub frag: FragLimits,
    /// A session refresh event is emitted at most once per this many seconds.
    pub refresh_event_interval: u32,
    /// Capacity of the per-worker session event ring.
    pub event_ring: usize,
    /// The service-locations this board serves (ids; location index `i` is
    /// `locations[i]`), active or standby each on its own. Empty: one location, 0.
    pub locations: Vec<u32>,
    /// ICMP errors the AFTR itself generates, per worker: a token bucket of this many per
    /// second and this burst (Linux's `icmp_msgs_per_sec` and `icmp_msgs_burst`
    /// defaults, 1000 and 50). Rate 0: no limit.
    pub icmp_errors_per_sec: u32,
    pub icmp_errors_burst: u32,
    /// Seconds a released port block is held before another subscriber may get it
    /// (RFC 6888 REQ-8: 120 at least); held between this and twice this. 0: none.
    pub block_hold_down: u32,
}

impl EngineConfig {
    pub fn new(instances: Vec<InstanceConfig>) -> Self {
        EngineConfig {
            instances,
            workers: 1,
            max_sessions: 1 << 16,
            max_subscribers: 1 << 14,
            softwire_l2: EgressL2::default(),
            internet_l2: EgressL2::default(),
            frag: FragLimits::default(),
            refresh_event_interval: 10,
            event_ring: 1 << 16,
            locations: Vec::new(),
            icmp_errors_per_sec: 1000,
            icmp_errors_burst: 50,
            block_hold_down: 120,
        }
    }
}

/// Why a configuration cannot drive an engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("instance {0}: port block size {1} is not a power of two from 8 to 32768")]
    BlockSize(String, u16),
    #[error("instance {0}: max blocks {1} is outside 1..={2}")]
    MaxBlocks(String, u8, usize),
    #[error("instance {0}: tunnel MTU {1} is outside 1280 (RFC 8200) to {max}", max = MAX_TUNNEL_MTU)]
    TunnelMtu(String, u16),
    #[error("instance {0}: Internet MTU {1} is outside {min} to {max}", min = MIN_INTERNET_MTU, max = MAX_TUNNEL_MTU)]
    InternetMtu(String, u16),
    #[error("instance {0}: the pool is empty")]
    EmptyPool(String),
    #[error("address {0} is in two pools")]
    PoolOverlap(std::net::Ipv4Addr),
    #[error("workers must be 1..=64, and the port blocks of each address at least as many")]
    Workers,
    #[error("instance {0}: PCP server address 0, or lifetimes not 1 <= min <= max")]
    Pcp(String),
    #[error("no instances")]
    NoInstances,
    #[error("more than 255 instances")]
    TooManyInstances,
    #[error("instance {0}: steering names a location this board does not have, or has {1} buckets (0 or 4096)")]
    Steering(String, usize),
    #[error("more than 64 locations on one board")]
    TooManyLocations,
}
