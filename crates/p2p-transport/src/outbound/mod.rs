//! Outbound: the running node as Tower services, one set per protocol.
//! [`Client<P>`] is a `Service<(PeerId, P::Request)>`, [`PeerClient<P>`] one
//! bound to a peer, [`MakePeerClient<P>`] a `MakeService<PeerId>`. A request
//! goes on the peer's pipelined stream of `P` when it has one (the per-peer
//! `Mux`, never through the swarm task), otherwise on a stream of its own
//! (the `Opener`: the swarm task only picks the connection).
//!
//! Owns: the clients, the pipelined muxes, the one-request opener and the
//! dials the handles asked for.
//! Must never: queue without bound (back-pressure is `poll_ready`), or leave
//! a caller waiting once the node or the peer is gone.

// Its files from the bottom up: each uses only files above it (`tests/layering.rs`).
mod dials;
mod opener;
mod mux;
mod peers;
mod client;

pub use client::{Client, GreetVersion, MakePeerClient, PeerClient, ResponseFuture};
pub(crate) use dials::{Dials, one_line};
pub(crate) use opener::Opener;
pub(crate) use peers::{MuxParts, Muxes, OutboundPeers};
