//! `p2p-fault hoard`: memory for bytes never sent. `--connections`
//! connections to the target (QUIC or TCP/Yamux, by its address), each from
//! a fresh identity on this host's one address; on each, as many greet
//! 1.0.0 streams as the node lets it hold (up to `--streams`), each carrying
//! only a length prefix that declares a full frame (64 KiB: three bytes) and
//! then held, unread and unfinished, until the node ends it (its request
//! timeout, a reset). Stops after `--duration`.
//!
//! A connection ramps up one stream at a time, and stops at the first the
//! node refuses (an open that fails or waits past [`OPEN_TIMEOUT`], a
//! stream ended within [`AT_ONCE`] of being opened): that is the node's cap,
//! and going past it would only get the connection reset (Yamux). A stream
//! that was held and then ended by the node is opened again after
//! `--reopen`; a closed connection is dialed again after a second.
//!
//! What the node must do: spend on each held stream what its three bytes
//! paid for, not the 64 KiB they declared, cap the streams of a connection,
//! and keep answering everyone else. The node's memory is the script's to
//! read (`scripts/faults-netns.sh`, scenario "hoard"); this counts what it
//! was made to hold: `held_max` streams at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use futures::{AsyncReadExt, AsyncWriteExt};
use p2p_load::RawPeer;
use p2p_protocol::{MAX_FRAME_LEN, PROTOCOL_NAME, uvarint};
use p2p_transport::libp2p::{self, Multiaddr, PeerId, StreamProtocol};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::{HoardArgs, round};

/// How long opening one stream may take (QUIC makes an opener wait for a
/// stream the node allows).
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A stream the node ends this soon after it was opened was refused.
const AT_ONCE: Duration = Duration::from_secs(1);

/// How long to wait before dialing again a connection the node closed.
const REDIAL: Duration = Duration::from_secs(1);

/// How often the connection task looks whether its connection closed.
const CHECK: Duration = Duration::from_millis(200);

/// The counts, shared by every task.
#[derive(Default)]
struct Counts {
    connects: AtomicU64,
    connect_failed: AtomicU64,
    connections_closed: AtomicU64,
    opened: AtomicU64,
    open_failed: AtomicU64,
    /// Streams the node ended (answered, closed, reset) after holding them.
    ended: AtomicU64,
    /// Streams the node refused (ended at once, or an open that failed) on ramping up.
    refused: AtomicU64,
    held: AtomicU64,
    held_max: AtomicU64,
}

/// One held stream: counted while it lives.
struct Held<'a>(&'a Counts);

impl<'a> Held<'a> {
    fn new(counts: &'a Counts) -> Self {
        let now = counts.held.fetch_add(1, Ordering::Relaxed) + 1;
        counts.held_max.fetch_max(now, Ordering::Relaxed);
        Self(counts)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The JSON line of `hoard --json`.
#[derive(Serialize)]
struct HoardJson {
    connections: u64,
    connects: u64,
    connect_failed: u64,
    connections_closed: u64,
    streams_opened: u64,
    open_failed: u64,
    ended_by_node: u64,
    refused: u64,
    held_max: u64,
    held_at_end: u64,
    bytes_per_stream: u64,
    elapsed_s: f64,
}

pub(crate) async fn run(args: HoardArgs) -> Result<()> {
    let peer = p2p_load::target_peer(&args.target)
        .with_context(|| format!("{} does not end with /p2p/<peer-id>", args.target))?;
    let prefix = uvarint(MAX_FRAME_LEN as u64);
    eprintln!(
        "p2p-fault: {} connections to {peer}, up to {} greet 1.0.0 streams on each, {} bytes \
         declaring {MAX_FRAME_LEN} on every stream, for {}",
        args.connections,
        args.streams,
        prefix.len(),
        humantime::format_duration(args.duration)
    );
    let counts = Arc::new(Counts::default());
    let (stop_tx, stop) = watch::channel(false);
    let started = Instant::now();
    let mut connections = JoinSet::new();
    for _ in 0..args.connections {
        let (target, counts, stop, prefix) =
            (args.target.clone(), Arc::clone(&counts), stop.clone(), prefix.clone());
        let (streams, reopen) = (args.streams, args.reopen);
        connections
            .spawn(async move { connection(target, peer, streams, reopen, prefix, counts, stop).await });
    }
    let end = started + args.duration;
    let mut next_progress = Instant::now() + Duration::from_secs(5);
    while next_progress < end {
        tokio::time::sleep_until(next_progress).await;
        eprintln!(
            "p2p-fault: {:.0} s: {} streams held ({} at most), {} opened, {} ended by the node, {} connections closed",
            started.elapsed().as_secs_f64(),
            counts.held.load(Ordering::Relaxed),
            counts.held_max.load(Ordering::Relaxed),
            counts.opened.load(Ordering::Relaxed),
            counts.ended.load(Ordering::Relaxed),
            counts.connections_closed.load(Ordering::Relaxed),
        );
        next_progress += Duration::from_secs(5);
    }
    tokio::time::sleep_until(end).await;
    let held_at_end = counts.held.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    let _ = stop_tx.send(true);
    connections.shutdown().await;

    let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
    let result = HoardJson {
        connections: args.connections,
        connects: load(&counts.connects),
        connect_failed: load(&counts.connect_failed),
        connections_closed: load(&counts.connections_closed),
        streams_opened: load(&counts.opened),
        open_failed: load(&counts.open_failed),
        ended_by_node: load(&counts.ended),
        refused: load(&counts.refused),
        held_max: load(&counts.held_max),
        held_at_end,
        bytes_per_stream: prefix.len() as u64,
        elapsed_s: round(elapsed.as_secs_f64(), 3),
    };
    println!(
        "hoard: {} connections ({} connects, {} failed, {} closed by the node); {} streams opened, \
         {} failed to open, {} ended by the node after a hold, {} refused; {} held at most, {} at the end, \
         {} bytes sent on each, in {:.1} s",
        result.connections,
        result.connects,
        result.connect_failed,
        result.connections_closed,
        result.streams_opened,
        result.open_failed,
        result.ended_by_node,
        result.refused,
        result.held_max,
        result.held_at_end,
        result.bytes_per_stream,
        result.elapsed_s
    );
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    }
    Ok(())
}

/// One connection (dialed again whenever the node closes it) and its
/// stream tasks, until `stop`.
async fn connection(
    target: Multiaddr,
    peer: PeerId,
    streams: usize,
    reopen: Duration,
    prefix: Vec<u8>,
    counts: Arc<Counts>,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let raw = tokio::select! {
            raw = RawPeer::connect(&target) => raw,
            _ = stop.wait_for(|s| *s) => return,
        };
        let raw = match raw {
            Ok(raw) => raw,
            Err(err) => {
                if counts.connect_failed.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("p2p-fault: a connection failed: {err:#}");
                }
                tokio::select! {
                    () = tokio::time::sleep(REDIAL) => continue,
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        };
        counts.connects.fetch_add(1, Ordering::Relaxed);
        // Ramp up, one stream at a time, until the node refuses one.
        let refused = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();
        let mut control = (*raw).clone();
        for _ in 0..streams {
            if refused.load(Ordering::Relaxed) || raw.closed() > 0 || *stop.borrow() {
                break;
            }
            let opened = tokio::time::timeout(OPEN_TIMEOUT, control.open_stream(peer, protocol()));
            let opened = tokio::select! {
                opened = opened => opened,
                _ = stop.wait_for(|s| *s) => break,
            };
            let Ok(Ok(stream)) = opened else {
                counts.open_failed.fetch_add(1, Ordering::Relaxed);
                counts.refused.fetch_add(1, Ordering::Relaxed);
                break;
            };
            counts.opened.fetch_add(1, Ordering::Relaxed);
            let (control, counts, prefix, refused) =
                ((*raw).clone(), Arc::clone(&counts), prefix.clone(), Arc::clone(&refused));
            tasks.spawn(async move {
                hoard_streams(stream, control, peer, reopen, &prefix, &counts, &refused).await
            });
        }
        // Until the node closes the connection, or the end.
        loop {
            tokio::select! {
                () = tokio::time::sleep(CHECK) => if raw.closed() > 0 { break },
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        tasks.shutdown().await;
        drop(raw);
        if *stop.borrow() {
            return;
        }
        counts.connections_closed.fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            () = tokio::time::sleep(REDIAL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

fn protocol() -> StreamProtocol {
    StreamProtocol::new(PROTOCOL_NAME)
}

/// Sends `prefix` on `stream` and holds it until the node ends it; then
/// opens another after `reopen`, and so on. If the node ends the first one
/// at once, it refused it (beyond its cap): `refused` is set (the ramp
/// stops) and this ends. Otherwise ends only when aborted.
async fn hoard_streams(
    first: libp2p::Stream,
    mut control: libp2p_stream::Control,
    peer: PeerId,
    reopen: Duration,
    prefix: &[u8],
    counts: &Counts,
    refused: &AtomicBool,
) {
    let mut next = Some(first);
    let mut proven = false;
    loop {
        let mut stream = match next.take() {
            Some(stream) => stream,
            None => match tokio::time::timeout(OPEN_TIMEOUT, control.open_stream(peer, protocol())).await {
                Ok(Ok(stream)) => {
                    counts.opened.fetch_add(1, Ordering::Relaxed);
                    stream
                }
                _ => {
                    counts.open_failed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(reopen).await;
                    continue;
                }
            },
        };
        let opened = Instant::now();
        if stream.write_all(prefix).await.is_ok() && stream.flush().await.is_ok() {
            let _held = Held::new(counts);
            // Whatever comes back (nothing, an answer, the end, a reset),
            // the stream is held until the node ends it.
            let mut buf = [0u8; 256];
            while let Ok(1..) = stream.read(&mut buf).await {}
        }
        drop(stream);
        if opened.elapsed() < AT_ONCE && !proven {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            refused.store(true, Ordering::Relaxed);
            return;
        }
        proven = true;
        counts.ended.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(reopen).await;
    }
}
