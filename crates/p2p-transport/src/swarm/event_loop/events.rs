//! The swarm's events, each handed to the room that owns it.

use libp2p::core::ConnectedPoint;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionError, ConnectionId, DialError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, identify, mdns};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::EventLoop;
use crate::events::NodeEvent;
use crate::gate::BanChange;
use crate::inbound::SpokenBy;
use crate::peers::{Closed, Decision};
use crate::swarm::behaviour::BehaviourEvent;

impl EventLoop {
    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        #[cfg(feature = "metrics")]
        self.record(&event);
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Opener(never)) => match never {},
            SwarmEvent::Behaviour(BehaviourEvent::Identify(event)) => self.on_identify(event),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(event)) => self.on_mdns(event),
            SwarmEvent::Behaviour(BehaviourEvent::Acceptor(SpokenBy { peer, mount, pipelined })) => {
                self.on_spoken_by(peer, mount, pipelined)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => self.on_kad(event),
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(event)) => self.on_relay_client(event),
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(event)) => self.on_dcutr(event),
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(event)) => self.on_autonat(event),
            SwarmEvent::Behaviour(BehaviourEvent::Relay(event)) => debug!(?event, "relay"),
            SwarmEvent::Behaviour(BehaviourEvent::AutonatServer(event)) => {
                debug!(client = %event.client, tested = %event.tested_addr, ok = event.result.is_ok(), "AutoNAT dial-back");
            }
            SwarmEvent::Behaviour(
                BehaviourEvent::Ping(_)
                | BehaviourEvent::Limits(_)
                | BehaviourEvent::PerIp(_)
                | BehaviourEvent::Banned(_)
                | BehaviourEvent::Streams(_),
            ) => {}
            SwarmEvent::NewListenAddr { address, .. } if crate::reach::is_relayed(&address) => {
                info!(%address, "reserved a relayed address");
                self.reporter.update(|s| s.listen_addrs.push(address.clone()));
                self.reporter.emit(NodeEvent::Reserved { address });
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.addresses.add_listener(&address);
                self.reporter.update(|s| s.listen_addrs.push(address.clone()));
                self.reporter.emit(NodeEvent::Listening { address });
            }
            SwarmEvent::ListenerClosed { listener_id, reason, .. } => {
                let reason = match reason {
                    Ok(()) => "closed".to_owned(),
                    Err(err) => crate::outbound::one_line(&err.to_string()),
                };
                self.on_listener_closed(listener_id, reason);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } if crate::reach::is_relayed(&address) => {
                self.reporter.update(|s| s.listen_addrs.retain(|a| a != &address));
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.addresses.remove_listener(&address);
                self.reporter.update(|s| s.listen_addrs.retain(|a| a != &address));
                self.reporter.emit(NodeEvent::ListenAddrExpired { address });
            }
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, .. } => {
                let remote = remote_address(&endpoint);
                for server in self.mounts.iter().filter_map(|m| m.server.as_ref()) {
                    server.connected(connection_id);
                }
                if self.peers.on_established(peer_id, connection_id, remote.clone()) {
                    self.on_first_connection(peer_id, remote);
                }
                self.on_established_reach(peer_id);
                // Last: whoever awaits `connect` then finds the peer connected everywhere.
                self.dials.on_established(connection_id, peer_id);
            }
            SwarmEvent::ConnectionClosed { peer_id, connection_id, cause, .. } => {
                self.on_connection_closed(peer_id, connection_id, cause);
            }
            SwarmEvent::OutgoingConnectionError { peer_id, connection_id, error } => {
                debug!(peer = ?peer_id, %error, "outgoing connection failed");
                self.dials.on_failed(connection_id, &error);
                // Not a failure for anyone: the peer is connected or being dialed already.
                if !matches!(error, DialError::DialPeerConditionFalse(_)) {
                    let line = crate::outbound::one_line(&error.to_string());
                    self.reporter.emit(NodeEvent::DialFailed { peer_id, error: line.clone() });
                    if let Some(peer_id) = peer_id
                        && !self.swarm.is_connected(&peer_id)
                    {
                        self.lifecycle.on_dial_failed(peer_id, Instant::now());
                        self.on_dial_failed_reach(peer_id, &line);
                    }
                }
            }
            SwarmEvent::IncomingConnection { send_back_addr, .. } => {
                // Whose it is is known after the handshake; where from, now.
                if let Some(ip) = crate::origin::ip_of(&send_back_addr) {
                    self.lifecycle.on_incoming(ip, Instant::now());
                }
            }
            SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                debug!(%send_back_addr, %error, "incoming connection failed");
            }
            _ => {}
        }
    }

    fn on_first_connection(&mut self, peer_id: PeerId, remote: Multiaddr) {
        for mount in &self.mounts {
            mount.muxes.connected(peer_id, &self.mux_parts);
        }
        self.lifecycle.on_connected(peer_id, Instant::now());
        debug!(peer = %peer_id, %remote, "connected");
        self.reporter.update(|s| {
            s.connected.insert(peer_id);
        });
        self.reporter.emit(NodeEvent::Connected { peer_id, address: remote });
    }

    fn on_connection_closed(
        &mut self,
        peer_id: PeerId,
        connection: ConnectionId,
        cause: Option<ConnectionError>,
    ) {
        for server in self.mounts.iter().filter_map(|m| m.server.as_ref()) {
            server.disconnected(&connection);
        }
        let relayed = crate::reach::is_relayed(&self.peers.remote_addr(&peer_id, connection));
        let last = self.peers.on_closed(peer_id, connection);
        self.on_closed_reach(peer_id);
        if !last {
            // A relayed connection replaced by a direct one: our pipelined
            // stream may have been on it, so the next request opens a new one
            // (on what is left) instead of failing on the dead one.
            if relayed {
                for mount in &self.mounts {
                    mount.muxes.renew(peer_id, &self.mux_parts);
                }
            }
            return; // the peer has other connections
        }
        debug!(peer = %peer_id, ?cause, "disconnected");
        for mount in &self.mounts {
            mount.muxes.disconnected(&peer_id);
        }
        self.reporter.update(|s| {
            s.connected.remove(&peer_id);
        });
        self.reporter.emit(NodeEvent::Disconnected { peer_id });
        let how = match cause {
            Some(ConnectionError::IO(_)) => Closed::Error,
            Some(ConnectionError::KeepAliveTimeout) | None => Closed::OnPurpose,
        };
        self.lifecycle.on_disconnected(peer_id, how, Instant::now());
    }

    fn on_identify(&mut self, event: identify::Event) {
        let (peer_id, info) = match event {
            identify::Event::Received { peer_id, info, .. }
            | identify::Event::Pushed { peer_id, info, .. } => (peer_id, info),
            identify::Event::Error { peer_id, error, .. } => {
                debug!(peer = %peer_id, %error, "identify failed");
                if self.peers.on_identify_failed(peer_id) {
                    debug!(peer = %peer_id, "pushing our identify to it");
                    self.swarm.behaviour_mut().identify.push(std::iter::once(peer_id));
                }
                return;
            }
            identify::Event::Sent { .. } => return,
        };
        self.on_identify_reach(peer_id, &info);
        self.observe(peer_id, info.observed_addr);
        // Each mounted protocol it lists, by either name (a peer that lists
        // only the pipelined one can still be called; either way it speaks it).
        let mut speaks = 0u64;
        for (mount, m) in self.mounts.iter().enumerate() {
            let v1 = info.protocols.contains(&m.name);
            let v2 = m.pipelined.as_ref().is_some_and(|name| info.protocols.contains(name));
            m.muxes.set_speaks_v2(&peer_id, self.pipelining && v2);
            if v1 || v2 {
                speaks |= 1 << mount;
            }
        }
        self.lifecycle.on_identify(peer_id, speaks != 0, Instant::now());
        let joined = self.peers.on_identify(peer_id, speaks);
        self.report_capable(peer_id, joined);
    }

    /// A peer opened a stream of mounted protocol `mount` to us (its
    /// pipelined name if `pipelined`): it speaks it. Taken only while
    /// identify has said nothing of it (see `PeerTable::on_spoken_by`).
    fn on_spoken_by(&mut self, peer_id: PeerId, mount: usize, pipelined: bool) {
        if self.peers.speaks(&peer_id, mount).is_some() {
            return; // identify has spoken
        }
        if pipelined {
            self.mounts[mount].muxes.set_speaks_v2(&peer_id, self.pipelining);
        }
        self.lifecycle.on_identify(peer_id, true, Instant::now());
        if self.peers.on_spoken_by(peer_id, mount) {
            self.report_capable(peer_id, 1 << mount);
        }
    }

    /// `NodeEvent::Capable` for each protocol (a bit of `joined`) whose set the peer joined.
    fn report_capable(&self, peer_id: PeerId, joined: u64) {
        for (mount, m) in self.mounts.iter().enumerate() {
            if joined & (1 << mount) != 0 {
                self.reporter.emit(NodeEvent::Capable { peer_id, protocol: m.label });
            }
        }
    }

    fn on_mdns(&mut self, event: mdns::Event) {
        match event {
            mdns::Event::Discovered(found) => {
                let local = *self.swarm.local_peer_id();
                let mut by_peer: std::collections::BTreeMap<PeerId, Vec<Multiaddr>> = Default::default();
                for (peer, addr) in found.into_iter().filter(|(peer, _)| *peer != local) {
                    by_peer.entry(peer).or_default().push(addr);
                }
                for (peer_id, addresses) in by_peer {
                    self.on_discovered(peer_id, addresses);
                }
            }
            mdns::Event::Expired(lost) => {
                for (peer_id, address) in lost {
                    if let Some(decision) = self.lifecycle.on_expired(peer_id, &address) {
                        self.apply(decision);
                    }
                }
            }
        }
    }

    /// mDNS (either listener) found `addresses` of `peer_id`.
    pub(super) fn on_discovered(&mut self, peer_id: PeerId, addresses: Vec<Multiaddr>) {
        if peer_id == *self.swarm.local_peer_id() {
            return;
        }
        let connected = self.swarm.is_connected(&peer_id);
        for decision in self.lifecycle.on_discovered(peer_id, addresses, connected, Instant::now()) {
            self.apply(decision);
        }
    }

    /// Carries out what the lifecycle policy decided.
    pub(super) fn apply(&mut self, decision: Decision) {
        match decision {
            Decision::Discovered { peer_id, addresses } => {
                self.reporter.emit(NodeEvent::Discovered { peer_id, addresses });
            }
            Decision::Expired { peer_id } => self.reporter.emit(NodeEvent::Expired { peer_id }),
            Decision::Dial { peer_id, addresses } => self.dial_discovered(peer_id, addresses),
        }
    }

    /// Dials a peer the lifecycle decided to dial, and tells it at once when
    /// the swarm refuses: the lifecycle owes every dial an outcome, and a
    /// refused dial has no other (no event follows it).
    fn dial_discovered(&mut self, peer_id: PeerId, addresses: Vec<Multiaddr>) {
        if self.shutdown.is_draining() {
            return;
        }
        if self.bans.is_banned(&peer_id) {
            // Tried again after the back-off: the ban may be over by then.
            self.lifecycle.on_dial_failed(peer_id, Instant::now());
            return;
        }
        // One dial per peer, its addresses tried one at a time.
        let opts = DialOpts::peer_id(peer_id)
            .addresses(addresses)
            .override_dial_concurrency_factor(std::num::NonZeroU8::MIN)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        match self.swarm.dial(opts) {
            Ok(()) => debug!(peer = %peer_id, "dialing a discovered peer"),
            // Connected meanwhile: the lifecycle may not have heard of it.
            Err(DialError::DialPeerConditionFalse(_)) if self.swarm.is_connected(&peer_id) => {
                self.lifecycle.on_connected(peer_id, Instant::now());
            }
            // Someone else's dial of the peer is under way (Kademlia's, the
            // user's): its outcome is the peer's, and reaches the lifecycle.
            Err(DialError::DialPeerConditionFalse(_)) => {
                debug!(peer = %peer_id, "a dial of the peer is already under way");
            }
            Err(err) => {
                let line = crate::outbound::one_line(&err.to_string());
                info!(peer = %peer_id, error = %line, "dial of a discovered peer refused");
                self.reporter.emit(NodeEvent::DialFailed { peer_id: Some(peer_id), error: line });
                self.lifecycle.on_dial_failed(peer_id, Instant::now());
            }
        }
    }

    /// The lifecycle's counts into the snapshot and the metrics, when they
    /// changed: two comparisons per wake-up, no scan.
    pub(super) fn report_lifecycle(&mut self) {
        let health = self.lifecycle.health();
        if health == self.lifecycle_health {
            return;
        }
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.metrics {
            metrics.record_lifecycle(&self.lifecycle_health, &health);
        }
        self.lifecycle_health = health;
        self.reporter.update(|s| s.lifecycle = health);
    }

    pub(super) fn apply_ban(&mut self, change: BanChange) {
        match change {
            BanChange::Banned { peer, duration } => {
                warn!(%peer, ?duration, "banned: refused too often");
                // Closes its connections, and refuses new ones until unblocked.
                self.swarm.behaviour_mut().banned.block_peer(peer);
                #[cfg(feature = "metrics")]
                if let Some(metrics) = &self.metrics {
                    metrics.record_ban();
                }
                self.reporter.emit(NodeEvent::Banned { peer_id: peer, duration });
            }
            BanChange::Unbanned { peer } => {
                info!(%peer, "ban over");
                self.swarm.behaviour_mut().banned.unblock_peer(peer);
                self.reporter.emit(NodeEvent::Unbanned { peer_id: peer });
            }
        }
    }

    /// `peer` says it sees us at `observed`: a candidate for our external addresses.
    /// What counts is where the peer connects from, not who it says it is.
    pub(super) fn observe(&mut self, peer: PeerId, observed: Multiaddr) {
        if let Some(observer) = self.peers.any_remote_addr(&peer) {
            self.addresses.observe(&mut self.swarm, &observer, observed);
            self.update_reachability(false);
        }
    }

    #[cfg(feature = "metrics")]
    fn record(&self, event: &SwarmEvent<BehaviourEvent>) {
        use libp2p::metrics::Recorder;
        let Some(metrics) = self.metrics.as_ref().map(|m| &m.libp2p) else { return };
        metrics.record(event);
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => metrics.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => metrics.record(e),
            _ => {}
        }
    }
}

/// The connection's remote address; for an inbound relayed connection
/// (whose send-back address is only `/p2p/<peer>`), the relay's circuit
/// address and the peer, so that relayed connections always show `/p2p-circuit`.
fn remote_address(endpoint: &ConnectedPoint) -> Multiaddr {
    match endpoint {
        ConnectedPoint::Dialer { address, .. } => address.clone(),
        ConnectedPoint::Listener { local_addr, send_back_addr }
            if endpoint.is_relayed() && !crate::reach::is_relayed(send_back_addr) =>
        {
            local_addr.iter().chain(send_back_addr.iter()).collect()
        }
        ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr.clone(),
    }
}
