//! Who is active: a pure state machine over heartbeats and time, so every rule is
//! tested without sockets.
//!
//! - A board starts in `Init` and listens for one dead interval: a peer that is active
//!   makes it standby; a peer that is not yet active yields to the preferred board (the
//!   location's `slot`); silence makes it active. A standby peer that holds the table
//!   (this board restarted within the dead interval) is given up to a dead interval to
//!   take the role, which it does, warm, on hearing this board's new start.
//! - A standby whose peer is silent for the dead interval (heartbeat interval times the
//!   dead count) takes over. The peer is heard on the HA channel and, as a witness, on
//!   the softwire segment: a board takes over only when both are silent, so a cut HA
//!   link alone never makes two active boards.
//! - Two active boards (a split that healed, a board that was stopped and runs again, a
//!   board that started and did not hear its busy peer in time): the one holding the
//!   state keeps the role, and the other steps down at once and syncs from it. An
//!   activation is *warm* when the board held the peer's table (a standby in sync took
//!   over or was handed the role) and *cold* otherwise (it started alone, or took over
//!   out of sync). A warm board keeps the role against a cold one (a board just started
//!   holds nothing); of two warm ones, the one that became active last (it took over
//!   and served the subscribers since, and the neighbours follow it); of two cold ones,
//!   the one active longer (it has made the sessions). Where the two became active
//!   within a dead interval of each other (a start race), or both still are a dead
//!   interval later (the two saw the times differently), the preferred one keeps it; it
//!   yields only to a margin of two dead intervals, since each board hears the other's
//!   time a link delay late and the two must never both step down.
//! - A board whose links are down (its softwire or Internet interface has no carrier)
//!   or one of whose workers is stuck (its rounds stopped) is unfit: active, it hands the role to a fit peer (gracefully, as a switchover);
//!   standby, it neither preempts nor asks; a fit standby never hands over to it. With
//!   no peer, or an unfit one, it keeps serving what it can.
//! - Preempt: the preferred board, standby and in sync for `preempt-time` while the
//!   other is active, asks for the role; the other releases it gracefully (final deltas
//!   first), and only then does the preferred one take over. A switchover on command
//!   follows the same path.

/// A board's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    #[default]
    Init,
    Standby,
    Active,
}

impl Role {
    pub fn to_u8(self) -> u8 {
        match self {
            Role::Init => 0,
            Role::Standby => 1,
            Role::Active => 2,
        }
    }
    pub fn from_u8(v: u8) -> Option<Role> {
        Some(match v {
            0 => Role::Init,
            1 => Role::Standby,
            2 => Role::Active,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Role::Init => "init",
            Role::Standby => "standby",
            Role::Active => "active",
        }
    }
}

/// What the peer said in its last heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerState {
    pub role: Role,
    pub preferred: bool,
    /// The peer (a standby) holds the whole eligible table.
    pub in_sync: bool,
    /// The peer's links are up (see the module's rules).
    pub fit: bool,
    /// Active: for how long, in milliseconds (as the heartbeat left): of two active
    /// boards both warm, the one active for the shorter time keeps the role, both cold,
    /// the one active longer (see the module's rules).
    pub active_ms: u32,
    /// Active without the other board's table (see the module's rules).
    pub cold: bool,
}

/// What the machine asks its board to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Become active (steer traffic, announce the addresses).
    Activate(&'static str),
    /// Stop forwarding and become standby (and ask for a bulk sync).
    Deactivate(&'static str),
    /// Ask the active peer to release the role (preempt, or a switchover on command).
    RequestRole,
    /// Stay active and announce the addresses again: the peer was active too (a healed
    /// split), and the neighbours may have followed it.
    Reannounce(&'static str),
}

pub struct RoleMachine {
    role: Role,
    preferred: bool,
    dead_ms: u64,
    preempt_ms: u64,
    started: u64,
    heard: Option<u64>,
    peer: Option<PeerState>,
    /// This board (a standby) holds the whole eligible table.
    pub in_sync: bool,
    /// Since when this board is standby and in sync while the peer is active.
    ready_since: Option<u64>,
    requested: Option<u64>,
    /// The last change of role: when and why.
    pub last_change: Option<(u64, &'static str)>,
    /// Both boards were active and this one kept the role (re-announced once), since
    /// then (this machine's clock).
    split: Option<u64>,
    /// Active since (this machine's clock).
    active_since: Option<u64>,
    /// Active, and it was not a standby in sync when it became so.
    cold: bool,
    /// This board's links are up.
    fit: bool,
}

impl RoleMachine {
    pub fn new(preferred: bool, dead_ms: u64, preempt_ms: u64, now: u64) -> RoleMachine {
        RoleMachine {
            role: Role::Init,
            preferred,
            dead_ms,
            preempt_ms,
            started: now,
            heard: None,
            peer: None,
            in_sync: false,
            ready_since: None,
            requested: None,
            last_change: None,
            split: None,
            active_since: None,
            cold: false,
            fit: true,
        }
    }

    /// This board's links came up (true) or went down; an active board whose links are
    /// down hands the role to a fit peer that is alive.
    pub fn set_fit(&mut self, fit: bool, now: u64) -> Option<Action> {
        self.fit = fit;
        self.unfit_hands_over(now)
    }

    pub fn fit(&self) -> bool {
        self.fit
    }

    /// Active, unfit, and a fit peer alive to take over: hand the role over.
    fn unfit_hands_over(&mut self, now: u64) -> Option<Action> {
        let peer_fit = self.peer.is_some_and(|p| p.fit && p.role == Role::Standby);
        if self.role == Role::Active && !self.fit && peer_fit && self.peer_alive(now) {
            self.go(Role::Standby, now, "this board is unfit (a link down or a worker stuck); the peer is fit")
        } else {
            None
        }
    }

    /// New timers (a commit): the peer is dead after `dead_ms` of silence, and a
    /// recovered preferred board waits `preempt_ms`, from now on.
    pub fn set_timers(&mut self, dead_ms: u64, preempt_ms: u64) {
        self.dead_ms = dead_ms;
        self.preempt_ms = preempt_ms;
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn peer(&self) -> Option<PeerState> {
        self.peer
    }

    /// The peer has been heard within the dead interval.
    pub fn peer_alive(&self, now: u64) -> bool {
        self.heard.is_some_and(|t| now.saturating_sub(t) < self.dead_ms)
    }

    /// Active: for how long, in milliseconds (0 otherwise), for the heartbeat.
    pub fn active_ms(&self, now: u64) -> u32 {
        self.active_since.map_or(0, |t| now.saturating_sub(t).min(u32::MAX as u64) as u32)
    }

    /// Active without the peer's table (for the heartbeat).
    pub fn cold(&self) -> bool {
        self.role == Role::Active && self.cold
    }

    /// Both boards are active: whether this one keeps the role (the module's rules). A
    /// warm board against a cold one keeps it; of two warm ones the one that became
    /// active last, of two cold ones the one active longer, by a dead interval at least
    /// (two against the preferred board); otherwise, or if both kept it for a dead
    /// interval already, the preferred one (a tie, which a sound configuration never
    /// has, goes to the peer: stepping down is safe).
    fn keeps_role(&self, p: PeerState, now: u64) -> bool {
        let by_preference = self.preferred && !p.preferred;
        if self.split.is_some_and(|t| now.saturating_sub(t) >= self.dead_ms) {
            return by_preference;
        }
        if self.cold != p.cold {
            return !self.cold;
        }
        // By how much this board's claim beats the peer's: of two cold boards the one
        // active longer, of two warm ones the one active shorter. The peer's time is as
        // its heartbeat left, a link delay ago, and so is this board's at the peer: the
        // two see the margin differently by twice the delay. So the preferred board
        // yields only to a margin of two dead intervals, the other keeps the role only
        // with one: at least one keeps it for any delay up to half a dead interval (at
        // worst both do, and a dead interval later the preferred one alone).
        let (mine, theirs) = (self.active_ms(now) as i64, p.active_ms as i64);
        let ahead = if self.cold { mine - theirs } else { theirs - mine };
        let dead = self.dead_ms as i64;
        if by_preference { ahead > -2 * dead } else { ahead >= dead }
    }

    fn go(&mut self, role: Role, now: u64, why: &'static str) -> Option<Action> {
        if role == self.role {
            return None;
        }
        // Warm only from a standby that holds the peer's table.
        self.cold = !(self.role == Role::Standby && self.in_sync);
        self.role = role;
        self.last_change = Some((now, why));
        self.active_since = (role == Role::Active).then_some(now);
        // A split this board kept the role in is over once its role changes.
        self.split = None;
        self.ready_since = None;
        self.requested = None;
        match role {
            Role::Active => Some(Action::Activate(why)),
            Role::Standby => {
                self.in_sync = false;
                Some(Action::Deactivate(why))
            }
            Role::Init => None,
        }
    }

    /// A heartbeat from the peer (on any path).
    pub fn on_heartbeat(&mut self, p: PeerState, now: u64) -> Option<Action> {
        self.heard = Some(now);
        self.peer = Some(p);
        if p.role != Role::Active {
            self.split = None;
        }
        match (self.role, p.role) {
            (Role::Init, Role::Active) => self.go(Role::Standby, now, "the peer is active"),
            // A standby that holds the table: this board (restarted within the dead
            // interval, say) holds nothing, and the peer takes the role warm once it
            // hears this board's new start (`peer_restarted`). Wait for it, a dead
            // interval from the start at most.
            (Role::Init, Role::Standby) if p.in_sync && now.saturating_sub(self.started) < self.dead_ms => None,
            (Role::Init, _) if self.preferred && (self.fit || !p.fit) => {
                self.go(Role::Active, now, "the preferred board of the location")
            }
            (Role::Init, _) if !self.fit && p.fit => {
                self.go(Role::Standby, now, "this board is unfit (a link down or a worker stuck)")
            }
            // The preferred peer's links are down and ours are up: this board serves.
            (Role::Init, _) if self.fit && !p.fit => self.go(Role::Active, now, "the preferred board is unfit"),
            (Role::Init, _) => self.go(Role::Standby, now, "the peer is the preferred board"),
            (Role::Active, Role::Active) if !self.keeps_role(p, now) => {
                self.go(Role::Standby, now, "both boards were active; the peer keeps the role")
            }
            // This board keeps the role: once per split, it takes the addresses back.
            (Role::Active, Role::Active) if self.split.is_none() => {
                self.split = Some(now);
                Some(Action::Reannounce("both boards were active; this one keeps the role"))
            }
            // Both standby, and not because this board just handed the role over (the
            // peer's heartbeat may predate its taking it): the fit one takes it, the
            // preferred one if both or neither are fit.
            (Role::Standby, Role::Standby)
                if (self.fit && !p.fit || self.preferred && self.fit == p.fit)
                    && self.last_change.is_none_or(|(t, _)| now.saturating_sub(t) >= self.dead_ms) =>
            {
                self.go(Role::Active, now, "no board was active")
            }
            (Role::Active, _) => self.unfit_hands_over(now),
            _ => None,
        }
    }

    /// The peer started again (a new incarnation): a standby that holds the table of
    /// the peer, which was active, takes the role at once, warm. The peer, back in
    /// Init, holds nothing; it goes standby on hearing this board active, syncs and
    /// preempts. (Call it before the board forgets it is in sync with the old stream.)
    pub fn peer_restarted(&mut self, now: u64) -> Option<Action> {
        let peer_was_active = self.peer.is_some_and(|p| p.role == Role::Active);
        if self.role == Role::Standby && self.in_sync && peer_was_active {
            self.go(Role::Active, now, "the active peer started again; this board holds its table")
        } else {
            None
        }
    }

    /// The peer let go of the role for us (preempt or switchover).
    pub fn on_released(&mut self, now: u64) -> Option<Action> {
        if self.role == Role::Standby { self.go(Role::Active, now, "the peer handed the role over") } else { None }
    }

    /// The peer asks for the role; true if this board lets go (it is active and the
    /// peer is in sync). The caller sends the final deltas before anything else.
    pub fn on_request(&mut self, now: u64) -> Option<Action> {
        let peer_ready = self.peer.is_some_and(|p| p.in_sync && (p.fit || !self.fit));
        if self.role == Role::Active && peer_ready {
            self.go(Role::Standby, now, "handed the role to the peer")
        } else {
            None
        }
    }

    /// A switchover asked by the operator on this board: an active board hands over
    /// (if the peer is in sync), a standby asks for the role. Err says why not.
    pub fn switchover(&mut self, now: u64) -> Result<Option<Action>, &'static str> {
        if !self.peer_alive(now) {
            return Err("the peer is not there");
        }
        match self.role {
            Role::Active => self.on_request(now).map(Some).ok_or("the peer is not in sync yet"),
            Role::Standby if self.in_sync => {
                self.requested = Some(now);
                Ok(Some(Action::RequestRole))
            }
            Role::Standby => Err("this board is not in sync yet"),
            Role::Init => Err("this board has no role yet"),
        }
    }

    /// When (`now`'s clock) [`RoleMachine::tick`] may next change something, if ever:
    /// the end of the wait for a peer, the peer's dead interval, preempt.
    pub fn next_tick(&self, now: u64) -> Option<u64> {
        let silent = self.heard.map(|t| t + self.dead_ms);
        match self.role {
            // The end of the wait (a peer in sync may be about to take the role), then
            // the peer's silence.
            Role::Init if now < self.started + self.dead_ms => Some(self.started + self.dead_ms),
            Role::Init => Some(silent.unwrap_or(0).max(self.started + self.dead_ms)),
            Role::Standby => {
                let preempt =
                    self.preferred && self.fit && self.in_sync && self.peer.is_some_and(|p| p.role == Role::Active);
                let ask = match self.ready_since {
                    _ if !preempt => None,
                    None => Some(now),
                    Some(since) => Some((since + self.preempt_ms).max(self.requested.map_or(0, |t| t + self.dead_ms))),
                };
                [silent.or(Some(now)), ask].into_iter().flatten().min()
            }
            Role::Active => None,
        }
    }

    /// Time passes: takeover on a silent peer, preempt.
    pub fn tick(&mut self, now: u64) -> Option<Action> {
        let alive = self.peer_alive(now);
        if !alive {
            // A peer silent for a dead interval: the next split is a new one.
            self.split = None;
        }
        match self.role {
            Role::Init if !alive && now.saturating_sub(self.started) >= self.dead_ms => {
                self.go(Role::Active, now, "no peer answered")
            }
            // The wait for a standby in sync to take the role is over and it has not:
            // decide on its last heartbeat as at once.
            Role::Init if now.saturating_sub(self.started) >= self.dead_ms => match self.peer {
                Some(p) if p.role == Role::Standby => {
                    let heard = self.heard;
                    let a = self.on_heartbeat(p, now);
                    self.heard = heard;
                    a
                }
                _ => None,
            },
            Role::Standby if !alive => self.go(Role::Active, now, "the peer went silent"),
            Role::Standby
                if self.preferred && self.fit && self.in_sync && self.peer.is_some_and(|p| p.role == Role::Active) =>
            {
                let since = *self.ready_since.get_or_insert(now);
                let due = now.saturating_sub(since) >= self.preempt_ms;
                // Ask again every dead interval until the peer lets go.
                let asked_lately = self.requested.is_some_and(|t| now.saturating_sub(t) < self.dead_ms);
                if due && !asked_lately {
                    self.requested = Some(now);
                    Some(Action::RequestRole)
                } else {
                    None
                }
            }
            _ => {
                if self.role == Role::Standby && !self.in_sync {
                    self.ready_since = None;
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEAD: u64 = 300;
    const PREEMPT: u64 = 5_000;

    fn hb(role: Role, preferred: bool, in_sync: bool) -> PeerState {
        PeerState { role, preferred, in_sync, fit: true, active_ms: 0, cold: false }
    }

    #[test]
    fn alone_a_board_becomes_active_after_one_dead_interval() {
        let mut m = RoleMachine::new(false, DEAD, PREEMPT, 0);
        assert_eq!(m.tick(DEAD - 1), None);
        assert_eq!(m.tick(DEAD), Some(Action::Activate("no peer answered")));
    }

    #[test]
    fn at_start_the_active_peer_wins_then_the_preferred_one() {
        let mut m = RoleMachine::new(true, DEAD, PREEMPT, 0);
        assert!(matches!(m.on_heartbeat(hb(Role::Active, false, false), 10), Some(Action::Deactivate(_))));
        let mut a = RoleMachine::new(true, DEAD, PREEMPT, 0);
        let mut b = RoleMachine::new(false, DEAD, PREEMPT, 0);
        assert!(matches!(a.on_heartbeat(hb(Role::Init, false, false), 10), Some(Action::Activate(_))));
        assert!(matches!(b.on_heartbeat(hb(Role::Init, true, false), 10), Some(Action::Deactivate(_))));
    }

    #[test]
    fn a_standby_takes_over_when_the_peer_is_silent_for_the_dead_interval() {
        let mut m = RoleMachine::new(false, DEAD, PREEMPT, 0);
        m.on_heartbeat(hb(Role::Active, true, false), 0);
        for t in (100..1000).step_by(100) {
            assert_eq!(m.on_heartbeat(hb(Role::Active, true, false), t), None);
            assert_eq!(m.tick(t + 50), None);
        }
        assert_eq!(m.tick(900 + DEAD - 1), None);
        assert_eq!(m.tick(900 + DEAD), Some(Action::Activate("the peer went silent")));
    }

    /// An active peer that started alone (cold), active for `active_ms`.
    fn active(preferred: bool, active_ms: u32) -> PeerState {
        PeerState { active_ms, cold: true, ..hb(Role::Active, preferred, false) }
    }

    /// What `m` says of itself in a heartbeat at `now`.
    fn said(m: &RoleMachine, now: u64) -> PeerState {
        PeerState { active_ms: m.active_ms(now), cold: m.cold(), ..hb(m.role(), m.preferred, m.in_sync) }
    }

    #[test]
    fn after_a_start_race_only_the_preferred_board_stays_active() {
        let mut pref = RoleMachine::new(true, DEAD, PREEMPT, 0);
        let mut other = RoleMachine::new(false, DEAD, PREEMPT, 0);
        pref.tick(DEAD);
        other.tick(DEAD + 100);
        assert_eq!((pref.role(), other.role()), (Role::Active, Role::Active));
        // Active within a dead interval of each other: the preferred board keeps the
        // role and takes the addresses back, once.
        assert!(matches!(pref.on_heartbeat(active(false, 600), 1000), Some(Action::Reannounce(_))));
        assert_eq!(pref.on_heartbeat(active(false, 610), 1010), None);
        assert_eq!(pref.role(), Role::Active);
        assert!(matches!(other.on_heartbeat(active(true, 700), 1000), Some(Action::Deactivate(_))));
        assert_eq!(other.role(), Role::Standby);
        assert!(!other.in_sync, "it needs a bulk sync");
    }

    #[test]
    fn a_board_that_ran_again_after_a_stop_yields_to_the_one_that_took_over() {
        // Slot 1 (preferred) active since 0; stopped at 1000; slot 2 takes over at
        // 1300; slot 1 runs again at 3000 and still thinks itself active.
        let mut pref = RoleMachine::new(true, DEAD, PREEMPT, 0);
        let mut other = RoleMachine::new(false, DEAD, PREEMPT, 0);
        pref.tick(DEAD);
        other.on_heartbeat(said(&pref, 800), 800);
        other.in_sync = true;
        assert_eq!(other.tick(800 + DEAD), Some(Action::Activate("the peer went silent")));
        assert!(pref.cold() && !other.cold(), "slot 2 took over with slot 1's table");
        // The board that took over holds the newer state: it keeps the role.
        assert!(matches!(other.on_heartbeat(said(&pref, 3000), 3000), Some(Action::Reannounce(_))));
        assert_eq!(
            pref.on_heartbeat(said(&other, 3000), 3000),
            Some(Action::Deactivate("both boards were active; the peer keeps the role"))
        );
        assert_eq!(other.role(), Role::Active);
    }

    #[test]
    fn a_board_that_started_alone_yields_to_the_one_that_holds_the_sessions() {
        // Slot 1 (preferred) active since 0, slot 2 standby in sync; slot 2 restarts
        // at 10,000 and, its peer busy, hears nothing for a dead interval: active, but
        // cold (nothing in its tables).
        let mut pref = RoleMachine::new(true, DEAD, PREEMPT, 0);
        pref.tick(DEAD);
        let mut restarted = RoleMachine::new(false, DEAD, PREEMPT, 10_000);
        assert_eq!(restarted.tick(10_000 + DEAD), Some(Action::Activate("no peer answered")));
        assert!(restarted.cold());
        // Both cold: the one active longer keeps the role, whoever is preferred.
        assert!(matches!(pref.on_heartbeat(said(&restarted, 10_400), 10_400), Some(Action::Reannounce(_))));
        assert!(matches!(restarted.on_heartbeat(said(&pref, 10_400), 10_400), Some(Action::Deactivate(_))));
        // The same with the preferences the other way round.
        let mut old = RoleMachine::new(false, DEAD, PREEMPT, 0);
        old.tick(DEAD);
        let mut fresh = RoleMachine::new(true, DEAD, PREEMPT, 10_000);
        fresh.tick(10_000 + DEAD);
        assert!(matches!(old.on_heartbeat(said(&fresh, 10_400), 10_400), Some(Action::Reannounce(_))));
        assert!(matches!(fresh.on_heartbeat(said(&old, 10_400), 10_400), Some(Action::Deactivate(_))));
        // A warm board (it took over in sync) keeps the role against a cold one that
        // has been active longer.
        let mut warm = RoleMachine::new(false, DEAD, PREEMPT, 0);
        warm.on_heartbeat(said(&old, 100), 100);
        warm.in_sync = true;
        warm.tick(100 + DEAD);
        assert!(!warm.cold());
        let mut cold = RoleMachine::new(true, DEAD, PREEMPT, 0);
        cold.tick(DEAD);
        assert!(matches!(warm.on_heartbeat(said(&cold, 5_000), 5_000), Some(Action::Reannounce(_))));
        assert!(matches!(cold.on_heartbeat(said(&warm, 5_000), 5_000), Some(Action::Deactivate(_))));
    }

    #[test]
    fn two_boards_that_both_keep_the_role_settle_on_the_preferred_one() {
        // Each saw the other's time differently: both kept it. A dead interval later
        // the preferred board does.
        // Both warm (each took over with the other's table at some point).
        let mut other = RoleMachine::new(false, DEAD, PREEMPT, 0);
        other.on_heartbeat(active(true, 0), 0);
        other.in_sync = true;
        other.tick(DEAD);
        assert!(!other.cold());
        let warm = |ms| PeerState { cold: false, ..active(true, ms) };
        assert!(matches!(other.on_heartbeat(warm(10_000), 1000), Some(Action::Reannounce(_))));
        assert_eq!(other.on_heartbeat(warm(10_100), 1100), None);
        assert!(matches!(other.on_heartbeat(warm(10_300), 1000 + DEAD), Some(Action::Deactivate(_))));
    }

    #[test]
    fn preempt_waits_for_sync_and_preempt_time_then_the_peer_lets_go() {
        let mut pref = RoleMachine::new(true, DEAD, PREEMPT, 0);
        let mut other = RoleMachine::new(false, DEAD, PREEMPT, 0);
        other.tick(DEAD);
        pref.on_heartbeat(hb(Role::Active, false, false), 1000);
        assert_eq!(pref.role(), Role::Standby);
        // Not in sync: no preempt, however long.
        for t in (1000..20_000).step_by(100) {
            pref.on_heartbeat(hb(Role::Active, false, false), t);
            assert_eq!(pref.tick(t), None);
        }
        pref.in_sync = true;
        let mut asked = None;
        for t in (20_000..30_000).step_by(100) {
            pref.on_heartbeat(hb(Role::Active, false, false), t);
            if let Some(a) = pref.tick(t) {
                asked = Some((t, a));
                break;
            }
        }
        assert_eq!(asked, Some((20_000 + PREEMPT, Action::RequestRole)));
        // The active board lets go only to a peer in sync.
        other.on_heartbeat(hb(Role::Standby, true, false), 25_000);
        assert_eq!(other.on_request(25_000), None);
        other.on_heartbeat(hb(Role::Standby, true, true), 25_000);
        assert!(matches!(other.on_request(25_000), Some(Action::Deactivate(_))));
        assert!(matches!(pref.on_released(25_010), Some(Action::Activate(_))));
    }

    #[test]
    fn a_switchover_on_command_needs_a_live_peer_in_sync() {
        let mut a = RoleMachine::new(true, DEAD, PREEMPT, 0);
        a.tick(DEAD);
        assert_eq!(a.switchover(DEAD), Err("the peer is not there"));
        a.on_heartbeat(hb(Role::Standby, false, false), 400);
        assert_eq!(a.switchover(450), Err("the peer is not in sync yet"));
        a.on_heartbeat(hb(Role::Standby, false, true), 500);
        assert!(matches!(a.switchover(550), Ok(Some(Action::Deactivate(_)))));
        assert_eq!(a.role(), Role::Standby);
    }

    /// A board active since `at`, warm (it was a standby in sync, handed the role).
    fn warm_active(preferred: bool, at: u64) -> RoleMachine {
        let mut m = RoleMachine::new(preferred, DEAD, PREEMPT, 0);
        m.on_heartbeat(hb(Role::Active, !preferred, false), at.saturating_sub(10));
        m.in_sync = true;
        assert!(matches!(m.on_released(at), Some(Action::Activate(_))));
        assert!(!m.cold());
        m
    }

    /// A board active since `at` that started alone (cold).
    fn cold_active(preferred: bool, at: u64) -> RoleMachine {
        let mut m = RoleMachine::new(preferred, DEAD, PREEMPT, at - DEAD);
        assert!(matches!(m.tick(at), Some(Action::Activate(_))));
        assert!(m.cold());
        m
    }

    #[test]
    fn two_active_boards_never_both_step_down_whatever_the_link_delay_and_the_order() {
        // Each hears the other's time as it left, a link delay ago: both see the other
        // active for less than it is. Near the edge of the dead interval, one board
        // measured beyond it and the other within it.
        for cold in [false, true] {
            for delay in [0, 1, 10, 30, DEAD / 2] {
                for apart in (0..4 * DEAD).step_by(3) {
                    for first_preferred in [true, false] {
                        let make = if cold { cold_active } else { warm_active };
                        let mut first = make(first_preferred, 1000);
                        let mut second = make(!first_preferred, 1000 + apart);
                        let now = 1000 + apart + 5000;
                        let sent = |m: &RoleMachine| said(m, now - delay);
                        let (of_first, of_second) = (sent(&first), sent(&second));
                        let a = first.on_heartbeat(of_second, now);
                        let b = second.on_heartbeat(of_first, now);
                        let down = |a: &Option<Action>| matches!(a, Some(Action::Deactivate(_)));
                        assert!(
                            !(down(&a) && down(&b)),
                            "both stepped down: cold {cold}, delay {delay}, {apart} ms apart, first preferred {first_preferred}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn with_a_peer_of_a_release_without_flag_8_both_may_step_down_and_the_preferred_one_takes_it() {
        // The new board started alone (cold) while the old-release board, which knows
        // no flag 8 and so says nothing of it (read as warm) and takes every peer for
        // warm, had been active longer. Each yields: the new one to a warm board, the
        // old one to the board active for the shorter time.
        for new_preferred in [true, false] {
            let mut new = cold_active(new_preferred, 5_000);
            let mut old = warm_active(!new_preferred, 1_000);
            let now = 6_000;
            let of_new = PeerState { cold: false, ..said(&new, now) };
            let of_old = said(&old, now);
            assert!(matches!(new.on_heartbeat(of_old, now), Some(Action::Deactivate(_))));
            assert!(matches!(old.on_heartbeat(of_new, now), Some(Action::Deactivate(_))));
            // Nothing worse: a dead interval later the preferred one takes the role
            // ("no board was active"), and the other stays standby.
            let (pref, other) = if new_preferred { (&mut new, &mut old) } else { (&mut old, &mut new) };
            let standby = |m: &RoleMachine| hb(Role::Standby, m.preferred, false);
            let (of_pref, of_other) = (standby(pref), standby(other));
            assert_eq!(pref.on_heartbeat(of_other, now + 20), None, "not before a dead interval");
            assert_eq!(other.on_heartbeat(of_pref, now + DEAD), None);
            assert_eq!(pref.on_heartbeat(of_other, now + DEAD), Some(Action::Activate("no board was active")));
            assert_eq!(other.on_heartbeat(said(pref, now + DEAD + 20), now + DEAD + 20), None);
            assert_eq!((pref.role(), other.role()), (Role::Active, Role::Standby));
        }
    }
}
