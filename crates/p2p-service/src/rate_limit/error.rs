//! Error types

/// The error of a request refused because its peer exceeded its rate.
///
/// The error-mapping layer answers it with 429.
#[derive(Debug, Default, thiserror::Error)]
#[error("rate limited")]
pub struct RateLimited {
    _p: (),
}

impl RateLimited {
    /// A new rate-limited error.
    pub const fn new() -> Self {
        Self { _p: () }
    }
}
