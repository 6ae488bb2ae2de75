//! The HA thread of a board: the shell around [`Protocol`]. It owns the sockets (the
//! HA channel and the witness on the softwire segment), the thread, the clock and the
//! board (reached through [`Local`], so this crate knows nothing of the daemon around
//! it): what the sockets and the board's event queue bring goes into the protocol, what
//! the protocol asks for goes out to the sockets and the board. No protocol rule lives
//! here.

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, bounded};
use dataplane::nat::events::{BlockRecord, Refused, SessionEvent, SessionRecord, SweepKeys};

use crate::protocol::{Channel, Incarnation, Now, Output, Protocol};
pub use crate::protocol::{Location, LocationStatus, MAX_BACKLOG, Settings, Status};

/// What the HA thread needs of its board. Installs, removals and table walks run on a
/// thread of their own (`aftr-ha-board`), so heartbeats never wait behind them; a change
/// of role is carried out at once by the HA thread.
pub trait Local: Send + Sync + 'static {
    /// Installs state from the peer (blocks first); returns what was refused.
    fn install(&self, blocks: Vec<BlockRecord>, sessions: Vec<SessionRecord>) -> Refused;
    /// Removes the sessions, then the blocks, of `locations` (bits by index) that a bulk
    /// sync did not bring (`keep`); returns how many went, or, if it could not finish,
    /// how many went all the same and why.
    fn sweep(&self, keep: Arc<SweepKeys>, locations: u64) -> Result<usize, (usize, String)>;
    /// Removes sessions the peer deleted; returns how many were found.
    fn remove(&self, sessions: Vec<SessionRecord>) -> usize;
    /// The whole table, for a bulk sync.
    fn table(&self) -> (Vec<SessionRecord>, Vec<BlockRecord>);
    /// Starts (true) or stops forwarding for the location with this index (in the
    /// settings' `locations`); on start, announces its addresses.
    fn set_active(&self, location: usize, on: bool);
    /// The peer's softwire MAC and the locations it is active for (bits by index):
    /// softwire frames of those locations go on to it.
    fn set_peer(&self, mac: [u8; 6], active: u64);
    /// Each worker's rounds so far: one whose count stops for [`STUCK`] is stuck, and
    /// the board unfit. Empty (the default): no workers to watch.
    fn progress(&self) -> Vec<u64> {
        Vec::new()
    }
    /// Session events the board's workers dropped (their rings were full), in all: a
    /// loss makes the next stream a bulk sync, as one of the HA thread's own queue does.
    fn events_lost(&self) -> u64 {
        0
    }
    /// Why the board cannot serve for a reason of its own (no next hop towards the
    /// Internet), if it cannot: as a link down, it makes the board unfit.
    fn unfit(&self) -> Option<String> {
        None
    }
}

/// A worker whose rounds stop this long is stuck (a worker's round takes at most about
/// 10 ms, 100 ms without packet I/O; a commit's carry-over of a million sessions takes
/// about a second): the board gives its locations to a fit peer.
pub const STUCK: Duration = Duration::from_secs(2);

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
/// Session events waiting for the HA thread at most; beyond, they are counted as
/// dropped and the next stream is a bulk sync.
const EVENT_QUEUE: usize = 1 << 16;

/// The multicast group of the witness heartbeats on the softwire segment (link-local).
pub const WITNESS_GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xaf7);

/// The board's end of the HA thread's event input: cheap to clone, never blocks.
/// Events cross in batches (the board drains its workers' rings in batches): one
/// hand-over between threads per batch, not per event, which at a million events a
/// second is most of what the crossing costs.
#[derive(Clone)]
pub struct EventSender {
    tx: Sender<Vec<SessionEvent>>,
    /// Events handed over and not yet taken, in all batches.
    pending: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
}

impl EventSender {
    /// Hands a session event of the board to the HA thread; never blocks. A full queue
    /// is counted (`events_dropped`) and makes the next stream a bulk sync.
    pub fn send(&self, e: SessionEvent) {
        self.send_batch(vec![e]);
    }

    /// Hands a batch of events over, in order; never blocks. A batch that does not fit
    /// in what is left of the queue ([`EVENT_QUEUE`] events) is dropped whole and
    /// counted, as [`EventSender::send`] counts one.
    pub fn send_batch(&self, batch: Vec<SessionEvent>) {
        let n = batch.len();
        if n == 0 {
            return;
        }
        if self.pending.fetch_add(n, Ordering::AcqRel) + n > EVENT_QUEUE || self.tx.try_send(batch).is_err() {
            self.pending.fetch_sub(n, Ordering::AcqRel);
            self.dropped.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Events handed over and not yet taken by the HA thread.
    pub fn backlog(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }
}

/// The HA thread's end of its event input; give it to [`Node::start_with`].
pub struct EventReceiver {
    rx: Receiver<Vec<SessionEvent>>,
    sender: EventSender,
}

impl EventReceiver {
    /// The batches waiting, up to about [`EVENT_QUEUE`] events in all, each taken off
    /// the backlog.
    fn take(&self) -> impl Iterator<Item = Vec<SessionEvent>> + '_ {
        let mut taken = 0;
        std::iter::from_fn(move || {
            if taken >= EVENT_QUEUE {
                return None;
            }
            let batch = self.rx.try_recv().ok()?;
            taken += batch.len();
            self.sender.pending.fetch_sub(batch.len(), Ordering::AcqRel);
            Some(batch)
        })
    }
}

/// The HA thread's event input, made before the thread: the board can start first and
/// feed its events to the [`EventSender`] at once (they wait, up to 65536, and beyond
/// are counted as dropped), then the node starts with the [`EventReceiver`]
/// ([`Node::start_with`]).
pub fn events() -> (EventSender, EventReceiver) {
    // A batch holds one event at least: the events' bound holds the batches too.
    let (tx, rx) = bounded(EVENT_QUEUE);
    let sender = EventSender { tx, pending: Arc::new(AtomicUsize::new(0)), dropped: Arc::new(AtomicU64::new(0)) };
    (sender.clone(), EventReceiver { rx, sender })
}

/// How often the links' carrier and the workers' progress are read.
const LINK_POLL: Duration = Duration::from_millis(50);

/// Whether interface `ifname` is up (its operational state, RFC 2863: set down, or its
/// carrier or lower layer lost, is down). An interface this host cannot read (absent,
/// or not in this network namespace's /sys) does not count as down: only a link seen
/// down makes the board unfit.
fn carrier(ifname: &str) -> bool {
    let state = std::fs::read_to_string(format!("/sys/class/net/{ifname}/operstate")).unwrap_or_default();
    !matches!(state.trim(), "down" | "lowerlayerdown" | "notpresent")
}

/// Changes of role waiting for the notify program at most; beyond, they are dropped and
/// counted (`Status::notify_dropped`): a pair that flaps never piles up programs.
const NOTIFY_QUEUE: usize = 32;

/// One run of the notify program: the program, then `SLOT LOCATION ROLE REASON`.
type Notice = (String, u16, u32, &'static str, String);

/// The notify thread, which runs the notices one after the other, in order, so that
/// one program runs at a time however often the role changes; the HA thread never
/// waits for it.
struct Notifier {
    tx: Sender<Notice>,
    /// Notices there was no room for.
    dropped: u64,
}

impl Notifier {
    fn start() -> io::Result<Notifier> {
        let (tx, rx) = crossbeam_channel::bounded::<Notice>(NOTIFY_QUEUE);
        std::thread::Builder::new().name("aftr-ha-notify".into()).spawn(move || {
            for (program, slot, location, role, why) in rx {
                notify(&program, slot, location, role, &why);
            }
        })?;
        Ok(Notifier { tx, dropped: 0 })
    }

    /// Queues a notice; a full queue drops it, counted and logged.
    fn send(&mut self, notice: Notice) {
        let (program, slot) = (notice.0.clone(), notice.1);
        if self.tx.try_send(notice).is_err() {
            self.dropped += 1;
            tracing::warn!(
                "slot {slot}: notify {program}: {NOTIFY_QUEUE} changes of role wait already; this one dropped ({} in all)",
                self.dropped
            );
        }
    }
}

/// Runs the notify program for a change of role, as keepalived runs its notify scripts:
/// `PROGRAM SLOT LOCATION ROLE REASON` (role `active` or `standby`), the same in the
/// environment (`AFTR_SLOT`, `AFTR_LOCATION`, `AFTR_ROLE`, `AFTR_REASON`), on the
/// notify thread. A program that cannot start or fails is logged.
fn notify(program: &str, slot: u16, location: u32, role: &str, why: &str) {
    let args = [slot.to_string(), location.to_string(), role.to_string(), why.to_string()];
    let status = std::process::Command::new(program)
        .args(&args)
        .envs([
            ("AFTR_SLOT", &args[0]),
            ("AFTR_LOCATION", &args[1]),
            ("AFTR_ROLE", &args[2]),
            ("AFTR_REASON", &args[3]),
        ])
        .stdin(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => tracing::warn!("slot {slot}: notify {program}: {s}"),
        Err(e) => tracing::warn!("slot {slot}: notify {program}: {e}"),
    }
}

/// Work for the board thread, in the order the protocol asked for it.
enum Job {
    Install(Vec<BlockRecord>, Vec<SessionRecord>),
    Remove(Vec<SessionRecord>),
    Table(u64),
    Sweep((Vec<u64>, Vec<u64>), u64),
}

/// What the board thread answers.
enum Done {
    /// What an install refused.
    Installed(Refused),
    /// Sessions and blocks a sweep removed (Err: it did not finish).
    Swept(Result<usize, (usize, String)>),
    /// The table of the request with this number.
    Table(u64, Vec<SessionRecord>, Vec<BlockRecord>),
}

/// Records of the installs merged into one at most: a worker takes them in one go
/// between two rounds (a few milliseconds for this many).
const MERGED_INSTALL: usize = 8192;

/// Starts the board thread: it does the jobs in order until their sender goes (the HA
/// thread ends), and sends back what they gave.
fn board_thread<L: Local>(local: Arc<L>) -> io::Result<(Sender<Job>, Receiver<Done>)> {
    let (jobs, todo) = crossbeam_channel::unbounded::<Job>();
    let (tell, done) = crossbeam_channel::unbounded();
    std::thread::Builder::new().name("aftr-ha-board".into()).spawn(move || {
        let mut held: Option<Job> = None;
        loop {
            let Some(job) = held.take().or_else(|| todo.recv().ok()) else { return };
            let answer = match job {
                Job::Install(mut blocks, mut sessions) => {
                    // The installs queued behind this one go with it: each is a round
                    // trip to every worker, which a worker answers between rounds (up to
                    // 10 ms apart with blocking polls), so one at a time installs only
                    // about a thousand sessions a second.
                    let mut merged = 1;
                    while blocks.len() + sessions.len() < MERGED_INSTALL {
                        match todo.try_recv() {
                            Ok(Job::Install(b, s)) => {
                                blocks.extend(b);
                                sessions.extend(s);
                                merged += 1;
                            }
                            Ok(other) => {
                                held = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let refused = local.install(blocks, sessions);
                    // One answer per install asked, once all are done (a standby is in
                    // sync when its installs are): the refusals with the first, so that
                    // they are known before any answer completes a bulk.
                    if tell.send(Done::Installed(refused)).is_err() {
                        return;
                    }
                    for _ in 2..merged {
                        if tell.send(Done::Installed(Refused::default())).is_err() {
                            return;
                        }
                    }
                    if merged == 1 {
                        continue;
                    }
                    Done::Installed(Refused::default())
                }
                Job::Sweep((sessions, blocks), locations) => {
                    // Sorted here, not on the HA thread: a million keys take a while.
                    Done::Swept(local.sweep(Arc::new(SweepKeys::new(sessions, blocks)), locations))
                }
                Job::Remove(sessions) => {
                    local.remove(sessions);
                    continue;
                }
                Job::Table(number) => {
                    let (sessions, blocks) = local.table();
                    Done::Table(number, sessions, blocks)
                }
            };
            if tell.send(answer).is_err() {
                return;
            }
        }
    })?;
    Ok((jobs, done))
}

enum Cmd {
    Switchover(Option<u32>, Sender<Result<String, String>>),
    Reconfigure(Box<Settings>, Sender<Result<(), String>>),
}

/// A running HA thread.
pub struct Node {
    cmd: Sender<Cmd>,
    events: EventSender,
    status: Arc<Mutex<Status>>,
    stop: Arc<AtomicBool>,
    /// The thread's rounds so far (a watchdog sees it live).
    rounds: Arc<AtomicU64>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// This run's nonce (see [`Incarnation`]), from the kernel's random source.
fn nonce() -> io::Result<u128> {
    use rand::TryRng;
    let mut b = [0u8; 16];
    rand::rngs::SysRng
        .try_fill_bytes(&mut b)
        .map_err(|e| io::Error::other(format!("the kernel's random source: {e}")))?;
    // 0 means "not heard yet" on the wire.
    Ok(u128::from_be_bytes(b).max(1))
}

/// The clock, read once per step of the thread: the protocol reads none.
fn now() -> Now {
    let unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    Now { at: Instant::now(), unix_ms }
}

impl Node {
    /// Binds the HA channel (and the witness) and starts the thread. The board starts
    /// inactive: the role machine decides. An HA address that cannot be bound yet (the
    /// interface is not up) is retried every second, and the board stays inactive and
    /// says why in its status: a board that cannot hear its peer must not go active.
    pub fn start(s: Settings, local: impl Local) -> io::Result<Node> {
        let (_, events) = events();
        Node::start_with(s, local, events)
    }

    /// [`Node::start`], with an event input made beforehand by [`events`] (the board
    /// may already be feeding it).
    pub fn start_with(s: Settings, local: impl Local, events: EventReceiver) -> io::Result<Node> {
        let sock = bind(s.bind).ok();
        // Without its interface (not there yet) the witness is off, retried every
        // second: until then the HA link alone decides, as the status says.
        let witness = s.witness.as_ref().and_then(|(ifname, port)| witness_socket(ifname, *port).ok());
        let (cmd_tx, cmd_rx) = bounded(8);
        let status =
            Arc::new(Mutex::new(Status { preferred: s.locations.iter().any(|l| l.preferred), ..Default::default() }));
        let stop = Arc::new(AtomicBool::new(false));
        let sender = events.sender.clone();
        let mut shell = Shell::new(s, sock, witness, local, events, status.clone())?;
        let stop2 = stop.clone();
        let rounds = Arc::new(AtomicU64::new(0));
        let rounds2 = rounds.clone();
        let thread = std::thread::Builder::new().name("aftr-ha".into()).spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                if !shell.round(&cmd_rx) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                rounds2.fetch_add(1, Ordering::Relaxed);
            }
        })?;
        Ok(Node { cmd: cmd_tx, events: sender, status, stop, rounds, thread: Mutex::new(Some(thread)) })
    }

    /// Hands a session event of the board to the HA thread; never blocks. A full queue
    /// is counted and makes the next stream a bulk sync.
    pub fn event(&self, e: SessionEvent) {
        self.events.send(e);
    }

    /// [`Node::event`] for a batch, in order (see [`EventSender::send_batch`]).
    pub fn events(&self, batch: Vec<SessionEvent>) {
        self.events.send_batch(batch);
    }

    /// Events handed over and not yet taken by the HA thread.
    pub fn event_backlog(&self) -> usize {
        self.events.backlog()
    }

    /// The HA thread's rounds so far (one every millisecond or so): a count that stops
    /// is a hung thread.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    pub fn status(&self) -> Status {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A switchover on command, for one location or all (see
    /// `Protocol::switchover`): where active, the board hands over; where standby, it
    /// asks for the role.
    pub fn switchover(&self, location: Option<u32>) -> Result<String, String> {
        let (tx, rx) = bounded(1);
        self.cmd.send(Cmd::Switchover(location, tx)).map_err(|_| "the HA thread is gone".to_string())?;
        rx.recv_timeout(Duration::from_secs(5)).map_err(|_| "the HA thread did not answer".to_string())?
    }

    /// Applies new settings from a commit (see `Protocol::reconfigure`: timers,
    /// delay-time and key at once; what cannot change while running is refused).
    pub fn reconfigure(&self, s: Settings) -> Result<(), String> {
        let (tx, rx) = bounded(1);
        self.cmd.send(Cmd::Reconfigure(Box::new(s), tx)).map_err(|_| "the HA thread is gone".to_string())?;
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

/// A UDP socket on the softwire interface for witness heartbeats (link-local
/// multicast), and where they go: the group on that interface.
fn witness_socket(ifname: &str, port: u16) -> io::Result<(UdpSocket, SocketAddr)> {
    let index = std::fs::read_to_string(format!("/sys/class/net/{ifname}/ifindex"))?
        .trim()
        .parse::<u32>()
        .map_err(|_| io::Error::other(format!("no interface index for {ifname}")))?;
    let sock = UdpSocket::bind(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0))?;
    sock.join_multicast_v6(&WITNESS_GROUP, index)?;
    sock.set_multicast_loop_v6(false)?;
    sock.set_nonblocking(true)?;
    // Sends go out of that interface: the scope id of the destination says which.
    Ok((sock, SocketAddr::V6(SocketAddrV6::new(WITNESS_GROUP, port, 0, index))))
}

/// The thread's state: the protocol, and what it is tied to.
struct Shell<L: Local> {
    proto: Protocol,
    bind: SocketAddr,
    peer: SocketAddr,
    /// None while the HA address cannot be bound.
    sock: Option<UdpSocket>,
    last_bind: Instant,
    channel_error: Option<String>,
    witness: Option<(UdpSocket, SocketAddr)>,
    /// The witness's interface and port, retried every second while it is not open.
    witness_want: Option<(String, u16)>,
    /// The interfaces whose carrier makes the board fit, and when they were last read.
    links: Vec<String>,
    last_links: Instant,
    /// Each worker's rounds as last read, and since when unchanged.
    progress: Vec<(u64, Instant)>,
    /// Why the board is unfit (a link down, a worker stuck), if it is.
    unfit: Option<String>,
    last_witness: Instant,
    local: Arc<L>,
    /// Work for the board, done in order on the board thread; its answers come back.
    jobs: Sender<Job>,
    done: Receiver<Done>,
    events: EventReceiver,
    status: Arc<Mutex<Status>>,
    slot: u16,
    /// The peer's configuration differed at the last publication (said once per change).
    config_differed: bool,
    /// `service-ha notify`: the program run on each change of role, by the notify
    /// thread; notices it had no room for.
    notify: Option<String>,
    notifier: Notifier,
}

impl<L: Local> Shell<L> {
    fn new(
        s: Settings,
        sock: Option<UdpSocket>,
        witness: Option<(UdpSocket, SocketAddr)>,
        local: L,
        events: EventReceiver,
        status: Arc<Mutex<Status>>,
    ) -> io::Result<Self> {
        let epoch = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(1);
        let me = Incarnation { epoch, nonce: nonce()? };
        let window = sock.as_ref().map(window_for).unwrap_or(16);
        let local = Arc::new(local);
        let (jobs, done) = board_thread(local.clone())?;
        Ok(Shell {
            witness_want: s.witness.clone(),
            last_witness: Instant::now(),
            links: s.links.clone(),
            last_links: Instant::now(),
            progress: Vec::new(),
            unfit: None,
            jobs,
            done,
            bind: s.bind,
            peer: s.peer,
            slot: s.slot,
            config_differed: false,
            notify: s.notify.clone(),
            notifier: Notifier::start()?,
            proto: Protocol::new(s, me, window, witness.is_some(), now()),
            sock,
            last_bind: Instant::now().checked_sub(Duration::from_secs(2)).unwrap_or_else(Instant::now),
            channel_error: None,
            witness,
            local,
            events,
            status,
        })
    }

    /// One round: commands, the peer's messages, the board's events, timers, sending.
    /// Returns whether there was anything to do.
    fn round(&mut self, cmds: &Receiver<Cmd>) -> bool {
        let mut work = false;
        while let Ok(cmd) = cmds.try_recv() {
            match cmd {
                Cmd::Switchover(location, reply) => {
                    let r = self.proto.switchover(location, now());
                    self.carry_out();
                    let _ = reply.send(r);
                }
                Cmd::Reconfigure(s, reply) => {
                    let notify = s.notify.clone();
                    let r = self.proto.reconfigure(*s);
                    if r.is_ok() {
                        self.notify = notify;
                    }
                    let _ = reply.send(r);
                }
            }
        }
        if self.last_links.elapsed() >= LINK_POLL {
            self.last_links = Instant::now();
            let unfit = self.unfitness();
            if unfit != self.unfit {
                match &unfit {
                    Some(why) => tracing::warn!("slot {}: unfit: {why}", self.slot),
                    None => tracing::info!("slot {}: fit again: links up, workers running", self.slot),
                }
                self.unfit = unfit;
            }
            self.proto.set_fit(self.unfit.is_none(), now());
            self.carry_out();
        }
        if self.witness.is_none()
            && let Some((ifname, port)) = &self.witness_want
            && self.last_witness.elapsed() >= Duration::from_secs(1)
        {
            self.last_witness = Instant::now();
            if let Ok(w) = witness_socket(ifname, *port) {
                self.witness = Some(w);
                self.proto.witness_up();
            }
        }
        if self.sock.is_none() {
            if self.last_bind.elapsed() >= Duration::from_secs(1) {
                self.last_bind = Instant::now();
                match bind(self.bind) {
                    Ok(sock) => {
                        self.proto.channel_up(window_for(&sock), now());
                        self.sock = Some(sock);
                        self.channel_error = None;
                    }
                    Err(e) => self.channel_error = Some(format!("cannot bind {}: {e}", self.bind)),
                }
            }
            if self.sock.is_none() {
                for _ in self.events.take() {}
                self.publish();
                return false;
            }
        }
        let mut buf = [0u8; 2048];
        for channel in [Channel::Link, Channel::Witness] {
            for _ in 0..512 {
                let got = match (channel, &self.sock, &self.witness) {
                    (Channel::Link, Some(sock), _) => sock.recv_from(&mut buf),
                    (Channel::Witness, _, Some((w, _))) => w.recv_from(&mut buf),
                    _ => break,
                };
                let Ok((n, _)) = got else { break };
                work = true;
                self.proto.handle_datagram(channel, &buf[..n], now());
                self.carry_out();
            }
        }
        // What the board thread finished.
        while let Ok(d) = self.done.try_recv() {
            work = true;
            match d {
                Done::Installed(refused) => self.proto.installed(refused, now()),
                Done::Swept(gone) => self.proto.swept(gone, now()),
                Done::Table(number, sessions, blocks) => self.proto.handle_table(number, sessions, blocks, now()),
            }
            self.carry_out();
        }
        let t = now();
        for batch in self.events.take() {
            work = true;
            for e in batch {
                self.proto.handle_event(e, t);
            }
        }
        let lost = self.events.sender.dropped.load(Ordering::Relaxed) + self.local.events_lost();
        self.proto.handle_events_dropped(lost, t);
        self.carry_out();
        work |= self.proto.handle_timeout(now());
        self.carry_out();
        self.publish();
        work
    }

    /// Why the board cannot serve, if it cannot: a link down (its operational state), or
    /// a worker whose rounds stopped for [`STUCK`].
    fn unfitness(&mut self) -> Option<String> {
        let now = Instant::now();
        let rounds = self.local.progress();
        if rounds.len() != self.progress.len() {
            self.progress = rounds.iter().map(|&r| (r, now)).collect();
        }
        let mut stuck = None;
        for (w, (&r, (seen, since))) in rounds.iter().zip(&mut self.progress).enumerate() {
            if r != *seen {
                (*seen, *since) = (r, now);
            } else if now.duration_since(*since) >= STUCK && stuck.is_none() {
                stuck = Some(format!("worker {w} made no progress for {} ms", now.duration_since(*since).as_millis()));
            }
        }
        let down = self.links.iter().find(|l| !carrier(l)).map(|l| format!("link {l} is down"));
        down.or(stuck).or_else(|| self.local.unfit())
    }

    /// Does what the protocol asks, in order: datagrams to the sockets, work to the
    /// board, and the board's answers back.
    fn carry_out(&mut self) {
        while let Some(o) = self.proto.poll() {
            match o {
                Output::Transmit(Channel::Link, d) => {
                    if let Some(sock) = &self.sock {
                        let _ = sock.send_to(&d, self.peer);
                    }
                }
                Output::Transmit(Channel::Witness, d) => {
                    if let Some((w, to)) = &self.witness {
                        let _ = w.send_to(&d, to);
                    }
                }
                Output::Install { blocks, sessions } => {
                    let _ = self.jobs.send(Job::Install(blocks, sessions));
                }
                Output::Remove(sessions) => {
                    let _ = self.jobs.send(Job::Remove(sessions));
                }
                Output::SetActive(l, on) => self.local.set_active(l, on),
                Output::Peer { mac, active } => self.local.set_peer(mac, active),
                Output::RoleChanged { location, role, why } => {
                    tracing::info!("slot {}: service-location {location}: {}: {why}", self.slot, role.name());
                    if let Some(program) = &self.notify {
                        self.notifier.send((program.clone(), self.slot, location, role.name(), why));
                    }
                }
                Output::TakeSnapshot(number) => {
                    let _ = self.jobs.send(Job::Table(number));
                }
                Output::Sweep { keep, locations } => {
                    let _ = self.jobs.send(Job::Sweep(keep, locations));
                }
            }
        }
    }

    fn publish(&mut self) {
        let mut st = self.proto.status(now());
        st.channel_error = self.channel_error.clone();
        st.unfit = self.unfit.clone();
        st.notify_dropped = self.notifier.dropped;
        if st.config_differs() != self.config_differed {
            self.config_differed = st.config_differs();
            if self.config_differed {
                tracing::warn!(
                    "slot {}: the peer runs another configuration (digest {:016x}, ours {:016x}): commit the same on both boards",
                    self.slot,
                    st.peer_config_digest.unwrap_or(0),
                    st.config_digest
                );
            } else {
                tracing::info!("slot {}: the peer runs the same configuration again", self.slot);
            }
        }
        if let Ok(mut g) = self.status.try_lock() {
            *g = st;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flapping_pair_runs_one_notify_program_at_a_time_and_counts_what_it_drops() {
        let dir = std::env::temp_dir().join(format!("aftr-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let (program, log) = (dir.join("notify.sh"), dir.join("runs"));
        // Each run notes its start, waits, and notes its end: overlapping runs show.
        let script = format!("#!/bin/sh\necho start >> {0}\nsleep 0.05\necho end >> {0}\n", log.display());
        std::fs::write(&program, script).expect("the script");
        std::process::Command::new("chmod").arg("+x").arg(&program).status().expect("chmod");
        let mut n = Notifier::start().expect("the notify thread");
        let p = program.display().to_string();
        for k in 0..(NOTIFY_QUEUE as u32 + 10) {
            n.send((p.clone(), 1, k, "active", "flap".to_string()));
        }
        assert!(n.dropped >= 9 && n.dropped <= 10, "{} dropped", n.dropped);
        let ran = NOTIFY_QUEUE as u32 + 10 - n.dropped as u32;
        let deadline = Instant::now() + Duration::from_secs(20);
        let lines = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.lines().count() as u32 == 2 * ran || Instant::now() > deadline {
                break text;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let _ = std::fs::remove_dir_all(&dir);
        let expected: Vec<&str> = (0..ran).flat_map(|_| ["start", "end"]).collect();
        assert_eq!(lines.lines().collect::<Vec<_>>(), expected, "one at a time, all that were queued");
    }
}
