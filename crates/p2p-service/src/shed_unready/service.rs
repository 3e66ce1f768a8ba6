use std::task::{Context, Poll, Waker};

use tower::Service;
use tower::load_shed::error::Overloaded;

use super::future::ResponseFuture;
use crate::BoxError;

/// Answers [`Overloaded`](tower::load_shed::error::Overloaded) at once when the inner service is not ready.
///
/// It is always ready itself. See the [module docs](super) for when and why.
#[derive(Debug, Clone)]
pub struct ShedUnready<S> {
    inner: S,
}

impl<S> ShedUnready<S> {
    /// Sheds the requests `inner` is not ready for.
    pub const fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Request> Service<Request> for ShedUnready<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Never wait here: readiness is asked in `call`, once the layers above
        // have let the request through.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Asked, never waited for: a waker would only serve to wait, so none is given.
        match self.inner.poll_ready(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(())) => ResponseFuture::called(self.inner.call(request)),
            Poll::Ready(Err(error)) => ResponseFuture::shed(error.into()),
            Poll::Pending => ResponseFuture::shed(Overloaded::new().into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio_test::task::spawn;
    use tokio_test::{assert_pending, assert_ready, assert_ready_ok};
    use tower::layer::layer_fn;
    use tower_test::mock;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn it_is_always_ready_and_sheds_what_its_inner_service_is_not_ready_for() {
        let (mut service, mut handle) = mock::spawn_layer::<u32, u32, _>(layer_fn(ShedUnready::new));
        handle.allow(0);
        assert_ready_ok!(service.poll_ready(), "not ready inside, ready outside");
        let answer = assert_ready!(spawn(service.call(1)).poll());
        assert!(answer.unwrap_err().is::<Overloaded>());
        assert_pending!(handle.poll_request(), "the inner service was not called");

        handle.allow(1);
        assert_ready_ok!(service.poll_ready());
        let mut called = spawn(service.call(2));
        assert_pending!(called.poll());
        let (request, reply) = handle.next_request().await.unwrap();
        assert_eq!(request, 2);
        reply.send_response(20);
        assert_eq!(assert_ready!(called.poll()).unwrap(), 20);
    }
}
