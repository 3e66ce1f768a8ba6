//! A progress line on stderr while clients connect and load runs.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::LoadConfig;

/// A line on stderr redrawn in place: a bar when stderr is a terminal, a
/// plain `\r` line once a second otherwise.
#[derive(Debug)]
pub struct Progress {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Redraws `line(elapsed)` (a fraction done, if known, and a text) until [`Progress::finish`].
    pub fn start(mut line: impl FnMut(Duration) -> (Option<f64>, String) + Send + 'static) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let every = if terminal { Duration::from_millis(200) } else { Duration::from_secs(1) };
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let mut ticks = tokio::time::interval_at(start + every, every);
            let mut drawn = false;
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = &mut stopped => break,
                }
                let (fraction, text) = line(start.elapsed());
                let drawing = match fraction {
                    Some(fraction) if terminal => format!("\r\x1b[2K{} {text}", bar(fraction, 30)),
                    _ if terminal => format!("\r\x1b[2K{text}"),
                    _ => format!("\r{text}"),
                };
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(drawing.as_bytes()).and_then(|()| err.flush());
                drawn = true;
            }
            if drawn {
                let end = if terminal { "\r\x1b[2K" } else { "\n" };
                let _ = std::io::stderr().lock().write_all(end.as_bytes());
            }
        });
        Self { stop, task }
    }

    /// `connecting <n>/<total>`, `done` counting the attempts that ended.
    pub fn connecting(done: Arc<AtomicU64>, total: usize) -> Self {
        Self::start(move |_| {
            let n = done.load(Ordering::Relaxed);
            (Some(n as f64 / total.max(1) as f64), format!("connecting {n}/{total}"))
        })
    }

    /// `warm-up|measuring <elapsed>/<total>  <n> requests  <rate>/s` while
    /// [`run`](crate::run) loads with `config`, `completed` counting its requests.
    pub fn load(config: &LoadConfig, completed: Arc<AtomicU64>) -> Self {
        let (warmup, duration) = (config.warmup, config.duration);
        let total = warmup + duration;
        let mut last = (Duration::ZERO, 0);
        Self::start(move |elapsed| {
            let done = completed.load(Ordering::Relaxed);
            let span = elapsed.saturating_sub(last.0).as_secs_f64();
            let rate = if span > 0.0 { done.saturating_sub(last.1) as f64 / span } else { 0.0 };
            last = (elapsed, done);
            let phase = if elapsed < warmup { "warm-up" } else { "measuring" };
            let fraction = elapsed.as_secs_f64() / total.as_secs_f64().max(f64::EPSILON);
            (
                Some(fraction.min(1.0)),
                format!(
                    "{phase} {:.1}s/{:.0}s  {done} requests  {rate:.0}/s",
                    elapsed.as_secs_f64().min(total.as_secs_f64()),
                    total.as_secs_f64()
                ),
            )
        })
    }

    /// Stops redrawing and leaves the cursor at the start of a clean line.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// `[#########.........]`, `width` cells, `fraction` of them full.
pub fn bar(fraction: f64, width: usize) -> String {
    let full = ((fraction.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    format!("[{}{}]", "#".repeat(full), ".".repeat(width - full))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_read_well() {
        assert_eq!(bar(0.5, 4), "[##..]");
        assert_eq!(bar(1.5, 4), "[####]");
        assert_eq!(bar(-1.0, 2), "[..]");
    }
}
