//! The event lines on stdout: one per line, keyword first, flushed per line.

use std::io::Write;

use p2p_transport::libp2p::multiaddr::Protocol;
use p2p_transport::libp2p::{Multiaddr, PeerId};
use p2p_transport::{GreetOutcome, NodeEvent, RequestError};

/// The lines an event prints; none for events that are only logged.
pub(crate) fn event_lines(event: &NodeEvent, local: PeerId) -> Vec<String> {
    match event {
        NodeEvent::Listening { address } => vec![format!("LISTEN {}", with_peer(address, local))],
        NodeEvent::Discovered { peer_id, addresses } if addresses.is_empty() => {
            vec![format!("DISCOVERED {peer_id}")]
        }
        NodeEvent::Discovered { peer_id, addresses } => {
            addresses.iter().map(|address| format!("DISCOVERED {peer_id} {address}")).collect()
        }
        NodeEvent::Expired { peer_id } => vec![format!("EXPIRED {peer_id}")],
        NodeEvent::Connected { peer_id, address } => vec![format!("CONNECTED {peer_id} {address}")],
        NodeEvent::Disconnected { peer_id } => vec![format!("DISCONNECTED {peer_id}")],
        NodeEvent::ExternalAddrConfirmed { address } => vec![external(address)],
        NodeEvent::ExternalAddrExpired { address } => vec![format!("EXTERNAL_EXPIRED {address}")],
        _ => Vec::new(),
    }
}

/// `EXTERNAL <address>`.
pub(crate) fn external(address: &Multiaddr) -> String {
    format!("EXTERNAL {address}")
}

/// `GREETED <peer-id> rtt_ms=<n> "<message>"` or `GREET_FAILED <peer-id> <reason>`.
pub(crate) fn outcome_line(outcome: &GreetOutcome) -> String {
    let peer = outcome.peer_id;
    match &outcome.result {
        Ok(response) => format!("GREETED {peer} rtt_ms={} {:?}", outcome.rtt.as_millis(), response.message),
        Err(err) => format!("GREET_FAILED {peer} {}", failure_reason(err)),
    }
}

/// Why a greeting failed, on one line: `<kind>: <what happened>`, or for an
/// error answered by the peer `remote <code>: <its message>`.
pub(crate) fn failure_reason(err: &RequestError) -> String {
    let reason = match err {
        RequestError::Remote(remote) => format!("remote {}: {}", remote.code, remote.message),
        err => format!("{}: {err}", err.kind()),
    };
    reason.replace(['\n', '\r'], " ")
}

/// `address` ending in `/p2p/<peer>`, whether it had it or not.
pub(crate) fn with_peer(address: &Multiaddr, peer: PeerId) -> Multiaddr {
    match address.iter().last() {
        Some(Protocol::P2p(_)) => address.clone(),
        _ => address.clone().with(Protocol::P2p(peer)),
    }
}

/// Prints `line` on stdout and flushes it, so that a reader sees each event as it happens.
///
/// A closed stdout (the reader went away) is not a reason to stop the node.
pub(crate) fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use p2p_protocol::{ErrorCode, GreetResponse, RemoteError};

    use super::*;

    #[test]
    fn events_print_keyword_first() {
        let local = PeerId::random();
        let peer = PeerId::random();
        let quic: Multiaddr = "/ip4/10.77.0.11/udp/4001/quic-v1".parse().unwrap();
        let tcp: Multiaddr = "/ip4/10.77.0.11/tcp/4001".parse().unwrap();
        let table = [
            (NodeEvent::Listening { address: quic.clone() }, vec![format!("LISTEN {quic}/p2p/{local}")]),
            (
                NodeEvent::Discovered { peer_id: peer, addresses: vec![quic.clone(), tcp.clone()] },
                vec![format!("DISCOVERED {peer} {quic}"), format!("DISCOVERED {peer} {tcp}")],
            ),
            (
                NodeEvent::Connected { peer_id: peer, address: tcp.clone() },
                vec![format!("CONNECTED {peer} {tcp}")],
            ),
            (NodeEvent::Disconnected { peer_id: peer }, vec![format!("DISCONNECTED {peer}")]),
            (NodeEvent::ExternalAddrConfirmed { address: quic.clone() }, vec![format!("EXTERNAL {quic}")]),
            (
                NodeEvent::ExternalAddrExpired { address: quic.clone() },
                vec![format!("EXTERNAL_EXPIRED {quic}")],
            ),
            (NodeEvent::GreetCapable { peer_id: peer }, vec![]),
        ];
        for (event, expected) in table {
            assert_eq!(event_lines(&event, local), expected, "{event:?}");
        }
    }

    #[test]
    fn outcomes_print_one_line_each() {
        let peer = PeerId::random();
        let ok = GreetOutcome {
            peer_id: peer,
            rtt: Duration::from_micros(12_700),
            result: Ok(GreetResponse {
                message: "hi \"there\"\n".into(),
                observed_addr: "/ip4/10.77.0.12/udp/4001/quic-v1".parse().unwrap(),
            }),
        };
        assert_eq!(outcome_line(&ok), format!(r#"GREETED {peer} rtt_ms=12 "hi \"there\"\n""#));
        let remote = GreetOutcome {
            result: Err(RequestError::Remote(RemoteError::new(ErrorCode::RATE_LIMITED, "slow\ndown"))),
            ..ok.clone()
        };
        assert_eq!(outcome_line(&remote), format!("GREET_FAILED {peer} remote 429 rate limited: slow down"));
        let timeout = GreetOutcome { result: Err(RequestError::Timeout), ..ok };
        assert_eq!(outcome_line(&timeout), format!("GREET_FAILED {peer} timeout: the request timed out"));
    }
}
