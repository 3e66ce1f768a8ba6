//! Whether an address needs an AutoNAT dial-back to be confirmed: a pure
//! policy, events in, a yes or no out.
//!
//! A claim is not a proof. A peer that merely *lists*
//! `/libp2p/autonat/2/dial-request` in identify costs nothing to forge, and
//! a real server may refuse every dial-back (rightly: go-libp2p's refuses
//! private addresses on a LAN); either would leave a LAN node with no
//! confirmed address, private, a DHT client, for as long as it ran. So
//! dial-backs are required only while a server *whose word counts* is
//! connected, and for `lapse` (the external address TTL) after the last one
//! left (a relay restart does not open a window in which observers alone
//! confirm a NAT mapping). A server's word counts when:
//!
//! - **it dialed us back** (a successful dial-back test: libp2p's client
//!   reports success only once the nonce came back on a connection the
//!   server opened to the tested address). A *failed* test does not count:
//!   the wire cannot tell "I dialed and could not reach you" from "I
//!   refused" (our own server's refusal of a foreign target comes out as the
//!   same dial error) or from a lie, so a server that refuses every
//!   dial-back never switches the rule on; or
//! - **it is a `--bootstrap` peer that lists the protocol**: the operator
//!   vouches for it. This keeps a node behind NAT from confirming its NAT
//!   mapping from observers when its bootstrap server honestly fails to
//!   reach it (a dial-back that never succeeds proves nothing otherwise).

use std::collections::HashMap;
use std::time::Duration;

use libp2p::PeerId;
use tokio::time::Instant;

/// Servers whose word counts, remembered at once; a disconnected one makes room.
const MAX_SERVERS: usize = 32;

#[derive(Debug, Clone, Copy)]
struct Server {
    connected: bool,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct DialBackRule {
    lapse: Duration,
    /// Servers that dialed us back, or bootstrap peers listing AutoNAT.
    servers: HashMap<PeerId, Server>,
    /// When the last connected one of them left, while none is connected.
    last_left: Option<Instant>,
}

impl DialBackRule {
    /// The requirement outlives the last server by `lapse`.
    pub(crate) fn new(lapse: Duration) -> Self {
        Self { lapse, servers: HashMap::new(), last_left: None }
    }

    /// Identify of `peer`: it lists the AutoNAT v2 server protocol
    /// (`lists_autonat`) and is one of our bootstrap peers (`bootstrap`).
    /// Only both together make its word count.
    pub(crate) fn on_identify(&mut self, peer: PeerId, lists_autonat: bool, bootstrap: bool) {
        if lists_autonat && bootstrap {
            self.trust(peer);
        }
    }

    /// `server` dialed us back successfully: its word counts from now on.
    pub(crate) fn on_dialed_back(&mut self, server: PeerId) {
        self.trust(server);
    }

    fn trust(&mut self, peer: PeerId) {
        if !self.servers.contains_key(&peer) && self.servers.len() >= MAX_SERVERS {
            let Some(gone) = self.servers.iter().find(|(_, s)| !s.connected).map(|(p, _)| *p) else {
                return; // all connected: the rule is on anyway
            };
            self.servers.remove(&gone);
        }
        self.servers.insert(peer, Server { connected: true });
        self.last_left = None;
    }

    /// `peer` has a connection again: a server whose word counted counts again.
    pub(crate) fn on_connected(&mut self, peer: &PeerId) {
        if let Some(server) = self.servers.get_mut(peer) {
            server.connected = true;
            self.last_left = None;
        }
    }

    /// `peer`'s last connection closed at `now`.
    pub(crate) fn on_disconnected(&mut self, peer: &PeerId, now: Instant) {
        if let Some(server) = self.servers.get_mut(peer)
            && server.connected
        {
            server.connected = false;
            if !self.servers.values().any(|s| s.connected) {
                self.last_left = Some(now);
            }
        }
    }

    /// Whether an address needs a dial-back at `now`.
    pub(crate) fn required(&self, now: Instant) -> bool {
        self.servers.values().any(|s| s.connected)
            || self.last_left.is_some_and(|left| now.saturating_duration_since(left) < self.lapse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_only_lists_the_protocol_never_switches_it_on() {
        let mut rule = DialBackRule::new(TTL);
        let claimer = PeerId::random();
        rule.on_identify(claimer, true, false);
        rule.on_connected(&claimer);
        assert!(!rule.required(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_dialed_us_back_switches_it_on_until_the_lapse_after_it_left() {
        let mut rule = DialBackRule::new(TTL);
        let server = PeerId::random();
        rule.on_identify(server, true, false);
        assert!(!rule.required(Instant::now()), "a claim");
        rule.on_dialed_back(server);
        assert!(rule.required(Instant::now()), "a proof");
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(rule.required(Instant::now()), "for as long as it is connected");

        rule.on_disconnected(&server, Instant::now());
        tokio::time::advance(TTL - Duration::from_millis(1)).await;
        assert!(rule.required(Instant::now()), "within the lapse");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!rule.required(Instant::now()), "lapsed");

        // It comes back: its word counts again, with no new test (AutoNAT
        // never retests an address).
        rule.on_connected(&server);
        assert!(rule.required(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_bootstrap_server_counts_on_its_listing_and_a_restart_opens_no_window() {
        let mut rule = DialBackRule::new(TTL);
        let relay = PeerId::random();
        rule.on_identify(relay, false, true);
        assert!(!rule.required(Instant::now()), "a bootstrap peer with no AutoNAT server");
        rule.on_identify(relay, true, true);
        assert!(rule.required(Instant::now()));
        rule.on_disconnected(&relay, Instant::now());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(rule.required(Instant::now()), "restarting");
        rule.on_connected(&relay);
        tokio::time::advance(TTL * 2).await;
        assert!(rule.required(Instant::now()), "back");
    }

    #[tokio::test(start_paused = true)]
    async fn the_lapse_runs_from_the_last_server_that_left() {
        let mut rule = DialBackRule::new(TTL);
        let (a, b) = (PeerId::random(), PeerId::random());
        rule.on_dialed_back(a);
        rule.on_dialed_back(b);
        rule.on_disconnected(&a, Instant::now());
        tokio::time::advance(TTL * 2).await;
        assert!(rule.required(Instant::now()), "b is still connected");
        rule.on_disconnected(&b, Instant::now());
        tokio::time::advance(TTL - Duration::from_secs(1)).await;
        assert!(rule.required(Instant::now()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!rule.required(Instant::now()));
        rule.on_disconnected(&PeerId::random(), Instant::now());
        assert!(!rule.required(Instant::now()), "strangers leaving change nothing");
    }

    #[tokio::test(start_paused = true)]
    async fn servers_remembered_are_bounded() {
        let mut rule = DialBackRule::new(TTL);
        for _ in 0..MAX_SERVERS * 4 {
            let server = PeerId::random();
            rule.on_dialed_back(server);
            rule.on_disconnected(&server, Instant::now());
        }
        assert!(rule.servers.len() <= MAX_SERVERS);
        let connected: Vec<PeerId> = (0..MAX_SERVERS * 2).map(|_| PeerId::random()).collect();
        for server in &connected {
            rule.on_dialed_back(*server);
        }
        assert!(rule.servers.len() <= MAX_SERVERS);
        assert!(rule.required(Instant::now()));
    }
}
