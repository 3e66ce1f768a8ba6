//! Hostile and malformed bodies: each gives the right `DecodeError` and code.

use p2p_protocol::{DecodeError, ErrorCode, GreetRequest, GreetResult, decode, encode};

#[test]
fn malformed_bodies_map_to_their_errors() {
    type Check = fn(&DecodeError) -> bool;
    let cases: &[(&str, &[u8], Check)] = &[
        ("empty body", &[], |e| matches!(e, DecodeError::Malformed(_))),
        ("length past the end", &[0x05, b'a'], |e| matches!(e, DecodeError::Malformed(_))),
        ("invalid utf-8", &[0x02, 0xff, 0xfe], |e| matches!(e, DecodeError::InvalidUtf8)),
        ("trailing byte", &[0x01, b'a', 0x00], |e| matches!(e, DecodeError::TrailingBytes { count: 1 })),
        ("over-long string length varint", &[0xff; 12], |e| matches!(e, DecodeError::Malformed(_))),
    ];
    for (name, body, check) in cases {
        let err = decode::<GreetRequest>(body).expect_err(name);
        assert!(check(&err), "{name}: got {err:?}");
        assert_eq!(err.code(), ErrorCode::BAD_REQUEST, "{name}");
    }
}

#[test]
fn response_with_bad_variant_or_bad_multiaddr_is_rejected() {
    // Variant 2 of Result does not exist.
    assert!(decode::<GreetResult>(&[0x02, 0x00]).is_err());
    // Ok, empty message, a multiaddr of 2 bytes naming an unknown protocol code.
    assert!(decode::<GreetResult>(&[0x00, 0x00, 0x02, 0xff, 0x7f]).is_err());
}

#[test]
fn trailing_bytes_after_a_valid_response_are_rejected() {
    let mut body = encode::<GreetResult>(&Err(p2p_protocol::RemoteError::new(ErrorCode::INTERNAL, "x")));
    body.push(0);
    assert!(matches!(decode::<GreetResult>(&body), Err(DecodeError::TrailingBytes { count: 1 })));
}
