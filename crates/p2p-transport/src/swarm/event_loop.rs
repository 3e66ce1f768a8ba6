//! The event loop: the only owner of the `Swarm`. It dispatches; the
//! concerns decide.
//!
//! **Architecture Invariant:** this task never awaits a handler. Inbound
//! requests never reach it: each inbound stream is served by a task of its
//! own, spawned by its connection's handler (see `inbound`).

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::{PeerId, StreamProtocol};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Mount, NodeSwarm, Shared};
use crate::NodeConfig;
use crate::addresses::{AddressBook, Due};
use crate::command::Command;
use crate::discovery::Announced;
use crate::events::Reporter;
use crate::gate::Bans;
use crate::outbound::{Dials, MuxParts};
use crate::peers::{Lifecycle, PeerTable};
use crate::shutdown::Shutdown;

mod events;
mod listen_first;
mod reach;

/// At most this many queued commands are taken per wake-up, so the swarm
/// itself is still polled often under load.
const BATCH: usize = 64;

/// Announcements from the js-style mDNS listener waiting for the swarm task.
const ANNOUNCED_CAPACITY: usize = 64;

pub(super) struct EventLoop {
    swarm: NodeSwarm,
    commands: mpsc::Receiver<Command>,
    /// False once every handle is gone (the channel then only says `None`).
    commands_open: bool,
    reporter: Reporter,
    peers: PeerTable,
    lifecycle: Lifecycle,
    /// The lifecycle's counts as last reported (snapshot, metrics).
    lifecycle_health: crate::PeerLifecycle,
    /// The mounted protocols, in mount order (their index is their bit in the peer table).
    mounts: Vec<Mount>,
    /// Each mounted protocol's one-request name → its index.
    mount_by_name: HashMap<StreamProtocol, usize>,
    dials: Dials,
    addresses: AddressBook,
    shutdown: Shutdown,
    listeners: Vec<ListenerId>,
    /// What each protocol's pipelined clients are made of.
    mux_parts: MuxParts,
    /// Serve and use the pipelined names.
    pipelining: bool,
    bans: Bans,
    /// The node's runtime: the pipelined streams' tasks are spawned on it.
    runtime: Handle,
    refusals: mpsc::Receiver<PeerId>,
    /// Peers announced in mDNS *answers* (js-libp2p's way); closed without mDNS.
    announced: mpsc::Receiver<Announced>,
    /// Its listener's sender and query interval, until the listener starts
    /// (once our own listeners have reported: see `listen_first`).
    announcer: Option<(mpsc::Sender<Announced>, Duration)>,
    /// The DHT, relay reservations, lookups, reachability.
    reach: crate::reach::Policy,
    #[cfg(feature = "metrics")]
    metrics: Option<crate::NodeMetrics>,
}

impl EventLoop {
    pub(super) fn new(
        mut swarm: NodeSwarm,
        config: &NodeConfig,
        listeners: Vec<ListenerId>,
        Shared { commands, reporter, mounts, refusals, observations, observations_tx, shutdown, runtime }: Shared,
        #[cfg(feature = "metrics")] metrics: Option<crate::NodeMetrics>,
    ) -> Self {
        let mux_parts = MuxParts {
            control: swarm.behaviour().streams.new_control(),
            request_timeout: config.request_timeout,
            observations: observations_tx,
            wakers: swarm.behaviour().acceptor.wakers(),
            runtime: runtime.clone(),
        };
        let addresses = AddressBook::new(config.external.clone(), &mut swarm, reporter.clone(), observations);
        let peers = PeerTable::new(mounts.iter().map(|m| m.peers.clone()).collect());
        let mount_by_name = mounts.iter().enumerate().map(|(i, m)| (m.name.clone(), i)).collect();
        // Peers announced the js-libp2p way, which libp2p-mdns does not hear.
        let (announced_tx, announced) = mpsc::channel(ANNOUNCED_CAPACITY);
        let announcer = config.mdns.then_some((announced_tx, super::build::MDNS_QUERY_INTERVAL));
        let local = *swarm.local_peer_id();
        Self {
            swarm,
            commands,
            commands_open: true,
            reporter,
            peers,
            lifecycle: Lifecycle::new(local),
            lifecycle_health: crate::PeerLifecycle::default(),
            mounts,
            mount_by_name,
            dials: Dials::default(),
            addresses,
            shutdown,
            listeners,
            mux_parts,
            pipelining: config.greet_v2,
            bans: Bans::new(config.bans.clone()),
            runtime,
            refusals,
            announced,
            announcer,
            reach: crate::reach::Policy::new(config),
            #[cfg(feature = "metrics")]
            metrics,
        }
    }

    pub(super) async fn run(mut self) {
        self.start_reach();
        self.listen_first().await;
        if let Some((announced, interval)) = self.announcer.take() {
            self.runtime.spawn(crate::discovery::listen_mdns_answers(announced, interval));
        }
        // One timer for every policy's next deadline, moved only when the
        // earliest one changes: no fresh timer per event.
        let mut timer = Timer::new();
        loop {
            timer.arm(self.next_due());
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv(), if self.commands_open => match command {
                    Some(command) => {
                        self.on_command(command);
                        for _ in 0..BATCH {
                            let Ok(command) = self.commands.try_recv() else { break };
                            self.on_command(command);
                        }
                    }
                    // Every handle is gone: nobody can use the node any more.
                    None => {
                        self.commands_open = false;
                        self.begin_shutdown(None);
                    }
                },
                due = self.addresses.next_due() => match due {
                    Due::Observation(peer, observed) => self.observe(peer, observed),
                    Due::Expiry => {
                        self.refresh_dial_back_rule();
                        self.addresses.expire(&mut self.swarm);
                        self.update_reachability(false);
                    }
                },
                () = timer.fired() => self.on_timer(),
                Some((peer_id, addresses)) = self.announced.recv() => self.on_discovered(peer_id, addresses),
                Some(peer) = self.refusals.recv() => {
                    // A flood's refusals come in bursts: up to a batch per wake-up.
                    let now = Instant::now();
                    self.on_refused(peer, now);
                    for _ in 0..BATCH {
                        let Ok(peer) = self.refusals.try_recv() else { break };
                        self.on_refused(peer, now);
                    }
                }
                // Wakes the loop when the last inbound stream has finished draining.
                () = self.shutdown.streams_done(), if self.shutdown.is_draining() => {}
                () = self.shutdown.grace_over() => {
                    warn!(streams = self.shutdown.streams_left(), "shutdown grace period over; dropping unanswered requests");
                    break;
                }
            }
            self.report_lifecycle();
            if self.shutdown.drained() {
                break;
            }
        }
        for mount in &self.mounts {
            mount.muxes.clear();
            if let Some(server) = &mount.server {
                server.clear();
            }
        }
        self.peers.clear();
        self.shutdown.finish(&mut self.swarm, self.listeners).await;
    }

    /// Until every listener has reported an address (or closed), only the
    /// swarm is polled and its other events are held: see `listen_first`.
    async fn listen_first(&mut self) {
        let mut start = listen_first::ListenFirst::new(self.listeners.iter().copied());
        let give_up = tokio::time::sleep(listen_first::LISTEN_WAIT);
        tokio::pin!(give_up);
        while !start.done() {
            tokio::select! {
                event = self.swarm.select_next_some() => {
                    if let Some(event) = start.take(event) {
                        self.on_swarm_event(event);
                    }
                }
                () = &mut give_up => {
                    warn!("listeners still silent after {:?}; going on", listen_first::LISTEN_WAIT);
                    break;
                }
            }
        }
        for event in start.release() {
            self.on_swarm_event(event);
        }
    }

    // ---- timers ---------------------------------------------------------

    /// The earliest of the policies' next deadlines (each kept by its
    /// policy, none found by a scan here).
    fn next_due(&self) -> Option<Instant> {
        [self.reach.next_due(), self.lifecycle.next_due(), self.bans.next_due()].into_iter().flatten().min()
    }

    fn on_refused(&mut self, peer: PeerId, now: Instant) {
        if let Some(change) = self.bans.on_refused(peer, now) {
            self.apply_ban(change);
        }
    }

    /// The timer fired: each policy whose deadline has come does its work.
    fn on_timer(&mut self) {
        let now = Instant::now();
        if self.reach.next_due().is_some_and(|at| at <= now) {
            self.on_reach_due();
        }
        if self.lifecycle.next_due().is_some_and(|at| at <= now) {
            for decision in self.lifecycle.due(now) {
                self.apply(decision);
            }
        }
        if self.bans.next_due().is_some_and(|at| at <= now) {
            for change in self.bans.due(now) {
                self.apply_ban(change);
            }
        }
    }

    // ---- commands -------------------------------------------------------

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Shutdown { reply } => self.begin_shutdown(Some(reply)),
            command if self.shutdown.is_draining() => refuse(command),
            Command::Request { peer, request } => {
                // Identify said the peer does not speak it: no stream is tried.
                let mount = self.mount_by_name.get(&request.protocol);
                if mount.is_some_and(|mount| self.peers.speaks(&peer, *mount) == Some(false)) {
                    let _ = request.reply.send(Err(crate::RequestError::UnsupportedProtocol));
                    return;
                }
                self.swarm.behaviour_mut().opener.send(peer, request);
            }
            Command::Dial { address, reply } => match reach::bare_peer(&address) {
                Some(peer) => {
                    self.find_peer(peer, None);
                    let _ = reply.send(Ok(()));
                }
                None => {
                    let _ = reply.send(self.dials.dial(&mut self.swarm, address));
                }
            },
            Command::Connect { address, reply } => match reach::bare_peer(&address) {
                Some(peer) => self.find_peer(peer, Some(reply)),
                None => self.dials.connect(&mut self.swarm, address, reply),
            },
        }
    }

    fn begin_shutdown(&mut self, reply: Option<tokio::sync::oneshot::Sender<()>>) {
        if self.shutdown.begin(reply) {
            info!(streams = self.shutdown.streams_left(), "shutting down");
            // Listeners stay up while draining; new requests are answered 503.
            self.swarm.behaviour_mut().opener.shut_down();
            self.dials.shut_down();
            self.shut_down_reach();
        }
    }
}

/// What a draining node answers to every command.
fn refuse(command: Command) {
    use crate::RequestError::Shutdown;
    match command {
        Command::Request { request, .. } => drop(request.reply.send(Err(Shutdown))),
        Command::Dial { reply, .. } => drop(reply.send(Err(Shutdown))),
        Command::Connect { reply, .. } => drop(reply.send(Err(Shutdown))),
        // Never refused: `on_command` adds its caller to the drain's waiters.
        Command::Shutdown { .. } => {}
    }
}

/// One `Sleep` for the whole loop, reset only when the deadline it waits
/// for changes (a reset re-registers the timer; an unchanged one is free).
struct Timer {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// What `sleep` waits for; `None`: nothing (it never fires).
    armed: Option<Instant>,
}

impl Timer {
    fn new() -> Self {
        // (Never polled while unarmed.)
        Self { sleep: Box::pin(tokio::time::sleep(Duration::ZERO)), armed: None }
    }

    fn arm(&mut self, at: Option<Instant>) {
        if at != self.armed {
            if let Some(at) = at {
                self.sleep.as_mut().reset(at);
            }
            self.armed = at;
        }
    }

    /// Resolves when the armed deadline has come (then it is disarmed:
    /// the next `arm` sets it again); never while nothing is armed.
    async fn fired(&mut self) {
        if self.armed.is_none() {
            return std::future::pending().await;
        }
        self.sleep.as_mut().await;
        self.armed = None;
    }
}
