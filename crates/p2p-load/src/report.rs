//! The report of a bench run: aligned lines for people, one JSON object for scripts.

use std::collections::BTreeMap;
use std::time::Duration;

use p2p_transport::libp2p::Multiaddr;

use crate::histogram::{self, human};
use crate::{LoadConfig, LoadReport};

/// What one bench run prints: how it connected, how it loaded, what it measured.
#[derive(Debug, Clone, Copy)]
pub struct Summary<'a> {
    /// The node loaded.
    pub target: &'a Multiaddr,
    /// The protocol asked for: greet's `auto`, `v1` or `v2`, or another's `name:version`.
    pub protocol: &'a str,
    /// How it was loaded.
    pub config: &'a LoadConfig,
    /// Client nodes asked for.
    pub connections: usize,
    /// Client nodes that connected.
    pub connected: usize,
    /// Client nodes that did not, by reason.
    pub connect_errors: &'a BTreeMap<String, u64>,
    /// What the load measured.
    pub report: &'a LoadReport,
    /// The server process's CPU time over the measured window, if asked for
    /// (`--server-pid`): with `report.ok`, its cost per request.
    pub server_cpu: Option<Duration>,
}

impl Summary<'_> {
    /// One JSON object; latencies in microseconds.
    pub fn json(&self) -> serde_json::Value {
        let (config, report) = (self.config, self.report);
        let us = |q: f64| report.latency_us.value_at_quantile(q);
        serde_json::json!({
            "target": self.target.to_string(),
            "protocol": self.protocol,
            "concurrency": config.concurrency,
            "connections": self.connections,
            "connected": self.connected,
            "connect_errors": self.connect_errors,
            "payload_bytes": config.message.len(),
            "rate_per_sec": config.rate_per_sec,
            "warmup_secs": config.warmup.as_secs_f64(),
            "elapsed_secs": report.elapsed.as_secs_f64(),
            "ok": report.ok,
            "failed": report.failed(),
            "requests_per_sec": report.ok_per_sec(),
            "latency_us": {
                "p50": us(0.5),
                "p90": us(0.9),
                "p99": us(0.99),
                "p999": us(0.999),
                "max": report.latency_us.max(),
                "mean": report.latency_us.mean(),
            },
            "errors": report.errors,
            "server_cpu_secs": self.server_cpu.map(|cpu| cpu.as_secs_f64()),
            "server_cpu_us_per_req": self.cpu_per_request_us(),
        })
    }

    /// The server's CPU time per answered request, in microseconds.
    fn cpu_per_request_us(&self) -> Option<f64> {
        let cpu = self.server_cpu?;
        (self.report.ok > 0).then(|| cpu.as_secs_f64() * 1e6 / self.report.ok as f64)
    }

    /// Aligned `key  value` lines for people.
    pub fn human(&self) -> Vec<String> {
        let (config, report) = (self.config, self.report);
        let pace =
            config.rate_per_sec.map_or_else(|| "unpaced".to_owned(), |r| format!("paced at {r}/s in all"));
        // Greet's versions alone (`auto`, `v1`, `v2`); another protocol's as `name:version`.
        let protocol = match self.protocol.split_once(':') {
            Some((name, version)) => format!("{name} {version}"),
            None => format!("greet {}", self.protocol),
        };
        let mut connections = format!("{}/{} ({protocol})", self.connected, self.connections);
        if !self.connect_errors.is_empty() {
            connections.push_str(&format!(", failed: {}", counts(self.connect_errors)));
        }
        let latency = |q: f64| human(report.latency(q));
        let errors = if report.errors.is_empty() { "none".to_owned() } else { counts(&report.errors) };
        let mut lines = vec![
            format!("target       {}", self.target),
            format!("connections  {connections}"),
            format!(
                "load         {} in flight, {} B messages, {pace}",
                config.concurrency,
                config.message.len()
            ),
            format!(
                "measured     {:.2}s after a {} warm-up",
                report.elapsed.as_secs_f64(),
                human_duration(config.warmup)
            ),
            format!("requests     {} ok, {} failed", report.ok, report.failed()),
            format!("req/s        {:.1}", report.ok_per_sec()),
            format!(
                "latency      p50 {}  p99 {}  max {}",
                latency(0.5),
                latency(0.99),
                human(histogram::max(&report.latency_us))
            ),
            format!("errors       {errors}"),
        ];
        if let Some(cpu) = self.server_cpu {
            let per_request =
                self.cpu_per_request_us().map_or_else(|| "-".to_owned(), |us| format!("{us:.1} µs"));
            lines.push(format!("server cpu   {:.2}s, {per_request} a request", cpu.as_secs_f64()));
        }
        lines
    }
}

/// `timeout: 3, remote 429: 12`.
pub fn counts(counts: &BTreeMap<String, u64>) -> String {
    counts.iter().map(|(key, n)| format!("{key}: {n}")).collect::<Vec<_>>().join(", ")
}

/// `1s`, `500ms`, `1m 30s`; `0s` for nothing.
pub fn human_duration(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".to_owned();
    }
    humantime::format_duration(duration).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> LoadReport {
        let mut report = LoadReport::empty(Duration::from_secs(2));
        for us in [100, 200, 300, 400, 50_000] {
            report.latency_us.record(us).unwrap();
        }
        report.ok = 2;
        report.errors = BTreeMap::from([("remote 429".to_owned(), 2), ("timeout".to_owned(), 1)]);
        report
    }

    #[test]
    fn the_summary_shows_rates_latencies_and_errors_by_kind() {
        let target: Multiaddr =
            "/ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooWM7N1uQr9o9kbNm4BzyzkR5icTqkWSCzbU2THZyxuRamV"
                .parse()
                .unwrap();
        let config = LoadConfig { concurrency: 64, message: "x".repeat(16), ..LoadConfig::default() };
        let report = report();
        let connect_errors = BTreeMap::from([("cannot dial: refused".to_owned(), 1)]);
        let summary = Summary {
            target: &target,
            protocol: "auto",
            config: &config,
            connections: 2,
            connected: 1,
            connect_errors: &connect_errors,
            report: &report,
            server_cpu: None,
        };

        let json = summary.json();
        assert_eq!(json["server_cpu_us_per_req"], serde_json::Value::Null);
        assert_eq!(json["target"], target.to_string());
        assert_eq!(json["ok"], 2);
        assert_eq!(json["failed"], 3);
        assert_eq!(json["requests_per_sec"], 1.0);
        assert_eq!(json["errors"]["remote 429"], 2);
        assert_eq!(json["errors"]["timeout"], 1);
        assert_eq!((json["connections"].as_u64(), json["connected"].as_u64()), (Some(2), Some(1)));
        assert_eq!(json["connect_errors"]["cannot dial: refused"], 1);
        assert_eq!((json["payload_bytes"].as_u64(), json["warmup_secs"].as_f64()), (Some(16), Some(1.0)));
        assert_eq!(json["rate_per_sec"], serde_json::Value::Null);
        assert_eq!(json["latency_us"]["p50"], 300);
        assert!((50_000..50_100).contains(&json["latency_us"]["max"].as_u64().unwrap()));

        let human = summary.human().join("\n");
        assert!(human.contains("connections  1/2 (greet auto), failed: cannot dial: refused: 1"), "{human}");
        assert!(human.contains("load         64 in flight, 16 B messages, unpaced"), "{human}");
        assert!(human.contains("measured     2.00s after a 1s warm-up"), "{human}");
        assert!(human.contains("requests     2 ok, 3 failed"), "{human}");
        assert!(human.contains("req/s        1.0"), "{human}");
        assert!(human.contains("p50 300µs"), "{human}");
        assert!(human.contains("errors       remote 429: 2, timeout: 1"), "{human}");
    }

    #[test]
    fn durations_read_as_on_the_command_line() {
        assert_eq!(human_duration(Duration::ZERO), "0s");
        assert_eq!(human_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(human_duration(Duration::from_secs(90)), "1m 30s");
    }

    #[test]
    fn the_server_cpu_is_shown_per_answered_request() {
        let target: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let config = LoadConfig::default();
        let report = report(); // 2 answered
        let summary = Summary {
            target: &target,
            protocol: "fetch:v2",
            config: &config,
            connections: 1,
            connected: 1,
            connect_errors: &BTreeMap::new(),
            report: &report,
            server_cpu: Some(Duration::from_millis(3)),
        };
        assert_eq!(summary.json()["server_cpu_us_per_req"], 1500.0);
        let human = summary.human().join("\n");
        assert!(human.contains("server cpu   0.00s, 1500.0 µs a request"), "{human}");
        assert!(human.contains("(fetch v2)"), "{human}");
    }
}
