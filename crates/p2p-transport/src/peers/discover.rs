//! The live set of greet-capable peers as a `tower::discover::Discover`.

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use futures::stream::BoxStream;
use libp2p::PeerId;
use tokio::sync::watch;
use tower::discover::Change;

use crate::outbound::{Client, PeerClient};

/// The set the swarm task publishes: connected peers that identify says speak greet.
pub(crate) type PeerSet = Arc<BTreeSet<PeerId>>;

/// A `Discover` of [`PeerClient`]s keyed by `PeerId`.
///
/// A peer is inserted once it is connected and identify says it speaks the
/// greet protocol; it is removed when its last connection closes or its mDNS
/// record expires. The stream diffs snapshots of the live set, so it never
/// loses a change and never makes the swarm task wait for a slow consumer.
/// It ends when the node shuts down.
pub struct PeerDiscover {
    inner: BoxStream<'static, Result<Change<PeerId, PeerClient>, Infallible>>,
}

impl std::fmt::Debug for PeerDiscover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerDiscover").finish_non_exhaustive()
    }
}

struct Diff {
    peers: watch::Receiver<PeerSet>,
    known: PeerSet,
    queue: VecDeque<Change<PeerId, PeerClient>>,
    client: Client,
}

impl PeerDiscover {
    pub(crate) fn new(mut peers: watch::Receiver<PeerSet>, client: Client) -> Self {
        peers.mark_changed(); // the first poll yields the current set
        let diff = Diff { peers, known: PeerSet::default(), queue: VecDeque::new(), client };
        let inner = futures::stream::unfold(diff, |mut diff| async move {
            loop {
                if let Some(change) = diff.queue.pop_front() {
                    return Some((Ok(change), diff));
                }
                diff.peers.changed().await.ok()?;
                let current = diff.peers.borrow_and_update().clone();
                for gone in diff.known.difference(&current) {
                    diff.queue.push_back(Change::Remove(*gone));
                }
                for new in current.difference(&diff.known) {
                    diff.queue.push_back(Change::Insert(*new, diff.client.peer(*new)));
                }
                diff.known = current;
            }
        });
        Self { inner: Box::pin(inner) }
    }
}

impl Stream for PeerDiscover {
    type Item = Result<Change<PeerId, PeerClient>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}
