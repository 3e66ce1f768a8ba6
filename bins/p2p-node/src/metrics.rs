//! `p2p-node run --metrics <ADDR>`: the Prometheus registry over HTTP/1.1, served by axum.
//!
//! `GET /metrics` answers the registry in the OpenMetrics text format; every
//! other path is 404. The server is small and bounded, whoever connects:
//!
//! - at most [`ServerLimits::max_connections`] connections at once: the
//!   listener takes a semaphore permit before it accepts, and a connection
//!   gives it back when it closes, so the next one waits in the kernel's
//!   accept queue meanwhile;
//! - each connection is closed after [`ServerLimits::connection_lifetime`],
//!   whatever it is doing, so an idle or slow client cannot keep its place;
//! - each request is answered within [`ServerLimits::request_timeout`] (a
//!   Tower timeout layer), or with 408.
//!
//! It stops with the node: no new connections, and the open ones are closed
//! once their request is answered (waiting at most the request timeout for
//! them: a client that sends nothing is not waited for).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::error_handling::HandleErrorLayer;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{BoxError, Router};
use p2p_transport::Registry;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Sleep;
use tower::ServiceBuilder;
use tower::timeout::TimeoutLayer;

/// The content type of the OpenMetrics text format that `prometheus-client` encodes.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How much the metrics server allows one client, and all of them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerLimits {
    /// Connections open at once; the next one is accepted when one closes.
    pub(crate) max_connections: usize,
    /// How long a request may take to answer before it is answered 408.
    pub(crate) request_timeout: Duration,
    /// How long a connection may stay open, busy or idle.
    pub(crate) connection_lifetime: Duration,
}

impl Default for ServerLimits {
    /// A scraper or two, each scrape a short GET.
    fn default() -> Self {
        Self {
            max_connections: 16,
            request_timeout: Duration::from_secs(5),
            connection_lifetime: Duration::from_secs(30),
        }
    }
}

/// A running metrics server.
#[derive(Debug)]
pub(crate) struct MetricsServer {
    local_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
    /// How long [`MetricsServer::stop`] waits for the open connections.
    grace: Duration,
}

impl MetricsServer {
    /// Binds `addr` and serves `registry` there until [`MetricsServer::stop`].
    pub(crate) async fn start(addr: SocketAddr, registry: Registry, limits: ServerLimits) -> Result<Self> {
        let listener =
            TcpListener::bind(addr).await.with_context(|| format!("cannot serve metrics on {addr}"))?;
        let local_addr = listener.local_addr().context("the metrics socket has no address")?;
        let (stop, stopped) = oneshot::channel::<()>();
        let listener = CappedListener {
            listener,
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            lifetime: limits.connection_lifetime,
        };
        let app = router(Arc::new(registry), limits.request_timeout);
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        let task = tokio::spawn(server.into_future());
        Ok(Self { local_addr, stop, task, grace: limits.request_timeout })
    }

    /// The address it serves on (the port the OS chose, for port 0).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, and resolves once every open connection has closed,
    /// or after the request timeout: a request in flight has been answered by
    /// then, and the connections still open are left to end with the process.
    pub(crate) async fn stop(mut self) {
        let _ = self.stop.send(());
        if tokio::time::timeout(self.grace, &mut self.task).await.is_err() {
            self.task.abort();
        }
    }
}

/// `GET /metrics` with the request timeout; 404 for anything else.
fn router(registry: Arc<Registry>, request_timeout: Duration) -> Router {
    let routes = Router::new().route("/metrics", get(scrape)).with_state(registry);
    with_request_timeout(routes, request_timeout)
}

/// `routes`, each request answered 408 if it takes longer than `timeout`.
fn with_request_timeout(routes: Router, timeout: Duration) -> Router {
    routes.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|_: BoxError| async { StatusCode::REQUEST_TIMEOUT }))
            .layer(TimeoutLayer::new(timeout)),
    )
}

/// The registry in the OpenMetrics text format.
async fn scrape(State(registry): State<Arc<Registry>>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &registry) {
        Ok(()) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the metrics\n").into_response(),
    }
}

/// A TCP listener that accepts a connection only with a permit in hand.
struct CappedListener {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    lifetime: Duration,
}

impl axum::serve::Listener for CappedListener {
    type Io = CappedConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (CappedConnection, SocketAddr) {
        // Never closed, so this cannot fail; while none is free, nothing is accepted.
        let permit = Arc::clone(&self.permits).acquire_owned().await.expect("the semaphore is never closed");
        // axum's own accept: retries, and sleeps on errors such as EMFILE instead of spinning.
        let (stream, addr) = axum::serve::Listener::accept(&mut self.listener).await;
        let deadline = Box::pin(tokio::time::sleep(self.lifetime));
        (CappedConnection { stream, deadline, _permit: permit }, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// An accepted connection: holds its permit until dropped, and fails every
/// read and write once its lifetime is over, which ends it.
struct CappedConnection {
    stream: TcpStream,
    deadline: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl CappedConnection {
    /// `Err` once the lifetime is over; otherwise wakes the task when it will be.
    fn check_lifetime(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                Err(io::Error::new(io::ErrorKind::TimedOut, "metrics connection lifetime over"))
            }
            Poll::Pending => Ok(()),
        }
    }
}

impl AsyncRead for CappedConnection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_lifetime(cx)?;
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CappedConnection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_lifetime(cx)?;
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_lifetime(cx)?;
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_lifetime(cx)?;
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use p2p_transport::NodeMetrics;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tower::ServiceExt;

    use super::*;

    /// Long enough for anything that should happen on a busy machine.
    const PATIENCE: Duration = Duration::from_secs(10);

    async fn start(limits: ServerLimits) -> MetricsServer {
        let mut registry = Registry::default();
        let _metrics = NodeMetrics::new(&mut registry);
        MetricsServer::start("127.0.0.1:0".parse().unwrap(), registry, limits).await.unwrap()
    }

    /// Sends `GET <path>` on `stream` and reads the whole answer (the server closes after it).
    async fn http_get(stream: &mut TcpStream, path: &str) -> String {
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer)).await.expect("an answer").unwrap();
        String::from_utf8(answer).unwrap()
    }

    async fn connect(server: &MetricsServer) -> TcpStream {
        TcpStream::connect(server.local_addr()).await.unwrap()
    }

    #[tokio::test]
    async fn metrics_are_served_and_other_paths_are_404() {
        let server = start(ServerLimits::default()).await;

        let answer = http_get(&mut connect(&server).await, "/metrics").await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.to_lowercase().contains(&format!("content-type: {CONTENT_TYPE}\r\n")), "{answer}");
        assert!(answer.contains("# TYPE p2p_bans counter"), "{answer}");
        assert!(answer.trim_end().ends_with("# EOF"), "{answer}");

        for path in ["/other", "/", "/metrics/x"] {
            let answer = http_get(&mut connect(&server).await, path).await;
            assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{path}: {answer}");
        }
        tokio::time::timeout(PATIENCE, server.stop()).await.expect("the server stops");
    }

    #[tokio::test]
    async fn a_connection_past_the_cap_waits_until_one_closes() {
        let limits = ServerLimits {
            max_connections: 2,
            connection_lifetime: Duration::from_secs(60),
            ..Default::default()
        };
        let server = start(limits).await;
        let mut held = vec![connect(&server).await, connect(&server).await];

        let mut third = connect(&server).await;
        third.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut byte = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut byte)).await;
        assert!(early.is_err(), "the third connection was served while two were open: {early:?}");

        drop(held.pop());
        let mut answer = Vec::new();
        tokio::time::timeout(PATIENCE, third.read_to_end(&mut answer))
            .await
            .expect("served once one closed")
            .unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"), "{}", String::from_utf8_lossy(&answer));
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_after_its_lifetime() {
        let limits = ServerLimits { connection_lifetime: Duration::from_millis(200), ..Default::default() };
        let server = start(limits).await;
        let mut idle = connect(&server).await;
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(PATIENCE, idle.read(&mut byte)).await.expect("closed by the server");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }

    #[tokio::test]
    async fn stopping_does_not_wait_for_a_client_that_sends_nothing_more() {
        let limits = ServerLimits {
            request_timeout: Duration::from_millis(200),
            connection_lifetime: Duration::from_secs(60),
            ..Default::default()
        };
        let server = start(limits).await;
        let mut half = connect(&server).await;
        half.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
        // Accepted and half-read before the stop.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = tokio::time::Instant::now();
        tokio::time::timeout(PATIENCE, server.stop()).await.expect("stopped without waiting for the client");
        assert!(started.elapsed() < PATIENCE / 2, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_slow_request_is_answered_408() {
        let slow = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(PATIENCE).await;
                "too late"
            }),
        );
        let app = with_request_timeout(slow, Duration::from_millis(50));
        let request = Request::get("/slow").body(Body::empty()).unwrap();
        let response =
            tokio::time::timeout(PATIENCE / 2, app.oneshot(request)).await.expect("answered").unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    }
}
