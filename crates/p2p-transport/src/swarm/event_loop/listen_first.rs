//! A node reports where it listens before anything about peers.
//!
//! Listeners report their addresses through the swarm like everything else,
//! and the swarm polls its listeners *last* (after the behaviours and the
//! connections); a listener on `0.0.0.0` learns its addresses from the
//! system asynchronously, and mDNS answers arrive meanwhile. On a busy
//! machine a node printed 48 `DISCOVERED` lines and a `CONNECTED` line
//! before its own `LISTEN` lines (issue 23), and whatever reads a node's
//! identity from its first lines read a peer's. So at the start only the
//! swarm is polled, a listener's events are handled as they come, and every
//! other event is held (at most [`HELD`], for at most [`LISTEN_WAIT`]) until
//! each listener has reported an address or closed; then they are handled in
//! their order. mDNS answers from our own listener are not read before that
//! either: it starts afterwards.

use std::collections::HashSet;
use std::time::Duration;

use libp2p::core::transport::ListenerId;
use libp2p::swarm::SwarmEvent;

/// The most events held back: past it they are handled, listeners or not.
pub(super) const HELD: usize = 1024;
/// The longest the start waits for the listeners.
pub(super) const LISTEN_WAIT: Duration = Duration::from_secs(5);

/// Holds a swarm's events until its listeners have reported.
pub(super) struct ListenFirst<E> {
    waiting: HashSet<ListenerId>,
    held: Vec<SwarmEvent<E>>,
}

impl<E> ListenFirst<E> {
    /// Waits for each of `listeners`.
    pub(super) fn new(listeners: impl IntoIterator<Item = ListenerId>) -> Self {
        Self { waiting: listeners.into_iter().collect(), held: Vec::new() }
    }

    /// The event to handle now (a listener's), or `None`: held.
    pub(super) fn take(&mut self, event: SwarmEvent<E>) -> Option<SwarmEvent<E>> {
        match &event {
            SwarmEvent::NewListenAddr { listener_id, .. }
            | SwarmEvent::ListenerClosed { listener_id, .. } => {
                self.waiting.remove(listener_id);
                Some(event)
            }
            SwarmEvent::ExpiredListenAddr { .. } | SwarmEvent::ListenerError { .. } => Some(event),
            _ => {
                self.held.push(event);
                None
            }
        }
    }

    /// Every listener reported, or enough is held.
    pub(super) fn done(&self) -> bool {
        self.waiting.is_empty() || self.held.len() >= HELD
    }

    /// What was held, in its order.
    pub(super) fn release(self) -> Vec<SwarmEvent<E>> {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use libp2p::core::ConnectedPoint;
    use libp2p::core::transport::PortUse;
    use libp2p::swarm::ConnectionId;
    use libp2p::{Multiaddr, PeerId};

    use super::*;

    fn listening(listener_id: ListenerId, address: &str) -> SwarmEvent<&'static str> {
        SwarmEvent::NewListenAddr { listener_id, address: address.parse().unwrap() }
    }

    fn connected(peer_id: PeerId) -> SwarmEvent<&'static str> {
        let address: Multiaddr = "/ip4/10.0.0.2/udp/4001/quic-v1".parse().unwrap();
        SwarmEvent::ConnectionEstablished {
            peer_id,
            connection_id: ConnectionId::new_unchecked(1),
            endpoint: ConnectedPoint::Dialer {
                address,
                role_override: libp2p::core::Endpoint::Dialer,
                port_use: PortUse::Reuse,
            },
            num_established: NonZeroU32::MIN,
            concurrent_dial_errors: None,
            established_in: Duration::from_millis(3),
        }
    }

    fn names(events: &[SwarmEvent<&'static str>]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                SwarmEvent::Behaviour(name) => (*name).to_owned(),
                SwarmEvent::NewListenAddr { address, .. } => format!("listen {address}"),
                SwarmEvent::ConnectionEstablished { .. } => "connected".to_owned(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn peer_events_wait_until_every_listener_has_reported() {
        let (quic, tcp) = (ListenerId::next(), ListenerId::next());
        let mut start = ListenFirst::new([quic, tcp]);
        let arriving = vec![
            SwarmEvent::Behaviour("mdns discovered"),
            listening(quic, "/ip4/10.0.0.1/udp/4001/quic-v1"),
            connected(PeerId::random()),
            SwarmEvent::Behaviour("identify"),
            listening(tcp, "/ip4/10.0.0.1/tcp/4001"),
        ];
        let mut handled = Vec::new();
        for event in arriving {
            assert!(!start.done());
            handled.extend(start.take(event));
        }
        assert!(start.done());
        handled.extend(start.release());
        assert_eq!(
            names(&handled),
            [
                "listen /ip4/10.0.0.1/udp/4001/quic-v1",
                "listen /ip4/10.0.0.1/tcp/4001",
                "mdns discovered",
                "connected",
                "identify"
            ]
        );
    }

    #[test]
    fn a_closed_listener_counts_as_reported_and_the_hold_is_bounded() {
        let (quic, tcp) = (ListenerId::next(), ListenerId::next());
        let mut start = ListenFirst::new([quic, tcp]);
        assert!(start.take(listening(quic, "/ip4/10.0.0.1/udp/4001/quic-v1")).is_some());
        let closed = SwarmEvent::ListenerClosed { listener_id: tcp, addresses: Vec::new(), reason: Ok(()) };
        assert!(start.take(closed).is_some());
        assert!(start.done());

        let mut start = ListenFirst::new([quic]);
        for _ in 0..HELD {
            assert!(!start.done());
            assert!(start.take(SwarmEvent::Behaviour("mdns discovered")).is_none());
        }
        assert!(start.done(), "no more than HELD events are held");
        assert_eq!(start.release().len(), HELD);
    }
}
