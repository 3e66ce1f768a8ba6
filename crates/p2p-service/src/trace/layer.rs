use std::sync::Arc;

use libp2p_identity::PeerId;
use tower::Layer;

use super::Trace;

/// Builds [`Trace`] services for the requests of one peer.
#[derive(Debug, Clone)]
pub struct TraceLayer {
    /// The peer id as text, made once per peer rather than once per request.
    peer: Arc<str>,
}

impl TraceLayer {
    /// A layer tracing requests as coming from `peer`.
    pub fn new(peer: PeerId) -> Self {
        Self { peer: peer.to_string().into() }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Trace::with_peer_text(inner, Arc::clone(&self.peer))
    }
}
