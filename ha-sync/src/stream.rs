//! The replication stream: Data messages numbered 1, 2, 3, ... within a sender's
//! epoch, acknowledged cumulatively, with the missing ranges named (NACK) so they are
//! sent again at once; what stays unacknowledged longer than the retransmission time is
//! sent again anyway. The sender keeps at most `capacity` messages unacknowledged: a
//! full queue is never silently dropped but counted, and the stream restarts
//! (`FLAG_RESET`) with a bulk sync behind it. The retransmission time follows the
//! measured round trip (RFC 6298: smoothed RTT plus four deviations, sampled only from
//! messages sent once, Karn's rule), never below the configured one: a link slower
//! than the heartbeat is not flooded with early retransmissions. Each timeout in a row
//! doubles it (up to a second), and an acknowledgement of new data ends that (RFC 6298
//! sections 5.5 and 5.7).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Counters of the sending side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    pub sent: u64,
    pub retransmitted: u64,
    pub acked: u64,
    /// Times the queue was full: each led to a reset and a bulk sync.
    pub overflows: u64,
}

struct Pending {
    seq: u64,
    bytes: Vec<u8>,
    sent_at: Instant,
    /// Sent more than once: its acknowledgement says nothing of the round trip.
    again: bool,
}

/// The retransmission time at most, however slow the round trip.
const MAX_RTO: Duration = Duration::from_secs(1);

/// The sending side of a stream.
pub struct Sender {
    next: u64,
    unacked: VecDeque<Pending>,
    capacity: usize,
    /// The configured retransmission time: the least the measured one may be.
    min_rto: Duration,
    /// Smoothed round trip and its deviation (RFC 6298), once measured.
    srtt: Option<(Duration, Duration)>,
    /// Retransmission timeouts in a row with no acknowledgement of new data between:
    /// the retransmission time doubles with each (RFC 6298 section 5.5), so a link
    /// that loses everything for a while is not sent the same messages every round trip.
    backoff: u32,
    pub stats: SenderStats,
}

/// The queue was full: the stream must restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

impl Sender {
    pub fn new(capacity: usize, rto: Duration) -> Sender {
        Sender {
            next: 1,
            unacked: VecDeque::new(),
            capacity,
            min_rto: rto,
            srtt: None,
            backoff: 0,
            stats: SenderStats::default(),
        }
    }

    /// A new least retransmission time (the heartbeat changed).
    pub fn set_rto(&mut self, rto: Duration) {
        self.min_rto = rto;
    }

    /// The retransmission time: smoothed round trip plus four deviations, within the
    /// configured one and [`MAX_RTO`], doubled for each timeout in a row (up to
    /// [`MAX_RTO`] too).
    pub fn rto(&self) -> Duration {
        let measured = self.srtt.map_or(Duration::ZERO, |(srtt, var)| srtt + 4 * var);
        let most = MAX_RTO.max(self.min_rto);
        measured.clamp(self.min_rto, most).saturating_mul(1 << self.backoff.min(16)).min(most)
    }

    /// Retransmission timeouts in a row (0 once new data is acknowledged).
    pub fn backoff(&self) -> u32 {
        self.backoff
    }

    /// A round-trip sample (RFC 6298 section 2).
    fn sample(&mut self, r: Duration) {
        self.srtt = Some(match self.srtt {
            None => (r, r / 2),
            Some((srtt, var)) => {
                let dev = srtt.abs_diff(r);
                (srtt * 7 / 8 + r / 8, var * 3 / 4 + dev / 4)
            }
        });
    }

    /// The sequence number the next message will carry.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Messages sent and not yet acknowledged.
    pub fn depth(&self) -> usize {
        self.unacked.len()
    }

    /// How long the oldest unacknowledged message has waited, at `now`.
    pub fn oldest_age(&self, now: Instant) -> Option<Duration> {
        self.unacked.front().map(|p| now.saturating_duration_since(p.sent_at))
    }

    /// When the next retransmission is due, if anything waits for its acknowledgement.
    pub fn next_due(&self) -> Option<Instant> {
        let rto = self.rto();
        self.unacked.iter().map(|p| p.sent_at + rto).min()
    }

    /// Records a message just sent with `next_seq()`. A full queue refuses it: the
    /// caller counts nothing lost silently and restarts the stream ([`Sender::reset`]).
    pub fn sent(&mut self, bytes: Vec<u8>, now: Instant) -> Result<(), Overflow> {
        if self.unacked.len() >= self.capacity {
            self.stats.overflows += 1;
            return Err(Overflow);
        }
        self.unacked.push_back(Pending { seq: self.next, bytes, sent_at: now, again: false });
        self.next += 1;
        self.stats.sent += 1;
        Ok(())
    }

    /// Forgets everything unacknowledged; the stream goes on from `next_seq()` with a
    /// message flagged `FLAG_RESET`.
    pub fn reset(&mut self) {
        self.unacked.clear();
    }

    /// Takes an acknowledgement: everything before `cumulative` arrived; the `missing`
    /// ranges (inclusive) did not and are returned to be sent again now.
    pub fn on_ack(&mut self, cumulative: u64, missing: &[(u64, u64)], now: Instant) -> Vec<Vec<u8>> {
        let mut newest = None;
        while self.unacked.front().is_some_and(|p| p.seq < cumulative) {
            if let Some(p) = self.unacked.pop_front() {
                newest = Some(p);
            }
            self.stats.acked += 1;
        }
        if let Some(p) = &newest {
            // New data acknowledged: the path works, the backoff ends (RFC 6298 5.7).
            self.backoff = 0;
            if !p.again {
                self.sample(now.saturating_duration_since(p.sent_at));
            }
        }
        let rto = self.rto();
        let mut again = Vec::new();
        for p in self.unacked.iter_mut() {
            // Not twice within half a retransmission time: NACKs repeat while a
            // retransmission is under way.
            if missing.iter().any(|&(a, b)| a <= p.seq && p.seq <= b) && now.duration_since(p.sent_at) >= rto / 2 {
                p.sent_at = now;
                p.again = true;
                again.push(p.bytes.clone());
            }
        }
        self.stats.retransmitted += again.len() as u64;
        again
    }

    /// Messages unacknowledged for longer than the retransmission time (at most `max`),
    /// to be sent again.
    pub fn due(&mut self, now: Instant, max: usize) -> Vec<Vec<u8>> {
        let rto = self.rto();
        let mut again = Vec::new();
        for p in self.unacked.iter_mut() {
            if again.len() >= max {
                break;
            }
            if now.duration_since(p.sent_at) >= rto {
                p.sent_at = now;
                p.again = true;
                again.push(p.bytes.clone());
            }
        }
        if !again.is_empty() {
            // A timeout: twice as long before the next (RFC 6298 5.5).
            self.backoff = (self.backoff + 1).min(16);
        }
        self.stats.retransmitted += again.len() as u64;
        again
    }
}

/// What the receiving side did with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// These messages (this one, and any held ones it unblocked) are next, in order.
    Deliver(Vec<Vec<u8>>),
    /// Ahead of a gap: held until the gap is filled.
    Held,
    /// Already delivered (a retransmission or a replay): ignored.
    Duplicate,
    /// Ahead of what can be held, or before the stream was (re)started: dropped.
    Dropped,
}

/// The receiving side of a stream.
pub struct Receiver {
    /// The next sequence number to deliver; 0 until a reset message starts the stream.
    expected: u64,
    held: BTreeMap<u64, Vec<u8>>,
    window: u64,
}

impl Receiver {
    pub fn new(window: u64) -> Receiver {
        Receiver { expected: 0, held: BTreeMap::new(), window }
    }

    /// Started: a reset message has been received since the peer's epoch began.
    pub fn started(&self) -> bool {
        self.expected > 0
    }

    /// Forgets the stream (the peer restarted): nothing is accepted until a reset.
    pub fn forget(&mut self) {
        self.expected = 0;
        self.held.clear();
    }

    /// Takes message `seq`; `reset` restarts the stream there.
    pub fn accept(&mut self, seq: u64, reset: bool, bytes: &[u8]) -> Accepted {
        // A reset moves the stream forward only: a retransmission of an older reset that
        // arrives late must not take the receiver back to a base the sender has left.
        if reset && (self.expected == 0 || seq >= self.expected) {
            self.expected = seq;
            self.held.retain(|&s, _| s > seq);
        }
        if self.expected == 0 {
            return Accepted::Dropped;
        }
        if seq < self.expected {
            return Accepted::Duplicate;
        }
        if seq > self.expected {
            if seq - self.expected > self.window {
                return Accepted::Dropped;
            }
            self.held.entry(seq).or_insert_with(|| bytes.to_vec());
            return Accepted::Held;
        }
        let mut out = vec![bytes.to_vec()];
        self.expected += 1;
        while let Some(b) = self.held.remove(&self.expected) {
            out.push(b);
            self.expected += 1;
        }
        Accepted::Deliver(out)
    }

    /// The acknowledgement to send: everything before the first number arrived; the
    /// ranges missing between what is held (at most `max` of them).
    pub fn ack(&self, max: usize) -> (u64, Vec<(u64, u64)>) {
        let mut missing = Vec::new();
        let mut next = self.expected;
        for &s in self.held.keys() {
            if missing.len() >= max {
                break;
            }
            if s > next {
                missing.push((next, s - 1));
            }
            next = s + 1;
        }
        (self.expected, missing)
    }
}

/// Acknowledgement payload: count, then (first, last) ranges, big-endian.
pub fn encode_missing(missing: &[(u64, u64)]) -> Vec<u8> {
    let mut v = Vec::with_capacity(2 + 16 * missing.len());
    v.extend_from_slice(&(missing.len() as u16).to_be_bytes());
    for (a, b) in missing {
        v.extend_from_slice(&a.to_be_bytes());
        v.extend_from_slice(&b.to_be_bytes());
    }
    v
}

pub fn decode_missing(p: &[u8]) -> Option<Vec<(u64, u64)>> {
    let n = u16::from_be_bytes(p.get(0..2)?.try_into().ok()?) as usize;
    let body = p.get(2..2 + 16 * n)?;
    Some(
        body.chunks_exact(16)
            .map(|c| {
                let a = u64::from_be_bytes(c[..8].try_into().expect("8 bytes"));
                let b = u64::from_be_bytes(c[8..].try_into().expect("8 bytes"));
                (a, b)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64) -> Vec<u8> {
        seq.to_be_bytes().to_vec()
    }

    /// Runs a stream of `n` messages over a channel that loses and reorders, until all
    /// are delivered; returns the delivery order.
    fn run(n: u64, lose: impl Fn(u64, u32) -> bool) -> (Vec<u64>, SenderStats) {
        let t0 = Instant::now();
        let mut tx = Sender::new(10_000, Duration::from_millis(20));
        let mut rx = Receiver::new(100_000);
        let mut wire: Vec<(u64, bool, Vec<u8>)> = Vec::new();
        let mut delivered = Vec::new();
        let mut tries = std::collections::HashMap::new();
        for s in 1..=n {
            let b = msg(s);
            tx.sent(b.clone(), t0).unwrap();
            wire.push((s, s == 1, b));
        }
        let mut now = t0;
        for _round in 0..200 {
            // Deliver in reverse order within a round (reordering), losing some.
            for (s, reset, b) in std::mem::take(&mut wire).into_iter().rev() {
                let k = tries.entry(s).or_insert(0u32);
                *k += 1;
                if lose(s, *k) {
                    continue;
                }
                if let Accepted::Deliver(v) = rx.accept(s, reset, &b) {
                    delivered.extend(v.iter().map(|m| u64::from_be_bytes(m[..].try_into().unwrap())));
                }
            }
            let (cum, missing) = rx.ack(64);
            for b in tx.on_ack(cum, &missing, now) {
                let s = u64::from_be_bytes(b[..].try_into().unwrap());
                wire.push((s, s == 1, b));
            }
            now += Duration::from_millis(25);
            for b in tx.due(now, 1000) {
                let s = u64::from_be_bytes(b[..].try_into().unwrap());
                wire.push((s, s == 1, b));
            }
            if tx.depth() == 0 {
                break;
            }
        }
        (delivered, tx.stats)
    }

    #[test]
    fn the_retransmission_time_follows_a_round_trip_slower_than_the_configured_one() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut tx = Sender::new(100, ms(40));
        assert_eq!(tx.rto(), ms(40), "nothing measured: the configured one");
        // A 100 ms round trip, steady: each message acknowledged 100 ms after it left.
        for k in 0..20u64 {
            let at = t0 + ms(10 * k);
            tx.sent(msg(k + 1), at).unwrap();
            assert!(tx.on_ack(k + 2, &[], at + ms(100)).is_empty());
        }
        let rto = tx.rto();
        assert!(rto >= ms(100) && rto <= ms(130), "{rto:?}");
        // So a message waits that long before it goes again, not 40 ms.
        tx.sent(msg(21), t0 + ms(1000)).unwrap();
        assert!(tx.due(t0 + ms(1090), 10).is_empty());
        assert_eq!(tx.due(t0 + ms(1000) + rto, 10), vec![msg(21)]);
        // The timeout doubled the retransmission time; its acknowledgement ends that,
        // and (the message went twice) is no sample (Karn).
        assert_eq!(tx.rto(), (2 * rto).min(MAX_RTO));
        tx.on_ack(22, &[], t0 + ms(5000));
        assert_eq!(tx.rto(), rto);
        // However slow the link, at most a second.
        let mut slow = Sender::new(100, ms(40));
        slow.sent(msg(1), t0).unwrap();
        slow.on_ack(2, &[], t0 + ms(5000));
        assert_eq!(slow.rto(), MAX_RTO);
    }

    #[test]
    fn in_order_exactly_once_despite_loss_and_reordering() {
        // Every third message lost on its first two tries, every seventh once.
        let (got, stats) = run(500, |s, k| (s % 3 == 0 && k <= 2) || (s % 7 == 0 && k == 1));
        assert_eq!(got, (1..=500).collect::<Vec<_>>());
        assert!(stats.retransmitted > 0);
        assert_eq!(stats.acked, 500);
    }

    #[test]
    fn a_full_queue_is_an_overflow_not_a_silent_loss() {
        let mut tx = Sender::new(2, Duration::from_millis(20));
        let now = Instant::now();
        tx.sent(msg(1), now).unwrap();
        tx.sent(msg(2), now).unwrap();
        assert_eq!(tx.sent(msg(3), now), Err(Overflow));
        assert_eq!(tx.stats.overflows, 1);
        tx.reset();
        assert_eq!(tx.depth(), 0);
        assert_eq!(tx.next_seq(), 3, "the stream goes on from where it was, flagged as a reset");
    }

    #[test]
    fn nothing_before_a_reset_and_duplicates_are_ignored() {
        let mut rx = Receiver::new(10);
        assert_eq!(rx.accept(5, false, &msg(5)), Accepted::Dropped);
        assert_eq!(rx.accept(5, true, &msg(5)), Accepted::Deliver(vec![msg(5)]));
        assert_eq!(rx.accept(5, false, &msg(5)), Accepted::Duplicate);
        assert_eq!(rx.accept(7, false, &msg(7)), Accepted::Held);
        assert_eq!(rx.ack(8), (6, vec![(6, 6)]));
        assert_eq!(rx.accept(9, false, &msg(9)), Accepted::Held);
        assert_eq!(rx.ack(8), (6, vec![(6, 6), (8, 8)]));
        assert_eq!(rx.accept(100, false, &msg(100)), Accepted::Dropped, "beyond the window");
        assert_eq!(rx.accept(6, false, &msg(6)), Accepted::Deliver(vec![msg(6), msg(7)]));
        // A late copy of an older reset changes nothing.
        assert_eq!(rx.accept(5, true, &msg(5)), Accepted::Duplicate);
        assert_eq!(rx.ack(8).0, 8);
        assert_eq!(decode_missing(&encode_missing(&[(8, 8), (10, 12)])), Some(vec![(8, 8), (10, 12)]));
        assert_eq!(decode_missing(&[0, 3, 1]), None);
    }
}
