//! The configuration as data: what the router-style text describes, after parsing.
//! `parse` builds it from text, `display` prints it back, `validate` checks it as a
//! whole before a commit applies it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

pub use dataplane::config::Filtering;
pub use ha_sync::wire::Secret;

/// `service-ha` settings (the seed's VSM HA hot backup), plus the HA channel's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ha {
    /// `service-ha hot-backup enable`: sessions are replicated to the standby.
    pub hot_backup: bool,
    /// `service-ha delay-time D`: a session is backed up once it has lived D seconds.
    pub delay_time: u32,
    /// `service-ha preempt-time P`: a recovered preferred board waits P seconds.
    pub preempt_time: u32,
    /// `service-ha preshared-key ...`: the secret the HA channel's keys come from.
    pub key: Option<KeySource>,
    /// `service-ha heartbeat interval MS dead-count N`.
    pub heartbeat_ms: u32,
    pub dead_count: u32,
    /// `service-ha notify PROGRAM`: run on every change of role (as keepalived's notify).
    pub notify: Option<String>,
}

impl Default for Ha {
    fn default() -> Self {
        Ha {
            hot_backup: false,
            delay_time: DEFAULT_DELAY_TIME,
            preempt_time: DEFAULT_PREEMPT_TIME,
            key: None,
            heartbeat_ms: 40,
            dead_count: 3,
            notify: None,
        }
    }
}

/// Where the HA secret comes from (`crate::secret` reads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `service-ha preshared-key KEY`: typed in the configuration; displays print
    /// `******`, `save` the key itself.
    Inline(Secret),
    /// `service-ha preshared-key file PATH`: read at start and at every commit.
    File(PathBuf),
    /// `service-ha preshared-key credential NAME`: `$CREDENTIALS_DIRECTORY/NAME`, as
    /// systemd's `LoadCredential=` gives it to the service.
    Credential(String),
    /// `service-ha preshared-key ******`, as displays print an inline key: the key
    /// this board runs with, kept (a configuration read back from a display, and
    /// `aftrctl`'s session, hold this).
    Running,
}

/// `service-ha delay-time`: the vendor's range and default (huawei-command-facts.md).
pub const DEFAULT_DELAY_TIME: u32 = 1;
pub const DEFAULT_PREEMPT_TIME: u32 = 60;
pub const DELAY_TIME_RANGE: (u32, u32) = (1, 300);
pub const PREEMPT_TIME_RANGE: (u32, u32) = (0, 3600);
pub const WEIGHT_RANGE: (u32, u32) = (1, 100);
pub const DEFAULT_WEIGHT: u32 = 1;

/// A board: one `aftrd` process with its worker cores and interfaces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Slot {
    /// `host NAME`: the machine the board runs on (cores are per host).
    pub host: Option<String>,
    /// `worker-cores C [C ...]`.
    pub cores: Vec<u32>,
    /// `interface softwire IF` (towards the B4s).
    pub softwire_if: Option<String>,
    /// `interface internet IF` (towards the Internet).
    pub internet_if: Option<String>,
    /// `ha-address ADDR [port P]`: where the HA channel of this board listens.
    pub ha_address: Option<SocketAddr>,
    /// `packet-io auto | af-xdp [ native | generic ] | af-packet`.
    pub packet_io: PacketIo,
    /// `packet-poll busy | blocking`: how AF_XDP workers wait for frames.
    pub poll: PollMode,
    /// `metrics http ADDR port P` in the slot view: this board's metrics listener.
    pub metrics: Option<SocketAddr>,
    /// `route-table N`: the kernel routing table where the board, while active, keeps
    /// routes to its endpoints and pool shares for a routing daemon (`crate::routes`).
    pub route_table: Option<u32>,
}

pub use dataplane::io::xdp::Mode as XdpMode;
pub use dataplane::io::xsk::PollMode;

pub use dataplane::io::port::PacketIo;

/// `service-location ID` with `location slot S backup slot B`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    pub slot: Option<u32>,
    pub backup: Option<u32>,
}

/// `service-instance-group NAME` with `service-location ID [ weight W ]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceGroup {
    pub locations: BTreeMap<u32, u32>,
}

/// `ds-lite address-group NAME` with `section N FIRST LAST` (or `section N ADDR mask LEN`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressGroup {
    pub sections: BTreeMap<u32, (Ipv4Addr, Ipv4Addr)>,
}

/// `ds-lite instance NAME [ id N ]` and everything inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsLite {
    pub id: Option<u32>,
    pub group: Option<String>,
    /// `local-ipv6 ADDR`: the AFTR endpoint.
    pub local: Option<Ipv6Addr>,
    /// `remote-ipv6 PREFIX prefix-length LEN`: authorised B4s.
    pub remotes: Vec<(Ipv6Addr, u8)>,
    /// `ds-lite address-group NAME`.
    pub address_group: Option<String>,
    pub port_block_size: u16,
    pub session_limit: u32,
    pub port_block_limit: u8,
    pub new_session_rate: u32,
    pub aging: dataplane::config::Timeouts,
    pub tunnel_mtu: u16,
    pub mss_clamp: bool,
    /// `internet-mtu N`: larger packets towards the Internet get ICMP (DF) or fragments.
    pub internet_mtu: u16,
    pub filtering: Filtering,
    pub hop_limit: u8,
    pub public_inner: bool,
    /// `nat server protocol P global A P inside A P b4 B4`: static port forwardings.
    pub servers: Vec<NatServer>,
    /// `nat no-translation b4 B4 address A [ port-range FIRST LAST ]`.
    pub no_translation: Vec<NoTranslation>,
    /// `pcp server enable address ADDR`: the PCP server of the instance (decision 0023).
    pub pcp_server: Option<Ipv4Addr>,
    /// `pcp lifetime min N max N`: the lifetimes PCP grants, seconds.
    pub pcp_lifetime: (u32, u32),
    /// `pcp max-mappings N`: PCP mappings per subscriber.
    pub pcp_max_mappings: u16,
}

/// A static port forwarding: `global` (a pool address and port) is `inside` behind `b4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatServer {
    /// TCP, else UDP.
    pub tcp: bool,
    pub global: (Ipv4Addr, u16),
    pub inside: (Ipv4Addr, u16),
    pub b4: Ipv6Addr,
}

impl NatServer {
    pub fn protocol(&self) -> &'static str {
        if self.tcp { "tcp" } else { "udp" }
    }

    /// The command that configures it.
    pub fn line(&self) -> String {
        format!(
            "nat server protocol {} global {} {} inside {} {} b4 {}",
            self.protocol(),
            self.global.0,
            self.global.1,
            self.inside.0,
            self.inside.1,
            self.b4
        )
    }
}

/// A B4 that holds public address `addr` (no NAT), or only its ports `ports` (A+P).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoTranslation {
    pub b4: Ipv6Addr,
    pub addr: Ipv4Addr,
    pub ports: Option<(u16, u16)>,
}

impl NoTranslation {
    /// The ports it holds: all of them without a range.
    pub fn range(&self) -> (u16, u16) {
        self.ports.unwrap_or((1, u16::MAX))
    }

    /// The command that configures it.
    pub fn line(&self) -> String {
        let range = self.ports.map(|(a, b)| format!(" port-range {a} {b}")).unwrap_or_default();
        format!("nat no-translation b4 {} address {}{range}", self.b4, self.addr)
    }
}

impl Default for DsLite {
    fn default() -> Self {
        let d = dataplane::config::InstanceConfig::new(
            "",
            [0; 16],
            dataplane::config::Ipv6Prefix { addr: [0; 16], len: 0 },
            dataplane::config::Ipv4Prefix { addr: 0, len: 32 },
        );
        let pcp = dataplane::config::PcpConfig::default();
        DsLite {
            id: None,
            group: None,
            local: None,
            remotes: Vec::new(),
            address_group: None,
            port_block_size: d.port_block_size,
            session_limit: d.limits.max_sessions,
            port_block_limit: d.limits.max_blocks,
            new_session_rate: d.limits.new_sessions_per_sec,
            aging: d.timeouts,
            tunnel_mtu: d.tunnel_mtu,
            mss_clamp: d.mss_clamp,
            internet_mtu: d.internet_mtu,
            filtering: d.filtering,
            hop_limit: d.hop_limit,
            public_inner: d.allow_public_inner,
            servers: Vec::new(),
            no_translation: Vec::new(),
            pcp_server: None,
            pcp_lifetime: (pcp.min_lifetime, pcp.max_lifetime),
            pcp_max_mappings: pcp.max_mappings,
        }
    }
}

/// The data plane's own defences, board-wide: the ICMP errors it generates, and how
/// long a released port block waits before another subscriber may have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protection {
    /// `icmp-error rate PER-SECOND burst N`, per worker (0: no limit).
    pub icmp_errors_per_sec: u32,
    pub icmp_errors_burst: u32,
    /// `port-block hold-down SECONDS` (RFC 6888 REQ-8).
    pub block_hold_down: u32,
}

impl Default for Protection {
    fn default() -> Self {
        let d = dataplane::config::EngineConfig::new(Vec::new());
        Protection {
            icmp_errors_per_sec: d.icmp_errors_per_sec,
            icmp_errors_burst: d.icmp_errors_burst,
            block_hold_down: d.block_hold_down,
        }
    }
}

/// How much state each worker of a board has room for. A full session table refuses
/// new sessions (`drop_session_table_full`); a full subscriber table, new B4s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// `nat session-table size SESSIONS`.
    pub sessions: u32,
    /// `nat subscriber-table size SUBSCRIBERS`.
    pub subscribers: u32,
}

impl Default for Capacity {
    fn default() -> Self {
        let d = dataplane::config::EngineConfig::new(Vec::new());
        Capacity { sessions: d.max_sessions, subscribers: d.max_subscribers }
    }
}

/// How a collector of NAT logs is fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// RFC 5424 over UDP (RFC 5426).
    SyslogUdp,
    /// RFC 5424 over TCP with octet counting (RFC 6587 section 3.4.1).
    SyslogTcp,
    /// IPFIX over UDP (RFC 7011) with RFC 8158's NAT information elements.
    Ipfix,
}

impl LogFormat {
    pub const ALL: [LogFormat; 3] = [LogFormat::SyslogUdp, LogFormat::SyslogTcp, LogFormat::Ipfix];

    /// The keyword of `nat log host ... type`, also the metrics' `kind` label.
    pub fn keyword(self) -> &'static str {
        match self {
            LogFormat::SyslogUdp => "syslog-udp",
            LogFormat::SyslogTcp => "syslog-tcp",
            LogFormat::Ipfix => "ipfix",
        }
    }
}

/// `nat log host ADDR PORT [source SRC [port SP]] [type T]`: a collector of NAT logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogHost {
    pub addr: SocketAddr,
    pub format: LogFormat,
    /// The address (and port, 0: any) the board sends from; the kernel's choice if none.
    pub source: Option<SocketAddr>,
}

/// `nat log ...`: what is logged, where, and the IPFIX template refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatLog {
    pub hosts: Vec<LogHost>,
    /// `nat log session enable`: session creation and deletion; off (port blocks say it).
    pub sessions: bool,
    /// `nat log port-block enable`: port block allocation and release; on.
    pub blocks: bool,
    /// `nat log exhaustion enable`: NAT addresses and ports exhausted; on.
    pub exhaustion: bool,
    /// `nat log quota enable`: session, block and rate limits of a subscriber, and full
    /// tables; on.
    pub quotas: bool,
    /// `nat log ipfix template-refresh time S packets N`: templates go again after S
    /// seconds or N messages, whichever comes first (RFC 7011 section 8.4).
    pub template_refresh_secs: u32,
    pub template_refresh_packets: u32,
}

impl Default for NatLog {
    fn default() -> Self {
        NatLog {
            hosts: Vec::new(),
            sessions: false,
            blocks: true,
            exhaustion: true,
            quotas: true,
            template_refresh_secs: 60,
            template_refresh_packets: 1000,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    pub sysname: Option<String>,
    pub ha: Ha,
    pub slots: BTreeMap<u32, Slot>,
    pub locations: BTreeMap<u32, Location>,
    pub groups: BTreeMap<String, InstanceGroup>,
    pub address_groups: BTreeMap<String, AddressGroup>,
    pub instances: BTreeMap<String, DsLite>,
    /// `nat log ...`.
    pub nat_log: NatLog,
    /// `metrics http ADDR port P` in the system view: the listener of every board
    /// without its own.
    pub metrics: Option<SocketAddr>,
    pub protection: Protection,
    pub capacity: Capacity,
}

impl Config {
    /// Where board `slot` serves its metrics: its own `metrics http`, else the system
    /// view's.
    pub fn metrics_of(&self, slot: u32) -> Option<SocketAddr> {
        self.slots.get(&slot).and_then(|s| s.metrics).or(self.metrics)
    }
}

pub use dataplane::io::port::Interfaces;

/// Where a statement came from, for errors found when the configuration is checked as a
/// whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

pub fn ip_v4(a: IpAddr) -> Option<Ipv4Addr> {
    match a {
        IpAddr::V4(v) => Some(v),
        IpAddr::V6(_) => None,
    }
}
