//! `p2p-node bench` against a real `p2p-node run`, on 127.0.0.1 only, mDNS off.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

fn p2p_node() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_p2p-node"));
    command.env("RUST_LOG", "warn").env_remove("XDG_DATA_HOME");
    command
}

/// A node on 127.0.0.1 (QUIC and TCP, mDNS off); killed when dropped.
struct Target {
    child: Child,
    quic: String,
    tcp: String,
}

impl Target {
    fn start(key_dir: &tempfile::TempDir, limits: &[&str]) -> Self {
        let key = key_dir.path().join("target.key");
        let mut child = p2p_node()
            .args(["run", "--no-mdns", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1"])
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--key-file"])
            .arg(&key)
            .args(limits)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("p2p-node starts");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::sync_channel(64);
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut target = Self { child, quic: String::new(), tcp: String::new() };
        while target.quic.is_empty() || target.tcp.is_empty() {
            let line = lines.recv_timeout(DEADLINE).expect("the node prints its LISTEN addresses");
            if let Some(addr) = line.strip_prefix("LISTEN ") {
                let slot = if addr.contains("/quic-v1/") { &mut target.quic } else { &mut target.tcp };
                *slot = addr.to_owned();
            }
        }
        target
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `p2p-node bench <addr> --duration 1s --warmup 0s --no-progress <args>`.
fn bench(addr: &str, args: &[&str]) -> Output {
    p2p_node()
        .args(["bench", addr, "--duration", "1s", "--warmup", "0s", "--no-progress"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("p2p-node bench runs")
}

fn json(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bench_reports_json_over_quic_and_tcp() {
    let keys = tempfile::tempdir().unwrap();
    let target = Target::start(
        &keys,
        &["--rate-per-sec", "0", "--max-in-flight-per-peer", "0", "--max-in-flight-total", "0"],
    );
    for (addr, protocol) in [(&target.quic, "v1"), (&target.tcp, "v2"), (&target.quic, "auto")] {
        let out = bench(addr, &["-c", "8", "--connections", "2", "--protocol", protocol, "--json"]);
        assert!(out.status.success(), "{protocol} {addr}: {}", stderr(&out));
        let report = json(&out);
        assert_eq!(report["target"], addr.as_str());
        assert_eq!(report["protocol"], protocol);
        assert_eq!((report["concurrency"].as_u64(), report["connected"].as_u64()), (Some(8), Some(2)));
        let ok = report["ok"].as_u64().expect("ok is a count");
        assert!(ok > 0, "{report}");
        assert_eq!(report["failed"], 0, "{report}");
        assert_eq!(report["errors"], serde_json::json!({}));
        assert!(report["requests_per_sec"].as_f64().unwrap() > 0.0, "{report}");
        let latency = &report["latency_us"];
        let (p50, p99, max) = (
            latency["p50"].as_u64().unwrap(),
            latency["p99"].as_u64().unwrap(),
            latency["max"].as_u64().unwrap(),
        );
        assert!(0 < p50 && p50 <= p99 && p99 <= max, "{report}");
    }
}

#[test]
fn bench_counts_errors_by_code_and_prints_a_human_summary() {
    let keys = tempfile::tempdir().unwrap();
    // The default limits: 10 requests/s per peer (burst 20), so most of an unpaced run is refused.
    let target = Target::start(&keys, &[]);
    let out = bench(&target.quic, &["-c", "4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let keys: Vec<&str> = lines.iter().filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(
        keys,
        ["target", "connections", "load", "measured", "requests", "req/s", "latency", "errors"],
        "{stdout}"
    );
    assert!(lines[1].ends_with("1/1 (greet auto)"), "{stdout}");
    assert!(
        lines[6].contains(" p50 ") && lines[6].contains(" p99 ") && lines[6].contains(" max "),
        "{stdout}"
    );
    assert!(lines[7].contains("remote 429: "), "rate limited requests are counted by code: {stdout}");

    let out = bench(&target.quic, &["-c", "4", "--rate", "5", "--json"]);
    let report = json(&out);
    assert!(report["ok"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["rate_per_sec"], 5.0);
}

#[test]
fn bench_without_an_answer_exits_non_zero() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let peer = "12D3KooWM7N1uQr9o9kbNm4BzyzkR5icTqkWSCzbU2THZyxuRamV";
    let out = bench(&format!("/ip4/127.0.0.1/tcp/{port}/p2p/{peer}"), &["--connect-timeout", "5s"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no connection to"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}
