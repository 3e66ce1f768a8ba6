//! Beyond the LAN: the DHT, relay reservations, hole punching and AutoNAT
//! events, each handed to the `reach/` unit that decides, and the decisions
//! applied to the swarm.

use std::collections::{HashMap, HashSet};

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError};
use libp2p::{Multiaddr, PeerId, autonat, dcutr, identify, kad, relay};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::EventLoop;
use crate::events::NodeEvent;
use crate::reach::{
    AUTONAT_DIAL_REQUEST, Closing, DialBackRule, KAD_PROTOCOL, LookupDone, Lookups, Punches,
    ReachabilityState, Reservations, dht_addresses, refuse, relayed_to_close,
};
use crate::{NodeConfig, RequestError};

/// The swarm task's state for reaching peers beyond the LAN.
pub(super) struct Reach {
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

impl Reach {
    pub(super) fn new(config: &NodeConfig) -> Self {
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

    /// When a reservation retry or a relayed connection's close is due.
    pub(super) fn next_due(&self) -> Option<Instant> {
        [self.reservations.next_due(), self.closing.next_due(), self.punches.next_due()]
            .into_iter()
            .flatten()
            .min()
    }
}

fn humanize(duration: std::time::Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}

/// A bare `/p2p/<peer-id>`: a peer to find rather than an address to dial.
pub(super) fn bare_peer(address: &Multiaddr) -> Option<PeerId> {
    let mut parts = address.iter();
    match (parts.next(), parts.next()) {
        (Some(Protocol::P2p(peer)), None) => Some(peer),
        _ => None,
    }
}

impl EventLoop {
    /// Joins the DHT through the bootstrap peers; reports a public node at once.
    pub(super) fn start_reach(&mut self) {
        let bootstrap: Vec<(PeerId, Multiaddr)> =
            self.reach.bootstrap.iter().map(|(p, a)| (*p, a.clone())).collect();
        for (peer, addr) in bootstrap {
            if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                kad.add_address(&peer, addr.clone());
            }
            let opts = DialOpts::peer_id(peer)
                .addresses(vec![addr])
                .condition(PeerCondition::DisconnectedAndNotDialing);
            if let Err(err) = self.swarm.dial(opts.build()) {
                warn!(%peer, %err, "cannot dial bootstrap peer");
            }
        }
        if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
            && !self.reach.bootstrap.is_empty()
        {
            let _ = kad.bootstrap();
        }
        if self.addresses.has_confirmed() {
            self.update_reachability(true);
        }
    }

    /// `Node::connect(/p2p/<peer>)` or `Node::dial(/p2p/<peer>)`: find it.
    pub(super) fn find_peer(
        &mut self,
        peer: PeerId,
        reply: Option<oneshot::Sender<Result<PeerId, RequestError>>>,
    ) {
        if self.swarm.is_connected(&peer) {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(peer));
            }
            return;
        }
        let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() else {
            refuse(reply, "no DHT to look the peer up in (NodeConfig::dht is off)");
            return;
        };
        if self.reach.lookups.want(peer, reply) {
            debug!(%peer, "looking the peer up in the DHT");
            let query = kad.get_closest_peers(peer);
            self.reach.lookups.started(peer, query);
        }
    }

    pub(super) fn on_kad(&mut self, event: kad::Event) {
        let kad::Event::OutboundQueryProgressed {
            id,
            result: kad::QueryResult::GetClosestPeers(result),
            step,
            ..
        } = event
        else {
            debug!(?event, "kad");
            return;
        };
        if !step.last {
            return;
        }
        let peers = match result {
            Ok(ok) => ok.peers,
            Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
        };
        let Some(target) = self.reach.lookups.target(&id) else { return };
        let found: Vec<Multiaddr> =
            peers.into_iter().filter(|p| p.peer_id == target).flat_map(|p| p.addrs).collect();
        let connected = self.swarm.is_connected(&target);
        if let LookupDone::Dial(peer, addrs) = self.reach.lookups.on_query_done(id, found, connected) {
            let opts =
                DialOpts::peer_id(peer).addresses(addrs).condition(PeerCondition::DisconnectedAndNotDialing);
            match self.swarm.dial(opts.build()) {
                // Being dialed already (Kademlia's query, say): that dial's outcome counts.
                Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => {}
                Err(err) => self.reach.lookups.on_dial_failed(peer, &err.to_string()),
            }
        }
    }

    /// What identify said, for the DHT, AutoNAT and relays.
    pub(super) fn on_identify_reach(&mut self, peer: PeerId, info: &identify::Info) {
        let speaks = |name: &str| info.protocols.iter().any(|p| p.as_ref() == name);
        let speaks_kad = speaks(KAD_PROTOCOL.as_ref());
        let connected = self.swarm.is_connected(&peer);
        if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
            let addrs = dht_addresses(speaks_kad, &info.listen_addrs, self.reach.allow_loopback);
            if !speaks_kad && connected && !addrs.is_empty() {
                self.reach.relayed_entries.insert(peer);
            }
            for addr in addrs {
                kad.add_address(&peer, addr);
            }
        }
        let bootstrap = self.reach.bootstrap.contains_key(&peer);
        self.reach.dial_backs.on_identify(peer, speaks(AUTONAT_DIAL_REQUEST), bootstrap);
        self.refresh_dial_back_rule();
        let relay = speaks(relay::HOP_PROTOCOL_NAME.as_ref());
        if relay
            && !self.reach.relay_server
            && !self.reach.reachability.is_public()
            && let Some(addr) = self.reach.bootstrap.get(&peer).cloned()
        {
            self.update_reachability(true);
            if let Some(listen) = self.reach.reservations.want(peer, &addr) {
                self.reserve(peer, listen);
            }
        }
    }

    fn reserve(&mut self, relay: PeerId, listen: Multiaddr) {
        info!(%relay, %listen, "reserving a relayed address");
        match self.swarm.listen_on(listen) {
            Ok(id) => {
                self.reach.relay_listeners.insert(id, relay);
            }
            Err(err) => {
                warn!(%relay, %err, "cannot reserve");
                self.reach.reservations.on_closed(&relay, Instant::now());
            }
        }
    }

    /// Time to reserve again on relays whose reservation went away, or to
    /// close relayed connections that a direct one replaced.
    pub(super) fn on_reach_due(&mut self) {
        let now = Instant::now();
        for (relay, listen) in self.reach.reservations.due(now) {
            self.reserve(relay, listen);
        }
        for peer_id in self.reach.punches.due(now) {
            if self.swarm.is_connected(&peer_id) && self.connections_of(peer_id).0 == 0 {
                let reason = format!(
                    "no direct connection within {} of the relayed one",
                    humanize(self.reach.punches.timeout())
                );
                info!(peer = %peer_id, %reason, "hole punch failed");
                self.reporter.emit(NodeEvent::HolePunchFailed { peer_id, reason });
            }
        }
        for peer in self.reach.closing.due(now) {
            let relayed = relayed_to_close(self.peers.connections(&peer).iter().map(|(c, a)| (*c, *a)));
            for connection in relayed {
                debug!(%peer, ?connection, "direct connection up: closing the relayed one");
                self.swarm.close_connection(connection);
            }
        }
    }

    /// A listener closed: if it was a reservation, try again after the back-off.
    pub(super) fn on_listener_closed(&mut self, listener: ListenerId, reason: String) {
        if let Some(relay) = self.reach.relay_listeners.remove(&listener)
            && !self.shutdown.is_draining()
        {
            let at = self.reach.reservations.on_closed(&relay, Instant::now());
            info!(%relay, %reason, retry_in = ?at.map(|at| at - Instant::now()), "reservation lost");
        }
    }

    pub(super) fn on_relay_client(&mut self, event: relay::client::Event) {
        match event {
            relay::client::Event::ReservationReqAccepted { relay_peer_id, renewal, .. } => {
                debug!(relay = %relay_peer_id, renewal, "reservation accepted");
                self.reach.reservations.on_reserved(&relay_peer_id);
            }
            event => debug!(?event, "relay client"),
        }
    }

    /// A connection is up: lookups waiting for the peer are done, and once a
    /// peer has a direct connection its relayed ones close (a moment later).
    pub(super) fn on_established_reach(&mut self, peer: PeerId) {
        self.reach.lookups.on_connected(peer);
        self.reach.dial_backs.on_connected(&peer);
        if !relayed_to_close(self.peers.connections(&peer).iter().map(|(c, a)| (*c, *a))).is_empty() {
            self.reach.closing.schedule(peer, Instant::now());
        }
        match self.connections_of(peer) {
            (0, _) => self.reach.punches.on_relayed(peer, Instant::now()),
            _ => drop(self.reach.punches.on_done(&peer)),
        }
        self.update_direct(peer);
    }

    /// The peer's direct and relayed connections.
    fn connections_of(&self, peer: PeerId) -> (usize, usize) {
        let connections = self.peers.connections(&peer);
        let relayed = connections.iter().filter(|(_, a)| crate::reach::is_relayed(a)).count();
        (connections.len() - relayed, relayed)
    }

    pub(super) fn on_closed_reach(&mut self, peer: PeerId) {
        self.update_direct(peer);
        if !self.swarm.is_connected(&peer) {
            self.reach.punches.on_done(&peer);
            if self.reach.relayed_entries.remove(&peer)
                && let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
            {
                kad.remove_peer(&peer);
            }
        }
        // A server leaving does not end the rule at once (a relay restart,
        // say): falling back to the observers alone let a node behind NAT
        // confirm its NAT mapping 200 ms after its relay restarted
        // (nat-netns.sh). It lapses after the external address TTL.
        if !self.swarm.is_connected(&peer) {
            self.reach.dial_backs.on_disconnected(&peer, Instant::now());
        }
    }

    pub(super) fn on_dial_failed_reach(&mut self, peer: PeerId, error: &str) {
        self.reach.lookups.on_dial_failed(peer, error);
    }

    fn update_direct(&mut self, peer: PeerId) {
        let counts = self.connections_of(peer);
        self.reporter.update(|s| {
            if counts == (0, 0) {
                s.connections.remove(&peer);
            } else {
                s.connections.insert(peer, counts);
            }
        });
    }

    pub(super) fn on_dcutr(&mut self, event: dcutr::Event) {
        let peer_id = event.remote_peer_id;
        let waiting = self.reach.punches.on_done(&peer_id);
        match event.result {
            Ok(connection) => {
                let address = self.direct_addr(peer_id, connection);
                info!(peer = %peer_id, %address, "hole punched");
                self.reporter.emit(NodeEvent::HolePunched { peer_id, address });
            }
            // Not twice: our own deadline may have reported it already.
            Err(err) if waiting => {
                let reason = crate::outbound::one_line(&err.to_string());
                info!(peer = %peer_id, %reason, "hole punch failed");
                self.reporter.emit(NodeEvent::HolePunchFailed { peer_id, reason });
            }
            Err(err) => debug!(peer = %peer_id, %err, "hole punch failed (reported already)"),
        }
    }

    fn direct_addr(&self, peer: PeerId, connection: ConnectionId) -> Multiaddr {
        let addr = self.peers.remote_addr(&peer, connection);
        if addr.is_empty() || crate::reach::is_relayed(&addr) {
            return self.peers.any_remote_addr(&peer).unwrap_or(addr);
        }
        addr
    }

    pub(super) fn on_autonat(&mut self, event: autonat::v2::client::Event) {
        match event.result {
            Ok(()) => {
                info!(addr = %event.tested_addr, server = %event.server, "dialed back");
                // A proof: from now on this server's dial-backs are required.
                self.reach.dial_backs.on_dialed_back(event.server);
                self.refresh_dial_back_rule();
                self.addresses.dial_back_succeeded(&mut self.swarm, &event.tested_addr);
                self.update_reachability(false);
            }
            Err(err) => {
                debug!(addr = %event.tested_addr, server = %event.server, %err, "not dialed back");
                self.update_reachability(true);
            }
        }
    }

    /// Reports a change of reachability (`decided`: report "private" even
    /// if nothing was reported yet) and sets the DHT mode to match.
    pub(super) fn update_reachability(&mut self, decided: bool) {
        let public = self.addresses.has_confirmed();
        if !public && !decided && !self.reach.reachability.is_known() {
            return;
        }
        if let Some(reachability) = self.reach.reachability.update(public) {
            info!(%reachability, "reachability");
            let mode = if public || self.reach.relay_server { kad::Mode::Server } else { kad::Mode::Client };
            if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                kad.set_mode(Some(mode));
            }
            self.reporter.emit(NodeEvent::Reachability { reachability });
        }
    }

    /// Tells `addresses/` whether a dial-back is required now (the rule may
    /// have changed, or lapsed: called on the address expiry tick too).
    pub(super) fn refresh_dial_back_rule(&mut self) {
        let required = self.reach.dial_backs.required(Instant::now());
        self.addresses.require_dial_back(required);
    }

    pub(super) fn shut_down_reach(&mut self) {
        self.reach.lookups.shut_down();
    }
}
