//! Greeting every greet-capable peer at a fixed interval.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use libp2p::PeerId;
use p2p_protocol::{GreetRequest, GreetResponse};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;
use tower::discover::Change;

use super::PeerDiscover;
use crate::{PeerClient, RequestError};

/// The result of one greeting sent by a [`PeriodicGreeter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreetOutcome {
    /// The peer that was greeted.
    pub peer_id: PeerId,
    /// From handing the request to the node to its answer (or failure).
    pub rtt: Duration,
    /// The peer's answer, or why there is none.
    pub result: Result<GreetResponse, RequestError>,
}

/// Greets every greet-capable peer of a [`Node`](crate::Node) once per interval.
///
/// Every peer in the node's [`discover()`](crate::Node::discover) set is
/// greeted at once when it joins the set, then every interval from then on,
/// each greeting concurrently with the others: a slow peer delays only its
/// own greeting. Each peer keeps its own phase, so the greetings to many
/// peers are spread over the interval as their arrivals were, rather than
/// all sent on one shared tick (10,000 peers on one tick were a burst of
/// 10,000 requests every interval). A peer whose previous greeting is still
/// pending is skipped that time, so a peer that never answers costs one
/// request per request timeout, not one per interval.
///
/// The outcomes arrive on a bounded [`GreetOutcomes`] stream. The greeter
/// stops, and the stream ends, when the node shuts down or when the stream
/// is dropped. While it runs it holds a handle to the node, so the node does
/// not shut down by itself when the caller's handles are dropped: drop the
/// stream or call [`Node::shutdown`](crate::Node::shutdown).
///
/// ```no_run
/// # async fn run(node: p2p_transport::Node) {
/// use std::time::Duration;
/// use p2p_transport::PeriodicGreeter;
///
/// let mut outcomes = PeriodicGreeter::new(&node, Duration::from_secs(5), "hello").spawn();
/// while let Some(outcome) = outcomes.recv().await {
///     match outcome.result {
///         Ok(response) => println!("{} in {:?}: {}", outcome.peer_id, outcome.rtt, response.message),
///         Err(err) => eprintln!("{}: {err}", outcome.peer_id),
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct PeriodicGreeter {
    discover: PeerDiscover,
    interval: Duration,
    message: String,
    capacity: usize,
}

impl PeriodicGreeter {
    /// A greeter sending `message` to every greet-capable peer of a node every
    /// `interval` (at least one millisecond): the peers known now and each peer
    /// that joins later are greeted at once, then every interval after that.
    ///
    /// `peers` is a node (`&Node`) or any [`PeerDiscover`] of its peers.
    pub fn new(peers: impl Into<PeerDiscover>, interval: Duration, message: impl Into<String>) -> Self {
        Self {
            discover: peers.into(),
            interval: interval.max(Duration::from_millis(1)),
            message: message.into(),
            capacity: 64,
        }
    }

    /// How many outcomes may wait for the consumer (at least 1). Default 64.
    ///
    /// A consumer that falls behind delays the delivery of outcomes and the
    /// next ticks, never the measurement of a round trip.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Starts greeting in a task of its own; must be called within a tokio runtime.
    pub fn spawn(self) -> GreetOutcomes {
        let (tx, rx) = mpsc::channel(self.capacity);
        tokio::spawn(self.run(tx));
        GreetOutcomes { rx }
    }

    async fn run(self, outcomes: mpsc::Sender<GreetOutcome>) {
        let Self { mut discover, interval, message, .. } = self;
        let request = GreetRequest::new(message);
        // Each peer with the generation of its entry in `due`: a peer that
        // leaves and comes back gets a new one, and its old entry is dropped.
        let mut peers: HashMap<PeerId, (PeerClient, u64)> = HashMap::new();
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

async fn greet(peer_id: PeerId, client: PeerClient, request: GreetRequest) -> GreetOutcome {
    let start = Instant::now();
    let result = client.oneshot(request).await;
    GreetOutcome { peer_id, rtt: start.elapsed(), result }
}

/// The outcomes of a [`PeriodicGreeter`], in the order the answers arrived.
///
/// Ends when the node shuts down. Dropping it stops the greeter.
#[derive(Debug)]
pub struct GreetOutcomes {
    rx: mpsc::Receiver<GreetOutcome>,
}

impl GreetOutcomes {
    /// The next outcome; `None` once the greeter has stopped.
    pub async fn recv(&mut self) -> Option<GreetOutcome> {
        self.rx.recv().await
    }
}

impl Stream for GreetOutcomes {
    type Item = GreetOutcome;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<GreetOutcome>> {
        self.rx.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use p2p_service::{BoxError, Limits, MakeGreeter, PeerContext, stack};

    use super::*;
    use crate::{Node, NodeBuilder, NodeEvent, NodeEvents};

    const DEADLINE: Duration = Duration::from_secs(20);

    fn builder() -> NodeBuilder {
        NodeBuilder::new().mdns(false).listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
    }

    async fn listen_addr(events: &mut NodeEvents) -> libp2p::Multiaddr {
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

    /// A greeter over a hand-fed peer set whose requests (greet 1.0.0, as no
    /// peer speaks 2.0.0 here) come out as the swarm task's commands.
    fn greeter_over_fed_set(
        interval: Duration,
    ) -> (
        tokio::sync::watch::Sender<crate::peers::PeerSet>,
        mpsc::Receiver<crate::command::Command>,
        GreetOutcomes,
    ) {
        let (commands, swarm_task) = mpsc::channel(16);
        let client = crate::outbound::Client::new(
            commands,
            Arc::new(crate::outbound::OutboundPeers::default()),
            &crate::NodeConfig::default(),
        );
        let (set, set_rx) = tokio::sync::watch::channel(crate::peers::PeerSet::default());
        let outcomes = PeriodicGreeter::new(PeerDiscover::new(set_rx, client), interval, "hi").spawn();
        (set, swarm_task, outcomes)
    }

    /// Answers the next greeting the swarm task gets; returns whom it was for.
    async fn answer_next(swarm_task: &mut mpsc::Receiver<crate::command::Command>) -> PeerId {
        match swarm_task.recv().await.expect("greeter running") {
            crate::command::Command::Request { peer, reply, .. } => {
                let response = GreetResponse {
                    message: "hello".into(),
                    observed_addr: "/ip4/127.0.0.1/udp/1/quic-v1".parse().unwrap(),
                };
                let _ = reply.send(Ok(response));
                peer
            }
            other => panic!("unexpected command {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_joins_is_greeted_at_once_then_on_the_interval() {
        let interval = Duration::from_secs(10);
        let (set, mut swarm_task, mut outcomes) = greeter_over_fed_set(interval);
        // Mid-way between two ticks a peer becomes greet-capable.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let peer = PeerId::random();
        set.send_replace(Arc::new([peer].into_iter().collect()));
        let joined = Instant::now();

        assert_eq!(answer_next(&mut swarm_task).await, peer);
        assert!(joined.elapsed() < Duration::from_millis(10), "first greeting after {:?}", joined.elapsed());
        let outcome = outcomes.recv().await.expect("an outcome");
        assert_eq!((outcome.peer_id, outcome.result.map(|r| r.message)), (peer, Ok("hello".into())));

        // Then every interval from its arrival (its own phase, not the greeter's start).
        assert_eq!(answer_next(&mut swarm_task).await, peer);
        let second = joined.elapsed();
        assert!(
            second >= interval - Duration::from_millis(10) && second <= interval + Duration::from_millis(10),
            "second greeting after {second:?}"
        );
        assert_eq!(answer_next(&mut swarm_task).await, peer);
        let third = joined.elapsed();
        assert!(third >= second + interval - Duration::from_millis(10), "third greeting after {third:?}");
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

        let mut outcomes = PeriodicGreeter::new(&us, Duration::from_millis(50), "hi").spawn();
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
