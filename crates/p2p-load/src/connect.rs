//! Client nodes connected to a target: each its own node (mDNS off, a fresh
//! identity unless given one) with one connection to the target, and a
//! [`PeerClient`] for it, of any protocol (greet by default).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use p2p_protocol::{Greet, Protocol};
use p2p_service::{Limits, MakeGreeter, stack};
use p2p_transport::libp2p::identity::Keypair;
use p2p_transport::libp2p::multiaddr::Protocol as Component;
use p2p_transport::libp2p::{Multiaddr, PeerId};
use p2p_transport::{GreetVersion, Node, NodeBuilder, NodeEvent, NodeEvents, PeerClient};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// At most this many client nodes connect at once.
pub const CONNECTING_AT_ONCE: usize = 32;

/// How long a client whose handshake timed out waits before trying again.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// How client nodes are made and connected.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Which greet protocol the clients' requests use.
    pub version: GreetVersion,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// How long connecting (and identifying, if waited for) may take; for
    /// [`connect_clients`], all the clients together.
    pub connect_timeout: Duration,
    /// Whether to wait for identify once connected.
    pub identify: Identify,
    /// What a client node answers should the target greet it.
    pub message: String,
    /// Peers to join the DHT through: needed to find a target given as a
    /// bare `/p2p/<peer-id>`.
    pub bootstrap: Vec<Multiaddr>,
}

/// Whether a client waits for identify to say the target speaks greet
/// (until then, [`GreetVersion::Auto`] sends greet 1.0.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identify {
    /// Do not wait.
    No,
    /// Wait at most this long, then go on either way (a peer without
    /// identify, like the raw baseline, never sends it).
    AtMost(Duration),
    /// Wait until the connect timeout; fail without it.
    Required,
}

/// A connected client node and its client of protocol `P` for the target.
#[derive(Debug, Clone)]
pub struct ClientNode<P: Protocol = Greet> {
    /// The client node; shut it down when done.
    pub node: Node,
    /// Requests to the target.
    pub service: PeerClient<P>,
}

/// What [`connect_clients`] got.
#[derive(Debug)]
pub struct Clients<P: Protocol = Greet> {
    /// The connected client nodes.
    pub nodes: Vec<Node>,
    /// A client for the target per connected node.
    pub services: Vec<PeerClient<P>>,
    /// The failures, counted by reason.
    pub errors: BTreeMap<String, u64>,
}

impl<P: Protocol> Default for Clients<P> {
    fn default() -> Self {
        Self { nodes: Vec::new(), services: Vec::new(), errors: BTreeMap::new() }
    }
}

impl<P: Protocol> Clients<P> {
    /// Shuts every client node down (see [`shutdown_all`]).
    pub async fn shutdown(self) {
        shutdown_all(self.nodes).await;
    }
}

/// The peer id at the end of `address` (`.../p2p/<peer-id>`), if there is one.
pub fn target_peer(address: &Multiaddr) -> Option<PeerId> {
    match address.iter().last() {
        Some(Component::P2p(peer)) => Some(peer),
        _ => None,
    }
}

/// One client node with `keypair` (a fresh identity if `None`), connected to
/// `target` (and identified as speaking `P`, as `options` say) within
/// `options.connect_timeout`.
pub async fn connect_client<P: Protocol>(
    target: &Multiaddr,
    options: &ClientOptions,
    keypair: Option<Keypair>,
) -> Result<ClientNode<P>, String> {
    connect_by(target, options, keypair, Instant::now() + options.connect_timeout).await
}

/// Starts `count` client nodes and connects each to `target`,
/// [`CONNECTING_AT_ONCE`] at a time, all within `options.connect_timeout`.
/// `done` counts the attempts that have ended, for progress display.
pub async fn connect_clients<P: Protocol>(
    target: &Multiaddr,
    count: usize,
    options: &ClientOptions,
    done: Arc<AtomicU64>,
) -> Clients<P> {
    let deadline = Instant::now() + options.connect_timeout;
    let at_once = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let mut connecting = JoinSet::new();
    for _ in 0..count {
        let (at_once, done) = (Arc::clone(&at_once), Arc::clone(&done));
        let (target, options) = (target.clone(), options.clone());
        connecting.spawn(async move {
            let _permit = at_once.acquire_owned().await.expect("never closed");
            // A handshake that timed out (a node busy with thousands of
            // others) is tried again, with a new identity, while time is left.
            let result = loop {
                let result = connect_by::<P>(&target, &options, None, deadline).await;
                match &result {
                    Err(reason)
                        if reason.contains("timed out") && Instant::now() + RETRY_PAUSE < deadline =>
                    {
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                    _ => break result,
                }
            };
            done.fetch_add(1, Ordering::Relaxed);
            result
        });
    }
    let mut clients = Clients::default();
    while let Some(joined) = connecting.join_next().await {
        match joined {
            Ok(Ok(client)) => {
                clients.nodes.push(client.node);
                clients.services.push(client.service);
            }
            Ok(Err(reason)) => *clients.errors.entry(reason).or_default() += 1,
            Err(err) => *clients.errors.entry(format!("connecting task failed: {err}")).or_default() += 1,
        }
    }
    clients
}

/// Shuts the client nodes down together, closing their connections cleanly;
/// gives up waiting after a few seconds.
pub async fn shutdown_all(nodes: Vec<Node>) {
    let mut closing = JoinSet::new();
    for node in nodes {
        closing.spawn(async move { node.shutdown().await });
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), closing.join_all()).await;
}

async fn connect_by<P: Protocol>(
    target: &Multiaddr,
    options: &ClientOptions,
    keypair: Option<Keypair>,
    deadline: Instant,
) -> Result<ClientNode<P>, String> {
    let mut builder = NodeBuilder::for_dialing(target)
        .request_timeout(options.request_timeout)
        .shutdown_grace(Duration::from_secs(1))
        // Without a bootstrap peer a client node never looks anyone up: no
        // DHT, so that thousands of them in one process fit (~1.6 MB each).
        .dht(!options.bootstrap.is_empty());
    if let Some(keypair) = keypair {
        builder = builder.keypair(keypair);
    }
    for peer in &options.bootstrap {
        builder = builder.bootstrap(peer.clone());
    }
    let (node, events) = builder
        .call::<P>()
        .build(stack(MakeGreeter::new(options.message.clone()), Limits::default()))
        .map_err(|err| format!("cannot start a client node: {err}"))?;
    match connected::<P>(&node, events, target, options, deadline).await {
        Ok(peer) => {
            let service = node.client::<P>().peer(peer).with_version(options.version);
            Ok(ClientNode { node, service })
        }
        Err(reason) => {
            node.shutdown().await;
            Err(reason)
        }
    }
}

/// Connects `node` to `target` and waits for identify (to say the target
/// speaks `P`) as `options` say; the target's peer id.
async fn connected<P: Protocol>(
    node: &Node,
    mut events: NodeEvents,
    target: &Multiaddr,
    options: &ClientOptions,
    deadline: Instant,
) -> Result<PeerId, String> {
    let within = humantime::format_duration(options.connect_timeout);
    let peer = match tokio::time::timeout_at(deadline, node.connect(target.clone())).await {
        Ok(Ok(peer)) => peer,
        Ok(Err(err)) => return Err(err.to_string()),
        Err(_) => return Err(format!("not connected within {within}")),
    };
    let identify_by = match options.identify {
        Identify::No => return Ok(peer),
        Identify::AtMost(wait) => deadline.min(Instant::now() + wait),
        Identify::Required => deadline,
    };
    let identified = tokio::time::timeout_at(identify_by, async {
        while let Some(event) = events.recv().await {
            if matches!(event, NodeEvent::Capable { peer_id, protocol } if peer_id == peer && protocol == P::NAME) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    // The events are no longer needed: the node keeps running without a reader.
    drop(events);
    if options.identify == Identify::Required && !identified {
        return Err(format!("connected, but not identified as a {} peer within {within}", P::NAME));
    }
    Ok(peer)
}
