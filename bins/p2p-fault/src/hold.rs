//! `p2p-fault hold`: a crowd of idle inbound connections. `--connections`
//! QUIC connections to the target, each from a fresh identity (a bare swarm
//! that speaks nothing), from the `--bind` addresses in turn, `--concurrency`
//! dials at a time; once every dial has ended they are held, idle, for
//! `--hold`, then dropped. What the target must do is keep within its
//! connection budget and keep room for its own dials.
//!
//! A connection counts as *held* while it is up. The target refuses one of
//! two ways, depending on how far the QUIC handshake had got on our side:
//! the dial fails (*failed*, counted by reason), or the connection is up for
//! us and the target closes it at once (*closed at once*: within
//! [`REFUSED_WITHIN`] of being established). When the
//! ramp-up is over it prints `RAMPED held=<n> ...` (flushed), so a script can
//! act while the crowd is in place; with `--json` it ends with one JSON line.
//!
//! Binding a source address works for QUIC only: the socket a QUIC
//! connection is dialed from is the swarm's listening socket, bound to the
//! `--bind` address (libp2p's TCP binds `0.0.0.0` when it reuses a port).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use p2p_transport::libp2p::identity::Keypair;
use p2p_transport::libp2p::multiaddr::Protocol;
use p2p_transport::libp2p::swarm::{SwarmEvent, dummy};
use p2p_transport::libp2p::{Multiaddr, SwarmBuilder};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::{HoldArgs, json_key, round};

/// A connection the target closes this soon after it was established was refused.
const REFUSED_WITHIN: Duration = Duration::from_secs(2);

/// How long one dial (listening socket, handshake) may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(20);

/// The counts, shared by the connection tasks.
#[derive(Debug, Default)]
struct Crowd {
    established: u64,
    /// Closed by the target within [`REFUSED_WITHIN`] of being established.
    closed_at_once: u64,
    /// Closed later (idle timeout, error).
    closed_later: u64,
    /// Failed dials, by reason.
    failed: BTreeMap<String, u64>,
    /// Held now, by source address.
    held: BTreeMap<IpAddr, u64>,
}

impl Crowd {
    fn held(&self) -> u64 {
        self.held.values().sum()
    }

    fn max_per_ip(&self) -> u64 {
        self.held.values().copied().max().unwrap_or(0)
    }
}

/// The JSON line of `hold --json`.
#[derive(Serialize)]
struct HoldJson {
    attempted: u64,
    established: u64,
    closed_at_once: u64,
    failed: u64,
    closed_later: u64,
    held_after_ramp: u64,
    max_per_ip_after_ramp: u64,
    held_at_end: u64,
    ramp_s: f64,
    held_s: f64,
    /// `failed.<reason>`.
    #[serde(flatten)]
    failures: BTreeMap<String, Value>,
}

pub(crate) async fn run(args: HoldArgs) -> Result<()> {
    let peer = p2p_load::target_peer(&args.target)
        .with_context(|| format!("{} does not end with /p2p/<peer-id>", args.target))?;
    if !args.target.iter().any(|p| matches!(p, Protocol::QuicV1)) {
        bail!("hold dials QUIC only (a --bind address is the QUIC socket's): {}", args.target);
    }
    let binds: Vec<IpAddr> = if args.bind.is_empty() { vec!["0.0.0.0".parse()?] } else { args.bind.clone() };
    eprintln!(
        "p2p-fault: {} connections to {peer} from {} address(es), {} dials at a time, held {}",
        args.connections,
        binds.len(),
        args.concurrency,
        humantime::format_duration(args.hold)
    );
    let crowd = Arc::new(Mutex::new(Crowd::default()));
    let dials = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let (stop_tx, stop) = watch::channel(false);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    let (ramped_tx, mut ramped) = tokio::sync::mpsc::channel::<()>(args.connections.max(1) as usize);
    for i in 0..args.connections {
        let bind = binds[i as usize % binds.len()];
        let (target, crowd, dials, stop) =
            (args.target.clone(), Arc::clone(&crowd), Arc::clone(&dials), stop.clone());
        let ramped = ramped_tx.clone();
        tasks.spawn(async move { hold_one(target, bind, crowd, dials, stop, ramped).await });
    }
    drop(ramped_tx);
    // The ramp is over when every dial has ended (each task reports once).
    let mut ended = 0;
    let mut next_progress = Instant::now() + Duration::from_secs(5);
    while ended < args.connections {
        tokio::select! {
            one = ramped.recv() => match one {
                Some(()) => ended += 1,
                None => break,
            },
            _ = tokio::time::sleep_until(next_progress) => {
                let c = crowd.lock().expect("crowd lock");
                eprintln!(
                    "p2p-fault: {ended} dials ended in {:.1} s: {} held, {} closed at once, {} failed",
                    started.elapsed().as_secs_f64(), c.held(), c.closed_at_once, c.failed.values().sum::<u64>()
                );
                next_progress += Duration::from_secs(5);
            }
        }
    }
    // Connections closed at once close within REFUSED_WITHIN: let them.
    tokio::time::sleep(REFUSED_WITHIN).await;
    let ramp = started.elapsed();
    let (held_after_ramp, max_per_ip) = {
        let c = crowd.lock().expect("crowd lock");
        (c.held(), c.max_per_ip())
    };
    {
        let c = crowd.lock().expect("crowd lock");
        println!(
            "RAMPED held={held_after_ramp} max_per_ip={max_per_ip} established={} closed_at_once={} failed={} in {:.1} s",
            c.established,
            c.closed_at_once,
            c.failed.values().sum::<u64>(),
            ramp.as_secs_f64()
        );
    }
    let held_from = Instant::now();
    tokio::time::sleep(args.hold).await;
    let held_for = held_from.elapsed();
    let held_at_end = crowd.lock().expect("crowd lock").held();
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}

    let c = std::mem::take(&mut *crowd.lock().expect("crowd lock"));
    let result = HoldJson {
        attempted: args.connections,
        established: c.established,
        closed_at_once: c.closed_at_once,
        failed: c.failed.values().sum(),
        closed_later: c.closed_later,
        held_after_ramp,
        max_per_ip_after_ramp: max_per_ip,
        held_at_end,
        ramp_s: round(ramp.as_secs_f64(), 3),
        held_s: round(held_for.as_secs_f64(), 3),
        failures: c.failed.iter().map(|(why, n)| (json_key(&format!("failed.{why}")), (*n).into())).collect(),
    };
    println!(
        "hold: {} connections attempted, {} established, {} closed at once, {} failed {:?}; \
         {} held after the ramp-up ({:.1} s, at most {} from one address), {} still held after {:.1} s, {} closed later",
        result.attempted,
        result.established,
        result.closed_at_once,
        result.failed,
        c.failed,
        result.held_after_ramp,
        result.ramp_s,
        result.max_per_ip_after_ramp,
        result.held_at_end,
        result.held_s,
        result.closed_later
    );
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    }
    Ok(())
}

/// One connection from `bind`, held until `stop`. Reports on `ramped` once its dial has ended.
async fn hold_one(
    target: Multiaddr,
    bind: IpAddr,
    crowd: Arc<Mutex<Crowd>>,
    dials: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    ramped: tokio::sync::mpsc::Sender<()>,
) {
    let failed = |why: String| {
        *crowd.lock().expect("crowd lock").failed.entry(why).or_default() += 1;
    };
    let permit = dials.acquire_owned().await.expect("never closed");
    let mut swarm = match SwarmBuilder::with_existing_identity(Keypair::generate_ed25519())
        .with_tokio()
        .with_quic()
        .with_behaviour(|_| dummy::Behaviour)
    {
        // The target's idle timeout, not ours, decides when an idle connection goes.
        Ok(builder) => {
            builder.with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600))).build()
        }
        Err(err) => {
            failed(format!("swarm: {err}"));
            let _ = ramped.send(()).await;
            return;
        }
    };
    let listen = Multiaddr::from(bind).with(Protocol::Udp(0)).with(Protocol::QuicV1);
    if let Err(err) = swarm.listen_on(listen) {
        failed(format!("listen: {err}"));
        let _ = ramped.send(()).await;
        return;
    }
    let deadline = Instant::now() + DIAL_TIMEOUT;
    let mut dialed = false;
    let mut permit = Some(permit);
    let mut established_at: Option<Instant> = None;
    let mut report = Some(ramped);
    let mut end_dial = |report: &mut Option<tokio::sync::mpsc::Sender<()>>| {
        permit.take();
        if let Some(tx) = report.take() {
            let _ = tx.try_send(());
        }
    };
    loop {
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { .. } if !dialed => {
                    dialed = true;
                    if let Err(err) = swarm.dial(target.clone()) {
                        failed(format!("dial: {err}"));
                        end_dial(&mut report);
                        return;
                    }
                }
                SwarmEvent::ConnectionEstablished { .. } => {
                    established_at = Some(Instant::now());
                    let mut c = crowd.lock().expect("crowd lock");
                    c.established += 1;
                    *c.held.entry(bind).or_default() += 1;
                    drop(c);
                    end_dial(&mut report);
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    let text = error.to_string();
                    let key = reason(&text);
                    if !crowd.lock().expect("crowd lock").failed.contains_key(&key) {
                        eprintln!("p2p-fault: a dial failed ({key}): {}", text.split_whitespace().collect::<Vec<_>>().join(" "));
                    }
                    failed(key);
                    end_dial(&mut report);
                    return;
                }
                SwarmEvent::ConnectionClosed { .. } => {
                    let mut c = crowd.lock().expect("crowd lock");
                    if let Some(held) = c.held.get_mut(&bind) {
                        *held = held.saturating_sub(1);
                    }
                    match established_at {
                        Some(at) if at.elapsed() <= REFUSED_WITHIN => c.closed_at_once += 1,
                        _ => c.closed_later += 1,
                    }
                    return;
                }
                _ => {}
            },
            _ = tokio::time::sleep_until(deadline), if report.is_some() => {
                failed("timeout".into());
                end_dial(&mut report);
                return;
            }
            _ = stop.wait_for(|s| *s) => {
                if established_at.is_some() {
                    // Held to the end: dropping the swarm closes it.
                } else {
                    end_dial(&mut report);
                }
                return;
            }
        }
    }
}

/// A dial error as a short counter key: its last line's gist, without addresses or ids.
fn reason(error: &str) -> String {
    let lower = error.to_lowercase();
    for (needle, key) in [
        ("denied", "denied"),
        ("handshake", "handshake"),
        ("timed out", "timeout"),
        ("timeout", "timeout"),
        ("refused", "refused"),
        ("closed", "closed"),
        ("reset", "reset"),
    ] {
        if lower.contains(needle) {
            return key.into();
        }
    }
    "other".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_errors_become_short_keys() {
        assert_eq!(
            reason(
                "Failed to negotiate transport protocol(s): [(/ip4/1.2.3.4/udp/1/quic-v1: Handshake with the remote timed out.)]"
            ),
            "handshake"
        );
        assert_eq!(reason("connection closed by peer: ApplicationClosed"), "closed");
        assert_eq!(reason("something else"), "other");
    }

    #[test]
    fn the_crowd_counts_what_it_holds() {
        let mut crowd = Crowd::default();
        crowd.held.insert("10.0.0.1".parse().unwrap(), 3);
        crowd.held.insert("10.0.0.2".parse().unwrap(), 5);
        assert_eq!((crowd.held(), crowd.max_per_ip()), (8, 5));
    }
}
