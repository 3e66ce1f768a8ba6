//! The limit state of each remote peer, kept by `PeerId` across its services and reconnects.
//!
//! The transport makes one service per connection and drops it with the
//! connection. A peer's token bucket and in-flight count must be the same on
//! all its connections, and must survive a reconnect (or a reconnect would
//! refill the bucket). So [`MakePeerService`](crate::MakePeerService) keeps
//! them in a [`PeerStates`] table keyed by `PeerId`, and every service it
//! makes for a peer gets the same ones. Requests never touch the table: it is
//! read once per made service.
//!
//! **Expiry.** An entry stays after the peer's last service is dropped, until
//! it is *expired*: no service and no in-flight request of the peer holds it,
//! and its bucket is full again. A new entry would then behave the same, so
//! forgetting it loses nothing. That is at most `rate_burst / rate_per_sec`
//! after the peer's last request (2 s with the default [`Limits`]), and as
//! soon as it is idle when rate limiting is off. Expired entries are swept out
//! when a new peer arrives, at most once a second (the crate runs no task of
//! its own).
//!
//! **Bound.** The table holds at most `capacity` entries. A new peer that
//! finds it full first evicts an eighth of it (amortised: one pass per
//! `capacity / 8` new peers, so a flood of fresh identities costs no scan per
//! identity): the idle entries whose buckets are full soonest (the expired
//! ones first of all), since they hold the least a peer could gain by being
//! forgotten. Entries in use are never evicted; when every entry is in use the
//! new peer's service gets a state of its own, shared with no other service.
//! The number of live services is the transport's to bound, by its
//! connection limits.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use libp2p_identity::PeerId;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::Limits;
use crate::rate_limit::Bucket;

/// How often, at most, a new peer sweeps the expired entries out of the table.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A full table evicts `1 / EVICT_SHARE` of its capacity at once.
const EVICT_SHARE: usize = 8;

/// The limit state that all the services of one peer share.
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerState {
    /// The peer's token bucket, when rate limiting is on.
    pub(crate) bucket: Option<Arc<Mutex<Bucket>>>,
    /// The peer's in-flight slots, when the per-peer in-flight limit is on.
    pub(crate) in_flight: Option<Arc<Semaphore>>,
}

impl PeerState {
    /// Whether only the table holds this state: no service of the peer is
    /// alive and none of its requests holds an in-flight slot.
    ///
    /// Sound under the table's lock: outside the table, new references are
    /// only cloned from existing ones, so a count of 1 cannot grow meanwhile.
    fn is_idle(&self) -> bool {
        self.bucket.as_ref().is_none_or(|bucket| Arc::strong_count(bucket) == 1)
            && self.in_flight.as_ref().is_none_or(|slots| Arc::strong_count(slots) == 1)
    }

    /// When the bucket is full again; `None` without a bucket.
    fn full_at(&self) -> Option<Instant> {
        self.bucket.as_ref().map(|bucket| lock(bucket).full_at())
    }

    /// Whether a new state would behave the same: idle, with a full bucket.
    fn is_expired(&self, now: Instant) -> bool {
        self.is_idle() && self.full_at().is_none_or(|full_at| full_at <= now)
    }
}

/// The [`PeerState`] of each peer, by `PeerId`, bounded; see the [module docs](self).
pub(crate) struct PeerStates {
    rate_per_sec: u32,
    rate_burst: u32,
    max_in_flight_per_peer: usize,
    capacity: usize,
    table: Mutex<Table>,
}

struct Table {
    peers: HashMap<PeerId, PeerState>,
    next_sweep: Instant,
}

impl PeerStates {
    /// A table of the per-peer state `limits` asks for, of at most `capacity` peers.
    pub(crate) fn new(limits: &Limits, capacity: usize) -> Self {
        Self {
            rate_per_sec: limits.rate_per_sec,
            rate_burst: limits.rate_burst,
            max_in_flight_per_peer: limits.max_in_flight_per_peer,
            capacity,
            table: Mutex::new(Table { peers: HashMap::new(), next_sweep: Instant::now() }),
        }
    }

    /// The state of `peer`: the one its other services share, or a new one.
    pub(crate) fn state(&self, peer: PeerId) -> PeerState {
        if self.rate_per_sec == 0 && self.max_in_flight_per_peer == 0 {
            return PeerState::default(); // nothing per peer to share
        }
        let now = Instant::now();
        let mut table = lock(&self.table);
        if let Some(state) = table.peers.get(&peer) {
            return state.clone();
        }
        table.make_room(now, self.capacity);
        let state = PeerState {
            bucket: (self.rate_per_sec > 0)
                .then(|| Arc::new(Mutex::new(Bucket::new(self.rate_per_sec, self.rate_burst, now)))),
            in_flight: (self.max_in_flight_per_peer > 0)
                .then(|| Arc::new(Semaphore::new(self.max_in_flight_per_peer))),
        };
        if table.peers.len() < self.capacity {
            table.peers.insert(peer, state.clone());
        }
        state
    }

    /// How many peers the table holds at most.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many peers the table holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.table).peers.len()
    }
}

impl Table {
    /// Sweeps out the expired entries when a sweep is due, then evicts if the table is full.
    fn make_room(&mut self, now: Instant, capacity: usize) {
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_EVERY;
            self.peers.retain(|_, state| !state.is_expired(now));
            // Give back the memory of a flood that is over.
            if self.peers.capacity() > 4 * self.peers.len().max(64) {
                self.peers.shrink_to(2 * self.peers.len());
            }
        }
        if self.peers.len() >= capacity {
            self.evict(capacity.div_ceil(EVICT_SHARE));
        }
    }

    /// Evicts up to `n` idle entries, those whose buckets are full soonest first.
    fn evict(&mut self, n: usize) {
        let mut idle: Vec<(Option<Instant>, PeerId)> = self
            .peers
            .iter()
            .filter(|(_, state)| state.is_idle())
            .map(|(peer, state)| (state.full_at(), *peer))
            .collect();
        let n = n.min(idle.len());
        if n == 0 {
            return;
        }
        idle.select_nth_unstable_by_key(n - 1, |(full_at, _)| *full_at);
        for (_, peer) in &idle[..n] {
            self.peers.remove(peer);
        }
    }
}

impl fmt::Debug for PeerStates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerStates")
            .field("peers", &lock(&self.table).peers.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// Locks `mutex`; nothing panics while holding these locks, so a poisoned one is still sound.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use tokio::time::advance;

    use super::*;

    /// One token a second, two at most (a drained bucket is full again 2 s
    /// after its last request), two requests in flight per peer.
    fn limits() -> Limits {
        Limits { rate_per_sec: 1, rate_burst: 2, max_in_flight_per_peer: 2, ..Limits::default() }
    }

    fn same(a: &PeerState, b: &PeerState) -> bool {
        let bucket = |s: &PeerState| Arc::as_ptr(s.bucket.as_ref().unwrap());
        let slots = |s: &PeerState| Arc::as_ptr(s.in_flight.as_ref().unwrap());
        match (bucket(a) == bucket(b), slots(a) == slots(b)) {
            (true, true) => true,
            (false, false) => false,
            _ => panic!("bucket and slots must go together"),
        }
    }

    fn drain(state: &PeerState) {
        let mut bucket = lock(state.bucket.as_ref().unwrap());
        while bucket.try_take(Instant::now()) {}
    }

    #[tokio::test(start_paused = true)]
    async fn the_states_of_one_peer_are_one_state_and_other_peers_have_their_own() {
        let table = PeerStates::new(&limits(), 16);
        let (a, b) = (PeerId::random(), PeerId::random());
        let first = table.state(a);
        assert!(same(&first, &table.state(a)), "a peer's second service");
        drop(first);
        assert!(same(&table.state(a), &table.state(a)), "after the peer's services are dropped");
        assert!(!same(&table.state(a), &table.state(b)));
        assert_eq!(table.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_entry_is_forgotten_once_its_bucket_is_full_again() {
        let table = PeerStates::new(&limits(), 16);
        let (drained, untouched, live) = (PeerId::random(), PeerId::random(), PeerId::random());
        let kept = table.state(drained);
        drain(&kept);
        drop(kept);
        drop(table.state(untouched));
        let live = table.state(live); // held all along, like a connected peer's service
        drain(&live);

        // Sweeps come with new peers, at most once a second.
        advance(Duration::from_millis(1500)).await;
        drop(table.state(PeerId::random()));
        assert_eq!(table.len(), 3, "the untouched idle entry is forgotten, the drained one kept");
        assert!(lock(&table.table).peers.contains_key(&drained));
        advance(Duration::from_secs(1)).await; // the drained bucket is full again
        drop(table.state(PeerId::random()));
        assert_eq!(table.len(), 2, "only the live entry and the newest peer remain");
        advance(Duration::from_secs(3600)).await;
        drop(table.state(PeerId::random()));
        assert_eq!(table.len(), 2, "an entry in use never expires");
        assert!(lock(&table.table).peers.values().any(|state| same(state, &live)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_keeps_its_peer_remembered() {
        let table = PeerStates::new(&limits(), 16);
        let peer = PeerId::random();
        let state = table.state(peer);
        let permit = Arc::clone(state.in_flight.as_ref().unwrap()).try_acquire_owned().unwrap();
        drop(state); // the connection is gone, its request still runs
        advance(Duration::from_secs(60)).await;
        drop(table.state(PeerId::random()));
        assert_eq!(table.state(peer).in_flight.unwrap().available_permits(), 1);
        drop(permit);
        advance(Duration::from_secs(1)).await;
        drop(table.state(PeerId::random()));
        assert!(!lock(&table.table).peers.contains_key(&peer));
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_never_exceeds_its_capacity_under_100k_distinct_peers() {
        let capacity = crate::DEFAULT_MAX_REMEMBERED_PEERS;
        let table = PeerStates::new(&limits(), capacity);
        // A few peers stay connected through the flood; one of them has used its bucket.
        let connected: Vec<(PeerId, PeerState)> = (0..10)
            .map(|_| {
                let peer = PeerId::random();
                (peer, table.state(peer))
            })
            .collect();
        drain(&connected[0].1);
        // 100k fresh identities in no time at all: nothing expires, so the cap must hold by eviction.
        for i in 0..100_000 {
            let state = table.state(PeerId::random());
            drain(&state); // each has something to remember
            drop(state);
            if i % 1024 == 0 {
                assert!(table.len() <= capacity, "{} peers after {i}", table.len());
            }
        }
        assert!(table.len() <= capacity);
        assert!(table.len() > capacity / 2, "evicted far more than needed: {}", table.len());
        for (peer, state) in &connected {
            assert!(same(&table.state(*peer), state), "a connected peer was evicted");
        }
        assert!(!lock(connected[0].1.bucket.as_ref().unwrap()).try_take(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn eviction_keeps_the_entries_with_the_most_to_remember() {
        let table = PeerStates::new(&limits(), 8); // evicts one entry at a time
        let drained = PeerId::random();
        drain(&table.state(drained));
        let others: Vec<PeerId> = (0..7).map(|_| PeerId::random()).collect();
        for peer in &others {
            drop(table.state(*peer));
        }
        drop(table.state(PeerId::random()));
        assert_eq!(table.len(), 8);
        let peers = &lock(&table.table).peers;
        assert!(peers.contains_key(&drained), "the drained bucket was evicted before a full one");
        assert_eq!(others.iter().filter(|peer| peers.contains_key(peer)).count(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_table_full_of_live_entries_gives_a_new_peer_a_state_of_its_own() {
        let table = PeerStates::new(&limits(), 4);
        let live: Vec<PeerState> = (0..4).map(|_| table.state(PeerId::random())).collect();
        let late = PeerId::random();
        let first = table.state(late);
        assert!(!same(&first, &table.state(late)), "not remembered: no room");
        assert_eq!(table.len(), 4);
        drop(live);
        assert!(same(&table.state(late), &table.state(late)), "remembered once there is room");
    }

    #[test]
    fn without_per_peer_limits_there_is_nothing_to_remember() {
        let limits = Limits { rate_per_sec: 0, max_in_flight_per_peer: 0, ..Limits::default() };
        let table = PeerStates::new(&limits, 16);
        let state = table.state(PeerId::random());
        assert!(state.bucket.is_none() && state.in_flight.is_none());
        assert_eq!(table.len(), 0);
    }
}
