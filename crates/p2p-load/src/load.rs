//! Closed-loop and paced load over any greet service.
//!
//! `concurrency` workers each keep one request in flight for `duration`, after
//! a warm-up whose requests are not counted. With `rate_per_sec` the workers
//! are paced instead: each sends at its share of that rate, on a fixed
//! schedule, and never more than one at a time.
//!
//! A paced worker that falls behind its schedule (an answer that came after
//! the next request was due) sends the requests that fell due meanwhile as
//! soon as it can, one after the other, and each one's latency counts from
//! when it was due, not from when it could finally be sent: no coordinated
//! omission. A stall of the service thus shows in the latencies of every
//! request that should have been sent during it. A request sent on time counts
//! from when it was actually sent: the worker's own timer being late is not
//! the service's doing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use p2p_protocol::{GreetRequest, GreetResponse};
use p2p_transport::RequestError;
use tokio::time::Instant;
use tower::{Service, ServiceExt};

use crate::histogram::{self, new_histogram};

/// The outcome key of an answered request in [`LoadReport::service_us_by_outcome`].
pub const OK: &str = "ok";

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
    /// Keep at most this many [`Sample`]s of the counted requests (0: none).
    pub max_samples: usize,
}

impl Default for LoadConfig {
    /// One worker, unpaced, 10 s after a 1 s warm-up, message `x`, no samples.
    fn default() -> Self {
        Self {
            concurrency: 1,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            message: "x".into(),
            rate_per_sec: None,
            max_samples: 0,
        }
    }
}

/// One counted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When it was due (paced, and sent late) or sent, from the start of the run.
    pub intended: Duration,
    /// From `intended` to its answer: what [`LoadReport::latency_us`] holds.
    pub latency: Duration,
    /// From when it was actually sent to its answer.
    pub service_time: Duration,
    /// Answered with a response (not an error).
    pub ok: bool,
}

/// What a load run measured.
///
/// Counted requests are those due (or sent) after the warm-up and answered
/// within the measured time.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Counted requests answered with a response.
    pub ok: u64,
    /// Counted requests that failed, by kind: `remote 429`, `timeout`, ... ([`error_key`]).
    pub errors: BTreeMap<String, u64>,
    /// The latency of every counted request (answered or not), in microseconds:
    /// from when it was sent, or from when it was due if it was sent late.
    pub latency_us: Histogram<u64>,
    /// The measured time.
    pub elapsed: Duration,
    /// Every request sent, warm-up and stragglers included, by outcome ([`OK`]
    /// or [`error_key`]): how long it took from being sent to its answer, in
    /// microseconds.
    pub service_us_by_outcome: BTreeMap<String, Histogram<u64>>,
    /// Up to [`LoadConfig::max_samples`] counted requests, by due time.
    pub samples: Vec<Sample>,
}

impl LoadReport {
    /// A report of nothing, measured over `elapsed`.
    pub fn empty(elapsed: Duration) -> Self {
        Self {
            ok: 0,
            errors: BTreeMap::new(),
            latency_us: new_histogram(),
            elapsed,
            service_us_by_outcome: BTreeMap::new(),
            samples: Vec::new(),
        }
    }

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
        histogram::quantile(&self.latency_us, quantile)
    }

    /// Counts one request.
    fn record(&mut self, window: &Window, times: Times, outcome: Result<(), String>) {
        let key = outcome.as_ref().err().map_or(OK, String::as_str);
        let service_time = times.done.saturating_duration_since(times.sent);
        match self.service_us_by_outcome.get_mut(key) {
            Some(by_outcome) => histogram::record(by_outcome, service_time),
            None => {
                let mut by_outcome = new_histogram();
                histogram::record(&mut by_outcome, service_time);
                self.service_us_by_outcome.insert(key.to_owned(), by_outcome);
            }
        }
        if times.intended < window.measure_from || times.done > window.until {
            return; // warm-up or straggler
        }
        let latency = times.done.saturating_duration_since(times.intended);
        histogram::record(&mut self.latency_us, latency);
        if self.samples.len() < window.max_samples {
            let intended = times.intended.saturating_duration_since(window.start);
            self.samples.push(Sample { intended, latency, service_time, ok: outcome.is_ok() });
        }
        match outcome {
            Ok(()) => self.ok += 1,
            Err(key) => *self.errors.entry(key).or_default() += 1,
        }
    }

    /// Adds `other`'s counts to these.
    fn merge(&mut self, other: Self) {
        self.ok += other.ok;
        for (key, count) in other.errors {
            *self.errors.entry(key).or_default() += count;
        }
        self.latency_us.add(&other.latency_us).expect("same histogram bounds");
        for (key, by_outcome) in other.service_us_by_outcome {
            match self.service_us_by_outcome.get_mut(&key) {
                Some(mine) => mine.add(&by_outcome).expect("same histogram bounds"),
                None => {
                    self.service_us_by_outcome.insert(key, by_outcome);
                }
            }
        }
        self.samples.extend(other.samples);
    }
}

/// The key an error is counted under: `remote <code>` for an error the peer
/// answered, the [`RequestError::kind`] otherwise.
pub fn error_key(err: &RequestError) -> String {
    match err {
        RequestError::Remote(remote) => format!("remote {}", remote.code.as_u16()),
        other => other.kind().to_owned(),
    }
}

/// When a run measures.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    measure_from: Instant,
    until: Instant,
    max_samples: usize,
}

/// When one request was due, sent and answered.
#[derive(Debug, Clone, Copy)]
struct Times {
    intended: Instant,
    sent: Instant,
    done: Instant,
}

/// A paced worker's schedule: its next request is due at `next`, then every `period`.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    next: Instant,
    period: Duration,
}

/// Runs `config.concurrency` workers spread round-robin over `services`
/// (one per connection or peer) and reports what they measured.
/// `completed` counts finished requests as they happen, for progress display.
pub async fn run<S>(services: Vec<S>, config: &LoadConfig, completed: Arc<AtomicU64>) -> LoadReport
where
    S: Service<GreetRequest, Response = GreetResponse, Error = RequestError> + Clone + Send + 'static,
    S::Future: Send,
{
    run_with(services, GreetRequest::new(config.message.clone()), config, completed).await
}

/// [`run`] for any protocol's services: every request is a clone of
/// `request` (`config.message` is greet's and unused here); the answers are
/// counted, not looked at.
pub async fn run_with<S, Req>(
    services: Vec<S>,
    request: Req,
    config: &LoadConfig,
    completed: Arc<AtomicU64>,
) -> LoadReport
where
    S: Service<Req, Error = RequestError> + Clone + Send + 'static,
    S::Future: Send,
    Req: Clone + Send + Sync + 'static,
{
    assert!(!services.is_empty(), "load::run needs at least one service");
    let concurrency = config.concurrency.max(1);
    let start = Instant::now();
    let measure_from = start + config.warmup;
    let window = Window {
        start,
        measure_from,
        until: measure_from + config.duration,
        max_samples: config.max_samples,
    };
    // Workers share a few tallies rather than keeping one each: a histogram is
    // ~190 KB, and a run may have thousands of workers.
    let shards: Vec<_> = (0..shard_count(concurrency))
        .map(|_| Arc::new(Mutex::new(LoadReport::empty(Duration::ZERO))))
        .collect();
    let rate = config.rate_per_sec.filter(|rate| rate.is_finite() && *rate > 0.0);
    let workers: Vec<_> = (0..concurrency)
        .map(|i| {
            // Each worker's share of the rate, its first request staggered across one period.
            let schedule = rate.map(|rate| {
                let period = Duration::from_secs_f64(concurrency as f64 / rate);
                Schedule { next: start + period.mul_f64(i as f64 / concurrency as f64), period }
            });
            tokio::spawn(worker(
                services[i % services.len()].clone(),
                request.clone(),
                schedule,
                window,
                Arc::clone(&shards[i % shards.len()]),
                Arc::clone(&completed),
            ))
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }

    let mut report = LoadReport::empty(Duration::ZERO);
    for shard in shards {
        report.merge(std::mem::replace(
            &mut *shard.lock().expect("tally lock"),
            LoadReport::empty(Duration::ZERO),
        ));
    }
    report.samples.sort_by_key(|sample| sample.intended);
    report.samples.truncate(config.max_samples);
    report.elapsed = Instant::now()
        .saturating_duration_since(measure_from)
        .min(config.duration)
        .max(Duration::from_millis(1));
    report
}

/// How many tallies `concurrency` workers share: about two per core.
fn shard_count(concurrency: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    concurrency.min(2 * cores).max(1)
}

async fn worker<S, Req>(
    mut service: S,
    request: Req,
    mut schedule: Option<Schedule>,
    window: Window,
    tally: Arc<Mutex<LoadReport>>,
    completed: Arc<AtomicU64>,
) where
    S: Service<Req, Error = RequestError>,
    Req: Clone,
{
    loop {
        let intended = match &mut schedule {
            Some(schedule) => {
                let due = schedule.next;
                schedule.next += schedule.period;
                if Instant::now() < due {
                    // On time: the latency counts from the actual send, so that
                    // the timer's own lateness (a millisecond tick, a busy
                    // machine) is not taken for the service's.
                    tokio::time::sleep_until(due).await;
                    Instant::now()
                } else {
                    // Behind (the last answer came after this request was due):
                    // it goes out at once, and its latency counts from when it was due.
                    due
                }
            }
            None => Instant::now(),
        };
        let sent = Instant::now();
        if intended >= window.until || sent >= window.until {
            break;
        }
        let result = match service.ready().await {
            Ok(service) => service.call(request.clone()).await,
            Err(err) => Err(err),
        };
        let done = Instant::now();
        completed.fetch_add(1, Ordering::Relaxed);
        let shutdown = matches!(result, Err(RequestError::Shutdown));
        let outcome = result.map(drop).map_err(|err| error_key(&err));
        tally.lock().expect("tally lock").record(&window, Times { intended, sent, done }, outcome);
        if shutdown {
            break; // the node is gone: nothing more will succeed
        }
    }
}

#[cfg(test)]
mod tests;
