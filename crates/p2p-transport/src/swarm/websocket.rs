//! WebSocket (`/tcp/<port>/ws`), the one transport a browser page can dial
//! a node on without a certificate: plain TCP under it, then the same Noise
//! and Yamux upgrade as TCP.
//!
//! Built here rather than with `SwarmBuilder::with_websocket`, which puts a
//! DNS transport under it made from the system's resolver configuration:
//! that fails outright (so the node would not build) where there is no
//! `/etc/resolv.conf`, as in a bare network namespace. A node listens on
//! and dials IP addresses only (`/dns` WebSocket addresses are not dialed).

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{Boxed, Transport as _, dummy::DummyTransport};
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::{PeerId, noise, tcp, websocket};

use super::yamux;

/// The largest WebSocket message accepted (libp2p-websocket's default is
/// 256 MiB): a message is buffered whole before Noise sees it, so this is
/// what one connection can make us hold beyond Yamux's windows. A Noise
/// frame is at most 64 KiB, and a browser sends about one per message;
/// 1 MiB leaves room for senders that batch a few.
pub(crate) const MAX_MESSAGE: usize = 1 << 20;

/// The WebSocket transport, authenticated with Noise and multiplexed with
/// `yamux` (the TCP one's configuration), or no transport at all when
/// `enabled` is false (a `/ws` address is then refused like any unknown one).
pub(crate) fn transport(
    key: &Keypair,
    enabled: bool,
    yamux: yamux::Config,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, Box<dyn std::error::Error + Send + Sync>> {
    if !enabled {
        return Ok(DummyTransport::new().boxed());
    }
    let mut ws = websocket::Config::new(tcp::tokio::Transport::new(tcp::Config::default().nodelay(true)));
    ws.set_max_data_size(MAX_MESSAGE);
    Ok(ws
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux)
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        .boxed())
}
