//! Peers: who is connected and greet-capable, whom to dial and when to dial
//! again, and the Tower views of that set (`discover`, the periodic greeter).
//!
//! Owns: the swarm task's peer table, the greet-capable `watch`, and the
//! lifecycle policy (a pure struct: events in, decisions out).
//! Must never: let mDNS decide whom to keep (an expired record never closes
//! a connection), redial without back-off, or make the swarm task wait on a
//! reader of the peer set.

mod discover;
mod lifecycle;
mod periodic;
mod table;

pub use discover::PeerDiscover;
pub(crate) use discover::PeerSet;
pub(crate) use lifecycle::{Closed, Decision, Lifecycle};
pub use periodic::{GreetOutcome, GreetOutcomes, PeriodicGreeter};
pub(crate) use table::PeerTable;
