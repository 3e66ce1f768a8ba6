//! The node handle, its builder and its events.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use futures::future::BoxFuture;
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use p2p_protocol::{GreetRequest, GreetResult};
use p2p_service::{BoxError, PeerContext};
use tokio::sync::{mpsc, oneshot, watch};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

#[cfg(feature = "metrics")]
use crate::NodeMetrics;
use crate::discover::{PeerDiscover, PeerSet};
use crate::registry::PeerRegistry;
use crate::swarm_task::{self, Command};
use crate::{BuildError, Client, ExternalAddrConfig, MakePeerClient, RequestError};

/// The per-peer inbound service, as the swarm task holds it.
pub(crate) type PeerService = BoxCloneSyncService<GreetRequest, GreetResult, Infallible>;

/// The user's `MakeService<PeerContext>`, type-erased.
pub(crate) type MakePeerService =
    Arc<dyn Fn(PeerContext) -> BoxFuture<'static, Result<PeerService, BoxError>> + Send + Sync>;

/// Something that happened on the node, for people and scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// The node listens on this address (a concrete one, never `0.0.0.0`).
    Listening {
        /// The address, without `/p2p/`.
        address: Multiaddr,
    },
    /// A listen address went away.
    ListenAddrExpired {
        /// The address.
        address: Multiaddr,
    },
    /// mDNS found a peer we had not seen (or had seen expire).
    Discovered {
        /// The peer.
        peer_id: PeerId,
        /// Its advertised addresses.
        addresses: Vec<Multiaddr>,
    },
    /// All of a peer's mDNS records expired.
    Expired {
        /// The peer.
        peer_id: PeerId,
    },
    /// The first connection to a peer is up.
    Connected {
        /// The peer.
        peer_id: PeerId,
        /// The remote address of that connection.
        address: Multiaddr,
    },
    /// A dial failed: every address tried was unreachable, refused, or not that peer.
    DialFailed {
        /// The peer dialed, when it was known.
        peer_id: Option<PeerId>,
        /// Why, in a line.
        error: String,
    },
    /// The last connection to a peer closed.
    Disconnected {
        /// The peer.
        peer_id: PeerId,
    },
    /// Identify says the peer speaks the greet protocol: it joined the `discover()` set.
    GreetCapable {
        /// The peer.
        peer_id: PeerId,
    },
    /// Enough distinct peers agree on this external address of ours.
    ExternalAddrConfirmed {
        /// The address.
        address: Multiaddr,
    },
    /// An external address is no longer reported by enough peers.
    ExternalAddrExpired {
        /// The address.
        address: Multiaddr,
    },
}

/// The stream of [`NodeEvent`]s.
///
/// Bounded: a consumer that falls far behind loses events (the swarm task
/// never waits for it) and a warning is logged.
#[derive(Debug)]
pub struct NodeEvents {
    rx: mpsc::Receiver<NodeEvent>,
}

impl NodeEvents {
    /// The next event; `None` once the node has shut down.
    pub async fn recv(&mut self) -> Option<NodeEvent> {
        self.rx.recv().await
    }
}

impl Stream for NodeEvents {
    type Item = NodeEvent;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<NodeEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// What the swarm task keeps up to date for the handle's accessors.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) listen_addrs: Vec<Multiaddr>,
    pub(crate) external_addrs: Vec<Multiaddr>,
    pub(crate) connected: BTreeSet<PeerId>,
}

/// A handle to a running node. Cheap to clone.
///
/// All handles share one swarm task; when the last handle, client and
/// `discover()` stream are dropped, the node shuts down as if
/// [`Node::shutdown`] had been called.
#[derive(Debug, Clone)]
pub struct Node {
    local_peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    client: Client,
    snapshot: Arc<Mutex<Snapshot>>,
    greet_peers: watch::Receiver<PeerSet>,
}

impl Node {
    /// This node's identity.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// The addresses the node listens on (concrete, once the OS assigned them).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.snapshot.lock().expect("snapshot lock").listen_addrs.clone()
    }

    /// The confirmed external addresses.
    pub fn external_addrs(&self) -> Vec<Multiaddr> {
        self.snapshot.lock().expect("snapshot lock").external_addrs.clone()
    }

    /// The peers with at least one established connection.
    pub fn connected_peers(&self) -> Vec<PeerId> {
        self.snapshot.lock().expect("snapshot lock").connected.iter().copied().collect()
    }

    /// The connected peers that identify says speak the greet protocol.
    pub fn greet_peers(&self) -> Vec<PeerId> {
        self.greet_peers.borrow().iter().copied().collect()
    }

    /// Dials `address` (with or without `/p2p/<peer-id>`). Resolves once the
    /// dial has started; the connection shows up as [`NodeEvent::Connected`].
    pub async fn dial(&self, address: Multiaddr) -> Result<(), RequestError> {
        let (reply, done) = oneshot::channel();
        self.command(Command::Dial { address, reply }).await?;
        done.await.unwrap_or(Err(RequestError::Shutdown))
    }

    /// Connects to `address` and resolves once a connection is established,
    /// with the peer's id, or with the reason the dial failed.
    ///
    /// With `/p2p/<peer-id>` at the end, an existing connection to that peer
    /// counts and the remote must prove that identity; without it, any peer
    /// at the address will do. There is no deadline of its own beyond the
    /// transports' handshake timeouts: wrap it in `tokio::time::timeout`.
    pub async fn connect(&self, address: Multiaddr) -> Result<PeerId, RequestError> {
        let (reply, done) = oneshot::channel();
        self.command(Command::Connect { address, reply }).await?;
        done.await.unwrap_or(Err(RequestError::Shutdown))
    }

    /// The outbound side as a `Service<(PeerId, GreetRequest)>`.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// A `MakeService<PeerId>` yielding per-peer clients.
    pub fn make_peer_client(&self) -> MakePeerClient {
        MakePeerClient::new(self.client.clone())
    }

    /// The live set of greet-capable peers as a `tower::discover::Discover`.
    pub fn discover(&self) -> PeerDiscover {
        PeerDiscover::new(self.greet_peers.clone(), self.client.clone())
    }

    /// Stops listening, lets in-flight inbound requests finish within the
    /// grace period, closes connections and ends the swarm task. Resolves
    /// when the task has ended; calling it again (or from a clone) is fine.
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self.command(Command::Shutdown { reply }).await.is_ok() {
            let _ = done.await;
        }
    }

    async fn command(&self, command: Command) -> Result<(), RequestError> {
        self.commands.send(command).await.map_err(|_| RequestError::Shutdown)
    }
}

/// Every setting of a node, each with its default: the one place the
/// defaults live (the command line reads them from here).
///
/// `#[non_exhaustive]`: start from `NodeConfig::default()` and change fields,
/// then hand it to [`NodeBuilder::with_config`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeConfig {
    /// Where to listen. Default: QUIC and TCP on all IPv4 interfaces, port 0
    /// ([`NodeConfig::default_listen_addrs`]).
    pub listen_addrs: Vec<Multiaddr>,
    /// mDNS discovery. Default on; tests on 127.0.0.1 turn it off.
    pub mdns: bool,
    /// How long a connection with no open streams stays up. Default 60 s.
    pub idle_timeout: Duration,
    /// How long an outbound request may take end to end. Default 10 s.
    pub request_timeout: Duration,
    /// Concurrent greet 1.0.0 streams per connection. Default 1024: overload
    /// is answered by the service stack (503) rather than by dropped streams.
    pub max_concurrent_streams: usize,
    /// Established connections in total (`None`: unlimited). Default 2048.
    pub max_connections: Option<u32>,
    /// Established connections per peer (`None`: unlimited). Default 8.
    pub max_connections_per_peer: Option<u32>,
    /// The external-address policy.
    pub external: ExternalAddrConfig,
    /// How long [`Node::shutdown`] waits for in-flight inbound requests. Default 5 s.
    pub shutdown_grace: Duration,
    /// Events buffered for a slow consumer before they are dropped. Default 1024.
    pub event_capacity: usize,
    /// Commands buffered for the swarm task (back-pressure beyond). Default 1024.
    pub command_capacity: usize,
    /// Serve and use greet v2 (`/p2p-node/greet/2.0.0`, pipelined). Default on.
    pub greet_v2: bool,
    /// Inbound requests one pipelined stream may have in flight; beyond that
    /// the node stops reading the stream. Default 128.
    pub max_in_flight_per_stream: usize,
}

impl NodeConfig {
    /// QUIC and TCP on all IPv4 interfaces, port 0.
    pub fn default_listen_addrs() -> Vec<Multiaddr> {
        ["/ip4/0.0.0.0/udp/0/quic-v1", "/ip4/0.0.0.0/tcp/0"]
            .into_iter()
            .map(|a| a.parse().expect("valid multiaddr"))
            .collect()
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            listen_addrs: Self::default_listen_addrs(),
            mdns: true,
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            max_concurrent_streams: 1024,
            max_connections: Some(2048),
            max_connections_per_peer: Some(8),
            external: ExternalAddrConfig::default(),
            shutdown_grace: Duration::from_secs(5),
            event_capacity: 1024,
            command_capacity: 1024,
            greet_v2: true,
            max_in_flight_per_stream: 128,
        }
    }
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
#[derive(Debug, Clone, Default)]
pub struct NodeBuilder {
    pub(crate) keypair: Option<Keypair>,
    pub(crate) config: NodeConfig,
    /// `listen_on` was called: its addresses replace the default ones.
    listen_set: bool,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<NodeMetrics>,
}

impl NodeBuilder {
    /// A node with [`NodeConfig::default()`]: QUIC and TCP on all interfaces, mDNS on.
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

    /// The node's identity; a fresh Ed25519 key by default.
    pub fn keypair(mut self, keypair: Keypair) -> Self {
        self.keypair = Some(keypair);
        self
    }

    /// Adds a listen address; the first call replaces the default
    /// (`/ip4/0.0.0.0/udp/0/quic-v1` and `/ip4/0.0.0.0/tcp/0`).
    pub fn listen_on(mut self, address: Multiaddr) -> Self {
        if !self.listen_set {
            self.config.listen_addrs.clear();
            self.listen_set = true;
        }
        self.config.listen_addrs.push(address);
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

    /// How long an outbound request may take end to end. Default 10 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// Concurrent greet streams per connection. Default 1024.
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

    /// The external-address policy.
    pub fn external_addrs(mut self, config: ExternalAddrConfig) -> Self {
        self.config.external = config;
        self
    }

    /// Serve and use greet v2 (`/p2p-node/greet/2.0.0`, pipelined). Default on;
    /// off makes a 1.0.0-only node, for tests and interop.
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

    /// Builds the node and spawns its swarm task on the current tokio runtime.
    ///
    /// `make_service` is asked for one service per remote peer, on that
    /// peer's first request; the service is dropped when the peer's last
    /// connection closes. Must be called from within a tokio runtime.
    pub fn build<M, S>(self, make_service: M) -> Result<(Node, NodeEvents), BuildError>
    where
        M: Service<PeerContext, Response = S> + Clone + Send + Sync + 'static,
        M::Error: Into<BoxError>,
        M::Future: Send + 'static,
        S: Service<GreetRequest, Response = GreetResult, Error = Infallible> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
    {
        #[cfg(feature = "metrics")]
        let metrics = self.metrics.clone();
        let make: MakePeerService = Arc::new(move |ctx| {
            let make = make_service.clone();
            #[cfg(feature = "metrics")]
            let metrics = metrics.clone();
            Box::pin(async move {
                let service = BoxCloneSyncService::new(make.oneshot(ctx).await.map_err(Into::into)?);
                #[cfg(feature = "metrics")]
                let service = match metrics {
                    Some(metrics) => metrics.instrument(service),
                    None => service,
                };
                Ok(service)
            })
        });
        let (commands_tx, commands_rx) = mpsc::channel(self.config.command_capacity.max(1));
        let (events_tx, events_rx) = mpsc::channel(self.config.event_capacity.max(1));
        let (peers_tx, peers_rx) = watch::channel(PeerSet::default());
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        let registry = Arc::new(PeerRegistry::default());
        let pipelining = self.config.greet_v2;
        let channels =
            swarm_task::Channels { commands: commands_rx, events: events_tx, greet_peers: peers_tx };
        let local_peer_id =
            swarm_task::spawn(self, make, channels, Arc::clone(&snapshot), Arc::clone(&registry))?;
        let client = Client::new(commands_tx.clone(), registry, pipelining);
        let node = Node { local_peer_id, commands: commands_tx, client, snapshot, greet_peers: peers_rx };
        Ok((node, NodeEvents { rx: events_rx }))
    }
}
