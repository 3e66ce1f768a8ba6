//! The connected peers' pipelined clients, shared with every `Client`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use libp2p::PeerId;

use super::mux::Mux;
use crate::lock::lock;

/// Each connected peer's [`Mux`] (its stream opened on first use). Written
/// only by the swarm task: an entry appears with a peer's first connection
/// and goes with its last, failing the requests still on it. A mux that
/// leaves the table is retired, so that clients holding it look again.
#[derive(Default)]
pub(crate) struct OutboundPeers {
    peers: Mutex<HashMap<PeerId, Arc<Mux>>>,
}

impl OutboundPeers {
    /// The peer's pipelined client, if it speaks v2.
    pub(crate) fn v2_mux(&self, peer: &PeerId) -> Option<Arc<Mux>> {
        lock(&self.peers).get(peer).filter(|mux| mux.speaks_v2()).map(Arc::clone)
    }

    /// The peer's pipelined client whether or not identify has spoken yet.
    pub(crate) fn any_mux(&self, peer: &PeerId) -> Option<Arc<Mux>> {
        lock(&self.peers).get(peer).map(Arc::clone)
    }

    pub(crate) fn connected(&self, peer: PeerId, mux: Mux) {
        if let Some(old) = lock(&self.peers).insert(peer, Arc::new(mux)) {
            old.retire();
        }
    }

    /// A new pipelined client for a peer still connected (its stream may
    /// have been on a connection that closed), keeping what identify said.
    pub(crate) fn renew(&self, peer: PeerId, mux: Mux) {
        if let Some(entry) = lock(&self.peers).get_mut(&peer) {
            mux.set_speaks_v2(entry.speaks_v2());
            std::mem::replace(entry, Arc::new(mux)).retire();
        }
    }

    pub(crate) fn set_speaks_v2(&self, peer: &PeerId, speaks_v2: bool) {
        if let Some(mux) = lock(&self.peers).get(peer) {
            mux.set_speaks_v2(speaks_v2);
        }
    }

    pub(crate) fn disconnected(&self, peer: &PeerId) {
        if let Some(mux) = lock(&self.peers).remove(peer) {
            mux.retire();
        }
    }

    pub(crate) fn clear(&self) {
        lock(&self.peers).drain().for_each(|(_, mux)| mux.retire());
    }
}

impl std::fmt::Debug for OutboundPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundPeers").field("peers", &lock(&self.peers).len()).finish()
    }
}
