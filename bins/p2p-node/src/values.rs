//! Values on the command line: durations, peers' addresses. A leaf: every
//! subcommand's arguments use it, it uses none of them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use p2p_transport::libp2p::Multiaddr;

/// A duration written and shown the human way: `5s`, `200ms`, `1m 30s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HumanDuration(pub(crate) Duration);

impl HumanDuration {
    pub(crate) const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// A limit where `None` (disabled) is written `0s`.
    pub(crate) fn from_limit(limit: Option<Duration>) -> Self {
        Self(limit.unwrap_or(Duration::ZERO))
    }
}

impl FromStr for HumanDuration {
    type Err = humantime::DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s).map(Self)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            return f.write_str("0s");
        }
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A peer's address: a multiaddr ending in `/p2p/<peer-id>`.
pub(crate) fn parse_peer_addr(text: &str) -> Result<Multiaddr, String> {
    let addr: Multiaddr = text.parse().map_err(|err| format!("{err}"))?;
    match addr.iter().last() {
        Some(p2p_transport::libp2p::multiaddr::Protocol::P2p(_)) => Ok(addr),
        _ => Err("must end with /p2p/<peer-id>".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_through_their_display() {
        for text in ["0s", "200ms", "5s", "1m 30s"] {
            assert_eq!(text.parse::<HumanDuration>().unwrap().to_string(), text);
        }
    }
}
