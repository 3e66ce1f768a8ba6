//! Greet and block fetch on the same nodes, over the same connection: both
//! directions, one stream per request and pipelined, refusals typed, each
//! protocol's limits its own, bans counted across both. Real swarms on
//! 127.0.0.1 with mDNS off, built on the public API only.

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use p2p_fetch::{Block, BlockStore, Fetch, FetchError, Hash, MAX_BLOCK_LEN, MakeBlocks, NOT_FOUND, fetch};
use p2p_protocol::{ErrorCode, Greet, GreetRequest, Protocol, RemoteError, decode, read_frame_max, uvarint};
use p2p_service::{Limits, MakeGreeter, stack};
use p2p_transport::libp2p::{Multiaddr, PeerId, StreamProtocol};
use p2p_transport::{BanConfig, GreetVersion, Node, NodeBuilder, NodeEvent, NodeEvents, RequestError};
use tower::{Service, ServiceExt};

const PATIENCE: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

struct TestNode {
    node: Node,
    events: NodeEvents,
    addr: Multiaddr,
    store: BlockStore,
}

impl TestNode {
    fn id(&self) -> PeerId {
        self.node.local_peer_id()
    }

    async fn wait_for(&mut self, what: &str, mut predicate: impl FnMut(&NodeEvent) -> bool) -> NodeEvent {
        within(what, async {
            loop {
                let event = self.events.recv().await.expect("node running");
                if predicate(&event) {
                    return event;
                }
            }
        })
        .await
    }
}

/// A node serving greet and block fetch, each with the default stack and
/// the limits given, on `listen` (127.0.0.1, QUIC or TCP).
async fn spawn(listen: &str, greet: Limits, fetch: Limits, bans: BanConfig) -> TestNode {
    let store = BlockStore::default();
    let (node, mut events) = NodeBuilder::new()
        .mdns(false)
        .dht(false)
        .listen_on(listen.parse().unwrap())
        .bans(bans)
        .serve::<Greet, _, _>(stack(MakeGreeter::new("hi"), greet))
        .serve::<Fetch, _, _>(stack(MakeBlocks::new(store.clone()), fetch))
        .start()
        .expect("build");
    let addr = within("listening", async {
        loop {
            if let NodeEvent::Listening { address } = events.recv().await.expect("node running") {
                return address;
            }
        }
    })
    .await;
    TestNode { node, events, addr, store }
}

fn open_limits() -> Limits {
    Limits { rate_per_sec: 0, max_in_flight_per_peer: 0, max_in_flight_total: 0, ..Limits::default() }
}

/// `a` connects to `b` and waits until identify says `b` speaks both.
async fn connect(a: &mut TestNode, b: &TestNode) {
    let b_id = b.id();
    a.node.connect(b.addr.clone()).await.expect("connect");
    for protocol in [Greet::NAME, Fetch::NAME] {
        a.wait_for(protocol, |e| matches!(e, NodeEvent::Capable { peer_id, protocol: p } if *peer_id == b_id && *p == protocol))
            .await;
    }
}

fn code<T: std::fmt::Debug>(result: Result<T, RequestError>) -> ErrorCode {
    match result {
        Err(RequestError::Remote(RemoteError { code, .. })) => code,
        other => panic!("expected a remote error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greet_and_fetch_share_a_connection_both_ways_on_both_names() {
    for listen in ["/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"] {
        let bans = BanConfig::default();
        let mut a = spawn(listen, open_limits(), open_limits(), bans.clone()).await;
        let mut b = spawn(listen, open_limits(), open_limits(), bans).await;
        connect(&mut a, &b).await;
        connect(&mut b, &a).await;
        assert_eq!(a.node.peers_speaking::<Fetch>(), vec![b.id()]);
        assert_eq!(a.node.peers_speaking::<Greet>(), vec![b.id()]);

        let from_a = a.store.insert(b"a's block".to_vec()).unwrap();
        let from_b = b.store.insert(vec![7; MAX_BLOCK_LEN]).unwrap(); // the largest there is
        for version in [GreetVersion::V1, GreetVersion::V2] {
            // A fetches from B and greets it; B fetches from A: each way, each name.
            let fetched = a.node.client::<Fetch>().peer(b.id()).with_version(version).oneshot(from_b);
            let Block(bytes) = within("a's fetch", fetched).await.unwrap();
            assert_eq!((bytes.len(), Hash::of(&bytes)), (MAX_BLOCK_LEN, from_b), "{listen} {version:?}");
            let greeted =
                a.node.client::<Greet>().peer(b.id()).with_version(version).oneshot(GreetRequest::new("yo"));
            assert_eq!(within("a's greeting", greeted).await.unwrap().message, "hi (you said: yo)");
            let fetched = within(
                "b's fetch",
                b.node.client::<Fetch>().peer(a.id()).with_version(version).oneshot(from_a),
            );
            assert_eq!(fetched.await, Ok(Block(b"a's block".to_vec())), "{listen} {version:?}");
        }
        // Over one connection each way at most (each dialed the other once): no
        // protocol opened a connection of its own.
        let (direct, relayed) = a.node.connections_to(&b.id());
        assert!(direct <= 2 && relayed == 0, "{direct} direct, {relayed} relayed");
        // The client picks the pipelined name where the peer speaks it.
        assert_eq!(a.node.client::<Fetch>().protocol_for(&b.id()), GreetVersion::V2);

        // An absent block is a typed 404, on either name; the lie-proof check works end to end.
        let missing = Hash::of(b"nobody has this");
        for version in [GreetVersion::V1, GreetVersion::V2] {
            let mut client = a.node.client::<Fetch>().peer(b.id()).with_version(version);
            let answer = within("a 404", client.ready().await.unwrap().call(missing)).await;
            assert_eq!(code(answer), NOT_FOUND, "{version:?}");
        }
        let err = fetch(&mut a.node.client::<Fetch>(), b.id(), missing).await.unwrap_err();
        assert!(
            matches!(err, FetchError::Request(RequestError::Remote(ref e)) if e.code == NOT_FOUND),
            "{err:?}"
        );
        a.node.shutdown().await;
        b.node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_protocol_keeps_its_own_limits() {
    // Fetch allows a burst of one request per peer (one more a second); greet has no rate limit.
    let fetch_limits = Limits { rate_per_sec: 1, rate_burst: 1, ..open_limits() };
    let bans = BanConfig::default();
    let mut a = spawn("/ip4/127.0.0.1/udp/0/quic-v1", open_limits(), open_limits(), bans.clone()).await;
    let s = spawn("/ip4/127.0.0.1/udp/0/quic-v1", open_limits(), fetch_limits, bans).await;
    connect(&mut a, &s).await;
    let hash = s.store.insert(b"rare".to_vec()).unwrap();
    let mut fetcher = a.node.client::<Fetch>();
    assert!(fetch(&mut fetcher, s.id(), hash).await.is_ok());
    let second = within("the second fetch", fetcher.ready().await.unwrap().call((s.id(), hash))).await;
    assert_eq!(code(second), ErrorCode::RATE_LIMITED, "fetch's own bucket is empty");
    // Greet's stack is another: its requests still pass.
    for i in 0..5 {
        let greeted = a.node.client::<Greet>().oneshot((s.id(), GreetRequest::new(format!("{i}"))));
        assert!(within("a greeting", greeted).await.is_ok(), "greeting {i}");
    }
}

/// Sends `bytes` on a fresh stream of `protocol` and returns the answer's code.
async fn hostile(
    control: &mut libp2p_stream::Control,
    peer: PeerId,
    protocol: &'static str,
    bytes: &[u8],
) -> ErrorCode {
    let open = control.open_stream(peer, StreamProtocol::new(protocol));
    let mut stream = within("a stream", open).await.expect("stream");
    // The responder may answer before reading everything (413): the answer is what counts.
    let _ = stream.write_all(bytes).await;
    let _ = stream.close().await;
    let body =
        within("an answer", read_frame_max(&mut stream, Fetch::MAX_FRAME_LEN)).await.expect("an answer");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    match decode::<Result<Block, RemoteError>>(&body) {
        Ok(Err(err)) => err.code,
        other => panic!("expected an error answer, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_answered_by_its_code_and_counts_toward_one_ban_across_protocols() {
    // Five refusals the peer caused, whatever the protocol, ban it.
    let bans = BanConfig { threshold: 5, ..BanConfig::default() };
    let mut s = spawn("/ip4/127.0.0.1/udp/0/quic-v1", open_limits(), open_limits(), bans).await;
    let mut raw = within("a raw client", p2p_load::RawPeer::connect(&s.addr)).await.unwrap();
    let s_id = s.id();

    // Fetch: a body that does not decode as a hash is 400, a length over
    // fetch's frame limit (not greet's) is 413. Greet: the same, at greet's limit.
    let mut garbage = uvarint(3);
    garbage.extend_from_slice(&[1, 2, 3]);
    assert_eq!(hostile(&mut raw, s_id, Fetch::NAME, &garbage).await, ErrorCode::BAD_REQUEST);
    assert_eq!(
        hostile(&mut raw, s_id, Fetch::NAME, &uvarint(Fetch::MAX_FRAME_LEN as u64 + 1)).await,
        ErrorCode::TOO_LARGE
    );
    assert_eq!(
        hostile(&mut raw, s_id, Greet::NAME, &uvarint(Greet::MAX_FRAME_LEN as u64 + 1)).await,
        ErrorCode::TOO_LARGE
    );
    // A length fetch allows but greet does not: each protocol reads with its
    // own limit (the body never comes: 400 for the truncated frame, not 413).
    let big = Greet::MAX_FRAME_LEN as u64 + 1;
    assert!(big <= Fetch::MAX_FRAME_LEN as u64);
    assert_eq!(hostile(&mut raw, s_id, Fetch::NAME, &uvarint(big)).await, ErrorCode::BAD_REQUEST);

    // Three fetch refusals and one greet refusal so far, and no ban: four are not five.
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(200), s.events.recv()).await {
        assert!(!matches!(event, NodeEvent::Banned { .. }), "banned after four refusals");
    }
    // One more greet refusal is the fifth. (The ban may close the connection
    // before the answer arrives: only the ban is waited for.)
    let fifth = raw.open_stream(s_id, StreamProtocol::new(Greet::NAME));
    let mut stream = within("a stream", fifth).await.expect("stream");
    let _ = stream.write_all(&garbage).await;
    let _ = stream.close().await;
    s.wait_for("the ban", |e| matches!(e, NodeEvent::Banned { peer_id, .. } if *peer_id != s_id)).await;
    s.node.shutdown().await;
}
