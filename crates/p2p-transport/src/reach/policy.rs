//! The reach policy, pure: what to do beyond the LAN, as events come.
//!
//! Events in (the node started, identify said what a peer speaks, a
//! connection came or went, a lookup or a hole punch ended, a timer fell
//! due), decisions out ([`Decision`]: what to put into or take out of the
//! DHT, whom to dial, where to reserve, what reachability to report, which
//! relayed connections to close). No swarm inside: what the policy must know
//! of the swarm (is the peer connected, its connections, is there a DHT, is
//! an external address confirmed) comes in as arguments, so every rule is a
//! unit test. The swarm task (`swarm/event_loop/reach.rs`) only applies the
//! decisions. The rules:
//!
//! - Bootstrap peers go into the DHT and are dialed at start; an address
//!   without `/p2p/<peer-id>` is ignored.
//! - A peer's addresses go into the DHT as [`dht_addresses`] says; a peer
//!   that is in only by its relayed addresses (it does not serve the DHT)
//!   is taken out when it leaves, so a relay does not hand out circuits to
//!   peers long gone.
//! - A node that is not a relay itself and not public reserves a relayed
//!   address on each bootstrap peer that is a relay, and reports itself
//!   private at once.
//! - Reachability is reported when it changes; the DHT serves (server mode)
//!   when we are public or a relay server.
//! - A relayed-only peer that has no direct connection
//!   [`NodeConfig::hole_punch_timeout`] after its relayed one came is
//!   reported as a failed hole punch, once (a late DCUtR failure is not
//!   reported again).
//! - A peer with a direct connection has its relayed ones closed (`path`).

use std::collections::{HashMap, HashSet};

use libp2p::core::transport::ListenerId;
use libp2p::kad::QueryId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::warn;

use super::{
    Closing, DialBackRule, LookupDone, Lookups, Punches, ReachabilityState, Reservations, dht_addresses,
    is_relayed, refuse, relayed_to_close,
};
use crate::events::Reachability;
use crate::{NodeConfig, RequestError};

/// What the swarm task should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Put these addresses of the peer into the DHT's routing table.
    AddToDht { peer: PeerId, addrs: Vec<Multiaddr> },
    /// Take the peer out of the DHT's routing table.
    RemoveFromDht { peer: PeerId },
    /// Dial a bootstrap peer at its address (unless connected or being dialed).
    DialBootstrap { peer: PeerId, addr: Multiaddr },
    /// Join the DHT (a Kademlia bootstrap query).
    JoinDht,
    /// Listen on `listen` (`<relay>/p2p-circuit`): reserve a relayed address.
    /// Tell [`Policy::on_reserving`] or [`Policy::on_reserve_failed`].
    Reserve { relay: PeerId, listen: Multiaddr },
    /// Report this reachability, and set the DHT to server mode or not.
    Reachability { reachability: Reachability, dht_server: bool },
    /// Tell `addresses/` whether an address needs a dial-back to be confirmed.
    RequireDialBack(bool),
    /// Report a hole punch that failed.
    HolePunchFailed { peer: PeerId, reason: String },
    /// Close these relayed connections of the peer: it has a direct one.
    CloseRelayed { peer: PeerId, connections: Vec<ConnectionId> },
}

/// What identify told us a peer speaks and where it listens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Speaks<'a> {
    /// Our Kademlia protocol: it serves the DHT.
    pub(crate) kad: bool,
    /// AutoNAT v2's dial request: it can dial us back.
    pub(crate) autonat: bool,
    /// Circuit relay v2's hop: it is a relay.
    pub(crate) relay: bool,
    /// Its listen addresses.
    pub(crate) listen_addrs: &'a [Multiaddr],
}

/// The swarm task's state for reaching peers beyond the LAN, and its rules.
pub(crate) struct Policy {
    /// Bootstrap peers and their addresses (ending in `/p2p/<peer>`).
    bootstrap: HashMap<PeerId, Multiaddr>,
    relay_server: bool,
    allow_loopback: bool,
    reservations: Reservations,
    /// Our listeners on relays (`<relay>/p2p-circuit`), by listener.
    relay_listeners: HashMap<ListenerId, PeerId>,
    lookups: Lookups,
    /// Whether addresses need a dial-back: only while (and `ttl` after) an
    /// AutoNAT server that proved itself, or a bootstrap one, is connected.
    dial_backs: DialBackRule,
    reachability: ReachabilityState,
    /// Peers whose relayed connections close soon (they have a direct one).
    closing: Closing,
    /// Relayed-only peers waiting for a hole punch.
    punches: Punches,
    /// Connected peers in our DHT table by their relayed addresses only (they
    /// do not serve the DHT): taken out when they leave, so that a relay does
    /// not hand out circuits to peers long gone.
    relayed_entries: HashSet<PeerId>,
}

impl Policy {
    pub(crate) fn new(config: &NodeConfig) -> Self {
        let bootstrap = config
            .bootstrap
            .iter()
            .filter_map(|addr| match addr.iter().last() {
                Some(Protocol::P2p(peer)) => Some((peer, addr.clone())),
                _ => {
                    warn!(%addr, "bootstrap address without /p2p/<peer-id>: ignored");
                    None
                }
            })
            .collect();
        Self {
            bootstrap,
            relay_server: config.relay_server,
            allow_loopback: config.external.allow_loopback,
            reservations: Reservations::new(config.reservation_backoff, config.reservation_backoff_max),
            relay_listeners: HashMap::new(),
            lookups: Lookups::default(),
            dial_backs: DialBackRule::new(config.external.ttl),
            reachability: ReachabilityState::default(),
            closing: Closing::default(),
            punches: Punches::new(config.hole_punch_timeout),
            relayed_entries: HashSet::new(),
        }
    }

    /// When a reservation retry, a relayed connection's close or a hole
    /// punch's deadline is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        [self.reservations.next_due(), self.closing.next_due(), self.punches.next_due()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The node starts: join the DHT through the bootstrap peers; a node
    /// with a confirmed address (`public`) reports it at once.
    pub(crate) fn start(&mut self, public: bool) -> Vec<Decision> {
        let mut decisions = Vec::new();
        for (peer, addr) in &self.bootstrap {
            decisions.push(Decision::AddToDht { peer: *peer, addrs: vec![addr.clone()] });
            decisions.push(Decision::DialBootstrap { peer: *peer, addr: addr.clone() });
        }
        if !self.bootstrap.is_empty() {
            decisions.push(Decision::JoinDht);
        }
        if public {
            decisions.extend(self.reachability(true, true));
        }
        decisions
    }

    /// Our reachability, given whether an external address is confirmed
    /// (`public`); `decided`: report "private" even if nothing was reported
    /// yet. A decision only when it changed.
    pub(crate) fn reachability(&mut self, public: bool, decided: bool) -> Option<Decision> {
        if !public && !decided && !self.reachability.is_known() {
            return None;
        }
        let reachability = self.reachability.update(public)?;
        Some(Decision::Reachability { reachability, dht_server: public || self.relay_server })
    }

    /// Whether an address needs a dial-back now (the rule may have changed,
    /// or lapsed: asked on the address expiry tick too).
    pub(crate) fn dial_back_rule(&self, now: Instant) -> Decision {
        Decision::RequireDialBack(self.dial_backs.required(now))
    }

    /// `Node::connect(/p2p/<peer>)` or `Node::dial(/p2p/<peer>)`: answers
    /// `reply` at once if it can; `true` if a DHT lookup of the peer is to
    /// start ([`Policy::lookup_started`] with its query).
    pub(crate) fn find(
        &mut self,
        peer: PeerId,
        reply: Option<oneshot::Sender<Result<PeerId, RequestError>>>,
        connected: bool,
        has_dht: bool,
    ) -> bool {
        if connected {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(peer));
            }
            return false;
        }
        if !has_dht {
            refuse(reply, "no DHT to look the peer up in (NodeConfig::dht is off)");
            return false;
        }
        self.lookups.want(peer, reply)
    }

    pub(crate) fn lookup_started(&mut self, peer: PeerId, query: QueryId) {
        self.lookups.started(peer, query);
    }

    /// The peer a lookup query of ours is looking for.
    pub(crate) fn lookup_target(&self, query: &QueryId) -> Option<PeerId> {
        self.lookups.target(query)
    }

    /// A lookup query is over: `found` are the target's addresses.
    pub(crate) fn on_lookup_done(
        &mut self,
        query: QueryId,
        found: Vec<Multiaddr>,
        connected: bool,
    ) -> LookupDone {
        self.lookups.on_query_done(query, found, connected)
    }

    /// A dial of the peer failed (or was refused): its lookups are over.
    pub(crate) fn on_dial_failed(&mut self, peer: PeerId, error: &str) {
        self.lookups.on_dial_failed(peer, error);
    }

    /// What identify said of a peer, for the DHT, AutoNAT and relays.
    pub(crate) fn on_identify(
        &mut self,
        peer: PeerId,
        speaks: Speaks<'_>,
        connected: bool,
        has_dht: bool,
        public: bool,
        now: Instant,
    ) -> Vec<Decision> {
        let mut decisions = Vec::new();
        if has_dht {
            let addrs = dht_addresses(speaks.kad, speaks.listen_addrs, self.allow_loopback);
            if !addrs.is_empty() {
                if !speaks.kad && connected {
                    self.relayed_entries.insert(peer);
                }
                decisions.push(Decision::AddToDht { peer, addrs });
            }
        }
        let bootstrap = self.bootstrap.contains_key(&peer);
        self.dial_backs.on_identify(peer, speaks.autonat, bootstrap);
        decisions.push(self.dial_back_rule(now));
        if speaks.relay
            && !self.relay_server
            && !self.reachability.is_public()
            && let Some(addr) = self.bootstrap.get(&peer).cloned()
        {
            decisions.extend(self.reachability(public, true));
            if let Some(listen) = self.reservations.want(peer, &addr) {
                decisions.push(Decision::Reserve { relay: peer, listen });
            }
        }
        decisions
    }

    /// A [`Decision::Reserve`] is listening, as `listener`.
    pub(crate) fn on_reserving(&mut self, relay: PeerId, listener: ListenerId) {
        self.relay_listeners.insert(listener, relay);
    }

    /// A [`Decision::Reserve`] could not listen: try again after the back-off.
    pub(crate) fn on_reserve_failed(&mut self, relay: PeerId, now: Instant) {
        self.reservations.on_closed(&relay, now);
    }

    /// The relay accepted our reservation: its back-off starts over.
    pub(crate) fn on_reserved(&mut self, relay: &PeerId) {
        self.reservations.on_reserved(relay);
    }

    /// A listener closed: if it was a reservation (and we are not shutting
    /// down), the relay and when we try again.
    pub(crate) fn on_listener_closed(
        &mut self,
        listener: ListenerId,
        draining: bool,
        now: Instant,
    ) -> Option<(PeerId, Option<Instant>)> {
        let relay = self.relay_listeners.remove(&listener)?;
        if draining {
            return None;
        }
        Some((relay, self.reservations.on_closed(&relay, now)))
    }

    /// Time to reserve again on relays whose reservation went away, to
    /// report hole punches that did not come, or to close relayed
    /// connections that a direct one replaced. `connected` and `connections`
    /// (each with its remote address) tell of a peer as the swarm has it.
    pub(crate) fn on_due<'a>(
        &mut self,
        now: Instant,
        connected: impl Fn(&PeerId) -> bool,
        connections: impl Fn(&PeerId) -> Vec<(ConnectionId, &'a Multiaddr)>,
    ) -> Vec<Decision> {
        let mut decisions: Vec<Decision> = (self.reservations.due(now).into_iter())
            .map(|(relay, listen)| Decision::Reserve { relay, listen })
            .collect();
        for peer in self.punches.due(now) {
            let direct = connections(&peer).iter().any(|(_, addr)| !is_relayed(addr));
            if connected(&peer) && !direct {
                let reason = format!(
                    "no direct connection within {} of the relayed one",
                    humanize(self.punches.timeout())
                );
                decisions.push(Decision::HolePunchFailed { peer, reason });
            }
        }
        for peer in self.closing.due(now) {
            let relayed = relayed_to_close(connections(&peer));
            if !relayed.is_empty() {
                decisions.push(Decision::CloseRelayed { peer, connections: relayed });
            }
        }
        decisions
    }

    /// A connection to the peer is up (`connections`: all of its, with their
    /// remote addresses): lookups waiting for it are done, and once it has a
    /// direct connection its relayed ones close (a moment later) and no hole
    /// punch is awaited; with relayed ones only, one is.
    pub(crate) fn on_established(
        &mut self,
        peer: PeerId,
        connections: &[(ConnectionId, &Multiaddr)],
        now: Instant,
    ) {
        self.lookups.on_connected(peer);
        self.dial_backs.on_connected(&peer);
        if !relayed_to_close(connections.iter().copied()).is_empty() {
            self.closing.schedule(peer, now);
        }
        if connections.iter().all(|(_, addr)| is_relayed(addr)) {
            self.punches.on_relayed(peer, now);
        } else {
            self.punches.on_done(&peer);
        }
    }

    /// A connection to the peer closed (`connected`: it has others still).
    pub(crate) fn on_closed(&mut self, peer: PeerId, connected: bool, now: Instant) -> Option<Decision> {
        if connected {
            return None;
        }
        self.punches.on_done(&peer);
        // A server leaving does not end the rule at once (a relay restart,
        // say): falling back to the observers alone let a node behind NAT
        // confirm its NAT mapping 200 ms after its relay restarted
        // (nat-netns.sh). It lapses after the external address TTL.
        self.dial_backs.on_disconnected(&peer, now);
        self.relayed_entries.remove(&peer).then_some(Decision::RemoveFromDht { peer })
    }

    /// A hole punch with the peer ended, `Ok` or with the reason it failed:
    /// a failure to report, unless our own deadline reported it already.
    pub(crate) fn on_punch_ended(&mut self, peer: PeerId, result: Result<(), String>) -> Option<Decision> {
        let waiting = self.punches.on_done(&peer);
        match result {
            Err(reason) if waiting => Some(Decision::HolePunchFailed { peer, reason }),
            _ => None,
        }
    }

    /// An AutoNAT server dialed us back: from now on its dial-backs are required.
    pub(crate) fn on_dialed_back(&mut self, server: PeerId, now: Instant) -> Decision {
        self.dial_backs.on_dialed_back(server);
        self.dial_back_rule(now)
    }

    /// Shutdown: every caller waiting for a lookup is told.
    pub(crate) fn shut_down(&mut self) {
        self.lookups.shut_down();
    }
}

fn humanize(duration: std::time::Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests;
