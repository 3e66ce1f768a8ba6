//! Peers: who is connected and which mounted protocols each speaks, whom to
//! dial and when to dial again, and the Tower view of each protocol's set
//! (`discover`).
//!
//! Owns: the swarm task's peer table, each protocol's `watch` of its
//! peers, and the lifecycle policy (a pure struct: events in, decisions out).
//! Must never: let mDNS decide whom to keep (an expired record never closes
//! a connection), redial without back-off, or make the swarm task wait on a
//! reader of the peer set.

mod discover;
mod lifecycle;
mod table;

pub use discover::PeerDiscover;
pub(crate) use discover::PeerSet;
pub(crate) use lifecycle::{Closed, Decision, Lifecycle};
pub(crate) use table::{MAX_MOUNTS, PeerTable};
