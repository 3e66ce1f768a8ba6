//! Future types

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower::Service;
use tower::load_shed::error::Overloaded;

use crate::BoxError;

pin_project! {
    /// The response future of [`ShedUnready`](super::ShedUnready): the inner
    /// response if the inner service is ready on the first poll, else
    /// [`Overloaded`] at once.
    pub struct ResponseFuture<S: Service<Request>, Request> {
        #[pin]
        state: State<S, Request>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S: Service<Request>, Request> {
        // Not polled yet: readiness is asked on the first poll.
        Unpolled { service: S, request: Option<Request> },
        // The inner service was ready and called.
        Called { #[pin] future: S::Future },
        // Answered without a call; the inner service is let go of.
        Done,
    }
}

impl<S: Service<Request>, Request> ResponseFuture<S, Request> {
    pub(super) fn new(service: S, request: Request) -> Self {
        Self { state: State::Unpolled { service, request: Some(request) } }
    }
}

impl<S, Request> Future for ResponseFuture<S, Request>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Unpolled { service, request } => {
                    let shed: BoxError = match service.poll_ready(cx) {
                        Poll::Ready(Ok(())) => {
                            let future = service.call(request.take().expect("request taken only once"));
                            state.set(State::Called { future });
                            continue;
                        }
                        Poll::Ready(Err(error)) => error.into(),
                        Poll::Pending => Overloaded::new().into(),
                    };
                    // Let go of the inner clone now: a waiter it queued in
                    // `poll_ready` (a semaphore's) must not hold on to capacity.
                    state.set(State::Done);
                    return Poll::Ready(Err(shed));
                }
                StateProj::Called { future } => return future.poll(cx).map_err(Into::into),
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            }
        }
    }
}

impl<S: Service<Request>, Request> fmt::Debug for ResponseFuture<S, Request> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Unpolled { .. } => "unpolled",
            State::Called { .. } => "called",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture").field("state", &state).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::pending;

    use tokio_test::task::spawn;
    use tower::{ServiceBuilder, service_fn};

    use super::*;
    use crate::shed_unready::ShedUnready;

    #[tokio::test(start_paused = true)]
    async fn a_shed_request_kept_by_its_caller_holds_no_place_in_the_handlers_queue() {
        // One slot, taken by a request that never finishes.
        let stuck = service_fn(|_: u32| pending::<Result<u32, Infallible>>());
        let mut service = ShedUnready::new(ServiceBuilder::new().concurrency_limit(1).service(stuck));
        let mut first = spawn(service.call(1));
        assert!(first.poll().is_pending());

        // Shed, and kept by its caller after it answered (unlike `Oneshot`, which drops it).
        let mut shed = spawn(service.call(2));
        let answer = shed.poll();
        assert!(matches!(&answer, Poll::Ready(Err(e)) if e.is::<Overloaded>()), "{answer:?}");

        // The slot comes free: it must go to the next request, not to the shed one's queued waiter.
        drop(first);
        let mut next = spawn(service.call(3));
        assert!(next.poll().is_pending(), "the next request was shed: the slot went to the shed one");
        drop(shed);
    }
}
