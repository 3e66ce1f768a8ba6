//! The event loop: the only owner of the `Swarm`. It dispatches; the
//! concerns decide.
//!
//! **Architecture Invariant:** this task never awaits a handler. An inbound
//! request is handed to its peer's service in a spawned task; the answer
//! comes back over a bounded channel and is sent from here.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionError, ConnectionId, DialError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, mdns, request_response};
use p2p_protocol::{GreetResult, PROTOCOL_NAME, v2};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::Shared;
use super::behaviour::{Behaviour, BehaviourEvent};
use crate::NodeConfig;
use crate::addresses::{AddressBook, Due};
use crate::command::Command;
use crate::events::{NodeEvent, Reporter};
use crate::gate::{BanChange, Bans};
use crate::inbound::{InboundPeers, InboundV1, MakePeerService};
use crate::outbound::{Dials, Mux, OutboundPeers, OutboundV1};
use crate::peers::{Closed, Decision, Lifecycle, PeerTable};
use crate::shutdown::Shutdown;
use crate::wire::InboundRequest;

/// At most this many queued commands are taken per wake-up, so the swarm
/// itself is still polled often under load.
const BATCH: usize = 64;

pub(super) struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    /// False once every handle is gone (the channel then only says `None`).
    commands_open: bool,
    reporter: Reporter,
    peers: PeerTable,
    lifecycle: Lifecycle,
    inbound: InboundV1,
    inbound_peers: Arc<InboundPeers>,
    outbound: OutboundV1,
    outbound_peers: Arc<OutboundPeers>,
    dials: Dials,
    addresses: AddressBook,
    shutdown: Shutdown,
    listeners: Vec<ListenerId>,
    streams_control: libp2p_stream::Control,
    /// Serve and use greet v2.
    pipelining: bool,
    request_timeout: Duration,
    bans: Bans,
    refusals: mpsc::Receiver<PeerId>,
    #[cfg(feature = "metrics")]
    metrics: Option<crate::NodeMetrics>,
}

impl EventLoop {
    pub(super) fn new(
        mut swarm: Swarm<Behaviour>,
        config: &NodeConfig,
        listeners: Vec<ListenerId>,
        make: MakePeerService,
        inbound_peers: Arc<InboundPeers>,
        Shared { commands, reporter, greet_peers, outbound_peers, refusals: (noted, refusals) }: Shared,
        #[cfg(feature = "metrics")] metrics: Option<crate::NodeMetrics>,
    ) -> Self {
        let addresses = AddressBook::new(config.external.clone(), &mut swarm, reporter.clone());
        let streams_control = swarm.behaviour().streams.new_control();
        Self {
            swarm,
            commands,
            commands_open: true,
            reporter,
            peers: PeerTable::new(greet_peers),
            lifecycle: Lifecycle::default(),
            inbound: InboundV1::new(make, Arc::clone(&inbound_peers), noted),
            inbound_peers,
            outbound: OutboundV1::default(),
            outbound_peers,
            dials: Dials::default(),
            addresses,
            shutdown: Shutdown::new(config.shutdown_grace),
            listeners,
            streams_control,
            pipelining: config.greet_v2,
            request_timeout: config.request_timeout,
            bans: Bans::new(config.bans.clone()),
            refusals,
            #[cfg(feature = "metrics")]
            metrics,
        }
    }

    pub(super) fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    pub(super) async fn run(mut self) {
        loop {
            let next_redial = self.lifecycle.next_due();
            let next_unban = self.bans.next_due();
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(answer) = self.inbound.next_answer() => {
                    self.inbound.on_answers(&mut self.swarm.behaviour_mut().greet, answer);
                }
                command = self.commands.recv(), if self.commands_open => match command {
                    Some(command) => {
                        self.on_command(command);
                        for _ in 0..BATCH {
                            let Ok(command) = self.commands.try_recv() else { break };
                            self.on_command(command);
                        }
                    }
                    // Every handle is gone: nobody can use the node any more.
                    None => {
                        self.commands_open = false;
                        self.begin_shutdown(None);
                    }
                },
                due = self.addresses.next_due() => match due {
                    Due::Observation(peer, observed) => self.observe(peer, observed),
                    Due::Expiry => self.addresses.expire(&mut self.swarm),
                },
                () = sleep_until(next_redial), if next_redial.is_some() => {
                    for decision in self.lifecycle.due(Instant::now()) {
                        self.apply(decision);
                    }
                }
                Some(peer) = self.refusals.recv() => {
                    if let Some(change) = self.bans.on_refused(peer, Instant::now()) {
                        self.apply_ban(change);
                    }
                }
                () = sleep_until(next_unban), if next_unban.is_some() => {
                    for change in self.bans.due(Instant::now()) {
                        self.apply_ban(change);
                    }
                }
                // Wakes the loop when the last v2 responder has finished draining.
                () = self.shutdown.streams_done(), if self.shutdown.is_draining() => {}
                () = self.shutdown.grace_over() => {
                    warn!(in_flight = self.inbound.in_flight(), "shutdown grace period over; dropping unanswered requests");
                    break;
                }
            }
            if self.shutdown.drained(self.inbound.is_idle()) {
                break;
            }
        }
        self.inbound_peers.clear();
        self.outbound_peers.clear();
        self.peers.clear();
        self.shutdown.finish(&mut self.swarm, self.listeners).await;
    }

    // ---- commands -------------------------------------------------------

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Shutdown { reply } => self.begin_shutdown(Some(reply)),
            command if self.shutdown.is_draining() => refuse(command),
            Command::Request { peer, request, reply } => {
                let speaks = self.peers.speaks_greet(&peer);
                self.outbound.send(&mut self.swarm.behaviour_mut().greet, peer, request, reply, speaks);
            }
            Command::Dial { address, reply } => {
                let _ = reply.send(self.dials.dial(&mut self.swarm, address));
            }
            Command::Connect { address, reply } => self.dials.connect(&mut self.swarm, address, reply),
        }
    }

    fn begin_shutdown(&mut self, reply: Option<tokio::sync::oneshot::Sender<()>>) {
        if self.shutdown.begin(reply) {
            info!(in_flight = self.inbound.in_flight(), "shutting down");
            // Listeners stay up while draining; new requests are answered 503.
            self.outbound.shut_down();
            self.dials.shut_down();
        }
    }

    // ---- swarm events ---------------------------------------------------

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        #[cfg(feature = "metrics")]
        self.record(&event);
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Greet(event)) => self.on_greet(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(event)) => self.on_identify(event),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(event)) => self.on_mdns(event),
            SwarmEvent::Behaviour(
                BehaviourEvent::Ping(_)
                | BehaviourEvent::Limits(_)
                | BehaviourEvent::PerIp(_)
                | BehaviourEvent::Banned(_)
                | BehaviourEvent::Streams(_)
                | BehaviourEvent::Pipelined(_),
            ) => {}
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.addresses.add_listener(&address);
                self.reporter.update(|s| s.listen_addrs.push(address.clone()));
                self.reporter.emit(NodeEvent::Listening { address });
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.addresses.remove_listener(&address);
                self.reporter.update(|s| s.listen_addrs.retain(|a| a != &address));
                self.reporter.emit(NodeEvent::ListenAddrExpired { address });
            }
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, .. } => {
                let remote = remote_address(&endpoint);
                self.inbound_peers.connected(connection_id);
                if self.peers.on_established(peer_id, connection_id, remote.clone()) {
                    self.on_first_connection(peer_id, remote);
                }
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
                    self.reporter.emit(NodeEvent::DialFailed { peer_id, error: line });
                    if let Some(peer_id) = peer_id
                        && !self.swarm.is_connected(&peer_id)
                    {
                        self.lifecycle.on_dial_failed(peer_id, Instant::now());
                    }
                }
            }
            SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                debug!(%send_back_addr, %error, "incoming connection failed");
            }
            _ => {}
        }
    }

    fn on_first_connection(&mut self, peer_id: PeerId, remote: Multiaddr) {
        let mux = Mux::new(
            peer_id,
            self.streams_control.clone(),
            self.request_timeout,
            self.addresses.observations(),
        );
        self.outbound_peers.connected(peer_id, mux);
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
        self.inbound_peers.disconnected(&connection);
        if !self.peers.on_closed(peer_id, connection) {
            return; // the peer has other connections
        }
        debug!(peer = %peer_id, ?cause, "disconnected");
        self.outbound_peers.disconnected(&peer_id);
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

    fn on_greet(&mut self, event: request_response::Event<InboundRequest, GreetResult>) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                connection_id,
                message: Message::Request { request_id, request, channel },
            } => {
                let remote = self.peers.remote_addr(&peer, connection_id);
                let draining = self.shutdown.is_draining();
                let greet = &mut self.swarm.behaviour_mut().greet;
                self.inbound.on_request(
                    greet,
                    peer,
                    connection_id,
                    remote,
                    request_id,
                    request,
                    channel,
                    draining,
                );
            }
            Event::Message { peer, message: Message::Response { request_id, response }, .. } => {
                if let Some(observed) = self.outbound.on_response(request_id, response) {
                    self.observe(peer, observed);
                }
            }
            Event::OutboundFailure { peer, request_id, error, .. } => {
                self.outbound.on_failure(peer, request_id, error);
            }
            Event::InboundFailure { peer, request_id, error, .. } => {
                debug!(%peer, %error, "inbound greet failed");
                self.inbound.on_done(request_id);
            }
            Event::ResponseSent { request_id, .. } => self.inbound.on_done(request_id),
        }
    }

    fn on_identify(&mut self, event: identify::Event) {
        let (peer_id, info) = match event {
            identify::Event::Received { peer_id, info, .. }
            | identify::Event::Pushed { peer_id, info, .. } => (peer_id, info),
            identify::Event::Error { peer_id, error, .. } => {
                debug!(peer = %peer_id, %error, "identify failed");
                return;
            }
            identify::Event::Sent { .. } => return,
        };
        self.observe(peer_id, info.observed_addr);
        let speaks_v1 = info.protocols.iter().any(|p| p.as_ref() == PROTOCOL_NAME);
        let speaks_v2 = info.protocols.iter().any(|p| p.as_ref() == v2::PROTOCOL_NAME);
        // A node that speaks 2.0.0 also speaks 1.0.0; either way it can be greeted.
        let speaks = speaks_v1 || speaks_v2;
        self.outbound_peers.set_speaks_v2(&peer_id, self.pipelining && speaks_v2);
        self.lifecycle.on_identify(peer_id, speaks);
        if self.peers.on_identify(peer_id, speaks) {
            self.reporter.emit(NodeEvent::GreetCapable { peer_id });
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
                    let connected = self.swarm.is_connected(&peer_id);
                    for decision in
                        self.lifecycle.on_discovered(peer_id, addresses, connected, Instant::now())
                    {
                        self.apply(decision);
                    }
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

    /// Carries out what the lifecycle policy decided.
    fn apply(&mut self, decision: Decision) {
        match decision {
            Decision::Discovered { peer_id, addresses } => {
                self.reporter.emit(NodeEvent::Discovered { peer_id, addresses });
            }
            Decision::Expired { peer_id } => self.reporter.emit(NodeEvent::Expired { peer_id }),
            Decision::Dial { peer_id, addresses } => {
                if self.shutdown.is_draining() || self.bans.is_banned(&peer_id) {
                    return;
                }
                // One dial per peer, its addresses tried one at a time.
                let opts = DialOpts::peer_id(peer_id)
                    .addresses(addresses)
                    .override_dial_concurrency_factor(std::num::NonZeroU8::MIN)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build();
                if let Err(err) = self.swarm.dial(opts) {
                    debug!(peer = %peer_id, %err, "dial of a discovered peer refused");
                }
            }
        }
    }

    fn apply_ban(&mut self, change: BanChange) {
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
    fn observe(&mut self, peer: PeerId, observed: Multiaddr) {
        if let Some(observer) = self.peers.any_remote_addr(&peer) {
            self.addresses.observe(&mut self.swarm, &observer, observed);
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

/// What a draining node answers to every command.
fn refuse(command: Command) {
    use crate::RequestError::Shutdown;
    match command {
        Command::Request { reply, .. } => drop(reply.send(Err(Shutdown))),
        Command::Dial { reply, .. } => drop(reply.send(Err(Shutdown))),
        Command::Connect { reply, .. } => drop(reply.send(Err(Shutdown))),
        // Never refused: `on_command` adds its caller to the drain's waiters.
        Command::Shutdown { .. } => {}
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn remote_address(endpoint: &ConnectedPoint) -> Multiaddr {
    match endpoint {
        ConnectedPoint::Dialer { address, .. } => address.clone(),
        ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr.clone(),
    }
}
