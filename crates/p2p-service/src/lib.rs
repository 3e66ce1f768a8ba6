//! The inbound side of a p2p-node as plain Tower, with no swarm in sight.
//!
//! The transport serves each connection of a remote peer with a
//! [`PeerService`]: a `Service<GreetRequest>` that never fails, never makes
//! its caller wait in `poll_ready`, and answers every request with a
//! [`GreetResult`](p2p_protocol::GreetResult), made for that connection by a
//! `MakeService<PeerContext>`. This crate provides
//!
//! - the default handler, [`Greeter`], and its [`MakeGreeter`];
//! - the middleware of the per-peer stack, one module each in the style of
//!   `tower::timeout`: [`trace`] (a span per request), [`remote_error`]
//!   (errors to 408/429/503/500 answers), [`rate_limit`] (a per-peer token
//!   bucket, 429), [`in_flight`] (per-peer and global in-flight limits,
//!   503) and [`shed_unready`] (a handler that is not ready is answered 503
//!   at once, instead of making the request wait), with tower's own
//!   [`Timeout`](tower::timeout::Timeout) for 408;
//! - [`stack`] / [`MakePeerService`], which build that stack around any
//!   handler from a plain [`Limits`] config.
//!
//! The default stack keys its per-peer limits by `PeerId`: every service one
//! `MakePeerService` makes for a peer, on any of its connections, shares the
//! peer's token bucket and in-flight count, and they outlive the peer's
//! services, so a reconnect does not refill the bucket. A bounded table
//! ([`DEFAULT_MAX_REMEMBERED_PEERS`]) forgets a peer once a new state would
//! behave the same (see [`MakePeerService`]).
//!
//! A handler is any `Service<GreetRequest, Response = GreetResponse>` whose
//! error converts into [`BoxError`]; it may return a boxed
//! [`RemoteError`](p2p_protocol::RemoteError) to answer with a code of its
//! choice. Users who want another stack can build their own `MakeService`
//! from the same layers.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use libp2p_identity::PeerId;
//! use p2p_protocol::{GreetRequest, Multiaddr};
//! use p2p_service::{Limits, MakeGreeter, PeerContext, stack};
//! use tower::ServiceExt;
//!
//! // Once per node: the default stack around greeters answering "hi".
//! let make_peer_service = stack(MakeGreeter::new("hi"), Limits::default());
//!
//! // Once per connection: its service, built from what the connection tells us.
//! let remote_addr: Multiaddr = "/ip4/192.0.2.7/udp/4001/quic-v1".parse().unwrap();
//! let ctx = PeerContext::new(PeerId::random(), remote_addr.clone());
//! let peer_service = make_peer_service.oneshot(ctx).await.unwrap();
//!
//! // Once per request: a clone of it answers.
//! let answer = peer_service.clone().oneshot(GreetRequest::new("hello")).await;
//! let response = answer.unwrap().unwrap(); // Infallible, then the `GreetResult`
//! assert!(response.message.contains("hello"));
//! assert_eq!(response.observed_addr, remote_addr);
//! # }
//! ```

mod context;
mod fault;
mod greeter;
pub mod in_flight;
mod limits;
mod make;
mod peer_state;
pub mod rate_limit;
pub mod remote_error;
pub mod shed_unready;
pub mod trace;

pub use context::PeerContext;
pub use fault::{FaultReporter, PeerFault};
pub use greeter::{Greeter, MakeGreeter};
pub use limits::Limits;
pub use make::{DEFAULT_MAX_REMEMBERED_PEERS, MakePeerService, PeerService, stack};

/// The error type of handlers and middleware, boxed at the boundary as Tower does.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
