//! Discovery I/O: peers announced on the LAN that `libp2p-mdns` does not
//! hear, heard on a socket of our own beside it.
//!
//! Owns: the receive-only mDNS listener (`mdns_answers`: js-libp2p's
//! `dnsaddr=` records in the answers section), its UDP 5353 socket and group
//! memberships, the pacing of the one query it sends (`mdns_answers/querier`),
//! and the hand-off of what it heard to the swarm task as [`Announced`]
//! peers, `try_send` on a bounded channel.
//! Must never: decide whom to dial or keep (`peers::Lifecycle` does, fed by
//! this as by `libp2p-mdns`), touch the swarm, wait on the swarm task,
//! believe a datagram from beyond the local link, or send anything but its
//! query.

mod mdns_answers;

pub(crate) use mdns_answers::{Announced, listen as listen_mdns_answers};
