//! The kernel's routing netlink (rtnetlink) through `netlink-packet-route` and
//! `netlink-sys` (decision 0015): the IPv4 routes, neighbours and links of a board's
//! Internet interface, dumped at start and then followed through the multicast groups,
//! made into the workers' forwarding table ([`crate::fib`]) by a thread of their own;
//! and the XDP detach of `io::xdp`.
//!
//! Only the main table's unicast routes through the interface count: policy routing
//! (other tables, rules) is not followed.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, LinkXdp};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::fib::{Fib, FibHandle, Hop, Route, RouteTable};
use crate::wire::ethernet::Mac;

type Message = NetlinkMessage<RouteNetlinkMessage>;

/// A route as the kernel keys it: prefix, length and metric (the lowest metric of a
/// prefix is the one used).
type RouteKey = (Ipv4Addr, u8, u32);

/// A link's state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Link {
    pub name: String,
    pub mac: Mac,
    /// Administratively up with its carrier (IFF_UP and IFF_LOWER_UP).
    pub up: bool,
}

/// What a message changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Changed {
    pub routes: bool,
    pub neighbours: bool,
    pub links: bool,
}

/// The kernel's tables as far as the board reads them.
#[derive(Debug, Default)]
pub struct KernelView {
    /// The Internet interface's name.
    pub ifname: String,
    pub links: HashMap<u32, Link>,
    /// Routes through any interface; those through the Internet one are used.
    routes: BTreeMap<RouteKey, (u32, Vec<Hop>)>,
    /// Complete neighbour entries on any interface: (ifindex, address) -> MAC.
    neighbours: HashMap<(u32, Ipv4Addr), Mac>,
}

impl KernelView {
    pub fn new(ifname: &str) -> Self {
        KernelView { ifname: ifname.into(), ..Default::default() }
    }

    /// The Internet interface's index, if it exists.
    pub fn ifindex(&self) -> Option<u32> {
        self.links.iter().find(|(_, l)| l.name == self.ifname).map(|(&i, _)| i)
    }

    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.values().find(|l| l.name == name)
    }

    /// Takes in one message of a dump or of the multicast groups.
    pub fn apply(&mut self, m: &RouteNetlinkMessage) -> Changed {
        let mut c = Changed::default();
        match m {
            RouteNetlinkMessage::NewLink(l) => {
                let (ix, link) = parse_link(l);
                c.links = self.links.insert(ix, link.clone()) != Some(link);
            }
            RouteNetlinkMessage::DelLink(l) => c.links = self.links.remove(&l.header.index).is_some(),
            RouteNetlinkMessage::NewNeighbour(n) => {
                if let Some((key, mac)) = parse_neighbour(n) {
                    c.neighbours = match mac {
                        Some(mac) => self.neighbours.insert(key, mac) != Some(mac),
                        None => self.neighbours.remove(&key).is_some(),
                    };
                }
            }
            RouteNetlinkMessage::DelNeighbour(n) => {
                if let Some((key, _)) = parse_neighbour(n) {
                    c.neighbours = self.neighbours.remove(&key).is_some();
                }
            }
            RouteNetlinkMessage::NewRoute(r) => {
                if let Some((key, hops)) = parse_route(r) {
                    c.routes = self.routes.insert(key, hops.clone()) != Some(hops);
                }
            }
            RouteNetlinkMessage::DelRoute(r) => {
                if let Some((key, _)) = parse_route(r) {
                    c.routes = self.routes.remove(&key).is_some();
                }
            }
            _ => {}
        }
        c
    }

    /// The routes through the Internet interface, one per prefix (its lowest metric).
    pub fn routes(&self) -> Vec<Route> {
        let Some(ix) = self.ifindex() else { return Vec::new() };
        let mut out: Vec<Route> = Vec::new();
        // Keys sort by prefix, then metric: the first of a prefix is the one in use.
        for (&(addr, len, _), (oif, hops)) in &self.routes {
            if *oif != ix || out.last().is_some_and(|r| r.addr == addr && r.len == len) {
                continue;
            }
            out.push(Route { addr, len, hops: hops.clone() });
        }
        out
    }

    /// The MACs of the neighbours on the Internet interface.
    pub fn neighbours(&self) -> HashMap<Ipv4Addr, Mac> {
        let ix = self.ifindex();
        self.neighbours.iter().filter(|((i, _), _)| Some(*i) == ix).map(|((_, ip), mac)| (*ip, *mac)).collect()
    }

    pub fn link_up(&self) -> bool {
        self.link(&self.ifname).is_some_and(|l| l.up)
    }
}

/// A link's index and state.
pub fn parse_link(l: &LinkMessage) -> (u32, Link) {
    let mut link = Link {
        up: l.header.flags.contains(LinkFlags::Up) && l.header.flags.contains(LinkFlags::LowerUp),
        ..Default::default()
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Address(b) => link.mac = b.as_slice().try_into().unwrap_or_default(),
            _ => {}
        }
    }
    (l.header.index, link)
}

/// An IPv4 neighbour entry: its interface and address, and its MAC when the entry is
/// usable (None: incomplete, failed, or without an address).
pub fn parse_neighbour(n: &NeighbourMessage) -> Option<((u32, Ipv4Addr), Option<Mac>)> {
    if n.header.family != AddressFamily::Inet {
        return None;
    }
    let mut ip = None;
    let mut mac = None;
    for a in &n.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(*a),
            NeighbourAttribute::LinkLayerAddress(b) => mac = <[u8; 6]>::try_from(b.as_slice()).ok(),
            _ => {}
        }
    }
    let usable = matches!(
        n.header.state,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
            | NeighbourState::Noarp
    );
    Some(((n.header.ifindex, ip?), mac.filter(|m| usable && *m != [0; 6])))
}

/// An IPv4 unicast route of the main table: its key, and its interface and next hops
/// (several for a multipath route, each with its interface: only those of the
/// route's interface, the first hop's, are kept).
pub fn parse_route(r: &RouteMessage) -> Option<(RouteKey, (u32, Vec<Hop>))> {
    let h = &r.header;
    if h.address_family != AddressFamily::Inet || h.kind != RouteType::Unicast {
        return None;
    }
    let mut table = h.table as u32;
    let (mut dst, mut gw, mut oif, mut metric) = (Ipv4Addr::UNSPECIFIED, None, None, 0);
    let mut multi: Vec<(u32, Hop)> = Vec::new();
    for a in &r.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = *a,
            RouteAttribute::Gateway(RouteAddress::Inet(a)) => gw = Some(*a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::MultiPath(hops) => {
                for nh in hops {
                    let gw = nh.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Gateway(RouteAddress::Inet(g)) => Some(*g),
                        _ => None,
                    });
                    multi.push((nh.interface_index, gw.map_or(Hop::OnLink, Hop::Gateway)));
                }
            }
            _ => {}
        }
    }
    if table != RouteHeader::RT_TABLE_MAIN as u32 || h.destination_prefix_length > 32 {
        return None;
    }
    let key = (dst, h.destination_prefix_length, metric);
    if multi.is_empty() {
        return Some((key, (oif?, vec![gw.map_or(Hop::OnLink, Hop::Gateway)])));
    }
    let ix = multi[0].0;
    Some((key, (ix, multi.into_iter().filter(|(i, _)| *i == ix).map(|(_, h)| h).collect())))
}

fn request(m: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(m));
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

/// Each message of a datagram; those that do not parse are skipped (and counted).
fn messages(buf: &[u8], bad: &AtomicU64) -> Vec<Message> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= buf.len() {
        let len = match NetlinkBuffer::new_checked(&buf[at..]) {
            Ok(b) => b.length() as usize,
            Err(_) => {
                bad.fetch_add(1, Ordering::Relaxed);
                break;
            }
        };
        match Message::deserialize(&buf[at..at + len]) {
            Ok(m) => out.push(m),
            Err(_) => {
                bad.fetch_add(1, Ordering::Relaxed);
            }
        }
        at += (len + 3) & !3;
        if len == 0 {
            break;
        }
    }
    out
}

/// A netlink socket with its receive buffer.
struct Rtnl {
    socket: Socket,
    buf: Vec<u8>,
    seq: u32,
}

impl Rtnl {
    fn open(groups: u32) -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind(&SocketAddr::new(0, groups))?;
        // A burst of route changes (a full table at start) must not overrun it.
        let _ = socket.set_rx_buf_sz(8 << 20);
        socket.set_non_blocking(true)?;
        Ok(Rtnl { socket, buf: Vec::with_capacity(1 << 16), seq: 0 })
    }

    fn send(&mut self, m: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.seq += 1;
        self.socket.send_to(&request(m, flags, self.seq), &SocketAddr::new(0, 0), 0)?;
        Ok(self.seq)
    }

    /// One datagram's messages, None if none waits.
    fn recv(&mut self, bad: &AtomicU64) -> io::Result<Option<Vec<Message>>> {
        self.buf.clear();
        match self.socket.recv(&mut self.buf, 0) {
            Ok(_) => Ok(Some(messages(&self.buf, bad))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits up to `wait` for the answer to request `seq` (its Done, or its error).
    /// Everything received meanwhile goes to `each`.
    fn wait(
        &mut self,
        seq: u32,
        wait: Duration,
        bad: &AtomicU64,
        mut each: impl FnMut(&RouteNetlinkMessage),
    ) -> io::Result<()> {
        let until = Instant::now() + wait;
        loop {
            let Some(msgs) = self.recv(bad)? else {
                if Instant::now() > until {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer from the kernel's rtnetlink"));
                }
                std::thread::sleep(Duration::from_millis(1));
                continue;
            };
            for m in msgs {
                let ours = m.header.sequence_number == seq;
                match m.payload {
                    NetlinkPayload::InnerMessage(inner) => each(&inner),
                    NetlinkPayload::Done(_) if ours => return Ok(()),
                    NetlinkPayload::Error(e) if ours => {
                        return match e.code {
                            None => Ok(()),
                            Some(c) => Err(io::Error::from_raw_os_error(-c.get())),
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    /// Dumps links, neighbours and IPv4 routes into `view`.
    fn dump(&mut self, view: &mut KernelView, bad: &AtomicU64) -> io::Result<()> {
        let mut neigh = NeighbourMessage::default();
        neigh.header.family = AddressFamily::Inet;
        let mut route = RouteMessage::default();
        route.header.address_family = AddressFamily::Inet;
        for m in [
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            RouteNetlinkMessage::GetNeighbour(neigh),
            RouteNetlinkMessage::GetRoute(route),
        ] {
            let seq = self.send(m, NLM_F_REQUEST | NLM_F_DUMP)?;
            self.wait(seq, Duration::from_secs(30), bad, |m| {
                view.apply(m);
            })?;
        }
        Ok(())
    }
}

/// What the watcher thread shares.
pub struct Shared {
    /// The workers' forwarding table.
    pub fib: FibHandle,
    /// Every link by index, for the interfaces' own MACs.
    pub links: Mutex<HashMap<u32, Link>>,
    /// Messages that did not parse.
    pub bad_messages: AtomicU64,
    /// Route sets the table could not hold (the previous table stays).
    pub build_errors: AtomicU64,
    /// Forwarding tables built and swapped in.
    pub rebuilds: AtomicU64,
}

impl Shared {
    pub fn link(&self, name: &str) -> Option<Link> {
        self.links.lock().ok()?.values().find(|l| l.name == name).cloned()
    }
}

/// Follows the kernel's tables for one Internet interface on a thread of its own;
/// stops when dropped.
pub struct Watcher {
    pub shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// How often the thread asks the kernel to resolve what workers wanted (and so at most
/// how often per neighbour).
const RESOLVE_EVERY: Duration = Duration::from_millis(100);
/// How often every gateway, resolved or not, is asked for (see `follow`).
const CONFIRM_EVERY: Duration = Duration::from_secs(20);

impl Watcher {
    /// Dumps the tables (the first forwarding table is ready on return), then follows
    /// them.
    pub fn start(ifname: &str) -> io::Result<Watcher> {
        let groups = (libc::RTMGRP_LINK | libc::RTMGRP_NEIGH | libc::RTMGRP_IPV4_ROUTE) as u32;
        let mut rtnl = Rtnl::open(groups)?;
        let mut view = KernelView::new(ifname);
        let shared = Arc::new(Shared {
            fib: Arc::new(ArcSwap::from_pointee(Fib::empty())),
            links: Mutex::new(HashMap::new()),
            bad_messages: AtomicU64::new(0),
            build_errors: AtomicU64::new(0),
            rebuilds: AtomicU64::new(0),
        });
        rtnl.dump(&mut view, &shared.bad_messages)?;
        let mut table = None;
        publish(&view, &mut table, Changed { routes: true, neighbours: true, links: true }, &shared);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("aftr-rtnl-{ifname}"))
                .spawn(move || follow(rtnl, view, table, &shared, &stop))?
        };
        Ok(Watcher { shared, stop, thread: Some(thread) })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Builds and swaps in the forwarding table after `changed`: the route table only when
/// the routes changed, the small neighbour part otherwise.
fn publish(view: &KernelView, table: &mut Option<Arc<RouteTable>>, changed: Changed, shared: &Shared) {
    if changed.links
        && let Ok(mut l) = shared.links.lock()
    {
        *l = view.links.clone();
    }
    if changed.routes || changed.links || table.is_none() {
        // A link change may change the interface's index, and so its routes.
        match RouteTable::build(&view.routes()) {
            Ok(t) => *table = Some(Arc::new(t)),
            Err(_) => {
                shared.build_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let Some(t) = table else { return };
    shared.fib.store(Arc::new(Fib::new(t.clone(), &view.neighbours(), view.link_up())));
    shared.rebuilds.fetch_add(1, Ordering::Relaxed);
}

fn follow(
    mut rtnl: Rtnl,
    mut view: KernelView,
    mut table: Option<Arc<RouteTable>>,
    shared: &Shared,
    stop: &AtomicBool,
) {
    let poke = UdpSocket::bind("0.0.0.0:0").ok();
    let mut pending = Changed::default();
    let mut last_resolve = Instant::now();
    let mut last_confirm = Instant::now();
    let mut link_up = view.link_up();
    while !stop.load(Ordering::Relaxed) {
        match rtnl.recv(&shared.bad_messages) {
            Ok(Some(msgs)) => {
                for m in msgs {
                    if let NetlinkPayload::InnerMessage(inner) = m.payload {
                        let c = view.apply(&inner);
                        pending.routes |= c.routes;
                        pending.neighbours |= c.neighbours;
                        pending.links |= c.links;
                    }
                }
                continue;
            }
            Ok(None) => {
                // The kernel removes the IPv4 routes through a link that goes down
                // without telling (no RTM_DELROUTE): read them again when the link's
                // state changes.
                if view.link_up() != link_up {
                    link_up = view.link_up();
                    redump(&mut view, &mut pending, shared);
                }
            }
            // ENOBUFS: changes were lost; start again from a dump.
            Err(_) => redump(&mut view, &mut pending, shared),
        }
        // Nothing more waits: one build for the whole burst.
        if pending != Changed::default() {
            publish(&view, &mut table, pending, shared);
            pending = Changed::default();
        }
        if last_resolve.elapsed() >= RESOLVE_EVERY {
            last_resolve = Instant::now();
            // A datagram to the discard port makes the kernel resolve the address
            // (ARP); the answer comes back as an RTM_NEWNEIGH. At most once a period.
            // Gateways without a MAC are asked for whether or not traffic wants them: a
            // board is unfit until one is resolved.
            if let Some(s) = &poke {
                let fib = shared.fib.load();
                let mut ask = fib.take_wanted();
                ask.extend(fib.unresolved_gateways());
                if last_confirm.elapsed() >= CONFIRM_EVERY {
                    // The kernel never confirms an entry our traffic uses (it does not
                    // see that traffic): a datagram through a stale entry makes it probe
                    // again, so a gateway that changed its MAC is learnt anew.
                    last_confirm = Instant::now();
                    ask.extend(fib.routes.gateways().iter().copied());
                }
                ask.sort();
                ask.dedup();
                for ip in ask.into_iter().take(256) {
                    let _ = s.send_to(&[], (ip, 9));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads every table again into `view`, on a socket of its own (answers and changes
/// would interleave on the thread's).
fn redump(view: &mut KernelView, pending: &mut Changed, shared: &Shared) {
    let Ok(mut fresh) = Rtnl::open(0) else { return };
    let mut v = KernelView::new(&view.ifname);
    if fresh.dump(&mut v, &shared.bad_messages).is_ok() {
        *view = v;
        *pending = Changed { routes: true, neighbours: true, links: true };
    }
}

/// RTM_SETLINK with IFLA_XDP { FD = -1, FLAGS = mode } on interface `ifindex`, waiting
/// for the kernel's answer: removes a program attached through netlink.
pub fn set_xdp_none(ifindex: u32, mode: u32) -> io::Result<()> {
    let mut rtnl = Rtnl::open(0)?;
    let mut link = LinkMessage::default();
    link.header.index = ifindex;
    link.attributes.push(LinkAttribute::Xdp(vec![LinkXdp::Fd(-1), LinkXdp::Flags(mode)]));
    let seq = rtnl.send(RouteNetlinkMessage::SetLink(link), NLM_F_REQUEST | NLM_F_ACK)?;
    rtnl.wait(seq, Duration::from_secs(5), &AtomicU64::new(0), |_| {})
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::route::RouteNextHop;

    fn route_msg(dst: &str, len: u8, attrs: Vec<RouteAttribute>) -> RouteMessage {
        let mut r = RouteMessage::default();
        r.header.address_family = AddressFamily::Inet;
        r.header.kind = RouteType::Unicast;
        r.header.table = RouteHeader::RT_TABLE_MAIN;
        r.header.destination_prefix_length = len;
        if len > 0 {
            r.attributes.push(RouteAttribute::Destination(RouteAddress::Inet(dst.parse().unwrap())));
        }
        r.attributes.extend(attrs);
        r
    }

    /// Through the bytes the kernel would send: serialised, then parsed back.
    fn wire(m: RouteNetlinkMessage) -> RouteNetlinkMessage {
        let bytes = request(m, 0, 7);
        let msgs = messages(&bytes, &AtomicU64::new(0));
        assert_eq!(msgs.len(), 1);
        match msgs.into_iter().next().unwrap().payload {
            NetlinkPayload::InnerMessage(m) => m,
            p => panic!("{p:?}"),
        }
    }

    fn gw(s: &str) -> RouteAttribute {
        RouteAttribute::Gateway(RouteAddress::Inet(s.parse().unwrap()))
    }

    fn link_msg(ix: u32, name: &str, up: bool) -> RouteNetlinkMessage {
        let mut l = LinkMessage::default();
        l.header.index = ix;
        if up {
            l.header.flags = LinkFlags::Up | LinkFlags::LowerUp;
        }
        l.attributes.push(LinkAttribute::IfName(name.into()));
        l.attributes.push(LinkAttribute::Address(vec![2, 0, 0, 0, 0, ix as u8]));
        RouteNetlinkMessage::NewLink(l)
    }

    fn neigh_msg(ix: u32, ip: &str, mac: Option<Mac>, state: NeighbourState) -> RouteNetlinkMessage {
        let mut n = NeighbourMessage::default();
        n.header.family = AddressFamily::Inet;
        n.header.ifindex = ix;
        n.header.state = state;
        n.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip.parse().unwrap())));
        if let Some(m) = mac {
            n.attributes.push(NeighbourAttribute::LinkLayerAddress(m.to_vec()));
        }
        RouteNetlinkMessage::NewNeighbour(n)
    }

    #[test]
    fn routes_of_the_main_table_through_the_interface() {
        let mut v = KernelView::new("inet0");
        v.apply(&wire(link_msg(3, "inet0", true)));
        v.apply(&wire(link_msg(4, "other", true)));
        let specific = route_msg("203.0.113.0", 24, vec![gw("198.51.100.1"), RouteAttribute::Oif(3)]);
        assert!(v.apply(&wire(RouteNetlinkMessage::NewRoute(specific.clone()))).routes);
        assert!(!v.apply(&wire(RouteNetlinkMessage::NewRoute(specific.clone()))).routes, "no change");
        v.apply(&wire(RouteNetlinkMessage::NewRoute(route_msg("198.51.100.0", 24, vec![RouteAttribute::Oif(3)]))));
        // Elsewhere, another table, a worse metric: not used.
        v.apply(&wire(RouteNetlinkMessage::NewRoute(route_msg(
            "0.0.0.0",
            0,
            vec![gw("10.0.0.1"), RouteAttribute::Oif(4)],
        ))));
        let mut other_table = route_msg("192.0.2.0", 24, vec![gw("198.51.100.9"), RouteAttribute::Oif(3)]);
        other_table.header.table = 100;
        v.apply(&wire(RouteNetlinkMessage::NewRoute(other_table)));
        v.apply(&wire(RouteNetlinkMessage::NewRoute(route_msg(
            "203.0.113.0",
            24,
            vec![gw("198.51.100.7"), RouteAttribute::Oif(3), RouteAttribute::Priority(100)],
        ))));
        let routes = v.routes();
        assert_eq!(
            routes,
            vec![
                Route { addr: "198.51.100.0".parse().unwrap(), len: 24, hops: vec![Hop::OnLink] },
                Route {
                    addr: "203.0.113.0".parse().unwrap(),
                    len: 24,
                    hops: vec![Hop::Gateway("198.51.100.1".parse().unwrap())]
                },
            ]
        );
        assert!(v.apply(&RouteNetlinkMessage::DelRoute(specific)).routes);
        assert_eq!(v.routes()[1].hops, vec![Hop::Gateway("198.51.100.7".parse().unwrap())], "the next metric");
    }

    #[test]
    fn a_multipath_route_keeps_its_hops() {
        let mut v = KernelView::new("inet0");
        v.apply(&link_msg(3, "inet0", true));
        let hop = |g: &str| {
            let mut h = RouteNextHop::default();
            h.interface_index = 3;
            h.attributes.push(gw(g));
            h
        };
        let m =
            route_msg("0.0.0.0", 0, vec![RouteAttribute::MultiPath(vec![hop("198.51.100.1"), hop("198.51.100.2")])]);
        v.apply(&wire(RouteNetlinkMessage::NewRoute(m)));
        assert_eq!(
            v.routes()[0].hops,
            vec![Hop::Gateway("198.51.100.1".parse().unwrap()), Hop::Gateway("198.51.100.2".parse().unwrap())]
        );
    }

    #[test]
    fn neighbours_and_link_state() {
        let mut v = KernelView::new("inet0");
        v.apply(&wire(link_msg(3, "inet0", true)));
        assert!(v.link_up());
        let mac = [2, 0, 0, 0, 0, 0x11];
        assert!(v.apply(&wire(neigh_msg(3, "198.51.100.1", Some(mac), NeighbourState::Reachable))).neighbours);
        v.apply(&wire(neigh_msg(4, "198.51.100.2", Some(mac), NeighbourState::Permanent)));
        assert_eq!(v.neighbours(), [("198.51.100.1".parse().unwrap(), mac)].into());
        // Failed: gone; incomplete without an address: not there.
        assert!(v.apply(&wire(neigh_msg(3, "198.51.100.1", Some(mac), NeighbourState::Failed))).neighbours);
        v.apply(&wire(neigh_msg(3, "198.51.100.3", None, NeighbourState::Incomplete)));
        assert!(v.neighbours().is_empty());
        assert!(v.apply(&wire(link_msg(3, "inet0", false))).links);
        assert!(!v.link_up());
    }

    #[test]
    fn garbage_is_counted_not_fatal() {
        let bad = AtomicU64::new(0);
        assert!(messages(&[0xff; 40], &bad).is_empty());
        assert!(bad.load(Ordering::Relaxed) > 0);
        assert!(messages(&[1, 2, 3], &bad).is_empty());
    }
}
