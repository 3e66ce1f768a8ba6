//! The swarm task's view of the connected peers: their connections (each
//! with its remote address), what identify said, and the greet-capable set.

use std::collections::HashMap;
use std::sync::Arc;

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::watch;

use super::discover::PeerSet;

#[derive(Default)]
struct PeerState {
    /// Remote address of each established connection.
    connections: HashMap<ConnectionId, Multiaddr>,
    /// What identify said: `None` until it has spoken.
    speaks_greet: Option<bool>,
    /// Our identify pushed to the peer after its identify failed.
    identify_pushes: u8,
}

/// How many times, per connected peer, our identify is pushed after its own
/// failed (see [`PeerTable::on_identify_failed`]).
pub(crate) const IDENTIFY_PUSHES: u8 = 3;

/// Connected peers. Owned by the swarm task; the greet-capable set is
/// published through a `watch` so no reader ever makes the task wait.
pub(crate) struct PeerTable {
    peers: HashMap<PeerId, PeerState>,
    greet_peers: watch::Sender<PeerSet>,
}

impl PeerTable {
    pub(crate) fn new(greet_peers: watch::Sender<PeerSet>) -> Self {
        Self { peers: HashMap::new(), greet_peers }
    }

    /// Records a connection; true if it is the peer's first.
    pub(crate) fn on_established(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        remote: Multiaddr,
    ) -> bool {
        let state = self.peers.entry(peer).or_default();
        state.connections.insert(connection, remote);
        state.connections.len() == 1
    }

    /// Forgets a connection; true if it was the peer's last (the peer leaves
    /// the table and the greet-capable set).
    pub(crate) fn on_closed(&mut self, peer: PeerId, connection: ConnectionId) -> bool {
        let Some(state) = self.peers.get_mut(&peer) else { return false };
        state.connections.remove(&connection);
        if !state.connections.is_empty() {
            return false;
        }
        self.peers.remove(&peer);
        self.set_greet_capable(peer, false);
        true
    }

    /// The remote address of `connection`, or of any connection to `peer`.
    pub(crate) fn remote_addr(&self, peer: &PeerId, connection: ConnectionId) -> Multiaddr {
        let Some(state) = self.peers.get(peer) else { return Multiaddr::empty() };
        match state.connections.get(&connection) {
            Some(addr) => addr.clone(),
            None => state.connections.values().next().cloned().unwrap_or_else(Multiaddr::empty),
        }
    }

    /// The remote address of one of the peer's *direct* connections (a
    /// relayed one says nothing about where the peer is).
    pub(crate) fn any_remote_addr(&self, peer: &PeerId) -> Option<Multiaddr> {
        self.peers
            .get(peer)
            .and_then(|p| p.connections.values().find(|a| !crate::origin::is_relayed(a)).cloned())
    }

    /// Each of the peer's connections with its remote address.
    pub(crate) fn connections(&self, peer: &PeerId) -> Vec<(ConnectionId, &Multiaddr)> {
        self.peers.get(peer).map(|p| p.connections.iter().map(|(c, a)| (*c, a)).collect()).unwrap_or_default()
    }

    pub(crate) fn speaks_greet(&self, peer: &PeerId) -> Option<bool> {
        self.peers.get(peer).and_then(|p| p.speaks_greet)
    }

    /// What identify said of a connected peer; true if it just became greet-capable.
    pub(crate) fn on_identify(&mut self, peer: PeerId, speaks_greet: bool) -> bool {
        let Some(state) = self.peers.get_mut(&peer) else { return false };
        state.speaks_greet = Some(speaks_greet);
        self.set_greet_capable(peer, speaks_greet)
    }

    /// Identify of a connected peer failed (on a starved machine its stream
    /// open times out). True if our own identify should be pushed to it: it
    /// has not said whether it speaks greet, and fewer than
    /// [`IDENTIFY_PUSHES`] pushes were made. When both sides' identify of a
    /// pair failed, neither greeted the other and libp2p asks again only
    /// after its interval (5 minutes): the pair stayed connected and silent
    /// until the connection idled out (issue 23's lost pair, seen at 128
    /// nodes). Our push tells the peer we speak greet, so it greets us, and
    /// its greeting tells us the same of it.
    pub(crate) fn on_identify_failed(&mut self, peer: PeerId) -> bool {
        let Some(state) = self.peers.get_mut(&peer) else { return false };
        if state.speaks_greet.is_some() || state.identify_pushes >= IDENTIFY_PUSHES {
            return false;
        }
        state.identify_pushes += 1;
        true
    }

    /// Empties the table and the published set (the node has stopped).
    pub(crate) fn clear(&mut self) {
        self.peers.clear();
        self.greet_peers.send_replace(PeerSet::default());
    }

    /// True if the peer just joined the set.
    fn set_greet_capable(&mut self, peer: PeerId, capable: bool) -> bool {
        let changed = self.greet_peers.send_if_modified(|set| {
            if capable == set.contains(&peer) {
                return false;
            }
            let set = Arc::make_mut(set);
            if capable { set.insert(peer) } else { set.remove(&peer) }
        });
        changed && capable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PeerTable {
        PeerTable::new(watch::channel(PeerSet::default()).0)
    }

    #[test]
    fn a_failed_identify_pushes_ours_a_few_times_while_the_peer_is_unknown() {
        let mut table = table();
        let peer = PeerId::random();
        assert!(!table.on_identify_failed(peer), "not connected: nothing to push to");
        table.on_established(peer, ConnectionId::new_unchecked(1), Multiaddr::empty());
        for _ in 0..IDENTIFY_PUSHES {
            assert!(table.on_identify_failed(peer));
        }
        assert!(!table.on_identify_failed(peer), "bounded");

        let other = PeerId::random();
        table.on_established(other, ConnectionId::new_unchecked(2), Multiaddr::empty());
        table.on_identify(other, true);
        assert!(!table.on_identify_failed(other), "identify has spoken: no need");

        // A new connection after the last closed starts afresh.
        table.on_closed(peer, ConnectionId::new_unchecked(1));
        table.on_established(peer, ConnectionId::new_unchecked(3), Multiaddr::empty());
        assert!(table.on_identify_failed(peer));
    }
}
