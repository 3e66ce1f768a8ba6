//! Automatic bans: a peer that keeps being refused is disconnected and kept
//! out for a while, doubling each time it comes back for more. Pure: events
//! in, decisions out, no swarm inside.
//!
//! Refusing a flood request still costs a stream, a negotiation, a decode
//! and an answer; banning is the step after answering 429/503/400: the
//! flood then costs the flooder (its dials are refused) and not the
//! neighbours. Only refusals the peer caused count (see `gate::Refusals`).
//!
//! Memory is hard-bounded ([`MAX_TRACKED`] peers, banned or not) and every
//! operation is O(1) or O(log n), never a scan of the table: peers not
//! banned are kept least recently refused first, so the one to make room is
//! at the front; bans are kept apart, with their ends in order. When every
//! tracked peer is banned, a new striker is *not tracked* (its requests are
//! still refused by the service's limits, at the same cost as before): a
//! ban is never evicted, for then fresh identities could lift their own
//! bans, and unknown peers are never refused at the gate for want of room,
//! for then 4,096 banned identities could shut every newcomer out. Room
//! comes back as bans end (within [`BanConfig::max`]).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use hashlink::LinkedHashMap;
use libp2p::PeerId;
use tokio::time::Instant;

use crate::backoff::Backoff;

/// When to ban, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanConfig {
    /// Refusals the peer caused (its own rate, 429; its own in-flight share,
    /// 503; bad or oversized requests, 400/413; never a 503 of the node-wide
    /// limit or of the handler's back-pressure) within [`BanConfig::window`]
    /// that get a peer banned. Default 100: a well-behaved peer is never refused,
    /// a flooding one reaches it within a second or two. `0` turns bans off.
    pub threshold: u32,
    /// The window refusals are counted in. Default 10 s.
    pub window: Duration,
    /// The first ban's length. Default 30 s.
    pub first: Duration,
    /// The longest ban: each ban within [`BanConfig::max`] of the previous
    /// one's end lasts twice as long, up to this. Default 1 h. Each ban is
    /// shortened at random by up to a tenth of its length, so that peers
    /// banned together do not all come back at once.
    pub max: Duration,
}

impl Default for BanConfig {
    fn default() -> Self {
        Self {
            threshold: 100,
            window: Duration::from_secs(10),
            first: Duration::from_secs(30),
            max: Duration::from_secs(3600),
        }
    }
}

/// The part of a ban's length it may be shortened by at random (10 %).
pub(crate) const BAN_JITTER: f64 = 0.1;

/// A change the swarm task carries out (and reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BanChange {
    /// Disconnect the peer and refuse it for `duration`.
    Banned { peer: PeerId, duration: Duration },
    /// The ban is over.
    Unbanned { peer: PeerId },
}

/// Peers tracked at once (striking, banned, or remembered for the doubling).
/// Remote input never grows memory beyond this.
pub(crate) const MAX_TRACKED: usize = 4096;

#[derive(Debug)]
struct Strikes {
    since: Instant,
    count: u32,
}

#[derive(Debug)]
struct Record {
    /// Refusals in the current window.
    strikes: Option<Strikes>,
    /// The lengths of this peer's bans: `first`, doubling up to `max`.
    lengths: Backoff,
    /// When its last ban ended, for the doubling.
    last_end: Option<Instant>,
    /// Its last refusal (or the end of its ban).
    touched: Instant,
}

/// The ban policy: see the module documentation.
#[derive(Debug)]
pub(crate) struct Bans {
    config: BanConfig,
    /// Peers not banned now, least recently touched first.
    watched: LinkedHashMap<PeerId, Record>,
    /// Banned peers: the ban's end and the peer's record.
    banned: HashMap<PeerId, (Instant, Record)>,
    /// The ends of the bans, soonest first.
    ends: BTreeSet<(Instant, PeerId)>,
    /// Seeds each record's jitter.
    seed: u64,
}

impl Bans {
    pub(crate) fn new(config: BanConfig) -> Self {
        Self::with_seed(config, rand::random())
    }

    /// With the ban lengths' jitter drawn from `seed` (tests).
    pub(crate) fn with_seed(config: BanConfig, seed: u64) -> Self {
        Self { config, watched: LinkedHashMap::new(), banned: HashMap::new(), ends: BTreeSet::new(), seed }
    }

    pub(crate) fn is_banned(&self, peer: &PeerId) -> bool {
        self.banned.contains_key(peer)
    }

    fn tracked(&self) -> usize {
        self.watched.len() + self.banned.len()
    }

    /// A request of `peer` was refused at `now`.
    pub(crate) fn on_refused(&mut self, peer: PeerId, now: Instant) -> Option<BanChange> {
        if self.config.threshold == 0 || self.banned.contains_key(&peer) {
            return None; // (banned: answers still in flight from before the ban)
        }
        self.forget_stale(now);
        if self.watched.to_back(&peer).is_none() {
            if self.tracked() >= MAX_TRACKED && self.watched.pop_front().is_none() {
                return None; // every tracked peer is banned: see the module docs
            }
            self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let lengths = Backoff::new(self.config.first.min(self.config.max), self.config.max)
                .with_jitter(BAN_JITTER)
                .with_seed(self.seed);
            self.watched.insert(peer, Record { strikes: None, lengths, last_end: None, touched: now });
        }
        let config = &self.config;
        let record = self.watched.get_mut(&peer).expect("just made sure");
        record.touched = now;
        let strikes = match &mut record.strikes {
            Some(s) if now.saturating_duration_since(s.since) < config.window => s,
            slot => slot.insert(Strikes { since: now, count: 0 }),
        };
        strikes.count += 1;
        if strikes.count < config.threshold {
            return None;
        }
        let mut record = self.watched.remove(&peer).expect("just made sure");
        // A peer well behaved for `max` since its last ban starts over.
        if record.last_end.is_some_and(|ended| now.saturating_duration_since(ended) >= config.max) {
            record.lengths.reset();
        }
        // Whole milliseconds: it is printed.
        let duration = Duration::from_millis(record.lengths.next_wait().as_millis() as u64);
        record.strikes = None;
        let until = now + duration;
        self.banned.insert(peer, (until, record));
        self.ends.insert((until, peer));
        Some(BanChange::Banned { peer, duration })
    }

    /// The bans over at `now`.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<BanChange> {
        let mut over = Vec::new();
        while let Some(&(until, peer)) = self.ends.first()
            && until <= now
        {
            self.ends.pop_first();
            if let Some((_, mut record)) = self.banned.remove(&peer) {
                record.last_end = Some(until);
                record.touched = now;
                self.watched.insert(peer, record);
            }
            over.push(BanChange::Unbanned { peer });
        }
        self.forget_stale(now);
        over
    }

    /// When [`Bans::due`] has something to do next.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.ends.first().map(|(until, _)| *until)
    }

    /// Forgets the peers untouched for `max`: their strikes are long over,
    /// and so is the doubling. The least recently touched are at the front.
    fn forget_stale(&mut self, now: Instant) {
        let max = self.config.max;
        while self.watched.front().is_some_and(|(_, r)| now.saturating_duration_since(r.touched) >= max) {
            self.watched.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strike(bans: &mut Bans, peer: PeerId, times: u32) -> Option<BanChange> {
        (0..times).map(|_| bans.on_refused(peer, Instant::now())).last().flatten()
    }

    /// The ban's length, if `change` bans `peer`.
    fn banned(change: Option<BanChange>, peer: PeerId) -> Duration {
        match change {
            Some(BanChange::Banned { peer: p, duration }) if p == peer => duration,
            other => panic!("expected a ban of {peer}, got {other:?}"),
        }
    }

    /// `d` is `nominal` shortened by at most the jitter.
    fn jittered(d: Duration, nominal: Duration) -> bool {
        d <= nominal && d >= nominal.mul_f64(1.0 - BAN_JITTER) - Duration::from_millis(1)
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_refused_past_the_threshold_within_the_window_is_banned() {
        let mut bans = Bans::new(BanConfig::default());
        let peer = PeerId::random();
        assert_eq!(strike(&mut bans, peer, 99), None);
        let duration = banned(bans.on_refused(peer, Instant::now()), peer);
        assert!(jittered(duration, Duration::from_secs(30)), "{duration:?}");
        assert!(bans.is_banned(&peer));
        assert_eq!(bans.on_refused(peer, Instant::now()), None, "already banned");
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_spread_thinner_than_the_window_never_ban() {
        let mut bans = Bans::new(BanConfig::default());
        let peer = PeerId::random();
        for _ in 0..10 {
            assert_eq!(strike(&mut bans, peer, 60), None);
            tokio::time::advance(Duration::from_secs(10)).await;
        }
        assert!(!bans.is_banned(&peer));
    }

    #[tokio::test(start_paused = true)]
    async fn bans_end_and_double_for_repeat_offenders_up_to_the_max() {
        let config = BanConfig { max: Duration::from_secs(200), ..BanConfig::default() };
        let mut bans = Bans::with_seed(config, 1);
        let peer = PeerId::random();
        let mut lengths = Vec::new();
        for nominal in [30, 60, 120, 200, 200] {
            let duration = banned(strike(&mut bans, peer, 100), peer);
            assert!(jittered(duration, Duration::from_secs(nominal)), "{duration:?} for {nominal} s");
            lengths.push(duration);
            assert_eq!(bans.next_due(), Some(Instant::now() + duration));
            tokio::time::advance(duration).await;
            assert_eq!(bans.due(Instant::now()), vec![BanChange::Unbanned { peer }]);
            assert!(!bans.is_banned(&peer));
            assert_eq!(bans.next_due(), None);
        }
        // Well behaved for long enough, the peer starts over.
        tokio::time::advance(Duration::from_secs(200)).await;
        bans.due(Instant::now());
        let duration = banned(strike(&mut bans, peer, 100), peer);
        assert!(jittered(duration, Duration::from_secs(30)), "{duration:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn peers_banned_together_do_not_all_come_back_together() {
        let mut bans = Bans::with_seed(BanConfig { threshold: 1, ..BanConfig::default() }, 7);
        let ends: std::collections::HashSet<Duration> =
            (0..50).map(|_| PeerId::random()).map(|p| banned(strike(&mut bans, p, 1), p)).collect();
        assert!(ends.len() > 40, "{} distinct ban lengths out of 50", ends.len());
        assert!(ends.iter().all(|d| jittered(*d, Duration::from_secs(30))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_threshold_of_zero_turns_bans_off() {
        let mut bans = Bans::new(BanConfig { threshold: 0, ..BanConfig::default() });
        assert_eq!(strike(&mut bans, PeerId::random(), 10_000), None);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded_by_the_cap_and_the_least_recently_refused_make_room() {
        let mut bans = Bans::new(BanConfig { threshold: 30_000, ..BanConfig::default() });
        let offender = PeerId::random();
        strike(&mut bans, offender, 30_000);
        let first = PeerId::random();
        bans.on_refused(first, Instant::now());
        for _ in 0..20_000 {
            bans.on_refused(PeerId::random(), Instant::now());
            // The first striker keeps striking: it is never the one evicted.
            bans.on_refused(first, Instant::now());
        }
        assert_eq!(bans.tracked(), MAX_TRACKED);
        assert!(bans.is_banned(&offender));
        assert!(bans.watched.contains_key(&first), "recently refused peers stay");
        assert_eq!(bans.watched.front().map(|(_, r)| r.strikes.as_ref().unwrap().count), Some(1));
        banned(strike(&mut bans, first, 30_000 - 20_001), first);
    }

    #[tokio::test(start_paused = true)]
    async fn with_every_entry_an_active_ban_a_new_striker_is_not_tracked_and_no_ban_is_lost() {
        let config = BanConfig { threshold: 1, ..BanConfig::default() };
        let mut bans = Bans::with_seed(config, 3);
        let peers: Vec<PeerId> = (0..MAX_TRACKED).map(|_| PeerId::random()).collect();
        for peer in &peers {
            banned(bans.on_refused(*peer, Instant::now()), *peer);
        }
        assert_eq!(bans.banned.len(), MAX_TRACKED);
        // At the bound, all banned: a newcomer is not tracked, nothing grows, no ban is evicted.
        let newcomer = PeerId::random();
        for _ in 0..10 {
            assert_eq!(bans.on_refused(newcomer, Instant::now()), None);
        }
        assert!(!bans.is_banned(&newcomer));
        assert_eq!(bans.tracked(), MAX_TRACKED);
        assert!(peers.iter().all(|p| bans.is_banned(p)));
        // Every ban still ends with its `Unbanned`, and then there is room again.
        tokio::time::advance(Duration::from_secs(30)).await;
        let over = bans.due(Instant::now());
        assert_eq!(over.len(), MAX_TRACKED);
        assert_eq!(bans.tracked(), MAX_TRACKED, "remembered for the doubling");
        banned(bans.on_refused(newcomer, Instant::now()), newcomer);
        assert_eq!(bans.tracked(), MAX_TRACKED);
    }

    #[tokio::test(start_paused = true)]
    async fn the_next_due_is_the_earliest_ban_end_and_moves_on_as_bans_end() {
        let config = BanConfig { threshold: 1, ..BanConfig::default() };
        let mut bans = Bans::with_seed(config, 7);
        let (first, second) = (PeerId::random(), PeerId::random());
        let length = |change: Option<BanChange>| match change {
            Some(BanChange::Banned { duration, .. }) => duration,
            other => panic!("expected a ban, got {other:?}"),
        };
        let start = Instant::now();
        assert_eq!(bans.next_due(), None);
        let first_end = start + length(bans.on_refused(first, start));
        tokio::time::advance(Duration::from_secs(5)).await;
        let second_end = Instant::now() + length(bans.on_refused(second, Instant::now()));
        assert!(first_end < second_end);
        assert_eq!(bans.next_due(), Some(first_end));
        tokio::time::advance(first_end - Instant::now()).await;
        assert_eq!(bans.due(Instant::now()), vec![BanChange::Unbanned { peer: first }]);
        assert_eq!(bans.next_due(), Some(second_end));
        tokio::time::advance(second_end - Instant::now()).await;
        assert_eq!(bans.due(Instant::now()), vec![BanChange::Unbanned { peer: second }]);
        assert_eq!(bans.next_due(), None);
    }
}
