//! One request per stream, either side: the requester's exchange, the
//! responder's read and write, for any protocol; and greet's as libp2p's
//! `request_response::Codec`, for programs on a plain swarm.

use std::io;

use futures::{AsyncRead, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;
use p2p_protocol::{
    DecodeError, Greet, GreetRequest, GreetResult, Protocol, RemoteError, decode, encode, read_frame,
    read_frame_max, write_frame, write_frame_max,
};

use crate::RequestError;

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
        read_request::<Greet, _>(io).await
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
        write_response::<Greet, _>(io, res).await
    }
}

/// A one-request stream's request, as its responder reads it. An I/O error
/// means the stream failed underneath (reset): nobody is left to answer.
pub(crate) async fn read_request<P: Protocol, T>(io: &mut T) -> io::Result<Result<P::Request, DecodeError>>
where
    T: AsyncRead + Unpin,
{
    match read_frame_max(io, P::MAX_FRAME_LEN).await {
        Ok(body) => Ok(decode(&body)),
        Err(DecodeError::Io(err)) => Err(err),
        // Everything else, including an oversized declared length (whose body
        // was never read), is answered on the same stream with its code.
        Err(err) => Ok(Err(err)),
    }
}

/// A one-request stream's answer, then the close of its write half.
pub(crate) async fn write_response<P: Protocol, T>(
    io: &mut T,
    res: Result<P::Response, RemoteError>,
) -> io::Result<()>
where
    T: AsyncWrite + Unpin,
{
    let body = super::answer_body(res, P::MAX_FRAME_LEN, |res| encode(&res));
    write_frame_max(io, &body, P::MAX_FRAME_LEN).await?;
    io.close().await
}

/// The requester's side of a one-request stream: writes the request's
/// frame (`body`), closes the write half, reads the answer's frame (at most
/// `max` bytes long). The answer is not decoded here.
pub(crate) async fn exchange<T>(io: &mut T, body: &[u8], max: usize) -> Result<Vec<u8>, RequestError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let io_error = |err: io::Error| RequestError::Io(err.to_string());
    write_frame_max(io, body, max).await.map_err(io_error)?;
    io.close().await.map_err(io_error)?;
    read_frame_max(io, max).await.map_err(|err| match err {
        DecodeError::Io(err) => io_error(err),
        other => RequestError::Io(other.to_string()),
    })
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

    /// A hoarder that takes whatever is written to it.
    struct Duplex(Hoarder);

    impl AsyncRead for Duplex {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<io::Result<usize>> {
            std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Duplex {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            std::task::Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

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
        assert_no_room_for_what_was_not_sent(|mut hoarder| poll_once(read_request::<Greet, _>(&mut hoarder)));
    }

    #[test]
    fn an_answer_declared_but_not_sent_costs_no_frame_sized_buffer() {
        // Our own 1.0.0 requests' read of the answer (and request_response's codec).
        assert_no_room_for_what_was_not_sent(|hoarder| {
            poll_once(exchange(&mut Duplex(hoarder), b"", 65_536));
        });
        let protocol = StreamProtocol::new(PROTOCOL_NAME);
        assert_no_room_for_what_was_not_sent(|mut hoarder| {
            poll_once(GreetCodec.read_response(&protocol, &mut hoarder));
        });
    }
}
