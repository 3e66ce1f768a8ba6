//! Serving pipelined streams: read requests, call the peer's service, write
//! each answer as soon as it is ready.

use std::sync::Arc;

use futures::{AsyncReadExt, StreamExt};
use libp2p::Stream;
use p2p_protocol::v2::{Request, Response, STREAM_ERROR_ID};
use p2p_protocol::{DecodeError, ErrorCode, GreetResult, RemoteError, decode, encode, try_read_frame};
use p2p_service::PeerContext;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::acceptor::Incoming;
use super::peers::InboundPeers;
use super::service::{self, MakePeerService, ServiceCell};
use crate::wire::{answer_body, write_bodies};

/// How long a stream waits for the swarm task to register its connection.
const CONNECTION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Takes every inbound v2 stream and serves each in a task of its own.
pub(crate) async fn accept_loop(
    mut incoming: Incoming,
    peers: Arc<InboundPeers>,
    make: MakePeerService,
    max_in_flight: usize,
    mut shutdown: watch::Receiver<bool>,
    streams: TaskTracker,
) {
    loop {
        let (peer, connection, remote_addr, stream) = tokio::select! {
            next = incoming.next() => match next {
                Some(next) => next,
                None => return,
            },
            _ = shutdown.wait_for(|down| *down) => return,
        };
        let peers = Arc::clone(&peers);
        let (make, shutdown) = (make.clone(), shutdown.clone());
        streams.spawn(async move {
            let Some(cell) = peers.wait_for(&connection, CONNECTION_WAIT).await else {
                debug!(%peer, "pipelined stream from a peer with no connection; dropped");
                return;
            };
            let ctx = PeerContext::new(peer, remote_addr);
            serve(stream, ctx, cell, make, max_in_flight, shutdown).await;
        });
    }
}

/// Serves one stream until the requester closes its write half (or the node
/// shuts down), then answers what it has read and closes.
async fn serve(
    stream: Stream,
    ctx: PeerContext,
    cell: ServiceCell,
    make: MakePeerService,
    max_in_flight: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut reader, writer) = stream.split();
    let max_in_flight = max_in_flight.max(1);
    let (bodies, ready) = mpsc::channel(max_in_flight);
    let writer = tokio::spawn(write_bodies(writer, ready));

    let peer = ctx.peer_id;
    match service::peer_service(&cell, &make, ctx).await {
        Ok(service) => {
            let permits = Arc::new(Semaphore::new(max_in_flight));
            loop {
                // At the bound, stop reading: the transport's flow control
                // then pushes back on the requester; nothing queues here.
                let permit = tokio::select! {
                    permit = Arc::clone(&permits).acquire_owned() => permit.expect("never closed"),
                    _ = shutdown.wait_for(|down| *down) => break,
                };
                let frame = tokio::select! {
                    frame = try_read_frame(&mut reader) => frame,
                    _ = shutdown.wait_for(|down| *down) => break,
                };
                let request = match frame {
                    Ok(Some(body)) => decode::<Request>(&body),
                    Ok(None) => break, // the requester is done
                    Err(DecodeError::Io(err)) => {
                        debug!(%peer, %err, "pipelined stream failed");
                        break;
                    }
                    Err(err) => Err(err),
                };
                match request {
                    Ok(Request { id, request }) if id != STREAM_ERROR_ID => {
                        let service = service.clone();
                        let bodies = bodies.clone();
                        // A task per request: a slow one never holds up the rest.
                        tokio::spawn(async move {
                            let result = service::answer(service, peer, request).await;
                            let _ = bodies.send(response_body(id, result)).await;
                            drop(permit);
                        });
                    }
                    Ok(_) => {
                        let err = RemoteError::new(ErrorCode::BAD_REQUEST, "request id 0 is reserved");
                        let _ = bodies.send(response_body(STREAM_ERROR_ID, Err(err))).await;
                        break;
                    }
                    Err(err) => {
                        debug!(%peer, %err, "undecodable pipelined frame; closing the stream");
                        let err = RemoteError::new(err.code(), err.to_string());
                        let _ = bodies.send(response_body(STREAM_ERROR_ID, Err(err))).await;
                        break;
                    }
                }
            }
        }
        Err(err) => {
            let _ = bodies.send(response_body(STREAM_ERROR_ID, Err(err))).await;
        }
    }
    // The writer ends once the requests still in flight have sent their answers.
    drop(bodies);
    if let Ok(Err(err)) = writer.await {
        debug!(%peer, %err, "writing pipelined answers failed");
    }
}

fn response_body(id: u64, result: GreetResult) -> Vec<u8> {
    answer_body(result, |result| encode(&Response { id, result }))
}
