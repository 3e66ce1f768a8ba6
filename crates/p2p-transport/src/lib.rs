//! A libp2p swarm exposed as Tower services in both directions.
//!
//! Any request/response protocol (a [`Protocol`]: its names, its messages,
//! its frame limit) is mounted on the same connections; greet ([`Greet`]) is
//! one of them.
//!
//! - **Inbound**: each remote peer is served, per protocol `P`, by a
//!   `Service<P::Request>` that your `MakeService<PeerContext>` builds for it
//!   (see `p2p-service` for the default stack), mounted with
//!   [`NodeBuilder::serve`]. The swarm task never awaits a handler.
//! - **Outbound**: the running node *is* a service: [`Client<P>`] is a
//!   `Service<(PeerId, P::Request)>`, [`PeerClient<P>`] one bound to a peer,
//!   and [`Node::discover`] a `tower::discover::Discover` of the live peers
//!   that speak `P`, so `tower::balance` works on them.
//!
//! ```no_run
//! use p2p_protocol::{Greet, GreetRequest};
//! use p2p_service::{Limits, MakeGreeter, stack};
//! use p2p_transport::NodeBuilder;
//! use tower::ServiceExt;
//!
//! # async fn run(addr: libp2p::Multiaddr) -> Result<(), Box<dyn std::error::Error>> {
//! let (node, _events) = NodeBuilder::new()
//!     .mdns(false)
//!     .listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse()?)
//!     .build(stack(MakeGreeter::new("hello from us"), Limits::default()))?;
//! let peer = node.connect(addr).await?; // resolves once connected
//! let response = node.client::<Greet>().oneshot((peer, GreetRequest::new("hi"))).await?;
//! println!("{} (they see us at {})", response.message, response.observed_addr);
//! node.shutdown().await;
//! # Ok(()) }
//! ```

// The rooms, from the bottom up: each uses only rooms above it in this list
// (`tests/layering.rs` checks it), so no two rooms import each other.
mod lock;
mod timer_thread;
mod origin;
mod backoff;
mod wakers;
mod error;
mod command;
mod events;
mod wire;
mod gate;

mod addresses;
mod config;
mod inbound;
mod outbound;
mod discovery;
mod peers;
mod reach;

#[cfg(feature = "metrics")]
mod metrics;
mod shutdown;
mod swarm;

mod node;

pub use addresses::{
    ADDRS_PER_ORIGIN, ExternalAddrChange, ExternalAddrConfig, ExternalAddresses, MAX_CONFIRMED,
    MAX_DIALED_BACK, MAX_ORIGINS,
};
pub use config::{CertificatePem, NodeConfig, RelayServerConfig};
pub use error::{BuildError, RequestError};
pub use events::{NodeEvent, NodeEvents, Path, PeerLifecycle, Reachability};
pub use gate::BanConfig;
#[cfg(feature = "metrics")]
pub use metrics::NodeMetrics;
pub use node::{Node, NodeBuilder};
pub use outbound::{Client, GreetVersion, MakePeerClient, PeerClient, ResponseFuture};
pub use p2p_protocol::{Greet, Protocol};
pub use peers::PeerDiscover;
/// Re-exported: the Prometheus registry [`NodeMetrics`] registers in.
#[cfg(feature = "metrics")]
pub use prometheus_client::registry::Registry;
pub use timer_thread::{TimerThread, idle_timer_thread};
pub use wire::{GreetCodec, InboundRequest};

/// Re-exported: the libp2p this crate is built on, for `PeerId`, `Multiaddr`, keys.
pub use libp2p;
