//! Serving pipelined streams: read requests, call the peer's service, write
//! each answer as soon as it is ready.
//!
//! Every stream has deadlines, so a peer holds our tasks and its connection
//! only while it does work: a stream that sends nothing while none of its
//! requests is in flight is closed after the inbound idle timeout (a request
//! must also arrive whole within it); a write that does not complete within
//! the write timeout (the peer stopped reading) closes the stream and
//! abandons its requests; and once shutdown begins, whatever is left at the
//! end of the grace period is dropped.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncReadExt, StreamExt};
use p2p_protocol::v2::{Request, Response, STREAM_ERROR_ID};
use p2p_protocol::{DecodeError, ErrorCode, GreetResult, RemoteError, decode, encode, try_read_frame};
use p2p_service::PeerContext;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::acceptor::{InboundStream, Incoming};
use super::peers::InboundPeers;
use super::service::{self, MakePeerService, ServiceCell};
use crate::NodeConfig;
use crate::wire::{answer_body, write_bodies};

/// How long a stream waits for the swarm task to register its connection.
const CONNECTION_WAIT: Duration = Duration::from_secs(5);

/// What bounds one served stream (from [`NodeConfig`]).
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Requests in flight; beyond that the stream is not read.
    max_in_flight: usize,
    /// Nothing received while nothing is in flight, for this long: closed.
    idle: Duration,
    /// One write taking longer: the peer stopped reading; closed.
    write: Duration,
}

/// The shutdown signal: `Some(end of the grace period)` once the drain began.
type Stop = watch::Receiver<Option<Instant>>;

/// Takes every inbound v2 stream and serves each in a task of its own.
pub(crate) fn accept_loop(
    mut incoming: Incoming,
    peers: Arc<InboundPeers>,
    make: MakePeerService,
    config: &NodeConfig,
    mut shutdown: Stop,
    streams: TaskTracker,
) -> impl Future<Output = ()> + Send + 'static {
    let limits = Limits {
        max_in_flight: config.max_in_flight_per_stream.max(1),
        idle: config.inbound_stream_idle_timeout,
        write: config.stream_write_timeout,
    };
    async move {
        loop {
            let (peer, connection, remote_addr, stream) = tokio::select! {
                next = incoming.next() => match next {
                    Some(next) => next,
                    None => return,
                },
                _ = shutdown.wait_for(Option::is_some) => return,
            };
            let peers = Arc::clone(&peers);
            let (make, shutdown) = (make.clone(), shutdown.clone());
            streams.spawn(async move {
                let Some(cell) = peers.wait_for(&connection, CONNECTION_WAIT).await else {
                    debug!(%peer, "pipelined stream from a peer with no connection; dropped");
                    return;
                };
                let ctx = PeerContext::new(peer, remote_addr);
                serve(stream, ctx, cell, make, limits, shutdown).await;
            });
        }
    }
}

/// Serves one stream until the requester closes its write half, goes idle,
/// stops reading, or the node shuts down; then answers what it has read
/// (unless the requester stopped reading) and closes.
async fn serve(
    stream: InboundStream,
    ctx: PeerContext,
    cell: ServiceCell,
    make: MakePeerService,
    limits: Limits,
    mut shutdown: Stop,
) {
    let (mut reader, writer) = stream.split();
    let (bodies, ready) = mpsc::channel(limits.max_in_flight);
    let mut writer = tokio::spawn(write_bodies(writer, ready, limits.write));
    let stop_writer = writer.abort_handle();
    // Dropped with this function: a request still running when the stream
    // closes early is abandoned, not left holding its task.
    let mut requests = JoinSet::new();
    // The last frame, a stream-level error, sent once reading has stopped.
    let mut farewell = None;
    // Set when the writer ended before we stopped reading: it failed.
    let mut write_failed = None;

    let peer = ctx.peer_id;
    match service::peer_service(&cell, &make, ctx).await {
        Ok(service) => {
            let permits = Arc::new(Semaphore::new(limits.max_in_flight));
            let others = u32::try_from(limits.max_in_flight - 1).unwrap_or(u32::MAX);
            loop {
                while requests.try_join_next().is_some() {}
                // At the bound, stop reading: the transport's flow control
                // then pushes back on the requester; nothing queues here.
                let permit = tokio::select! {
                    permit = Arc::clone(&permits).acquire_owned() => permit.expect("never closed"),
                    _ = shutdown.wait_for(Option::is_some) => break,
                    written = &mut writer => { write_failed = Some(written); break }
                };
                // Cancelling the read loses a partly read frame: fine, the
                // stream is closing whenever another branch wins.
                let frame = tokio::select! {
                    frame = try_read_frame(&mut reader) => frame,
                    _ = shutdown.wait_for(Option::is_some) => break,
                    written = &mut writer => { write_failed = Some(written); break }
                    () = idle(&permits, others, limits.idle) => {
                        debug!(%peer, "pipelined stream idle; closing it");
                        break;
                    }
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
                        requests.spawn(async move {
                            let result = service::answer(service, peer, request).await;
                            let _ = bodies.send(response_body(id, result)).await;
                            drop(permit);
                        });
                    }
                    Ok(_) => {
                        let err = RemoteError::new(ErrorCode::BAD_REQUEST, "request id 0 is reserved");
                        farewell = Some(response_body(STREAM_ERROR_ID, Err(err)));
                        break;
                    }
                    Err(err) => {
                        debug!(%peer, %err, "undecodable pipelined frame; closing the stream");
                        let err = RemoteError::new(err.code(), err.to_string());
                        farewell = Some(response_body(STREAM_ERROR_ID, Err(err)));
                        break;
                    }
                }
            }
        }
        Err(err) => farewell = Some(response_body(STREAM_ERROR_ID, Err(err))),
    }
    drop(reader);

    let written = match write_failed {
        Some(written) => written,
        None => {
            // The writer ends once the requests still in flight have sent
            // their answers; each write is bounded, and so is the drain.
            let finish = async {
                if let Some(body) = farewell {
                    let _ = bodies.send(body).await;
                }
                drop(bodies);
                (&mut writer).await
            };
            tokio::select! {
                written = finish => written,
                () = drain_over(&mut shutdown) => {
                    debug!(%peer, "shutdown grace over; dropping a pipelined stream");
                    stop_writer.abort();
                    return;
                }
            }
        }
    };
    if let Ok(Err(err)) = written {
        debug!(%peer, %err, "writing pipelined answers failed; closing the stream");
    }
}

/// Resolves once no request of the stream has been in flight for `idle`.
/// `others` is how many permits are free when none is: all but the one held
/// for the frame being read. No request can start meanwhile (only a read
/// starts one), so the wait is not interrupted by one.
async fn idle(permits: &Semaphore, others: u32, idle: Duration) {
    drop(permits.acquire_many(others).await);
    tokio::time::sleep_until(Instant::now() + idle).await;
}

/// Resolves at the end of the shutdown grace period; never before shutdown
/// begins, at once if the node is gone.
async fn drain_over(shutdown: &mut Stop) {
    let deadline = match shutdown.wait_for(Option::is_some).await {
        Ok(deadline) => *deadline,
        Err(_) => return,
    };
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline).await;
    }
}

fn response_body(id: u64, result: GreetResult) -> Vec<u8> {
    answer_body(result, |result| encode(&Response { id, result }))
}
