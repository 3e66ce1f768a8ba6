use tower::Layer;

use super::MapRemoteError;

/// Builds [`MapRemoteError`] services.
#[derive(Debug, Clone, Copy, Default)]
pub struct MapRemoteErrorLayer {
    _p: (),
}

impl MapRemoteErrorLayer {
    /// A new error-mapping layer.
    pub const fn new() -> Self {
        Self { _p: () }
    }
}

impl<S> Layer<S> for MapRemoteErrorLayer {
    type Service = MapRemoteError<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MapRemoteError::new(inner)
    }
}
