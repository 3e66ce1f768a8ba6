//! The pipelined protocol's golden vectors, byte for byte (greet-protocol-v2.md).

use p2p_protocol::v2::{Request, Response, STREAM_ERROR_ID};
use p2p_protocol::{ErrorCode, GreetRequest, GreetResponse, RemoteError, decode, encode};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn v2_request_vector() {
    let request = Request { id: 1, request: GreetRequest::new("hello ✓") };
    assert_eq!(hex(&encode(&request)), "010968656c6c6f20e29c93");
    assert_eq!(decode::<Request>(&encode(&request)).unwrap(), request);
    // The struct is the tuple of the spec, byte for byte.
    assert_eq!(encode(&request), encode(&(1u64, GreetRequest::new("hello ✓"))));
}

#[test]
fn v2_response_vectors() {
    let ok = |id, message: &str, addr: &str| Response {
        id,
        result: Ok(GreetResponse { message: message.into(), observed_addr: addr.parse().unwrap() }),
    };
    let err =
        |id, code: u16, message: &str| Response { id, result: Err(RemoteError::new(code.into(), message)) };
    let vectors = [
        (ok(2, "hi", "/ip4/10.0.0.2/udp/4001/quic-v1"), "02000268690b040a00000291020fa1cd03"),
        (err(300, 429, "slow down"), "ac0201ad0309736c6f7720646f776e"),
        (err(STREAM_ERROR_ID, 400, "bad frame"), "0001900309626164206672616d65"),
    ];
    for (value, expected) in vectors {
        assert_eq!(hex(&encode(&value)), expected, "{value:?}");
        assert_eq!(decode::<Response>(&encode(&value)).unwrap(), value);
    }
    assert_eq!(ErrorCode::from(429), ErrorCode::RATE_LIMITED);
}
