//! Wire types and codec of the greet protocol, `/p2p-node/greet/1.0.0`, and
//! the [`Protocol`] trait that makes any request/response protocol one the
//! node can serve and call the same way (greet is [`Greet`]).
//!
//! This is the one crate downstream code needs to speak to a p2p-node: the
//! messages, their error codes and the framing, exactly as the protocol
//! specification (`greet-protocol.md`) fixes them byte for byte. It knows
//! nothing about libp2p, tokio or Tower; the framing works over any
//! [`futures_io::AsyncRead`]/[`futures_io::AsyncWrite`].
//!
//! # Example
//!
//! Encode a request the way a requester writes it, and decode a response the
//! way it reads one back:
//!
//! ```
//! use p2p_protocol::{decode, encode, ErrorCode, GreetRequest, GreetResponse, RemoteError};
//! use p2p_protocol::{read_frame, write_frame, GreetResult};
//!
//! # futures::executor::block_on(async {
//! // The requester writes exactly one frame.
//! let mut stream = Vec::new();
//! let request = GreetRequest::new("hello ✓");
//! write_frame(&mut stream, &encode(&request)).await.unwrap();
//! assert_eq!(stream[0], 10); // uvarint length prefix, then the postcard body
//!
//! // The responder reads it back...
//! let body = read_frame(&mut stream.as_slice()).await.unwrap();
//! let got: GreetRequest = decode(&body).unwrap();
//! assert_eq!(got, request);
//!
//! // ...and answers with `Result<GreetResponse, RemoteError>`.
//! let answer: GreetResult = Ok(GreetResponse {
//!     message: "hi".into(),
//!     observed_addr: "/ip4/10.0.0.2/udp/4001/quic-v1".parse().unwrap(),
//! });
//! let bytes = encode(&answer);
//! assert_eq!(decode::<GreetResult>(&bytes).unwrap(), answer);
//!
//! // Errors carry a code from the specification's table.
//! let too_big: GreetResult = Err(RemoteError::new(ErrorCode::TOO_LARGE, "too big"));
//! assert_eq!(encode(&too_big), [0x01, 0x9d, 0x03, 7, b't', b'o', b'o', b' ', b'b', b'i', b'g']);
//! # });
//! ```

mod codec;
mod error;
mod frame;
mod protocol;
mod types;
pub mod v2;

pub use codec::{decode, encode};
pub use error::DecodeError;
pub use frame::{
    MAX_VARINT_LEN, append_frame, append_frame_max, read_frame, read_frame_max, try_read_frame,
    try_read_frame_max, uvarint, uvarint_len, write_frame, write_frame_max,
};
pub use protocol::{Greet, Protocol};
pub use types::{ErrorCode, GreetRequest, GreetResponse, GreetResult, RemoteError};

/// Re-exported so that users of the messages need no direct `multiaddr` dependency.
pub use multiaddr::Multiaddr;

/// The protocol id negotiated with multistream-select.
pub const PROTOCOL_NAME: &str = "/p2p-node/greet/1.0.0";

/// The largest frame body, in bytes, that a reader accepts.
///
/// A reader rejects a larger declared length before it reads or allocates the body.
pub const MAX_FRAME_LEN: usize = 65_536;
