//! The HA thread of a board: heartbeats on the HA channel (and, as a witness, on the
//! softwire segment), the role machine, the replication stream out of the board's
//! session events while active, and the installation of the peer's stream while
//! standby. The board is reached through [`Local`], so this crate knows nothing of the
//! daemon around it.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use dataplane::nat::events::{BlockRecord, SessionEvent, SessionRecord};

use crate::replicate::Replicator;
use crate::role::{Action, PeerState, Role, RoleMachine};
use crate::stream::{self, Accepted};
use crate::wire::{self, Builder, Header, Key, Kind, Record};

/// What the HA thread needs of its board.
pub trait Local: Send + 'static {
    /// Installs state from the peer (blocks first); returns how many blocks and
    /// sessions were refused.
    fn install(&self, blocks: Vec<BlockRecord>, sessions: Vec<SessionRecord>) -> (usize, usize);
    /// Removes sessions the peer deleted; returns how many were found.
    fn remove(&self, sessions: Vec<SessionRecord>) -> usize;
    /// The whole table, for a bulk sync.
    fn table(&self) -> (Vec<SessionRecord>, Vec<BlockRecord>);
    /// Starts (true) or stops forwarding; on start, announces the addresses.
    fn set_active(&self, on: bool);
}

/// Data messages in flight (sent, not acknowledged) at most: the stream's window, so a
/// fast active board never floods the standby's socket buffer into retransmissions.
/// It shrinks to what the socket buffer holds (a datagram takes about 4 KiB of it),
/// assuming the peer got the same buffer as this board.
pub const WINDOW: usize = 256;

fn window_for(sock: &UdpSocket) -> usize {
    let granted = socket2::SockRef::from(sock).recv_buffer_size().unwrap_or(0);
    (granted / 4096).clamp(16, WINDOW)
}
/// Socket buffers asked for the HA channel.
const SOCKET_BUFFER: usize = 4 << 20;
/// Live records waiting behind the window at most; beyond, the standby cannot keep up:
/// counted as an overflow and repaired with a bulk sync.
pub const MAX_BACKLOG: usize = 2_000_000;

/// The multicast group of the witness heartbeats on the softwire segment (link-local).
pub const WITNESS_GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xaf7);

#[derive(Debug, Clone)]
pub struct Settings {
    pub slot: u16,
    /// Our end of the HA channel, and the peer's.
    pub bind: SocketAddr,
    pub peer: SocketAddr,
    /// The softwire interface and UDP port for witness heartbeats (None: HA link only).
    pub witness: Option<(String, u16)>,
    pub key: Vec<u8>,
    /// This board is the location's `slot` (the preferred active).
    pub preferred: bool,
    /// `service-ha hot-backup enable`: replicate sessions (otherwise cold standby).
    pub hot_backup: bool,
    pub delay_secs: u32,
    pub preempt_ms: u64,
    pub heartbeat_ms: u64,
    pub dead_count: u32,
    /// Data messages kept for retransmission before the stream resets.
    pub queue: usize,
    pub rto_ms: u64,
    /// Data messages sent per millisecond at most (bulk sync pacing).
    pub pace_per_ms: usize,
}

impl Settings {
    pub fn dead_ms(&self) -> u64 {
        self.heartbeat_ms * self.dead_count as u64
    }
}

/// What `display service-ha` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub role: Role,
    pub preferred: bool,
    pub peer_alive: bool,
    pub peer_role: Option<Role>,
    /// Standby: this board holds the peer's whole eligible table. Active: the peer says
    /// it does.
    pub in_sync: bool,
    pub records_sent: u64,
    pub records_received: u64,
    pub messages_sent: u64,
    pub retransmitted: u64,
    pub install_refused: u64,
    /// Data messages unacknowledged plus records waiting to be sent.
    pub queue_depth: usize,
    /// Age of the oldest unacknowledged message, in milliseconds.
    pub lag_ms: u64,
    /// Sessions waiting for their delay-time.
    pub young: usize,
    pub replicated: usize,
    pub bulk_syncs: u64,
    pub overflows: u64,
    pub rejected_auth: u64,
    pub rejected_replay: u64,
    pub rejected_malformed: u64,
    pub events_dropped: u64,
    /// Unix milliseconds and reason of the last change of role.
    pub last_change: Option<(u64, String)>,
    /// Why the HA channel is not up (its address cannot be bound).
    pub channel_error: Option<String>,
    /// Witness heartbeats on the softwire segment are sent and heard.
    pub witness: bool,
}

enum Cmd {
    Switchover(Sender<Result<String, String>>),
}

/// A running HA thread.
pub struct Node {
    cmd: Sender<Cmd>,
    events: Sender<SessionEvent>,
    dropped: Arc<AtomicU64>,
    status: Arc<Mutex<Status>>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Node {
    /// Binds the HA channel (and the witness) and starts the thread. The board starts
    /// inactive: the role machine decides. An HA address that cannot be bound yet (the
    /// interface is not up) is retried every second, and the board stays inactive and
    /// says why in its status: a board that cannot hear its peer must not go active.
    pub fn start(s: Settings, local: impl Local) -> io::Result<Node> {
        let sock = bind(s.bind).ok();
        // Without its interface (not there yet) the witness is off: the HA link alone
        // decides, as the status says.
        let witness = s.witness.as_ref().and_then(|(ifname, port)| witness_socket(ifname, *port).ok());
        let (cmd_tx, cmd_rx) = bounded(8);
        let (ev_tx, ev_rx) = bounded(1 << 16);
        let dropped = Arc::new(AtomicU64::new(0));
        let status = Arc::new(Mutex::new(Status { preferred: s.preferred, ..Default::default() }));
        let stop = Arc::new(AtomicBool::new(false));
        let mut st = State::new(s, sock, witness, local, dropped.clone(), status.clone());
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new().name("aftr-ha".into()).spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                if !st.round(&cmd_rx, &ev_rx) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })?;
        Ok(Node { cmd: cmd_tx, events: ev_tx, dropped, status, stop, thread: Mutex::new(Some(thread)) })
    }

    /// Hands a session event of the board to the HA thread; never blocks. A full queue
    /// is counted and makes the next stream a bulk sync.
    pub fn event(&self, e: SessionEvent) {
        if let Err(TrySendError::Full(_)) = self.events.try_send(e) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events handed over and not yet taken by the HA thread.
    pub fn event_backlog(&self) -> usize {
        self.events.len()
    }

    pub fn status(&self) -> Status {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A switchover on command: the active board hands over, a standby asks for the role.
    pub fn switchover(&self) -> Result<String, String> {
        let (tx, rx) = bounded(1);
        self.cmd.send(Cmd::Switchover(tx)).map_err(|_| "the HA thread is gone".to_string())?;
        rx.recv_timeout(Duration::from_secs(5)).map_err(|_| "the HA thread did not answer".to_string())?
    }

    /// Stops the thread (no more heartbeats) and closes the sockets.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

fn bind(a: SocketAddr) -> io::Result<UdpSocket> {
    let sock = UdpSocket::bind(a)?;
    sock.set_nonblocking(true)?;
    // Room for a window of datagrams on both sides (the kernel caps it at rmem_max and
    // wmem_max; the window below fits the default too, only slower).
    let s = socket2::SockRef::from(&sock);
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    Ok(sock)
}

/// A UDP socket on the softwire interface for witness heartbeats (link-local multicast).
fn witness_socket(ifname: &str, port: u16) -> io::Result<UdpSocket> {
    let index = std::fs::read_to_string(format!("/sys/class/net/{ifname}/ifindex"))?
        .trim()
        .parse::<u32>()
        .map_err(|_| io::Error::other(format!("no interface index for {ifname}")))?;
    let sock = UdpSocket::bind(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0))?;
    sock.join_multicast_v6(&WITNESS_GROUP, index)?;
    sock.set_multicast_loop_v6(false)?;
    sock.set_nonblocking(true)?;
    // Sends go out of that interface: the scope id of the destination says which.
    Ok(sock)
}

struct State<L: Local> {
    s: Settings,
    key: Key,
    /// None while the HA address cannot be bound.
    sock: Option<UdpSocket>,
    window: usize,
    last_bind: Instant,
    witness: Option<(UdpSocket, SocketAddr)>,
    local: L,
    epoch: u64,
    ctl: u64,
    role: RoleMachine,
    t0: Instant,
    last_hb: Option<Instant>,
    // The peer as heard.
    peer_epoch: u64,
    peer_ctl: [u64; 2],
    // Sending side (active).
    repl: Replicator,
    tx: stream::Sender,
    outq: VecDeque<Record>,
    /// Records of `outq` that belong to the bulk sync under way.
    bulk_left: usize,
    reset_next: bool,
    dropped: Arc<AtomicU64>,
    dropped_seen: u64,
    // Receiving side (standby).
    rx: stream::Receiver,
    last_bulk_request: Option<Instant>,
    release_at: Option<u64>,
    /// When the release arrived (its deltas are waited for one dead interval at most).
    released: Option<Instant>,
    ack_due: bool,
    status: Arc<Mutex<Status>>,
    st: Status,
}

impl<L: Local> State<L> {
    fn new(
        s: Settings,
        sock: Option<UdpSocket>,
        witness: Option<UdpSocket>,
        local: L,
        dropped: Arc<AtomicU64>,
        status: Arc<Mutex<Status>>,
    ) -> Self {
        let now_ms = 0;
        let witness = witness.and_then(|w| {
            let (ifname, port) = s.witness.clone()?;
            let index =
                std::fs::read_to_string(format!("/sys/class/net/{ifname}/ifindex")).ok()?.trim().parse().ok()?;
            Some((w, SocketAddr::V6(SocketAddrV6::new(WITNESS_GROUP, port, 0, index))))
        });
        State {
            key: Key::new(&s.key),
            role: RoleMachine::new(s.preferred, s.dead_ms(), s.preempt_ms, now_ms),
            repl: Replicator::new(s.delay_secs),
            tx: stream::Sender::new(s.queue, Duration::from_millis(s.rto_ms)),
            rx: stream::Receiver::new(s.queue as u64),
            st: Status { preferred: s.preferred, ..Default::default() },
            epoch: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(1),
            ctl: 0,
            t0: Instant::now(),
            last_hb: None,
            peer_epoch: 0,
            peer_ctl: [0; 2],
            outq: VecDeque::new(),
            bulk_left: 0,
            reset_next: true,
            dropped,
            dropped_seen: 0,
            last_bulk_request: None,
            release_at: None,
            released: None,
            ack_due: false,
            window: sock.as_ref().map(window_for).unwrap_or(16),
            sock,
            last_bind: Instant::now().checked_sub(Duration::from_secs(2)).unwrap_or_else(Instant::now),
            witness,
            local,
            status,
            s,
        }
    }

    fn now_ms(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    fn header(&mut self, kind: Kind, flags: u8) -> Header {
        self.ctl += 1;
        Header { kind, flags, slot: self.s.slot, epoch: self.epoch, seq: self.ctl, ack: 0 }
    }

    fn send(&self, d: &[u8]) {
        if let Some(sock) = &self.sock {
            let _ = sock.send_to(d, self.s.peer);
        }
    }

    /// One round: commands, the peer's messages, the board's events, timers, sending.
    /// Returns whether there was anything to do.
    fn round(&mut self, cmds: &Receiver<Cmd>, events: &Receiver<SessionEvent>) -> bool {
        let mut work = false;
        while let Ok(Cmd::Switchover(reply)) = cmds.try_recv() {
            let now = self.now_ms();
            let r = match self.role.switchover(now) {
                Ok(Some(a)) => {
                    let what = match a {
                        Action::Deactivate(_) => "handed the role to the peer",
                        _ => "asked the peer for the role",
                    };
                    self.act(a);
                    Ok(what.to_string())
                }
                Ok(None) => Ok("nothing to do".to_string()),
                Err(e) => Err(e.to_string()),
            };
            let _ = reply.send(r);
        }
        if self.sock.is_none() {
            if self.last_bind.elapsed() >= Duration::from_secs(1) {
                self.last_bind = Instant::now();
                match bind(self.s.bind) {
                    Ok(sock) => {
                        self.window = window_for(&sock);
                        self.sock = Some(sock);
                        self.st.channel_error = None;
                        // The wait for a peer starts now.
                        self.role =
                            RoleMachine::new(self.s.preferred, self.s.dead_ms(), self.s.preempt_ms, self.now_ms());
                    }
                    Err(e) => self.st.channel_error = Some(format!("cannot bind {}: {e}", self.s.bind)),
                }
            }
            if self.sock.is_none() {
                for _ in events.try_iter().take(1 << 16) {}
                self.publish();
                return false;
            }
        }
        let mut buf = [0u8; 2048];
        for path in 0..2 {
            for _ in 0..512 {
                let got = match (path, &self.sock, &self.witness) {
                    (0, Some(sock), _) => sock.recv_from(&mut buf),
                    (0, None, _) => break,
                    (_, _, Some((w, _))) => w.recv_from(&mut buf),
                    _ => break,
                };
                let Ok((n, _)) = got else { break };
                work = true;
                let d = buf[..n].to_vec();
                self.on_datagram(&d, path);
            }
        }
        let now_s = (unix_ms() / 1000) as u32;
        let active = self.role.role() == Role::Active;
        let replicate = active && self.s.hot_backup && self.role.peer_alive(self.now_ms());
        for e in events.try_iter().take(1 << 16) {
            work = true;
            if active {
                self.repl.on_event(e, now_s);
            }
        }
        let lost = self.dropped.load(Ordering::Relaxed);
        if lost != self.dropped_seen {
            self.st.events_dropped = lost;
            self.dropped_seen = lost;
            if replicate {
                // Events were lost: what the standby has can no longer be trusted.
                self.bulk_sync();
            }
        }
        if active {
            self.repl.tick(now_s);
            if replicate {
                self.outq.extend(self.repl.drain());
                if self.outq.len().saturating_sub(self.bulk_left) > MAX_BACKLOG {
                    self.st.overflows += 1;
                    self.bulk_sync();
                }
            } else {
                self.repl.drain();
            }
        }
        work |= self.send_data();
        self.timers();
        self.publish();
        work
    }

    fn on_datagram(&mut self, d: &[u8], path: usize) {
        let m = match wire::open(&self.key, d) {
            Ok(m) => m,
            Err(wire::WireError::Auth) => {
                self.st.rejected_auth += 1;
                return;
            }
            Err(_) => {
                self.st.rejected_malformed += 1;
                return;
            }
        };
        let h = m.header;
        if h.slot == self.s.slot {
            // Our own multicast, or a board with our slot number: never the peer.
            return;
        }
        if h.epoch < self.peer_epoch {
            self.st.rejected_replay += 1;
            return;
        }
        if h.epoch > self.peer_epoch {
            // The peer (re)started: its stream starts over.
            self.peer_epoch = h.epoch;
            self.peer_ctl = [0; 2];
            self.rx.forget();
            if self.role.role() != Role::Active {
                self.role.in_sync = false;
            }
        }
        if h.kind != Kind::Data {
            if h.seq <= self.peer_ctl[path] {
                self.st.rejected_replay += 1;
                return;
            }
            self.peer_ctl[path] = h.seq;
        }
        let now = self.now_ms();
        match h.kind {
            Kind::Heartbeat => {
                let Ok(peer) = wire::decode_heartbeat(m.payload) else {
                    self.st.rejected_malformed += 1;
                    return;
                };
                if let Some(a) = self.role.on_heartbeat(peer, now) {
                    self.act(a);
                }
            }
            Kind::Data => {
                if self.role.role() == Role::Active {
                    return;
                }
                let mut stored = Vec::with_capacity(1 + m.payload.len());
                stored.push(h.flags);
                stored.extend_from_slice(m.payload);
                match self.rx.accept(h.seq, h.flags & wire::FLAG_RESET != 0, &stored) {
                    Accepted::Deliver(msgs) => {
                        for msg in msgs {
                            self.apply(&msg);
                        }
                    }
                    Accepted::Dropped if !self.rx.started() => self.request_bulk(false),
                    _ => {}
                }
                self.ack_due = true;
            }
            Kind::Ack => {
                let Some(missing) = stream::decode_missing(m.payload) else {
                    self.st.rejected_malformed += 1;
                    return;
                };
                for d in self.tx.on_ack(h.ack, &missing, Instant::now()) {
                    self.send(&d);
                }
            }
            Kind::BulkRequest => {
                if self.role.role() == Role::Active && self.s.hot_backup {
                    self.bulk_sync();
                }
            }
            Kind::Switchover => {
                if h.flags & wire::FLAG_TAKE_OVER != 0 {
                    if let Some(a) = self.role.on_request(now) {
                        self.act(a);
                    }
                } else if h.flags & wire::FLAG_RELEASED != 0 {
                    // Take over once every delta sent before the release has arrived.
                    self.release_at = Some(h.ack);
                    self.released = Some(Instant::now());
                    self.check_release();
                }
            }
        }
    }

    /// Applies one delivered Data message: runs of blocks and sessions installed, runs
    /// of deletions removed, in order.
    fn apply(&mut self, msg: &[u8]) {
        let (flags, payload) = (msg[0], &msg[1..]);
        let (mut blocks, mut sessions, mut gone) = (Vec::new(), Vec::new(), Vec::new());
        let flush = |l: &L, b: &mut Vec<BlockRecord>, s: &mut Vec<SessionRecord>, g: &mut Vec<SessionRecord>| {
            let mut refused = 0;
            if !b.is_empty() || !s.is_empty() {
                let (x, y) = l.install(std::mem::take(b), std::mem::take(s));
                refused += (x + y) as u64;
            }
            if !g.is_empty() {
                l.remove(std::mem::take(g));
            }
            refused
        };
        for r in wire::records(payload) {
            let Ok(r) = r else {
                self.st.rejected_malformed += 1;
                break;
            };
            self.st.records_received += 1;
            match r {
                Record::Block(b) => {
                    if !gone.is_empty() {
                        self.st.install_refused += flush(&self.local, &mut blocks, &mut sessions, &mut gone);
                    }
                    blocks.push(b);
                }
                Record::Session(s) => {
                    if !gone.is_empty() {
                        self.st.install_refused += flush(&self.local, &mut blocks, &mut sessions, &mut gone);
                    }
                    sessions.push(s);
                }
                Record::SessionDeleted(s) => {
                    if !blocks.is_empty() || !sessions.is_empty() {
                        self.st.install_refused += flush(&self.local, &mut blocks, &mut sessions, &mut gone);
                    }
                    gone.push(s);
                }
                // The standby's engine releases a block with its last session.
                Record::BlockReleased(_) => {}
            }
        }
        self.st.install_refused += flush(&self.local, &mut blocks, &mut sessions, &mut gone);
        if flags & wire::FLAG_BULK_END != 0 {
            self.role.in_sync = true;
        }
        self.check_release();
    }

    fn check_release(&mut self) {
        if let Some(at) = self.release_at {
            let (next, _) = self.rx.ack(0);
            // The deltas sent before the release are in; or they were lost with the
            // peer's queue and waiting longer would only leave no board active.
            let waited = self.released.is_some_and(|t| t.elapsed() >= Duration::from_millis(self.s.dead_ms()));
            if next >= at || !self.rx.started() || waited {
                self.release_at = None;
                let now = self.now_ms();
                if let Some(a) = self.role.on_released(now) {
                    self.act(a);
                }
            }
        }
    }

    /// Carries out what the role machine decided.
    fn act(&mut self, a: Action) {
        match a {
            Action::Activate(why) => {
                self.local.set_active(true);
                self.st.last_change = Some((unix_ms(), format!("active: {why}")));
                // Everything from now on is ours to replicate; a returning peer asks
                // for a bulk sync.
                self.rx.forget();
                self.release_at = None;
            }
            Action::Deactivate(why) => {
                if self.role.peer_alive(self.now_ms()) && self.s.hot_backup {
                    // Final deltas first: everything queued goes before the release.
                    while self.send_data_unpaced(true) {}
                }
                self.local.set_active(false);
                self.st.last_change = Some((unix_ms(), format!("standby: {why}")));
                self.outq.clear();
                self.bulk_left = 0;
                self.tx.reset();
                self.reset_next = true;
                let mut h = self.header(Kind::Switchover, wire::FLAG_RELEASED);
                h.ack = self.tx.next_seq();
                let d = Builder::new(&h).finish(&self.key);
                self.send(&d);
                self.request_bulk(true);
            }
            Action::RequestRole => {
                let h = self.header(Kind::Switchover, wire::FLAG_TAKE_OVER);
                let d = Builder::new(&h).finish(&self.key);
                self.send(&d);
            }
        }
    }

    fn request_bulk(&mut self, force: bool) {
        if !self.s.hot_backup {
            return;
        }
        let due = self.last_bulk_request.is_none_or(|t| t.elapsed() >= Duration::from_millis(self.s.dead_ms()));
        if force || due {
            self.last_bulk_request = Some(Instant::now());
            let h = self.header(Kind::BulkRequest, 0);
            let d = Builder::new(&h).finish(&self.key);
            self.send(&d);
        }
    }

    /// Starts the stream over with the whole eligible table.
    fn bulk_sync(&mut self) {
        let (sessions, blocks) = self.local.table();
        let now_s = (unix_ms() / 1000) as u32;
        let bulk = self.repl.restart(&sessions, &blocks, now_s);
        self.tx.reset();
        self.outq.clear();
        self.bulk_left = bulk.len();
        self.outq.extend(bulk);
        self.reset_next = true;
        self.st.bulk_syncs += 1;
    }

    /// Sends queued records as Data messages, paced; false if there was nothing.
    fn send_data(&mut self) -> bool {
        let mut any = false;
        for _ in 0..self.s.pace_per_ms.max(1) {
            if self.tx.depth() >= self.window || !self.send_data_unpaced(false) {
                break;
            }
            any = true;
        }
        if self.tx.depth() > 0 {
            for d in self.tx.due(Instant::now(), 64) {
                self.send(&d);
            }
        }
        any
    }

    /// Sends one Data message of queued records (a bulk's end marked even when empty);
    /// only an active board streams, but for the final deltas of a hand-over (`force`).
    fn send_data_unpaced(&mut self, force: bool) -> bool {
        if self.role.role() != Role::Active && !force {
            return false;
        }
        let end_pending = self.reset_next && self.bulk_left == 0 && self.st.bulk_syncs > 0;
        if self.outq.is_empty() && !end_pending {
            return false;
        }
        let seq = self.tx.next_seq();
        let mut h = Header { kind: Kind::Data, flags: 0, slot: self.s.slot, epoch: self.epoch, seq, ack: 0 };
        if self.reset_next {
            h.flags |= wire::FLAG_RESET;
        }
        let bulk = self.bulk_left > 0 || end_pending;
        let mut b = Builder::new(&h);
        while let Some(r) = self.outq.front() {
            if !b.push(r) {
                break;
            }
            self.outq.pop_front();
            self.bulk_left = self.bulk_left.saturating_sub(1);
        }
        let mut flags = h.flags;
        if bulk {
            flags |= wire::FLAG_BULK;
            if self.bulk_left == 0 {
                flags |= wire::FLAG_BULK_END;
            }
        }
        b.set_flags(flags);
        self.st.records_sent += b.records() as u64;
        let d = b.finish(&self.key);
        self.send(&d);
        self.reset_next = false;
        if self.tx.sent(d, Instant::now()).is_err() {
            // The standby fell too far behind: count it and start over with a bulk.
            self.st.overflows += 1;
            self.bulk_sync();
        }
        true
    }

    fn timers(&mut self) {
        let now = self.now_ms();
        if self.last_hb.is_none_or(|t| t.elapsed() >= Duration::from_millis(self.s.heartbeat_ms)) {
            self.last_hb = Some(Instant::now());
            let me = PeerState { role: self.role.role(), preferred: self.s.preferred, in_sync: self.role.in_sync };
            let h = self.header(Kind::Heartbeat, 0);
            let mut b = Builder::new(&h);
            b.raw(&wire::encode_heartbeat(&me));
            let d = b.finish(&self.key);
            self.send(&d);
            if let Some((w, to)) = &self.witness {
                let _ = w.send_to(&d, to);
            }
        }
        if self.ack_due {
            self.ack_due = false;
            let (cum, missing) = self.rx.ack(64);
            let mut h = self.header(Kind::Ack, 0);
            h.ack = cum;
            let mut b = Builder::new(&h);
            b.raw(&stream::encode_missing(&missing));
            let d = b.finish(&self.key);
            self.send(&d);
        }
        if self.release_at.is_some() {
            self.check_release();
        }
        if let Some(a) = self.role.tick(now) {
            self.act(a);
        }
        // A standby out of sync keeps asking while the active peer is there.
        if self.role.role() == Role::Standby
            && !self.role.in_sync
            && self.role.peer_alive(now)
            && self.role.peer().is_some_and(|p| p.role == Role::Active)
        {
            self.request_bulk(false);
        }
    }

    fn publish(&mut self) {
        let now = self.now_ms();
        let st = &mut self.st;
        st.role = self.role.role();
        st.peer_alive = self.role.peer_alive(now);
        st.peer_role = self.role.peer().map(|p| p.role);
        st.in_sync = match st.role {
            Role::Active => self.role.peer().is_some_and(|p| p.in_sync) && st.peer_alive,
            _ => self.role.in_sync,
        };
        st.messages_sent = self.tx.stats.sent;
        st.retransmitted = self.tx.stats.retransmitted;
        st.queue_depth = self.tx.depth() + self.outq.len();
        st.lag_ms = self.tx.oldest_age(Instant::now()).map(|d| d.as_millis() as u64).unwrap_or(0);
        st.young = self.repl.young();
        st.witness = self.witness.is_some();
        st.replicated = self.repl.replicated();
        if let Ok(mut g) = self.status.try_lock() {
            *g = st.clone();
        }
    }
}
