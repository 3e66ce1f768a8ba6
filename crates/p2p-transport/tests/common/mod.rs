//! Helpers shared by the integration tests: a scriptable handler, test
//! nodes on 127.0.0.1 with mDNS off, raw stream clients, killable nodes.
#![allow(dead_code, unreachable_pub)] // each test binary uses its own subset

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{AsyncReadExt, AsyncWriteExt};
use p2p_protocol::{
    ErrorCode, Greet, GreetRequest, GreetResponse, GreetResult, PROTOCOL_NAME, decode, read_frame,
};
use p2p_service::{BoxError, Limits, PeerContext, stack};
use p2p_transport::libp2p::{Multiaddr, PeerId, StreamProtocol, multiaddr::Protocol};
use p2p_transport::{ExternalAddrConfig, Node, NodeBuilder, NodeEvent, NodeEvents, RequestError};
use tokio::sync::{Semaphore, mpsc};
use tower::{Service, ServiceExt};

pub const DEADLINE: Duration = Duration::from_secs(20);

// ---- a scriptable handler ----------------------------------------------------

/// What the test controls about a node's handler.
pub struct Script {
    name: &'static str,
    /// Requests from this peer wait for a permit on `release` before answering.
    held_peer: Mutex<Option<PeerId>>,
    /// So do requests carrying this message, from anyone.
    held_message: Mutex<Option<String>>,
    pub release: Semaphore,
    /// Each held request announces itself here.
    arrived: mpsc::Sender<PeerId>,
    arrivals: tokio::sync::Mutex<mpsc::Receiver<PeerId>>,
    /// Requests served, per peer.
    calls: Mutex<HashMap<PeerId, usize>>,
    /// Handler instances alive (one per peer service, plus one per request in flight).
    pub live: tokio::sync::watch::Sender<usize>,
    /// Report this instead of the caller's real address.
    lie: Option<Multiaddr>,
    /// Requests carrying "spin" keep their thread busy, never yielding, until
    /// `stop_spinning` (or for `SPIN_BOUND` at most, which sets `spun_out`).
    spin_stop: AtomicBool,
    spun_out: AtomicBool,
    /// Each spinner announces itself here, waking no task (a task woken by
    /// the spinning thread could sit in its runtime worker's LIFO slot).
    spin_started: std::sync::mpsc::SyncSender<()>,
    spin_starts: Arc<Mutex<std::sync::mpsc::Receiver<()>>>,
}

/// The longest a "spin" request keeps its thread busy.
pub const SPIN_BOUND: Duration = Duration::from_secs(60);

impl Script {
    pub fn new(name: &'static str) -> Arc<Self> {
        Self::build(name, None)
    }

    pub fn liar(name: &'static str, lie: Multiaddr) -> Arc<Self> {
        Self::build(name, Some(lie))
    }

    pub fn build(name: &'static str, lie: Option<Multiaddr>) -> Arc<Self> {
        let (arrived, arrivals) = mpsc::channel(64);
        let (spin_started, spin_starts) = std::sync::mpsc::sync_channel(64);
        Arc::new(Self {
            name,
            held_peer: Mutex::new(None),
            held_message: Mutex::new(None),
            release: Semaphore::new(0),
            arrived,
            arrivals: tokio::sync::Mutex::new(arrivals),
            calls: Mutex::new(HashMap::new()),
            live: tokio::sync::watch::Sender::new(0),
            lie,
            spin_stop: AtomicBool::new(false),
            spun_out: AtomicBool::new(false),
            spin_started,
            spin_starts: Arc::new(Mutex::new(spin_starts)),
        })
    }

    pub fn hold(&self, peer: PeerId) {
        *self.held_peer.lock().unwrap() = Some(peer);
    }

    pub fn hold_message(&self, message: &str) {
        *self.held_message.lock().unwrap() = Some(message.to_owned());
    }

    pub async fn next_held_arrival(&self) -> PeerId {
        within("a held request to arrive", async { self.arrivals.lock().await.recv().await.unwrap() }).await
    }

    /// Waits (on a blocking thread) until a "spin" request has started spinning.
    pub async fn next_spinner(&self) {
        let starts = Arc::clone(&self.spin_starts);
        let started = tokio::task::spawn_blocking(move || starts.lock().unwrap().recv_timeout(DEADLINE));
        started.await.unwrap().expect("a spinner started");
    }

    pub fn stop_spinning(&self) {
        self.spin_stop.store(true, Ordering::Release);
    }

    /// A spinner ran for the whole `SPIN_BOUND` without being stopped.
    pub fn spun_out(&self) -> bool {
        self.spun_out.load(Ordering::Acquire)
    }

    pub fn calls_from(&self, peer: PeerId) -> usize {
        self.calls.lock().unwrap().get(&peer).copied().unwrap_or(0)
    }
}

#[derive(Clone)]
pub struct MakeHandler(pub Arc<Script>);

pub struct Handler {
    ctx: PeerContext,
    script: Arc<Script>,
}

impl Clone for Handler {
    fn clone(&self) -> Self {
        Handler::new(self.ctx.clone(), Arc::clone(&self.script))
    }
}

impl Handler {
    pub fn new(ctx: PeerContext, script: Arc<Script>) -> Self {
        script.live.send_modify(|n| *n += 1);
        Self { ctx, script }
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        self.script.live.send_modify(|n| *n -= 1);
    }
}

impl Service<PeerContext> for MakeHandler {
    type Response = Handler;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Handler, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, ctx: PeerContext) -> Self::Future {
        std::future::ready(Ok(Handler::new(ctx, Arc::clone(&self.0))))
    }
}

impl Service<GreetRequest> for Handler {
    type Response = GreetResponse;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<GreetResponse, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: GreetRequest) -> Self::Future {
        let script = Arc::clone(&self.script);
        let ctx = self.ctx.clone();
        Box::pin(async move {
            *script.calls.lock().unwrap().entry(ctx.peer_id).or_default() += 1;
            let held = *script.held_peer.lock().unwrap() == Some(ctx.peer_id)
                || script.held_message.lock().unwrap().as_deref() == Some(request.message.as_str());
            if held {
                script.arrived.send(ctx.peer_id).await.unwrap();
                script.release.acquire().await.unwrap().forget();
            }
            if request.message == "panic" {
                panic!("a handler bug");
            }
            if request.message == "spin" {
                // CPU work in `poll`: the thread stays busy, nothing yields.
                let _ = script.spin_started.try_send(());
                let start = std::time::Instant::now();
                while !script.spin_stop.load(Ordering::Acquire) {
                    if start.elapsed() > SPIN_BOUND {
                        script.spun_out.store(true, Ordering::Release);
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
            if request.message == "fail" {
                return Err("the database is on fire at 10.1.2.3".into());
            }
            Ok(GreetResponse {
                message: format!("{}: {}", script.name, request.message),
                observed_addr: script.lie.clone().unwrap_or(ctx.remote_addr),
            })
        })
    }
}

// ---- test nodes ---------------------------------------------------------------

#[derive(Clone, Debug)]
pub enum Transport {
    Quic,
    Tcp,
    /// This listen address.
    At(Multiaddr),
}

impl Transport {
    pub fn listen(self) -> Multiaddr {
        match self {
            Self::Quic => "/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap(),
            Self::Tcp => "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
            Self::At(addr) => addr,
        }
    }
}

pub struct TestNode {
    pub node: Node,
    pub events: NodeEvents,
    /// The listen address with `/p2p/<peer-id>`.
    pub addr: Multiaddr,
    pub script: Arc<Script>,
}

impl TestNode {
    pub fn peer_id(&self) -> PeerId {
        self.node.local_peer_id()
    }

    pub async fn wait_for(&mut self, what: &str, mut predicate: impl FnMut(&NodeEvent) -> bool) -> NodeEvent {
        let events = &mut self.events;
        within(what, async {
            loop {
                let event = events.recv().await.expect("node stopped");
                if predicate(&event) {
                    return event;
                }
            }
        })
        .await
    }

    pub async fn greet(&self, peer: &TestNode, message: &str) -> Result<GreetResponse, RequestError> {
        within(
            "a greeting",
            self.node.client::<Greet>().oneshot((peer.peer_id(), GreetRequest::new(message))),
        )
        .await
    }
}

pub fn test_limits() -> Limits {
    Limits { rate_per_sec: 0, max_in_flight_per_peer: 256, max_in_flight_total: 1024, ..Limits::default() }
}

pub async fn spawn_node(script: Arc<Script>, transport: Transport) -> TestNode {
    spawn_with(script, transport, |b| b).await
}

/// A QUIC node on its own loopback address `127.0.0.<host>`: another
/// observer origin, as a different host on a LAN would be.
pub async fn spawn_on_host(script: Arc<Script>, host: u8) -> TestNode {
    let listen: Multiaddr = format!("/ip4/127.0.0.{host}/udp/0/quic-v1").parse().unwrap();
    spawn_with(script, Transport::At(listen), |b| b).await
}

pub async fn spawn_with(
    script: Arc<Script>,
    transport: Transport,
    configure: impl FnOnce(NodeBuilder) -> NodeBuilder,
) -> TestNode {
    spawn_limited(script, transport, test_limits(), configure).await
}

/// A node whose service stack enforces `limits`.
pub async fn spawn_limited(
    script: Arc<Script>,
    transport: Transport,
    limits: Limits,
    configure: impl FnOnce(NodeBuilder) -> NodeBuilder,
) -> TestNode {
    let builder = NodeBuilder::new()
        .mdns(false)
        .listen_on(transport.listen())
        .request_timeout(Duration::from_secs(5))
        .external_addrs(ExternalAddrConfig { allow_loopback: true, ..Default::default() });
    let (node, events) =
        configure(builder).build(stack(MakeHandler(Arc::clone(&script)), limits)).expect("node builds");
    let mut test_node = TestNode { node, events, addr: Multiaddr::empty(), script };
    let NodeEvent::Listening { address } =
        test_node.wait_for("listening", |e| matches!(e, NodeEvent::Listening { .. })).await
    else {
        unreachable!()
    };
    test_node.addr = address.with(Protocol::P2p(test_node.peer_id()));
    test_node
}

/// `a` dials `b` and waits until identify says `b` speaks greet.
pub async fn connect(a: &mut TestNode, b: &TestNode) {
    a.node.dial(b.addr.clone()).await.expect("dial starts");
    let b_id = b.peer_id();
    a.wait_for(
        "identify of the dialed peer",
        |e| matches!(e, NodeEvent::Capable { peer_id, .. } if *peer_id == b_id),
    )
    .await;
}

pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

pub fn remote_code(result: Result<GreetResponse, RequestError>) -> ErrorCode {
    match result {
        Err(RequestError::Remote(err)) => err.code,
        other => panic!("expected a remote error, got {other:?}"),
    }
}

/// A bare swarm that speaks nothing but raw streams, to send what a real
/// client never would (over QUIC or TCP/Yamux, as `target` says); it derefs
/// to its `libp2p_stream::Control` and holds its connection while it lives.
pub async fn raw_client(target: &Multiaddr) -> p2p_load::RawPeer {
    within("the raw client to connect", p2p_load::RawPeer::connect(target)).await.unwrap()
}

/// Sends `bytes` on a fresh greet stream, closes the write half, and returns
/// the decoded answer (or the stream error).
pub async fn send_raw(
    control: &mut libp2p_stream::Control,
    peer: PeerId,
    bytes: &[u8],
) -> Result<GreetResult, String> {
    let mut stream = within("a stream", control.open_stream(peer, StreamProtocol::new(PROTOCOL_NAME)))
        .await
        .map_err(|e| e.to_string())?;
    // The responder may answer and close before reading everything (413):
    // a failed write is then expected, the answer is what counts.
    let _ = stream.write_all(bytes).await;
    let _ = stream.close().await;
    let body = within("an answer", read_frame(&mut stream)).await.map_err(|e| e.to_string())?;
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    assert!(rest.is_empty(), "no trailing bytes after the answer");
    decode::<GreetResult>(&body).map_err(|e| e.to_string())
}

/// Sends each hostile case on a fresh stream and checks it is answered with
/// its code on the wire (never a bare reset), then that the same connection
/// still serves `valid` (answered `answer`).
pub async fn assert_refused_then_served(
    control: &mut libp2p_stream::Control,
    peer: PeerId,
    cases: Vec<(&str, Vec<u8>, ErrorCode)>,
    valid: &[u8],
    answer: &str,
) {
    for (name, bytes, code) in cases {
        match send_raw(control, peer, &bytes).await {
            Ok(Err(err)) => assert_eq!(err.code, code, "{name}: {err}"),
            other => panic!("{name}: expected {code}, got {other:?}"),
        }
        let served = send_raw(control, peer, valid).await;
        assert_eq!(served.unwrap().unwrap().message, answer, "after {name}");
    }
}

pub fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    futures::executor::block_on(p2p_protocol::write_frame(&mut out, body)).unwrap();
    out
}

/// A node on a runtime of its own, so that the test can kill it outright:
/// dropping the runtime drops the swarm without a goodbye.
/// Its `Node` handle works from the test's runtime (channels are runtime-agnostic).
pub fn spawn_killable(
    script: Arc<Script>,
    transport: Transport,
) -> (tokio::runtime::Runtime, Multiaddr, Node) {
    // Built on a plain thread: a runtime cannot be started from inside another.
    std::thread::spawn(move || {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let test_node = runtime.block_on(spawn_node(script, transport));
        (runtime, test_node.addr, test_node.node)
    })
    .join()
    .unwrap()
}
