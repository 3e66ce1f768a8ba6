//! How the node answered on a greet stream, as one word: `ok`, a code
//! (`400`, `413`, `429`, ...), `reset`, `closed`, `bad_answer`, `io_<kind>`.

use std::io;

use p2p_protocol::v2::{self, STREAM_ERROR_ID};
use p2p_protocol::{DecodeError, GreetResult, decode, read_frame};
use p2p_transport::libp2p::Stream;

pub(crate) fn io_outcome(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted => {
            "reset".into()
        }
        io::ErrorKind::UnexpectedEof => "closed".into(),
        kind => format!("io_{kind:?}").to_lowercase(),
    }
}

pub(crate) fn decode_outcome(err: &DecodeError) -> String {
    match err {
        DecodeError::Io(err) => io_outcome(err),
        DecodeError::Closed => "closed".into(),
        _ => "bad_answer".into(),
    }
}

pub(crate) fn result_outcome(result: &GreetResult) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(err) => err.code.as_u16().to_string(),
    }
}

/// Reads what the node answers on a 1.0.0 stream: one frame; and whether it was an answer.
pub(crate) async fn read_v1(stream: &mut Stream) -> (String, bool) {
    match read_frame(stream).await {
        Ok(body) => match decode::<GreetResult>(&body) {
            Ok(result) => (result_outcome(&result), true),
            Err(_) => ("bad_answer".into(), false),
        },
        Err(err) => (decode_outcome(&err), false),
    }
}

/// Reads what the node answers on a 2.0.0 stream until it closes: the stream
/// error if there is one, else the first answer; and whether `embedded` was answered.
pub(crate) async fn read_v2(stream: &mut Stream, embedded: Option<u64>) -> (String, bool) {
    let mut first = None;
    let mut stream_error = None;
    let mut embedded_answered = false;
    let end = loop {
        match p2p_protocol::try_read_frame(&mut *stream).await {
            Ok(Some(body)) => match decode::<v2::Response>(&body) {
                Ok(response) => {
                    let outcome = result_outcome(&response.result);
                    if response.id == STREAM_ERROR_ID {
                        stream_error.get_or_insert(outcome);
                    } else {
                        embedded_answered |= Some(response.id) == embedded;
                        first.get_or_insert(outcome);
                    }
                }
                Err(_) => break "bad_answer".to_owned(),
            },
            Ok(None) => break "closed".to_owned(),
            Err(err) => break decode_outcome(&err),
        }
    };
    let what = match (stream_error, first) {
        _ if end == "bad_answer" => end,
        (Some(error), _) => error,
        (None, Some(first)) => first,
        (None, None) => end,
    };
    (what, embedded_answered)
}

#[cfg(test)]
mod tests {
    use p2p_protocol::{ErrorCode, RemoteError};

    use super::*;

    #[test]
    fn outcomes_are_one_word() {
        assert_eq!(io_outcome(&io::Error::from(io::ErrorKind::ConnectionReset)), "reset");
        assert_eq!(io_outcome(&io::Error::from(io::ErrorKind::UnexpectedEof)), "closed");
        assert_eq!(io_outcome(&io::Error::from(io::ErrorKind::TimedOut)), "io_timedout");
        assert_eq!(decode_outcome(&DecodeError::Closed), "closed");
        assert_eq!(decode_outcome(&DecodeError::InvalidUtf8), "bad_answer");
        let refused: GreetResult = Err(RemoteError::new(ErrorCode::TOO_LARGE, "no"));
        assert_eq!(result_outcome(&refused), "413");
    }
}
