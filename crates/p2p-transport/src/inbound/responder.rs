//! Serving pipelined streams: read requests, call the peer's service, write
//! each answer as soon as it is ready.
//!
//! Every stream has deadlines, so a peer holds our tasks and its connection
//! only while it does work: each request is answered within the request
//! timeout (408 then, as a 1.0.0 exchange is bounded by it, whatever the
//! user's `MakeService` does); a stream that sends nothing while none of its
//! requests is in flight is closed after the inbound idle timeout (a request
//! must also arrive whole within it); a write that does not complete within
//! the write timeout (the peer stopped reading) closes the stream and
//! abandons its requests; and once shutdown begins, whatever is left at the
//! end of the grace period is dropped.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::stream::FuturesUnordered;
use futures::{AsyncReadExt, StreamExt};
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use p2p_protocol::v2::{Request, Response, STREAM_ERROR_ID};
use p2p_protocol::{DecodeError, ErrorCode, Protocol, RemoteError, decode, encode};
use p2p_service::PeerContext;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use super::drain::{CONNECTION_WAIT, Stop, drain_over};
use super::server::{Server, StreamLimits};
use super::service::{self, Answer, MakePeerService, ServiceCell};
use crate::wakers::WakingStream;
use crate::wire::{answer_body, frames, write_bodies};

/// What bounds one served stream.
#[derive(Debug, Clone, Copy)]
struct Limits {
    stream: StreamLimits,
    /// One request, from its arrival to its answer: then answered 408 and
    /// dropped (its handler with it), freeing its slot.
    request: std::time::Duration,
}

impl<P: Protocol> Server<P> {
    /// Serves the pipelined `stream` in a task of its own (none once shutdown has begun).
    pub(crate) fn spawn_v2(
        self: &Arc<Self>,
        peer: PeerId,
        connection: ConnectionId,
        remote_addr: Multiaddr,
        stream: WakingStream,
    ) {
        if self.draining() {
            return;
        }
        let this = Arc::clone(self);
        self.tasks.spawn_on(
            async move {
                let Some(cell) = this.peers.wait_for(&connection, CONNECTION_WAIT).await else {
                    debug!(%peer, "pipelined stream from a peer with no connection; dropped");
                    return;
                };
                let ctx = PeerContext::new(peer, remote_addr);
                let limits = Limits { stream: this.stream_limits, request: this.timeout };
                serve::<P>(stream, ctx, cell, &this.make, limits, this.shutdown.clone(), &this.runtime).await;
            },
            &self.runtime,
        );
    }
}

/// Serves one stream until the requester closes its write half, goes idle,
/// stops reading, or the node shuts down; then answers what it has read
/// (unless the requester stopped reading) and closes.
///
/// The stream's requests run inside this task, in a `FuturesUnordered`
/// bounded by the in-flight limit, each answered as soon as it is ready: a
/// request that *waits* (on I/O, a timer, a lock) never holds up the others,
/// and each stream has a task of its own, so nothing on one stream holds up
/// another. A handler that keeps its thread busy without yielding (CPU work
/// inside `poll`) does hold up the other requests of its own stream for that
/// long: such work belongs in `spawn_blocking` or a task of its own.
async fn serve<P: Protocol>(
    stream: WakingStream,
    ctx: PeerContext,
    cell: ServiceCell<P>,
    make: &MakePeerService<P>,
    limits: Limits,
    mut shutdown: Stop,
    runtime: &Handle,
) {
    let (reader, writer) = stream.split();
    let (bodies, ready) = mpsc::channel(limits.stream.max_in_flight);
    let mut writer = runtime.spawn(write_bodies(writer, ready, limits.stream.write, P::MAX_FRAME_LEN));
    let stop_writer = writer.abort_handle();
    // Dropped with this function: a request still running when the stream
    // closes early is abandoned.
    let mut requests = FuturesUnordered::new();
    // Answers ready while the writer's queue was full, oldest first; they
    // count against the in-flight bound until queued.
    let mut unsent: VecDeque<Vec<u8>> = VecDeque::new();
    // The last frame, a stream-level error, sent once reading has stopped.
    let mut farewell = None;
    // Set when the writer ended before we stopped reading: it failed.
    let mut write_failed = None;

    let peer = ctx.peer_id;
    match service::peer_service::<P>(&cell, make, ctx).await {
        Ok(template) => {
            // The stream calls its own clone; `template` replaces it when a
            // request takes it away (see `service::start`).
            let mut service = template.clone();
            // The frames as a stream: a read in progress survives the other
            // branches of the loop below (a partly read frame is kept).
            let mut frames = frames(reader, P::MAX_FRAME_LEN);
            let mut stop = shutdown.clone();
            let mut stopped = std::pin::pin!(async move {
                let _ = stop.wait_for(Option::is_some).await;
            });
            // One timer for the stream's idleness, re-armed only when it fires.
            let mut idle_since = Some(Instant::now());
            let idle_timer = tokio::time::sleep(limits.stream.idle);
            tokio::pin!(idle_timer);
            loop {
                let in_flight = requests.len() + unsent.len();
                tokio::select! {
                    biased;
                    () = &mut stopped => break,
                    written = &mut writer => { write_failed = Some(written); break }
                    permit = bodies.reserve(), if !unsent.is_empty() => {
                        // (An error: the writer ended, and its branch says why.)
                        if let Ok(permit) = permit {
                            permit.send(unsent.pop_front().expect("not empty"));
                            if requests.is_empty() && unsent.is_empty() {
                                idle_since = Some(Instant::now());
                            }
                        }
                    }
                    Some((id, outcome)) = requests.next(), if !requests.is_empty() => {
                        let body = response_body::<P>(id, service::answered::<P>(outcome, &peer));
                        // In order behind the answers that already wait.
                        if !unsent.is_empty() {
                            unsent.push_back(body);
                        } else if let Err(mpsc::error::TrySendError::Full(body)) = bodies.try_send(body) {
                            unsent.push_back(body);
                        }
                        if requests.is_empty() && unsent.is_empty() {
                            idle_since = Some(Instant::now());
                        }
                    }
                    // At the bound, stop reading: the transport's flow control
                    // then pushes back on the requester; nothing queues here.
                    frame = frames.next(), if in_flight < limits.stream.max_in_flight => {
                        let request = match frame.expect("an endless stream") {
                            Ok(Some(body)) => decode::<Request<P::Request>>(&body),
                            Ok(None) => break, // the requester is done
                            Err(DecodeError::Io(err)) => {
                                debug!(%peer, %err, "pipelined stream failed");
                                break;
                            }
                            Err(err) => Err(err),
                        };
                        match request {
                            Ok(Request { id, request }) if id != STREAM_ERROR_ID => {
                                idle_since = None;
                                let started = service::start::<P>(&mut service, &template, request);
                                let answer = service::within::<P>(limits.request, started);
                                requests.push(async move { (id, answer.await) });
                            }
                            Ok(_) => {
                                let err = RemoteError::new(ErrorCode::BAD_REQUEST, "request id 0 is reserved");
                                farewell = Some(response_body::<P>(STREAM_ERROR_ID, Err(err)));
                                break;
                            }
                            Err(err) => {
                                debug!(%peer, %err, "undecodable pipelined frame; closing the stream");
                                let err = RemoteError::new(err.code(), err.to_string());
                                farewell = Some(response_body::<P>(STREAM_ERROR_ID, Err(err)));
                                break;
                            }
                        }
                    }
                    // Nothing in flight: idle since `idle_since`; a request
                    // must also arrive whole within the idle timeout.
                    () = &mut idle_timer, if in_flight == 0 => {
                        let since = *idle_since.get_or_insert_with(Instant::now);
                        if Instant::now() >= since + limits.stream.idle {
                            debug!(%peer, "pipelined stream idle; closing it");
                            break;
                        }
                        idle_timer.as_mut().reset(since + limits.stream.idle);
                    }
                }
            }
            drop(frames); // the read half
        }
        Err(err) => farewell = Some(response_body::<P>(STREAM_ERROR_ID, Err(err))),
    }

    let written = match write_failed {
        Some(written) => written,
        None => {
            // What is still in flight is answered, then the farewell; each
            // write is bounded, and so is the drain.
            let finish = async {
                for body in unsent.drain(..) {
                    let _ = bodies.send(body).await;
                }
                while let Some((id, outcome)) = requests.next().await {
                    let _ = bodies.send(response_body::<P>(id, service::answered::<P>(outcome, &peer))).await;
                }
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

fn response_body<P: Protocol>(id: u64, result: Answer<P>) -> Vec<u8> {
    answer_body(result, P::MAX_FRAME_LEN, |result| encode(&Response::<P::Response> { id, result }))
}
