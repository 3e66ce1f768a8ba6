//! A request/response protocol as a type: what the transport needs to serve
//! it and call it, with nothing of libp2p, tokio or Tower.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{GreetRequest, GreetResponse, MAX_FRAME_LEN, Multiaddr, v2};

/// One request/response protocol: its names, its messages and its frame limit.
///
/// Every protocol speaks the same wire as greet (`greet-protocol.md`): one
/// frame, `uvarint(len) || postcard(body)`, each way; the request body is
/// `postcard(Request)`, the answer `postcard(Result<Response, RemoteError>)`
/// (the error envelope and its codes are shared); on the pipelined name, each
/// frame carries a request id first (`(u64, Request)` and `(u64, Result<..>)`,
/// id 0 for a stream-level error), and answers come in any order.
///
/// A protocol is a type, usually a unit struct:
///
/// ```
/// use p2p_protocol::Protocol;
/// use serde::{Deserialize, Serialize};
///
/// /// `/kv/get/1.0.0`: a key in, its value (if any) out.
/// struct KvGet;
///
/// #[derive(Serialize, Deserialize)]
/// struct Get { key: String }
///
/// impl Protocol for KvGet {
///     const NAME: &'static str = "/kv/get/1.0.0";
///     type Request = Get;
///     type Response = Option<Vec<u8>>;
/// }
/// assert_eq!(KvGet::PIPELINED_NAME, None);
/// assert_eq!(KvGet::MAX_FRAME_LEN, p2p_protocol::MAX_FRAME_LEN);
/// ```
pub trait Protocol: Send + Sync + 'static {
    /// The protocol id of one request per stream (negotiated with multistream-select).
    const NAME: &'static str;
    /// The protocol id of the pipelined variant, many requests on one
    /// long-lived stream; `None`: the protocol has none (one stream per request only).
    const PIPELINED_NAME: Option<&'static str> = None;
    /// The largest frame body a reader accepts, either way. A larger declared
    /// length is answered 413 before anything is read; a body's buffer grows
    /// with the bytes received, never to the declared length at once.
    const MAX_FRAME_LEN: usize = MAX_FRAME_LEN;

    /// What a requester sends.
    type Request: Serialize + DeserializeOwned + Send + 'static;
    /// What a responder answers (inside `Result<Self::Response, RemoteError>`).
    type Response: Serialize + DeserializeOwned + Send + 'static;

    /// The requester's address as the responder says it saw it, if this
    /// protocol's answers carry one: the transport treats it as one more
    /// observation of a *candidate* external address (never as confirmed on
    /// its own). Greet's answers do; most protocols' do not.
    fn observed_addr(_response: &Self::Response) -> Option<&Multiaddr> {
        None
    }
}

/// The greet protocol, `/p2p-node/greet/1.0.0` and `/p2p-node/greet/2.0.0`:
/// free text each way, and the responder's view of the requester's address.
#[derive(Debug, Clone, Copy, Default)]
pub struct Greet;

impl Protocol for Greet {
    const NAME: &'static str = crate::PROTOCOL_NAME;
    const PIPELINED_NAME: Option<&'static str> = Some(v2::PROTOCOL_NAME);

    type Request = GreetRequest;
    type Response = GreetResponse;

    fn observed_addr(response: &GreetResponse) -> Option<&Multiaddr> {
        Some(&response.observed_addr)
    }
}
