//! The gate: who may connect at all. Connection budgets that no crowd of
//! cheap identities can exhaust (per remote IP, for inbound connections in
//! total and while pending, always leaving room for our own dials), and
//! automatic bans of peers that keep being refused.
//!
//! Owns: the admission behaviours the swarm composes, the ban policy (pure),
//! and the bounded channel refusals are reported on.
//! Must never: refuse our own outbound dials for want of room, block whoever
//! reports a refusal, or keep state that grows with remote input.

mod bans;
mod per_ip;

pub use bans::BanConfig;
pub(crate) use bans::{BanChange, Bans};
use libp2p::PeerId;
use p2p_protocol::{ErrorCode, RemoteError};
use p2p_service::FaultReporter;
pub(crate) use per_ip::PerIpLimit;
use tokio::sync::mpsc;

/// Refusals waiting for the swarm task; more are dropped (a flood reports plenty).
const REFUSAL_CAPACITY: usize = 1024;

/// Where the request paths (1.0.0 and 2.0.0) report the requests they refused.
#[derive(Debug, Clone)]
pub(crate) struct Refusals {
    tx: mpsc::Sender<PeerId>,
}

impl Refusals {
    pub(crate) fn channel() -> (Self, mpsc::Receiver<PeerId>) {
        let (tx, rx) = mpsc::channel(REFUSAL_CAPACITY);
        (Self { tx }, rx)
    }

    /// Notes `result`, an answer of the transport itself (not of the
    /// service), if it refuses `peer` for its bytes: bad or oversized input
    /// (400, 413). Never waits.
    pub(crate) fn note<T>(&self, peer: PeerId, result: &Result<T, RemoteError>) {
        if let Err(err) = result
            && [ErrorCode::BAD_REQUEST, ErrorCode::TOO_LARGE].contains(&err.code)
        {
            let _ = self.tx.try_send(peer);
        }
    }

    /// Where the service stack reports the refusals a peer caused (its own
    /// rate, its own in-flight share, 400, 413: see `p2p_service::PeerFault`),
    /// set on each `PeerContext`. A 503 of the node-wide limit or of the
    /// handler's back-pressure is never reported, so it never bans: a peer
    /// is punished for what it did, not for a node someone else filled.
    /// Never waits.
    pub(crate) fn fault_reporter(&self) -> FaultReporter {
        let tx = self.tx.clone();
        FaultReporter::new(move |peer, _fault| {
            let _ = tx.try_send(peer);
        })
    }
}
