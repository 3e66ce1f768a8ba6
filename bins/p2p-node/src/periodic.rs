//! Greeting every greet-capable peer at a fixed interval: what `run` does
//! with the node's `discover::<Greet>()` set (the binary's behaviour, built
//! on the library's public API only).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::convert::Infallible;
use std::time::Duration;

use futures::{Stream, StreamExt};
use p2p_protocol::{GreetRequest, GreetResponse};
use p2p_transport::RequestError;
use p2p_transport::libp2p::PeerId;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::discover::Change;
use tower::{Service, ServiceExt};

/// The result of one greeting sent by a [`PeriodicGreeter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GreetOutcome {
    /// The peer that was greeted.
    pub(crate) peer_id: PeerId,
    /// From handing the request to the node to its answer (or failure).
    pub(crate) rtt: Duration,
    /// The peer's answer, or why there is none.
    pub(crate) result: Result<GreetResponse, RequestError>,
}

/// Greets every peer of a `Discover` (a node's `discover::<Greet>()`) once per interval.
///
/// Every peer in the set is greeted at once when it joins the set, then
/// every interval from then on, each greeting concurrently with the others:
/// a slow peer delays only its own greeting. Each peer keeps its own phase,
/// so the greetings to many peers are spread over the interval as their
/// arrivals were, rather than all sent on one shared tick (10,000 peers on
/// one tick were a burst of 10,000 requests every interval). A peer whose
/// previous greeting is still pending is skipped that time, so a peer that
/// never answers costs one request per request timeout, not one per interval.
///
/// The outcomes arrive on a bounded channel. The greeter stops, and the
/// channel ends, when the set ends (the node shut down) or when the
/// receiver is dropped.
pub(crate) struct PeriodicGreeter<D> {
    discover: D,
    interval: Duration,
    message: String,
}

/// How many outcomes may wait for the consumer: one that falls behind
/// delays the delivery of outcomes and the next ticks, never the
/// measurement of a round trip.
const CAPACITY: usize = 64;

impl<D, S> PeriodicGreeter<D>
where
    D: Stream<Item = Result<Change<PeerId, S>, Infallible>> + Unpin + Send + 'static,
    S: Service<GreetRequest, Response = GreetResponse, Error = RequestError> + Clone + Send + 'static,
    S::Future: Send,
{
    /// A greeter sending `message` to every peer of `discover` every
    /// `interval` (at least one millisecond): the peers known now and each peer
    /// that joins later are greeted at once, then every interval after that.
    pub(crate) fn new(discover: D, interval: Duration, message: impl Into<String>) -> Self {
        Self { discover, interval: interval.max(Duration::from_millis(1)), message: message.into() }
    }

    /// Starts greeting in a task of its own; must be called within a tokio runtime.
    pub(crate) fn spawn(self) -> mpsc::Receiver<GreetOutcome> {
        let (tx, rx) = mpsc::channel(CAPACITY);
        tokio::spawn(self.run(tx));
        rx
    }

    async fn run(self, outcomes: mpsc::Sender<GreetOutcome>) {
        let Self { mut discover, interval, message } = self;
        let request = GreetRequest::new(message);
        // Each peer with the generation of its entry in `due`: a peer that
        // leaves and comes back gets a new one, and its old entry is dropped.
        let mut peers: HashMap<PeerId, (S, u64)> = HashMap::new();
        // When each peer is next due, earliest first.
        let mut due: BinaryHeap<Reverse<(Instant, u64, PeerId)>> = BinaryHeap::new();
        let mut generation = 0u64;
        // Peers with a greeting in flight: skipped until it ends.
        let mut pending: HashSet<PeerId> = HashSet::new();
        // Each greeting is a task of its own so that its round trip is timed
        // when the answer arrives, not when this loop gets round to it.
        // Dropping the set when the loop ends aborts what is still in flight.
        let mut in_flight: JoinSet<GreetOutcome> = JoinSet::new();
        let next_due = tokio::time::sleep(interval);
        tokio::pin!(next_due);

        loop {
            if let Some(Reverse((at, ..))) = due.peek()
                && *at != next_due.deadline()
            {
                next_due.as_mut().reset(*at);
            }
            tokio::select! {
                change = discover.next() => match change {
                    Some(Ok(Change::Insert(peer, client))) => {
                        // A peer that just became greet-capable is greeted at
                        // once (on a big LAN waiting only delays the mesh),
                        // then every interval from now.
                        if pending.insert(peer) {
                            in_flight.spawn(greet(peer, client.clone(), request.clone()));
                        }
                        generation += 1;
                        peers.insert(peer, (client, generation));
                        due.push(Reverse((Instant::now() + interval, generation, peer)));
                    }
                    Some(Ok(Change::Remove(peer))) => {
                        peers.remove(&peer);
                    }
                    Some(Err(never)) => match never {},
                    // The node has shut down.
                    None => break,
                },
                () = &mut next_due, if !due.is_empty() => {
                    let now = Instant::now();
                    while let Some(&Reverse((at, entry, peer))) = due.peek() {
                        if at > now {
                            break;
                        }
                        due.pop();
                        let Some((client, current)) = peers.get(&peer) else { continue };
                        if *current != entry {
                            continue;
                        }
                        if pending.insert(peer) {
                            in_flight.spawn(greet(peer, client.clone(), request.clone()));
                        }
                        // Late (a busy runtime): the next one interval from now, not a catch-up burst.
                        let next = if at + interval > now { at + interval } else { now + interval };
                        due.push(Reverse((next, entry, peer)));
                    }
                }
                Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                    let Ok(outcome) = joined else { continue };
                    pending.remove(&outcome.peer_id);
                    if outcome.result == Err(RequestError::Shutdown) {
                        break;
                    }
                    if outcomes.send(outcome).await.is_err() {
                        break;
                    }
                }
                () = outcomes.closed() => break,
            }
        }
    }
}

async fn greet<S>(peer_id: PeerId, client: S, request: GreetRequest) -> GreetOutcome
where
    S: Service<GreetRequest, Response = GreetResponse, Error = RequestError>,
{
    let start = Instant::now();
    let result = client.oneshot(request).await;
    GreetOutcome { peer_id, rtt: start.elapsed(), result }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use p2p_protocol::Greet;
    use p2p_service::{BoxError, Limits, MakeGreeter, PeerContext, stack};
    use p2p_transport::{Node, NodeBuilder, NodeEvent, NodeEvents};

    use super::*;

    const DEADLINE: Duration = Duration::from_secs(20);

    fn builder() -> NodeBuilder {
        NodeBuilder::new().mdns(false).listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
    }

    async fn listen_addr(events: &mut NodeEvents) -> p2p_transport::libp2p::Multiaddr {
        loop {
            match events.recv().await.expect("node running") {
                NodeEvent::Listening { address } => return address,
                _ => continue,
            }
        }
    }

    /// A node whose handler never answers, counting the requests it got.
    fn silent_node(calls: Arc<AtomicUsize>) -> (Node, NodeEvents) {
        let make = tower::service_fn(move |_: PeerContext| {
            let calls = Arc::clone(&calls);
            async move {
                Ok::<_, Infallible>(tower::service_fn(move |_: GreetRequest| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async {
                        std::future::pending::<()>().await;
                        Err::<GreetResponse, BoxError>("unreachable".into())
                    }
                }))
            }
        });
        let limits = Limits { request_timeout: None, ..Limits::default() };
        builder().shutdown_grace(Duration::from_millis(100)).build(stack(make, limits)).expect("build")
    }

    /// A peer's client that answers at once, telling `greeted` whom it answered.
    type Fake = tower::util::BoxCloneService<GreetRequest, GreetResponse, RequestError>;

    fn fake(peer: PeerId, greeted: mpsc::Sender<PeerId>) -> Fake {
        tower::util::BoxCloneService::new(tower::service_fn(move |_: GreetRequest| {
            let greeted = greeted.clone();
            async move {
                greeted.send(peer).await.expect("test running");
                Ok(GreetResponse {
                    message: "hello".into(),
                    observed_addr: "/ip4/127.0.0.1/udp/1/quic-v1".parse().unwrap(),
                })
            }
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_joins_is_greeted_at_once_then_on_the_interval() {
        let interval = Duration::from_secs(10);
        let (set, changes) = mpsc::channel(4);
        let (greeted_tx, mut greeted) = mpsc::channel(4);
        let mut changes = changes;
        let changes = futures::stream::poll_fn(move |cx| changes.poll_recv(cx));
        let mut outcomes = PeriodicGreeter::new(Box::pin(changes), interval, "hi").spawn();
        // Mid-way between two ticks a peer becomes greet-capable.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let peer = PeerId::random();
        set.send(Ok(Change::Insert(peer, fake(peer, greeted_tx)))).await.unwrap();
        let joined = Instant::now();

        assert_eq!(greeted.recv().await, Some(peer));
        assert!(joined.elapsed() < Duration::from_millis(10), "first greeting after {:?}", joined.elapsed());
        let outcome = outcomes.recv().await.expect("an outcome");
        assert_eq!((outcome.peer_id, outcome.result.map(|r| r.message)), (peer, Ok("hello".into())));

        // Then every interval from its arrival (its own phase, not the greeter's start).
        assert_eq!(greeted.recv().await, Some(peer));
        let second = joined.elapsed();
        assert!(
            second >= interval - Duration::from_millis(10) && second <= interval + Duration::from_millis(10),
            "second greeting after {second:?}"
        );
        assert_eq!(greeted.recv().await, Some(peer));
        let third = joined.elapsed();
        assert!(third >= second + interval - Duration::from_millis(10), "third greeting after {third:?}");

        // Gone from the set: greeted no more.
        set.send(Ok(Change::Remove(peer))).await.unwrap();
        tokio::time::sleep(interval * 3).await;
        assert!(greeted.try_recv().is_err(), "greeted after it left");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_silent_peer_delays_neither_the_others_nor_the_ticks() {
        let calls = Arc::new(AtomicUsize::new(0));
        let (silent, mut silent_events) = silent_node(Arc::clone(&calls));
        let (fast, mut fast_events) =
            builder().build(stack(MakeGreeter::new("fast"), Limits::default())).expect("build");
        let (us, _events) = builder().build(stack(MakeGreeter::new("us"), Limits::default())).expect("build");
        us.dial(listen_addr(&mut silent_events).await).await.expect("dial");
        us.dial(listen_addr(&mut fast_events).await).await.expect("dial");

        let mut outcomes =
            PeriodicGreeter::new(us.discover::<Greet>(), Duration::from_millis(50), "hi").spawn();
        let mut answered = 0;
        let wait = async {
            while answered < 5 || calls.load(Ordering::SeqCst) == 0 {
                let outcome = outcomes.recv().await.expect("greeter running");
                assert_eq!(outcome.peer_id, fast.local_peer_id(), "the silent peer never answers");
                let response = outcome.result.expect("the fast peer answers");
                assert_eq!(response.message, "fast (you said: hi)");
                answered += 1;
            }
        };
        tokio::time::timeout(DEADLINE, wait).await.expect("five answers from the fast peer");
        // The silent peer's first greeting is still pending: it was not greeted again.
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        us.shutdown().await;
        let end = async { while outcomes.recv().await.is_some() {} };
        tokio::time::timeout(DEADLINE, end).await.expect("the outcomes end with the node");
        silent.shutdown().await;
        fast.shutdown().await;
    }
}
