//! Middleware that turns every error of the stack below into a [`RemoteError`](p2p_protocol::RemoteError) answer.
//!
//! [`MapRemoteError`] makes a service that never fails: its response is a
//! [`GreetResult`](p2p_protocol::GreetResult)-style `Result<T, RemoteError>`,
//! ready to be written on the wire, and its error type is
//! [`Infallible`](std::convert::Infallible). The middleware below it report
//! concrete error types, boxed as [`BoxError`](crate::BoxError); this layer
//! `downcast`s them to the specification's codes with [`to_remote_error`]:
//!
//! | error | answer |
//! | --- | --- |
//! | [`tower::timeout::error::Elapsed`] | 408 "request timed out" |
//! | [`RateLimited`](crate::rate_limit::error::RateLimited) | 429 "rate limited" |
//! | [`PeerOverloaded`](crate::in_flight::error::PeerOverloaded) | 503 "overloaded" |
//! | [`tower::load_shed::error::Overloaded`] | 503 "overloaded" |
//! | a [`RemoteError`](p2p_protocol::RemoteError) from the handler | itself, unchanged |
//! | anything else | 500 "internal error" (the error itself is only logged) |
//!
//! A handler that wants to choose its code returns a `RemoteError` (boxed).
//!
//! It is also the one place that says which refusals the *peer* caused
//! ([`classify`]): with a [`FaultReporter`](crate::FaultReporter) (from the
//! peer's [`PeerContext`](crate::PeerContext) in the default stack) it
//! reports them, so a ban policy counts a 503 from the peer's own in-flight
//! share but never one from the node-wide limit.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use p2p_protocol::{ErrorCode, RemoteError};
//! use p2p_service::{BoxError, remote_error::MapRemoteErrorLayer};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! let picky = service_fn(|n: u32| async move {
//!     match n {
//!         0 => Err::<u32, BoxError>(RemoteError::new(ErrorCode::BAD_REQUEST, "zero").into()),
//!         1 => Err("database on fire at 10.0.0.7".into()),
//!         n => Ok(n),
//!     }
//! });
//! let service = MapRemoteErrorLayer::new().layer(picky);
//! assert_eq!(service.clone().oneshot(2).await, Ok(Ok(2)));
//! assert_eq!(service.clone().oneshot(0).await, Ok(Err(RemoteError::new(ErrorCode::BAD_REQUEST, "zero"))));
//! assert_eq!(service.oneshot(1).await, Ok(Err(RemoteError::new(ErrorCode::INTERNAL, "internal error"))));
//! # }
//! ```

pub mod future;
mod layer;
mod service;

pub use self::layer::MapRemoteErrorLayer;
pub use self::service::{MapRemoteError, classify, to_remote_error};
