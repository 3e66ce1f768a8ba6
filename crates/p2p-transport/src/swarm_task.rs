//! The event loop: the only owner of the `Swarm`.
//!
//! **Architecture Invariant:** this task never awaits a handler. An inbound
//! request is handed to its peer's service in a spawned task; the answer
//! comes back over a bounded channel and is sent from here. A slow or failing
//! handler delays only its own request.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::{NonZeroU8, NonZeroU32};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, InboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, connection_limits, identify, mdns, noise, ping, tcp, yamux,
};
use p2p_protocol::{ErrorCode, GreetRequest, GreetResponse, GreetResult, PROTOCOL_NAME, RemoteError, v2};
use p2p_service::PeerContext;
use tokio::sync::{OnceCell, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::answer;
use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::codec::{GreetCodec, InboundRequest};
use crate::discover::PeerSet;
use crate::node::{MakePeerService, NodeBuilder, NodeConfig, PeerService, Snapshot};
use crate::pipelined::{self, Acceptor, Mux};
use crate::registry::{PeerRegistry, SharedPeer};
use crate::{BuildError, ExternalAddrChange, ExternalAddresses, NodeEvent, RequestError};

/// The channels between the swarm task and the node's handles.
pub(crate) struct Channels {
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) events: mpsc::Sender<NodeEvent>,
    pub(crate) greet_peers: watch::Sender<PeerSet>,
}

/// What handles ask of the swarm task.
#[derive(Debug)]
pub(crate) enum Command {
    Request {
        peer: PeerId,
        request: GreetRequest,
        reply: oneshot::Sender<Result<GreetResponse, RequestError>>,
    },
    Dial {
        address: Multiaddr,
        reply: oneshot::Sender<Result<(), RequestError>>,
    },
    Connect {
        address: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, RequestError>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// A handler's answer on its way back to the swarm task.
struct Answer {
    request_id: InboundRequestId,
    channel: ResponseChannel<GreetResult>,
    result: GreetResult,
}

/// Answers in flight back to the swarm task. Spawned handler tasks wait for
/// room here; the swarm task only ever receives from it.
const ANSWER_CAPACITY: usize = 1024;

/// At most this many queued answers or commands are taken per wake-up, so
/// the swarm itself is still polled often under load.
const BATCH: usize = 64;

/// The first and the longest wait before redialing a lost mDNS peer.
const REDIAL_MIN: Duration = Duration::from_secs(1);
const REDIAL_MAX: Duration = Duration::from_secs(4);

/// When to dial a lost mDNS peer again.
struct Redial {
    at: Instant,
    backoff: Duration,
}

/// Observed addresses from v2 answers waiting for the swarm task; more are dropped.
const OBSERVATION_CAPACITY: usize = 256;

/// The identify protocol version every p2p-node announces.
pub(crate) const IDENTIFY_PROTOCOL: &str = "/p2p-node/1.0.0";

/// What the swarm task knows about one connected peer.
struct PeerState {
    /// Remote address of each established connection.
    connections: HashMap<ConnectionId, Multiaddr>,
    /// The peer's inbound service, made on its first request. Dropped with
    /// this state when the last connection closes.
    service: Arc<OnceCell<PeerService>>,
    /// What identify said: `None` until it has spoken.
    speaks_greet: Option<bool>,
}

struct SwarmTask {
    swarm: Swarm<Behaviour>,
    /// Shared with the pipelined (v2) tasks, which never go through this one.
    registry: Arc<PeerRegistry>,
    streams_control: libp2p_stream::Control,
    /// Serve and use greet v2.
    pipelining: bool,
    request_timeout: Duration,
    /// Observed addresses from v2 answers, which bypass this task.
    observations_tx: mpsc::Sender<(PeerId, Multiaddr)>,
    observations: mpsc::Receiver<(PeerId, Multiaddr)>,
    /// Tells the v2 responders to stop reading; they finish what they read.
    stop_streams: watch::Sender<bool>,
    /// The v2 responders, so that shutdown can wait for them.
    stream_tasks: TaskTracker,
    #[cfg(feature = "metrics")]
    metrics: Option<Arc<libp2p::metrics::Metrics>>,
    make: MakePeerService,
    commands: mpsc::Receiver<Command>,
    answers_tx: mpsc::Sender<Answer>,
    answers: mpsc::Receiver<Answer>,
    events: mpsc::Sender<NodeEvent>,
    greet_peers: watch::Sender<PeerSet>,
    snapshot: Arc<Mutex<Snapshot>>,
    peers: HashMap<PeerId, PeerState>,
    pending:
        HashMap<request_response::OutboundRequestId, oneshot::Sender<Result<GreetResponse, RequestError>>>,
    /// `Node::connect` calls waiting for their dial.
    connecting: HashMap<ConnectionId, oneshot::Sender<Result<PeerId, RequestError>>>,
    /// Peers mDNS knows, with their addresses (QUIC first).
    mdns_peers: HashMap<PeerId, Vec<Multiaddr>>,
    /// mDNS peers to dial again, and when.
    redials: HashMap<PeerId, Redial>,
    external: ExternalAddresses,
    external_ttl: Duration,
    listeners: Vec<ListenerId>,
    /// Inbound requests handed to a handler and not yet answered.
    in_flight: usize,
    /// Answers handed to libp2p and not yet written to their stream.
    unsent: HashSet<InboundRequestId>,
    shutdown_grace: Duration,
    /// Set once shutdown began: the instant the drain gives up.
    drain_deadline: Option<Instant>,
    shutdown_waiters: Vec<oneshot::Sender<()>>,
}

/// Builds the swarm, starts listening, and spawns the task. Returns our PeerId.
pub(crate) fn spawn(
    config: NodeBuilder,
    make: MakePeerService,
    Channels { commands, events, greet_peers }: Channels,
    snapshot: Arc<Mutex<Snapshot>>,
    registry: Arc<PeerRegistry>,
) -> Result<PeerId, BuildError> {
    let keypair = config.keypair.clone().unwrap_or_else(Keypair::generate_ed25519);
    let local_peer_id = keypair.public().to_peer_id();
    let (acceptor, incoming) = Acceptor::new();
    let acceptor = config.config.greet_v2.then_some(acceptor);
    let mut swarm = build_swarm(&config.config, keypair, acceptor)?;
    #[cfg(feature = "metrics")]
    let metrics = config.metrics.as_ref().map(|m| Arc::clone(&m.libp2p));
    let config = config.config;
    let listen_addrs = config.listen_addrs.clone();
    let mut listeners = Vec::new();
    for addr in listen_addrs {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|err| BuildError::Listen { addr, reason: err.to_string() })?;
        listeners.push(id);
    }

    let external = ExternalAddresses::new(config.external.clone());
    for addr in external.confirmed() {
        swarm.add_external_address(addr.clone());
    }
    snapshot.lock().expect("snapshot lock").external_addrs = external.confirmed().cloned().collect();

    let streams_control = swarm.behaviour().streams.new_control();
    let (stop_streams, streams_stopped) = watch::channel(false);
    let stream_tasks = TaskTracker::new();
    if config.greet_v2 {
        tokio::spawn(pipelined::accept_loop(
            incoming,
            Arc::clone(&registry),
            Arc::clone(&make),
            config.max_in_flight_per_stream,
            streams_stopped,
            stream_tasks.clone(),
        ));
    }
    let (observations_tx, observations) = mpsc::channel(OBSERVATION_CAPACITY);

    let (answers_tx, answers) = mpsc::channel(ANSWER_CAPACITY);
    let task = SwarmTask {
        swarm,
        registry,
        streams_control,
        pipelining: config.greet_v2,
        request_timeout: config.request_timeout,
        observations_tx,
        observations,
        stop_streams,
        stream_tasks,
        #[cfg(feature = "metrics")]
        metrics,
        make,
        commands,
        answers_tx,
        answers,
        events,
        greet_peers,
        snapshot,
        peers: HashMap::new(),
        pending: HashMap::new(),
        connecting: HashMap::new(),
        mdns_peers: HashMap::new(),
        redials: HashMap::new(),
        external,
        external_ttl: config.external.ttl,
        listeners,
        in_flight: 0,
        unsent: HashSet::new(),
        shutdown_grace: config.shutdown_grace,
        drain_deadline: None,
        shutdown_waiters: Vec::new(),
    };
    tokio::spawn(task.run());
    Ok(local_peer_id)
}

fn build_swarm(
    config: &NodeConfig,
    keypair: Keypair,
    acceptor: Option<Acceptor>,
) -> Result<Swarm<Behaviour>, BuildError> {
    let local_peer_id = keypair.public().to_peer_id();
    let mdns = if config.mdns {
        let mdns_config = mdns::Config {
            ttl: Duration::from_secs(60),
            query_interval: Duration::from_secs(10),
            ..Default::default()
        };
        Some(mdns::tokio::Behaviour::new(mdns_config, local_peer_id).map_err(BuildError::Mdns)?)
    } else {
        None
    };
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(config.max_connections)
        .with_max_established_per_peer(config.max_connections_per_peer);
    let greet_config = request_response::Config::default()
        .with_request_timeout(config.request_timeout)
        .with_max_concurrent_streams(config.max_concurrent_streams);
    let idle_timeout = config.idle_timeout;

    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|err| BuildError::Transport(err.to_string()))?
        .with_quic()
        .with_behaviour(|key| Behaviour {
            limits: connection_limits::Behaviour::new(limits),
            greet: request_response::Behaviour::with_codec(
                GreetCodec,
                [(StreamProtocol::new(PROTOCOL_NAME), ProtocolSupport::Full)],
                greet_config,
            ),
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), key.public())
                    .with_agent_version(format!("p2p-node/{}", env!("CARGO_PKG_VERSION"))),
            ),
            ping: ping::Behaviour::default(),
            streams: libp2p_stream::Behaviour::new(),
            pipelined: Toggle::from(acceptor),
            mdns: Toggle::from(mdns),
        })
        .map_err(|err| BuildError::Transport(err.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle_timeout))
        .build();
    Ok(swarm)
}

impl SwarmTask {
    async fn run(mut self) {
        let tick = (self.external_ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
        let mut expiry = tokio::time::interval(tick);
        expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut redial_tick = tokio::time::interval(REDIAL_MIN / 2);
        redial_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let far_future = Instant::now() + Duration::from_secs(86_400 * 365);
        let stream_tasks = self.stream_tasks.clone();

        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(answer) = self.answers.recv() => {
                    self.on_answer(answer);
                    // Under load answers arrive in bursts: take what is ready
                    // now rather than one per wake-up of the whole loop.
                    for _ in 0..BATCH {
                        let Ok(answer) = self.answers.try_recv() else { break };
                        self.on_answer(answer);
                    }
                }
                command = self.commands.recv() => match command {
                    Some(command) => {
                        self.on_command(command);
                        for _ in 0..BATCH {
                            let Ok(command) = self.commands.try_recv() else { break };
                            self.on_command(command);
                        }
                    }
                    // Every handle is gone: nobody can use the node any more.
                    None => self.begin_shutdown(None),
                },
                Some((peer, observed)) = self.observations.recv() => self.observe_external(peer, observed),
                _ = expiry.tick() => self.expire_external(),
                _ = redial_tick.tick(), if !self.redials.is_empty() => self.redial_due(),
                // Wakes the loop when the last v2 responder has finished draining.
                _ = stream_tasks.wait(), if self.drain_deadline.is_some() => {}
                _ = tokio::time::sleep_until(self.drain_deadline.unwrap_or(far_future)),
                    if self.drain_deadline.is_some() => {
                    warn!(in_flight = self.in_flight, "shutdown grace period over; dropping unanswered requests");
                    break;
                }
            }
            if self.drain_deadline.is_some()
                && self.in_flight == 0
                && self.unsent.is_empty()
                && self.stream_tasks.is_empty()
            {
                break;
            }
        }
        self.finish().await;
    }

    // ---- commands -------------------------------------------------------

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Request { reply, .. } if self.drain_deadline.is_some() => {
                let _ = reply.send(Err(RequestError::Shutdown));
            }
            Command::Request { peer, request, reply } => {
                if reply.is_closed() {
                    return; // the caller gave up before we got to it
                }
                if self.peers.get(&peer).is_some_and(|p| p.speaks_greet == Some(false)) {
                    let _ = reply.send(Err(RequestError::UnsupportedProtocol));
                    return;
                }
                let id = self.swarm.behaviour_mut().greet.send_request(&peer, Ok(request));
                self.pending.insert(id, reply);
            }
            Command::Dial { reply, .. } if self.drain_deadline.is_some() => {
                let _ = reply.send(Err(RequestError::Shutdown));
            }
            Command::Dial { address, reply } => {
                let opts = match address.iter().last() {
                    Some(Protocol::P2p(peer)) => DialOpts::peer_id(peer)
                        .addresses(vec![address.clone()])
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build(),
                    _ => DialOpts::unknown_peer_id().address(address.clone()).build(),
                };
                let result = self.swarm.dial(opts).or_else(|err| match err {
                    // Already connected or dialing: that is what the caller wanted.
                    libp2p::swarm::DialError::DialPeerConditionFalse(_) => Ok(()),
                    err => {
                        debug!(%address, %err, "dial refused");
                        Err(RequestError::Dial)
                    }
                });
                let _ = reply.send(result);
            }
            Command::Connect { reply, .. } if self.drain_deadline.is_some() => {
                let _ = reply.send(Err(RequestError::Shutdown));
            }
            Command::Connect { address, reply } => self.connect(address, reply),
            Command::Shutdown { reply } => self.begin_shutdown(Some(reply)),
        }
    }

    /// Dials `address`; `reply` hears of the connection (or the failure) of this very dial.
    fn connect(&mut self, address: Multiaddr, reply: oneshot::Sender<Result<PeerId, RequestError>>) {
        let opts = match address.iter().last() {
            Some(Protocol::P2p(peer)) if self.swarm.is_connected(&peer) => {
                let _ = reply.send(Ok(peer));
                return;
            }
            Some(Protocol::P2p(peer)) => DialOpts::peer_id(peer)
                .addresses(vec![address.clone()])
                .condition(PeerCondition::Always)
                .build(),
            _ => DialOpts::unknown_peer_id().address(address.clone()).build(),
        };
        let connection = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.connecting.insert(connection, reply);
            }
            Err(err) => {
                let _ = reply.send(Err(RequestError::Unreachable(one_line(&err.to_string()))));
            }
        }
    }

    // ---- swarm events ---------------------------------------------------

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.metrics {
            use libp2p::metrics::Recorder;
            metrics.record(&event);
            match &event {
                SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => metrics.record(e),
                SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => metrics.record(e),
                _ => {}
            }
        }
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Greet(event)) => self.on_greet(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(event)) => self.on_identify(event),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(event)) => self.on_mdns(event),
            SwarmEvent::Behaviour(
                BehaviourEvent::Ping(_)
                | BehaviourEvent::Limits(_)
                | BehaviourEvent::Streams(_)
                | BehaviourEvent::Pipelined(_),
            ) => {}
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.snapshot().listen_addrs.push(address.clone());
                self.emit(NodeEvent::Listening { address });
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.snapshot().listen_addrs.retain(|a| a != &address);
                self.emit(NodeEvent::ListenAddrExpired { address });
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, connection_id, endpoint, num_established, ..
            } => {
                if let Some(reply) = self.connecting.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                let remote = remote_address(&endpoint);
                let state = self.peers.entry(peer_id).or_insert_with(|| PeerState {
                    connections: HashMap::new(),
                    service: Arc::new(OnceCell::new()),
                    speaks_greet: None,
                });
                state.connections.insert(connection_id, remote.clone());
                if num_established == NonZeroU32::MIN {
                    self.redials.remove(&peer_id);
                    let mux = Mux::new(
                        peer_id,
                        self.streams_control.clone(),
                        self.request_timeout,
                        self.observations_tx.clone(),
                    );
                    self.registry.insert(
                        peer_id,
                        SharedPeer {
                            service: Arc::clone(&state.service),
                            remote_addr: remote.clone(),
                            mux: Arc::new(mux),
                            speaks_v2: false,
                        },
                    );
                    debug!(peer = %peer_id, %remote, "connected");
                    self.snapshot().connected.insert(peer_id);
                    self.emit(NodeEvent::Connected { peer_id, address: remote });
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, connection_id, num_established, cause, .. } => {
                if let Some(state) = self.peers.get_mut(&peer_id) {
                    state.connections.remove(&connection_id);
                }
                if num_established == 0 {
                    debug!(peer = %peer_id, ?cause, "disconnected");
                    // Drops the peer's service (and its rate-limit state) once
                    // the requests still holding it finish.
                    self.peers.remove(&peer_id);
                    self.registry.remove(&peer_id);
                    self.set_greet_capable(peer_id, false);
                    self.snapshot().connected.remove(&peer_id);
                    self.emit(NodeEvent::Disconnected { peer_id });
                    self.schedule_redial(peer_id);
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, connection_id, error } => {
                if let Some(reply) = self.connecting.remove(&connection_id) {
                    let _ = reply.send(Err(RequestError::Unreachable(one_line(&error.to_string()))));
                }
                debug!(peer = ?peer_id, %error, "outgoing connection failed");
                // Not a failure for anyone: the peer is connected or being dialed already.
                if !matches!(error, libp2p::swarm::DialError::DialPeerConditionFalse(_)) {
                    self.emit(NodeEvent::DialFailed { peer_id, error: error.to_string() });
                    if let Some(peer_id) = peer_id
                        && !self.swarm.is_connected(&peer_id)
                    {
                        self.schedule_redial(peer_id);
                    }
                }
            }
            SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                debug!(%send_back_addr, %error, "incoming connection failed");
            }
            _ => {}
        }
    }

    fn on_greet(&mut self, event: request_response::Event<InboundRequest, GreetResult>) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                connection_id,
                message: Message::Request { request_id, request, channel },
            } => {
                self.on_inbound(peer, connection_id, request_id, request, channel);
            }
            Event::Message { peer, message: Message::Response { request_id, response }, .. } => {
                let Some(reply) = self.pending.remove(&request_id) else { return };
                let result = match response {
                    Ok(response) => {
                        self.observe_external(peer, response.observed_addr.clone());
                        Ok(response)
                    }
                    Err(remote) => Err(RequestError::Remote(remote)),
                };
                let _ = reply.send(result);
            }
            Event::OutboundFailure { peer, request_id, error, .. } => {
                debug!(%peer, %error, "outbound greet failed");
                if let Some(reply) = self.pending.remove(&request_id) {
                    let _ = reply.send(Err(error.into()));
                }
            }
            Event::InboundFailure { peer, request_id, error, .. } => {
                debug!(%peer, %error, "inbound greet failed");
                self.unsent.remove(&request_id);
            }
            Event::ResponseSent { request_id, .. } => {
                self.unsent.remove(&request_id);
            }
        }
    }

    /// Hands an inbound request to its peer's service in a task of its own.
    fn on_inbound(
        &mut self,
        peer: PeerId,
        connection_id: ConnectionId,
        request_id: InboundRequestId,
        request: InboundRequest,
        channel: ResponseChannel<GreetResult>,
    ) {
        let request = match request {
            Ok(request) => request,
            Err(err) => {
                debug!(%peer, %err, "undecodable greet request");
                return self.respond(request_id, channel, Err(RemoteError::new(err.code(), err.to_string())));
            }
        };
        if self.drain_deadline.is_some() {
            return self.respond(
                request_id,
                channel,
                Err(RemoteError::new(ErrorCode::OVERLOADED, "shutting down")),
            );
        }
        let Some(state) = self.peers.get(&peer) else {
            // A request always arrives on an established connection; be safe anyway.
            return self.respond(
                request_id,
                channel,
                Err(RemoteError::new(ErrorCode::INTERNAL, "internal error")),
            );
        };
        let remote_addr = match state.connections.get(&connection_id) {
            Some(addr) => addr.clone(),
            None => state.connections.values().next().cloned().unwrap_or_else(Multiaddr::empty),
        };
        let service = Arc::clone(&state.service);
        let make = Arc::clone(&self.make);
        let answers = self.answers_tx.clone();
        self.in_flight += 1;
        tokio::spawn(async move {
            let result =
                match answer::peer_service(&service, &make, PeerContext::new(peer, remote_addr)).await {
                    Ok(service) => answer::answer(service, peer, request).await,
                    Err(err) => Err(err),
                };
            // Fails only if the swarm task has ended: nobody is left to answer.
            let _ = answers.send(Answer { request_id, channel, result }).await;
        });
    }

    fn on_answer(&mut self, Answer { request_id, channel, result }: Answer) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.respond(request_id, channel, result);
    }

    fn respond(
        &mut self,
        request_id: InboundRequestId,
        channel: ResponseChannel<GreetResult>,
        result: GreetResult,
    ) {
        if self.swarm.behaviour_mut().greet.send_response(channel, result).is_ok() {
            // Tracked until written, so that a shutdown does not cut it off.
            self.unsent.insert(request_id);
        } else {
            debug!("the requester's stream is gone; answer dropped");
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
        self.observe_external(peer_id, info.observed_addr);
        let speaks_v1 = info.protocols.iter().any(|p| p.as_ref() == PROTOCOL_NAME);
        let speaks_v2 = info.protocols.iter().any(|p| p.as_ref() == v2::PROTOCOL_NAME);
        // A node that speaks 2.0.0 also speaks 1.0.0; either way it can be greeted.
        let speaks = speaks_v1 || speaks_v2;
        self.registry.set_speaks_v2(&peer_id, self.pipelining && speaks_v2);
        if let Some(state) = self.peers.get_mut(&peer_id) {
            state.speaks_greet = Some(speaks);
            self.set_greet_capable(peer_id, speaks);
        }
    }

    fn on_mdns(&mut self, event: mdns::Event) {
        match event {
            mdns::Event::Discovered(found) => {
                let local = *self.swarm.local_peer_id();
                let mut by_peer: BTreeMap<PeerId, Vec<Multiaddr>> = BTreeMap::new();
                for (peer, addr) in found.into_iter().filter(|(peer, _)| *peer != local) {
                    by_peer.entry(peer).or_default().push(addr);
                }
                for (peer_id, mut addresses) in by_peer {
                    // mDNS advertises loopback too; on a LAN that is never the peer.
                    if addresses.iter().any(|a| !is_loopback(a)) {
                        addresses.retain(|a| !is_loopback(a));
                    }
                    let known = self.mdns_peers.entry(peer_id).or_default();
                    let new_peer = known.is_empty();
                    for address in addresses {
                        if !known.contains(&address) {
                            known.push(address);
                        }
                    }
                    // QUIC first, TCP only when QUIC fails: the protocol's preference.
                    known.sort_by_key(|a| !is_quic(a));
                    if new_peer {
                        let addresses = known.clone();
                        self.emit(NodeEvent::Discovered { peer_id, addresses });
                    }
                    self.dial_discovered(peer_id);
                }
            }
            mdns::Event::Expired(lost) => {
                for (peer_id, address) in lost {
                    let Some(known) = self.mdns_peers.get_mut(&peer_id) else { continue };
                    known.retain(|a| a != &address);
                    if !known.is_empty() {
                        continue;
                    }
                    self.mdns_peers.remove(&peer_id);
                    self.redials.remove(&peer_id);
                    self.set_greet_capable(peer_id, false);
                    self.emit(NodeEvent::Expired { peer_id });
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                }
            }
        }
    }

    /// Dials a peer mDNS knows, unless it is connected or being dialed: one
    /// dial per peer, its addresses tried one at a time, QUIC first.
    fn dial_discovered(&mut self, peer_id: PeerId) {
        let Some(addresses) = self.mdns_peers.get(&peer_id) else { return };
        if self.swarm.is_connected(&peer_id) {
            return;
        }
        let opts = DialOpts::peer_id(peer_id)
            .addresses(addresses.clone())
            .override_dial_concurrency_factor(NonZeroU8::MIN)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(err) = self.swarm.dial(opts) {
            debug!(peer = %peer_id, %err, "dial of a discovered peer refused");
        }
    }

    /// A peer mDNS still knows was lost or could not be reached: try again
    /// later, backing off. mDNS says nothing new about a peer whose records
    /// never expired (a short partition), so without this, nobody would redial.
    fn schedule_redial(&mut self, peer_id: PeerId) {
        if !self.mdns_peers.contains_key(&peer_id) || self.drain_deadline.is_some() {
            return;
        }
        let backoff = match self.redials.get(&peer_id) {
            Some(redial) => (redial.backoff * 2).min(REDIAL_MAX),
            None => REDIAL_MIN,
        };
        self.redials.insert(peer_id, Redial { at: Instant::now() + backoff, backoff });
    }

    fn redial_due(&mut self) {
        let now = Instant::now();
        let due: Vec<PeerId> = self.redials.iter().filter(|(_, r)| r.at <= now).map(|(p, _)| *p).collect();
        for peer_id in due {
            if let Some(redial) = self.redials.get_mut(&peer_id) {
                // Not again before the dial has had its chance; a failure reschedules.
                redial.at = now + REDIAL_MAX;
            }
            debug!(peer = %peer_id, "redialing a peer mDNS still knows");
            self.dial_discovered(peer_id);
        }
    }

    // ---- external addresses --------------------------------------------

    fn observe_external(&mut self, reporter: PeerId, observed: Multiaddr) {
        let reporter_addr = self.peers.get(&reporter).and_then(|p| p.connections.values().next().cloned());
        if let Some(change) =
            self.external.observe(reporter, reporter_addr.as_ref(), observed, Instant::now())
        {
            self.apply_external(change);
        }
    }

    fn expire_external(&mut self) {
        for change in self.external.expire(Instant::now()) {
            self.apply_external(change);
        }
    }

    fn apply_external(&mut self, change: ExternalAddrChange) {
        match change {
            ExternalAddrChange::Confirmed(address) => {
                info!(%address, "external address confirmed");
                self.swarm.add_external_address(address.clone());
                self.snapshot().external_addrs.push(address.clone());
                self.emit(NodeEvent::ExternalAddrConfirmed { address });
            }
            ExternalAddrChange::Expired(address) => {
                info!(%address, "external address expired");
                self.swarm.remove_external_address(&address);
                self.snapshot().external_addrs.retain(|a| a != &address);
                self.emit(NodeEvent::ExternalAddrExpired { address });
            }
        }
    }

    // ---- shutdown -------------------------------------------------------

    fn begin_shutdown(&mut self, reply: Option<oneshot::Sender<()>>) {
        self.shutdown_waiters.extend(reply);
        if self.drain_deadline.is_some() {
            return;
        }
        info!(in_flight = self.in_flight, "shutting down");
        // Listeners stay up while draining: a QUIC listener's endpoint carries
        // its connections, so closing it now would cut the answers off. New
        // requests meanwhile are answered 503.
        for (_, reply) in self.pending.drain() {
            let _ = reply.send(Err(RequestError::Shutdown));
        }
        for (_, reply) in self.connecting.drain() {
            let _ = reply.send(Err(RequestError::Shutdown));
        }
        self.stop_streams.send_replace(true);
        self.stream_tasks.close();
        self.drain_deadline = Some(Instant::now() + self.shutdown_grace);
    }

    async fn finish(mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        // Give the close frames a moment to leave, then drop the swarm.
        let close = async {
            while self.swarm.connected_peers().next().is_some() {
                self.swarm.select_next_some().await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(500), close).await;
        for id in self.listeners.drain(..) {
            self.swarm.remove_listener(id);
        }
        self.registry.clear();
        self.greet_peers.send_replace(PeerSet::default());
        for waiter in self.shutdown_waiters.drain(..) {
            let _ = waiter.send(());
        }
        info!("node stopped");
    }

    // ---- helpers --------------------------------------------------------

    fn set_greet_capable(&mut self, peer: PeerId, capable: bool) {
        let changed = self.greet_peers.send_if_modified(|set| {
            if capable == set.contains(&peer) {
                return false;
            }
            let set = Arc::make_mut(set);
            if capable { set.insert(peer) } else { set.remove(&peer) }
        });
        if changed && capable {
            self.emit(NodeEvent::GreetCapable { peer_id: peer });
        }
    }

    fn snapshot(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        self.snapshot.lock().expect("snapshot lock")
    }

    /// Never waits: a consumer far behind loses events rather than stalling the node.
    fn emit(&self, event: NodeEvent) {
        if let Err(mpsc::error::TrySendError::Full(event)) = self.events.try_send(event) {
            warn!(?event, "event stream full; event dropped");
        }
    }
}

fn remote_address(endpoint: &ConnectedPoint) -> Multiaddr {
    match endpoint {
        ConnectedPoint::Dialer { address, .. } => address.clone(),
        ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr.clone(),
    }
}

fn is_quic(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::QuicV1))
}

fn is_loopback(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_loopback(),
        Some(Protocol::Ip6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

/// A multi-line libp2p error (one line per address tried) as one line.
pub(crate) fn one_line(error: &str) -> String {
    error.split_whitespace().collect::<Vec<_>>().join(" ")
}
