//! The messages of the greet protocol.

use std::fmt;

use multiaddr::Multiaddr;
use serde::{Deserialize, Serialize};

/// A greeting, sent by the requester. One per stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GreetRequest {
    /// Free text from the requester.
    pub message: String,
}

impl GreetRequest {
    /// A request carrying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }
}

/// The answer to a [`GreetRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GreetResponse {
    /// Free text from the responder.
    pub message: String,
    /// The requester's address as the responder sees it (the connection's
    /// remote address). A requester treats it as a *candidate* for its own
    /// external address, never as confirmed on its own.
    pub observed_addr: Multiaddr,
}

/// An error answered on the wire instead of a [`GreetResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[error("remote error {code}: {message}")]
pub struct RemoteError {
    /// What went wrong, from the specification's table.
    pub code: ErrorCode,
    /// A human-readable explanation. It never carries the responder's internals.
    pub message: String,
}

impl RemoteError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// The body of every response frame: variant 0 is `Ok`, 1 is `Err`.
pub type GreetResult = Result<GreetResponse, RemoteError>;

/// The code of a [`RemoteError`]: a `u16` on the wire.
///
/// The codes of the specification have names; any other `u16` is kept as it
/// came (a newer peer may send codes this version does not know).
///
/// ```
/// use p2p_protocol::ErrorCode;
/// assert_eq!(ErrorCode::from(429), ErrorCode::RATE_LIMITED);
/// assert_eq!(u16::from(ErrorCode::OVERLOADED), 503);
/// assert_eq!(ErrorCode::from(599).as_u16(), 599);
/// assert_eq!(ErrorCode::TIMEOUT.to_string(), "408 timeout");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ErrorCode(u16);

impl ErrorCode {
    /// 400: the body does not decode, is not valid UTF-8, or has trailing bytes.
    pub const BAD_REQUEST: Self = Self(400);
    /// 408: the handler did not answer within the server's deadline.
    pub const TIMEOUT: Self = Self(408);
    /// 413: the declared frame length exceeds [`MAX_FRAME_LEN`](crate::MAX_FRAME_LEN).
    pub const TOO_LARGE: Self = Self(413);
    /// 429: this peer sent more than its allowed rate.
    pub const RATE_LIMITED: Self = Self(429);
    /// 500: the handler failed.
    pub const INTERNAL: Self = Self(500);
    /// 503: the server sheds load (too many requests in flight).
    pub const OVERLOADED: Self = Self(503);

    /// A code of a protocol's own (greet's are the constants above; another
    /// protocol may add its own, such as a 404 "not found").
    ///
    /// ```
    /// use p2p_protocol::ErrorCode;
    /// const NOT_FOUND: ErrorCode = ErrorCode::new(404);
    /// assert_eq!(NOT_FOUND.as_u16(), 404);
    /// ```
    pub const fn new(code: u16) -> Self {
        Self(code)
    }

    /// The numeric code, as sent on the wire.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// The specification's name for this code, if it has one.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            400 => "bad request",
            408 => "timeout",
            413 => "too large",
            429 => "rate limited",
            500 => "internal",
            503 => "overloaded",
            _ => return None,
        })
    }
}

impl From<u16> for ErrorCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl From<ErrorCode> for u16 {
    fn from(code: ErrorCode) -> Self {
        code.0
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} {name}", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ErrorCode({self})")
    }
}
