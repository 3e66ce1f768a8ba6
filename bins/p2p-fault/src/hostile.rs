//! `p2p-fault hostile`: `--count` hostile inputs on greet streams (1.0.0 and
//! 2.0.0, over QUIC and, with `--tcp`, TCP/Yamux): random bytes, declared
//! lengths from 65,537 to 2^64-1, over-long varints, truncated frames, frames
//! with trailing bytes, invalid UTF-8, streams opened and abandoned, streams
//! reset mid-frame, empty streams and id 0, mutated frames ([`crate::inputs`]).
//! It counts how the node answered each (a code, a reset, a close), and checks
//! that the well-formed requests among them are answered. A separate
//! well-behaved peer probes the node meanwhile ([`crate::probe`]) and must
//! always be answered.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::AsyncWriteExt;
use p2p_load::RawPeer;
use p2p_load::histogram::{self, ms, ms_number};
use p2p_transport::libp2p::PeerId;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use crate::answers::{read_v1, read_v2};
use crate::inputs::{ABANDONED, CATEGORIES, Input, RESET_MID_FRAME, Rng, Version, make_input};
use crate::probe::{ProbeStats, probe_loop};
use crate::{HostileArgs, json_key, round};

/// Abandoned streams left open at once, at most.
const ABANDONED_AT_ONCE: u32 = 64;

/// The outcomes the JSON line always has (`outcome.<key>`, 0 when none).
const OUTCOMES: [&str; 9] =
    ["400", "413", "ok", "reset", "closed", "timeout", "open_failed", "bad_answer", "not_read"];

/// How the node answered one input.
struct Outcome {
    /// `400`, `413`, `ok`, `429`, ..., `reset`, `closed`, `timeout`, `open_failed`,
    /// `bad_answer`, or `not_read` (abandoned and reset inputs: nothing to wait for).
    what: String,
    /// For inputs with an embedded well-formed request: was it answered?
    embedded_answered: Option<bool>,
}

#[derive(Default)]
struct HostileStats {
    /// (category, version) → outcome → count.
    table: BTreeMap<(usize, Version), BTreeMap<String, u64>>,
    by_outcome: BTreeMap<String, u64>,
    by_transport: BTreeMap<&'static str, u64>,
    embedded_sent: u64,
    embedded_answered: u64,
}

impl HostileStats {
    fn count(&mut self, input: &Input, transport: &'static str, outcome: Outcome) {
        let by_input = self.table.entry((input.category, input.version)).or_default();
        *by_input.entry(outcome.what.clone()).or_default() += 1;
        *self.by_outcome.entry(outcome.what).or_default() += 1;
        *self.by_transport.entry(transport).or_default() += 1;
        if let Some(answered) = outcome.embedded_answered {
            self.embedded_sent += 1;
            self.embedded_answered += u64::from(answered);
        }
    }

    fn inputs(&self) -> u64 {
        self.by_outcome.values().sum()
    }
}

/// The JSON line of `hostile --json`.
#[derive(Serialize)]
struct HostileJson {
    inputs: u64,
    elapsed_s: f64,
    inputs_per_sec: f64,
    /// `outcome.<key>` for each of [`OUTCOMES`], then `outcomes.<key>` for every outcome seen.
    #[serde(flatten)]
    outcomes: BTreeMap<String, Value>,
    embedded_sent: u64,
    embedded_answered: u64,
    probes: u64,
    probes_ok: u64,
    probe_p99_ms: f64,
    probe_max_ms: f64,
    connections_closed: u64,
}

pub(crate) async fn run(args: HostileArgs) -> Result<()> {
    let peer = p2p_load::target_peer(&args.target)
        .with_context(|| format!("{} does not end with /p2p/<peer-id>", args.target))?;
    if let Some(tcp) = &args.tcp
        && p2p_load::target_peer(tcp) != Some(peer)
    {
        bail!("--tcp names another peer (or none)");
    }
    // One hostile peer per transport, and a well-behaved prober on QUIC.
    let mut hostile = vec![("quic", RawPeer::connect(&args.target).await.map_err(anyhow::Error::msg)?)];
    if let Some(tcp) = &args.tcp {
        hostile.push(("tcp", RawPeer::connect(tcp).await.map_err(anyhow::Error::msg)?));
    }
    let prober = RawPeer::connect(&args.target).await.map_err(anyhow::Error::msg)?;
    eprintln!(
        "p2p-fault: {} hostile inputs to {peer} over {} ({} at a time), probing every {}",
        args.count,
        hostile.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(" and "),
        args.concurrency,
        ms(args.probe_interval)
    );

    let started = Instant::now();
    let deadline = started + args.max_time;
    let next = Arc::new(AtomicU64::new(0));
    let stats = Arc::new(Mutex::new(HostileStats::default()));
    let abandoned = Arc::new(Semaphore::new(ABANDONED_AT_ONCE as usize));
    let (done_tx, done_rx) = watch::channel(false);
    let probe =
        tokio::spawn(probe_loop((*prober).clone(), peer, args.probe_interval, args.answer_timeout, done_rx));

    let (count, seed, answer_timeout) = (args.count, args.seed, args.answer_timeout);
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|w| {
            let (transport, raw) = &hostile[w % hostile.len()];
            let transport: &'static str = transport;
            let mut control = (*raw).clone();
            let (next, stats, abandoned) = (Arc::clone(&next), Arc::clone(&stats), Arc::clone(&abandoned));
            tokio::spawn(async move {
                let mut rng = Rng::seed_from_u64(seed ^ ((w as u64) << 32));
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count || Instant::now() >= deadline {
                        break;
                    }
                    let version = if (index / 2) % 2 == 0 { Version::V1 } else { Version::V2 };
                    let input = make_input(index, seed, version);
                    let outcome =
                        send_input(&mut control, peer, &input, answer_timeout, &abandoned, &mut rng).await;
                    stats.lock().expect("stats lock").count(&input, transport, outcome);
                    if (index + 1) % (count / 10).max(1) == 0 {
                        let secs = started.elapsed().as_secs_f64();
                        eprintln!("p2p-fault: {} inputs in {secs:.1} s", index + 1);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.context("a worker failed")?;
    }
    let elapsed = started.elapsed();
    // Let the abandoned streams go before the last probes.
    let _ = abandoned.acquire_many(ABANDONED_AT_ONCE).await;
    tokio::time::sleep(args.probe_interval * 2).await;
    let _ = done_tx.send(true);
    let probes = probe.await.context("the prober failed")?;
    let connections_closed = hostile.iter().map(|(_, raw)| raw.closed()).sum::<u64>() + prober.closed();

    let stats = std::mem::take(&mut *stats.lock().expect("stats lock"));
    let results = Results { stats, probes, elapsed, connections_closed };
    for line in results.human() {
        println!("{line}");
    }
    if args.json {
        println!("{}", serde_json::to_string(&results.json())?);
    }
    Ok(())
}

/// What a hostile run saw.
struct Results {
    stats: HostileStats,
    probes: ProbeStats,
    elapsed: Duration,
    connections_closed: u64,
}

impl Results {
    fn inputs_per_sec(&self) -> f64 {
        self.stats.inputs() as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }

    fn json(&self) -> HostileJson {
        let (stats, probes) = (&self.stats, &self.probes);
        let mut outcomes = BTreeMap::new();
        for key in OUTCOMES {
            outcomes.insert(format!("outcome.{key}"), stats.by_outcome.get(key).copied().unwrap_or(0).into());
        }
        for (key, count) in &stats.by_outcome {
            outcomes.insert(json_key(&format!("outcomes.{key}")), (*count).into());
        }
        HostileJson {
            inputs: stats.inputs(),
            elapsed_s: round(self.elapsed.as_secs_f64(), 3),
            inputs_per_sec: round(self.inputs_per_sec(), 1),
            outcomes,
            embedded_sent: stats.embedded_sent,
            embedded_answered: stats.embedded_answered,
            probes: probes.sent,
            probes_ok: probes.ok,
            probe_p99_ms: ms_number(histogram::quantile(&probes.latency, 0.99)),
            probe_max_ms: ms_number(histogram::max(&probes.latency)),
            connections_closed: self.connections_closed,
        }
    }

    fn human(&self) -> Vec<String> {
        let (stats, probes) = (&self.stats, &self.probes);
        let pairs = |counts: &BTreeMap<String, u64>| {
            counts.iter().map(|(o, n)| format!("{o}={n}")).collect::<Vec<_>>().join(" ")
        };
        let mut lines = vec![
            format!(
                "hostile: {} inputs in {:.1} s ({:.0}/s), by transport {:?}",
                stats.inputs(),
                self.elapsed.as_secs_f64(),
                self.inputs_per_sec(),
                stats.by_transport
            ),
            format!("  {:<22} {:<6} answers", "input", "proto"),
        ];
        for ((category, version), outcomes) in &stats.table {
            lines.push(format!("  {:<22} {:<6} {}", CATEGORIES[*category], version.name(), pairs(outcomes)));
        }
        let latency = |q: f64| ms(histogram::quantile(&probes.latency, q));
        lines.extend([
            format!("  total: {}", pairs(&stats.by_outcome)),
            format!(
                "  well-formed requests inside hostile streams: {} of {} answered",
                stats.embedded_answered, stats.embedded_sent
            ),
            format!(
                "  well-behaved prober: {} of {} answered ok (p50 {}, p99 {}, max {}), failures {:?}",
                probes.ok,
                probes.sent,
                latency(0.5),
                latency(0.99),
                ms(histogram::max(&probes.latency)),
                probes.failures
            ),
            format!("  connections the node closed: {}", self.connections_closed),
        ]);
        lines
    }
}

/// Sends one hostile input on a fresh stream and sees how the node answers.
async fn send_input(
    control: &mut libp2p_stream::Control,
    peer: PeerId,
    input: &Input,
    answer_timeout: Duration,
    abandoned: &Arc<Semaphore>,
    rng: &mut Rng,
) -> Outcome {
    let no_embedded = |what: &str| Outcome { what: what.to_owned(), embedded_answered: None };
    let opened =
        tokio::time::timeout(answer_timeout, control.open_stream(peer, input.version.protocol())).await;
    let mut stream = match opened {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            eprintln!("p2p-fault: cannot open a stream: {err}");
            return no_embedded("open_failed");
        }
        Err(_) => return no_embedded("open_failed"),
    };
    match input.category {
        ABANDONED => {
            // Left open, unread, for a while: the node must not wait on it forever.
            let _ = stream.write_all(&input.bytes).await;
            let _ = stream.flush().await;
            let hold = Duration::from_millis(rng.random_range(0..500));
            let permit = Arc::clone(abandoned).acquire_owned().await.expect("never closed");
            tokio::spawn(async move {
                tokio::time::sleep(hold).await;
                drop(stream);
                drop(permit);
            });
            return no_embedded("not_read");
        }
        RESET_MID_FRAME => {
            // Dropped mid-frame without closing: a RST on Yamux; on QUIC a
            // STOP_SENDING and the end of the stream.
            let _ = stream.write_all(&input.bytes).await;
            let _ = stream.flush().await;
            drop(stream);
            return no_embedded("not_read");
        }
        _ => {}
    }
    let exchange = async {
        // The node may answer and close before reading everything (413): a
        // failed write is then expected, the answer is what counts.
        let _ = stream.write_all(&input.bytes).await;
        let _ = stream.close().await;
        match input.version {
            Version::V1 => read_v1(&mut stream).await,
            Version::V2 => read_v2(&mut stream, input.embedded).await,
        }
    };
    match tokio::time::timeout(answer_timeout, exchange).await {
        Ok((what, answered)) => Outcome { what, embedded_answered: input.embedded.map(|_| answered) },
        Err(_) => Outcome { what: "timeout".into(), embedded_answered: input.embedded.map(|_| false) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_line_has_every_field_the_script_reads() {
        let mut stats = HostileStats::default();
        let input = make_input(0, 1, Version::V1);
        for what in ["400", "400", "remote 429"] {
            stats.count(&input, "quic", Outcome { what: what.into(), embedded_answered: Some(true) });
        }
        let probes = ProbeStats {
            sent: 4,
            ok: 4,
            failures: BTreeMap::new(),
            latency: p2p_load::histogram::new_histogram(),
        };
        let results = Results { stats, probes, elapsed: Duration::from_secs(2), connections_closed: 0 };
        let line = serde_json::to_string(&results.json()).unwrap();
        assert!(results.human()[0].starts_with("hostile: 3 inputs in 2.0 s (2/s)"), "{:?}", results.human());
        assert!(line.starts_with("{\"inputs\":3,\"elapsed_s\":2.0,\"inputs_per_sec\":1.5,"), "{line}");
        for field in [
            "\"outcome.400\":2,",
            "\"outcome.not_read\":0,",
            "\"outcomes.remote_429\":1,",
            "\"embedded_sent\":3,",
            "\"embedded_answered\":3,",
            "\"probes\":4,",
            "\"probes_ok\":4,",
            "\"probe_p99_ms\":0.0,",
            "\"connections_closed\":0}",
        ] {
            assert!(line.contains(field), "{field} in {line}");
        }
    }
}
