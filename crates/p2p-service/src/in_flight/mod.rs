//! Middleware that sheds requests beyond a per-service and a global in-flight limit.
//!
//! A request is let through only if it gets a permit from its service's own
//! semaphore (one per peer: the default stack gives all the services of a
//! peer's connections the same one) and from the shared one (all peers of a
//! node);
//! otherwise it is answered at once: with
//! [`PeerOverloaded`](error::PeerOverloaded) when its own limit is full (the
//! peer's doing), with [`Overloaded`](tower::load_shed::error::Overloaded)
//! when only the shared one is (nobody's in particular). Both are 503 on the
//! wire; only the first counts toward a ban. It never waits for a
//! permit, neither in `poll_ready` nor in `call`: load shedding is decided on
//! the real number of requests in flight, not on a queue's readiness (which is
//! what makes `LoadShed` over `Buffer` report spurious overloads).
//!
//! The permits travel with the [response future](future::ResponseFuture) and
//! are given back when it completes or is dropped, so a request cut short by
//! a timeout inside this layer frees its slot at the deadline.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::sync::Arc;
//! use p2p_service::in_flight::InFlightLimitLayer;
//! use tokio::sync::Semaphore;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! let node_wide = Arc::new(Semaphore::new(256));
//! let layer = InFlightLimitLayer::new(16).with_shared(node_wide);
//! let echo = service_fn(|n: u32| async move { Ok::<_, std::convert::Infallible>(n) });
//! let peer_service = layer.layer(echo);
//! assert_eq!(peer_service.oneshot(7).await.unwrap(), 7);
//! # }
//! ```

pub mod error;
pub mod future;
mod layer;
mod service;

pub use self::layer::InFlightLimitLayer;
pub use self::service::InFlightLimit;
