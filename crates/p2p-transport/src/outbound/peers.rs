//! The connected peers' pipelined clients, per protocol, shared with every `Client`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use p2p_protocol::Protocol;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::mux::Mux;
use crate::lock::lock;
use crate::wakers::ConnectionWakers;

/// What every protocol's new [`Mux`] is made of: the swarm task's.
#[derive(Clone)]
pub(crate) struct MuxParts {
    pub(crate) control: libp2p_stream::Control,
    pub(crate) request_timeout: Duration,
    pub(crate) observations: mpsc::Sender<(PeerId, Multiaddr)>,
    pub(crate) wakers: ConnectionWakers,
    pub(crate) runtime: Handle,
}

impl MuxParts {
    fn mux<P: Protocol>(&self, peer: PeerId) -> Mux<P> {
        Mux::new(
            peer,
            self.control.clone(),
            self.request_timeout,
            self.observations.clone(),
            self.wakers.clone(),
            self.runtime.clone(),
        )
    }
}

/// Each connected peer's [`Mux`] for protocol `P` (its stream opened on
/// first use). Written only by the swarm task: an entry appears with a
/// peer's first connection and goes with its last, failing the requests
/// still on it. A mux that leaves the table is retired, so that clients
/// holding it look again.
pub(crate) struct OutboundPeers<P: Protocol> {
    peers: Mutex<HashMap<PeerId, Arc<Mux<P>>>>,
}

impl<P: Protocol> Default for OutboundPeers<P> {
    fn default() -> Self {
        Self { peers: Mutex::default() }
    }
}

impl<P: Protocol> OutboundPeers<P> {
    /// The peer's pipelined client, if it speaks the pipelined name.
    pub(crate) fn v2_mux(&self, peer: &PeerId) -> Option<Arc<Mux<P>>> {
        lock(&self.peers).get(peer).filter(|mux| mux.speaks_v2()).map(Arc::clone)
    }

    /// The peer's pipelined client whether or not identify has spoken yet.
    pub(crate) fn any_mux(&self, peer: &PeerId) -> Option<Arc<Mux<P>>> {
        lock(&self.peers).get(peer).map(Arc::clone)
    }
}

/// Every protocol's [`OutboundPeers`], erased: what the swarm task tells of peers.
pub(crate) trait Muxes: Send + Sync {
    /// The peer's first connection is up.
    fn connected(&self, peer: PeerId, parts: &MuxParts);
    /// A new pipelined client for a peer still connected (its stream may
    /// have been on a connection that closed), keeping what identify said.
    fn renew(&self, peer: PeerId, parts: &MuxParts);
    fn set_speaks_v2(&self, peer: &PeerId, speaks_v2: bool);
    /// The peer's last connection closed.
    fn disconnected(&self, peer: &PeerId);
    fn clear(&self);
}

impl<P: Protocol> Muxes for OutboundPeers<P> {
    fn connected(&self, peer: PeerId, parts: &MuxParts) {
        if P::PIPELINED_NAME.is_none() {
            return; // one stream per request only: nothing to keep
        }
        if let Some(old) = lock(&self.peers).insert(peer, Arc::new(parts.mux(peer))) {
            old.retire();
        }
    }

    fn renew(&self, peer: PeerId, parts: &MuxParts) {
        if let Some(entry) = lock(&self.peers).get_mut(&peer) {
            let mux = parts.mux::<P>(peer);
            mux.set_speaks_v2(entry.speaks_v2());
            std::mem::replace(entry, Arc::new(mux)).retire();
        }
    }

    fn set_speaks_v2(&self, peer: &PeerId, speaks_v2: bool) {
        if let Some(mux) = lock(&self.peers).get(peer) {
            mux.set_speaks_v2(speaks_v2);
        }
    }

    fn disconnected(&self, peer: &PeerId) {
        if let Some(mux) = lock(&self.peers).remove(peer) {
            mux.retire();
        }
    }

    fn clear(&self) {
        lock(&self.peers).drain().for_each(|(_, mux)| mux.retire());
    }
}

impl<P: Protocol> std::fmt::Debug for OutboundPeers<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundPeers").field("peers", &lock(&self.peers).len()).finish()
    }
}
