//! A content-addressed block fetch, `/p2p-fetch/1.0.0`: a second protocol
//! on p2p-node, built as any downstream crate builds its own, on the public
//! API only (`p2p-protocol`'s [`Protocol`], `p2p-service`'s stack,
//! `p2p-transport`'s `NodeBuilder::serve` and `Node::client`).
//!
//! A requester names a block by its SHA-256; the responder answers its
//! bytes (up to [`MAX_BLOCK_LEN`]) or [`NOT_FOUND`] (404). The requester
//! never trusts the bytes: [`fetch`] checks them against the hash.
//!
//! ```no_run
//! use p2p_fetch::{BlockStore, Fetch, MakeBlocks, fetch};
//! use p2p_protocol::Greet;
//! use p2p_service::{Limits, MakeGreeter, stack};
//! use p2p_transport::NodeBuilder;
//!
//! # async fn run(peer_addr: p2p_transport::libp2p::Multiaddr) -> Result<(), Box<dyn std::error::Error>> {
//! let store = BlockStore::default();
//! let hash = store.insert(b"hello, blocks".to_vec())?;
//! let (node, _events) = NodeBuilder::new()
//!     .serve::<Greet, _, _>(stack(MakeGreeter::new("hi"), Limits::default()))
//!     .serve::<Fetch, _, _>(stack(MakeBlocks::new(store), Limits::default()))
//!     .start()?;
//! let peer = node.connect(peer_addr).await?;
//! let bytes = fetch(&mut node.client::<Fetch>(), peer, hash).await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::{Ready, ready};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use p2p_protocol::{ErrorCode, Protocol, RemoteError};
use p2p_service::PeerContext;
use p2p_transport::RequestError;
use p2p_transport::libp2p::PeerId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tower::{Service, ServiceExt};

/// The block fetch protocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fetch;

/// The largest block: a frame holds it and its envelope.
pub const MAX_BLOCK_LEN: usize = 1024 * 1024;

impl Protocol for Fetch {
    const NAME: &'static str = "/p2p-fetch/1.0.0";
    const PIPELINED_NAME: Option<&'static str> = Some("/p2p-fetch/pipelined/1.0.0");
    // A block, its length prefix and the answer's envelope (variant, request id).
    const MAX_FRAME_LEN: usize = MAX_BLOCK_LEN + 32;

    type Request = Hash;
    type Response = Block;
}

/// The answer's code when the responder has no such block.
pub const NOT_FOUND: ErrorCode = ErrorCode::new(404);

/// A block's name: the SHA-256 of its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

/// A block's bytes, as answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block(pub Vec<u8>);

/// Blocks by hash, shared by every peer's handler. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct BlockStore {
    blocks: Arc<RwLock<HashMap<Hash, Arc<[u8]>>>>,
}

/// A block that cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a block of {len} bytes exceeds the maximum of {MAX_BLOCK_LEN}")]
pub struct TooLarge {
    /// The block's length.
    pub len: usize,
}

impl BlockStore {
    /// Stores `bytes`; returns their hash.
    pub fn insert(&self, bytes: Vec<u8>) -> Result<Hash, TooLarge> {
        if bytes.len() > MAX_BLOCK_LEN {
            return Err(TooLarge { len: bytes.len() });
        }
        let hash = Hash::of(&bytes);
        self.blocks.write().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(hash, bytes.into());
        Ok(hash)
    }

    /// The block named `hash`, if stored.
    pub fn get(&self, hash: &Hash) -> Option<Arc<[u8]>> {
        self.blocks.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(hash).cloned()
    }
}

/// The handler: a `Service<Hash>` answering each hash from the store, 404 if absent.
#[derive(Debug, Clone)]
pub struct Blocks {
    store: BlockStore,
}

impl Service<Hash> for Blocks {
    type Response = Block;
    type Error = RemoteError;
    type Future = Ready<Result<Block, RemoteError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), RemoteError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, hash: Hash) -> Self::Future {
        ready(match self.store.get(&hash) {
            Some(bytes) => Ok(Block(bytes.to_vec())),
            None => Err(RemoteError::new(NOT_FOUND, format!("no block {hash}"))),
        })
    }
}

/// A `MakeService<PeerContext>` of [`Blocks`] over one store, for `p2p_service::stack`.
#[derive(Debug, Clone)]
pub struct MakeBlocks {
    store: BlockStore,
}

impl MakeBlocks {
    /// Handlers answering from `store`.
    pub fn new(store: BlockStore) -> Self {
        Self { store }
    }
}

impl Service<PeerContext> for MakeBlocks {
    type Response = Blocks;
    type Error = Infallible;
    type Future = Ready<Result<Blocks, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: PeerContext) -> Self::Future {
        ready(Ok(Blocks { store: self.store.clone() }))
    }
}

/// Why [`fetch`] has no block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The request failed (the peer answered 404: [`RequestError::Remote`] with [`NOT_FOUND`]).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The peer answered bytes that are not the block asked for.
    #[error("the peer answered {len} bytes that do not hash to {expected}")]
    Corrupt {
        /// The hash asked for.
        expected: Hash,
        /// How many bytes came.
        len: usize,
    },
}

/// Fetches block `hash` from `peer` through `client` (a node's
/// `client::<Fetch>()`, or any `Service<(PeerId, Hash)>` like it) and
/// checks that its bytes hash to `hash`.
pub async fn fetch<S>(client: &mut S, peer: PeerId, hash: Hash) -> Result<Vec<u8>, FetchError>
where
    S: Service<(PeerId, Hash), Response = Block, Error = RequestError>,
{
    let Block(bytes) = client.ready().await?.call((peer, hash)).await?;
    if Hash::of(&bytes) != hash {
        return Err(FetchError::Corrupt { expected: hash, len: bytes.len() });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_named_by_its_sha256() {
        // SHA-256("abc"), FIPS 180-2's example.
        assert_eq!(
            Hash::of(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let store = BlockStore::default();
        let hash = store.insert(b"abc".to_vec()).unwrap();
        assert_eq!(store.get(&hash).as_deref(), Some(&b"abc"[..]));
        assert_eq!(store.insert(vec![0; MAX_BLOCK_LEN + 1]), Err(TooLarge { len: MAX_BLOCK_LEN + 1 }));
    }

    #[test]
    fn a_full_block_fits_a_frame_pipelined() {
        let answer: Result<Block, RemoteError> = Ok(Block(vec![0xff; MAX_BLOCK_LEN]));
        let body = p2p_protocol::encode(&p2p_protocol::v2::Response { id: u64::MAX, result: answer });
        assert!(body.len() <= Fetch::MAX_FRAME_LEN, "{} bytes", body.len());
    }

    #[tokio::test]
    async fn fetch_refuses_bytes_that_are_not_the_block() {
        let liar = tower::service_fn(|(_, _): (PeerId, Hash)| async { Ok(Block(b"not it".to_vec())) });
        let hash = Hash::of(b"the real block");
        let err = fetch(&mut { liar }, PeerId::random(), hash).await.unwrap_err();
        assert_eq!(err, FetchError::Corrupt { expected: hash, len: 6 });
    }
}
