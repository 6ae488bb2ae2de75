//! Per-worker counters: one for every path and every drop reason.
//!
//! Each worker is the only writer of its counters, so an increment is a relaxed load and
//! store (no locked instruction on the hot path); readers on other threads see values at
//! most one increment stale.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($( $(#[$m:meta])* $name:ident = $text:literal, )*) => {
        /// Everything the engine counts.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum Counter { $( $(#[$m])* $name, )* }

        impl Counter {
            pub const ALL: &'static [Counter] = &[$(Counter::$name,)*];
            /// The name used in statistics and metrics.
            pub fn name(self) -> &'static str {
                match self { $(Counter::$name => $text,)* }
            }
        }
    };
}

counters! {
    RxFrames = "rx_frames",
    /// Bytes of the frames received (Ethernet header on), added once per batch.
    RxBytes = "rx_bytes",
    In2Out = "in2out",
    Out2In = "out2in",
    Hairpin = "hairpin",
    /// Packets translated by a static port forwarding (`nat server`), each way.
    StaticIn2Out = "static_in2out",
    StaticOut2In = "static_out2in",
    /// Packets of B4s with an address (or port range) of their own, forwarded untranslated.
    OwnAddressIn2Out = "own_address_in2out",
    OwnAddressOut2In = "own_address_out2in",
    /// Softwire frames of a location the peer board is active for, sent on to it.
    SteeredToPeer = "steered_to_peer",
    EndpointEchoReplies = "endpoint_echo_replies",
    IcmpErrorsIn2Out = "icmp_errors_in2out",
    IcmpErrorsOut2In = "icmp_errors_out2in",
    Icmpv6ErrorsTranslated = "icmpv6_errors_translated",
    TimeExceededSent = "time_exceeded_sent",
    FragNeededSent = "frag_needed_sent",
    /// ICMPv6 Packet Too Big about a softwire packet we sent, taken as the path MTU
    /// towards that B4.
    SoftwireMtuLearned = "softwire_mtu_learned",
    /// Destination unreachable (host unreachable) to a subscriber's host whose packet
    /// could not get a mapping (RFC 6888 REQ-11).
    UnreachableSent = "dest_unreachable_sent",
    /// ICMP errors the AFTR would have generated but for the rate limit.
    IcmpErrorsSuppressed = "icmp_errors_suppressed",
    OuterFragmented = "outer_fragmented",
    OuterFragmentsSent = "outer_fragments_sent",
    /// Subscribers' packets larger than the Internet MTU, without DF, sent in fragments.
    Ipv4Fragmented = "ipv4_fragmented",
    Ipv4FragmentsSent = "ipv4_fragments_sent",
    Reassembled = "ipv6_reassembled",
    Ipv4FragmentsTranslated = "ipv4_fragments_translated",
    MssClamped = "mss_clamped",
    /// RSTs from a remote other than the session's connection's: forwarded, but the
    /// session's state and timer are left alone (RFC 7857 section 2.2).
    TcpRstIgnored = "tcp_rst_ignored",
    SessionsCreated = "sessions_created",
    SessionsExpired = "sessions_expired",
    SessionsInstalled = "sessions_installed",
    /// Sessions a commit no longer allowed (another pool, block size or B4 prefix).
    SessionsEndedByCommit = "sessions_ended_by_commit",
    BlocksAllocated = "blocks_allocated",
    BlocksReleased = "blocks_released",
    /// New sessions from a port below 1024 given a port from 1024 up, none below being
    /// free for the subscriber.
    WellKnownPortFallbacks = "well_known_port_fallbacks",
    SubscribersCreated = "subscribers_created",
    PassedToKernel = "passed_to_kernel",
    /// PCP requests to the server (decision 0023), each answered with one result code
    /// below or dropped for one of the `drop_pcp_` reasons.
    PcpRequests = "pcp_requests",
    PcpResultSuccess = "pcp_result_success",
    PcpResultUnsuppVersion = "pcp_result_unsupp_version",
    PcpResultNotAuthorized = "pcp_result_not_authorized",
    PcpResultMalformedRequest = "pcp_result_malformed_request",
    PcpResultUnsuppOpcode = "pcp_result_unsupp_opcode",
    PcpResultUnsuppOption = "pcp_result_unsupp_option",
    PcpResultMalformedOption = "pcp_result_malformed_option",
    PcpResultNetworkFailure = "pcp_result_network_failure",
    PcpResultNoResources = "pcp_result_no_resources",
    PcpResultUnsuppProtocol = "pcp_result_unsupp_protocol",
    PcpResultUserExQuota = "pcp_result_user_ex_quota",
    PcpResultCannotProvideExternal = "pcp_result_cannot_provide_external",
    PcpResultAddressMismatch = "pcp_result_address_mismatch",
    PcpResultExcessiveRemotePeers = "pcp_result_excessive_remote_peers",
    /// PCP mappings made (a new session, or an existing one given a lease), renewed,
    /// and deleted by a request with lifetime 0.
    PcpMappingsCreated = "pcp_mappings_created",
    PcpMappingsRenewed = "pcp_mappings_renewed",
    PcpMappingsDeleted = "pcp_mappings_deleted",
    /// A frame that is not the data plane's, on AF_XDP, where the kernel never sees it:
    /// the XDP program steers only what the engine handles, so only a frame of a
    /// configuration being changed gets here.
    DropNotSteered = "drop_not_steered",
    /// Handed to the worker that owns them, by the side they came from.
    HandedOffSoftwire = "handed_off_softwire",
    HandedOffInternet = "handed_off_internet",
    EventsDropped = "events_dropped",
    // Drops, one per reason.
    DropMalformedL2 = "drop_malformed_l2",
    DropMalformedIpv6 = "drop_malformed_ipv6",
    /// An IPv6 extension header chain the AFTR does not take (RFC 8200 sections 4.1,
    /// 4.4, 4.5): Hop-by-Hop not first, a Routing header with segments left, a second
    /// Fragment header, too many headers.
    DropIpv6Extension = "drop_ipv6_extension",
    DropMalformedIpv4 = "drop_malformed_ipv4",
    DropBadIpv4Checksum = "drop_bad_ipv4_checksum",
    DropMalformedL4 = "drop_malformed_l4",
    DropUnsupportedProtocol = "drop_unsupported_protocol",
    DropUnsupportedIcmp = "drop_unsupported_icmp",
    DropSoftwireNextHeader = "drop_softwire_next_header",
    DropB4NotAuthorised = "drop_b4_not_authorised",
    DropInnerSourcePolicy = "drop_inner_source_policy",
    /// An inner source that is another B4's own address (no-NAT or A+P entry).
    DropOwnAddressSpoofed = "drop_own_address_spoofed",
    /// A port outside the range of an A+P entry: sent by its B4, or to an A+P address
    /// outside every B4's range.
    DropOwnAddressPort = "drop_own_address_port",
    DropNoSession = "drop_no_session",
    /// A PCP message the server ignores (RFC 6887 section 8.3): shorter than two
    /// octets, or a response.
    DropPcpIgnored = "drop_pcp_ignored",
    /// A fragmented PCP request (the server takes whole datagrams only).
    DropPcpFragment = "drop_pcp_fragment",
    /// A PCP request whose UDP checksum is wrong.
    DropPcpBadChecksum = "drop_pcp_bad_checksum",
    /// A PCP answer that did not fit the frame's buffer.
    DropPcpNoRoom = "drop_pcp_no_room",
    DropFiltered = "drop_filtered",
    DropSessionTableFull = "drop_session_table_full",
    DropSubscriberTableFull = "drop_subscriber_table_full",
    DropSessionLimit = "drop_session_limit",
    DropBlockLimit = "drop_block_limit",
    DropPortsExhausted = "drop_ports_exhausted",
    DropRateLimited = "drop_rate_limited",
    DropTtlExpired = "drop_ttl_expired",
    DropNoHeadroom = "drop_no_headroom",
    DropFragNoSubscriber = "drop_frag_no_subscriber",
    DropFragOverlap = "drop_frag_overlap",
    DropFragTooBig = "drop_frag_too_big",
    /// An inbound fragment refused: it was to be held, every slot of the table was taken
    /// and no source held more than its share (decision 0013).
    DropFragTableFull = "drop_frag_table_full",
    /// An incomplete datagram given up, or a fragment refused, because its source (a B4
    /// address, a remote IPv4 address) held as many fragment slots as one may.
    DropFragSourceLimit = "drop_frag_source_limit",
    /// An incomplete datagram given up, the fragment table being full: to a source that
    /// held at least two slots fewer than its own, for a newer one of the same source,
    /// or, every source holding one, as the oldest of the table (decision 0013).
    DropFragFairShare = "drop_frag_fair_share",
    /// Incomplete datagrams whose time ran out (IPv6: one per datagram; inbound IPv4: one
    /// per held fragment).
    DropFragTimeout = "drop_frag_timeout",
    DropFragHairpin = "drop_frag_hairpin",
    DropIcmpErrorNoSession = "drop_icmp_error_no_session",
    DropIcmpErrorAboutError = "drop_icmp_error_about_error",
    /// A Packet Too Big with an MTU below IPv6's 1280 (RFC 8200 section 5).
    DropPtbBelowMinimum = "drop_ptb_below_minimum",
    /// A Packet Too Big whose MTU is not below the path MTU we use towards that B4: the
    /// packet it quotes fitted (RFC 8201 section 4).
    DropPtbNotSmaller = "drop_ptb_not_smaller",
    DropWrongWorker = "drop_wrong_worker",
    DropMartian = "drop_martian",
    /// Outer CE on an inner Not-ECT packet (RFC 6040 section 4.2).
    DropEcnCeNotEct = "drop_ecn_ce_not_ect",
    /// No next hop: no route towards the destination (or, without a forwarding table,
    /// no next hop resolved yet).
    DropNoNextHop = "drop_no_next_hop",
    /// The route's neighbour has no MAC yet; the kernel is asked to resolve it.
    DropNeighbourUnresolved = "drop_neighbour_unresolved",
    /// The Internet interface is down.
    DropLinkDown = "drop_link_down",
    DropHandoffFull = "drop_handoff_full",
    /// A frame made on the side (a fragment, an ICMP error) the port could not send: its
    /// ring was full, or it is larger than a UMEM chunk holds (keep the MTUs below
    /// about 3800 bytes on AF_XDP).
    DropTxFailed = "drop_tx_failed",
    /// Received while the board is standby (hot backup): the active board forwards it.
    DropStandby = "drop_standby",
    /// For a location this board is standby for (its peer is active for it): a B4 of
    /// that location, or an address of its pool share.
    DropLocationStandby = "drop_location_standby",
    /// From a B4 that no location of this board serves (another board pair's).
    DropB4Elsewhere = "drop_b4_elsewhere",
    /// Would have gone on to the peer board, but its hop limit ran out.
    DropPeerHopLimit = "drop_peer_hop_limit",
}

/// How many counters there are.
pub const COUNTERS: usize = Counter::ALL.len();

/// The counters of one worker.
pub struct WorkerCounters {
    values: [AtomicU64; COUNTERS],
}

impl Default for WorkerCounters {
    fn default() -> Self {
        WorkerCounters { values: std::array::from_fn(|_| AtomicU64::new(0)) }
    }
}

impl WorkerCounters {
    /// Adds one; only the owning worker calls this.
    #[inline]
    pub fn inc(&self, c: Counter) {
        self.add(c, 1)
    }
    #[inline]
    pub fn add(&self, c: Counter, n: u64) {
        let v = &self.values[c as usize];
        v.store(v.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
    /// Sets a counter back to `v` (a commit moving state into a new engine must not
    /// count it as new); only the owning worker calls this.
    pub fn set(&self, c: Counter, v: u64) {
        self.values[c as usize].store(v, Ordering::Relaxed);
    }
    pub fn get(&self, c: Counter) -> u64 {
        self.values[c as usize].load(Ordering::Relaxed)
    }
    /// Every counter that is not zero, by name.
    pub fn nonzero(&self) -> Vec<(&'static str, u64)> {
        Counter::ALL.iter().map(|&c| (c.name(), self.get(c))).filter(|&(_, v)| v != 0).collect()
    }
    pub fn drops(&self) -> u64 {
        Counter::ALL.iter().filter(|c| c.name().starts_with("drop_")).map(|&c| self.get(c)).sum()
    }
}
