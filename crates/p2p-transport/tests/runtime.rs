//! The node owns its runtime: every task of the node runs on the runtime it
//! was built on, whatever polls its handles. Real swarms on 127.0.0.1 with
//! mDNS off.

mod common;

use p2p_protocol::{Greet, GreetRequest};
use p2p_transport::GreetVersion;
use tower::ServiceExt;

use common::*;

/// A `Client` driven by `futures::executor::block_on` on a plain thread
/// (no tokio runtime there): the pipelined stream it opens, its reader and
/// writer, and its call's timer all belong to the node's runtime.
#[test]
fn a_client_works_from_a_thread_without_a_tokio_runtime() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (server, client) = runtime.block_on(async {
        let server = spawn_node(Script::new("s"), Transport::Quic).await;
        let mut client = spawn_node(Script::new("c"), Transport::Quic).await;
        connect(&mut client, &server).await;
        (server, client)
    });
    let server_id = server.peer_id();
    assert_eq!(
        client.node.client::<Greet>().protocol_for(&server_id),
        GreetVersion::V2,
        "identify has spoken"
    );

    let node = client.node.clone();
    let answers = std::thread::spawn(move || {
        assert!(tokio::runtime::Handle::try_current().is_err(), "no tokio runtime on this thread");
        let v2 = futures::executor::block_on(
            node.client::<Greet>().oneshot((server_id, GreetRequest::new("pipelined"))),
        );
        let again = futures::executor::block_on(
            node.client::<Greet>().oneshot((server_id, GreetRequest::new("again"))),
        );
        let v1 = node.client::<Greet>().peer(server_id).with_version(GreetVersion::V1);
        let v1 = futures::executor::block_on(v1.oneshot(GreetRequest::new("one stream")));
        (v2, again, v1)
    })
    .join()
    .expect("the client's thread does not panic");

    assert_eq!(answers.0.expect("v2 answered").message, "s: pipelined");
    assert_eq!(answers.1.expect("v2 answered again").message, "s: again");
    assert_eq!(answers.2.expect("v1 answered").message, "s: one stream");
    runtime.block_on(async {
        within("shutdown", client.node.shutdown()).await;
        within("shutdown", server.node.shutdown()).await;
    });
}
