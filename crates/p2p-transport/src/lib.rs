//! A libp2p swarm exposed as Tower services in both directions.
//!
//! - **Inbound**: each remote peer is served by a `Service<GreetRequest>`
//!   that your `MakeService<PeerContext>` builds for it (see `p2p-service`
//!   for the default stack). The swarm task never awaits a handler.
//! - **Outbound**: the running node *is* a service: [`Client`] is a
//!   `Service<(PeerId, GreetRequest)>`, [`PeerClient`] one bound to a peer,
//!   and [`Node::discover`] a `tower::discover::Discover` of the live,
//!   greet-capable peers, so `tower::balance` works on them.
//!
//! ```no_run
//! use p2p_protocol::GreetRequest;
//! use p2p_service::{Limits, MakeGreeter, stack};
//! use p2p_transport::NodeBuilder;
//! use tower::ServiceExt;
//!
//! # async fn run(addr: libp2p::Multiaddr, peer: libp2p::PeerId) -> Result<(), Box<dyn std::error::Error>> {
//! let (node, _events) = NodeBuilder::new()
//!     .mdns(false)
//!     .listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse()?)
//!     .build(stack(MakeGreeter::new("hello from us"), Limits::default()))?;
//! node.dial(addr).await?;
//! let response = node.client().oneshot((peer, GreetRequest::new("hi"))).await?;
//! println!("{} (they see us at {})", response.message, response.observed_addr);
//! node.shutdown().await;
//! # Ok(()) }
//! ```

mod answer;
mod behaviour;
mod client;
mod codec;
mod discover;
mod error;
mod external_addrs;
#[cfg(feature = "metrics")]
mod metrics;
mod node;
mod periodic;
mod pipelined;
mod registry;
mod swarm_task;

pub use client::{Client, GreetVersion, MakePeerClient, PeerClient, ResponseFuture};
pub use codec::{GreetCodec, InboundRequest};
pub use discover::PeerDiscover;
pub use error::{BuildError, RequestError};
pub use external_addrs::{ADDRS_PER_REPORTER, ExternalAddrChange, ExternalAddrConfig, ExternalAddresses};
#[cfg(feature = "metrics")]
pub use metrics::{NodeMetrics, serve_metrics};
pub use node::{Node, NodeBuilder, NodeConfig, NodeEvent, NodeEvents};
pub use periodic::{GreetOutcome, GreetOutcomes, PeriodicGreeter};
/// Re-exported: the Prometheus registry [`NodeMetrics`] registers in.
#[cfg(feature = "metrics")]
pub use prometheus_client::registry::Registry;

/// Re-exported: the libp2p this crate is built on, for `PeerId`, `Multiaddr`, keys.
pub use libp2p;
