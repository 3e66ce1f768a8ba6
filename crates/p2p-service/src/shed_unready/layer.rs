use tower::Layer;

use super::ShedUnready;

/// Builds [`ShedUnready`] services.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShedUnreadyLayer {
    _p: (),
}

impl ShedUnreadyLayer {
    /// A new layer shedding the requests its inner service is not ready for.
    pub const fn new() -> Self {
        Self { _p: () }
    }
}

impl<S> Layer<S> for ShedUnreadyLayer {
    type Service = ShedUnready<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ShedUnready::new(inner)
    }
}
