//! Errors of the transport's public API.

use libp2p::request_response::OutboundFailure;
use p2p_protocol::RemoteError;

/// Why an outbound greet request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No connection to the peer could be established.
    #[error("could not dial the peer")]
    Dial,
    /// A connection could not be established, and why (one line).
    #[error("could not connect: {0}")]
    Unreachable(String),
    /// The peer did not answer within the request timeout.
    #[error("the request timed out")]
    Timeout,
    /// The connection closed before the answer arrived.
    #[error("the connection closed before the answer arrived")]
    ConnectionClosed,
    /// The peer does not speak the greet protocol.
    #[error("the peer does not speak the greet protocol")]
    UnsupportedProtocol,
    /// The request is larger than a frame can hold.
    #[error("the request is larger than a frame can hold")]
    TooLarge,
    /// The stream failed, or the peer answered with something that does not decode.
    #[error("stream error: {0}")]
    Io(String),
    /// The peer answered with an error.
    #[error(transparent)]
    Remote(RemoteError),
    /// The node has shut down (or is shutting down).
    #[error("the node has shut down")]
    Shutdown,
}

impl RequestError {
    /// A short machine-friendly name of the kind of error, for counters and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Dial | Self::Unreachable(_) => "dial",
            Self::Timeout => "timeout",
            Self::ConnectionClosed => "connection_closed",
            Self::UnsupportedProtocol => "unsupported_protocol",
            Self::TooLarge => "too_large",
            Self::Io(_) => "io",
            Self::Remote(_) => "remote",
            Self::Shutdown => "shutdown",
        }
    }
}

impl From<OutboundFailure> for RequestError {
    fn from(failure: OutboundFailure) -> Self {
        match failure {
            OutboundFailure::DialFailure => Self::Dial,
            OutboundFailure::Timeout => Self::Timeout,
            OutboundFailure::ConnectionClosed => Self::ConnectionClosed,
            OutboundFailure::UnsupportedProtocols => Self::UnsupportedProtocol,
            OutboundFailure::Io(err) => Self::Io(err.to_string()),
        }
    }
}

/// Why a node could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A transport could not be set up.
    #[error("transport: {0}")]
    Transport(String),
    /// mDNS could not be started.
    #[error("mDNS: {0}")]
    Mdns(std::io::Error),
    /// A listen address was refused.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: libp2p::Multiaddr,
        /// Why.
        reason: String,
    },
}
