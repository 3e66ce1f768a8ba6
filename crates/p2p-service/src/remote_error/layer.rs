use libp2p_identity::PeerId;
use tower::Layer;

use super::MapRemoteError;
use crate::FaultReporter;

/// Builds [`MapRemoteError`] services.
#[derive(Debug, Clone, Default)]
pub struct MapRemoteErrorLayer {
    faults: Option<(PeerId, FaultReporter)>,
}

impl MapRemoteErrorLayer {
    /// A new error-mapping layer.
    pub const fn new() -> Self {
        Self { faults: None }
    }

    /// Its services also report the refusals `peer` caused to `reporter`
    /// (see [`PeerFault`](crate::PeerFault)).
    pub fn with_fault_reporter(mut self, peer: PeerId, reporter: FaultReporter) -> Self {
        self.faults = Some((peer, reporter));
        self
    }
}

impl<S> Layer<S> for MapRemoteErrorLayer {
    type Service = MapRemoteError<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let service = MapRemoteError::new(inner);
        match &self.faults {
            Some((peer, reporter)) => service.with_fault_reporter(*peer, reporter.clone()),
            None => service,
        }
    }
}
