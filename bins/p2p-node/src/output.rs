//! The event lines on stdout: one per line, keyword first, flushed per line.
//!
//! What a peer says (its greeting, its error messages, the addresses it
//! advertises or observes) is escaped before it is printed: a control
//! character, a line break or a bidirectional override never reaches the
//! terminal or a script reading the lines as itself, only as an escape such as
//! `\u{1b}`, `\n` or `\u{202e}`. Every line goes through [`escape_controls`].

use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use p2p_protocol::GreetResponse;

use p2p_transport::libp2p::multiaddr::Protocol;
use p2p_transport::libp2p::{Multiaddr, PeerId};
use p2p_transport::{NodeEvent, Path, RequestError};

use crate::periodic::GreetOutcome;

/// The lines an event prints; none for events that are only logged.
pub(crate) fn event_lines(event: &NodeEvent, local: PeerId) -> Vec<String> {
    let lines = match event {
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
        NodeEvent::Banned { peer_id, duration } => {
            vec![format!("BANNED {peer_id} {}", humantime::format_duration(*duration))]
        }
        NodeEvent::Unbanned { peer_id } => vec![format!("UNBANNED {peer_id}")],
        NodeEvent::Reserved { address } => vec![format!("RESERVED {}", with_peer(address, local))],
        NodeEvent::HolePunched { peer_id, address } => vec![format!("HOLE_PUNCHED {peer_id} {address}")],
        NodeEvent::HolePunchFailed { peer_id, reason } => {
            vec![format!("HOLE_PUNCH_FAILED {peer_id} {reason}")]
        }
        NodeEvent::Reachability { reachability } => vec![format!("REACHABILITY {reachability}")],
        _ => Vec::new(),
    };
    lines.iter().map(|line| escape_controls(line)).collect()
}

/// `EXTERNAL <address>`.
pub(crate) fn external(address: &Multiaddr) -> String {
    escape_controls(&format!("EXTERNAL {address}"))
}

/// `GREETED <peer-id> rtt_ms=<n> path=direct|relayed "<message>"` or
/// `GREET_FAILED <peer-id> <reason>`; `path` is how we are connected to the
/// peer as the answer is printed.
pub(crate) fn outcome_line(outcome: &GreetOutcome, path: Path) -> String {
    let peer = outcome.peer_id;
    let line = match &outcome.result {
        Ok(response) => {
            format!("GREETED {peer} rtt_ms={} path={path} {:?}", outcome.rtt.as_millis(), response.message)
        }
        Err(err) => format!("GREET_FAILED {peer} {}", failure_reason(err)),
    };
    escape_controls(&line)
}

/// `p2p-node greet`'s answer:
/// `GREETED <peer-id> rtt_ms=<n> path=direct|relayed observed=<address> "<message>"`.
pub(crate) fn greeted_line(peer: PeerId, rtt: Duration, path: Path, response: &GreetResponse) -> String {
    let line = format!(
        "GREETED {peer} rtt_ms={} path={path} observed={} {:?}",
        rtt.as_millis(),
        response.observed_addr,
        response.message
    );
    escape_controls(&line)
}

/// Why a greeting failed, on one line: `<kind>: <what happened>`, or for an
/// error answered by the peer `remote <code>: <its message>`.
pub(crate) fn failure_reason(err: &RequestError) -> String {
    let reason = match err {
        RequestError::Remote(remote) => format!("remote {}: {}", remote.code, remote.message),
        err => format!("{}: {err}", err.kind()),
    };
    escape_controls(&reason)
}

/// `text` with every character that `str::escape_debug` escapes written as
/// that escape (control characters such as ESC as `\u{1b}`, CR and LF as `\r`
/// and `\n`, bidirectional overrides such as `\u{202e}`, other invisible
/// format characters), except quotes and backslashes, which stay as they are:
/// the text stays on one line and shows the terminal nothing to act on.
pub(crate) fn escape_controls(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for piece in text.split_inclusive(['"', '\'', '\\']) {
        let (run, kept) = match piece.chars().last() {
            Some(last @ ('"' | '\'' | '\\')) => (&piece[..piece.len() - 1], Some(last)),
            _ => (piece, None),
        };
        let _ = write!(escaped, "{}", run.escape_debug());
        escaped.extend(kept);
    }
    escaped
}

/// `address` ending in `/p2p/<peer>`, whether it had it or not.
pub(crate) fn with_peer(address: &Multiaddr, peer: PeerId) -> Multiaddr {
    match address.iter().last() {
        Some(Protocol::P2p(_)) => address.clone(),
        _ => address.clone().with(Protocol::P2p(peer)),
    }
}

/// `line` as printed with `--timestamps` (`stamp`): after the wall-clock
/// time in milliseconds since the Unix epoch and a space; as it is without.
pub(crate) fn stamped(line: &str, stamp: bool) -> std::borrow::Cow<'_, str> {
    if !stamp {
        return line.into();
    }
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    format!("{ms} {line}").into()
}

/// Prints `line` on stdout and flushes it, so that a reader sees each event as it happens.
///
/// A closed stdout (the reader went away) is not a reason to stop the node.
/// Escaped again here (a no-op for the lines built above), so that no line can
/// carry a control character to the terminal.
pub(crate) fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", escape_controls(line)).and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use p2p_protocol::{ErrorCode, GreetResponse, RemoteError};
    use p2p_transport::Reachability;

    use super::*;

    #[test]
    fn timestamps_come_first_only_when_asked_for() {
        assert_eq!(stamped("LISTEN /ip4/10.0.0.1/tcp/1", false), "LISTEN /ip4/10.0.0.1/tcp/1");
        let line = stamped("LISTEN /ip4/10.0.0.1/tcp/1", true);
        let (ms, rest) = line.split_once(' ').unwrap();
        assert_eq!(rest, "LISTEN /ip4/10.0.0.1/tcp/1");
        let ms: u128 = ms.parse().unwrap();
        assert!(ms > 1_700_000_000_000, "milliseconds since the epoch: {ms}");
    }

    #[test]
    fn events_print_keyword_first() {
        let local = PeerId::random();
        let peer = PeerId::random();
        let quic: Multiaddr = "/ip4/10.77.0.11/udp/4001/quic-v1".parse().unwrap();
        let tcp: Multiaddr = "/ip4/10.77.0.11/tcp/4001".parse().unwrap();
        let relay = PeerId::random();
        let circuit: Multiaddr =
            format!("/ip4/203.0.113.1/udp/4001/quic-v1/p2p/{relay}/p2p-circuit").parse().unwrap();
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
            (NodeEvent::Capable { peer_id: peer, protocol: p2p_protocol::PROTOCOL_NAME }, vec![]),
            (
                NodeEvent::Banned { peer_id: peer, duration: std::time::Duration::from_secs(60) },
                vec![format!("BANNED {peer} 1m")],
            ),
            (NodeEvent::Unbanned { peer_id: peer }, vec![format!("UNBANNED {peer}")]),
            (
                NodeEvent::Reserved { address: circuit.clone() },
                vec![format!("RESERVED {circuit}/p2p/{local}")],
            ),
            (
                NodeEvent::HolePunched { peer_id: peer, address: quic.clone() },
                vec![format!("HOLE_PUNCHED {peer} {quic}")],
            ),
            (
                NodeEvent::HolePunchFailed { peer_id: peer, reason: "gave up after 3 attempts".into() },
                vec![format!("HOLE_PUNCH_FAILED {peer} gave up after 3 attempts")],
            ),
            (
                NodeEvent::Reachability { reachability: Reachability::Private },
                vec!["REACHABILITY private".to_owned()],
            ),
            (
                NodeEvent::Reachability { reachability: Reachability::Public },
                vec!["REACHABILITY public".to_owned()],
            ),
            (
                NodeEvent::Connected { peer_id: peer, address: circuit.clone() },
                vec![format!("CONNECTED {peer} {circuit}")],
            ),
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
        assert_eq!(
            outcome_line(&ok, Path::Direct),
            format!(r#"GREETED {peer} rtt_ms=12 path=direct "hi \"there\"\n""#)
        );
        assert_eq!(
            outcome_line(&ok, Path::Relayed),
            format!(r#"GREETED {peer} rtt_ms=12 path=relayed "hi \"there\"\n""#)
        );
        let remote = GreetOutcome {
            result: Err(RequestError::Remote(RemoteError::new(ErrorCode::RATE_LIMITED, "slow\ndown"))),
            ..ok.clone()
        };
        assert_eq!(
            outcome_line(&remote, Path::Direct),
            format!(r"GREET_FAILED {peer} remote 429 rate limited: slow\ndown")
        );
        let timeout = GreetOutcome { result: Err(RequestError::Timeout), ..ok };
        assert_eq!(
            outcome_line(&timeout, Path::Relayed),
            format!("GREET_FAILED {peer} timeout: the request timed out")
        );
    }

    /// What a hostile peer might send: a screen clear, a carriage return that
    /// overwrites the line, a line break that forges a line, a bidi override.
    const HOSTILE: &str = "hi\x1b[2J\x1b]0;owned\x07\rGREETED fake\nDISCONNECTED x\u{202e}gnp.exe";
    const ESCAPED: &str = r"hi\u{1b}[2J\u{1b}]0;owned\u{7}\rGREETED fake\nDISCONNECTED x\u{202e}gnp.exe";

    fn assert_inert(line: &str) {
        assert!(!line.chars().any(|c| c.is_control() || c == '\u{202e}'), "{line:?}");
        assert!(line.contains(ESCAPED), "{line}");
    }

    #[test]
    fn what_a_peer_says_is_escaped() {
        let peer = PeerId::random();
        let hostile_addr = Multiaddr::empty().with(Protocol::Dns4(HOSTILE.into())).with(Protocol::Tcp(4001));
        let response = GreetResponse { message: HOSTILE.into(), observed_addr: hostile_addr.clone() };
        let greeted =
            GreetOutcome { peer_id: peer, rtt: Duration::from_millis(3), result: Ok(response.clone()) };
        let remote = RemoteError::new(ErrorCode::RATE_LIMITED, HOSTILE);
        let failed = GreetOutcome { result: Err(RequestError::Remote(remote)), ..greeted.clone() };
        let unreachable = RequestError::Unreachable(HOSTILE.into());
        let discovered = NodeEvent::Discovered { peer_id: peer, addresses: vec![hostile_addr.clone()] };

        let greeted_line = greeted_line(peer, Duration::from_millis(3), Path::Relayed, &response);
        assert_eq!(
            greeted_line,
            format!("GREETED {peer} rtt_ms=3 path=relayed observed=/dns4/{ESCAPED}/tcp/4001 \"{ESCAPED}\"")
        );
        let punch_failed = NodeEvent::HolePunchFailed { peer_id: peer, reason: HOSTILE.into() };
        for line in [
            outcome_line(&greeted, Path::Direct),
            outcome_line(&failed, Path::Direct),
            failure_reason(&unreachable),
            greeted_line,
            external(&hostile_addr),
        ]
        .into_iter()
        .chain(event_lines(&discovered, PeerId::random()))
        .chain(event_lines(&punch_failed, PeerId::random()))
        {
            assert_inert(&line);
        }
    }

    #[test]
    fn escaping_keeps_quotes_backslashes_and_printable_text() {
        let text = r#"LISTEN /ip4/1.2.3.4 "ça va?" it's \ 日本 µs"#;
        assert_eq!(escape_controls(text), text);
        assert_eq!(escape_controls("a\tb\u{7f}\u{85}\u{2028}\u{200b}"), r"a\tb\u{7f}\u{85}\u{2028}\u{200b}");
        assert_eq!(escape_controls(&escape_controls(HOSTILE)), escape_controls(HOSTILE), "idempotent");
    }
}
