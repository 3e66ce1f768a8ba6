//! Direct or relayed: which connections to a peer to keep.
//!
//! rust-libp2p's request_response spreads requests over all connections to
//! a peer, and libp2p-stream opens ours on a random one. Our choice: once a
//! peer has a direct connection, its relayed ones are closed, so every
//! request goes direct; until then the relayed one carries them. The close
//! waits [`RELAYED_CLOSE_DELAY`]: both sides punch at once, and a side that
//! closed the relayed connection at the instant its own direct one came up
//! would close it under the other side before that side has seen its
//! direct one (the peer would flap: disconnected, connected). A request in
//! flight on the relayed connection when it closes fails once (the next one
//! goes direct). Until the relayed connection is gone a request may take
//! either, so `Node::path` says "relayed" until then: "direct" is never
//! claimed for a request that may have gone through the relay.

use std::collections::VecDeque;
use std::time::Duration;

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use tokio::time::Instant;

/// How long a peer's relayed connections outlive its first direct one.
pub(crate) const RELAYED_CLOSE_DELAY: Duration = Duration::from_millis(500);

/// Peers whose relayed connections are due to close; at most this many wait.
const MAX_CLOSING: usize = 1024;

/// Peers whose relayed connections close once [`RELAYED_CLOSE_DELAY`] is over.
#[derive(Debug, Default)]
pub(crate) struct Closing {
    /// In the order they fall due (one fixed delay).
    due: VecDeque<(Instant, PeerId)>,
}

impl Closing {
    /// `peer` has a direct connection and relayed ones: close them later.
    pub(crate) fn schedule(&mut self, peer: PeerId, now: Instant) {
        if self.due.len() < MAX_CLOSING && !self.due.iter().any(|(_, p)| *p == peer) {
            self.due.push_back((now + RELAYED_CLOSE_DELAY, peer));
        }
    }

    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.front().map(|(at, _)| *at)
    }

    /// The peers whose relayed connections are to close now.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<PeerId> {
        let mut due = Vec::new();
        while let Some((at, peer)) = self.due.front().copied() {
            if at > now {
                break;
            }
            self.due.pop_front();
            due.push(peer);
        }
        due
    }
}

pub(crate) use crate::origin::is_relayed;

/// Of one peer's connections (each with its remote address), the relayed
/// ones to close: all of them once there is a direct one, else none.
pub(crate) fn relayed_to_close<'a>(
    connections: impl IntoIterator<Item = (ConnectionId, &'a Multiaddr)>,
) -> Vec<ConnectionId> {
    let (relayed, direct): (Vec<_>, Vec<_>) = connections.into_iter().partition(|(_, addr)| is_relayed(addr));
    if direct.is_empty() { Vec::new() } else { relayed.into_iter().map(|(id, _)| id).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn relayed_connections_close_a_moment_after_the_direct_one() {
        let mut closing = Closing::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        closing.schedule(a, Instant::now());
        closing.schedule(a, Instant::now());
        tokio::time::advance(Duration::from_millis(400)).await;
        closing.schedule(b, Instant::now());
        assert!(closing.due(Instant::now()).is_empty(), "not at once");
        tokio::time::advance(RELAYED_CLOSE_DELAY - Duration::from_millis(400)).await;
        assert_eq!(closing.due(Instant::now()), vec![a], "once, after the delay");
        assert_eq!(closing.next_due(), Some(Instant::now() + Duration::from_millis(400)));
        tokio::time::advance(Duration::from_millis(400)).await;
        assert_eq!(closing.due(Instant::now()), vec![b]);
        assert_eq!(closing.next_due(), None);
    }

    #[test]
    fn relayed_connections_close_once_a_direct_one_is_up() {
        let relayed: Multiaddr = "/ip4/203.0.113.1/udp/4001/quic-v1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit".parse().unwrap();
        let direct: Multiaddr = "/ip4/198.51.100.7/udp/50000/quic-v1".parse().unwrap();
        let (a, b) = (ConnectionId::new_unchecked(1), ConnectionId::new_unchecked(2));
        assert!(is_relayed(&relayed) && !is_relayed(&direct));
        assert_eq!(relayed_to_close([(a, &relayed)]), vec![], "the relay is all there is");
        assert_eq!(relayed_to_close([(a, &relayed), (b, &direct)]), vec![a]);
        assert_eq!(relayed_to_close([(b, &direct)]), vec![]);
    }
}
