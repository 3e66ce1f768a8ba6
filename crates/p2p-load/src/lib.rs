//! A closed-loop load generator over any greet service, with latency histograms.
//!
//! Used by the benchmarks and by `p2p-node bench`: `concurrency` workers each
//! keep one request in flight for `duration`, after a warm-up whose requests
//! are not counted. With `rate_per_sec` the workers are paced instead: each
//! sends at its share of that rate (and never more than one at a time).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use p2p_protocol::{GreetRequest, GreetResponse};
use tokio::time::Instant;
use tower::{Service, ServiceExt};

use p2p_transport::RequestError;

/// How to load a service.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Requests in flight at once (workers). At least 1.
    pub concurrency: usize,
    /// How long to measure, after the warm-up.
    pub duration: Duration,
    /// How long to run before measuring.
    pub warmup: Duration,
    /// The message every request carries.
    pub message: String,
    /// Pace all workers together to this many requests per second; `None`:
    /// as fast as answers come back.
    pub rate_per_sec: Option<f64>,
}

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Requests answered with a response.
    pub ok: u64,
    /// Failed requests by kind: `remote 429`, `timeout`, ...
    pub errors: BTreeMap<String, u64>,
    /// Latency of every counted request (answered or not), in microseconds.
    pub latency_us: Histogram<u64>,
    /// The measured time.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Answered requests per second.
    pub fn ok_per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Failed requests in all.
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The latency at `quantile` (0.5 for the median).
    pub fn latency(&self, quantile: f64) -> Duration {
        Duration::from_micros(self.latency_us.value_at_quantile(quantile))
    }
}

/// The key an error is counted under.
pub fn error_key(err: &RequestError) -> String {
    match err {
        RequestError::Remote(remote) => format!("remote {}", remote.code.as_u16()),
        other => other.kind().to_owned(),
    }
}

/// Runs `config.concurrency` workers spread round-robin over `services`
/// (one per connection or peer) and reports what they measured.
/// `completed` counts finished requests as they happen, for progress display.
pub async fn run<S>(services: Vec<S>, config: &LoadConfig, completed: Arc<AtomicU64>) -> LoadReport
where
    S: Service<GreetRequest, Response = GreetResponse, Error = RequestError> + Clone + Send + 'static,
    S::Future: Send,
{
    assert!(!services.is_empty(), "load::run needs at least one service");
    let start = Instant::now();
    let measure_from = start + config.warmup;
    let until = measure_from + config.duration;
    let workers: Vec<_> = (0..config.concurrency.max(1))
        .map(|i| {
            let service = services[i % services.len()].clone();
            let message = config.message.clone();
            let completed = Arc::clone(&completed);
            // Each worker's share of the rate, its first send staggered across one period.
            let pace = config.rate_per_sec.filter(|r| *r > 0.0).map(|rate| {
                let period = Duration::from_secs_f64(config.concurrency.max(1) as f64 / rate);
                let offset = period.mul_f64(i as f64 / config.concurrency.max(1) as f64);
                (start + offset, period)
            });
            tokio::spawn(worker(service, message, pace, measure_from, until, completed))
        })
        .collect();

    let mut report =
        LoadReport { ok: 0, errors: BTreeMap::new(), latency_us: new_histogram(), elapsed: config.duration };
    for worker in workers {
        let Ok(part) = worker.await else { continue };
        report.ok += part.ok;
        for (key, count) in part.errors {
            *report.errors.entry(key).or_default() += count;
        }
        report.latency_us.add(&part.latency_us).expect("same histogram bounds");
    }
    report.elapsed = Instant::now()
        .saturating_duration_since(measure_from)
        .min(config.duration)
        .max(Duration::from_millis(1));
    report
}

async fn worker<S>(
    mut service: S,
    message: String,
    pace: Option<(Instant, Duration)>,
    measure_from: Instant,
    until: Instant,
    completed: Arc<AtomicU64>,
) -> LoadReport
where
    S: Service<GreetRequest, Response = GreetResponse, Error = RequestError>,
{
    let mut part =
        LoadReport { ok: 0, errors: BTreeMap::new(), latency_us: new_histogram(), elapsed: Duration::ZERO };
    let mut ticks = pace.map(|(first, period)| {
        let mut ticks = tokio::time::interval_at(first, period);
        // A late answer does not earn a burst afterwards.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    loop {
        if let Some(ticks) = &mut ticks {
            ticks.tick().await;
        }
        let sent = Instant::now();
        if sent >= until {
            break;
        }
        let result = match service.ready().await {
            Ok(service) => service.call(GreetRequest::new(message.clone())).await,
            Err(err) => Err(err),
        };
        let done = Instant::now();
        completed.fetch_add(1, Ordering::Relaxed);
        let shutdown = matches!(result, Err(RequestError::Shutdown));
        if sent >= measure_from && done <= until {
            let _ = part.latency_us.record(done.duration_since(sent).as_micros() as u64);
            match result {
                Ok(_) => part.ok += 1,
                Err(err) => *part.errors.entry(error_key(&err)).or_default() += 1,
            }
        }
        if shutdown {
            break; // the node is gone: nothing more will succeed
        }
    }
    part
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answering()
    -> impl Service<GreetRequest, Response = GreetResponse, Error = RequestError, Future: Send> + Clone {
        tower::service_fn(|request: GreetRequest| async move {
            tokio::time::sleep(Duration::from_millis(1)).await; // a 1 ms round trip
            Ok(GreetResponse { message: request.message, observed_addr: p2p_protocol::Multiaddr::empty() })
        })
    }

    #[tokio::test(start_paused = true)]
    async fn paced_workers_send_at_the_configured_rate() {
        let config = LoadConfig {
            concurrency: 4,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            message: "x".into(),
            rate_per_sec: Some(200.0),
        };
        let report = run(vec![answering()], &config, Arc::new(AtomicU64::new(0))).await;
        assert!((1990..=2010).contains(&report.ok), "200/s for 10 s: {}", report.ok);
        assert_eq!(report.failed(), 0);
        assert_eq!(report.latency(0.5), Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn unpaced_workers_go_as_fast_as_answers_come() {
        let config = LoadConfig {
            concurrency: 2,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            message: "x".into(),
            rate_per_sec: None,
        };
        let report = run(vec![answering(), answering()], &config, Arc::new(AtomicU64::new(0))).await;
        // Two workers, 1 ms each: about 2,000 in a second.
        assert!((1900..=2000).contains(&report.ok), "{}", report.ok);
    }
}
