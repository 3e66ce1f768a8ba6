//! Sending on a pipelined stream: one stream per peer, requests matched to
//! answers by id, answers in any order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use p2p_protocol::v2::{self, Request, Response, STREAM_ERROR_ID};
use p2p_protocol::{GreetRequest, GreetResponse, decode, encode, try_read_frame};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tracing::debug;

use crate::RequestError;
use crate::lock::lock;
use crate::wire::write_bodies;

/// Requests one peer's pipelined stream holds in flight; more wait for a slot
/// (in `poll_ready`, for a `PeerClient`).
pub(crate) const MAX_IN_FLIGHT: usize = 256;

/// Frames queued for the writer of one stream.
const WRITE_QUEUE: usize = 64;

/// Observed addresses from answers are forwarded at most this often per
/// stream (unless they change): they refresh a TTL of a minute or so.
const OBSERVATION_INTERVAL: Duration = Duration::from_secs(1);

/// The outbound side of greet v2 for one peer.
pub(crate) struct Mux {
    peer: PeerId,
    control: libp2p_stream::Control,
    permits: Arc<Semaphore>,
    request_timeout: Duration,
    observations: mpsc::Sender<(PeerId, Multiaddr)>,
    /// The live stream, if any: checked without waiting on the fast path.
    current: Mutex<Option<Arc<Pipe>>>,
    /// Held while a stream is being opened, so concurrent callers share one.
    opening: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Mux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mux").field("peer", &self.peer).finish_non_exhaustive()
    }
}

impl Mux {
    pub(crate) fn new(
        peer: PeerId,
        control: libp2p_stream::Control,
        request_timeout: Duration,
        observations: mpsc::Sender<(PeerId, Multiaddr)>,
    ) -> Self {
        Self {
            peer,
            control,
            permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            request_timeout,
            observations,
            current: Mutex::new(None),
            opening: tokio::sync::Mutex::new(()),
        }
    }

    /// The in-flight slots of this peer's stream.
    pub(crate) fn permits(&self) -> Arc<Semaphore> {
        Arc::clone(&self.permits)
    }

    /// Sends `request` once a slot is free.
    pub(crate) async fn call(self: Arc<Self>, request: GreetRequest) -> Result<GreetResponse, RequestError> {
        let permit = Arc::clone(&self.permits).acquire_owned().await.map_err(|_| RequestError::Shutdown)?;
        self.call_with(permit, request).await
    }

    /// Sends `request` in the slot `permit` holds.
    pub(crate) async fn call_with(
        self: Arc<Self>,
        permit: OwnedSemaphorePermit,
        request: GreetRequest,
    ) -> Result<GreetResponse, RequestError> {
        let pipe = self.pipe().await?;
        let result = pipe.call(request, self.request_timeout).await;
        drop(permit);
        result
    }

    async fn pipe(&self) -> Result<Arc<Pipe>, RequestError> {
        if let Some(pipe) = self.live_pipe() {
            return Ok(pipe);
        }
        let _opening = self.opening.lock().await;
        if let Some(pipe) = self.live_pipe() {
            return Ok(pipe); // another caller opened it meanwhile
        }
        let protocol = StreamProtocol::new(v2::PROTOCOL_NAME);
        let stream =
            tokio::time::timeout(self.request_timeout, self.control.clone().open_stream(self.peer, protocol))
                .await
                .map_err(|_| RequestError::Timeout)?
                .map_err(|err| match err {
                    libp2p_stream::OpenStreamError::UnsupportedProtocol(_) => {
                        RequestError::UnsupportedProtocol
                    }
                    other => RequestError::Io(other.to_string()),
                })?;
        let pipe = Pipe::start(stream, self.peer, self.observations.clone());
        *lock(&self.current) = Some(Arc::clone(&pipe));
        Ok(pipe)
    }

    fn live_pipe(&self) -> Option<Arc<Pipe>> {
        lock(&self.current).as_ref().filter(|pipe| !pipe.is_closed()).cloned()
    }
}

/// One open stream: the writer's queue and the requests awaiting answers.
/// Dropping the last handle closes the write half; the peer then answers what
/// it has and closes, which ends the reader.
struct Pipe {
    bodies: mpsc::Sender<Vec<u8>>,
    pending: Arc<Mutex<Pending>>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Pending {
    calls: HashMap<u64, oneshot::Sender<Result<GreetResponse, RequestError>>>,
    /// Why the stream failed, once it has: every later call fails with it.
    closed: Option<RequestError>,
}

impl Pipe {
    fn start(
        stream: libp2p::Stream,
        peer: PeerId,
        observations: mpsc::Sender<(PeerId, Multiaddr)>,
    ) -> Arc<Self> {
        let (reader, writer) = stream.split();
        let (bodies, queue) = mpsc::channel(WRITE_QUEUE);
        let pending = Arc::new(Mutex::new(Pending::default()));
        tokio::spawn({
            let pending = Arc::clone(&pending);
            async move {
                // No write deadline on this side yet.
                if let Err(err) = write_bodies(writer, queue, Duration::MAX).await {
                    fail_all(&pending, RequestError::Io(err.to_string()));
                }
            }
        });
        tokio::spawn(read_answers(reader, Arc::clone(&pending), peer, observations));
        Arc::new(Self { bodies, pending, next_id: AtomicU64::new(1) })
    }

    fn is_closed(&self) -> bool {
        lock(&self.pending).closed.is_some()
    }

    async fn call(&self, request: GreetRequest, timeout: Duration) -> Result<GreetResponse, RequestError> {
        // Ids start at 1 (0 is the stream-level error) and never repeat on a stream.
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        {
            let mut pending = lock(&self.pending);
            if let Some(err) = &pending.closed {
                return Err(err.clone());
            }
            pending.calls.insert(id, reply);
        }
        if self.bodies.send(encode(&Request { id, request })).await.is_err() {
            self.forget(id);
            return Err(RequestError::ConnectionClosed);
        }
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(RequestError::ConnectionClosed),
            Err(_) => {
                self.forget(id);
                Err(RequestError::Timeout)
            }
        }
    }

    fn forget(&self, id: u64) {
        lock(&self.pending).calls.remove(&id);
    }
}

/// Matches answers to waiting calls until the stream ends, then fails the rest.
async fn read_answers<R>(
    mut reader: R,
    pending: Arc<Mutex<Pending>>,
    peer: PeerId,
    observations: mpsc::Sender<(PeerId, Multiaddr)>,
) where
    R: AsyncRead + Unpin,
{
    let mut last_observed: Option<(Multiaddr, Instant)> = None;
    let reason = loop {
        let response = match try_read_frame(&mut reader).await {
            Ok(Some(body)) => decode::<Response>(&body),
            Ok(None) => break RequestError::ConnectionClosed,
            Err(err) => break RequestError::Io(err.to_string()),
        };
        match response {
            Ok(Response { id: STREAM_ERROR_ID, result }) => {
                break match result {
                    Err(remote) => RequestError::Remote(remote),
                    Ok(_) => RequestError::Io("a stream-level answer that is not an error".into()),
                };
            }
            Ok(Response { id, result }) => {
                // Only an answer to a request of ours says anything: an
                // unsolicited id is ignored, observed address and all.
                let Some(waiter) = lock(&pending).calls.remove(&id) else { continue };
                if let Ok(answer) = &result {
                    let now = Instant::now();
                    let fresh = last_observed.as_ref().is_none_or(|(addr, at)| {
                        addr != &answer.observed_addr || now.duration_since(*at) >= OBSERVATION_INTERVAL
                    });
                    // A candidate only; dropped when the swarm task is busy.
                    if fresh && observations.try_send((peer, answer.observed_addr.clone())).is_ok() {
                        last_observed = Some((answer.observed_addr.clone(), now));
                    }
                }
                let _ = waiter.send(result.map_err(RequestError::Remote));
            }
            Err(err) => break RequestError::Io(format!("undecodable answer: {err}")),
        }
    };
    debug!(%peer, %reason, "pipelined stream ended");
    fail_all(&pending, reason);
}

fn fail_all(pending: &Mutex<Pending>, reason: RequestError) {
    let mut pending = lock(pending);
    let reason = pending.closed.get_or_insert(reason).clone();
    for (_, waiter) in pending.calls.drain() {
        let _ = waiter.send(Err(reason.clone()));
    }
}
