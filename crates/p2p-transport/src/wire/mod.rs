//! How greet bytes move on a stream, for both protocol versions: the 1.0.0
//! codec for libp2p's `request_response`, and the frame reader and the
//! coalescing writer of the 2.0.0 pipelined streams. Every read of peer
//! bytes goes through `p2p_protocol`'s `try_read_frame`: memory is paid for
//! with bytes received (a buffer grows as they arrive).
//!
//! Owns: framing adapters and the rule that every answer fits a frame.
//! Must never: know about peers, services or the swarm task.

mod codec;
mod frames;
mod writer;

pub use codec::{GreetCodec, InboundRequest};
pub(crate) use codec::{read_request, write_response};
pub(crate) use frames::frames;
use p2p_protocol::{ErrorCode, GreetResult, MAX_FRAME_LEN, RemoteError};
pub(crate) use writer::write_bodies;

/// The frame body `encode` makes of `result`; if a handler answered more
/// than a frame holds (say, by echoing a maximal request), the body of a 500
/// "response too large" instead, so the requester still gets an answer.
pub(crate) fn answer_body(result: GreetResult, encode: impl Fn(GreetResult) -> Vec<u8>) -> Vec<u8> {
    let body = encode(result);
    if body.len() <= MAX_FRAME_LEN {
        return body;
    }
    encode(Err(RemoteError::new(ErrorCode::INTERNAL, "response too large")))
}

#[cfg(test)]
mod tests {
    use p2p_protocol::{GreetResponse, Multiaddr, encode};

    use super::*;

    #[test]
    fn an_answer_larger_than_a_frame_becomes_a_500() {
        let big: GreetResult =
            Ok(GreetResponse { message: "x".repeat(MAX_FRAME_LEN), observed_addr: Multiaddr::empty() });
        let body = answer_body(big, |r| encode(&r));
        let decoded: GreetResult = p2p_protocol::decode(&body).unwrap();
        assert_eq!(decoded.unwrap_err().code, ErrorCode::INTERNAL);

        let small: GreetResult =
            Ok(GreetResponse { message: "hi".into(), observed_addr: Multiaddr::empty() });
        assert_eq!(answer_body(small.clone(), |r| encode(&r)), encode(&small));
    }
}
