//! The specification's golden vectors, byte for byte (greet-protocol.md).

use p2p_protocol::{
    ErrorCode, GreetRequest, GreetResponse, GreetResult, RemoteError, decode, encode, read_frame, write_frame,
};

/// A value of one of the two message types that frames carry.
#[derive(Debug)]
enum Message {
    Request(GreetRequest),
    Response(GreetResult),
}

fn ok(message: &str, addr: &str) -> Message {
    Message::Response(Ok(GreetResponse { message: message.into(), observed_addr: addr.parse().unwrap() }))
}

fn err(code: u16, message: &str) -> Message {
    Message::Response(Err(RemoteError::new(ErrorCode::from(code), message)))
}

fn vectors() -> Vec<(Message, String)> {
    vec![
        (Message::Request(GreetRequest::new("hello ✓")), "0968656c6c6f20e29c93".into()),
        (Message::Request(GreetRequest::new("x".repeat(200))), format!("c801{}", "78".repeat(200))),
        (ok("hi", "/ip4/10.0.0.2/udp/4001/quic-v1"), "000268690b040a00000291020fa1cd03".into()),
        (ok("", "/ip4/10.0.0.2/tcp/54321"), "000008040a00000206d431".into()),
        (err(413, "too big"), "019d0307746f6f20626967".into()),
        (err(65535, "m"), "01ffff03016d".into()),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn golden_vectors_encode_and_decode_byte_for_byte() {
    for (value, expected) in vectors() {
        let (encoded, round_trips) = match &value {
            Message::Request(req) => {
                let bytes = encode(req);
                let back: GreetRequest = decode(&bytes).unwrap();
                (bytes, &back == req)
            }
            Message::Response(res) => {
                let bytes = encode(res);
                let back: GreetResult = decode(&bytes).unwrap();
                (bytes, &back == res)
            }
        };
        assert_eq!(hex(&encoded), expected, "encoding of {value:?}");
        assert!(round_trips, "decoding of {value:?}");
    }
}

#[test]
fn golden_frame_of_too_big_error() {
    let body = encode::<GreetResult>(&Err(RemoteError::new(ErrorCode::TOO_LARGE, "too big")));
    let mut frame = Vec::new();
    futures::executor::block_on(write_frame(&mut frame, &body)).unwrap();
    assert_eq!(hex(&frame), "0b019d0307746f6f20626967");
    let read = futures::executor::block_on(read_frame(&mut frame.as_slice())).unwrap();
    assert_eq!(read, body);
}

#[test]
fn named_codes_match_the_spec_table() {
    let table = [
        (ErrorCode::BAD_REQUEST, 400),
        (ErrorCode::TIMEOUT, 408),
        (ErrorCode::TOO_LARGE, 413),
        (ErrorCode::RATE_LIMITED, 429),
        (ErrorCode::INTERNAL, 500),
        (ErrorCode::OVERLOADED, 503),
    ];
    for (code, number) in table {
        assert_eq!(code.as_u16(), number);
        assert_eq!(ErrorCode::from(number), code);
        assert!(code.name().is_some(), "{number} has a name");
    }
    assert_eq!(ErrorCode::from(299).name(), None, "unknown codes are kept, unnamed");
}
