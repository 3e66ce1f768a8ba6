//! Our external addresses: what peers say they see us at is a candidate,
//! confirmed only when enough of them agree, and then announced (identify
//! carries the swarm's external addresses).
//!
//! Owns: [`ExternalAddresses`] (the pure policy) and its glue to the swarm:
//! candidates from identify, from 1.0.0 answers and (over a bounded channel)
//! from the pipelined streams; expiry; the `EXTERNAL` events.
//! Must never: take one peer's word for our address, or hold memory that
//! grows with what peers say rather than with how many peers there are.

mod external;

use std::time::Duration;

pub use external::{
    ADDRS_PER_ORIGIN, ExternalAddrChange, ExternalAddrConfig, ExternalAddresses, MAX_CONFIRMED,
    MAX_DIALED_BACK, MAX_ORIGINS,
};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tracing::info;

use crate::events::{NodeEvent, Reporter};

/// Observed addresses from v2 answers waiting for the swarm task; more are dropped.
const OBSERVATION_CAPACITY: usize = 256;

/// A peer's report of our address, sent by tasks other than the swarm task.
pub(crate) type Observation = (PeerId, Multiaddr);

/// Where tasks other than the swarm task (the clients' answers, the
/// pipelined streams) send what peers observed, to the [`AddressBook`].
pub(crate) fn observation_channel() -> (mpsc::Sender<Observation>, mpsc::Receiver<Observation>) {
    mpsc::channel(OBSERVATION_CAPACITY)
}

/// See [`AddressBook::next_due`].
pub(crate) enum Due {
    /// A peer's report of our address, from a pipelined stream.
    Observation(PeerId, Multiaddr),
    /// Time to drop stale reports.
    Expiry,
}

/// The swarm task's side of external addresses.
pub(crate) struct AddressBook {
    external: ExternalAddresses,
    observations: mpsc::Receiver<Observation>,
    expiry: Interval,
    reporter: Reporter,
}

impl AddressBook {
    /// Confirms the operator's addresses on `swarm` at once.
    pub(crate) fn new<B: NetworkBehaviour>(
        config: ExternalAddrConfig,
        swarm: &mut Swarm<B>,
        reporter: Reporter,
        observations: mpsc::Receiver<Observation>,
    ) -> Self {
        let tick = (config.ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
        let mut expiry = tokio::time::interval(tick);
        expiry.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let external = ExternalAddresses::new(config);
        for addr in external.confirmed() {
            swarm.add_external_address(addr.clone());
        }
        let confirmed: Vec<Multiaddr> = external.confirmed().cloned().collect();
        reporter.update(|s| s.external_addrs = confirmed);
        Self { external, observations, expiry, reporter }
    }

    /// What is due next: a report from another task, or expiry (cancel-safe,
    /// for the swarm task's `select!`).
    pub(crate) async fn next_due(&mut self) -> Due {
        tokio::select! {
            // Never `None` while the swarm task runs: its pipelined clients' parts hold a sender.
            Some((peer, observed)) = self.observations.recv() => Due::Observation(peer, observed),
            _ = self.expiry.tick() => Due::Expiry,
        }
    }

    /// A peer connected to us from `observer` says it sees us at `observed`.
    pub(crate) fn observe<B: NetworkBehaviour>(
        &mut self,
        swarm: &mut Swarm<B>,
        observer: &Multiaddr,
        observed: Multiaddr,
    ) {
        if let Some(change) = self.external.observe(observer, observed, Instant::now()) {
            self.apply(swarm, change);
        }
    }

    /// We listen on `addr` (a concrete address): candidates on its port count.
    pub(crate) fn add_listener(&mut self, addr: &Multiaddr) {
        self.external.add_listener(addr);
    }

    pub(crate) fn remove_listener(&mut self, addr: &Multiaddr) {
        self.external.remove_listener(addr);
    }

    /// While an AutoNAT server whose word counts is connected (and a TTL
    /// after), addresses need its dial-back too.
    pub(crate) fn require_dial_back(&mut self, required: bool) {
        self.external.require_dial_back(required);
    }

    /// An AutoNAT server dialed us back at `addr`.
    pub(crate) fn dial_back_succeeded<B: NetworkBehaviour>(
        &mut self,
        swarm: &mut Swarm<B>,
        addr: &Multiaddr,
    ) {
        if let Some(change) = self.external.dial_back_succeeded(addr, Instant::now()) {
            self.apply(swarm, change);
        }
    }

    /// We have a confirmed external address (operator-given ones included).
    pub(crate) fn has_confirmed(&self) -> bool {
        self.external.confirmed().next().is_some()
    }

    pub(crate) fn expire<B: NetworkBehaviour>(&mut self, swarm: &mut Swarm<B>) {
        for change in self.external.expire(Instant::now()) {
            self.apply(swarm, change);
        }
    }

    fn apply<B: NetworkBehaviour>(&mut self, swarm: &mut Swarm<B>, change: ExternalAddrChange) {
        match change {
            ExternalAddrChange::Confirmed(address) => {
                info!(%address, "external address confirmed");
                swarm.add_external_address(address.clone());
                self.reporter.update(|s| s.external_addrs.push(address.clone()));
                self.reporter.emit(NodeEvent::ExternalAddrConfirmed { address });
            }
            ExternalAddrChange::Expired(address) => {
                info!(%address, "external address expired");
                swarm.remove_external_address(&address);
                self.reporter.update(|s| s.external_addrs.retain(|a| a != &address));
                self.reporter.emit(NodeEvent::ExternalAddrExpired { address });
            }
        }
    }
}
