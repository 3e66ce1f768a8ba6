//! Middleware that traces every request of one peer: a span, and an event with its outcome.
//!
//! [`Trace`] opens a `debug`-level span `greet_request` per request, with the
//! fields `peer`, `code` and `latency_us`; the inner service is called and
//! polled inside it, so whatever the stack logs (such as the real error
//! behind a 500) carries the peer when debug logging is on. When the answer
//! is ready, `code` (200 for a success, the
//! [`RemoteError`](p2p_protocol::RemoteError)'s code otherwise) and
//! `latency_us` are recorded and one `debug` event is emitted, naming the peer
//! itself. Error answers are not logged at `info`: a peer that floods the node
//! gets one answer per request, and must not get one log line per request
//! too (the node's metrics count answers by code). A handler's real error
//! behind a 500 is logged at `warn` by [`remote_error`](crate::remote_error).
//!
//! The span is `debug`, not `info`, because at the default `info` level an
//! enabled span costs an allocation and field formatting on every request
//! (about a tenth of the node's CPU under load, by the profile in
//! BENCHMARKS.md); disabled, it costs a few atomic loads and no clock read (the
//! latency is measured only for an enabled span).
//! The peer id is turned into text once per peer, not per request.
//!
//! It sits outermost, over [`MapRemoteError`](crate::remote_error::MapRemoteError),
//! so that it sees the code that goes on the wire.

pub mod future;
mod layer;
mod service;

pub use self::layer::TraceLayer;
pub use self::service::Trace;
