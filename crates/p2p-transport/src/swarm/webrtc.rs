//! WebRTC-direct (`/udp/<port>/webrtc-direct/certhash/<hash>`), behind the
//! `webrtc` cargo feature: a browser dials it with no certificate it trusts,
//! checking the node's self-signed one against the hash in the address.
//! libp2p-webrtc 0.10.0-alpha does its own security (DTLS, then Noise) and
//! multiplexing (SCTP data channels). The certificate is
//! [`NodeConfig::webrtc_certificate`]: kept across restarts, the address
//! stays the same.

use libp2p::PeerId;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{Boxed, Transport as _};
use libp2p::identity::Keypair;

use crate::NodeConfig;

/// The WebRTC-direct transport with `config`'s certificate (a fresh one if
/// none), or no transport at all without the `webrtc` feature.
#[cfg(feature = "webrtc")]
pub(crate) fn transport(
    key: &Keypair,
    config: &NodeConfig,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, Box<dyn std::error::Error + Send + Sync>> {
    use libp2p_webrtc::tokio::{Certificate, Transport};
    // webrtc-dtls asks rustls for the process's default crypto provider, and
    // rustls picks none when both ring and aws-lc-rs are compiled in (quinn
    // brings ring): the first DTLS handshake then panicked. Ring's is
    // installed unless the process installed one already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certificate = match &config.webrtc_certificate {
        Some(pem) => Certificate::from_pem(&pem.0)?,
        None => Certificate::generate(&mut rand::make_rng::<rand::rngs::StdRng>())?,
    };
    Ok(Transport::new(key.clone(), certificate)
        .map(|(peer, conn), _| (peer, StreamMuxerBox::new(conn)))
        .boxed())
}

/// No WebRTC-direct without the `webrtc` feature.
#[cfg(not(feature = "webrtc"))]
pub(crate) fn transport(
    _: &Keypair,
    _: &NodeConfig,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, Box<dyn std::error::Error + Send + Sync>> {
    Ok(libp2p::core::transport::dummy::DummyTransport::new().boxed())
}
