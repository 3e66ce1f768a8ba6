//! The well-behaved peer of `hostile`: one request every interval, which the
//! node must keep answering whatever the hostile peers send.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::AsyncWriteExt;
use p2p_load::histogram::{self, Histogram, new_histogram};
use p2p_protocol::v2;
use p2p_protocol::{GreetResult, decode, read_frame};
use p2p_transport::libp2p::{PeerId, Stream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::answers::decode_outcome;
use crate::inputs::{Version, framed, valid_body};

/// What the prober saw.
#[derive(Debug)]
pub(crate) struct ProbeStats {
    pub(crate) sent: u64,
    pub(crate) ok: u64,
    pub(crate) failures: BTreeMap<String, u64>,
    /// Every probe's round trip, in microseconds.
    pub(crate) latency: Histogram<u64>,
}

/// One request every `interval` until `done`, alternating a 1.0.0 stream per
/// request and one long-lived 2.0.0 stream.
pub(crate) async fn probe_loop(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    interval: Duration,
    answer_timeout: Duration,
    mut done: watch::Receiver<bool>,
) -> ProbeStats {
    let mut stats = ProbeStats { sent: 0, ok: 0, failures: BTreeMap::new(), latency: new_histogram() };
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut v2_stream: Option<Stream> = None;
    let mut id = 0u64;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = done.wait_for(|d| *d) => break,
        }
        stats.sent += 1;
        id += 1;
        let message = format!("probe {id}");
        let sent = Instant::now();
        let answer = tokio::time::timeout(answer_timeout, async {
            if id % 2 == 1 {
                probe_v1(&mut control, peer, message).await
            } else {
                if v2_stream.is_none() {
                    let stream = control
                        .open_stream(peer, Version::V2.protocol())
                        .await
                        .map_err(|e| format!("open: {e}"))?;
                    v2_stream = Some(stream);
                }
                let result = probe_v2(v2_stream.as_mut().expect("just opened"), id, message).await;
                if result.is_err() {
                    v2_stream = None; // a fresh stream next time
                }
                result
            }
        })
        .await;
        histogram::record(&mut stats.latency, sent.elapsed());
        match answer {
            Ok(Ok(Ok(_))) => stats.ok += 1,
            Ok(Ok(Err(remote))) => {
                *stats.failures.entry(format!("remote {}", remote.code.as_u16())).or_default() += 1
            }
            Ok(Err(err)) => *stats.failures.entry(err).or_default() += 1,
            Err(_) => {
                v2_stream = None;
                *stats.failures.entry("timeout".into()).or_default() += 1;
            }
        }
    }
    if let Some(mut stream) = v2_stream {
        let _ = stream.close().await;
    }
    stats
}

/// A request on a 1.0.0 stream of its own.
async fn probe_v1(
    control: &mut libp2p_stream::Control,
    peer: PeerId,
    message: String,
) -> Result<GreetResult, String> {
    let mut stream =
        control.open_stream(peer, Version::V1.protocol()).await.map_err(|e| format!("open: {e}"))?;
    stream.write_all(&framed(&valid_body(Version::V1, 0, message))).await.map_err(|e| e.to_string())?;
    stream.close().await.map_err(|e| e.to_string())?;
    let body = read_frame(&mut stream).await.map_err(|e| decode_outcome(&e))?;
    decode::<GreetResult>(&body).map_err(|_| "bad_answer".to_owned())
}

/// Request `id` on the long-lived 2.0.0 stream.
async fn probe_v2(stream: &mut Stream, id: u64, message: String) -> Result<GreetResult, String> {
    stream.write_all(&framed(&valid_body(Version::V2, id, message))).await.map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    let body = read_frame(&mut *stream).await.map_err(|e| decode_outcome(&e))?;
    let response = decode::<v2::Response>(&body).map_err(|_| "bad_answer".to_owned())?;
    if response.id != id {
        return Err(format!("answer to id {} instead of {id}", response.id));
    }
    Ok(response.result)
}
