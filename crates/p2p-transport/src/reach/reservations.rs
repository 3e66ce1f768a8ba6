//! When to reserve a relayed address, and when to try again: a pure policy.
//!
//! libp2p's relay client renews a reservation while its listener lives, but
//! once the listener closes (the relay restarted, the connection to it
//! dropped, the relay refused) nobody reserves again: that is ours, with a
//! back-off (`crate::backoff`) that starts at `initial`, doubles per failure
//! up to `max`, and is reset by a reservation that is accepted; each wait is
//! shortened at random by up to a fifth, so nodes that lost the same relay
//! do not all come back at the same instant.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::time::Instant;

use crate::backoff::{Backoff, DEFAULT_JITTER};

/// Relays we reserve on at once; more are ignored (bootstrap peers only).
const MAX_RELAYS: usize = 8;

#[derive(Debug)]
struct Relay {
    /// The relay's address, ending in `/p2p/<relay>`.
    addr: Multiaddr,
    /// `None`: listening (reserved or reserving); `Some(at)`: try again at.
    retry_at: Option<Instant>,
    /// The waits after failures.
    backoff: Backoff,
}

/// The relays we reserve on, each listening or waiting to try again.
#[derive(Debug)]
pub(crate) struct Reservations {
    initial: Duration,
    max: Duration,
    jitter: f64,
    relays: HashMap<PeerId, Relay>,
}

impl Reservations {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Self { initial, max: max.max(initial), jitter: DEFAULT_JITTER, relays: HashMap::new() }
    }

    /// Each wait shortened by a random part of up to `jitter` (default a fifth).
    #[cfg(test)]
    pub(crate) fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// We want a reservation on `relay` at `addr`: the address to listen on
    /// (`<addr>/p2p-circuit`) now, or `None` if we already have or wait for one.
    pub(crate) fn want(&mut self, relay: PeerId, addr: &Multiaddr) -> Option<Multiaddr> {
        if self.relays.contains_key(&relay) || self.relays.len() >= MAX_RELAYS {
            return None;
        }
        let addr = match addr.iter().last() {
            Some(Protocol::P2p(peer)) if peer == relay => addr.clone(),
            _ => addr.clone().with(Protocol::P2p(relay)),
        };
        let listen = circuit(&addr);
        let backoff = Backoff::new(self.initial, self.max).with_jitter(self.jitter);
        self.relays.insert(relay, Relay { addr, retry_at: None, backoff });
        Some(listen)
    }

    /// The relay accepted a reservation: the next failure waits `initial` again.
    pub(crate) fn on_reserved(&mut self, relay: &PeerId) {
        if let Some(state) = self.relays.get_mut(relay) {
            state.backoff.reset();
        }
    }

    /// The reservation's listener closed (or could not start): try again
    /// after the back-off, which doubles. Returns when.
    pub(crate) fn on_closed(&mut self, relay: &PeerId, now: Instant) -> Option<Instant> {
        let state = self.relays.get_mut(relay)?;
        let at = now + state.backoff.next_wait();
        state.retry_at = Some(at);
        Some(at)
    }

    /// When the next retry is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.relays.values().filter_map(|r| r.retry_at).min()
    }

    /// The relays whose retry is due, with the address to listen on.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<(PeerId, Multiaddr)> {
        let mut due = Vec::new();
        for (relay, state) in &mut self.relays {
            if state.retry_at.is_some_and(|at| at <= now) {
                state.retry_at = None;
                due.push((*relay, circuit(&state.addr)));
            }
        }
        due
    }
}

fn circuit(relay_addr: &Multiaddr) -> Multiaddr {
    relay_addr.clone().with(Protocol::P2pCircuit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay() -> (PeerId, Multiaddr) {
        let peer = PeerId::random();
        (peer, format!("/ip4/203.0.113.1/udp/4001/quic-v1/p2p/{peer}").parse().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_reservation_is_retried_with_a_doubling_back_off() {
        let mut policy = Reservations::new(Duration::from_secs(1), Duration::from_secs(30)).with_jitter(0.0);
        let (peer, addr) = relay();
        let listen = policy.want(peer, &addr).expect("first reservation at once");
        assert_eq!(listen, addr.clone().with(Protocol::P2pCircuit));
        assert_eq!(policy.want(peer, &addr), None, "one reservation per relay");
        assert_eq!(policy.next_due(), None, "nothing to retry while listening");

        let start = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..7 {
            let now = Instant::now();
            let at = policy.on_closed(&peer, now).unwrap();
            waits.push((at - now).as_secs());
            assert!(policy.due(now).is_empty(), "not before the back-off");
            tokio::time::advance(at - now).await;
            assert_eq!(policy.due(Instant::now()), vec![(peer, listen.clone())]);
            assert!(policy.due(Instant::now()).is_empty(), "once");
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(Instant::now() - start, Duration::from_secs(91));

        policy.on_reserved(&peer);
        let now = Instant::now();
        assert_eq!(policy.on_closed(&peer, now), Some(now + Duration::from_secs(1)), "reset by success");
    }

    #[tokio::test(start_paused = true)]
    async fn a_relay_restart_is_retried_within_ten_seconds() {
        // The relay is gone for 5 s: attempts at 1 s and 3 s fail, 7 s succeeds.
        let mut policy = Reservations::new(Duration::from_secs(1), Duration::from_secs(30)).with_jitter(0.0);
        let (peer, addr) = relay();
        policy.want(peer, &addr).unwrap();
        let down = Instant::now();
        let mut attempts = Vec::new();
        let mut at = policy.on_closed(&peer, down).unwrap();
        loop {
            tokio::time::sleep_until(at).await;
            assert_eq!(policy.due(Instant::now()).len(), 1);
            attempts.push((Instant::now() - down).as_secs());
            if Instant::now() - down >= Duration::from_secs(5) {
                break;
            }
            at = policy.on_closed(&peer, Instant::now()).unwrap();
        }
        assert_eq!(attempts, vec![1, 3, 7]);
    }

    #[tokio::test(start_paused = true)]
    async fn with_jitter_nodes_that_lost_one_relay_retry_apart_and_never_later_than_the_back_off() {
        let (peer, addr) = relay();
        let now = Instant::now();
        let mut firsts = std::collections::HashSet::new();
        for _ in 0..20 {
            // Twenty nodes, one relay: each node's policy has a back-off of its own.
            let mut policy = Reservations::new(Duration::from_secs(1), Duration::from_secs(30));
            policy.want(peer, &addr).unwrap();
            let first = policy.on_closed(&peer, now).unwrap() - now;
            assert!(first <= Duration::from_secs(1) && first >= Duration::from_millis(800), "{first:?}");
            let second = policy.on_closed(&peer, now).unwrap() - now;
            assert!(second <= Duration::from_secs(2) && second >= Duration::from_millis(1600), "{second:?}");
            firsts.insert(first);
        }
        assert!(firsts.len() > 15, "only {} distinct first retries of 20", firsts.len());
    }
}
