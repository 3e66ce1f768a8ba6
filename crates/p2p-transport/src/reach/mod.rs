//! Reaching peers beyond the LAN: Kademlia, circuit relay v2, hole punching
//! (DCUtR) and AutoNAT v2, as small units the swarm task applies.
//!
//! Owns: which addresses of a peer go into the DHT (`dht`), when to reserve
//! again on a relay (`reservations`, a pure back-off policy), the lookups of
//! peers known by their id alone (`lookup`), which connections to keep when
//! a peer has both a direct and a relayed one (`path`), how long to wait
//! for a hole punch before reporting it failed (`punch`), our reachability,
//! and two thin wrappers around libp2p's AutoNAT v2: a server that refuses
//! dial-back targets that are not the client's own IP, and a client whose
//! successful dial-backs are reported to `addresses/` instead of confirming
//! an address on their own (`autonat`), and whether `addresses/` must wait
//! for a dial-back at all (`dial_backs`: only servers that proved
//! themselves, or bootstrap ones, switch it on, and it lapses). `policy`
//! composes them into one pure [`Policy`], like `peers::Lifecycle`: events
//! in, [`Decision`]s out, no swarm; the swarm task only applies them.
//! Must never: confirm an address itself (that is `addresses/`' policy), put
//! loopback or unspecified junk into the DHT, dial back an address that is
//! not the requester's own, or retry a relay without back-off.

mod autonat;
mod dht;
mod dial_backs;
mod lookup;
mod path;
mod punch;
mod reservations;
// Last: it composes the units above.
mod policy;

pub(crate) use autonat::{AUTONAT_DIAL_REQUEST, AutonatClient, AutonatServer};
pub(crate) use dht::{KAD_PROTOCOL, dht_addresses};
pub(crate) use dial_backs::DialBackRule;
pub(crate) use lookup::{LookupDone, Lookups, refuse};
pub(crate) use path::{Closing, is_relayed, relayed_to_close};
pub(crate) use policy::{Decision, Policy, Speaks};
pub(crate) use punch::Punches;
pub(crate) use reservations::Reservations;

use crate::events::Reachability;

/// Our reachability as last reported: changes only are worth a line.
#[derive(Debug, Default)]
pub(crate) struct ReachabilityState {
    current: Option<Reachability>,
}

impl ReachabilityState {
    /// The node is public (`true`) or not; returns the new value if it changed.
    pub(crate) fn update(&mut self, public: bool) -> Option<Reachability> {
        let now = if public { Reachability::Public } else { Reachability::Private };
        (self.current.replace(now) != Some(now)).then_some(now)
    }

    /// Something was reported already.
    pub(crate) fn is_known(&self) -> bool {
        self.current.is_some()
    }

    pub(crate) fn is_public(&self) -> bool {
        self.current == Some(Reachability::Public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachability_is_reported_when_it_changes_only() {
        let mut state = ReachabilityState::default();
        assert_eq!(state.update(false), Some(Reachability::Private));
        assert_eq!(state.update(false), None);
        assert_eq!(state.update(true), Some(Reachability::Public));
        assert!(state.is_public());
        assert_eq!(state.update(true), None);
        assert_eq!(state.update(false), Some(Reachability::Private));
    }
}
