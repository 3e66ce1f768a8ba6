//! One open pipelined stream: the requests awaiting answers, the writer of
//! requests and the reader of answers.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, StreamExt};
use libp2p::{Multiaddr, PeerId};
use p2p_protocol::v2::{Request, Response, STREAM_ERROR_ID};
use p2p_protocol::{Protocol, decode, encode};
use tokio::runtime::Handle;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::RequestError;
use crate::lock::lock;
use crate::wakers::ConnectionWakers;
use crate::wire::{frames, write_bodies};

use super::{OBSERVATION_INTERVAL, StreamTimeouts, WRITE_QUEUE};

type Answer<P> = Result<<P as Protocol>::Response, RequestError>;

/// One open stream: the requests awaiting answers and the writer's queue.
/// Dropping the last handle closes the write half; the peer then answers what
/// it has and closes, which ends the reader.
pub(super) struct Pipe<P: Protocol> {
    pending: Arc<Mutex<Pending<P>>>,
    next_id: AtomicU64,
}

pub(super) struct Pending<P: Protocol> {
    /// The calls on the stream, by id, until each is dropped: no allocation
    /// per call (no channel), the table's room is reused.
    calls: HashMap<u64, Waiter<P>>,
    /// The writer's queue; gone once the stream retires or fails, which
    /// closes the write half when the last clone (a call sending) is dropped.
    bodies: Option<mpsc::Sender<Vec<u8>>>,
    /// Since when no request has been in flight (`None` while one is).
    idle_since: Option<Instant>,
    /// Why the stream failed, once it has: every later call fails with it.
    closed: Option<RequestError>,
    /// Cancelled when the stream fails: the reader stops waiting.
    dead: CancellationToken,
    /// When the reaper (in the reader's task) looks at the deadlines next; a
    /// call due earlier moves it there and wakes it through `reaper`.
    reap_at: Instant,
    reaper: Arc<Notify>,
}

/// A call waiting for its answer.
struct Waiter<P: Protocol> {
    /// The call's deadline: the reaper answers it `Timeout` then.
    deadline: Instant,
    answer: Option<Answer<P>>,
    waker: Option<Waker>,
}

impl<P: Protocol> Pending<P> {
    /// Forgets `id`'s call (it has its answer, or gave up).
    fn remove(&mut self, id: u64) {
        self.calls.remove(&id);
        if self.calls.is_empty() && self.idle_since.is_none() {
            self.idle_since = Some(Instant::now());
        }
    }

    /// Gives `id`'s call its answer; `None` if no call of ours waits for it
    /// (an unsolicited id, or a call that gave up), else the waker to wake.
    fn answer(&mut self, id: u64, answer: Answer<P>) -> Option<Option<Waker>> {
        let waiter = self.calls.get_mut(&id).filter(|waiter| waiter.answer.is_none())?;
        waiter.answer = Some(answer);
        Some(waiter.waker.take())
    }

    /// Answers `Timeout` to every call past its deadline (their wakers go to
    /// `woken`); sets and returns when to look again.
    fn reap(&mut self, now: Instant, every: Duration, woken: &mut Vec<Waker>) -> Instant {
        let mut next = now + every;
        for waiter in self.calls.values_mut().filter(|waiter| waiter.answer.is_none()) {
            if waiter.deadline <= now {
                waiter.answer = Some(Err(RequestError::Timeout));
                woken.extend(waiter.waker.take());
            } else {
                next = next.min(waiter.deadline);
            }
        }
        self.reap_at = next;
        next
    }
}

impl<P: Protocol> Pipe<P> {
    pub(super) fn start(
        stream: libp2p::Stream,
        peer: PeerId,
        observations: mpsc::Sender<(PeerId, Multiaddr)>,
        timeouts: StreamTimeouts,
        connections: ConnectionWakers,
        request_timeout: Duration,
        runtime: &Handle,
    ) -> Arc<Self> {
        let (reader, writer) = stream.split();
        // Dropped by whichever half ends last, after it dropped its half.
        let ended = Arc::new(WakeOnEnd { connections, peer });
        let reader_ended = Arc::clone(&ended);
        let (bodies, queue) = mpsc::channel(WRITE_QUEUE);
        let pending = Arc::new(Mutex::new(Pending {
            calls: HashMap::new(),
            bodies: Some(bodies),
            idle_since: Some(Instant::now()),
            closed: None,
            dead: CancellationToken::new(),
            reap_at: Instant::now() + request_timeout,
            reaper: Arc::new(Notify::new()),
        }));
        let write = write_requests(writer, queue, Arc::clone(&pending), timeouts);
        runtime.spawn(async move {
            write.await;
            drop(ended);
        });
        let read = read_answers::<P, _>(reader, Arc::clone(&pending), peer, observations, request_timeout);
        runtime.spawn(async move {
            read.await;
            drop(reader_ended);
        });
        Arc::new(Self { pending, next_id: AtomicU64::new(1) })
    }

    /// Neither failed nor retired: new calls may use it.
    pub(super) fn is_usable(&self) -> bool {
        let pending = lock(&self.pending);
        pending.closed.is_none() && pending.bodies.is_some()
    }

    /// A call on this stream, its id registered with its `deadline`; `None`
    /// if the stream has retired (the caller opens a new one), an error if it
    /// failed.
    pub(super) fn register(&self, deadline: Instant) -> Result<Option<Call<P>>, RequestError> {
        // Ids start at 1 (0 is the stream-level error) and never repeat on a stream.
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut pending = lock(&self.pending);
        if let Some(err) = &pending.closed {
            return Err(err.clone());
        }
        // Registered under the same lock as the retirement's check, so a
        // stream never retires with a call about to use it.
        let Some(bodies) = pending.bodies.clone() else { return Ok(None) };
        pending.calls.insert(id, Waiter { deadline, answer: None, waker: None });
        pending.idle_since = None;
        // Calls come due in about the order they are made: the reaper is
        // woken only by one due before it would look anyway.
        let reaper = (deadline < pending.reap_at).then(|| {
            pending.reap_at = deadline;
            Arc::clone(&pending.reaper)
        });
        drop(pending);
        if let Some(reaper) = reaper {
            reaper.notify_one();
        }
        Ok(Some(Call { id, bodies: Some(bodies), pending: Arc::clone(&self.pending) }))
    }
}

impl<P: Protocol> Drop for Pipe<P> {
    fn drop(&mut self) {
        // The calls still sending hold clones; the write half closes after them.
        lock(&self.pending).bodies = None;
    }
}

/// A request registered on a stream. Dropped (answered, or given up on),
/// it leaves the stream's table. Its deadline is the reaper's to keep.
pub(super) struct Call<P: Protocol> {
    id: u64,
    /// The writer's queue, held only until the request is queued: a call
    /// waiting for its answer must not keep the write half open.
    bodies: Option<mpsc::Sender<Vec<u8>>>,
    pending: Arc<Mutex<Pending<P>>>,
}

impl<P: Protocol> Call<P> {
    pub(super) async fn send(mut self, request: P::Request) -> Answer<P> {
        let body = encode(&Request { id: self.id, request });
        if body.len() > P::MAX_FRAME_LEN {
            return Err(RequestError::TooLarge);
        }
        let bodies = self.bodies.take().expect("sent once");
        match bodies.try_send(body) {
            Ok(()) => {}
            Err(TrySendError::Closed(_)) => return Err(self.closed()),
            // The queue is full: wait for room, or for the call's end (its
            // deadline, the stream's failure), whichever comes first.
            Err(TrySendError::Full(body)) => tokio::select! {
                biased;
                answer = self.answer() => return answer,
                sent = bodies.send(body) => if sent.is_err() {
                    return Err(self.closed());
                },
            },
        }
        drop(bodies);
        self.answer().await
    }

    fn closed(&self) -> RequestError {
        lock(&self.pending).closed.clone().unwrap_or(RequestError::ConnectionClosed)
    }

    /// The call's answer: from the reader, the reaper, or the stream's failure.
    fn answer(&self) -> impl Future<Output = Answer<P>> + '_ {
        std::future::poll_fn(move |cx| {
            let mut pending = lock(&self.pending);
            let Some(waiter) = pending.calls.get_mut(&self.id) else {
                return Poll::Ready(Err(RequestError::ConnectionClosed));
            };
            if let Some(answer) = waiter.answer.take() {
                return Poll::Ready(answer);
            }
            if !waiter.waker.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) {
                waiter.waker = Some(cx.waker().clone());
            }
            Poll::Pending
        })
    }
}

impl<P: Protocol> Drop for Call<P> {
    fn drop(&mut self) {
        lock(&self.pending).remove(self.id);
    }
}

/// Wakes the peer's connections when dropped: once both halves of the
/// stream are gone, so that the connection sees it has no stream left.
struct WakeOnEnd {
    connections: ConnectionWakers,
    peer: PeerId,
}

impl Drop for WakeOnEnd {
    fn drop(&mut self) {
        self.connections.wake(&self.peer);
    }
}

/// Writes the queued requests until the queue closes (the stream retired or
/// its last handle went) or a write fails. A stream with nothing in flight
/// for the idle timeout retires: its queue closes, then its write half; a
/// peer that does not close its own half in answer is cut off.
pub(super) async fn write_requests<P: Protocol, W>(
    writer: W,
    queue: mpsc::Receiver<Vec<u8>>,
    pending: Arc<Mutex<Pending<P>>>,
    timeouts: StreamTimeouts,
) where
    W: futures::AsyncWrite + Unpin,
{
    let dead = lock(&pending).dead.clone();
    let write = async {
        if let Err(err) = write_bodies(writer, queue, timeouts.write, P::MAX_FRAME_LEN).await {
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
pub(super) async fn done_when_idle<P: Protocol>(pending: &Mutex<Pending<P>>, idle: Duration) {
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
/// fails the rest; meanwhile reaps the calls past their deadlines (one timer
/// per stream, not one per call).
pub(super) async fn read_answers<P: Protocol, R>(
    reader: R,
    pending: Arc<Mutex<Pending<P>>>,
    peer: PeerId,
    observations: mpsc::Sender<(PeerId, Multiaddr)>,
    request_timeout: Duration,
) where
    R: AsyncRead + Unpin + Send,
{
    let (dead, reaper, reap_at) = {
        let pending = lock(&pending);
        (pending.dead.clone(), Arc::clone(&pending.reaper), pending.reap_at)
    };
    let mut dead = std::pin::pin!(dead.cancelled());
    let mut moved = std::pin::pin!(reaper.notified());
    let reap = tokio::time::sleep_until(reap_at);
    tokio::pin!(reap);
    let mut woken = Vec::new();
    // A read in progress survives the other branches (a partly read frame is kept).
    let mut frames = frames(reader, P::MAX_FRAME_LEN);
    let mut last_observed: Option<(Multiaddr, Instant)> = None;
    let reason = loop {
        let frame = tokio::select! {
            biased;
            // The writer failed: the stream is being dropped, nothing more is read.
            () = &mut dead => return,
            () = &mut reap => {
                let next = lock(&pending).reap(Instant::now(), request_timeout, &mut woken);
                woken.drain(..).for_each(Waker::wake);
                reap.as_mut().reset(next);
                continue;
            }
            () = &mut moved => {
                moved.set(reaper.notified());
                reap.as_mut().reset(lock(&pending).reap_at);
                continue;
            }
            frame = frames.next() => frame.expect("an endless stream"),
        };
        let response = match frame {
            Ok(Some(body)) => decode::<Response<P::Response>>(&body),
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
                let observed = result.as_ref().ok().and_then(P::observed_addr).cloned();
                // Only an answer to a request of ours says anything: an
                // unsolicited id is ignored, observed address and all.
                let Some(waker) = lock(&pending).answer(id, result.map_err(RequestError::Remote)) else {
                    continue;
                };
                if let Some(waker) = waker {
                    waker.wake();
                }
                if let Some(observed) = observed {
                    let now = Instant::now();
                    let fresh = last_observed.as_ref().is_none_or(|(addr, at)| {
                        addr != &observed || now.duration_since(*at) >= OBSERVATION_INTERVAL
                    });
                    // A candidate only; dropped when the swarm task is busy.
                    if fresh && observations.try_send((peer, observed.clone())).is_ok() {
                        last_observed = Some((observed, now));
                    }
                }
            }
            Err(err) => break RequestError::Io(format!("undecodable answer: {err}")),
        }
    };
    debug!(%peer, %reason, "pipelined stream ended");
    fail_all(&pending, reason);
}

/// The stream failed (or ended): every call on it fails, later ones too, and
/// both halves stop.
pub(super) fn fail_all<P: Protocol>(pending: &Mutex<Pending<P>>, reason: RequestError) {
    let mut woken = Vec::new();
    {
        let mut pending = lock(pending);
        let reason = pending.closed.get_or_insert(reason).clone();
        for waiter in pending.calls.values_mut().filter(|waiter| waiter.answer.is_none()) {
            waiter.answer = Some(Err(reason.clone()));
            woken.extend(waiter.waker.take());
        }
        pending.bodies = None;
        pending.dead.cancel();
    }
    woken.into_iter().for_each(Waker::wake);
}
