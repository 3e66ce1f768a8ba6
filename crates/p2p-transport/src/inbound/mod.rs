//! Inbound: remote peers' requests, on every mounted protocol, served by the
//! per-peer Tower service the user's `MakeService<PeerContext>` for that
//! protocol builds, on its one-request name (a stream per request) and its
//! pipelined name, each stream served by a task of its own; neither passes
//! through the swarm task.
//!
//! Owns: each protocol's server (its connections' service cells, the
//! one-request stream task, the pipelined responder), the bare stream
//! protocols' handler tasks (`stream.rs`), and the acceptor of every
//! protocol's streams.
//! Must never: await a handler on the swarm task (a one-request stream's
//! request runs in its stream's task, a pipelined one in its stream's
//! responder task), or let user code (an error, a panic) go unanswered.

// Its files from the bottom up, as lib.rs lists the rooms: each uses only
// files above it (`tests/layering.rs`); `drain` is a leaf.
mod drain;
mod service;
mod peers;
mod server;
mod v1;
mod responder;
mod serve;
mod stream;
mod acceptor;

pub(crate) use acceptor::{Acceptor, Route, Routes, SpokenBy};
pub(crate) use serve::Serve;
pub(crate) use server::Server;
#[cfg(feature = "metrics")]
pub(crate) use service::PeerService;
pub(crate) use service::{MakePeerService, erased};
pub(crate) use stream::{StreamHandler, StreamServer};
