//! Inbound: remote peers' requests, served by the per-peer Tower service the
//! user's `MakeService<PeerContext>` builds, on 1.0.0 (one stream per
//! request) and 2.0.0 (pipelined streams), each stream served by a task of
//! its own; neither passes through the swarm task.
//!
//! Owns: the peers' service cells, the acceptor of both versions' streams,
//! the 1.0.0 stream server and the 2.0.0 responders.
//! Must never: await a handler on the swarm task (a 1.0.0 request runs in
//! its stream's task, a 2.0.0 request in its stream's responder task), or let
//! user code (an error, a panic) go unanswered.

// Its files from the bottom up, as lib.rs lists the rooms: each uses only
// files above it (`tests/layering.rs`); `stream` and `drain` are leaves.
mod stream;
mod drain;
mod service;
mod peers;
mod responder;
mod v1;
mod acceptor;

pub(crate) use acceptor::{Acceptor, GreetedBy};
pub(crate) use peers::InboundPeers;
pub(crate) use responder::accept_loop;
#[cfg(feature = "metrics")]
pub(crate) use service::PeerService;
pub(crate) use service::{MakePeerService, erased};
pub(crate) use v1::ServeV1;
