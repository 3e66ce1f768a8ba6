//! Values on the command line that more than one subcommand parses: peers'
//! addresses (durations are `p2p_load::HumanDuration`, shared with
//! `p2p-fault`). A leaf: every subcommand's arguments use it, it uses none of
//! them.

use p2p_transport::libp2p::Multiaddr;

/// A peer's address: a multiaddr ending in `/p2p/<peer-id>`.
pub(crate) fn parse_peer_addr(text: &str) -> Result<Multiaddr, String> {
    let addr: Multiaddr = text.parse().map_err(|err| format!("{err}"))?;
    match addr.iter().last() {
        Some(p2p_transport::libp2p::multiaddr::Protocol::P2p(_)) => Ok(addr),
        _ => Err("must end with /p2p/<peer-id>".to_owned()),
    }
}
