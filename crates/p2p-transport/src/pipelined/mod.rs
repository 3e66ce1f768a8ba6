//! Greet v2 (`/p2p-node/greet/2.0.0`): many requests pipelined on one
//! long-lived `libp2p-stream` stream, answered in any order.
//!
//! Neither direction goes through the swarm task: an inbound stream is served
//! by a task of its own that calls the peer's service (the same one 1.0.0
//! requests get), and an outbound [`Mux`] writes requests and matches answers
//! by id from tasks of its own.

mod acceptor;
mod inbound;
mod outbound;
mod writer;

pub(crate) use acceptor::Acceptor;
pub(crate) use inbound::accept_loop;
pub(crate) use outbound::Mux;
