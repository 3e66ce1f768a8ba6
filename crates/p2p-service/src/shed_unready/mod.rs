//! Middleware that answers at once when the inner service is not ready, instead of waiting for it.
//!
//! Tower's own [`Timeout`](tower::timeout::Timeout) and our
//! [`in_flight`](crate::in_flight) limit start in `call`, but a caller such as
//! `oneshot` waits in `poll_ready` first, for as long as the service says
//! `Pending`. A handler that applies back-pressure there (a
//! `ConcurrencyLimit`, a full `Buffer`) would make every request beyond its
//! capacity wait, unbounded and unanswered, with no 408 and no 503.
//!
//! [`ShedUnready`] closes that gap. Its `poll_ready` is always ready and
//! never touches the inner service; its `call` asks the inner service,
//! once, whether it is ready, and never waits for the answer to change:
//!
//! - ready: the request is called, and the future is the inner response;
//! - not ready (`Pending`): the request is answered at once with
//!   [`Overloaded`](tower::load_shed::error::Overloaded) (503), uncalled;
//! - failed: its error is the answer.
//!
//! Readiness is asked in `call`, not in `poll_ready`, so the layers above
//! decide first: in the default stack a request refused by the rate limit
//! or the in-flight limit never reserves the handler's capacity. It takes no
//! time, and the call's future runs under the deadline, so the deadline
//! bounds the whole request. As nothing waits, the inner service is polled
//! with a no-op waker: this costs no clone and no state of its own.
//!
//! A waiter the inner service queued while not ready (a `ConcurrencyLimit`
//! waiting for a permit) stays in this service until its next call or its
//! drop, as with tower's `LoadShed`. The transport calls a fresh clone per
//! request and drops it at once; a caller that keeps clones around should
//! call them again or drop them.
//!
//! **A handler that stays not ready is answered 503, at once, never 408**,
//! however long it would have stayed so. A service that is not ready says it
//! has no capacity now: that is overload (503, "try again later"), and the
//! request has not started, so nothing has yet taken too long (408). Waiting
//! for readiness, even bounded by the deadline, would be a queue: each waiting
//! request would hold its task, its stream and an in-flight slot for the whole
//! deadline, and a handler stuck at its capacity would turn every further
//! request into a 408 after the full deadline instead of a 503 now. The cost:
//! a handler whose `poll_ready` says `Pending` spuriously sheds requests it
//! could have served; `poll_ready` should be honest, as Tower asks.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use p2p_service::shed_unready::ShedUnreadyLayer;
//! use tower::load_shed::error::Overloaded;
//! use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};
//!
//! // A handler that takes one request at a time, and never finishes one.
//! let stuck = ServiceBuilder::new()
//!     .concurrency_limit(1)
//!     .service(service_fn(|_: u32| std::future::pending::<Result<u32, std::convert::Infallible>>()));
//! let service = ShedUnreadyLayer::new().layer(stuck);
//!
//! let first = tokio::spawn(service.clone().oneshot(1)); // takes the one slot, forever
//! tokio::task::yield_now().await;
//! let second = service.clone().oneshot(2).await; // not queued behind it: shed
//! assert!(second.unwrap_err().is::<Overloaded>());
//! # first.abort();
//! # }
//! ```

pub mod future;
mod layer;
mod service;

pub use self::layer::ShedUnreadyLayer;
pub use self::service::ShedUnready;
