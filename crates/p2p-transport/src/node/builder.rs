//! [`NodeBuilder`]: a [`NodeConfig`], an identity, and the protocols it
//! serves, each with the user's service.

use std::any::TypeId;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol};
use p2p_protocol::{Greet, Protocol, RemoteError};
use p2p_service::{BoxError, FaultReporter, PeerContext};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tower::{Service, ServiceExt};

use super::{Mounted, Node};
#[cfg(feature = "metrics")]
use crate::NodeMetrics;
use crate::events::{NodeEvents, Reporter, Snapshot};
use crate::gate::Refusals;
use crate::inbound::{MakePeerService, Server, StreamHandler, StreamServer, erased};
use crate::outbound::OutboundPeers;
use crate::peers::PeerSet;
use crate::shutdown::Shutdown;
use crate::swarm::Mount;
use crate::{BanConfig, BuildError, ExternalAddrConfig, NodeConfig, swarm};

/// What a protocol's server is built with, once the node is.
struct Parts<'a> {
    config: &'a NodeConfig,
    refusals: &'a Refusals,
    faults: &'a FaultReporter,
    shutdown: &'a Shutdown,
    runtime: &'a Handle,
    #[cfg(feature = "metrics")]
    metrics: Option<&'a NodeMetrics>,
}

/// Builds protocol `P`'s server from the parts.
type MakeServer = Arc<dyn Fn(&Parts<'_>) -> Arc<dyn crate::inbound::Serve> + Send + Sync>;

/// A protocol the node serves or calls, until it is built.
#[derive(Clone)]
struct Entry {
    type_id: TypeId,
    name: &'static str,
    pipelined: Option<&'static str>,
    /// `None`: called, not served.
    server: Option<MakeServer>,
    /// Its (empty) table of pipelined clients, an `OutboundPeers<P>`.
    outbound: fn() -> Outbound,
}

/// A protocol's table of pipelined clients, as the swarm task and the handles see it.
type Outbound = (Arc<dyn crate::outbound::Muxes>, Arc<dyn std::any::Any + Send + Sync>);

fn outbound_peers<P: Protocol>() -> Outbound {
    let peers = Arc::new(OutboundPeers::<P>::default());
    (peers.clone(), peers)
}

/// Builds a [`Node`]: identity, transports, limits and policies.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use p2p_service::{Limits, MakeGreeter, stack};
/// use p2p_transport::NodeBuilder;
///
/// let (node, mut events) = NodeBuilder::new()
///     .mdns(false)
///     .listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse()?)
///     .build(stack(MakeGreeter::new("hi"), Limits::default()))?;
/// while let Some(event) = events.recv().await {
///     println!("{event:?}");
/// }
/// # node.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct NodeBuilder {
    pub(crate) keypair: Option<Keypair>,
    pub(crate) config: NodeConfig,
    /// `listen_on` was called: its addresses replace the default ones.
    listen_set: bool,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<NodeMetrics>,
    /// Where the node's tasks run (none: the runtime `build` is called on).
    runtime: Option<Handle>,
    /// The protocols, in the order mounted.
    protocols: Vec<Entry>,
    /// The bare stream protocols served, by name.
    streams: Vec<(&'static str, StreamHandler)>,
}

impl std::fmt::Debug for NodeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let protocols: Vec<_> = self.protocols.iter().map(|p| p.name).collect();
        let streams: Vec<_> = self.streams.iter().map(|(name, _)| *name).collect();
        f.debug_struct("NodeBuilder")
            .field("config", &self.config)
            .field("protocols", &protocols)
            .field("streams", &streams)
            .finish_non_exhaustive()
    }
}

impl NodeBuilder {
    /// A node with [`NodeConfig::default()`]: QUIC, TCP and WebSocket on all interfaces, mDNS on.
    pub fn new() -> Self {
        Self::default()
    }

    /// A node made to dial `target` and little else: mDNS off, listening on
    /// one QUIC socket of the family that can reach `target` (QUIC dials from
    /// a listening socket of the same family, and a loopback socket cannot
    /// reach other hosts). For one-shot clients: `greet`, load generators.
    pub fn for_dialing(target: &Multiaddr) -> Self {
        use libp2p::multiaddr::Protocol;
        let ip = match target.iter().next() {
            Some(Protocol::Ip4(ip)) if ip.is_loopback() => "/ip4/127.0.0.1",
            Some(Protocol::Ip6(ip)) if ip.is_loopback() => "/ip6/::1",
            Some(Protocol::Ip6(_) | Protocol::Dns6(_)) => "/ip6/::",
            _ => "/ip4/0.0.0.0",
        };
        let socket = format!("{ip}/udp/0/quic-v1").parse().expect("valid multiaddr");
        Self::new().mdns(false).listen_on(socket)
    }

    /// A node with every setting from `config`.
    pub fn with_config(config: NodeConfig) -> Self {
        Self { config, listen_set: true, ..Self::default() }
    }

    /// The settings so far.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Runs every task of the node on `runtime` (by default, the runtime
    /// [`NodeBuilder::build`] is called on); `build` may then be called
    /// outside any runtime.
    pub fn runtime(mut self, runtime: Handle) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// The node's identity; a fresh Ed25519 key by default.
    pub fn keypair(mut self, keypair: Keypair) -> Self {
        self.keypair = Some(keypair);
        self
    }

    /// Adds a listen address; the first call replaces the default
    /// (`/ip4/0.0.0.0/udp/0/quic-v1`, `/ip4/0.0.0.0/tcp/0` and `/ip4/0.0.0.0/tcp/0/ws`).
    pub fn listen_on(mut self, address: Multiaddr) -> Self {
        if !self.listen_set {
            self.config.listen_addrs.clear();
            self.listen_set = true;
        }
        self.config.listen_addrs.push(address);
        self
    }

    /// Turns the WebSocket transport on or off (on by default; see [`NodeConfig::websocket`]).
    pub fn websocket(mut self, enabled: bool) -> Self {
        self.config.websocket = enabled;
        self
    }

    /// Turns mDNS discovery on or off (on by default). Tests on 127.0.0.1 turn it off.
    pub fn mdns(mut self, enabled: bool) -> Self {
        self.config.mdns = enabled;
        self
    }

    /// How long a connection with no open streams stays up. Default 60 s.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Turns the DHT (Kademlia) on or off (on by default; see [`NodeConfig::dht`]).
    pub fn dht(mut self, enabled: bool) -> Self {
        self.config.dht = enabled;
        self
    }

    /// How long a request may take end to end: an outbound one from call to
    /// answer, an inbound 1.0.0 stream from its arrival to its answer written.
    /// Default 10 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// Streams served at once per connection, whatever their protocol (inbound
    /// ones beyond it are dropped), and our one-request streams open at once
    /// per connection (more wait, within their deadlines); QUIC's stream
    /// limit, and half Yamux's. Default 64.
    pub fn max_concurrent_streams(mut self, streams: usize) -> Self {
        self.config.max_concurrent_streams = streams;
        self
    }

    /// Established connections in total (`None`: unlimited). Default 2048.
    pub fn max_connections(mut self, limit: Option<u32>) -> Self {
        self.config.max_connections = limit;
        self
    }

    /// Established connections per peer (`None`: unlimited). Default 8.
    pub fn max_connections_per_peer(mut self, limit: Option<u32>) -> Self {
        self.config.max_connections_per_peer = limit;
        self
    }

    /// Established inbound connections in total, and from one IP address
    /// (`None`: unlimited). Defaults 1024 and 32.
    pub fn max_incoming(mut self, total: Option<u32>, per_ip: Option<u32>) -> Self {
        self.config.max_incoming_connections = total;
        self.config.max_incoming_per_ip = per_ip;
        self
    }

    /// When a peer that keeps being refused is banned, and for how long.
    pub fn bans(mut self, config: BanConfig) -> Self {
        self.config.bans = config;
        self
    }

    /// The external-address policy.
    pub fn external_addrs(mut self, config: ExternalAddrConfig) -> Self {
        self.config.external = config;
        self
    }

    /// Serve and use every mounted protocol's pipelined name (greet's
    /// `/p2p-node/greet/2.0.0`). Default on; off makes a node of one-request
    /// streams only (greet 1.0.0), for tests and interop.
    pub fn greet_v2(mut self, enabled: bool) -> Self {
        self.config.greet_v2 = enabled;
        self
    }

    /// Inbound requests one pipelined stream may have in flight; beyond that
    /// the node stops reading the stream. Default 128.
    pub fn max_in_flight_per_stream(mut self, limit: usize) -> Self {
        self.config.max_in_flight_per_stream = limit;
        self
    }

    /// How long our pipelined stream to a peer stays open with no request in
    /// flight before we close it (reopened on the next request). Default 15 s.
    pub fn stream_idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.stream_idle_timeout = timeout;
        self
    }

    /// How long a peer's pipelined stream to us may send nothing while none
    /// of its requests is in flight before the node closes it. Default 30 s.
    pub fn inbound_stream_idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.inbound_stream_idle_timeout = timeout;
        self
    }

    /// How long one write to a pipelined stream may take before the peer is
    /// deemed to have stopped reading and the stream is closed. Default 10 s.
    pub fn stream_write_timeout(mut self, timeout: Duration) -> Self {
        self.config.stream_write_timeout = timeout;
        self
    }

    /// Joins the DHT through this peer (`<multiaddr>/p2p/<peer-id>`;
    /// repeatable). A node that is not publicly reachable also reserves a
    /// relayed address on it if it is a relay.
    pub fn bootstrap(mut self, address: Multiaddr) -> Self {
        self.config.bootstrap.push(address);
        self
    }

    /// Be a public helper: relay hop, Kademlia server, AutoNAT v2 server. Default off.
    pub fn relay_server(mut self, enabled: bool) -> Self {
        self.config.relay_server = enabled;
        self
    }

    /// Records libp2p's metrics and the answered requests in `metrics`. Off by default.
    #[cfg(feature = "metrics")]
    pub fn metrics(mut self, metrics: NodeMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// How long [`Node::shutdown`] waits for in-flight inbound requests. Default 5 s.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.shutdown_grace = grace;
        self
    }

    /// Serves protocol `P` with `make_service`, a `MakeService<PeerContext>`
    /// whose services answer `P::Request` with `Result<P::Response,
    /// RemoteError>` and never fail (what `p2p_service::stack` builds around
    /// any handler). Both of `P`'s names are negotiated on every connection,
    /// beside every other protocol served; `P` is also called as
    /// [`NodeBuilder::call`] says. Serving the same `P` again replaces it.
    ///
    /// `make_service` is asked for one service per connection, on the first
    /// request of `P` that arrives on it, with a `PeerContext` naming the
    /// peer and that connection's remote address; the service is dropped
    /// with the connection. State that belongs to the peer (the default
    /// stack's rate limit and in-flight budget) is keyed by PeerId inside the
    /// stack, so it holds across a peer's connections and reconnects. Each
    /// protocol has a stack of its own, so its limits are its own; the
    /// refusals a peer causes on any of them count toward one ban.
    pub fn serve<P, M, S>(mut self, make_service: M) -> Self
    where
        P: Protocol,
        M: Service<PeerContext, Response = S> + Clone + Send + Sync + 'static,
        M::Error: Into<BoxError>,
        M::Future: Send + 'static,
        S: Service<P::Request, Response = Result<P::Response, RemoteError>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let server: MakeServer = Arc::new(move |parts: &Parts<'_>| {
            let make = make_service.clone();
            let faults = parts.faults.clone();
            #[cfg(feature = "metrics")]
            let metrics = parts.metrics.cloned();
            let make: MakePeerService<P> = Arc::new(move |ctx: PeerContext| {
                let make = make.clone();
                // The stack reports the refusals the peer caused here (the ban policy's input).
                let ctx = ctx.with_fault_reporter(faults.clone());
                #[cfg(feature = "metrics")]
                let metrics = metrics.clone();
                Box::pin(async move {
                    let service = make.oneshot(ctx).await.map_err(Into::into)?;
                    let service = erased::<P, _>(service);
                    #[cfg(feature = "metrics")]
                    let service = match metrics {
                        Some(metrics) => metrics.instrument::<P>(service),
                        None => service,
                    };
                    Ok(service)
                })
            });
            let shutdown = parts.shutdown;
            Arc::new(Server::<P>::new(
                make,
                parts.config,
                parts.refusals.clone(),
                shutdown.stop_signal(),
                shutdown.stream_tasks(),
                parts.runtime.clone(),
            ))
        });
        self.mount::<P>(Some(server));
        self
    }

    /// Calls protocol `P` without serving it: `node.client::<P>()` then
    /// pipelines to the peers that speak `P::PIPELINED_NAME`, and
    /// `node.discover::<P>()` yields the peers that speak `P`.
    pub fn call<P: Protocol>(mut self) -> Self {
        if !self.protocols.iter().any(|p| p.type_id == TypeId::of::<P>()) {
            self.mount::<P>(None);
        }
        self
    }

    /// Serves `name`, a stream protocol that is not request/response
    /// (libp2p's `/perf/1.0.0`, say), with `handler`: each stream a peer
    /// opens on it is handed, bare, to `handler(peer, stream)`, whose future
    /// runs in a task of its own on the node's runtime. Serving the same
    /// name again replaces the handler. [`Node::open_stream`] is the other side.
    ///
    /// The stream counts against the connection's
    /// [`max_concurrent_streams`](Self::max_concurrent_streams), with every
    /// other protocol's, until the future ends (streams beyond it are
    /// dropped at once), and the shutdown drain waits for the future within
    /// the grace period, then drops it. Everything else (how much it reads,
    /// how long it may take) is the handler's to bound.
    ///
    /// [`NodeBuilder::start`] fails if `name` does not start with `/`.
    pub fn serve_stream<F, Fut>(mut self, name: &'static str, handler: F) -> Self
    where
        F: Fn(PeerId, Stream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: StreamHandler = Arc::new(move |peer, stream| Box::pin(handler(peer, stream)));
        match self.streams.iter_mut().find(|(n, _)| *n == name) {
            Some(old) => old.1 = handler,
            None => self.streams.push((name, handler)),
        }
        self
    }

    fn mount<P: Protocol>(&mut self, server: Option<MakeServer>) {
        let entry = Entry {
            type_id: TypeId::of::<P>(),
            name: P::NAME,
            pipelined: P::PIPELINED_NAME,
            server,
            outbound: outbound_peers::<P>,
        };
        match self.protocols.iter_mut().find(|p| p.type_id == entry.type_id) {
            Some(old) => *old = entry,
            None => self.protocols.push(entry),
        }
    }

    /// Serves greet with `make_service` and builds the node:
    /// `self.serve::<Greet>(make_service).start()`.
    pub fn build<M, S>(self, make_service: M) -> Result<(Node, NodeEvents), BuildError>
    where
        M: Service<PeerContext, Response = S> + Clone + Send + Sync + 'static,
        M::Error: Into<BoxError>,
        M::Future: Send + 'static,
        S: Service<p2p_protocol::GreetRequest, Response = p2p_protocol::GreetResult, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.serve::<Greet, M, S>(make_service).start()
    }

    /// Builds the node with the protocols mounted so far and spawns its swarm
    /// task on the current tokio runtime (or the one given to
    /// [`NodeBuilder::runtime`]).
    ///
    /// That runtime is the node's own: every task of the node (the swarm
    /// task, the stream tasks, the pipelined streams' openers, readers and
    /// writers that a [`Client`](crate::Client) starts) is spawned on it,
    /// whatever polls the handles. A `Client` works from any executor
    /// (`futures::executor::block_on` on a plain thread, say), and no task of
    /// the node outlives its runtime. Must be called from within a tokio
    /// runtime unless [`NodeBuilder::runtime`] gave one.
    pub fn start(self) -> Result<(Node, NodeEvents), BuildError> {
        let runtime = self.runtime.clone().unwrap_or_else(Handle::current);
        // Sockets, listeners and timers made while building are the node runtime's too.
        let _node_runtime = runtime.enter();
        let (refusals, refusals_rx) = Refusals::channel();
        let faults = refusals.fault_reporter();
        let shutdown = Shutdown::new(self.config.shutdown_grace);
        let parts = Parts {
            config: &self.config,
            refusals: &refusals,
            faults: &faults,
            shutdown: &shutdown,
            runtime: &runtime,
            #[cfg(feature = "metrics")]
            metrics: self.metrics.as_ref(),
        };
        let pipelining = self.config.greet_v2;
        let mut mounts = Vec::with_capacity(self.protocols.len());
        let mut handles = HashMap::with_capacity(self.protocols.len());
        for entry in &self.protocols {
            let (muxes, outbound) = (entry.outbound)();
            let (peers, peers_rx) = watch::channel(PeerSet::default());
            mounts.push(Mount {
                label: entry.name,
                name: StreamProtocol::new(entry.name),
                pipelined: entry.pipelined.filter(|_| pipelining).map(StreamProtocol::new),
                server: entry.server.as_ref().map(|make| make(&parts)),
                muxes,
                peers,
            });
            handles.insert(entry.type_id, Mounted { outbound, peers: peers_rx });
        }
        let (commands_tx, commands) = mpsc::channel(self.config.command_capacity.max(1));
        let (events_tx, events) = mpsc::channel(self.config.event_capacity.max(1));
        let (observations_tx, observations) = crate::addresses::observation_channel();
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        let reporter = Reporter::new(events_tx, Arc::clone(&snapshot));
        let shared = swarm::Shared {
            commands,
            reporter,
            mounts,
            refusals: refusals_rx,
            observations,
            observations_tx: observations_tx.clone(),
            shutdown,
            runtime: runtime.clone(),
        };
        let streams = self
            .streams
            .iter()
            .map(|(name, handler)| -> Result<_, BuildError> {
                let protocol = StreamProtocol::try_from_owned((*name).to_owned())
                    .map_err(|err| BuildError::Transport(format!("stream protocol {name:?}: {err}")))?;
                let server: Arc<dyn crate::inbound::Serve> = Arc::new(StreamServer {
                    name,
                    handler: Arc::clone(handler),
                    shutdown: shared.shutdown.stop_signal(),
                    tasks: shared.shutdown.stream_tasks(),
                    runtime: runtime.clone(),
                });
                Ok((protocol, server))
            })
            .collect::<Result<_, _>>()?;
        let config = Arc::new(self.config.clone());
        let (local_peer_id, control) = swarm::spawn(
            self.config,
            self.keypair,
            shared,
            streams,
            #[cfg(feature = "metrics")]
            self.metrics,
        )?;
        let node = Node {
            local_peer_id,
            commands: commands_tx,
            snapshot,
            mounts: Arc::new(handles),
            config,
            observations: observations_tx,
            streams: control,
        };
        Ok((node, NodeEvents::new(events)))
    }
}
