//! Bare stream protocols (`NodeBuilder::serve_stream`, `Node::open_stream`):
//! a stream reaches its handler whole, both ways, over QUIC and TCP; it
//! counts against the per-connection stream cap like every protocol's; a
//! name nobody serves is refused; the shutdown drain waits for a handler,
//! then drops it at the end of the grace.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use p2p_transport::libp2p::{PeerId, Stream};
use p2p_transport::{NodeBuilder, RequestError};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use common::*;

const COUNT: &str = "/p2p-node-test/count/1.0.0";
/// The server's streams per connection, in the cap test.
const CAP: usize = 8;

/// Reads the whole stream, then answers how many bytes it read (u64 BE) and
/// that many bytes of 0x5a, and closes: a small perf.
async fn count(_: PeerId, mut stream: Stream) {
    let mut received = Vec::new();
    if stream.read_to_end(&mut received).await.is_err() {
        return;
    }
    let n = received.len();
    let _ = stream.write_all(&(n as u64).to_be_bytes()).await;
    let _ = stream.write_all(&vec![0x5a; n]).await;
    let _ = stream.close().await;
}

fn counter_node(builder: NodeBuilder) -> NodeBuilder {
    builder.serve_stream(COUNT, count)
}

async fn client_for(server: &TestNode, transport: Transport) -> TestNode {
    let client = spawn_with(Script::new("c"), transport, |b| b).await;
    within("connect", client.node.connect(server.addr.clone())).await.expect("connects");
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_stream_gets_every_byte_both_ways_over_quic_and_tcp() {
    for transport in [Transport::Quic, Transport::Tcp] {
        let server = spawn_with(Script::new("s"), transport.clone(), counter_node).await;
        let client = client_for(&server, transport.clone()).await;
        for size in [0usize, 1, 100_000, 3 * 1024 * 1024 + 7] {
            let mut stream =
                within("open", client.node.open_stream(server.peer_id(), COUNT)).await.expect("opens");
            let sent: Vec<u8> = (0..size).map(|i| i as u8).collect();
            stream.write_all(&sent).await.unwrap();
            stream.close().await.unwrap();
            let mut answer = Vec::new();
            within("the answer", stream.read_to_end(&mut answer)).await.unwrap();
            assert_eq!(answer.len(), 8 + size, "{transport:?}, {size} bytes");
            assert_eq!(u64::from_be_bytes(answer[..8].try_into().unwrap()), size as u64);
            assert!(answer[8..].iter().all(|b| *b == 0x5a));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_nobody_serves_is_refused() {
    let server = spawn_with(Script::new("s"), Transport::Quic, |b| b).await;
    let client = client_for(&server, Transport::Quic).await;
    let opened = within("open", client.node.open_stream(server.peer_id(), COUNT)).await;
    assert_eq!(opened.err(), Some(RequestError::UnsupportedProtocol));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_streams_count_against_the_per_connection_stream_cap() {
    // Yamux (TCP) lets a peer open twice the cap (counting both sides',
    // ping's and identify's too), so the acceptor's own cap is what refuses
    // the stream beyond it here.
    let served = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Semaphore::new(0));
    let (arrived_tx, mut arrived) = mpsc::channel(8);
    let (done_tx, mut done) = mpsc::channel(8);
    let (s, r) = (Arc::clone(&served), Arc::clone(&release));
    let server = spawn_with(Script::new("s"), Transport::Tcp, move |b| {
        b.max_concurrent_streams(CAP).serve_stream(COUNT, move |peer, stream| {
            s.fetch_add(1, Ordering::SeqCst);
            let (release, arrived, done) = (Arc::clone(&r), arrived_tx.clone(), done_tx.clone());
            async move {
                arrived.send(()).await.unwrap();
                let _held = release.acquire().await;
                count(peer, stream).await;
                done.send(()).await.unwrap();
            }
        })
    })
    .await;
    let client = client_for(&server, Transport::Tcp).await;
    let open = || async {
        let mut stream =
            within("open", client.node.open_stream(server.peer_id(), COUNT)).await.expect("opens");
        stream.write_all(b"x").await.unwrap();
        stream.close().await.unwrap();
        stream
    };
    let mut held = Vec::new();
    for _ in 0..CAP {
        held.push(open().await);
    }
    for _ in 0..CAP {
        within("a stream served", arrived.recv()).await.unwrap();
    }

    // One more is dropped as soon as it is negotiated: writing to it may fail already.
    let mut third = within("open", client.node.open_stream(server.peer_id(), COUNT)).await.unwrap();
    let _ = third.write_all(b"x").await;
    let _ = third.close().await;
    let mut answer = Vec::new();
    let dropped = within("the third stream to be dropped", third.read_to_end(&mut answer)).await;
    assert!(dropped.is_err() || answer.is_empty(), "the third stream was served: {answer:?}");
    assert_eq!(served.load(Ordering::SeqCst), CAP, "the handler never saw the stream beyond the cap");

    release.add_permits(CAP);
    for stream in &mut held {
        let mut answer = Vec::new();
        within("an answer", stream.read_to_end(&mut answer)).await.unwrap();
        assert_eq!(answer.len(), 8 + 1);
    }
    // Their slots are free again once their handlers are done.
    for _ in 0..CAP {
        within("a handler done", done.recv()).await.unwrap();
    }
    let mut fourth = open().await;
    release.add_permits(1);
    let mut answer = Vec::new();
    within("the fourth answer", fourth.read_to_end(&mut answer)).await.unwrap();
    assert_eq!(answer.len(), 8 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_a_stream_handler_until_the_grace_then_drops_it() {
    let grace = Duration::from_secs(1);
    // Held by the handler's future for as long as it lives (and by the
    // node's handler closure until shutdown): `alive.recv()` ends once both are gone.
    let (held, mut alive) = mpsc::channel::<()>(1);
    let (arrived_tx, mut arrived) = mpsc::channel(1);
    let server = spawn_with(Script::new("s"), Transport::Quic, move |b| {
        b.shutdown_grace(grace).serve_stream(COUNT, move |_, stream| {
            let (held, arrived) = (held.clone(), arrived_tx.clone());
            async move {
                let _stream = stream;
                let _held = held;
                arrived.send(()).await.unwrap();
                std::future::pending::<()>().await; // a handler that never ends
            }
        })
    })
    .await;
    let client = client_for(&server, Transport::Quic).await;
    let _stream = within("open", client.node.open_stream(server.peer_id(), COUNT)).await.unwrap();
    within("the handler", arrived.recv()).await.unwrap();

    let start = Instant::now();
    within("shutdown", server.node.shutdown()).await;
    let took = start.elapsed();
    // The drain waited for the stream's task (it is tracked)...
    assert!(took >= grace, "shutdown took {took:?}: it did not wait for the stream's task");
    assert!(took < grace + Duration::from_secs(3), "shutdown took {took:?} with a grace of {grace:?}");
    // ...and dropped it at the end of the grace.
    let released = tokio::time::timeout(Duration::from_millis(500), alive.recv()).await;
    assert!(released.is_ok(), "the handler's future outlived the grace");
}
