//! Inbound: remote peers' requests, served by the per-peer Tower service the
//! user's `MakeService<PeerContext>` builds, on 1.0.0 (one stream per
//! request, through the swarm task) and 2.0.0 (pipelined streams, served by
//! tasks of their own).
//!
//! Owns: the peers' service cells, the v1 answer channel and its drain
//! accounting, the v2 acceptor and responders.
//! Must never: await a handler on the swarm task (a 1.0.0 request runs in a
//! task of its own, a 2.0.0 request in its stream's responder task), or let
//! user code (an error, a panic) go unanswered.

mod acceptor;
mod peers;
mod responder;
mod service;
mod v1;

pub(crate) use acceptor::{Acceptor, ConnectionWakers, SpeaksV2};
pub(crate) use peers::InboundPeers;
pub(crate) use responder::accept_loop;
#[cfg(feature = "metrics")]
pub(crate) use service::PeerService;
pub(crate) use service::{MakePeerService, noting_refusals};
pub(crate) use v1::InboundV1;
