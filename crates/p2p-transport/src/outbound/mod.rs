//! Outbound: the running node as Tower services. [`Client`] is a
//! `Service<(PeerId, GreetRequest)>`, [`PeerClient`] one bound to a peer,
//! [`MakePeerClient`] a `MakeService<PeerId>`. A request goes on the peer's
//! pipelined 2.0.0 stream when it has one (the per-peer `Mux`, never through
//! the swarm task), otherwise through the swarm task as a 1.0.0 request.
//!
//! Owns: the clients, the pipelined muxes, the swarm task's pending 1.0.0
//! requests and the dials the handles asked for.
//! Must never: queue without bound (back-pressure is `poll_ready`), or leave
//! a caller waiting once the node or the peer is gone.

// Its files from the bottom up: each uses only files above it (`tests/layering.rs`).
mod dials;
mod v1;
mod mux;
mod peers;
mod client;

pub use client::{Client, GreetVersion, MakePeerClient, PeerClient, ResponseFuture};
pub(crate) use dials::{Dials, one_line};
pub(crate) use mux::Mux;
pub(crate) use peers::OutboundPeers;
pub(crate) use v1::OutboundV1;
