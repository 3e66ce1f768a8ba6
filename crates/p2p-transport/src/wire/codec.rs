//! `p2p-protocol`'s framing adapted to libp2p's `request_response::Codec`.

use std::io;

use futures::{AsyncRead, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;
use p2p_protocol::{DecodeError, GreetRequest, GreetResult, decode, encode, read_frame, write_frame};

/// A request as read off a stream: a decode failure is a value, so bad input
/// is answered with its code instead of dropping the stream.
pub type InboundRequest = Result<GreetRequest, DecodeError>;

/// The greet protocol's codec for `libp2p::request_response`: one frame each way per stream.
///
/// The node uses it internally; it is public for programs that want the
/// protocol on a plain libp2p swarm (the benchmark's raw baseline does).
/// Outbound requests are always `Ok`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GreetCodec;

impl request_response::Codec for GreetCodec {
    type Protocol = StreamProtocol;
    // Outbound requests are always `Ok`; the `Err` side only ever comes from `read_request`.
    type Request = InboundRequest;
    type Response = GreetResult;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<InboundRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_request(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<GreetResult>
    where
        T: AsyncRead + Unpin + Send,
    {
        let body = read_frame(io).await.map_err(into_io)?;
        decode(&body).map_err(into_io)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: InboundRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let req = req.map_err(into_io)?;
        write_frame(io, &encode(&req)).await?;
        io.close().await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, res: GreetResult) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_response(io, res).await
    }
}

/// A 1.0.0 stream's one request. An I/O error means the stream failed
/// underneath (reset): nobody is left to answer.
pub(crate) async fn read_request<T>(io: &mut T) -> io::Result<InboundRequest>
where
    T: AsyncRead + Unpin,
{
    match read_frame(io).await {
        Ok(body) => Ok(decode(&body)),
        Err(DecodeError::Io(err)) => Err(err),
        // Everything else, including an oversized declared length (whose body
        // was never read), is answered on the same stream with its code.
        Err(err) => Ok(Err(err)),
    }
}

/// A 1.0.0 stream's answer, then the close of its write half.
pub(crate) async fn write_response<T>(io: &mut T, res: GreetResult) -> io::Result<()>
where
    T: AsyncWrite + Unpin,
{
    let body = super::answer_body(res, |res| encode(&res));
    write_frame(io, &body).await?;
    io.close().await
}

fn into_io(err: DecodeError) -> io::Error {
    match err {
        DecodeError::Io(err) => err,
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use libp2p::request_response::Codec;
    use p2p_protocol::PROTOCOL_NAME;

    use super::*;
    use crate::wire::frames::tests::{Hoarder, poll_once};

    fn assert_no_room_for_what_was_not_sent(read: impl FnOnce(Hoarder)) {
        let hoarder = Hoarder::declaring_a_full_frame();
        let offered = hoarder.offered();
        read(hoarder);
        let offered = offered.load(Ordering::Relaxed);
        assert!(offered > 0, "the body was asked for");
        assert!(offered <= 1024, "{offered} bytes of room for 3 received");
    }

    #[test]
    fn an_inbound_request_declared_but_not_sent_costs_no_frame_sized_buffer() {
        // The inbound 1.0.0 tasks' read.
        assert_no_room_for_what_was_not_sent(|mut hoarder| poll_once(read_request(&mut hoarder)));
    }

    #[test]
    fn an_answer_declared_but_not_sent_costs_no_frame_sized_buffer() {
        // Our own 1.0.0 requests' read of the answer (request_response's codec).
        let protocol = StreamProtocol::new(PROTOCOL_NAME);
        assert_no_room_for_what_was_not_sent(|mut hoarder| {
            poll_once(GreetCodec.read_response(&protocol, &mut hoarder));
        });
    }
}
