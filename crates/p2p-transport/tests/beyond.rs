//! Beyond the LAN, in process over loopback: a relay R (relay hop, DHT
//! server, AutoNAT server), a node B that reserves a relayed address on it,
//! and a node A that finds B by its PeerId alone and greets it.

mod common;

use std::time::Duration;

use common::{Script, TestNode, Transport, spawn_on_host, spawn_with, within};
use futures::StreamExt;
use p2p_protocol::{Greet, GreetRequest};
use p2p_transport::libp2p::identity::Keypair;
use p2p_transport::libp2p::multiaddr::Protocol;
use p2p_transport::libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use p2p_transport::libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder, autonat, connection_limits, identify,
};
use p2p_transport::{ExternalAddrConfig, GreetVersion, NodeEvent, Path, Reachability, RequestError};
use tokio::sync::mpsc;
use tower::ServiceExt;

/// A QUIC address on 127.0.0.1 with a port that was free a moment ago: the
/// relay must know its own address before it listens (its operator-given
/// external address is what its reservations carry).
fn free_quic_addr() -> Multiaddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    format!("/ip4/127.0.0.1/udp/{port}/quic-v1").parse().unwrap()
}

async fn relay() -> TestNode {
    relay_at(free_quic_addr(), Keypair::generate_ed25519()).await
}

async fn relay_at(addr: Multiaddr, key: Keypair) -> TestNode {
    let external =
        ExternalAddrConfig { allow_loopback: true, operator_addrs: vec![addr.clone()], ..Default::default() };
    spawn_with(Script::new("relay"), Transport::At(addr), |b| {
        b.relay_server(true).external_addrs(external).keypair(key)
    })
    .await
}

/// A node on its own loopback host that joins the DHT through `relay`.
async fn behind(name: &'static str, host: u8, relay: &TestNode) -> TestNode {
    let listen: Multiaddr = format!("/ip4/127.0.0.{host}/udp/0/quic-v1").parse().unwrap();
    let bootstrap = relay.addr.clone();
    spawn_with(Script::new(name), Transport::At(listen), |b| b.bootstrap(bootstrap)).await
}

async fn reserved(node: &mut TestNode, relay: PeerId) -> Multiaddr {
    let NodeEvent::Reserved { address } =
        node.wait_for("a reservation", |e| matches!(e, NodeEvent::Reserved { .. })).await
    else {
        unreachable!()
    };
    assert!(address.iter().any(|p| p == Protocol::P2pCircuit), "{address}");
    assert!(address.iter().any(|p| p == Protocol::P2p(relay)), "{address}");
    address
}

#[tokio::test]
async fn a_peer_behind_a_relay_is_found_by_its_id_alone_and_greeted_through_it() {
    let relay = relay().await;
    let mut b = behind("b", 2, &relay).await;
    reserved(&mut b, relay.peer_id()).await;
    let mut a = behind("a", 3, &relay).await;

    let found = within("the lookup", a.node.connect_peer(b.peer_id())).await;
    assert_eq!(found.unwrap(), b.peer_id());
    let NodeEvent::Connected { address, .. } = a
        .wait_for(
            "connected to b",
            |e| matches!(e, NodeEvent::Connected { peer_id, .. } if *peer_id == b.peer_id()),
        )
        .await
    else {
        unreachable!()
    };
    assert!(address.iter().any(|p| p == Protocol::P2pCircuit), "the first connection is relayed: {address}");
    let answer = a.greet(&b, "hi").await.expect("greeted through the relay");
    assert_eq!(answer.message, "b: hi");
}

#[tokio::test]
async fn a_peer_nobody_knows_is_not_found() {
    let relay = relay().await;
    let a = behind("a", 3, &relay).await;
    let result = within("the lookup", a.node.connect_peer(PeerId::random())).await;
    assert!(matches!(result, Err(RequestError::Unreachable(ref r)) if r.contains("not found")), "{result:?}");
}

/// A relay hands out only what is still there: once B has left, the relay's
/// DHT no longer holds B's relayed address, so a lookup of B says "not found"
/// instead of dialing a dead circuit.
#[tokio::test]
async fn a_peer_that_left_its_relay_is_not_found_through_it() {
    let mut relay = relay().await;
    let mut b = behind("b", 2, &relay).await;
    reserved(&mut b, relay.peer_id()).await;
    let b_id = b.peer_id();
    // Found while it is there: the relay's DHT has its relayed address.
    let a = behind("a", 3, &relay).await;
    assert_eq!(within("the lookup", a.node.connect_peer(b_id)).await.unwrap(), b_id);

    b.node.shutdown().await;
    drop(b);
    relay.wait_for("b to go", |e| matches!(e, NodeEvent::Disconnected { peer_id } if *peer_id == b_id)).await;
    let mut late = behind("late", 4, &relay).await;
    let result = within("the lookup", late.node.connect_peer(b_id)).await;
    assert!(matches!(result, Err(RequestError::Unreachable(ref r)) if r.contains("not found")), "{result:?}");
    // Kademlia's own query leaves out a peer it could not reach, so what
    // shows the relay's table is whether the lookup dialed B's old circuit.
    // Every event `late` ever reports is read, to the end of its stream (the
    // node shut down): a dial reported late, or one still under way at the
    // shutdown (aborted), is seen too, not only what was buffered by now.
    within("late's shutdown", late.node.shutdown()).await;
    let mut seen = 0;
    while let Some(event) = within("late's events", late.events.recv()).await {
        let dialed_b = matches!(event, NodeEvent::DialFailed { peer_id: Some(p), .. } if p == b_id);
        assert!(!dialed_b, "the relay handed out B's relayed address after B left: {event:?}");
        seen += 1;
    }
    assert!(seen > 0, "late's events were read");
}

#[tokio::test]
async fn a_relayed_connection_is_punched_to_a_direct_one_and_the_relayed_one_closes() {
    let relay = relay().await;
    let mut b = behind("b", 2, &relay).await;
    reserved(&mut b, relay.peer_id()).await;
    let mut a = behind("a", 3, &relay).await;
    let (a_id, b_id) = (a.peer_id(), b.peer_id());

    within("the lookup", a.node.connect_peer(b_id)).await.unwrap();
    assert_eq!(a.node.path(&b_id), Some(Path::Relayed), "first through the relay");
    // Opens our pipelined stream, most likely on the relayed connection: the
    // greeting after the relayed connection closed must not fail on it.
    a.greet(&b, "relayed").await.expect("greeted through the relay");
    // Over QUIC both sides dial: either may report the punch.
    let punched = |peer: PeerId| move |e: &NodeEvent| matches!(e, NodeEvent::HolePunched { peer_id, .. } if *peer_id == peer);
    tokio::select! {
        _ = a.wait_for("a punches", punched(b_id)) => {}
        _ = b.wait_for("b punches", punched(a_id)) => {}
    }
    within("the relayed connection to close", async {
        loop {
            let (direct, relayed) = a.node.connections_to(&b_id);
            if direct >= 1 && relayed == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    })
    .await;
    assert_eq!(a.node.path(&b_id), Some(Path::Direct));
    assert_eq!(a.greet(&b, "direct").await.expect("greeted directly").message, "b: direct");
}

#[tokio::test]
async fn after_a_relay_restart_the_node_reserves_again_within_ten_seconds() {
    let (addr, key) = (free_quic_addr(), Keypair::generate_ed25519());
    let relay = relay_at(addr.clone(), key.clone()).await;
    let relay_id = relay.peer_id();
    let mut b = behind("b", 2, &relay).await;
    let first = reserved(&mut b, relay_id).await;

    relay.node.shutdown().await;
    drop(relay);
    b.wait_for(
        "the relay to go",
        |e| matches!(e, NodeEvent::Disconnected { peer_id } if *peer_id == relay_id),
    )
    .await;
    let restarted = tokio::time::Instant::now();
    // The old relay's QUIC socket closes in the background: wait for its port.
    let Some(Protocol::Udp(port)) = addr.iter().nth(1) else { unreachable!() };
    within("the relay's port to be free", async {
        while std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let relay = relay_at(addr, key).await;
    let again = tokio::time::timeout(std::time::Duration::from_secs(10), reserved(&mut b, relay_id))
        .await
        .expect("reserved again within 10 s");
    assert_eq!(again, first, "the same relayed address");
    eprintln!("reserved again {:?} after the restart", restarted.elapsed());

    // And B is reachable through it again.
    let a = behind("a", 3, &relay).await;
    assert_eq!(within("the lookup", a.node.connect_peer(b.peer_id())).await.unwrap(), b.peer_id());
}

/// With a bootstrap AutoNAT server, observers alone confirm nothing: two
/// hosts that agree on a made-up address of ours get nowhere (it is never
/// dialed back), while our real address, which the server dials back, is
/// confirmed. Checked over the whole run: no `EXTERNAL` event ever names the
/// lie, before or after the real address is confirmed.
#[tokio::test]
async fn with_an_autonat_server_known_an_address_needs_a_dial_back() {
    let relay = relay().await;
    let mut p = behind("p", 2, &relay).await;
    let real = strip_p2p(&p.addr);
    let (lie, _liars, mut seen) = two_observers_agree_on_a_lie_seen(&mut p).await;
    if !confirms(&seen, &real) {
        let events = &mut p.events;
        within("the real address confirmed", async {
            loop {
                let event = events.recv().await.expect("p runs");
                let done = matches!(&event, NodeEvent::ExternalAddrConfirmed { address } if *address == real);
                seen.push(event);
                if done {
                    break;
                }
            }
        })
        .await;
    }
    seen.extend(events_so_far(&mut p).await);
    let external: Vec<&NodeEvent> = seen
        .iter()
        .filter(|e| {
            matches!(e, NodeEvent::ExternalAddrConfirmed { .. } | NodeEvent::ExternalAddrExpired { .. })
        })
        .collect();
    assert!(!confirms(&seen, &lie), "the lie two observers agree on was confirmed: {external:?}");
    assert_eq!(p.node.external_addrs(), vec![real], "dialed back; never the lie");
}

/// A bootstrap server that leaves does not let observers alone confirm
/// within the external address TTL (the rule lapses only after it). The
/// positive control: the same two liars make a node that never knew a server
/// confirm their lie, checked the same way.
#[tokio::test]
async fn once_an_autonat_server_was_known_its_leaving_does_not_let_observers_alone_confirm() {
    let relay = relay().await;
    let mut p = behind("p", 2, &relay).await;
    p.wait_for("p hears from the relay", |e| matches!(e, NodeEvent::Reachability { .. })).await;
    let relay_id = relay.peer_id();
    relay.node.shutdown().await;
    p.wait_for(
        "the relay to go",
        |e| matches!(e, NodeEvent::Disconnected { peer_id } if *peer_id == relay_id),
    )
    .await;

    let (lie, _liars) = two_observers_agree_on_a_lie(&mut p).await;
    let seen = events_so_far(&mut p).await;
    assert!(!confirms(&seen, &lie), "confirmed on two observers alone: {seen:?}");
    assert!(!p.node.external_addrs().contains(&lie));

    let mut control = spawn_on_host(Script::new("control"), 12).await;
    let (lie, _liars) = two_observers_agree_on_a_lie(&mut control).await;
    let seen = events_so_far(&mut control).await;
    assert!(confirms(&seen, &lie), "the control: two observers confirm where no server was known: {seen:?}");
}

/// Neither a peer that only *lists* the AutoNAT server protocol nor a real
/// AutoNAT server that refuses every dial-back makes dial-backs required: a
/// LAN node that met both confirms what two observers agree on exactly as a
/// node that never met them (the control) does.
#[tokio::test]
async fn a_claim_or_a_server_refusing_every_dial_back_leaves_observers_to_confirm_as_if_never_met() {
    let mut p = spawn_on_host(Script::new("p"), 2).await;
    let claimer = claimer(5).await;
    // On the claimer's host: one observer origin between them, so what they
    // see of P confirms nothing, and P's reachability is still unknown when
    // the refusal comes (a failed test then makes P report itself private).
    let (refuser, _) = autonat_server(5, Dials::Refused).await;
    p.node.dial(claimer.1.clone()).await.unwrap();
    p.node.dial(refuser.clone()).await.unwrap();
    // P has read the claimer's identify (it lists greet too, so P says so)...
    p.wait_for(
        "the claimer's identify",
        |e| matches!(e, NodeEvent::Capable { peer_id, .. } if *peer_id == claimer.0),
    )
    .await;
    // ...and the server refused to dial P back, and P has heard it: a failed
    // test is the only thing that makes P report itself private here.
    p.wait_for("P hears of a refused dial-back", |e| {
        matches!(e, NodeEvent::Reachability { reachability: Reachability::Private })
    })
    .await;

    let (lie, _liars) = two_observers_agree_on_a_lie(&mut p).await;
    let seen = events_so_far(&mut p).await;
    assert!(confirms(&seen, &lie), "observers alone confirm, as if P had met neither: {seen:?}");

    let mut control = spawn_on_host(Script::new("control"), 12).await;
    let (lie, _liars) = two_observers_agree_on_a_lie(&mut control).await;
    let seen = events_so_far(&mut control).await;
    assert!(confirms(&seen, &lie), "the control confirms the same way: {seen:?}");
}

/// The positive control of the one above: a (non-bootstrap) server that
/// really dialed us back makes dial-backs required, so the same two liars
/// get nowhere.
#[tokio::test]
async fn a_server_that_dialed_us_back_makes_observers_alone_not_enough() {
    let mut p = spawn_on_host(Script::new("p"), 2).await;
    let (server, mut dialed) = autonat_server(7, Dials::Allowed).await;
    p.node.dial(server).await.unwrap();
    let outcome = within("a dial-back", dialed.recv()).await.expect("the server runs");
    assert!(outcome.is_ok(), "the server dialed P back: {outcome:?}");
    // (P hears of the dial-back within moments; were it later than the
    // liars' greetings below, the lie would be confirmed and the test would
    // fail, never pass wrongly.)
    let (lie, _liars) = two_observers_agree_on_a_lie(&mut p).await;
    let seen = events_so_far(&mut p).await;
    assert!(!confirms(&seen, &lie), "a proven server is connected: observers alone do not confirm: {seen:?}");
    assert!(!p.node.external_addrs().contains(&lie));
}

fn confirms(events: &[NodeEvent], addr: &Multiaddr) -> bool {
    events.iter().any(|e| matches!(e, NodeEvent::ExternalAddrConfirmed { address } if address == addr))
}

/// Every event `p` has emitted so far, up to a marker: a dial to a closed
/// port, whose `DialFailed` the swarm task emits only after it has handled
/// everything that reached it before (a 1.0.0 answer's observed address is
/// handled as the answer is handed over). No timeout decides anything here.
async fn events_so_far(p: &mut TestNode) -> Vec<NodeEvent> {
    let marker = PeerId::random();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    p.node.dial(format!("/ip4/127.0.0.1/tcp/{closed}/p2p/{marker}").parse().unwrap()).await.unwrap();
    let events = &mut p.events;
    within("the marker dial to fail", async {
        let mut seen = Vec::new();
        loop {
            let event = events.recv().await.expect("the node runs");
            if matches!(&event, NodeEvent::DialFailed { peer_id: Some(peer), .. } if *peer == marker) {
                return seen;
            }
            seen.push(event);
        }
    })
    .await
}

/// Two peers on other hosts that each tell `p`, in a 1.0.0 answer, that it
/// is at our port on a made-up IP (127.0.0.9): two independent observers
/// agreeing. Returns the lie and the liars (kept alive by the caller).
async fn two_observers_agree_on_a_lie(p: &mut TestNode) -> (Multiaddr, Vec<TestNode>) {
    let (lie, liars, _) = two_observers_agree_on_a_lie_seen(p).await;
    (lie, liars)
}

/// The same, with every event `p` emitted meanwhile.
async fn two_observers_agree_on_a_lie_seen(p: &mut TestNode) -> (Multiaddr, Vec<TestNode>, Vec<NodeEvent>) {
    let Some(Protocol::Udp(port)) = p.addr.iter().nth(1) else { unreachable!() };
    let lie: Multiaddr = format!("/ip4/127.0.0.9/udp/{port}/quic-v1").parse().unwrap();
    let mut liars = Vec::new();
    let mut seen = Vec::new();
    for host in [3, 4] {
        let listen: Multiaddr = format!("/ip4/127.0.0.{host}/udp/0/quic-v1").parse().unwrap();
        let liar = spawn_with(Script::liar("liar", lie.clone()), Transport::At(listen), |b| b).await;
        p.node.dial(liar.addr.clone()).await.expect("dial starts");
        let liar_id = liar.peer_id();
        let events = &mut p.events;
        within("identify of the liar", async {
            loop {
                let event = events.recv().await.expect("p runs");
                let done = matches!(&event, NodeEvent::Capable { peer_id, .. } if *peer_id == liar_id);
                seen.push(event);
                if done {
                    break;
                }
            }
        })
        .await;
        let v1 = p.node.client::<Greet>().peer(liar_id).with_version(GreetVersion::V1);
        within("a greeting", v1.oneshot(GreetRequest::new("where am I?"))).await.unwrap();
        liars.push(liar);
    }
    (lie, liars, seen)
}

/// Whether a test AutoNAT server's dial-backs may leave.
#[derive(Clone, Copy)]
enum Dials {
    /// Each established dial-back comes out of the receiver as `Ok`.
    Allowed,
    /// Every dial-back is refused (no outbound dial at all): the client hears "dial error".
    Refused,
}

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "p2p_transport::libp2p::swarm::derive_prelude")]
struct ServerBehaviour {
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    autonat: autonat::v2::server::Behaviour,
}

/// libp2p's own AutoNAT v2 server on `127.0.0.<host>` (with identify, so it
/// lists the protocol); its dial-backs' outcomes come out of the receiver.
async fn autonat_server(host: u8, dials: Dials) -> (Multiaddr, mpsc::Receiver<Result<(), String>>) {
    let outgoing = match dials {
        Dials::Allowed => None,
        Dials::Refused => Some(0),
    };
    let swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_quic()
        .with_behaviour(|key| ServerBehaviour {
            limits: connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default().with_max_pending_outgoing(outgoing),
            ),
            identify: identify::Behaviour::new(identify::Config::new("/test/1".into(), key.public())),
            autonat: autonat::v2::server::Behaviour::default(),
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let (addr, swarm) = listening(swarm, host).await;
    let (tx, rx) = mpsc::channel(16);
    // Its only outbound connections are dial-backs: one established is a
    // real dial-back, one that failed is a refused one.
    tokio::spawn(async move {
        let mut swarm = swarm;
        loop {
            let outcome = match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { endpoint, .. } if endpoint.is_dialer() => Ok(()),
                SwarmEvent::OutgoingConnectionError { error, .. } => Err(error.to_string()),
                _ => continue,
            };
            let _ = tx.try_send(outcome);
        }
    });
    (addr, rx)
}

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "p2p_transport::libp2p::swarm::derive_prelude")]
struct ClaimerBehaviour {
    identify: identify::Behaviour,
    streams: libp2p_stream::Behaviour,
}

/// A peer on `127.0.0.<host>` whose identify lists the AutoNAT v2 server
/// protocol (and greet), and which serves neither: every stream is dropped.
async fn claimer(host: u8) -> (PeerId, Multiaddr) {
    let swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_quic()
        .with_behaviour(|key| ClaimerBehaviour {
            identify: identify::Behaviour::new(identify::Config::new("/test/1".into(), key.public())),
            streams: libp2p_stream::Behaviour::new(),
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let peer = *swarm.local_peer_id();
    let mut control = swarm.behaviour().streams.new_control();
    for protocol in ["/libp2p/autonat/2/dial-request", p2p_protocol::PROTOCOL_NAME] {
        let mut incoming = control.accept(StreamProtocol::new(protocol)).unwrap();
        tokio::spawn(async move { while incoming.next().await.is_some() {} });
    }
    let (addr, mut swarm) = listening(swarm, host).await;
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    (peer, addr.with(Protocol::P2p(peer)))
}

/// `swarm` listening on QUIC on `127.0.0.<host>`, and where (with `/p2p/`).
async fn listening<B: NetworkBehaviour>(mut swarm: Swarm<B>, host: u8) -> (Multiaddr, Swarm<B>) {
    swarm.listen_on(format!("/ip4/127.0.0.{host}/udp/0/quic-v1").parse().unwrap()).unwrap();
    let peer = *swarm.local_peer_id();
    let addr = within("the test swarm to listen", async {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                return address;
            }
        }
    })
    .await;
    let addr = if addr.iter().any(|p| matches!(p, Protocol::P2p(_))) {
        addr
    } else {
        addr.with(Protocol::P2p(peer))
    };
    (addr, swarm)
}

fn strip_p2p(addr: &Multiaddr) -> Multiaddr {
    addr.iter().filter(|p| !matches!(p, Protocol::P2p(_))).collect()
}
