//! How a protocol's bytes move on a stream, for both of its names: the
//! one-stream-per-request exchange (and greet's 1.0.0 codec for libp2p's
//! `request_response`, which the raw baseline uses), and the frame reader
//! and the coalescing writer of the pipelined streams. Every read of peer
//! bytes goes through `p2p_protocol`'s `try_read_frame_max`, with the
//! protocol's frame limit: memory is paid for with bytes received (a buffer
//! grows as they arrive).
//!
//! Owns: framing adapters and the rule that every answer fits a frame.
//! Must never: know about peers, services or the swarm task.

mod codec;
mod frames;
mod writer;

pub use codec::{GreetCodec, InboundRequest};
pub(crate) use codec::{exchange, read_request, write_response};
pub(crate) use frames::frames;
use p2p_protocol::{ErrorCode, RemoteError};
pub(crate) use writer::write_bodies;

/// The frame body `encode` makes of `result`; if a handler answered more
/// than a frame holds (`max`, the protocol's limit; say, by echoing a
/// maximal request), the body of a 500 "response too large" instead, so the
/// requester still gets an answer.
pub(crate) fn answer_body<T>(
    result: Result<T, RemoteError>,
    max: usize,
    encode: impl Fn(Result<T, RemoteError>) -> Vec<u8>,
) -> Vec<u8> {
    let body = encode(result);
    if body.len() <= max {
        return body;
    }
    encode(Err(RemoteError::new(ErrorCode::INTERNAL, "response too large")))
}

#[cfg(test)]
mod tests {
    use p2p_protocol::{GreetResponse, GreetResult, MAX_FRAME_LEN, Multiaddr, encode};

    use super::*;

    #[test]
    fn an_answer_larger_than_a_frame_becomes_a_500() {
        let big: GreetResult =
            Ok(GreetResponse { message: "x".repeat(MAX_FRAME_LEN), observed_addr: Multiaddr::empty() });
        let body = answer_body(big, MAX_FRAME_LEN, |r| encode(&r));
        let decoded: GreetResult = p2p_protocol::decode(&body).unwrap();
        assert_eq!(decoded.unwrap_err().code, ErrorCode::INTERNAL);

        let small: GreetResult =
            Ok(GreetResponse { message: "hi".into(), observed_addr: Multiaddr::empty() });
        assert_eq!(answer_body(small.clone(), MAX_FRAME_LEN, |r| encode(&r)), encode(&small));
    }
}
