//! Automatic bans: a peer that keeps being refused is disconnected and kept
//! out for a while, doubling each time it comes back for more. Pure: events
//! in, decisions out, no swarm inside.
//!
//! Refusing a flood request still costs a stream, a negotiation, a decode
//! and an answer; banning is the step after answering 429/503/400: the
//! flood then costs the flooder (its dials are refused) and not the
//! neighbours.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use libp2p::PeerId;
use tokio::time::Instant;

/// When to ban, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanConfig {
    /// Refused requests (429, 503, 400, 413) within [`BanConfig::window`] that
    /// get a peer banned. Default 100: a well-behaved peer is never refused,
    /// a flooding one reaches it within a second or two. `0` turns bans off.
    pub threshold: u32,
    /// The window refusals are counted in. Default 10 s.
    pub window: Duration,
    /// The first ban's length. Default 30 s.
    pub first: Duration,
    /// The longest ban: each ban within [`BanConfig::max`] of the previous
    /// one's end lasts twice as long, up to this. Default 1 h.
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

/// A change the swarm task carries out (and reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BanChange {
    /// Disconnect the peer and refuse it for `duration`.
    Banned { peer: PeerId, duration: Duration },
    /// The ban is over.
    Unbanned { peer: PeerId },
}

/// Peers tracked at once (striking, banned, or remembered); the oldest entry
/// makes room. Remote input never grows memory beyond this.
const MAX_TRACKED: usize = 4096;

#[derive(Debug)]
struct Strikes {
    since: Instant,
    count: u32,
}

#[derive(Debug)]
struct Record {
    /// Refusals in the current window.
    strikes: Option<Strikes>,
    /// The current ban's end, if banned.
    banned_until: Option<Instant>,
    /// The last ban's length and end, for doubling.
    last: Option<(Duration, Instant)>,
    touched: Instant,
}

/// The ban policy: see the module documentation.
#[derive(Debug)]
pub(crate) struct Bans {
    config: BanConfig,
    peers: HashMap<PeerId, Record>,
    /// Every ban's end, earliest first: [`Bans::next_due`] without a scan.
    /// An entry may outlive its ban (then `due` just drops it).
    ends: BTreeSet<(Instant, PeerId)>,
}

impl Bans {
    pub(crate) fn new(config: BanConfig) -> Self {
        Self { config, peers: HashMap::new(), ends: BTreeSet::new() }
    }

    pub(crate) fn is_banned(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|r| r.banned_until.is_some())
    }

    /// A request of `peer` was refused at `now`.
    pub(crate) fn on_refused(&mut self, peer: PeerId, now: Instant) -> Option<BanChange> {
        if self.config.threshold == 0 {
            return None;
        }
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_TRACKED {
            self.evict_oldest();
        }
        let config = &self.config;
        let record = self.peers.entry(peer).or_insert(Record {
            strikes: None,
            banned_until: None,
            last: None,
            touched: now,
        });
        record.touched = now;
        if record.banned_until.is_some() {
            return None; // answers still in flight from before the ban
        }
        let strikes = match &mut record.strikes {
            Some(s) if now.duration_since(s.since) < config.window => s,
            slot => slot.insert(Strikes { since: now, count: 0 }),
        };
        strikes.count += 1;
        if strikes.count < config.threshold {
            return None;
        }
        let duration = match record.last {
            Some((last, ended)) if now.duration_since(ended) < config.max => (last * 2).min(config.max),
            _ => config.first.min(config.max),
        };
        record.strikes = None;
        record.banned_until = Some(now + duration);
        record.last = Some((duration, now + duration));
        self.ends.insert((now + duration, peer));
        Some(BanChange::Banned { peer, duration })
    }

    /// The bans over at `now`.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<BanChange> {
        let mut over = Vec::new();
        while self.ends.first().is_some_and(|(end, _)| *end <= now) {
            self.ends.pop_first();
        }
        for (peer, record) in &mut self.peers {
            if record.banned_until.is_some_and(|until| until <= now) {
                record.banned_until = None;
                record.touched = now;
                over.push(BanChange::Unbanned { peer: *peer });
            }
        }
        // Forget peers whose last ban is long over and who strike no more.
        let max = self.config.max;
        self.peers.retain(|_, r| {
            r.banned_until.is_some()
                || r.last.is_some_and(|(_, ended)| now.duration_since(ended) < max)
                || r.strikes.as_ref().is_some_and(|s| now.duration_since(s.since) < max)
        });
        over
    }

    /// When [`Bans::due`] has something to do next.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.ends.first().map(|(end, _)| *end)
    }

    fn evict_oldest(&mut self) {
        // Never a banned peer: its ban must end with an `Unbanned`.
        let oldest = self
            .peers
            .iter()
            .filter(|(_, r)| r.banned_until.is_none())
            .min_by_key(|(_, r)| r.touched)
            .map(|(peer, _)| *peer);
        if let Some(peer) = oldest {
            self.peers.remove(&peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strike(bans: &mut Bans, peer: PeerId, times: u32) -> Option<BanChange> {
        (0..times).map(|_| bans.on_refused(peer, Instant::now())).last().flatten()
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_refused_past_the_threshold_within_the_window_is_banned() {
        let mut bans = Bans::new(BanConfig::default());
        let peer = PeerId::random();
        assert_eq!(strike(&mut bans, peer, 99), None);
        assert_eq!(
            bans.on_refused(peer, Instant::now()),
            Some(BanChange::Banned { peer, duration: Duration::from_secs(30) })
        );
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
        let mut bans = Bans::new(config);
        let peer = PeerId::random();
        let mut lengths = Vec::new();
        for _ in 0..5 {
            let Some(BanChange::Banned { duration, .. }) = strike(&mut bans, peer, 100) else { panic!() };
            lengths.push(duration.as_secs());
            assert_eq!(bans.next_due(), Some(Instant::now() + duration));
            tokio::time::advance(duration).await;
            assert_eq!(bans.due(Instant::now()), vec![BanChange::Unbanned { peer }]);
            assert!(!bans.is_banned(&peer));
        }
        assert_eq!(lengths, [30, 60, 120, 200, 200]);
        // Well behaved for long enough, the peer starts over.
        tokio::time::advance(Duration::from_secs(200)).await;
        bans.due(Instant::now());
        assert_eq!(
            strike(&mut bans, peer, 100),
            Some(BanChange::Banned { peer, duration: Duration::from_secs(30) })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_threshold_of_zero_turns_bans_off() {
        let mut bans = Bans::new(BanConfig { threshold: 0, ..BanConfig::default() });
        assert_eq!(strike(&mut bans, PeerId::random(), 10_000), None);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded_by_the_cap_and_banned_peers_are_never_evicted() {
        let mut bans = Bans::new(BanConfig::default());
        let banned = PeerId::random();
        strike(&mut bans, banned, 100);
        for _ in 0..20_000 {
            bans.on_refused(PeerId::random(), Instant::now());
        }
        assert!(bans.peers.len() <= MAX_TRACKED);
        assert!(bans.is_banned(&banned));
    }

    #[tokio::test(start_paused = true)]
    async fn the_next_due_is_the_earliest_ban_end_and_moves_on_as_bans_end() {
        let config = BanConfig { threshold: 1, ..BanConfig::default() };
        let mut bans = Bans::new(config);
        let (first, second) = (PeerId::random(), PeerId::random());
        let start = Instant::now();
        assert_eq!(bans.next_due(), None);
        bans.on_refused(first, start);
        tokio::time::advance(Duration::from_secs(5)).await;
        bans.on_refused(second, Instant::now());
        assert_eq!(bans.next_due(), Some(start + Duration::from_secs(30)));
        tokio::time::advance(Duration::from_secs(25)).await;
        assert_eq!(bans.due(Instant::now()), vec![BanChange::Unbanned { peer: first }]);
        assert_eq!(bans.next_due(), Some(start + Duration::from_secs(35)));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(bans.due(Instant::now()), vec![BanChange::Unbanned { peer: second }]);
        assert_eq!(bans.next_due(), None);
    }
}
