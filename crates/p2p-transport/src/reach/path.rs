//! Direct or relayed: which connections to a peer to keep.
//!
//! rust-libp2p's request_response spreads requests over all connections to
//! a peer, and libp2p-stream opens ours on a random one. Our choice: once a
//! peer has a direct connection, its relayed ones are closed, so every
//! request goes direct; until then the relayed one carries them. A request
//! in flight on the relayed connection when it closes fails once (the next
//! one goes direct).

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;

/// The address goes through a relay (`/p2p-circuit`).
pub(crate) fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

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
