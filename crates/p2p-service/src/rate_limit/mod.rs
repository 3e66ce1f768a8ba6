//! Middleware that limits the request rate of one peer with a token bucket.
//!
//! Each [`RateLimit`] service that [`RateLimitLayer`] builds has its own
//! bucket, and its clones share it: build one per peer, then clone it freely
//! (the transport clones the peer service once per request). This is what
//! `tower::limit::RateLimit` cannot do, as its state is not shared by clones
//! (tower issue #794). The default stack ([`MakePeerService`](crate::MakePeerService))
//! goes one step further: it keeps one bucket per `PeerId`, shared by the
//! services of all the peer's connections and kept across reconnects.
//!
//! A request that finds the bucket empty is answered at once with
//! [`RateLimited`](error::RateLimited), without reaching the inner service:
//! the limiter never queues and never makes `poll_ready` wait, so a flooding
//! peer is told "429" instead of being buffered.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use p2p_service::rate_limit::{RateLimitLayer, error::RateLimited};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! let echo = service_fn(|n: u32| async move { Ok::<_, std::convert::Infallible>(n) });
//! let limited = RateLimitLayer::new(1, 2).layer(echo);
//! assert_eq!(limited.clone().oneshot(1).await.unwrap(), 1);
//! assert_eq!(limited.clone().oneshot(2).await.unwrap(), 2);
//! // The clones share one bucket of two tokens: the third request is refused.
//! let err = limited.clone().oneshot(3).await.unwrap_err();
//! assert!(err.is::<RateLimited>());
//! # }
//! ```

mod bucket;
pub mod error;
pub mod future;
mod layer;
mod service;

pub(crate) use self::bucket::Bucket;
pub use self::layer::RateLimitLayer;
pub use self::service::RateLimit;
