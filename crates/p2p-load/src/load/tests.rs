//! The load generator under tokio's paused clock: exact times, no waiting.

use std::sync::atomic::AtomicU64;

use p2p_protocol::{ErrorCode, RemoteError};

use super::*;

fn response(request: GreetRequest) -> GreetResponse {
    GreetResponse { message: request.message, observed_addr: p2p_protocol::Multiaddr::empty() }
}

fn answering()
-> impl Service<GreetRequest, Response = GreetResponse, Error = RequestError, Future: Send> + Clone {
    tower::service_fn(|request: GreetRequest| async move {
        tokio::time::sleep(Duration::from_millis(1)).await; // a 1 ms round trip
        Ok(response(request))
    })
}

/// Answers in 1 ms, except call number `stall_at` (from 0), which takes `stall`.
fn stalling_once(
    stall_at: u64,
    stall: Duration,
) -> impl Service<GreetRequest, Response = GreetResponse, Error = RequestError, Future: Send> + Clone {
    let calls = Arc::new(AtomicU64::new(0));
    tower::service_fn(move |request: GreetRequest| {
        let call = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let took = if call == stall_at { stall } else { Duration::from_millis(1) };
            tokio::time::sleep(took).await;
            Ok(response(request))
        }
    })
}

/// One worker at 100/s for 2 s: a request due every 10 ms.
fn paced_100() -> LoadConfig {
    LoadConfig {
        duration: Duration::from_secs(2),
        warmup: Duration::ZERO,
        rate_per_sec: Some(100.0),
        max_samples: 1000,
        ..LoadConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn paced_workers_send_at_the_configured_rate() {
    let config = LoadConfig {
        concurrency: 4,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(1),
        rate_per_sec: Some(200.0),
        ..LoadConfig::default()
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
        ..LoadConfig::default()
    };
    let report = run(vec![answering(), answering()], &config, Arc::new(AtomicU64::new(0))).await;
    // Two workers, 1 ms each: about 2,000 in a second.
    assert!((1900..=2000).contains(&report.ok), "{}", report.ok);
}

#[tokio::test(start_paused = true)]
async fn paced_latency_counts_from_the_intended_send_time() {
    // Request 50 (due at 500 ms) takes 200 ms, so the 19 due at 510 ... 690 ms wait behind it.
    let config = LoadConfig { max_samples: 0, ..paced_100() };
    let report = run(vec![stalling_once(50, Duration::from_millis(200))], &config, Arc::default()).await;
    // None of them is skipped: all 200 requests of the schedule are sent.
    assert_eq!(report.ok, 200);
    // The one due at 510 ms is sent at 700 ms and answered at 701: 191 ms late, not 1 ms.
    let us = |ms: u64| ms * 1000;
    assert_eq!(report.latency_us.count_between(us(190), us(192)), 1, "the first request behind the stall");
    // The stalled one, the 19 behind it (191, 182, ..., 29 ms) and the one due at 700 ms (20 ms).
    assert_eq!(report.latency_us.count_between(us(19), us(201)), 21);
    assert!(report.latency_us.equivalent(report.latency_us.max(), us(200)), "the stalled one is the slowest");
}

#[tokio::test(start_paused = true)]
async fn samples_tell_the_latency_from_the_due_time_and_the_service_time_apart() {
    let report = run(vec![stalling_once(50, Duration::from_millis(200))], &paced_100(), Arc::default()).await;
    assert_eq!(report.samples.len(), 200);
    let ms = Duration::from_millis;
    for (j, sample) in report.samples[50..=72].iter().enumerate() {
        let j = j as u64;
        assert_eq!(sample.intended, ms(500 + 10 * j), "request {}", 50 + j);
        // Behind the stall: sent at 700 + (j - 1) ms, answered 1 ms later; due at 500 + 10 j.
        let expected = if j == 0 { ms(200) } else { ms(200 + j).saturating_sub(ms(10 * j)).max(ms(1)) };
        assert_eq!(sample.latency, expected, "request {}", 50 + j);
        assert_eq!(sample.service_time, if j == 0 { ms(200) } else { ms(1) }, "request {}", 50 + j);
    }
    // The service itself took 1 ms for all but one.
    assert_eq!(report.service_us_by_outcome[OK].len(), 200);
    assert_eq!(report.service_us_by_outcome[OK].count_between(1_000, 1_001), 199);
}

#[tokio::test(start_paused = true)]
async fn warm_up_and_stragglers_are_not_counted_but_are_in_the_service_times() {
    // Every answer takes 300 ms and says 429; one worker, 1 s measured after a 1 s warm-up.
    let refusing = tower::service_fn(|_: GreetRequest| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Err::<GreetResponse, _>(RequestError::Remote(RemoteError::new(ErrorCode::RATE_LIMITED, "slow down")))
    });
    let config = LoadConfig { duration: Duration::from_secs(1), ..LoadConfig::default() };
    let report = run(vec![refusing], &config, Arc::default()).await;
    // Sent at 0, 300, ..., 1800 ms: 1200 and 1500 are counted; 0 ... 900 are the warm-up,
    // 1800 (answered at 2100) is a straggler.
    assert_eq!((report.ok, report.failed()), (0, 2));
    assert_eq!(report.errors["remote 429"], 2);
    assert_eq!(report.service_us_by_outcome["remote 429"].len(), 7);
    assert!(report.latency_us.equivalent(report.latency_us.max(), 300_000));
}
