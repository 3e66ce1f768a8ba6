use tower::Layer;

use super::RateLimit;

/// Builds [`RateLimit`] services, each with a fresh, full token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitLayer {
    rate_per_sec: u32,
    burst: u32,
}

impl RateLimitLayer {
    /// A layer whose buckets regain `rate_per_sec` tokens a second and hold at most `burst`.
    ///
    /// A `burst` of 0 is treated as 1. A `rate_per_sec` of 0 disables the limit,
    /// as in [`Limits`](crate::Limits) (where the layer is then left out altogether).
    pub const fn new(rate_per_sec: u32, burst: u32) -> Self {
        Self { rate_per_sec, burst }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, self.rate_per_sec, self.burst)
    }
}
