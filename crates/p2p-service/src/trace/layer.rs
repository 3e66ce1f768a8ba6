use libp2p_identity::PeerId;
use tower::Layer;

use super::Trace;

/// Builds [`Trace`] services for the requests of one peer.
#[derive(Debug, Clone, Copy)]
pub struct TraceLayer {
    peer: PeerId,
}

impl TraceLayer {
    /// A layer tracing requests as coming from `peer`.
    pub const fn new(peer: PeerId) -> Self {
        Self { peer }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Trace::new(inner, self.peer)
    }
}
