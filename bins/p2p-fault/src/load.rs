//! `p2p-fault load`: a real node (mDNS off) that connects to the target and
//! loads it with `p2p-load`: paced at `--rate` requests per second, or
//! closed-loop without it.
//!
//! It prints what the measured window counted (latency from each request's
//! send, or from its due time when it was sent late behind a slow answer: no
//! coordinated omission), then how long every request took from
//! being sent to its answer, by outcome (`ok`, `remote 429`, `timeout`, ...),
//! warm-up and stragglers included. `--latencies FILE` writes
//! `<latency µs> ok|error` for each request of the measured window, one a
//! line, so that a script can pool several runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use p2p_load::histogram::{self, Histogram, merged, ms, ms_number};
use p2p_load::{ClientOptions, Identify, LoadConfig, LoadReport, OK, Sample};
use p2p_transport::GreetVersion;
use serde::Serialize;
use serde_json::Value;

use crate::{LoadArgs, json_key, keypair, round};

/// The most samples `--latencies` writes.
const MAX_SAMPLES: usize = 1_000_000;

/// How long connecting and identify may take.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// The JSON line of `load --json`: the measured window, then every request by outcome.
#[derive(Serialize)]
struct LoadJson {
    ok: u64,
    failed: u64,
    ok_per_sec: f64,
    elapsed_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// `errors.<kind>`: the measured window's failures.
    #[serde(flatten)]
    errors: BTreeMap<String, u64>,
    #[serde(rename = "all.n")]
    all_n: u64,
    #[serde(rename = "all.max_ms")]
    all_max_ms: f64,
    #[serde(rename = "err.n")]
    err_n: u64,
    #[serde(rename = "err.p99_ms")]
    err_p99_ms: f64,
    #[serde(rename = "err.max_ms")]
    err_max_ms: f64,
    /// `kind.<outcome>.n`, `.p50_ms`, `.p99_ms`, `.max_ms`.
    #[serde(flatten)]
    kinds: BTreeMap<String, Value>,
    wall_s: f64,
}

pub(crate) async fn run(args: LoadArgs) -> Result<()> {
    let target = args.target;
    if p2p_load::target_peer(&target).is_none() {
        anyhow::bail!("{target} does not end with /p2p/<peer-id>");
    }
    let options = ClientOptions {
        version: if args.v1 { GreetVersion::V1 } else { GreetVersion::Auto },
        request_timeout: args.request_timeout,
        connect_timeout: READY_TIMEOUT,
        // Identify tells whether the target speaks greet 2.0.0: wait for it.
        identify: Identify::Required,
        message: "p2p-fault".into(),
        bootstrap: Vec::new(),
    };
    let client = p2p_load::connect_client::<p2p_protocol::Greet>(&target, &options, Some(keypair(args.seed)))
        .await
        .map_err(|reason| anyhow!("{target} not ready: {reason}"))?;
    let config = LoadConfig {
        concurrency: args.concurrency,
        duration: args.duration,
        warmup: args.warmup,
        message: "p2p-fault".into(),
        rate_per_sec: args.rate,
        max_samples: if args.latencies.is_some() { MAX_SAMPLES } else { 0 },
    };
    let started = Instant::now();
    let report = p2p_load::run(vec![client.service], &config, Arc::default()).await;
    let wall = started.elapsed();
    client.node.shutdown().await;
    if let Some(path) = &args.latencies {
        std::fs::write(path, latency_lines(&report.samples))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }

    for line in human(&target.to_string(), &report) {
        println!("{line}");
    }
    if args.json {
        println!("{}", serde_json::to_string(&json(&report, wall))?);
    }
    Ok(())
}

/// `<latency µs> ok|error`, a line per sample.
fn latency_lines(samples: &[Sample]) -> String {
    samples
        .iter()
        .map(|s| format!("{} {}\n", s.latency.as_micros(), if s.ok { "ok" } else { "error" }))
        .collect()
}

fn json(report: &LoadReport, wall: Duration) -> LoadJson {
    let by_outcome = &report.service_us_by_outcome;
    let all = merged(by_outcome.values());
    let errors = merged(by_outcome.iter().filter(|(outcome, _)| *outcome != OK).map(|(_, h)| h));
    let mut kinds = BTreeMap::new();
    for (outcome, histogram) in by_outcome {
        let key = |what: &str| json_key(&format!("kind.{outcome}.{what}"));
        kinds.insert(key("n"), histogram.len().into());
        kinds.insert(key("p50_ms"), ms_number(histogram::quantile(histogram, 0.5)).into());
        kinds.insert(key("p99_ms"), ms_number(histogram::quantile(histogram, 0.99)).into());
        kinds.insert(key("max_ms"), ms_number(histogram::max(histogram)).into());
    }
    LoadJson {
        ok: report.ok,
        failed: report.failed(),
        ok_per_sec: round(report.ok_per_sec(), 2),
        elapsed_s: round(report.elapsed.as_secs_f64(), 3),
        p50_ms: ms_number(report.latency(0.5)),
        p99_ms: ms_number(report.latency(0.99)),
        max_ms: ms_number(histogram::max(&report.latency_us)),
        errors: report.errors.iter().map(|(kind, n)| (json_key(&format!("errors.{kind}")), *n)).collect(),
        all_n: all.len(),
        all_max_ms: ms_number(histogram::max(&all)),
        err_n: errors.len(),
        err_p99_ms: ms_number(histogram::quantile(&errors, 0.99)),
        err_max_ms: ms_number(histogram::max(&errors)),
        kinds,
        wall_s: round(wall.as_secs_f64(), 3),
    }
}

fn human(target: &str, report: &LoadReport) -> Vec<String> {
    let quantiles = |h: &Histogram<u64>| {
        let (p50, p99) = (histogram::quantile(h, 0.5), histogram::quantile(h, 0.99));
        format!("p50 {}, p99 {}, max {}", ms(p50), ms(p99), ms(histogram::max(h)))
    };
    let mut lines = vec![format!(
        "load {target}: {} ok ({:.1}/s), {} failed {:?}; {} (measured {:.1} s)",
        report.ok,
        report.ok_per_sec(),
        report.failed(),
        report.errors,
        quantiles(&report.latency_us),
        report.elapsed.as_secs_f64(),
    )];
    for (outcome, histogram) in &report.service_us_by_outcome {
        lines.push(format!("  all requests, {outcome}: {} ({})", histogram.len(), quantiles(histogram)));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> LoadReport {
        let mut report = LoadReport::empty(Duration::from_secs(2));
        report.ok = 3;
        report.errors.insert("remote 429".into(), 1);
        for us in [1_000, 2_000, 3_000, 40_000] {
            report.latency_us.record(us).unwrap();
        }
        for (outcome, us) in [(OK, 900), (OK, 1_900), ("remote 429", 300), ("remote 429", 500)] {
            let histogram =
                report.service_us_by_outcome.entry(outcome.into()).or_insert_with(histogram::new_histogram);
            histogram.record(us).unwrap();
        }
        report.samples = vec![
            Sample {
                intended: Duration::ZERO,
                latency: Duration::from_micros(1234),
                service_time: Duration::ZERO,
                ok: true,
            },
            Sample {
                intended: Duration::ZERO,
                latency: Duration::from_micros(56),
                service_time: Duration::ZERO,
                ok: false,
            },
        ];
        report
    }

    #[test]
    fn the_json_line_has_every_field_the_script_reads() {
        let line = serde_json::to_string(&json(&report(), Duration::from_millis(3500))).unwrap();
        assert!(
            line.starts_with("{\"ok\":3,\"failed\":1,\"ok_per_sec\":1.5,\"elapsed_s\":2.0,\"p50_ms\":2.0,"),
            "{line}"
        );
        for field in [
            "\"errors.remote_429\":1,",
            "\"all.n\":4,",
            "\"all.max_ms\":1.9",
            "\"err.n\":2,",
            "\"err.max_ms\":0.5",
            "\"kind.ok.n\":2,",
            "\"kind.remote_429.n\":2,",
            "\"kind.remote_429.p50_ms\":0.3,",
            "\"wall_s\":3.5}",
        ] {
            assert!(line.contains(field), "{field} in {line}");
        }
        // No key with a space: the scripts match `"key":value`.
        assert!(!line.contains(' '), "{line}");
    }

    #[test]
    fn latency_files_have_a_line_per_counted_request() {
        assert_eq!(latency_lines(&report().samples), "1234 ok\n56 error\n");
        let lines = human("/ip4/10.0.0.1/tcp/1", &report());
        assert!(lines[0].starts_with(
            "load /ip4/10.0.0.1/tcp/1: 3 ok (1.5/s), 1 failed {\"remote 429\": 1}; p50 2.00 ms"
        ));
        assert_eq!(lines[1], "  all requests, ok: 2 (p50 0.90 ms, p99 1.90 ms, max 1.90 ms)");
    }
}
