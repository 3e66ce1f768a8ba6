//! Peers known by their id alone: a DHT lookup, then a dial of what it found.
//!
//! `Node::connect(/p2p/<id>)` waits here until a connection to that peer is
//! up (whoever dialed it: our dial of the addresses found, or Kademlia's own
//! query, which dials the peer it is told about), or the lookup is over with
//! nothing to dial, or that dial failed.

use std::collections::HashMap;

use libp2p::kad::QueryId;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::oneshot;

use crate::RequestError;

type Reply = oneshot::Sender<Result<PeerId, RequestError>>;

/// Peers looked up at once; more are refused at once.
const MAX_LOOKUPS: usize = 64;
/// Callers waiting for one peer; more are refused at once.
const MAX_WAITING_PER_PEER: usize = 64;

/// What to do once a lookup's query is over.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LookupDone {
    /// Dial the peer at these addresses; the callers wait for that dial.
    Dial(PeerId, Vec<Multiaddr>),
    /// Nothing found (the callers have been told), or nobody waits any more.
    Nothing,
}

#[derive(Default)]
struct Lookup {
    waiting: Vec<Reply>,
    /// Our query is still running.
    querying: bool,
    /// We are dialing what it found.
    dialing: bool,
}

/// The lookups in progress, by peer and by query.
#[derive(Default)]
pub(crate) struct Lookups {
    peers: HashMap<PeerId, Lookup>,
    queries: HashMap<QueryId, PeerId>,
}

impl Lookups {
    /// Someone wants `peer` (`reply`: to hear when connected, or `None`).
    /// Returns true if a query must be started (then call [`Self::started`]).
    pub(crate) fn want(&mut self, peer: PeerId, reply: Option<Reply>) -> bool {
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_LOOKUPS {
            refuse(reply, "too many lookups in progress");
            return false;
        }
        let lookup = self.peers.entry(peer).or_default();
        if let Some(reply) = reply {
            if lookup.waiting.len() >= MAX_WAITING_PER_PEER {
                refuse(Some(reply), "too many callers waiting for this peer");
            } else {
                lookup.waiting.push(reply);
            }
        }
        !(lookup.querying || lookup.dialing)
    }

    /// The query for `peer` is `query`.
    pub(crate) fn started(&mut self, peer: PeerId, query: QueryId) {
        if let Some(lookup) = self.peers.get_mut(&peer) {
            lookup.querying = true;
            self.queries.insert(query, peer);
        }
    }

    /// The peer `query` looks for, if it is one of ours.
    pub(crate) fn target(&self, query: &QueryId) -> Option<PeerId> {
        self.queries.get(query).copied()
    }

    /// A connection to `peer` is up: every caller waiting for it hears so.
    pub(crate) fn on_connected(&mut self, peer: PeerId) {
        if let Some(lookup) = self.peers.remove(&peer) {
            for reply in lookup.waiting {
                let _ = reply.send(Ok(peer));
            }
            self.queries.retain(|_, p| *p != peer);
        }
    }

    /// A query is over with these addresses for the peer it looked for
    /// (empty: not found). `connected`: we have a connection to it already.
    pub(crate) fn on_query_done(
        &mut self,
        query: QueryId,
        found: Vec<Multiaddr>,
        connected: bool,
    ) -> LookupDone {
        let Some(peer) = self.queries.remove(&query) else { return LookupDone::Nothing };
        if connected {
            self.on_connected(peer);
            return LookupDone::Nothing;
        }
        let Some(lookup) = self.peers.get_mut(&peer) else { return LookupDone::Nothing };
        lookup.querying = false;
        if found.is_empty() {
            self.fail(peer, "not found in the DHT");
            return LookupDone::Nothing;
        }
        lookup.dialing = true;
        LookupDone::Dial(peer, found)
    }

    /// Our dial of what the lookup found failed.
    pub(crate) fn on_dial_failed(&mut self, peer: PeerId, error: &str) {
        if self.peers.get(&peer).is_some_and(|l| l.dialing && !l.querying) {
            self.fail(peer, &format!("found in the DHT but not reachable: {error}"));
        }
    }

    /// Fails every caller (the node is shutting down).
    pub(crate) fn shut_down(&mut self) {
        for (_, lookup) in self.peers.drain() {
            for reply in lookup.waiting {
                let _ = reply.send(Err(RequestError::Shutdown));
            }
        }
        self.queries.clear();
    }

    fn fail(&mut self, peer: PeerId, reason: &str) {
        if let Some(lookup) = self.peers.remove(&peer) {
            for reply in lookup.waiting {
                refuse(Some(reply), reason);
            }
        }
    }
}

pub(crate) fn refuse(reply: Option<Reply>, reason: &str) {
    if let Some(reply) = reply {
        let _ = reply.send(Err(RequestError::Unreachable(reason.to_owned())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(id: &mut libp2p::kad::Behaviour<libp2p::kad::store::MemoryStore>) -> QueryId {
        id.get_closest_peers(PeerId::random())
    }

    fn kad() -> libp2p::kad::Behaviour<libp2p::kad::store::MemoryStore> {
        let local = PeerId::random();
        libp2p::kad::Behaviour::new(local, libp2p::kad::store::MemoryStore::new(local))
    }

    #[test]
    fn callers_hear_of_the_connection_whoever_made_it() {
        let (mut lookups, mut kad) = (Lookups::default(), kad());
        let peer = PeerId::random();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        assert!(lookups.want(peer, Some(tx1)));
        let q = query(&mut kad);
        lookups.started(peer, q);
        assert!(!lookups.want(peer, Some(tx2)), "one query per peer");
        lookups.on_connected(peer);
        assert_eq!(rx1.try_recv().unwrap().unwrap(), peer);
        assert_eq!(rx2.try_recv().unwrap().unwrap(), peer);
        assert_eq!(lookups.on_query_done(q, vec![], false), LookupDone::Nothing);
    }

    #[test]
    fn found_addresses_are_dialed_and_nothing_found_fails() {
        let (mut lookups, mut kad) = (Lookups::default(), kad());
        let peer = PeerId::random();
        let (tx, mut rx) = oneshot::channel();
        assert!(lookups.want(peer, Some(tx)));
        let q = query(&mut kad);
        lookups.started(peer, q);
        let found: Vec<Multiaddr> = vec!["/ip4/203.0.113.9/tcp/4001".parse().unwrap()];
        assert_eq!(lookups.on_query_done(q, found.clone(), false), LookupDone::Dial(peer, found));
        assert!(rx.try_recv().is_err(), "still waiting for the dial");
        lookups.on_dial_failed(peer, "refused");
        assert!(matches!(rx.try_recv().unwrap(), Err(RequestError::Unreachable(r)) if r.contains("refused")));

        let (tx, mut rx) = oneshot::channel();
        assert!(lookups.want(peer, Some(tx)));
        let q = query(&mut kad);
        lookups.started(peer, q);
        assert_eq!(lookups.on_query_done(q, vec![], false), LookupDone::Nothing);
        assert!(
            matches!(rx.try_recv().unwrap(), Err(RequestError::Unreachable(r)) if r.contains("not found"))
        );
    }
}
