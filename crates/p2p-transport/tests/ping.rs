//! Ping answers a peer that does not answer ours: a stock js-libp2p node
//! without the ping service pings us and drops the connection if we stop
//! answering, which libp2p-ping 0.48 does once its own ping was refused.

mod common;

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use p2p_transport::NodeEvent;
use p2p_transport::libp2p::StreamProtocol;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_refuses_our_pings_still_has_its_pings_answered() {
    let mut s = spawn_with(Script::new("s"), Transport::Quic, |b| b).await;
    // Speaks raw streams only: it refuses the ping the node sends at once.
    let mut control = raw_client(&s.addr).await;
    s.wait_for("the raw client's connection", |e| matches!(e, NodeEvent::Connected { .. })).await;

    // As js-libp2p does: a new stream per ping. The node pings the moment the
    // connection is up and is refused within a round trip; forty pings back
    // to back span many round trips, so most of them come after the refusal.
    for round in 0..40u8 {
        let payload = [round; 32];
        let pong = async {
            let mut stream =
                control.open_stream(s.peer_id(), StreamProtocol::new("/ipfs/ping/1.0.0")).await.unwrap();
            stream.write_all(&payload).await.unwrap();
            stream.flush().await.unwrap();
            let mut pong = [0u8; 32];
            stream.read_exact(&mut pong).await.unwrap();
            pong
        };
        let pong = tokio::time::timeout(Duration::from_secs(5), pong)
            .await
            .unwrap_or_else(|_| panic!("ping {round} went unanswered"));
        assert_eq!(pong, payload, "ping {round} echoed");
    }
}
