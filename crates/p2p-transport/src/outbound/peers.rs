//! The connected peers' pipelined clients, shared with every `Client`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use libp2p::PeerId;

use super::mux::Mux;
use crate::lock::lock;

struct Entry {
    mux: Arc<Mux>,
    /// Identify says the peer speaks `/p2p-node/greet/2.0.0` (and we do too).
    speaks_v2: bool,
}

/// Each connected peer's [`Mux`] (its stream opened on first use). Written
/// only by the swarm task: an entry appears with a peer's first connection
/// and goes with its last, failing the requests still on it.
#[derive(Default)]
pub(crate) struct OutboundPeers {
    peers: Mutex<HashMap<PeerId, Entry>>,
}

impl OutboundPeers {
    /// The peer's pipelined client, if it speaks v2.
    pub(crate) fn v2_mux(&self, peer: &PeerId) -> Option<Arc<Mux>> {
        lock(&self.peers).get(peer).filter(|e| e.speaks_v2).map(|e| Arc::clone(&e.mux))
    }

    /// The peer's pipelined client whether or not identify has spoken yet.
    pub(crate) fn any_mux(&self, peer: &PeerId) -> Option<Arc<Mux>> {
        lock(&self.peers).get(peer).map(|e| Arc::clone(&e.mux))
    }

    pub(crate) fn connected(&self, peer: PeerId, mux: Mux) {
        lock(&self.peers).insert(peer, Entry { mux: Arc::new(mux), speaks_v2: false });
    }

    /// A new pipelined client for a peer still connected (its stream may
    /// have been on a connection that closed), keeping what identify said.
    pub(crate) fn renew(&self, peer: PeerId, mux: Mux) {
        if let Some(entry) = lock(&self.peers).get_mut(&peer) {
            entry.mux = Arc::new(mux);
        }
    }

    pub(crate) fn set_speaks_v2(&self, peer: &PeerId, speaks_v2: bool) {
        if let Some(entry) = lock(&self.peers).get_mut(peer) {
            entry.speaks_v2 = speaks_v2;
        }
    }

    pub(crate) fn disconnected(&self, peer: &PeerId) {
        lock(&self.peers).remove(peer);
    }

    pub(crate) fn clear(&self) {
        lock(&self.peers).clear();
    }
}

impl std::fmt::Debug for OutboundPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundPeers").field("peers", &lock(&self.peers).len()).finish()
    }
}
