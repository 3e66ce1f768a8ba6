//! Beyond the LAN: the DHT, relay reservations, hole punching and AutoNAT
//! events, handed to the pure `reach::Policy`, and its decisions applied to
//! the swarm. Nothing is decided here.

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError};
use libp2p::{Multiaddr, PeerId, autonat, dcutr, identify, kad, relay};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::EventLoop;
use crate::RequestError;
use crate::events::NodeEvent;
use crate::reach::{AUTONAT_DIAL_REQUEST, Decision, KAD_PROTOCOL, LookupDone, Speaks};

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
        let decisions = self.reach.start(self.addresses.has_confirmed());
        self.apply_reach(decisions);
    }

    /// Does what the reach policy decided.
    fn apply_reach(&mut self, decisions: impl IntoIterator<Item = Decision>) {
        for decision in decisions {
            match decision {
                Decision::AddToDht { peer, addrs } => {
                    if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                        for addr in addrs {
                            kad.add_address(&peer, addr);
                        }
                    }
                }
                Decision::RemoveFromDht { peer } => {
                    if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                        kad.remove_peer(&peer);
                    }
                }
                Decision::DialBootstrap { peer, addr } => {
                    let opts = DialOpts::peer_id(peer)
                        .addresses(vec![addr])
                        .condition(PeerCondition::DisconnectedAndNotDialing);
                    if let Err(err) = self.swarm.dial(opts.build()) {
                        warn!(%peer, %err, "cannot dial bootstrap peer");
                    }
                }
                Decision::JoinDht => {
                    if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                        let _ = kad.bootstrap();
                    }
                }
                Decision::Reserve { relay, listen } => self.reserve(relay, listen),
                Decision::Reachability { reachability, dht_server } => {
                    info!(%reachability, "reachability");
                    let mode = if dht_server { kad::Mode::Server } else { kad::Mode::Client };
                    if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                        kad.set_mode(Some(mode));
                    }
                    self.reporter.emit(NodeEvent::Reachability { reachability });
                }
                Decision::RequireDialBack(required) => self.addresses.require_dial_back(required),
                Decision::HolePunchFailed { peer, reason } => {
                    info!(peer = %peer, %reason, "hole punch failed");
                    self.reporter.emit(NodeEvent::HolePunchFailed { peer_id: peer, reason });
                }
                Decision::CloseRelayed { peer, connections } => {
                    for connection in connections {
                        debug!(%peer, ?connection, "direct connection up: closing the relayed one");
                        self.swarm.close_connection(connection);
                    }
                }
            }
        }
    }

    /// `Node::connect(/p2p/<peer>)` or `Node::dial(/p2p/<peer>)`: find it.
    pub(super) fn find_peer(
        &mut self,
        peer: PeerId,
        reply: Option<oneshot::Sender<Result<PeerId, RequestError>>>,
    ) {
        let connected = self.swarm.is_connected(&peer);
        let has_dht = self.swarm.behaviour().kad.is_enabled();
        if self.reach.find(peer, reply, connected, has_dht)
            && let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
        {
            debug!(%peer, "looking the peer up in the DHT");
            let query = kad.get_closest_peers(peer);
            self.reach.lookup_started(peer, query);
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
        let Some(target) = self.reach.lookup_target(&id) else { return };
        let found: Vec<Multiaddr> =
            peers.into_iter().filter(|p| p.peer_id == target).flat_map(|p| p.addrs).collect();
        let connected = self.swarm.is_connected(&target);
        if let LookupDone::Dial(peer, addrs) = self.reach.on_lookup_done(id, found, connected) {
            let opts =
                DialOpts::peer_id(peer).addresses(addrs).condition(PeerCondition::DisconnectedAndNotDialing);
            match self.swarm.dial(opts.build()) {
                // Being dialed already (Kademlia's query, say): that dial's outcome counts.
                Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => {}
                Err(err) => self.reach.on_dial_failed(peer, &err.to_string()),
            }
        }
    }

    /// What identify said, for the DHT, AutoNAT and relays.
    pub(super) fn on_identify_reach(&mut self, peer: PeerId, info: &identify::Info) {
        let lists = |name: &str| info.protocols.iter().any(|p| p.as_ref() == name);
        let speaks = Speaks {
            kad: lists(KAD_PROTOCOL.as_ref()),
            autonat: lists(AUTONAT_DIAL_REQUEST),
            relay: lists(relay::HOP_PROTOCOL_NAME.as_ref()),
            listen_addrs: &info.listen_addrs,
        };
        let connected = self.swarm.is_connected(&peer);
        let has_dht = self.swarm.behaviour().kad.is_enabled();
        let public = self.addresses.has_confirmed();
        let decisions = self.reach.on_identify(peer, speaks, connected, has_dht, public, Instant::now());
        self.apply_reach(decisions);
    }

    fn reserve(&mut self, relay: PeerId, listen: Multiaddr) {
        info!(%relay, %listen, "reserving a relayed address");
        match self.swarm.listen_on(listen) {
            Ok(id) => self.reach.on_reserving(relay, id),
            Err(err) => {
                warn!(%relay, %err, "cannot reserve");
                self.reach.on_reserve_failed(relay, Instant::now());
            }
        }
    }

    /// Time to reserve again on relays whose reservation went away, to report
    /// hole punches that did not come, or to close relayed connections that a
    /// direct one replaced.
    pub(super) fn on_reach_due(&mut self) {
        let swarm = &self.swarm;
        let peers = &self.peers;
        let decisions = self.reach.on_due(
            Instant::now(),
            |peer| swarm.is_connected(peer),
            |peer| peers.connections(peer),
        );
        self.apply_reach(decisions);
    }

    /// A listener closed: if it was a reservation, try again after the back-off.
    pub(super) fn on_listener_closed(&mut self, listener: ListenerId, reason: String) {
        let now = Instant::now();
        if let Some((relay, at)) = self.reach.on_listener_closed(listener, self.shutdown.is_draining(), now) {
            info!(%relay, %reason, retry_in = ?at.map(|at| at - Instant::now()), "reservation lost");
        }
    }

    pub(super) fn on_relay_client(&mut self, event: relay::client::Event) {
        match event {
            relay::client::Event::ReservationReqAccepted { relay_peer_id, renewal, .. } => {
                debug!(relay = %relay_peer_id, renewal, "reservation accepted");
                self.reach.on_reserved(&relay_peer_id);
            }
            event => debug!(?event, "relay client"),
        }
    }

    /// A connection is up: the policy hears of it, the snapshot counts it.
    pub(super) fn on_established_reach(&mut self, peer: PeerId) {
        self.reach.on_established(peer, &self.peers.connections(&peer), Instant::now());
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
        let decision = self.reach.on_closed(peer, self.swarm.is_connected(&peer), Instant::now());
        self.apply_reach(decision);
    }

    pub(super) fn on_dial_failed_reach(&mut self, peer: PeerId, error: &str) {
        self.reach.on_dial_failed(peer, error);
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
        match event.result {
            Ok(connection) => {
                let _ = self.reach.on_punch_ended(peer_id, Ok(()));
                let address = self.direct_addr(peer_id, connection);
                info!(peer = %peer_id, %address, "hole punched");
                self.reporter.emit(NodeEvent::HolePunched { peer_id, address });
            }
            Err(err) => {
                let reason = crate::outbound::one_line(&err.to_string());
                match self.reach.on_punch_ended(peer_id, Err(reason)) {
                    Some(decision) => self.apply_reach([decision]),
                    // Not twice: our own deadline reported it already.
                    None => debug!(peer = %peer_id, %err, "hole punch failed (reported already)"),
                }
            }
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
                let rule = self.reach.on_dialed_back(event.server, Instant::now());
                self.apply_reach([rule]);
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
        let decision = self.reach.reachability(self.addresses.has_confirmed(), decided);
        self.apply_reach(decision);
    }

    /// Tells `addresses/` whether a dial-back is required now (the rule may
    /// have changed, or lapsed: called on the address expiry tick too).
    pub(super) fn refresh_dial_back_rule(&mut self) {
        let rule = self.reach.dial_back_rule(Instant::now());
        self.apply_reach([rule]);
    }

    pub(super) fn shut_down_reach(&mut self) {
        self.reach.shut_down();
    }
}
