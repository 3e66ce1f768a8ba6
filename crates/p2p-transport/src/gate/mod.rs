//! The gate: who may connect at all. Connection budgets that no crowd of
//! cheap identities can exhaust (per remote IP, for inbound connections in
//! total and while pending, always leaving room for our own dials).
//!
//! Owns: the admission behaviours the swarm composes, and their policy.
//! Must never: refuse our own outbound dials for want of room, or keep state
//! that grows with anything but live connections.

mod per_ip;

pub(crate) use per_ip::PerIpLimit;
