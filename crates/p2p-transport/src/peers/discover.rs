//! The live set of the peers that speak a protocol, as a `tower::discover::Discover`.

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use futures::stream::BoxStream;
use libp2p::PeerId;
use p2p_protocol::{Greet, Protocol};
use tokio::sync::watch;
use tower::discover::Change;

use crate::outbound::{Client, PeerClient};

/// The set the swarm task publishes for a protocol: connected peers that
/// identify says speak it (or that opened a stream of it to us).
pub(crate) type PeerSet = Arc<BTreeSet<PeerId>>;

/// A `Discover` of [`PeerClient`]s of protocol `P` keyed by `PeerId`.
///
/// A peer is inserted once it is connected and identify says it speaks `P`
/// (either of its names); it is removed when its last connection closes. The stream diffs snapshots of the live set, so it never
/// loses a change and never makes the swarm task wait for a slow consumer.
/// It ends when the node shuts down.
pub struct PeerDiscover<P: Protocol = Greet> {
    inner: BoxStream<'static, Result<Change<PeerId, PeerClient<P>>, Infallible>>,
}

impl<P: Protocol> std::fmt::Debug for PeerDiscover<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerDiscover").finish_non_exhaustive()
    }
}

struct Diff<P: Protocol> {
    peers: watch::Receiver<PeerSet>,
    /// Our own copy: holding the published `Arc` would make the swarm task
    /// copy the whole set on its next change (`Arc::make_mut`), an O(n)
    /// copy per connect at thousands of peers.
    known: BTreeSet<PeerId>,
    queue: VecDeque<Change<PeerId, PeerClient<P>>>,
    client: Client<P>,
}

impl<P: Protocol> PeerDiscover<P> {
    pub(crate) fn new(mut peers: watch::Receiver<PeerSet>, client: Client<P>) -> Self {
        peers.mark_changed(); // the first poll yields the current set
        let diff = Diff { peers, known: BTreeSet::new(), queue: VecDeque::new(), client };
        let inner = futures::stream::unfold(diff, |mut diff| async move {
            loop {
                if let Some(change) = diff.queue.pop_front() {
                    return Some((Ok(change), diff));
                }
                diff.peers.changed().await.ok()?;
                // Held only while diffing (not under the watch's lock).
                let current = diff.peers.borrow_and_update().clone();
                for gone in diff.known.difference(&current) {
                    diff.queue.push_back(Change::Remove(*gone));
                }
                for new in current.difference(&diff.known) {
                    diff.queue.push_back(Change::Insert(*new, diff.client.peer(*new)));
                }
                diff.known = BTreeSet::clone(&current);
            }
        });
        Self { inner: Box::pin(inner) }
    }
}

impl<P: Protocol> Stream for PeerDiscover<P> {
    type Item = Result<Change<PeerId, PeerClient<P>>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use tokio::sync::mpsc;

    use super::*;

    #[tokio::test]
    async fn changes_come_in_order_and_the_published_set_is_not_held() {
        let (commands, _swarm_task) = mpsc::channel(1);
        let client: Client = Client::new(
            commands,
            Arc::new(crate::outbound::OutboundPeers::default()),
            &crate::NodeConfig::default(),
            mpsc::channel(1).0,
        );
        let (set, set_rx) = watch::channel(PeerSet::default());
        let mut discover = PeerDiscover::new(set_rx, client);
        let (a, b) = (PeerId::random(), PeerId::random());

        let publish = |peers: &[PeerId]| set.send_replace(Arc::new(peers.iter().copied().collect()));
        publish(&[a, b]);
        let mut inserted = Vec::new();
        for _ in 0..2 {
            match discover.next().await.unwrap().unwrap() {
                Change::Insert(peer, _) => inserted.push(peer),
                Change::Remove(peer) => panic!("removed {peer}"),
            }
        }
        inserted.sort();
        let mut both = vec![a, b];
        both.sort();
        assert_eq!(inserted, both);
        // Only the watch holds the set: the swarm task's next change edits it
        // in place instead of copying it.
        assert_eq!(Arc::strong_count(&set.borrow()), 1);

        publish(&[b]);
        assert!(matches!(discover.next().await.unwrap().unwrap(), Change::Remove(p) if p == a));
        assert_eq!(Arc::strong_count(&set.borrow()), 1);
    }
}
