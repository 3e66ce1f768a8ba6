//! Ctrl-C and SIGTERM, as one stream of signal names.

use anyhow::{Context, Result};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Ctrl-C and SIGTERM.
pub(crate) struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    /// Starts catching both; install it before anything slow, so that no signal is lost.
    pub(crate) fn new() -> Result<Self> {
        let interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        Ok(Self { interrupt, terminate })
    }

    /// The name of the next signal received.
    pub(crate) async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}
