//! One board's side of the HA protocol, without I/O (in the manner of quinn-proto): the
//! peer's datagrams, the engine's session events, the board's answers and the time go
//! in; datagrams to send and work for the board come out, in order. It drives the role
//! machine, the replication stream both ways, bulk sync, pacing and the checks of who
//! may be believed (the peer's slot, the pair's keys, the handshake of nonces across
//! restarts, replays); it never touches a socket, a thread, a clock or the kernel's
//! random source (the caller draws the [`Incarnation`]), so loss, reordering, a silent
//! peer and a restart are tested with a simulated link and clock (`protocol/tests.rs`).
//! `node` is the shell that ties it to sockets and the board.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dataplane::config::PoolShares;
use dataplane::nat::events::{BlockRecord, Refused, SessionEvent, SessionRecord};

use crate::replicate::Replicator;
use crate::role::{Action, PeerState, Role, RoleMachine};
use crate::stream::{self, Accepted};
use crate::wire::{self, Builder, Header, Key, Kind, Purpose, Record, Secret};

/// Live records waiting behind the window at most; beyond, the standby cannot keep up:
/// counted as an overflow and repaired with a bulk sync.
pub const MAX_BACKLOG: usize = 2_000_000;

/// A board's hot-backup settings (`service-ha`, its slot and its peer).
#[derive(Debug, Clone)]
pub struct Settings {
    pub slot: u16,
    /// The peer's slot (the other board of this board's service-locations): only its
    /// messages are believed.
    pub peer_slot: u16,
    /// Our end of the HA channel, and the peer's (for `node`; the protocol sends on a
    /// [`Channel`]).
    pub bind: SocketAddr,
    pub peer: SocketAddr,
    /// The softwire interface and UDP port for witness heartbeats (None: HA link only).
    pub witness: Option<(String, u16)>,
    /// The interfaces whose carrier the board needs (softwire and Internet): one down
    /// makes it unfit (`Protocol::set_fit`).
    pub links: Vec<String>,
    /// `service-ha preshared-key`: the keys of the HA channel and of the witness are
    /// derived from it for this pair ([`wire::Key::pair`]).
    pub secret: Secret,
    /// The service-locations the two boards share, in the board's order (the engine's
    /// location index): each has a role of its own (decision 0012).
    pub locations: Vec<Location>,
    /// The location of each external address (engine instance order), so that records
    /// go only while their location is active here. Empty: all are the first's.
    pub shares: PoolShares,
    /// The MAC of this board's softwire interface (zeros: unknown), told to the peer,
    /// which sends on to it the softwire frames of the locations active here.
    pub softwire_mac: [u8; 6],
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
    /// A digest of this board's running configuration, carried in every heartbeat
    /// (0: none given).
    pub config_digest: u64,
    /// The `id` of each engine instance, by its position in the engine's configuration:
    /// records on the wire name instances by id, so that boards whose instances are in
    /// another order (or that have others) still agree. Empty: the position is the id.
    pub instance_ids: Vec<u8>,
    /// `service-ha notify PROGRAM`: run on every change of role (for `node`).
    pub notify: Option<String>,
}

impl Settings {
    pub fn dead_ms(&self) -> u64 {
        self.heartbeat_ms * self.dead_count as u64
    }

    /// The pair's key for `purpose`.
    fn key(&self, purpose: Purpose) -> Key {
        Key::pair(&self.secret, purpose, (self.slot, self.bind), (self.peer_slot, self.peer))
    }
}

/// Who a board is in one run: a restart is a new incarnation. The peer believes only
/// messages that echo the nonce of the incarnation they are for, so a recording of
/// another run is refused; the epoch orders the incarnations of a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incarnation {
    /// Microseconds since 1970 at the start (grows from run to run).
    pub epoch: u64,
    /// Random, from the kernel: never the same twice. Not 0, which means "not heard".
    pub nonce: u128,
}

/// A service-location the two boards share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub id: u32,
    /// This board is the location's `slot` (its preferred active board).
    pub preferred: bool,
}

/// One location's roles, as `display service-ha` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocationStatus {
    pub id: u32,
    pub role: Role,
    pub preferred: bool,
    pub peer_role: Option<Role>,
    /// Standby: this board holds the peer's whole eligible table of the location.
    /// Active: the peer says it does.
    pub in_sync: bool,
    /// Unix milliseconds and reason of the last change of role.
    pub last_change: Option<(u64, String)>,
}

/// What `display service-ha` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Active if the board is active for any location, standby if for none but standby
    /// for some; each location's in `locations`.
    pub role: Role,
    /// The board is the preferred board of some location.
    pub preferred: bool,
    pub peer_alive: bool,
    /// The peer's role as `role` is this board's.
    pub peer_role: Option<Role>,
    /// Every location in sync (see [`LocationStatus::in_sync`]).
    pub in_sync: bool,
    pub locations: Vec<LocationStatus>,
    pub records_sent: u64,
    pub records_received: u64,
    pub messages_sent: u64,
    pub retransmitted: u64,
    /// Records of the peer this board could not hold (its board refused them, or it
    /// lacks their instance): it is then not in sync (`sync_problem`).
    pub install_refused: u64,
    /// Records of a location this board is active for: its own to keep, not the peer's
    /// (young records that drain after a hand-over).
    pub refused_active_here: u64,
    /// Sessions and blocks removed at the end of a bulk sync because the bulk did not
    /// bring them (mark-and-sweep).
    pub swept: u64,
    /// Why this board (a standby) is not in sync although a bulk sync ended, if so.
    pub sync_problem: Option<String>,
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
    /// Messages from a slot that is not the peer's (another board, or a misconfiguration).
    pub rejected_slot: u64,
    pub rejected_malformed: u64,
    pub events_dropped: u64,
    /// Unix milliseconds and reason of the last change of role of any location.
    pub last_change: Option<(u64, String)>,
    /// This board's links are up and its workers run (false: it gives its locations to
    /// a fit peer), and if not, why (the caller's, as `channel_error`).
    pub fit: bool,
    pub unfit: Option<String>,
    /// Why the HA channel is not up (its address cannot be bound).
    pub channel_error: Option<String>,
    /// Changes of role the notify program was not run for: more were waiting for it
    /// than the node holds (the caller's, as `channel_error`).
    pub notify_dropped: u64,
    /// Witness heartbeats on the softwire segment are sent and heard.
    pub witness: bool,
    /// The digest of this board's running configuration, and the peer's as its last
    /// heartbeat gave it (None: not heard, or a peer that sends none).
    pub config_digest: u64,
    pub peer_config_digest: Option<u64>,
}

impl Status {
    /// The peer runs another configuration than this board (as far as heard).
    pub fn config_differs(&self) -> bool {
        self.peer_config_digest.is_some_and(|d| d != self.config_digest)
    }
}

/// The time of a call, read by the caller: the protocol reads no clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic: heartbeats, dead intervals, retransmission, the role machine.
    pub at: Instant,
    /// Wall clock, unix milliseconds: session ages (the engine's records carry unix
    /// seconds) and the time of a change of role.
    pub unix_ms: u64,
}

impl Now {
    fn unix_s(self) -> u32 {
        (self.unix_ms / 1000) as u32
    }
}

/// Where a datagram came from or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The HA channel to the peer's `ha-address`.
    Link,
    /// Witness heartbeats on the softwire segment (link-local multicast).
    Witness,
}

impl Channel {
    fn index(self) -> usize {
        match self {
            Channel::Link => 0,
            Channel::Witness => 1,
        }
    }
}

/// What the protocol asks of its caller, in the order it must be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this datagram on this channel.
    Transmit(Channel, Vec<u8>),
    /// Install the peer's state, blocks first; answer with [`Protocol::installed`].
    Install { blocks: Vec<BlockRecord>, sessions: Vec<SessionRecord> },
    /// Remove sessions the peer deleted.
    Remove(Vec<SessionRecord>),
    /// Start (true) or stop forwarding for the location with this index; on start,
    /// announce its addresses.
    SetActive(usize, bool),
    /// The peer's softwire MAC and the locations it is active for (bits by index), as
    /// its heartbeats say, whenever either changes: softwire frames of those locations
    /// that reach this board go on to it.
    Peer { mac: [u8; 6], active: u64 },
    /// Take the board's whole table for a bulk sync; answer with
    /// [`Protocol::handle_table`] with this number before any other call. No Data
    /// goes out until then. The number tells the answers apart: one to an earlier
    /// request (the role went and came back meanwhile) is stale, and ignored.
    TakeSnapshot(u64),
    /// The role of the location with this id changed, for this reason: log it, run
    /// the notify hook. (A re-announcement while active says `Active` again.)
    RoleChanged { location: u32, role: Role, why: String },
    /// A bulk sync ended: remove the sessions and blocks of these locations (bits by
    /// index) that it did not bring (`keep`: session and block keys, unsorted: a
    /// million of them take the board's thread, not this one, to sort), after every
    /// install before; answer with [`Protocol::swept`].
    Sweep { keep: (Vec<u64>, Vec<u64>), locations: u64 },
}

/// Records of the board's table taken in per round (a few milliseconds of work).
pub const TABLE_CHUNK: usize = 16_384;

/// A table being taken in for a bulk: the board's records, how far, and what the board
/// was active for when it was asked for.
struct TableIn {
    sessions: Vec<SessionRecord>,
    blocks: Vec<BlockRecord>,
    at: usize,
    /// The locations active when it was asked for (bits by index).
    active: u64,
}

/// Why `new` cannot replace `old` while the board runs (see
/// [`Protocol::reconfigure`]), or None if it can.
pub fn unchangeable(old: &Settings, new: &Settings) -> Option<String> {
    let fixed = [
        (new.bind != old.bind, "ha-address of this board"),
        (new.peer != old.peer, "ha-address of the peer"),
        (
            new.slot != old.slot || new.peer_slot != old.peer_slot || new.locations != old.locations,
            "service-location of this board",
        ),
        (new.witness != old.witness, "softwire interface (the witness)"),
        (new.hot_backup != old.hot_backup, "service-ha hot-backup"),
    ];
    fixed
        .iter()
        .find(|(changed, _)| *changed)
        .map(|(_, what)| format!("changing the {what} needs a restart of the board"))
}

/// A role machine per location of `s`, started at `now` (role machine clock).
fn machines(s: &Settings, now: u64) -> Vec<RoleMachine> {
    s.locations.iter().map(|l| RoleMachine::new(l.preferred, s.dead_ms(), s.preempt_ms, now)).collect()
}

/// One board's side of the HA protocol.
pub struct Protocol {
    s: Settings,
    /// The pair's keys: the HA channel's and the witness's.
    link_key: Key,
    witness_key: Key,
    /// This board's incarnation: its epoch and the nonce the peer must echo.
    me: Incarnation,
    /// The counter of our non-Data messages (replay protection at the peer).
    ctl: u64,
    /// One role machine per location, in `s.locations`' order.
    roles: Vec<RoleMachine>,
    /// The peer was last heard (role machine clock), on any path.
    heard: Option<u64>,
    /// The peer's softwire MAC and active locations, as last told to the board.
    peer_told: ([u8; 6], u64),
    /// The role machine's clock starts here (milliseconds since).
    t0: Instant,
    last_hb: Option<Instant>,
    /// Witness heartbeats are sent too.
    witness: bool,
    // The peer as heard. Its incarnation believed (0, 0: none yet), and the newest one
    // heard, believed or not, whose nonce our messages echo.
    peer: (u64, u128),
    newest: (u64, u128),
    /// A new nonce to echo was heard: a heartbeat goes at once, so that the handshake
    /// takes a round trip, not a heartbeat interval.
    answer_due: bool,
    peer_ctl: [u64; 2],
    // Sending side (active).
    repl: Replicator,
    tx: stream::Sender,
    /// Data messages in flight at most.
    window: usize,
    outq: VecDeque<Record>,
    /// Records of `outq` that belong to the bulk sync under way.
    bulk_left: usize,
    /// A bulk sync's table went into `outq` and its end has not been sent yet.
    bulk_open: bool,
    /// Events were lost while a bulk sync was under way: another follows it.
    bulk_again: bool,
    reset_next: bool,
    /// A table was asked for and has not come yet.
    snapshot_pending: bool,
    /// The number of the last table asked for ([`Output::TakeSnapshot`]), and the
    /// locations active when it was asked for (bits by index): the board reads its
    /// table then, so a location that became active later is not whole in it.
    snapshot_asked: u64,
    snapshot_active: u64,
    /// The board's table for a bulk, taken in [`TABLE_CHUNK`]s a round so that
    /// heartbeats never wait behind a million records; the bulk starts once it is all
    /// in (`snapshot_pending` stays true until then).
    table: Option<TableIn>,
    /// Events from the moment the table is asked for until the bulk is made: the board
    /// reads its workers' tables while they go on, so an event of this time may or may
    /// not be in the table; replayed after it (each is idempotent there), none lost.
    held: Vec<SessionEvent>,
    dropped_seen: u64,
    /// Records were dropped while the peer was not heard: a bulk sync when it is again.
    lost_while_away: bool,
    // Receiving side (standby).
    rx: stream::Receiver,
    last_bulk_request: Option<Instant>,
    /// Per location: the peer released it; taken over once the stream reaches this
    /// sequence number, or a dead interval after this instant.
    release: Vec<Option<(u64, Instant)>>,
    /// Installs handed to the board, and those it has finished ([`Protocol::installed`]).
    installs_asked: u64,
    installs_done: u64,
    /// The bulk sync has ended; in sync once the board has finished this many installs.
    in_sync_at: Option<u64>,
    /// The bulk sync being received: the keys of what it brought (sessions, blocks), the
    /// locations it covers (bits by index), and the records the board refused since it
    /// started.
    bulk_keys: (Vec<u64>, Vec<u64>),
    bulk_cover: u64,
    bulk_refused: u64,
    /// Why the bulk sync being received cannot be trusted whole (a record of it could
    /// not be read): no sweep at its end, not in sync, and another bulk follows.
    bulk_damaged: Option<String>,
    /// Why the sweep at the end of the bulk sync being received did not finish.
    sweep_failed: Option<String>,
    /// Bulk syncs in a row that left this board out of sync, and no bulk sync is asked
    /// for before this: a refusal that lasts (another configuration) is not a storm.
    bulk_failures: u32,
    bulk_retry_at: Option<Instant>,
    ack_due: bool,
    st: Status,
    out: VecDeque<Output>,
}

impl Protocol {
    /// A board starting at `now` as incarnation `me`, in Init; `window`: Data
    /// messages in flight at most; `witness`: witness heartbeats are sent too.
    pub fn new(s: Settings, me: Incarnation, window: usize, witness: bool, now: Now) -> Protocol {
        Protocol {
            link_key: s.key(Purpose::Link),
            witness_key: s.key(Purpose::Witness),
            me,
            ctl: 0,
            roles: machines(&s, 0),
            heard: None,
            peer_told: ([0; 6], 0),
            t0: now.at,
            last_hb: None,
            witness,
            peer: (0, 0),
            newest: (0, 0),
            answer_due: false,
            peer_ctl: [0; 2],
            repl: Replicator::new(s.delay_secs),
            tx: stream::Sender::new(s.queue, Duration::from_millis(s.rto_ms)),
            window,
            outq: VecDeque::new(),
            bulk_left: 0,
            bulk_open: false,
            bulk_again: false,
            reset_next: true,
            snapshot_pending: false,
            snapshot_asked: 0,
            snapshot_active: 0,
            table: None,
            held: Vec::new(),
            dropped_seen: 0,
            lost_while_away: false,
            rx: stream::Receiver::new(s.queue as u64),
            last_bulk_request: None,
            release: vec![None; s.locations.len()],
            installs_asked: 0,
            installs_done: 0,
            in_sync_at: None,
            bulk_keys: (Vec::new(), Vec::new()),
            bulk_cover: 0,
            bulk_refused: 0,
            bulk_damaged: None,
            sweep_failed: None,
            bulk_failures: 0,
            bulk_retry_at: None,
            ack_due: false,
            st: Status { preferred: s.locations.iter().any(|l| l.preferred), witness, fit: true, ..Default::default() },
            out: VecDeque::new(),
            s,
        }
    }

    /// The HA channel came up only now (its address could not be bound before): the
    /// wait for a peer starts now.
    pub fn channel_up(&mut self, window: usize, now: Now) {
        self.window = window;
        let ms = self.ms(now);
        self.roles = machines(&self.s, ms);
        // Links already seen down stay so for the new machines (they start in Init:
        // nothing to hand over).
        for r in &mut self.roles {
            let _ = r.set_fit(self.st.fit, ms);
        }
    }

    /// New settings from a commit. The timers (heartbeat, dead count, preempt-time),
    /// delay-time, retransmission and the key apply at once. Where the channel is (the
    /// addresses, the witness), which board is preferred and whether sessions are
    /// replicated at all cannot change while the board runs: refused with the reason.
    pub fn reconfigure(&mut self, s: Settings) -> Result<(), String> {
        if let Some(why) = unchangeable(&self.s, &s) {
            return Err(why);
        }
        (self.link_key, self.witness_key) = (s.key(Purpose::Link), s.key(Purpose::Witness));
        for r in &mut self.roles {
            r.set_timers(s.dead_ms(), s.preempt_ms);
        }
        self.repl.set_delay(s.delay_secs);
        self.tx.set_rto(Duration::from_millis(s.rto_ms));
        self.s = s;
        Ok(())
    }

    /// This board's links (its softwire and Internet interfaces) came up (true) or
    /// went down: an unfit board hands its active locations to a fit peer, and does not
    /// take them back until its links are up again (then by preempt-time).
    pub fn set_fit(&mut self, fit: bool, now: Now) {
        if self.st.fit == fit {
            return;
        }
        self.st.fit = fit;
        let ms = self.ms(now);
        for l in 0..self.roles.len() {
            if let Some(a) = self.roles[l].set_fit(fit, ms) {
                self.act(l, a, now);
            }
        }
        // The peer hears it at once, not a heartbeat interval later.
        self.last_hb = None;
    }

    /// The witness socket came up only now (its interface was not there before):
    /// witness heartbeats go out from now on.
    pub fn witness_up(&mut self) {
        self.witness = true;
    }

    /// The next thing to do, in order.
    pub fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn ms(&self, now: Now) -> u64 {
        now.at.saturating_duration_since(self.t0).as_millis() as u64
    }

    /// The Unix milliseconds of `ms` on the role machines' clock.
    fn unix_ms_of(&self, ms: u64, now: Now) -> u64 {
        now.unix_ms.saturating_sub(self.ms(now).saturating_sub(ms))
    }

    fn dead(&self) -> Duration {
        Duration::from_millis(self.s.dead_ms())
    }

    /// The header of a message other than Data, with the next number of their counter.
    fn header(&mut self, kind: Kind, flags: u8) -> Header {
        self.ctl += 1;
        self.header_seq(kind, flags, self.ctl)
    }

    /// A header with this sequence number: our incarnation, and the peer's nonce echoed.
    fn header_seq(&self, kind: Kind, flags: u8, seq: u64) -> Header {
        let (slot, epoch, nonce, echo) = (self.s.slot, self.me.epoch, self.me.nonce, self.newest.1);
        Header { kind, flags, slot, epoch, nonce, echo, seq, ack: 0 }
    }

    fn transmit(&mut self, d: Vec<u8>) {
        self.out.push_back(Output::Transmit(Channel::Link, d));
    }

    /// Active for some location, with hot backup, and the peer there to take the stream.
    fn replicating(&self, now: Now) -> bool {
        self.any(Role::Active) && self.s.hot_backup && self.peer_alive(self.ms(now))
    }

    /// This board has `role` for some location.
    fn any(&self, role: Role) -> bool {
        self.roles.iter().any(|r| r.role() == role)
    }

    /// The peer has been heard within the dead interval.
    fn peer_alive(&self, ms: u64) -> bool {
        self.heard.is_some_and(|t| ms.saturating_sub(t) < self.s.dead_ms())
    }

    /// The location (index) of a record of the engine's instance `inst` with external
    /// address `addr`; None if no location of this board holds it.
    fn location_of(&self, inst: u8, addr: u32) -> Option<usize> {
        self.s.shares.location_of(inst, addr).map(|l| l as usize).filter(|&l| l < self.roles.len())
    }

    /// Whether the record (engine instance, external address) is of a location this
    /// board is active for.
    fn active_for(&self, inst: u8, addr: u32) -> bool {
        self.location_of(inst, addr).is_some_and(|l| self.roles[l].role() == Role::Active)
    }

    /// The standby locations are in sync: the bulk sync has ended and the board has
    /// installed it.
    fn set_in_sync(&mut self) {
        for r in &mut self.roles {
            r.in_sync = r.role() == Role::Standby;
        }
    }

    /// A datagram from `channel`: checked (the peer's slot, the path's tag, the
    /// handshake, replay) before any of it is believed; refusals are counted in the
    /// status.
    pub fn handle_datagram(&mut self, channel: Channel, d: &[u8], now: Now) {
        let Some(m) = self.authenticate(channel, d) else { return };
        let h = m.header;
        if !self.believe(channel, &h, now) {
            return;
        }
        let ms = self.ms(now);
        match h.kind {
            Kind::Heartbeat => {
                let Ok(hb) = wire::decode_heartbeat(m.payload) else {
                    self.st.rejected_malformed += 1;
                    return;
                };
                self.st.peer_config_digest = Some(hb.config_digest);
                self.heard = Some(ms);
                // A location the peer does not name is not served there: its machine
                // hears nothing and takes the location over when the wait is up.
                let mut peer_active = 0u64;
                for (id, state) in hb.locations {
                    let Some(l) = self.s.locations.iter().position(|x| x.id == id) else { continue };
                    if state.role == Role::Active {
                        peer_active |= 1 << (l % 64);
                    }
                    if let Some(a) = self.roles[l].on_heartbeat(state, ms) {
                        self.act(l, a, now);
                    }
                }
                // Without the peer's MAC nothing can go on to it.
                if hb.mac == [0; 6] {
                    peer_active = 0;
                }
                if (hb.mac, peer_active) != self.peer_told {
                    self.peer_told = (hb.mac, peer_active);
                    self.out.push_back(Output::Peer { mac: hb.mac, active: peer_active });
                }
            }
            Kind::Data => {
                if !self.any(Role::Standby) && !self.any(Role::Init) {
                    return;
                }
                let mut stored = Vec::with_capacity(1 + m.payload.len());
                stored.push(h.flags);
                stored.extend_from_slice(m.payload);
                match self.rx.accept(h.seq, h.flags & wire::FLAG_RESET != 0, &stored) {
                    Accepted::Deliver(msgs) => {
                        for (k, msg) in msgs.iter().enumerate() {
                            self.apply(msg, h.seq + k as u64, now);
                        }
                    }
                    Accepted::Dropped if !self.rx.started() => self.request_bulk(false, now),
                    _ => {}
                }
                self.ack_due = true;
            }
            Kind::Ack => {
                let Some(missing) = stream::decode_missing(m.payload) else {
                    self.st.rejected_malformed += 1;
                    return;
                };
                for d in self.tx.on_ack(h.ack, &missing, now.at) {
                    self.transmit(d);
                }
            }
            Kind::BulkRequest => {
                if self.any(Role::Active) && self.s.hot_backup {
                    self.bulk_sync();
                }
            }
            Kind::Switchover => {
                let named = m.payload.get(..4).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")));
                let Some(l) = named.and_then(|id| self.s.locations.iter().position(|x| x.id == id)) else {
                    self.st.rejected_malformed += 1;
                    return;
                };
                if h.flags & wire::FLAG_TAKE_OVER != 0 {
                    if let Some(a) = self.roles[l].on_request(ms) {
                        self.act(l, a, now);
                    }
                } else if h.flags & wire::FLAG_RELEASED != 0 {
                    // Take over once every delta sent before the release has arrived.
                    self.release[l] = Some((h.ack, now.at));
                    self.check_release(now);
                }
            }
        }
    }

    /// The datagram, if it is the peer's and its tag verifies with the key of the path
    /// it came on; otherwise None, and the refusal counted. The slot it names picks the
    /// counter before the tag is checked: it is believed only once the tag verifies.
    fn authenticate<'a>(&mut self, channel: Channel, d: &'a [u8]) -> Option<wire::Message<'a>> {
        match wire::sender(d) {
            Err(_) => {
                self.st.rejected_malformed += 1;
                return None;
            }
            // Our own multicast coming back: not a refusal.
            Ok(slot) if slot == self.s.slot => return None,
            Ok(slot) if slot != self.s.peer_slot => {
                self.st.rejected_slot += 1;
                return None;
            }
            Ok(_) => {}
        }
        let key = match channel {
            Channel::Link => &self.link_key,
            Channel::Witness => &self.witness_key,
        };
        match wire::open(key, d) {
            // The witness carries heartbeats only.
            Ok(m) if channel == Channel::Witness && m.header.kind != Kind::Heartbeat => {
                self.st.rejected_malformed += 1;
                None
            }
            Ok(m) => Some(m),
            Err(wire::WireError::Auth) => {
                self.st.rejected_auth += 1;
                None
            }
            Err(_) => {
                self.st.rejected_malformed += 1;
                None
            }
        }
    }

    /// Whether an authentic message of the peer is believed: it is of the peer's newest
    /// incarnation, it echoes this incarnation's nonce (so it was made for this run of
    /// ours, not recorded in another), and it is newer than the last on its path.
    /// Learns the peer's nonce on the way (the handshake), and starts the peer's stream
    /// over when a new incarnation is first believed.
    fn believe(&mut self, channel: Channel, h: &Header, now: Now) -> bool {
        if h.epoch < self.peer.0 || (h.epoch == self.peer.0 && h.nonce != self.peer.1) {
            // An earlier incarnation than the one believed: a recording.
            self.st.rejected_replay += 1;
            return false;
        }
        if h.epoch > self.newest.0 {
            // The newest incarnation heard: our messages echo its nonce from now on, and
            // one goes at once. An older one never takes its place: a recording of an
            // earlier run neither holds the handshake up nor makes this board answer.
            self.newest = (h.epoch, h.nonce);
            self.answer_due = true;
        }
        if h.echo != self.me.nonce {
            // Made before the sender knew this incarnation of ours: the handshake of a
            // board that has just started (either one), or a recording of another run.
            // Once the sender is believed, it knows our nonce: a message that does not
            // echo it is stale, and counted.
            if h.epoch == self.peer.0 {
                self.st.rejected_replay += 1;
            }
            return false;
        }
        if h.epoch > self.peer.0 {
            // The peer (re)started, or is heard for the first time: its stream starts
            // over.
            if self.newest != (h.epoch, h.nonce) {
                // Two runs with one epoch: echo the one believed.
                self.newest = (h.epoch, h.nonce);
                self.answer_due = true;
            }
            let restarted = self.peer.0 != 0;
            self.peer = (h.epoch, h.nonce);
            self.peer_ctl = [0; 2];
            self.rx.forget();
            self.in_sync_at = None;
            // A board that (re)starts may have gone active alone before it heard this
            // one and drawn the neighbours (and the routers) to itself: where this board
            // is active, tell them again.
            for (l, r) in self.roles.iter().enumerate() {
                if r.role() == Role::Active {
                    self.out.push_back(Output::SetActive(l, true));
                }
            }
            // A standby in sync with the old incarnation, which was active, holds its
            // table: it takes the role, warm, before it forgets that it was in sync.
            let ms = self.ms(now);
            for l in 0..self.roles.len() {
                if let Some(a) = restarted.then(|| self.roles[l].peer_restarted(ms)).flatten() {
                    self.act(l, a, now);
                }
                self.roles[l].in_sync = false;
            }
        }
        if h.kind != Kind::Data {
            let last = &mut self.peer_ctl[channel.index()];
            if h.seq <= *last {
                self.st.rejected_replay += 1;
                return false;
            }
            *last = h.seq;
        }
        true
    }

    /// A session event of the board's engine (replicated while active).
    pub fn handle_event(&mut self, e: SessionEvent, now: Now) {
        if self.snapshot_pending {
            // After the table's records, in order; past the backlog's bound, another
            // bulk follows this one instead.
            if self.held.len() < MAX_BACKLOG {
                self.held.push(e);
            } else {
                self.bulk_again = true;
            }
            return;
        }
        let (inst, addr) = e.external();
        if self.active_for(inst, addr)
            && let Some(e) = self.event_to_wire(e)
        {
            self.repl.on_event(e, now.unix_s());
        }
    }

    /// The id on the wire of the engine's instance `inst`.
    fn inst_to_wire(&self, inst: u8) -> Option<u8> {
        if self.s.instance_ids.is_empty() { Some(inst) } else { self.s.instance_ids.get(inst as usize).copied() }
    }

    /// The engine's instance with id `id` on the wire, if this board has it.
    fn inst_from_wire(&self, id: u8) -> Option<u8> {
        if self.s.instance_ids.is_empty() {
            return Some(id);
        }
        self.s.instance_ids.iter().position(|&i| i == id).map(|i| i as u8)
    }

    fn event_to_wire(&self, e: SessionEvent) -> Option<SessionEvent> {
        let s = |r: SessionRecord| self.inst_to_wire(r.inst).map(|inst| SessionRecord { inst, ..r });
        let b = |r: BlockRecord| self.inst_to_wire(r.inst).map(|inst| BlockRecord { inst, ..r });
        Some(match e {
            SessionEvent::Created(r) => SessionEvent::Created(s(r)?),
            SessionEvent::Refreshed(r) => SessionEvent::Refreshed(s(r)?),
            SessionEvent::Deleted(r) => SessionEvent::Deleted(s(r)?),
            SessionEvent::BlockAllocated(r) => SessionEvent::BlockAllocated(b(r)?),
            SessionEvent::BlockReleased(r) => SessionEvent::BlockReleased(b(r)?),
            SessionEvent::Limit(_) => return None,
        })
    }

    /// The board's count of events it could not hand over (its queue was full): lost
    /// events make what the standby holds untrustworthy, so a bulk sync follows.
    pub fn handle_events_dropped(&mut self, total: u64, now: Now) {
        if total == self.dropped_seen {
            return;
        }
        self.st.events_dropped = total;
        self.dropped_seen = total;
        if self.replicating(now) {
            if self.snapshot_pending || self.bulk_open {
                // Starting over would throw away the bulk under way (and, under a
                // flood that drops events all the time, never end one): one more
                // follows it.
                self.bulk_again = true;
            } else {
                self.bulk_sync();
            }
        }
    }

    /// The board's answer to [`Output::Install`]: what it refused.
    pub fn installed(&mut self, refused: Refused, now: Now) {
        if refused.total() > 0 {
            let why = refused.why.map_or_else(|| "the board did not answer".to_string(), |w| w.to_string());
            self.refuse(refused.total(), &why, now);
        }
        self.installs_done += 1;
        if self.in_sync_at.is_some_and(|n| self.installs_done >= n) {
            self.in_sync_at = None;
            self.bulk_ended(now);
        }
    }

    /// The board's answer to [`Output::Sweep`]: how many sessions and blocks went; Err
    /// if it did not finish (a worker did not answer), with how many went all the same
    /// and why: the board then holds more than the bulk's table, so not in sync, and
    /// another bulk follows.
    pub fn swept(&mut self, gone: Result<usize, (usize, String)>, now: Now) {
        let n = match gone {
            Ok(n) => n,
            Err((n, why)) => {
                self.sweep_failed = Some(why);
                n
            }
        };
        self.st.swept += n as u64;
        self.installed(Refused::default(), now);
    }

    /// `n` records of the peer this board cannot hold, for `why`: what it holds is not
    /// the peer's table, so it is not in sync; a bulk sync follows (after a wait that
    /// grows while refusals go on).
    fn refuse(&mut self, n: usize, why: &str, now: Now) {
        self.st.install_refused += n as u64;
        self.bulk_refused += n as u64;
        let total = self.bulk_refused;
        self.st.sync_problem = Some(format!("{total} records of the peer refused since the bulk sync began: {why}"));
        if self.roles.iter().any(|r| r.in_sync) {
            for r in &mut self.roles {
                r.in_sync = false;
            }
            self.bulk_failed(now);
        }
    }

    /// The bulk sync being received is in the board: in sync if nothing was refused.
    fn bulk_ended(&mut self, now: Now) {
        if let Some(why) = self.sweep_failed.take() {
            self.st.sync_problem = Some(format!("the sweep after the bulk sync did not finish: {why}"));
            self.bulk_failed(now);
        } else if self.bulk_refused == 0 {
            self.st.sync_problem = None;
            self.bulk_failures = 0;
            self.bulk_retry_at = None;
            self.set_in_sync();
        } else {
            self.bulk_failed(now);
        }
    }

    /// The next bulk sync is asked for a dead interval later, twice as late each time
    /// in a row, a minute at most.
    fn bulk_failed(&mut self, now: Now) {
        let wait = self.dead().saturating_mul(1 << self.bulk_failures.min(10)).min(Duration::from_secs(60));
        self.bulk_failures += 1;
        self.bulk_retry_at = Some(now.at + wait);
    }

    /// The board's table, asked for by [`Output::TakeSnapshot`]: the bulk sync starts
    /// with everything eligible in it. Ignored if the role was let go meanwhile, or if
    /// it answers an earlier request than the last (`number`): read before the role
    /// went and came back, it lacks what the peer made meanwhile, and the standby would
    /// sweep that.
    pub fn handle_table(&mut self, number: u64, sessions: Vec<SessionRecord>, blocks: Vec<BlockRecord>, now: Now) {
        if !self.snapshot_pending || number != self.snapshot_asked {
            return;
        }
        if self.table.is_some() {
            // A second answer while one is taken in (the roles moved meanwhile): the
            // one under way goes on.
            return;
        }
        self.repl.begin();
        self.table = Some(TableIn { sessions, blocks, at: 0, active: self.snapshot_active });
        self.take_table(now);
    }

    /// Whether a table is still being taken in (see [`Protocol::handle_table`]).
    pub fn taking_table(&self) -> bool {
        self.table.is_some()
    }

    /// Takes up to [`TABLE_CHUNK`] records of the table in (blocks first: a session's
    /// block goes before it); at the end, the bulk starts, and the events that came
    /// meanwhile follow in order.
    fn take_table(&mut self, now: Now) {
        let Some(mut t) = self.table.take() else { return };
        let end = (t.at + TABLE_CHUNK).min(t.blocks.len() + t.sessions.len());
        while t.at < end {
            if let Some(b) = t.blocks.get(t.at) {
                // The records of the locations this board is active for.
                if self.active_for(b.inst, b.ext_addr)
                    && let Some(inst) = self.inst_to_wire(b.inst)
                {
                    self.repl.add_block(BlockRecord { inst, ..*b });
                }
            } else {
                let r = &t.sessions[t.at - t.blocks.len()];
                if self.active_for(r.inst, r.ext_addr)
                    && let Some(inst) = self.inst_to_wire(r.inst)
                {
                    self.repl.add_session(SessionRecord { inst, ..*r }, now.unix_s());
                }
            }
            t.at += 1;
        }
        if t.at < t.blocks.len() + t.sessions.len() {
            self.table = Some(t);
            return;
        }
        self.snapshot_pending = false;
        let bulk = self.repl.finish();
        // First, which locations the bulk holds whole (the standby sweeps them at its
        // end): those this board was active for from the moment it asked for the table
        // (its board read it then) to now. A location that became active meanwhile has
        // only part of its records here (what the peer made as its last deltas reached
        // this board's engine after the read): no cover, so no sweep of it, and another
        // bulk follows this one.
        let whole = t.active & self.active_mask();
        if self.active_mask() & !t.active != 0 {
            self.bulk_again = true;
        }
        let covers: Vec<Record> = (self.s.locations.iter().enumerate())
            .filter(|(i, _)| whole & 1 << (i % 64) != 0)
            .map(|(_, l)| Record::Cover(l.id))
            .collect();
        self.outq.clear();
        self.bulk_open = true;
        self.bulk_left = covers.len() + bulk.len();
        self.outq.extend(covers);
        self.outq.extend(bulk);
        for e in std::mem::take(&mut self.held) {
            self.handle_event(e, now);
        }
    }

    /// The locations this board is active for (bits by index).
    fn active_mask(&self) -> u64 {
        (self.roles.iter().enumerate()).filter(|(_, r)| r.role() == Role::Active).fold(0, |m, (l, _)| m | 1 << (l % 64))
    }

    /// Time passes: sessions reach their delay-time, Data goes out (paced, in the
    /// window), retransmissions, heartbeats, acknowledgements, the role machine's
    /// timers. Returns whether Data went out (call again at once: more may be waiting).
    pub fn handle_timeout(&mut self, now: Now) -> bool {
        self.take_table(now);
        // While a table is taken in, what the replicator makes is the bulk's: it all
        // goes at the end, in one piece.
        if self.any(Role::Active) && self.table.is_none() {
            self.repl.tick(now.unix_s());
            if self.replicating(now) {
                if std::mem::take(&mut self.lost_while_away) {
                    // What went while the peer was not heard never reached it.
                    self.bulk_sync();
                }
                if self.bulk_again && !self.bulk_open && !self.snapshot_pending {
                    // Events were lost during the last bulk sync.
                    self.bulk_sync();
                }
                self.outq.extend(self.repl.drain());
                if self.outq.len().saturating_sub(self.bulk_left) > MAX_BACKLOG {
                    self.st.overflows += 1;
                    self.bulk_sync();
                }
            } else if self.repl.drain().next().is_some() && self.s.hot_backup {
                self.lost_while_away = true;
            }
        }
        let sent = self.send_data(now);
        self.timers(now);
        sent
    }

    /// A switchover on command, for location `location` or, if None, for every
    /// location: where this board is active it hands over, where it is standby it asks
    /// for the role. Err if nothing could be done, with each location's reason.
    pub fn switchover(&mut self, location: Option<u32>, now: Now) -> Result<String, String> {
        let ms = self.ms(now);
        let picked: Vec<usize> =
            (0..self.roles.len()).filter(|&l| location.is_none_or(|id| self.s.locations[l].id == id)).collect();
        if picked.is_empty() {
            return Err(format!("this board has no service-location {}", location.unwrap_or(0)));
        }
        let (mut done, mut refused) = (Vec::new(), Vec::new());
        for l in picked {
            let id = self.s.locations[l].id;
            match self.roles[l].switchover(ms) {
                Ok(Some(a)) => {
                    let what = match a {
                        Action::Deactivate(_) => "handed the role to the peer",
                        _ => "asked the peer for the role",
                    };
                    self.act(l, a, now);
                    done.push(format!("location {id}: {what}"));
                }
                Ok(None) => done.push(format!("location {id}: nothing to do")),
                Err(e) => refused.push(format!("location {id}: {e}")),
            }
        }
        let all = done.iter().chain(&refused).cloned().collect::<Vec<_>>().join("; ");
        if done.is_empty() { Err(all) } else { Ok(all) }
    }

    /// When [`Protocol::handle_timeout`] is due next at the latest (`now.at` or earlier:
    /// at once). A caller may sleep until then or until a datagram or an event comes;
    /// `node` keeps its one-millisecond rounds and calls it every round instead.
    pub fn poll_timeout(&self, now: Now) -> Instant {
        let at_once = now.at;
        let active = self.any(Role::Active);
        let end_pending = self.bulk_open && self.bulk_left == 0;
        let data_ready = active && !self.snapshot_pending && (!self.outq.is_empty() || end_pending);
        if !self.out.is_empty()
            || self.ack_due
            || self.answer_due
            || self.table.is_some()
            || (data_ready && self.tx.depth() < self.window)
        {
            return at_once;
        }
        let hb = Duration::from_millis(self.s.heartbeat_ms);
        let mut next = self.last_hb.map_or(at_once, |t| t + hb);
        let mut upto = |t: Option<Instant>| {
            if let Some(t) = t {
                next = next.min(t);
            }
        };
        upto(self.tx.next_due());
        for (_, released) in self.release.iter().flatten() {
            upto(Some(*released + self.dead()));
        }
        for r in &self.roles {
            upto(r.next_tick(self.ms(now)).map(|ms| self.t0 + Duration::from_millis(ms)));
        }
        if active && let Some(s) = self.repl.next_eligible() {
            let wait = (s as u64 * 1000).saturating_sub(now.unix_ms);
            upto(Some(now.at + Duration::from_millis(wait)));
        }
        if self.wants_bulk(now) {
            upto(Some(self.last_bulk_request.map_or(at_once, |t| t + self.dead())));
        } else if let Some(t) = self.bulk_retry_at.filter(|t| *t > now.at) {
            upto(Some(t));
        }
        next
    }

    /// The status (`display service-ha`), but for `channel_error`, which is the
    /// caller's.
    pub fn status(&self, now: Now) -> Status {
        let ms = self.ms(now);
        let mut st = self.st.clone();
        st.peer_alive = self.peer_alive(ms);
        st.locations = (self.s.locations.iter().zip(&self.roles))
            .map(|(l, r)| LocationStatus {
                id: l.id,
                role: r.role(),
                preferred: l.preferred,
                peer_role: r.peer().map(|p| p.role),
                in_sync: match r.role() {
                    Role::Active => r.peer().is_some_and(|p| p.in_sync) && st.peer_alive,
                    _ => r.in_sync,
                },
                last_change: r.last_change.map(|(t, why)| {
                    let role = r.role().name();
                    (self.unix_ms_of(t, now), format!("{role}: {why}"))
                }),
            })
            .collect();
        let summary = |roles: &mut dyn Iterator<Item = Option<Role>>| {
            let roles: Vec<Option<Role>> = roles.collect();
            [Role::Active, Role::Standby].into_iter().find(|r| roles.contains(&Some(*r))).or(roles.first().copied()?)
        };
        st.role = summary(&mut st.locations.iter().map(|l| Some(l.role))).unwrap_or_default();
        st.peer_role = summary(&mut st.locations.iter().map(|l| l.peer_role));
        st.in_sync = !st.locations.is_empty() && st.locations.iter().all(|l| l.in_sync);
        st.messages_sent = self.tx.stats.sent;
        st.retransmitted = self.tx.stats.retransmitted;
        st.queue_depth = self.tx.depth() + self.outq.len();
        st.lag_ms = self.tx.oldest_age(now.at).map(|d| d.as_millis() as u64).unwrap_or(0);
        st.young = self.repl.young();
        st.witness = self.witness;
        st.config_digest = self.s.config_digest;
        st.replicated = self.repl.replicated();
        st
    }

    /// Applies one delivered Data message: runs of blocks and sessions installed, runs
    /// of deletions removed, in order.
    fn apply(&mut self, msg: &[u8], seq: u64, now: Now) {
        let Some((&flags, payload)) = msg.split_first() else { return };
        if flags & wire::FLAG_RESET != 0 {
            // The stream starts over, and a bulk sync with it: until it is in, this
            // board does not hold the peer's table.
            self.bulk_keys = (Vec::new(), Vec::new());
            self.bulk_cover = 0;
            self.bulk_refused = 0;
            self.bulk_damaged = None;
            self.sweep_failed = None;
            for r in &mut self.roles {
                if r.role() == Role::Standby {
                    r.in_sync = false;
                }
            }
        }
        let bulk = flags & wire::FLAG_BULK != 0;
        if bulk {
            // A bulk sync under way is as good as asked for: asking again would start it
            // over, and a table that takes longer than the dead interval would never come.
            self.last_bulk_request = Some(now.at);
            if flags & wire::FLAG_BULK_END == 0 {
                // A new bulk: the installs of an earlier one do not make this one in sync.
                self.in_sync_at = None;
            }
        }
        let (mut blocks, mut sessions, mut gone) = (Vec::new(), Vec::new(), Vec::new());
        for r in wire::records(payload) {
            let Ok(r) = r else {
                // The rest of the message is lost: what the bulk under way brings is not
                // the whole table.
                self.st.rejected_malformed += 1;
                self.bulk_damaged = Some(format!("a record of Data message {} could not be read", seq));
                break;
            };
            let (inst, addr) = match &r {
                Record::Block(b) | Record::BlockReleased(b) => (b.inst, b.ext_addr),
                Record::Session(x) | Record::SessionDeleted(x) => (x.inst, x.ext_addr),
                Record::Cover(id) => {
                    if let Some(l) = self.s.locations.iter().position(|x| x.id == *id).filter(|&l| l < 64) {
                        self.bulk_cover |= 1 << l;
                    }
                    continue;
                }
            };
            self.st.records_received += 1;
            // Records name instances by id; one this board does not have is refused.
            let Some(r) = r.with_instance(|id| self.inst_from_wire(id)) else {
                self.refuse(1, &format!("this board has no ds-lite instance with id {inst}"), now);
                continue;
            };
            let (inst, addr) = match &r {
                Record::Block(b) | Record::BlockReleased(b) => (b.inst, b.ext_addr),
                Record::Session(x) | Record::SessionDeleted(x) => (x.inst, x.ext_addr),
                Record::Cover(_) => (inst, addr),
            };
            // A location this board is active for is its own to keep, not the peer's.
            if self.active_for(inst, addr) {
                self.st.refused_active_here += 1;
                continue;
            }
            match r {
                Record::Block(b) => {
                    if !gone.is_empty() {
                        self.hand_over(&mut blocks, &mut sessions, &mut gone);
                    }
                    if bulk {
                        self.bulk_keys.1.push(b.key());
                    }
                    blocks.push(b);
                }
                Record::Session(s) => {
                    if !gone.is_empty() {
                        self.hand_over(&mut blocks, &mut sessions, &mut gone);
                    }
                    if bulk {
                        self.bulk_keys.0.push(s.key());
                    }
                    sessions.push(s);
                }
                Record::SessionDeleted(s) => {
                    if !blocks.is_empty() || !sessions.is_empty() {
                        self.hand_over(&mut blocks, &mut sessions, &mut gone);
                    }
                    gone.push(s);
                }
                // The standby's engine releases a block with its last session.
                Record::BlockReleased(_) | Record::Cover(_) => {}
            }
        }
        self.hand_over(&mut blocks, &mut sessions, &mut gone);
        if flags & wire::FLAG_BULK_END != 0 {
            // Mark and sweep: what the board holds of the locations the bulk covered
            // (and this board does not serve) and the bulk did not bring goes, after
            // the bulk's installs.
            let serving: u64 = (self.roles.iter().enumerate())
                .filter(|(_, r)| r.role() == Role::Active)
                .fold(0, |m, (l, _)| m | 1 << (l % 64));
            let covered = std::mem::take(&mut self.bulk_cover);
            let locations = covered & !serving;
            let (s, b) = std::mem::take(&mut self.bulk_keys);
            if covered == 0 {
                // A bulk names what it covers (every active location): an end without
                // is no bulk of a table, and says nothing of being in sync.
                self.request_bulk(false, now);
                self.check_release(now);
                return;
            }
            if let Some(why) = self.bulk_damaged.take() {
                // Not all of it arrived: a sweep would remove what the lost records
                // would have kept. Not in sync, and another bulk follows.
                self.st.sync_problem = Some(format!("the bulk sync did not arrive whole: {why}"));
                for r in &mut self.roles {
                    r.in_sync = false;
                }
                self.bulk_failed(now);
                self.check_release(now);
                return;
            }
            if locations != 0 {
                self.out.push_back(Output::Sweep { keep: (s, b), locations });
                self.installs_asked += 1;
            }
            // In sync when the table is in the board, not merely on its way there.
            if self.installs_done >= self.installs_asked {
                self.bulk_ended(now);
            } else {
                self.in_sync_at = Some(self.installs_asked);
            }
        }
        self.check_release(now);
    }

    /// Gives the board the installs, then the removals, gathered so far.
    fn hand_over(&mut self, b: &mut Vec<BlockRecord>, s: &mut Vec<SessionRecord>, g: &mut Vec<SessionRecord>) {
        if !b.is_empty() || !s.is_empty() {
            self.out.push_back(Output::Install { blocks: std::mem::take(b), sessions: std::mem::take(s) });
            self.installs_asked += 1;
        }
        if !g.is_empty() {
            self.out.push_back(Output::Remove(std::mem::take(g)));
        }
    }

    fn check_release(&mut self, now: Now) {
        for l in 0..self.release.len() {
            let Some((at, released)) = self.release[l] else { continue };
            let (next, _) = self.rx.ack(0);
            // The deltas sent before the release are in; or they were lost with the
            // peer's queue and waiting longer would only leave no board active.
            let waited = now.at.saturating_duration_since(released) >= self.dead();
            if next >= at || !self.rx.started() || waited {
                self.release[l] = None;
                let ms = self.ms(now);
                if let Some(a) = self.roles[l].on_released(ms) {
                    self.act(l, a, now);
                }
            }
        }
    }

    /// Carries out what the role machine of location `l` decided.
    fn act(&mut self, l: usize, a: Action, now: Now) {
        let id = self.s.locations[l].id;
        match a {
            Action::Activate(why) => {
                self.out.push_back(Output::SetActive(l, true));
                self.note_change(l, now, format!("active: {why}"));
                self.release[l] = None;
                if !self.any(Role::Standby) {
                    // Everything from now on is ours to replicate; a returning peer
                    // asks for a bulk sync.
                    self.rx.forget();
                    self.in_sync_at = None;
                }
            }
            Action::Deactivate(why) => {
                if self.peer_alive(self.ms(now)) && self.s.hot_backup {
                    // Final deltas first: everything queued goes before the release.
                    while self.send_data_unpaced(true, now) {}
                }
                self.out.push_back(Output::SetActive(l, false));
                self.note_change(l, now, format!("standby: {why}"));
                if !self.any(Role::Active) {
                    // Nothing left to stream: the next stream starts with a bulk.
                    self.outq.clear();
                    self.bulk_left = 0;
                    self.bulk_open = false;
                    self.snapshot_pending = false;
                    self.table = None;
                    self.held.clear();
                    self.tx.reset();
                    self.reset_next = true;
                }
                self.in_sync_at = None;
                let mut h = self.header(Kind::Switchover, wire::FLAG_RELEASED);
                h.ack = self.tx.next_seq();
                let mut b = Builder::new(&h);
                b.raw(&id.to_be_bytes());
                let d = b.finish(&self.link_key);
                self.transmit(d);
                self.request_bulk(true, now);
            }
            Action::Reannounce(why) => {
                // The board is active already: this announces its addresses again.
                self.out.push_back(Output::SetActive(l, true));
                self.note_change(l, now, format!("active: {why}"));
            }
            Action::RequestRole => {
                let h = self.header(Kind::Switchover, wire::FLAG_TAKE_OVER);
                let mut b = Builder::new(&h);
                b.raw(&id.to_be_bytes());
                let d = b.finish(&self.link_key);
                self.transmit(d);
            }
        }
    }

    /// A change of role of location `l` (`what`: the role, a colon, why), for the
    /// status and the caller (a log line and the notify hook).
    fn note_change(&mut self, l: usize, now: Now, what: String) {
        let id = self.s.locations[l].id;
        let role = self.roles[l].role();
        let why = what.split_once(": ").map_or(what.as_str(), |(_, why)| why).to_string();
        self.out.push_back(Output::RoleChanged { location: id, role, why });
        let what = if self.s.locations.len() > 1 { format!("location {id} {what}") } else { what };
        self.st.last_change = Some((now.unix_ms, what));
    }

    fn request_bulk(&mut self, force: bool, now: Now) {
        if !self.s.hot_backup {
            return;
        }
        let due = self.last_bulk_request.is_none_or(|t| now.at.saturating_duration_since(t) >= self.dead());
        if force || due {
            self.last_bulk_request = Some(now.at);
            let h = self.header(Kind::BulkRequest, 0);
            let d = Builder::new(&h).finish(&self.link_key);
            self.transmit(d);
        }
    }

    /// A standby out of sync keeps asking while the active peer is there, unless the
    /// whole table has come and its board is still installing it.
    fn wants_bulk(&self, now: Now) -> bool {
        let behind = |r: &RoleMachine| {
            r.role() == Role::Standby && !r.in_sync && r.peer().is_some_and(|p| p.role == Role::Active)
        };
        self.s.hot_backup
            && self.in_sync_at.is_none()
            && self.peer_alive(self.ms(now))
            && self.roles.iter().any(behind)
            && self.bulk_retry_at.is_none_or(|t| now.at >= t)
    }

    /// Starts the stream over with the whole eligible table: the stream resets now, the
    /// table comes from the board ([`Output::TakeSnapshot`]).
    fn bulk_sync(&mut self) {
        self.tx.reset();
        self.outq.clear();
        self.bulk_left = 0;
        self.bulk_open = false;
        self.bulk_again = false;
        self.reset_next = true;
        self.st.bulk_syncs += 1;
        if !self.snapshot_pending {
            self.snapshot_pending = true;
            self.snapshot_asked += 1;
            self.snapshot_active = self.active_mask();
            self.out.push_back(Output::TakeSnapshot(self.snapshot_asked));
        }
    }

    /// Sends queued records as Data messages, paced; false if there was nothing.
    fn send_data(&mut self, now: Now) -> bool {
        let mut any = false;
        for _ in 0..self.s.pace_per_ms.max(1) {
            if self.tx.depth() >= self.window || !self.send_data_unpaced(false, now) {
                break;
            }
            any = true;
        }
        if self.tx.depth() > 0 {
            for d in self.tx.due(now.at, 64) {
                self.transmit(d);
            }
        }
        any
    }

    /// Sends one Data message of queued records (a bulk's end marked even when empty);
    /// only an active board streams, but for the final deltas of a hand-over (`force`).
    fn send_data_unpaced(&mut self, force: bool, now: Now) -> bool {
        if (!self.any(Role::Active) && !force) || self.snapshot_pending {
            return false;
        }
        let end_pending = self.bulk_open && self.bulk_left == 0;
        if self.outq.is_empty() && !end_pending {
            return false;
        }
        let seq = self.tx.next_seq();
        let mut h = self.header_seq(Kind::Data, 0, seq);
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
                self.bulk_open = false;
            }
        }
        b.set_flags(flags);
        self.st.records_sent += b.records() as u64;
        let d = b.finish(&self.link_key);
        self.transmit(d.clone());
        self.reset_next = false;
        if self.tx.sent(d, now.at).is_err() {
            // The standby fell too far behind: count it and start over with a bulk.
            self.st.overflows += 1;
            self.bulk_sync();
        }
        true
    }

    fn timers(&mut self, now: Now) {
        let ms = self.ms(now);
        if self.peer_told.1 != 0 && !self.peer_alive(ms) {
            // Nothing goes on to a silent peer.
            self.peer_told.1 = 0;
            self.out.push_back(Output::Peer { mac: self.peer_told.0, active: 0 });
        }
        let periodic = self
            .last_hb
            .is_none_or(|t| now.at.saturating_duration_since(t) >= Duration::from_millis(self.s.heartbeat_ms));
        // A handshake's answer goes between the periodic heartbeats, without moving them.
        if std::mem::take(&mut self.answer_due) || periodic {
            if periodic {
                self.last_hb = Some(now.at);
            }
            let me: Vec<(u32, PeerState)> = (self.s.locations.iter().zip(&self.roles))
                .map(|(l, r)| {
                    let (role, preferred, in_sync, fit) = (r.role(), l.preferred, r.in_sync, r.fit());
                    (l.id, PeerState { role, preferred, in_sync, fit, active_ms: r.active_ms(ms), cold: r.cold() })
                })
                .collect();
            let h = self.header(Kind::Heartbeat, 0);
            let mut b = Builder::new(&h);
            b.raw(&wire::encode_heartbeat(&me, self.s.config_digest, self.s.softwire_mac));
            // The same heartbeat, sealed with each path's key.
            let w = self.witness.then(|| b.clone().finish(&self.witness_key));
            self.transmit(b.finish(&self.link_key));
            if let Some(w) = w {
                self.out.push_back(Output::Transmit(Channel::Witness, w));
            }
        }
        if self.ack_due {
            self.ack_due = false;
            let (cum, missing) = self.rx.ack(64);
            let mut h = self.header(Kind::Ack, 0);
            h.ack = cum;
            let mut b = Builder::new(&h);
            b.raw(&stream::encode_missing(&missing));
            let d = b.finish(&self.link_key);
            self.transmit(d);
        }
        if self.release.iter().any(Option::is_some) {
            self.check_release(now);
        }
        for l in 0..self.roles.len() {
            if let Some(a) = self.roles[l].tick(ms) {
                self.act(l, a, now);
            }
        }
        if self.wants_bulk(now) {
            self.request_bulk(false, now);
        }
    }
}

#[cfg(test)]
mod tests;
