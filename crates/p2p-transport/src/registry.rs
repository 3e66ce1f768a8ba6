//! What the swarm task shares with the tasks that serve and send pipelined streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{Notify, OnceCell};

use crate::node::PeerService;
use crate::pipelined::Mux;

/// One connected peer, as every task of the node may need it.
#[derive(Clone)]
pub(crate) struct SharedPeer {
    /// The peer's inbound service, made on its first request (v1 or v2).
    pub(crate) service: Arc<OnceCell<PeerService>>,
    /// The remote address of the peer's first connection.
    pub(crate) remote_addr: Multiaddr,
    /// Our outbound pipelined stream to the peer (opened on first use).
    pub(crate) mux: Arc<Mux>,
    /// Identify says the peer speaks `/p2p-node/greet/2.0.0` (and we do too).
    pub(crate) speaks_v2: bool,
}

/// The connected peers. Written only by the swarm task: an entry appears
/// with a peer's first connection and goes with its last.
#[derive(Default)]
pub(crate) struct PeerRegistry {
    peers: Mutex<HashMap<PeerId, SharedPeer>>,
    inserted: Notify,
}

impl PeerRegistry {
    pub(crate) fn get(&self, peer: &PeerId) -> Option<SharedPeer> {
        self.lock().get(peer).cloned()
    }

    /// The peer's pipelined client, if it speaks v2.
    pub(crate) fn v2_mux(&self, peer: &PeerId) -> Option<Arc<Mux>> {
        self.lock().get(peer).filter(|p| p.speaks_v2).map(|p| Arc::clone(&p.mux))
    }

    /// The peer's pipelined client whether or not identify has spoken yet.
    pub(crate) fn any_mux(&self, peer: &PeerId) -> Option<Arc<Mux>> {
        self.lock().get(peer).map(|p| Arc::clone(&p.mux))
    }

    /// The peer's entry, waiting up to `within` for it to appear: a stream
    /// can reach its acceptor before the swarm task has seen its connection.
    pub(crate) async fn wait_for(&self, peer: &PeerId, within: std::time::Duration) -> Option<SharedPeer> {
        let appeared = async {
            loop {
                let inserted = self.inserted.notified();
                tokio::pin!(inserted);
                inserted.as_mut().enable(); // registered before the check: no lost wake-up
                if let Some(shared) = self.get(peer) {
                    return shared;
                }
                inserted.await;
            }
        };
        tokio::time::timeout(within, appeared).await.ok()
    }

    pub(crate) fn insert(&self, peer: PeerId, shared: SharedPeer) {
        self.lock().insert(peer, shared);
        self.inserted.notify_waiters();
    }

    pub(crate) fn set_speaks_v2(&self, peer: &PeerId, speaks_v2: bool) {
        if let Some(shared) = self.lock().get_mut(peer) {
            shared.speaks_v2 = speaks_v2;
        }
    }

    pub(crate) fn remove(&self, peer: &PeerId) {
        self.lock().remove(peer);
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<PeerId, SharedPeer>> {
        // Nothing panics while holding the lock; a poisoned map is still sound.
        self.peers.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for PeerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerRegistry").field("peers", &self.lock().len()).finish()
    }
}
