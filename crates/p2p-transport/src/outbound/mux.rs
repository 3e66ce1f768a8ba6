//! Sending on a pipelined stream: one stream per peer, requests matched to
//! answers by id, answers in any order.
//!
//! Every call has one deadline, `request_timeout` from `call`: waiting for a
//! slot, for the stream to open, for room in the writer's queue and for the
//! answer all count against it, so one wedged peer never holds a caller
//! longer than that. Once a call is registered on the open stream (at once,
//! when one is open) its deadline is kept by the stream's reaper, one timer
//! per stream; only the waits before that (a slot, an open) have a timer
//! each.
//!
//! A stream is opened by a task of its own, once for all the callers waiting
//! at the time: when the open fails (or times out) they all fail with its
//! error at once, and so does every call in the [`OPEN_BACKOFF`] after it;
//! the first call after that tries again.
//!
//! A stream with no request in flight for its idle timeout closes its write
//! half (the responder then closes too), so that the connection's own idle
//! timeout applies again; the next call opens a new stream. Once the stream
//! has ended, the peer's connections are woken: libp2p re-checks whether a
//! connection is idle only when its task runs, and a peer that sends nothing
//! (not even ping) would otherwise keep it open for good.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId, StreamProtocol};
use p2p_protocol::Protocol;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, watch};
use tokio::time::Instant;
use tracing::debug;

use crate::backoff::Backoff;
use crate::lock::lock;
use crate::wakers::ConnectionWakers;
use crate::{NodeConfig, RequestError};

mod pipe;

use pipe::{Call, Pipe};

/// Requests one peer's pipelined stream holds in flight; more wait for a slot
/// (in `poll_ready`, for a `PeerClient`).
pub(crate) const MAX_IN_FLIGHT: usize = 256;

/// Frames queued for the writer of one stream.
const WRITE_QUEUE: usize = 64;

/// Observed addresses from answers are forwarded at most this often per
/// stream (unless they change): they refresh a TTL of a minute or so.
const OBSERVATION_INTERVAL: Duration = Duration::from_secs(1);

/// After an open fails, calls fail at once with its error for about this
/// long (a [`Backoff`] from here, doubling per failure in a row up to
/// [`OPEN_BACKOFF_MAX`], with jitter, reset by an open that works): a peer
/// that refuses or ignores the stream is asked at most once a second, not
/// once per call.
const OPEN_BACKOFF: Duration = Duration::from_secs(1);

/// The longest wait between two opens that fail.
const OPEN_BACKOFF_MAX: Duration = Duration::from_secs(8);

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

/// The outbound side of protocol `P`'s pipelined name, for one peer.
pub(crate) struct Mux<P: Protocol> {
    peer: PeerId,
    control: libp2p_stream::Control,
    permits: Arc<Semaphore>,
    request_timeout: Duration,
    observations: mpsc::Sender<(PeerId, Multiaddr)>,
    /// Woken once a stream of ours has ended.
    connections: ConnectionWakers,
    /// The node's runtime: the stream's opener, reader and writer run on it,
    /// and the calls' timers are its, whatever executor polls the caller.
    runtime: Handle,
    /// The stream, or how far opening one has got.
    slot: Mutex<Slot<P>>,
    /// The waits after failed opens (its lock is taken inside `slot`'s, never alone).
    open_backoff: Mutex<Backoff>,
    /// Still the peer's mux in the registry: a `PeerClient` keeps using the
    /// one it has while this holds, without looking it up per call.
    current: AtomicBool,
    /// Identify says the peer speaks `P`'s pipelined name (and we do too).
    speaks_v2: AtomicBool,
    _protocol: std::marker::PhantomData<fn(P)>,
}

enum Slot<P: Protocol> {
    /// No stream yet, or none since the last one retired.
    Empty,
    /// A task is opening one; every caller waits on the same outcome.
    Opening(watch::Receiver<Option<Opened<P>>>),
    Open(Arc<Pipe<P>>),
    /// The last open failed: calls fail with its error until `retry_at`.
    Failed {
        error: RequestError,
        retry_at: Instant,
    },
}

type Opened<P> = Result<Arc<Pipe<P>>, RequestError>;

impl<P: Protocol> std::fmt::Debug for Mux<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mux").field("peer", &self.peer).finish_non_exhaustive()
    }
}

impl<P: Protocol> Mux<P> {
    pub(crate) fn new(
        peer: PeerId,
        control: libp2p_stream::Control,
        request_timeout: Duration,
        observations: mpsc::Sender<(PeerId, Multiaddr)>,
        connections: ConnectionWakers,
        runtime: Handle,
    ) -> Self {
        Self {
            peer,
            control,
            permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            request_timeout,
            observations,
            connections,
            runtime,
            slot: Mutex::new(Slot::Empty),
            open_backoff: Mutex::new(Backoff::new(OPEN_BACKOFF, OPEN_BACKOFF_MAX)),
            current: AtomicBool::new(true),
            speaks_v2: AtomicBool::new(false),
            _protocol: std::marker::PhantomData,
        }
    }

    /// Still the peer's mux (its connections are up).
    pub(crate) fn is_current(&self) -> bool {
        self.current.load(Ordering::Acquire)
    }

    /// The registry dropped it: the peer's last connection closed.
    pub(crate) fn retire(&self) {
        self.current.store(false, Ordering::Release);
    }

    pub(crate) fn speaks_v2(&self) -> bool {
        self.speaks_v2.load(Ordering::Acquire)
    }

    pub(crate) fn set_speaks_v2(&self, speaks_v2: bool) {
        self.speaks_v2.store(speaks_v2, Ordering::Release);
    }

    /// The in-flight slots of this peer's stream.
    pub(crate) fn permits(&self) -> Arc<Semaphore> {
        Arc::clone(&self.permits)
    }

    /// Sends `request` once a slot is free. The deadline starts now, and
    /// covers the wait for the slot.
    pub(crate) fn call(
        self: Arc<Self>,
        request: P::Request,
        timeouts: StreamTimeouts,
    ) -> impl Future<Output = Result<P::Response, RequestError>> + Send + 'static {
        let deadline = Instant::now() + self.request_timeout;
        async move {
            let permit = match Arc::clone(&self.permits).try_acquire_owned() {
                Ok(permit) => permit,
                Err(TryAcquireError::Closed) => return Err(RequestError::Shutdown),
                Err(TryAcquireError::NoPermits) => {
                    let permits = Arc::clone(&self.permits);
                    within(&self.runtime, deadline, async {
                        permits.acquire_owned().await.map_err(|_| RequestError::Shutdown)
                    })
                    .await?
                }
            };
            self.send(permit, request, timeouts, deadline).await
        }
    }

    /// Sends `request` in the slot `permit` holds. The deadline starts now.
    pub(crate) fn call_with(
        self: Arc<Self>,
        permit: OwnedSemaphorePermit,
        request: P::Request,
        timeouts: StreamTimeouts,
    ) -> impl Future<Output = Result<P::Response, RequestError>> + Send + 'static {
        let deadline = Instant::now() + self.request_timeout;
        self.send(permit, request, timeouts, deadline)
    }

    /// Registers the call on the open stream, then waits for its answer. A
    /// timer bounds only the waits before the call is registered (for the
    /// stream to open); once it is, the stream's reaper keeps its deadline.
    async fn send(
        self: Arc<Self>,
        permit: OwnedSemaphorePermit,
        request: P::Request,
        timeouts: StreamTimeouts,
        deadline: Instant,
    ) -> Result<P::Response, RequestError> {
        let open = self.open_pipe().map(|pipe| pipe.register(deadline)).transpose()?.flatten();
        let call = match open {
            Some(call) => call,
            None => within(&self.runtime, deadline, self.register(timeouts, deadline)).await?,
        };
        let result = call.send(request).await;
        drop(permit);
        result
    }

    /// The open, usable stream, if there is one now.
    fn open_pipe(&self) -> Option<Arc<Pipe<P>>> {
        match &*lock(&self.slot) {
            Slot::Open(pipe) if pipe.is_usable() => Some(Arc::clone(pipe)),
            _ => None,
        }
    }

    /// A call registered on the live stream, opening one if there is none.
    async fn register(
        self: &Arc<Self>,
        timeouts: StreamTimeouts,
        deadline: Instant,
    ) -> Result<Call<P>, RequestError> {
        loop {
            let pipe = self.pipe(timeouts).await?;
            // None: the stream retired (idle) between our look and now.
            if let Some(call) = pipe.register(deadline)? {
                return Ok(call);
            }
        }
    }

    /// The live stream, opening one if there is none.
    async fn pipe(self: &Arc<Self>, timeouts: StreamTimeouts) -> Result<Arc<Pipe<P>>, RequestError> {
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
    fn open(self: &Arc<Self>, timeouts: StreamTimeouts) -> watch::Receiver<Option<Opened<P>>> {
        let (outcome, opened) = watch::channel(None);
        let mux = Arc::downgrade(self);
        let (mut control, peer, observations) = (self.control.clone(), self.peer, self.observations.clone());
        let connections = self.connections.clone();
        let open_timeout = self.request_timeout;
        let request_timeout = self.request_timeout;
        let runtime = self.runtime.clone();
        self.runtime.spawn(async move {
            let Some(name) = P::PIPELINED_NAME else {
                outcome.send_replace(Some(Err(RequestError::UnsupportedProtocol)));
                return;
            };
            let protocol = StreamProtocol::new(name);
            let opened = match tokio::time::timeout(open_timeout, control.open_stream(peer, protocol)).await {
                Ok(Ok(stream)) => Ok(Pipe::start(
                    stream,
                    peer,
                    observations,
                    timeouts,
                    connections,
                    request_timeout,
                    &runtime,
                )),
                Ok(Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(_))) => {
                    Err(RequestError::UnsupportedProtocol)
                }
                Ok(Err(other)) => Err(RequestError::Io(other.to_string())),
                Err(_) => Err(RequestError::Timeout),
            };
            if let Some(mux) = mux.upgrade() {
                let mut slot = lock(&mux.slot);
                let mut backoff = lock(&mux.open_backoff);
                *slot = match &opened {
                    Ok(pipe) => {
                        backoff.reset();
                        Slot::Open(Arc::clone(pipe))
                    }
                    Err(error) => {
                        debug!(%peer, %error, "could not open a pipelined stream");
                        Slot::Failed { error: error.clone(), retry_at: Instant::now() + backoff.next_wait() }
                    }
                };
            }
            outcome.send_replace(Some(opened));
        });
        opened
    }
}

/// `call`'s result, or [`RequestError::Timeout`] at `deadline`. The timer is
/// the node runtime's: the caller may be polled by any executor.
async fn within<T>(
    runtime: &Handle,
    deadline: Instant,
    call: impl Future<Output = Result<T, RequestError>>,
) -> Result<T, RequestError> {
    let timeout = {
        let _node_runtime = runtime.enter();
        tokio::time::timeout_at(deadline, call)
    };
    timeout.await.unwrap_or(Err(RequestError::Timeout))
}
