//! The pipelined greet protocol, `/p2p-node/greet/2.0.0`.
//!
//! The same messages, framing and codes as 1.0.0, but many requests share one
//! long-lived stream: each request carries an id chosen by the requester, and
//! responses come back in any order, matched by id. Id 0 is the stream-level
//! error: a responder that cannot decode a frame answers
//! `(0, Err(400 | 413))` and closes the stream.

use serde::{Deserialize, Serialize};

use crate::{GreetRequest, GreetResponse, RemoteError};

/// The protocol id negotiated with multistream-select.
pub const PROTOCOL_NAME: &str = "/p2p-node/greet/2.0.0";

/// The id of a stream-level error response; never a request's id.
pub const STREAM_ERROR_ID: u64 = 0;

/// A request frame body: postcard `(u64 id, GreetRequest)`; for any
/// [`Protocol`](crate::Protocol)'s pipelined name, `(u64 id, P::Request)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request<Q = GreetRequest> {
    /// Chosen by the requester: unique among its in-flight requests on the stream, never 0.
    pub id: u64,
    /// The request.
    pub request: Q,
}

/// A response frame body: postcard `(u64 id, Result<GreetResponse, RemoteError>)`;
/// for any [`Protocol`](crate::Protocol)'s pipelined name, `(u64 id, Result<P::Response, RemoteError>)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response<T = GreetResponse> {
    /// The id of the request this answers, or [`STREAM_ERROR_ID`].
    pub id: u64,
    /// The answer.
    pub result: Result<T, RemoteError>,
}
