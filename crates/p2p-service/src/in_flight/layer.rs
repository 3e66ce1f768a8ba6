use std::sync::Arc;

use tokio::sync::Semaphore;
use tower::Layer;

use super::InFlightLimit;

/// Builds [`InFlightLimit`] services, each with its own per-service limit and all sharing one global limit.
#[derive(Debug, Clone)]
pub struct InFlightLimitLayer {
    per_service: usize,
    shared: Option<Arc<Semaphore>>,
}

impl InFlightLimitLayer {
    /// A layer letting at most `per_service` requests be in flight in each service it builds.
    ///
    /// `0` means no per-service limit.
    pub const fn new(per_service: usize) -> Self {
        Self { per_service, shared: None }
    }

    /// Also limits the requests in flight in all services built by this layer
    /// (and by any layer holding the same semaphore) to `shared`'s permits.
    pub fn with_shared(mut self, shared: Arc<Semaphore>) -> Self {
        self.shared = Some(shared);
        self
    }
}

impl<S> Layer<S> for InFlightLimitLayer {
    type Service = InFlightLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let own = (self.per_service > 0).then(|| Arc::new(Semaphore::new(self.per_service)));
        InFlightLimit::new(inner, own, self.shared.clone())
    }
}
