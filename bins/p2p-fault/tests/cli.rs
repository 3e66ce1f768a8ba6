//! `p2p-fault` against a node in this process, on 127.0.0.1 only, mDNS off.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use p2p_protocol::{Greet, GreetRequest};
use p2p_service::{Limits, MakeGreeter, stack};
use p2p_transport::libp2p::Multiaddr;
use p2p_transport::libp2p::multiaddr::Protocol;
use p2p_transport::{ExternalAddrConfig, GreetVersion, Node, NodeBuilder, NodeEvent, NodeEvents};
use tower::ServiceExt;

/// A node on 127.0.0.1 over QUIC and TCP, limits as given; its two addresses with /p2p/.
async fn target(limits: Limits) -> (Node, Multiaddr, Multiaddr) {
    let (node, mut events) = NodeBuilder::new()
        .mdns(false)
        .listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .build(stack(MakeGreeter::new("target"), limits))
        .expect("the target starts");
    let (mut quic, mut tcp) = (None, None);
    while quic.is_none() || tcp.is_none() {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv()).await;
        if let Ok(Some(NodeEvent::Listening { address })) = event {
            let address = address.with(Protocol::P2p(node.local_peer_id()));
            let slot =
                if address.iter().any(|p| matches!(p, Protocol::Tcp(_))) { &mut tcp } else { &mut quic };
            *slot = Some(address);
        } else {
            assert!(matches!(event, Ok(Some(_))), "the target listens: {event:?}");
        }
    }
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    (node, quic.unwrap(), tcp.unwrap())
}

/// Runs `p2p-fault <words of command_line>` (off the runtime's threads: the target keeps running).
async fn p2p_fault(command_line: String) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_p2p-fault"))
            .args(command_line.split_whitespace())
            .stdin(Stdio::null())
            .output()
            .expect("p2p-fault runs")
    })
    .await
    .unwrap()
}

/// The last line of stdout, which `--json` makes one JSON object.
fn json(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_reports_its_counts_and_writes_a_latency_per_request() {
    let limits = Limits { rate_per_sec: 0, ..Limits::default() };
    let (node, quic, _) = target(limits).await;
    let dir = tempfile::tempdir().unwrap();
    let latencies = dir.path().join("w.lat");
    let out = p2p_fault(format!(
        "load {quic} --rate 100 --concurrency 4 --warmup 0s --duration 1s --latencies {} --json",
        latencies.display()
    ))
    .await;
    let report = json(&out);
    let ok = report["ok"].as_u64().unwrap();
    assert!((80..=101).contains(&ok), "100/s for 1 s: {report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert!(report["kind.ok.n"].as_u64().unwrap() >= ok, "{report}");
    assert_eq!(report["all.n"], report["kind.ok.n"], "{report}");
    assert_eq!(report["err.n"], 0, "{report}");
    let p50 = report["p50_ms"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= report["max_ms"].as_f64().unwrap(), "{report}");
    let lines = std::fs::read_to_string(&latencies).unwrap();
    assert_eq!(lines.lines().count() as u64, ok);
    assert!(lines.lines().all(|l| l.ends_with(" ok") && l.split(' ').next().unwrap().parse::<u64>().is_ok()));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_counts_refusals_by_code() {
    // 2 requests/s per peer, 40/s sent: most are answered 429.
    let limits = Limits { rate_per_sec: 2, rate_burst: 2, ..Limits::default() };
    let (node, quic, _) = target(limits).await;
    let out = p2p_fault(format!("load {quic} --rate 40 --warmup 0s --duration 1s --json")).await;
    let report = json(&out);
    assert!(report["errors.remote_429"].as_u64().unwrap() > 20, "{report}");
    assert!(report["kind.remote_429.n"].as_u64().unwrap() > 20, "{report}");
    assert!(report["err.n"].as_u64().unwrap() >= report["kind.remote_429.n"].as_u64().unwrap(), "{report}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_are_answered_and_the_prober_is_served() {
    let (node, quic, tcp) = target(Limits::default()).await;
    let out = p2p_fault(format!(
        "hostile {quic} --tcp {tcp} --count 300 --concurrency 8 --probe-interval 50ms --json"
    ))
    .await;
    let report = json(&out);
    assert_eq!(report["inputs"], 300, "{report}");
    for never in ["outcome.timeout", "outcome.bad_answer", "outcome.open_failed"] {
        assert_eq!(report[never], 0, "{never}: {report}");
    }
    assert!(report["outcome.400"].as_u64().unwrap() > 0, "{report}");
    assert!(report["embedded_sent"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["embedded_answered"], report["embedded_sent"], "{report}");
    assert!(report["probes"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["probes_ok"], report["probes"], "{report}");
    assert_eq!(report["connections_closed"], 0, "{report}");
    node.shutdown().await;
}

#[test]
fn a_seed_prints_the_same_peer_id_every_time() {
    let id = |seed: &str| {
        let out =
            Command::new(env!("CARGO_BIN_EXE_p2p-fault")).args(["id", "--seed", seed]).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(id("7"), id("7"));
    assert_ne!(id("7"), id("8"));
    assert!(id("7").starts_with("12D3KooW"));
}

/// Three identities on one host lie alike about a node's address: one
/// observer, below the default threshold of 2, so nothing is confirmed.
/// The positive control: the same liars make a node that needs only one
/// observer confirm their address, read the same way (no timeout decides).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liars_answer_every_greeting_with_the_made_up_address() {
    let (node, mut events, quic) = observed_target(2).await;
    let (control, mut control_events, control_quic) = observed_target(1).await;
    let made_up = made_up_on_the_port_of(&quic);
    let control_made_up = made_up_on_the_port_of(&control_quic);
    let liars = tokio::spawn(p2p_fault(format!(
        "liar {quic} --observed {made_up} --identities 3 --duration 3s --json"
    )));
    let control_liars = tokio::spawn(p2p_fault(format!(
        "liar {control_quic} --observed {control_made_up} --identities 3 --duration 3s --json"
    )));

    let seen = greet_three_liars(&node, &mut events, &made_up).await;
    let control_seen = greet_three_liars(&control, &mut control_events, &control_made_up).await;
    assert!(confirms(&control_seen, &control_made_up), "the control confirms the lie: {control_seen:?}");
    assert!(!seen.iter().any(|e| matches!(e, NodeEvent::ExternalAddrConfirmed { .. })), "{seen:?}");
    assert!(node.external_addrs().is_empty(), "{:?}", node.external_addrs());

    for out in [liars.await.unwrap(), control_liars.await.unwrap()] {
        let report = json(&out);
        assert_eq!(report["connected"], 3, "{report}");
        assert!(report["lies"].as_u64().unwrap() >= 3, "{report}");
    }
    node.shutdown().await;
    control.shutdown().await;
}

/// A QUIC node on 127.0.0.1 that confirms an address `threshold` observers
/// agree on; its events, and its address with /p2p/.
async fn observed_target(threshold: usize) -> (Node, NodeEvents, Multiaddr) {
    let (node, mut events) = NodeBuilder::new()
        .mdns(false)
        .listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
        .external_addrs(ExternalAddrConfig { threshold, ..ExternalAddrConfig::default() })
        .build(stack(MakeGreeter::new("target"), Limits::default()))
        .expect("the target starts");
    let address = within(async {
        loop {
            if let Some(NodeEvent::Listening { address }) = events.recv().await {
                return address;
            }
        }
    })
    .await;
    let address = address.with(Protocol::P2p(node.local_peer_id()));
    (node, events, address)
}

/// A documentation address (198.51.100.7) on the port of `ours`: a lie the
/// node would take if enough observers agreed.
fn made_up_on_the_port_of(ours: &Multiaddr) -> Multiaddr {
    let Some(Protocol::Udp(port)) = ours.iter().nth(1) else { panic!("{ours}") };
    format!("/ip4/198.51.100.7/udp/{port}/quic-v1").parse().unwrap()
}

/// Greets each of three liars on 1.0.0 as identify says it speaks greet,
/// checks it lies, and returns every event of `node` up to a marker: a dial
/// to a closed port, whose failure the swarm task reports only after what
/// reached it before (each answer's observed address included).
async fn greet_three_liars(node: &Node, events: &mut NodeEvents, made_up: &Multiaddr) -> Vec<NodeEvent> {
    let mut seen = Vec::new();
    let mut greeted = 0;
    while greeted < 3 {
        let event = within(events.recv()).await.expect("the node runs");
        if let NodeEvent::Capable { peer_id, .. } = &event {
            let client = node.client::<Greet>().peer(*peer_id).with_version(GreetVersion::V1);
            let answer = within(client.oneshot(GreetRequest::new("where am I?"))).await.unwrap();
            assert_eq!(answer.observed_addr, *made_up);
            greeted += 1;
        }
        seen.push(event);
    }
    let marker = p2p_transport::libp2p::PeerId::random();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    node.dial(format!("/ip4/127.0.0.1/tcp/{closed}/p2p/{marker}").parse().unwrap()).await.unwrap();
    loop {
        let event = within(events.recv()).await.expect("the node runs");
        if matches!(&event, NodeEvent::DialFailed { peer_id: Some(peer), .. } if *peer == marker) {
            return seen;
        }
        seen.push(event);
    }
}

fn confirms(events: &[NodeEvent], addr: &Multiaddr) -> bool {
    events.iter().any(|e| matches!(e, NodeEvent::ExternalAddrConfirmed { address } if address == addr))
}

/// `future`, or a panic after 20 s.
async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future).await.expect("within 20 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_counts_the_connections_a_per_ip_cap_lets_through() {
    let (node, events) = NodeBuilder::new()
        .mdns(false)
        .listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
        .max_incoming(Some(100), Some(4))
        .build(stack(MakeGreeter::new("target"), Limits::default()))
        .expect("the target starts");
    let quic = listening(&node, events).await;
    let out = p2p_fault(format!("hold {quic} --connections 10 --bind 127.0.0.1 --hold 1s --json")).await;
    let report = json(&out);
    assert_eq!(report["attempted"], 10, "{report}");
    assert_eq!(report["held_after_ramp"], 4, "the per-IP cap: {report}");
    assert_eq!(report["max_per_ip_after_ramp"], 4, "{report}");
    assert_eq!(report["held_at_end"], 4, "{report}");
    let refused = report["closed_at_once"].as_u64().unwrap() + report["failed"].as_u64().unwrap();
    assert_eq!(refused, 6, "{report}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("RAMPED held=4 ")), "{stdout}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_takes_the_greeting_and_never_answers() {
    let (node, mut events) = NodeBuilder::new()
        .mdns(false)
        .listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
        .request_timeout(Duration::from_millis(500))
        .build(stack(MakeGreeter::new("target"), Limits::default()))
        .expect("the target starts");
    let quic = loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(NodeEvent::Listening { address })) => {
                break address.with(Protocol::P2p(node.local_peer_id()));
            }
            Ok(Some(_)) => {}
            other => panic!("the target does not listen: {other:?}"),
        }
    };
    let silent = tokio::spawn(p2p_fault(format!(
        "silent --listen /ip4/127.0.0.1/udp/0/quic-v1 --peer {quic} --duration 4s --json"
    )));
    // The silent peer dials us; once identify says it speaks greet 2.0.0, greet it.
    let peer = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Some(NodeEvent::Capable { peer_id, .. }) => break peer_id,
                Some(_) => {}
                None => panic!("the target stopped"),
            }
        }
    })
    .await
    .expect("the silent peer connects and speaks greet");
    let started = std::time::Instant::now();
    let answer =
        tower::ServiceExt::oneshot(node.client::<Greet>(), (peer, p2p_protocol::GreetRequest::new("hello?")))
            .await;
    let took = started.elapsed();
    assert!(
        matches!(answer, Err(p2p_transport::RequestError::Timeout)),
        "a silent peer's greeting times out: {answer:?}"
    );
    assert!(took < Duration::from_secs(2), "within the request timeout: {took:?}");
    let out = silent.await.unwrap();
    let report = json(&out);
    assert_eq!(report["streams"], 1, "{report}");
    assert_eq!(report["held_streams"], 1, "{report}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.starts_with(&format!("STREAM {} at_ms=", node.local_peer_id()))),
        "{stdout}"
    );
    node.shutdown().await;
}

/// The node's QUIC address with /p2p/, once it listens; its events drained from then on.
async fn listening(node: &Node, mut events: p2p_transport::NodeEvents) -> Multiaddr {
    let address = loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(NodeEvent::Listening { address })) => {
                break address.with(Protocol::P2p(node.local_peer_id()));
            }
            Ok(Some(_)) => {}
            other => panic!("the node does not listen: {other:?}"),
        }
    };
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    address
}
