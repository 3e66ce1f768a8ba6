//! Sending on a pipelined stream: one stream per peer, requests matched to
//! answers by id, answers in any order.
//!
//! Every call has one deadline, `request_timeout` from `call`: waiting for a
//! slot, for the stream to open, for room in the writer's queue and for the
//! answer all count against it, so one wedged peer never holds a caller
//! longer than that.
//!
//! A stream is opened by a task of its own, once for all the callers waiting
//! at the time: when the open fails (or times out) they all fail with its
//! error at once, and so does every call in the [`OPEN_BACKOFF`] after it;
//! the first call after that tries again.
//!
//! A stream with no request in flight for its idle timeout closes its write
//! half (the responder then closes too), so that the connection's own idle
//! timeout applies again; the next call opens a new stream.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use p2p_protocol::v2::{self, Request, Response, STREAM_ERROR_ID};
use p2p_protocol::{GreetRequest, GreetResponse, decode, encode, try_read_frame};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::lock::lock;
use crate::wire::write_bodies;
use crate::{NodeConfig, RequestError};

/// Requests one peer's pipelined stream holds in flight; more wait for a slot
/// (in `poll_ready`, for a `PeerClient`).
pub(crate) const MAX_IN_FLIGHT: usize = 256;

/// Frames queued for the writer of one stream.
const WRITE_QUEUE: usize = 64;

/// Observed addresses from answers are forwarded at most this often per
/// stream (unless they change): they refresh a TTL of a minute or so.
const OBSERVATION_INTERVAL: Duration = Duration::from_secs(1);

/// After an open fails, calls fail at once with its error for this long:
/// a peer that refuses or ignores the stream is asked at most once a second,
/// not once per call.
const OPEN_BACKOFF: Duration = Duration::from_secs(1);

/// How long our pipelined streams may idle and take to write: the node's
/// settings, which the `Client` carries to each call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamTimeouts {
    /// No request in flight for this long: the stream closes.
    pub(crate) idle: Duration,
    /// A write that takes longer: the peer stopped reading; the stream fails.
    pub(crate) write: Duration,
}

impl StreamTimeouts {
    pub(crate) fn new(config: &NodeConfig) -> Self {
        Self { idle: config.stream_idle_timeout, write: config.stream_write_timeout }
    }
}

/// The outbound side of greet v2 for one peer.
pub(crate) struct Mux {
    peer: PeerId,
    control: libp2p_stream::Control,
    permits: Arc<Semaphore>,
    request_timeout: Duration,
    observations: mpsc::Sender<(PeerId, Multiaddr)>,
    /// The stream, or how far opening one has got.
    slot: Mutex<Slot>,
}

enum Slot {
    /// No stream yet, or none since the last one retired.
    Empty,
    /// A task is opening one; every caller waits on the same outcome.
    Opening(watch::Receiver<Option<Opened>>),
    Open(Arc<Pipe>),
    /// The last open failed: calls fail with its error until `retry_at`.
    Failed {
        error: RequestError,
        retry_at: Instant,
    },
}

type Opened = Result<Arc<Pipe>, RequestError>;

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
            slot: Mutex::new(Slot::Empty),
        }
    }

    /// The in-flight slots of this peer's stream.
    pub(crate) fn permits(&self) -> Arc<Semaphore> {
        Arc::clone(&self.permits)
    }

    /// Sends `request` once a slot is free. The deadline starts now, and
    /// covers the wait for the slot.
    pub(crate) fn call(
        self: Arc<Self>,
        request: GreetRequest,
        timeouts: StreamTimeouts,
    ) -> impl Future<Output = Result<GreetResponse, RequestError>> + Send + 'static {
        let deadline = Instant::now() + self.request_timeout;
        let call = async move {
            let permit =
                Arc::clone(&self.permits).acquire_owned().await.map_err(|_| RequestError::Shutdown)?;
            self.send(permit, request, timeouts).await
        };
        within(deadline, call)
    }

    /// Sends `request` in the slot `permit` holds. The deadline starts now.
    pub(crate) fn call_with(
        self: Arc<Self>,
        permit: OwnedSemaphorePermit,
        request: GreetRequest,
        timeouts: StreamTimeouts,
    ) -> impl Future<Output = Result<GreetResponse, RequestError>> + Send + 'static {
        let deadline = Instant::now() + self.request_timeout;
        within(deadline, async move { self.send(permit, request, timeouts).await })
    }

    async fn send(
        self: Arc<Self>,
        permit: OwnedSemaphorePermit,
        request: GreetRequest,
        timeouts: StreamTimeouts,
    ) -> Result<GreetResponse, RequestError> {
        let call = loop {
            let pipe = self.pipe(timeouts).await?;
            // None: the stream retired (idle) between our look and now.
            if let Some(call) = pipe.register()? {
                break call;
            }
        };
        let result = call.send(request).await;
        drop(permit);
        result
    }

    /// The live stream, opening one if there is none.
    async fn pipe(self: &Arc<Self>, timeouts: StreamTimeouts) -> Result<Arc<Pipe>, RequestError> {
        let mut opening = {
            let mut slot = lock(&self.slot);
            match &*slot {
                Slot::Open(pipe) if pipe.is_usable() => return Ok(Arc::clone(pipe)),
                Slot::Failed { error, retry_at } if Instant::now() < *retry_at => return Err(error.clone()),
                // (A sender gone without an outcome: the opening task died; open anew.)
                Slot::Opening(opened) if opened.has_changed().is_ok() => opened.clone(),
                Slot::Empty | Slot::Open(_) | Slot::Failed { .. } | Slot::Opening(_) => {
                    let opened = self.open(timeouts);
                    *slot = Slot::Opening(opened.clone());
                    opened
                }
            }
        };
        let opened = opening.wait_for(Option::is_some).await.map_err(|_| RequestError::Shutdown)?;
        opened.clone().expect("waited for an outcome")
    }

    /// Opens a stream in a task of its own (no caller's deadline or
    /// cancellation cuts it short for the others), bounded by the request
    /// timeout; the outcome goes to the slot and to every caller waiting.
    fn open(self: &Arc<Self>, timeouts: StreamTimeouts) -> watch::Receiver<Option<Opened>> {
        let (outcome, opened) = watch::channel(None);
        let mux = Arc::downgrade(self);
        let (mut control, peer, observations) = (self.control.clone(), self.peer, self.observations.clone());
        let open_timeout = self.request_timeout;
        tokio::spawn(async move {
            let protocol = StreamProtocol::new(v2::PROTOCOL_NAME);
            let opened = match tokio::time::timeout(open_timeout, control.open_stream(peer, protocol)).await {
                Ok(Ok(stream)) => Ok(Pipe::start(stream, peer, observations, timeouts)),
                Ok(Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(_))) => {
                    Err(RequestError::UnsupportedProtocol)
                }
                Ok(Err(other)) => Err(RequestError::Io(other.to_string())),
                Err(_) => Err(RequestError::Timeout),
            };
            if let Some(mux) = mux.upgrade() {
                *lock(&mux.slot) = match &opened {
                    Ok(pipe) => Slot::Open(Arc::clone(pipe)),
                    Err(error) => {
                        debug!(%peer, %error, "could not open a pipelined stream");
                        Slot::Failed { error: error.clone(), retry_at: Instant::now() + OPEN_BACKOFF }
                    }
                };
            }
            outcome.send_replace(Some(opened));
        });
        opened
    }
}

/// `call`'s result, or [`RequestError::Timeout`] at `deadline`.
async fn within<T>(
    deadline: Instant,
    call: impl Future<Output = Result<T, RequestError>>,
) -> Result<T, RequestError> {
    tokio::time::timeout_at(deadline, call).await.unwrap_or(Err(RequestError::Timeout))
}

/// One open stream: the requests awaiting answers and the writer's queue.
/// Dropping the last handle closes the write half; the peer then answers what
/// it has and closes, which ends the reader.
struct Pipe {
    pending: Arc<Mutex<Pending>>,
    next_id: AtomicU64,
}

struct Pending {
    calls: HashMap<u64, oneshot::Sender<Result<GreetResponse, RequestError>>>,
    /// The writer's queue; gone once the stream retires or fails, which
    /// closes the write half when the last clone (a call sending) is dropped.
    bodies: Option<mpsc::Sender<Vec<u8>>>,
    /// Since when no request has been in flight (`None` while one is).
    idle_since: Option<Instant>,
    /// Why the stream failed, once it has: every later call fails with it.
    closed: Option<RequestError>,
    /// Cancelled when the stream fails: the reader stops waiting.
    dead: CancellationToken,
}

impl Pending {
    /// Takes `id`'s waiter (an answer came, or the call gave up).
    fn take(&mut self, id: u64) -> Option<oneshot::Sender<Result<GreetResponse, RequestError>>> {
        let waiter = self.calls.remove(&id);
        if self.calls.is_empty() && self.idle_since.is_none() {
            self.idle_since = Some(Instant::now());
        }
        waiter
    }
}

impl Pipe {
    fn start(
        stream: libp2p::Stream,
        peer: PeerId,
        observations: mpsc::Sender<(PeerId, Multiaddr)>,
        timeouts: StreamTimeouts,
    ) -> Arc<Self> {
        let (reader, writer) = stream.split();
        let (bodies, queue) = mpsc::channel(WRITE_QUEUE);
        let pending = Arc::new(Mutex::new(Pending {
            calls: HashMap::new(),
            bodies: Some(bodies),
            idle_since: Some(Instant::now()),
            closed: None,
            dead: CancellationToken::new(),
        }));
        tokio::spawn(write_requests(writer, queue, Arc::clone(&pending), timeouts));
        tokio::spawn(read_answers(reader, Arc::clone(&pending), peer, observations));
        Arc::new(Self { pending, next_id: AtomicU64::new(1) })
    }

    /// Neither failed nor retired: new calls may use it.
    fn is_usable(&self) -> bool {
        let pending = lock(&self.pending);
        pending.closed.is_none() && pending.bodies.is_some()
    }

    /// A call on this stream, its id registered; `None` if the stream has
    /// retired (the caller opens a new one), an error if it failed.
    fn register(&self) -> Result<Option<Call>, RequestError> {
        // Ids start at 1 (0 is the stream-level error) and never repeat on a stream.
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let mut pending = lock(&self.pending);
        if let Some(err) = &pending.closed {
            return Err(err.clone());
        }
        // Registered under the same lock as the retirement's check, so a
        // stream never retires with a call about to use it.
        let Some(bodies) = pending.bodies.clone() else { return Ok(None) };
        pending.calls.insert(id, reply);
        pending.idle_since = None;
        Ok(Some(Call { id, bodies: Some(bodies), answer, pending: Arc::clone(&self.pending) }))
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // The calls still sending hold clones; the write half closes after them.
        lock(&self.pending).bodies = None;
    }
}

/// A request registered on a stream. Dropped (answered, or given up on at
/// the deadline), it leaves the stream's table.
struct Call {
    id: u64,
    /// The writer's queue, held only until the request is queued: a call
    /// waiting for its answer must not keep the write half open.
    bodies: Option<mpsc::Sender<Vec<u8>>>,
    answer: oneshot::Receiver<Result<GreetResponse, RequestError>>,
    pending: Arc<Mutex<Pending>>,
}

impl Call {
    async fn send(mut self, request: GreetRequest) -> Result<GreetResponse, RequestError> {
        let body = encode(&Request { id: self.id, request });
        let bodies = self.bodies.take().expect("sent once");
        if bodies.send(body).await.is_err() {
            return Err(lock(&self.pending).closed.clone().unwrap_or(RequestError::ConnectionClosed));
        }
        drop(bodies);
        (&mut self.answer).await.unwrap_or(Err(RequestError::ConnectionClosed))
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        lock(&self.pending).take(self.id);
    }
}

/// Writes the queued requests until the queue closes (the stream retired or
/// its last handle went) or a write fails. A stream with nothing in flight
/// for the idle timeout retires: its queue closes, then its write half; a
/// peer that does not close its own half in answer is cut off.
async fn write_requests<W>(
    writer: W,
    queue: mpsc::Receiver<Vec<u8>>,
    pending: Arc<Mutex<Pending>>,
    timeouts: StreamTimeouts,
) where
    W: futures::AsyncWrite + Unpin,
{
    let dead = lock(&pending).dead.clone();
    let write = async {
        if let Err(err) = write_bodies(writer, queue, timeouts.write).await {
            let reason = match err.kind() {
                // The peer stopped reading our requests: it will not answer them either.
                std::io::ErrorKind::TimedOut => RequestError::Timeout,
                _ => RequestError::Io(err.to_string()),
            };
            fail_all(&pending, reason);
        }
    };
    let retire = async {
        tokio::select! {
            () = done_when_idle(&pending, timeouts.idle) => {}
            () = dead.cancelled() => return,
        }
        // The responder answers our close with its own; one that keeps its
        // half open is not waited for longer than a write would be.
        tokio::select! {
            () = tokio::time::sleep_until(Instant::now() + timeouts.write) => {
                fail_all(&pending, RequestError::ConnectionClosed);
            }
            () = dead.cancelled() => {}
        }
    };
    tokio::join!(write, retire);
}

/// Resolves once the stream takes no more requests and has none in flight:
/// it retired (nothing in flight for `idle`: its queue closes here), or its
/// last handle went and its last call finished.
async fn done_when_idle(pending: &Mutex<Pending>, idle: Duration) {
    let mut check_at = Instant::now() + idle;
    loop {
        tokio::time::sleep_until(check_at).await;
        let mut state = lock(pending);
        let now = Instant::now();
        check_at = match (state.bodies.is_some(), state.idle_since) {
            (true, Some(since)) if now >= since + idle => {
                state.bodies = None;
                debug!("pipelined stream idle; closing it");
                return;
            }
            (false, Some(_)) => return,
            (_, Some(since)) => since + idle,
            (_, None) => now + idle,
        };
    }
}

/// Matches answers to waiting calls until the stream ends (or fails), then
/// fails the rest.
async fn read_answers<R>(
    mut reader: R,
    pending: Arc<Mutex<Pending>>,
    peer: PeerId,
    observations: mpsc::Sender<(PeerId, Multiaddr)>,
) where
    R: AsyncRead + Unpin,
{
    let dead = lock(&pending).dead.clone();
    let mut last_observed: Option<(Multiaddr, Instant)> = None;
    let reason = loop {
        let frame = tokio::select! {
            frame = try_read_frame(&mut reader) => frame,
            // The writer failed: the stream is being dropped, nothing more is read.
            () = dead.cancelled() => return,
        };
        let response = match frame {
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
                let Some(waiter) = lock(&pending).take(id) else { continue };
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

/// The stream failed (or ended): every call on it fails, later ones too, and
/// both halves stop.
fn fail_all(pending: &Mutex<Pending>, reason: RequestError) {
    let mut pending = lock(pending);
    let reason = pending.closed.get_or_insert(reason).clone();
    for (_, waiter) in pending.calls.drain() {
        let _ = waiter.send(Err(reason.clone()));
    }
    pending.bodies = None;
    pending.dead.cancel();
}
