//! A bare swarm that speaks nothing but raw streams: what hostile clients
//! and tests send their bytes on, below any protocol's framing (the fault
//! client's `hostile` and `hoard`, the transport's and the protocols' tests).

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use p2p_transport::libp2p::core::transport::Transport as _;
use p2p_transport::libp2p::core::upgrade::Version;
use p2p_transport::libp2p::identity::Keypair;
use p2p_transport::libp2p::swarm::SwarmEvent;
use p2p_transport::libp2p::{Multiaddr, SwarmBuilder, noise, tcp, websocket, yamux};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A raw-stream peer with one connection to the target; it derefs to its
/// `libp2p_stream::Control`. Dropping it drops the connection.
pub struct RawPeer {
    control: libp2p_stream::Control,
    /// Connections to the target that closed after the first one was up.
    closed: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Deref for RawPeer {
    type Target = libp2p_stream::Control;

    fn deref(&self) -> &libp2p_stream::Control {
        &self.control
    }
}

impl DerefMut for RawPeer {
    fn deref_mut(&mut self) -> &mut libp2p_stream::Control {
        &mut self.control
    }
}

impl RawPeer {
    /// A fresh identity connected to `target` (QUIC, TCP/Yamux or
    /// WebSocket/Yamux) within 15 s; why not, in a line.
    pub async fn connect(target: &Multiaddr) -> Result<Self, String> {
        let mut swarm = SwarmBuilder::with_existing_identity(Keypair::generate_ed25519())
            .with_tokio()
            .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
            .map_err(|err| err.to_string())?
            .with_quic()
            // WebSocket too (Noise, Yamux, no DNS), for the node's `/ws` listener.
            .with_other_transport(|key| {
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                    websocket::Config::new(tcp::tokio::Transport::new(tcp::Config::default().nodelay(true)))
                        .upgrade(Version::V1Lazy)
                        .authenticate(noise::Config::new(key)?)
                        .multiplex(yamux::Config::default()),
                )
            })
            .map_err(|err| err.to_string())?
            .with_behaviour(|_| libp2p_stream::Behaviour::new())
            .map_err(|err| err.to_string())?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        let control = swarm.behaviour().new_control();
        swarm.dial(target.clone()).map_err(|err| format!("cannot dial {target}: {err}"))?;
        let (connected_tx, connected) = oneshot::channel();
        let closed = Arc::new(AtomicU64::new(0));
        let closed_count = Arc::clone(&closed);
        // A bare swarm has no `Node::connect`: its events tell.
        let task = tokio::spawn(async move {
            let mut connected_tx = Some(connected_tx);
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { .. } => {
                        if let Some(tx) = connected_tx.take() {
                            let _ = tx.send(Ok(()));
                        }
                    }
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        if let Some(tx) = connected_tx.take() {
                            let _ = tx.send(Err(error.to_string()));
                        }
                    }
                    SwarmEvent::ConnectionClosed { .. } => {
                        closed_count.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        });
        // From here on, dropping `peer` (on an error too) ends the task.
        let peer = Self { control, closed, task };
        match tokio::time::timeout(CONNECT_TIMEOUT, connected).await {
            Ok(Ok(Ok(()))) => Ok(peer),
            Ok(Ok(Err(err))) => Err(format!("cannot connect to {target}: {err}")),
            _ => Err(format!(
                "no connection to {target} within {}",
                humantime::format_duration(CONNECT_TIMEOUT)
            )),
        }
    }

    /// Connections to the target that closed so far.
    pub fn closed(&self) -> u64 {
        self.closed.load(Ordering::Relaxed)
    }
}
