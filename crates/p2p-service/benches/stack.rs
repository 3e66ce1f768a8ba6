//! The cost of the default per-peer stack: one request through it, against the bare `Greeter`.
//!
//! Both run on a current-thread tokio runtime, one request at a time, on a
//! fresh clone of the service per request (as the transport calls them). The
//! stack has the default limits except a rate high enough never to refuse, so
//! every layer does its full work on every request. No tracing subscriber is
//! installed. Run with `cargo bench -p p2p-service`; the last lines are a
//! summary and each layer's share (the stack built up one layer at a time,
//! innermost first, each row the cost of one request through it).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use libp2p_identity::PeerId;
use p2p_protocol::GreetRequest;
use p2p_service::in_flight::InFlightLimitLayer;
use p2p_service::rate_limit::RateLimitLayer;
use p2p_service::remote_error::MapRemoteErrorLayer;
use p2p_service::shed_unready::ShedUnreadyLayer;
use p2p_service::trace::TraceLayer;
use p2p_service::{Greeter, Limits, MakeGreeter, PeerContext, PeerService, stack};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;
use tower::timeout::TimeoutLayer;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
}

fn context() -> PeerContext {
    PeerContext::new(PeerId::random(), "/ip4/192.0.2.7/udp/4001/quic-v1".parse().unwrap())
}

/// The default stack, with a rate no benchmark loop reaches.
fn peer_service(rt: &Runtime) -> PeerService {
    let limits = Limits { rate_per_sec: 1_000_000_000, rate_burst: 1_000_000_000, ..Limits::default() };
    rt.block_on(stack(MakeGreeter::new("hi"), limits).oneshot(context())).unwrap()
}

/// One request on a fresh clone of `service`; panics unless it is answered with a response.
async fn request<S, R, E>(service: &S) -> R
where
    S: Service<GreetRequest, Response = R, Error = E> + Clone,
    E: std::fmt::Debug,
{
    service.clone().oneshot(GreetRequest::new("hello")).await.unwrap()
}

fn benches(c: &mut Criterion, rt: &Runtime, stacked: &PeerService, bare: &Greeter) {
    let mut group = c.benchmark_group("one request");
    group.bench_function("default stack", |b| {
        b.to_async(rt).iter(|| async { black_box(request(stacked).await.unwrap()) })
    });
    group
        .bench_function("bare greeter", |b| b.to_async(rt).iter(|| async { black_box(request(bare).await) }));
    group.finish();
}

/// The mean time of one request over `n`, measured in one loop on `rt`.
fn ns_per_request<S, R, E>(rt: &Runtime, service: &S, n: u32) -> f64
where
    S: Service<GreetRequest, Response = R, Error = E> + Clone,
    E: std::fmt::Debug,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..n {
            black_box(request(service).await);
        }
        start.elapsed().as_nanos() as f64 / f64::from(n)
    })
}

/// The stack built up one layer at a time, as `stack` orders them (innermost
/// first), with concrete types; prints ns per request at each step.
fn layer_shares(rt: &Runtime, n: u32) {
    let ctx = context();
    let peer = ctx.peer_id;
    let best = |measure: &dyn Fn() -> f64| (0..3).map(|_| measure()).fold(f64::INFINITY, f64::min);
    let greeter = Greeter::new(ctx, "hi");
    let shed = ShedUnreadyLayer::new().layer(greeter.clone());
    let timeout = TimeoutLayer::new(Duration::from_secs(10)).layer(shed.clone());
    let in_flight =
        InFlightLimitLayer::new(64).with_shared(Arc::new(Semaphore::new(1024))).layer(timeout.clone());
    let rate = RateLimitLayer::new(1_000_000_000, 1_000_000_000).layer(in_flight.clone());
    let remote = MapRemoteErrorLayer::new().layer(rate.clone());
    let trace = TraceLayer::new(peer).layer(remote.clone());
    let boxed = BoxCloneSyncService::new(trace.clone());
    let boxed_twice = BoxCloneSyncService::new(boxed.clone());
    let rows = [
        ("greeter", best(&|| ns_per_request(rt, &greeter, n))),
        ("+ shed_unready", best(&|| ns_per_request(rt, &shed, n))),
        ("+ timeout", best(&|| ns_per_request(rt, &timeout, n))),
        ("+ in_flight (per-peer and shared)", best(&|| ns_per_request(rt, &in_flight, n))),
        ("+ rate_limit", best(&|| ns_per_request(rt, &rate, n))),
        ("+ remote_error", best(&|| ns_per_request(rt, &remote, n))),
        ("+ trace (no subscriber)", best(&|| ns_per_request(rt, &trace, n))),
        ("+ BoxCloneSyncService (PeerService)", best(&|| ns_per_request(rt, &boxed, n))),
        ("+ a second box (as the transport had)", best(&|| ns_per_request(rt, &boxed_twice, n))),
    ];
    println!("layer shares (ns/req, cumulative; the step's own cost in brackets):");
    let mut last = 0.0;
    for (name, ns) in rows {
        println!("  {name:<40} {ns:>6.0}  (+{:.0})", ns - last);
        last = ns;
    }
}

fn main() {
    let rt = runtime();
    let stacked = peer_service(&rt);
    let bare = Greeter::new(context(), "hi");

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    benches(&mut c, &rt, &stacked, &bare);
    c.final_summary();
    if !std::env::args().any(|arg| arg == "--bench") {
        return; // `cargo test --benches`: a smoke run is enough
    }

    // A plain figure to quote, from a simple loop (best of three runs, to skip warm-up noise).
    let n = 200_000;
    let best = |service: &dyn Fn() -> f64| (0..3).map(|_| service()).fold(f64::INFINITY, f64::min);
    let stack_ns = best(&|| ns_per_request(&rt, &stacked, n));
    let bare_ns = best(&|| ns_per_request(&rt, &bare, n));
    println!(
        "stack: {stack_ns:.0} ns/req, bare: {bare_ns:.0} ns/req, overhead: {:.0} ns (ratio {:.1}×)",
        stack_ns - bare_ns,
        stack_ns / bare_ns
    );
    layer_shares(&rt, n);
}
