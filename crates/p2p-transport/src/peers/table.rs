//! The swarm task's view of the connected peers: their connections (each
//! with its remote address), which mounted protocols they speak (what
//! identify said, or a stream they opened), and each protocol's set.

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
    /// The mounted protocols it speaks, one bit each (by mount index).
    speaks: u64,
    /// Identify has spoken (its word then prevails over streams seen).
    identified: bool,
    /// Identify has spoken or a stream of a mounted protocol came: either
    /// way the peer knows we speak it, no push of our identify is needed.
    heard: bool,
    /// Our identify pushed to the peer after its identify failed.
    identify_pushes: u8,
}

/// At most this many protocols are mounted on one node.
pub(crate) const MAX_MOUNTS: usize = 64;

/// How many times, per connected peer, our identify is pushed after its own
/// failed (see [`PeerTable::on_identify_failed`]).
pub(crate) const IDENTIFY_PUSHES: u8 = 3;

/// Connected peers. Owned by the swarm task; each mounted protocol's set of
/// peers that speak it is published through a `watch` so no reader ever
/// makes the task wait.
pub(crate) struct PeerTable {
    peers: HashMap<PeerId, PeerState>,
    /// By mount index.
    sets: Vec<watch::Sender<PeerSet>>,
}

impl PeerTable {
    pub(crate) fn new(sets: Vec<watch::Sender<PeerSet>>) -> Self {
        assert!(sets.len() <= MAX_MOUNTS, "at most {MAX_MOUNTS} protocols");
        Self { peers: HashMap::new(), sets }
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
        for mount in 0..self.sets.len() {
            self.set_capable(mount, peer, false);
        }
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

    /// Whether identify says the peer speaks mounted protocol `mount`
    /// (`None`: identify has not spoken).
    pub(crate) fn speaks(&self, peer: &PeerId, mount: usize) -> Option<bool> {
        let state = self.peers.get(peer).filter(|p| p.identified)?;
        Some(state.speaks & (1 << mount) != 0)
    }

    /// What identify said of a connected peer: the mounted protocols it
    /// speaks (one bit each). Returns those it just joined the sets of.
    pub(crate) fn on_identify(&mut self, peer: PeerId, speaks: u64) -> u64 {
        let Some(state) = self.peers.get_mut(&peer) else { return 0 };
        (state.identified, state.heard, state.speaks) = (true, true, speaks);
        self.publish(peer, speaks)
    }

    /// The peer opened a stream of mounted protocol `mount`: it speaks it.
    /// Taken only while identify has said nothing of it (a lost or late
    /// identify would otherwise keep a peer that greets us ungreeted until
    /// identify's next round); identify's word, when it comes, prevails.
    /// True if it just joined the protocol's set.
    pub(crate) fn on_spoken_by(&mut self, peer: PeerId, mount: usize) -> bool {
        let Some(state) = self.peers.get_mut(&peer).filter(|p| !p.identified) else { return false };
        state.heard = true;
        state.speaks |= 1 << mount;
        let speaks = state.speaks;
        self.publish(peer, speaks) != 0
    }

    /// Puts `peer` in the sets of the protocols of `speaks` and out of the
    /// others; returns the protocols whose set it joined.
    fn publish(&mut self, peer: PeerId, speaks: u64) -> u64 {
        let mut joined = 0;
        for mount in 0..self.sets.len() {
            if self.set_capable(mount, peer, speaks & (1 << mount) != 0) {
                joined |= 1 << mount;
            }
        }
        joined
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
        if state.heard || state.identify_pushes >= IDENTIFY_PUSHES {
            return false;
        }
        state.identify_pushes += 1;
        true
    }

    /// Empties the table and the published set (the node has stopped).
    pub(crate) fn clear(&mut self) {
        self.peers.clear();
        for set in &self.sets {
            set.send_replace(PeerSet::default());
        }
    }

    /// True if the peer just joined protocol `mount`'s set.
    fn set_capable(&mut self, mount: usize, peer: PeerId, capable: bool) -> bool {
        let changed = self.sets[mount].send_if_modified(|set| {
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
        PeerTable::new(vec![watch::channel(PeerSet::default()).0])
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
        table.on_identify(other, 1);
        assert!(!table.on_identify_failed(other), "identify has spoken: no need");

        // A new connection after the last closed starts afresh.
        table.on_closed(peer, ConnectionId::new_unchecked(1));
        table.on_established(peer, ConnectionId::new_unchecked(3), Multiaddr::empty());
        assert!(table.on_identify_failed(peer));
    }

    #[test]
    fn each_protocol_has_its_own_set_and_identify_prevails_over_streams() {
        let (a, a_rx) = watch::channel(PeerSet::default());
        let (b, b_rx) = watch::channel(PeerSet::default());
        let mut table = PeerTable::new(vec![a, b]);
        let peer = PeerId::random();
        table.on_established(peer, ConnectionId::new_unchecked(1), Multiaddr::empty());

        // A stream of protocol 1 before identify: it speaks 1, not yet known for 0.
        assert!(table.on_spoken_by(peer, 1));
        assert!(!a_rx.borrow().contains(&peer));
        assert!(b_rx.borrow().contains(&peer));
        assert_eq!(table.speaks(&peer, 1), None, "identify has not spoken");

        // Identify says 0 only: it joins 0's set and leaves 1's.
        assert_eq!(table.on_identify(peer, 0b01), 0b01);
        assert!(a_rx.borrow().contains(&peer));
        assert!(!b_rx.borrow().contains(&peer));
        assert_eq!((table.speaks(&peer, 0), table.speaks(&peer, 1)), (Some(true), Some(false)));
        // A stream after identify changes nothing.
        assert!(!table.on_spoken_by(peer, 1));
        assert!(!b_rx.borrow().contains(&peer));

        table.on_closed(peer, ConnectionId::new_unchecked(1));
        assert!(a_rx.borrow().is_empty() && b_rx.borrow().is_empty());
    }
}
