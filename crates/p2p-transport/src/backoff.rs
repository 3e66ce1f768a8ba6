//! Exponential back-off with jitter: the one type every retry and ban of the
//! node waits by. Pure: no clock, no timer; the caller adds the wait it
//! returns to its own `now`.
//!
//! Owns: the arithmetic of "wait `base`, then `factor` times longer each
//! time, never beyond `max`, each wait shortened by a random part of up to
//! `jitter`", and its reset.
//! Must never: wait longer than `max`, or draw its randomness from anything
//! but its own seeded generator (tests are deterministic with a seed).
//!
//! Jitter only ever *shortens* a wait (a wait is in `((1 - jitter) × d, d]`
//! for the nominal `d`), so a bound someone relies on ("retried within
//! 30 s") holds with jitter too, while peers that failed together (a healed
//! partition, a relay that restarted) spread out instead of retrying in
//! lock-step.
//!
//! ```text
//! let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
//! let first = backoff.next_wait(); // in (0.8 s, 1 s] with the default jitter (0.2)
//! let second = backoff.next_wait(); // in (1.6 s, 2 s]
//! backoff.reset(); // it worked: the next failure waits about `base` again
//! ```

use std::time::Duration;

/// The default jitter fraction: each wait is shortened by up to 20 %.
pub(crate) const DEFAULT_JITTER: f64 = 0.2;

/// An exponential back-off: see the module documentation.
///
/// Usage: on each failure call [`Backoff::next_wait`] and retry after the
/// wait it returns; on success call [`Backoff::reset`]. [`Backoff::nominal`]
/// says what the next wait would be before jitter (for logs and tests).
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    factor: u32,
    jitter: f64,
    /// The next wait before jitter.
    next: Duration,
    /// splitmix64 state.
    rng: u64,
}

impl Backoff {
    /// A back-off from `base` doubling up to `max` (at least `base`), with
    /// [`DEFAULT_JITTER`], seeded from the OS.
    pub(crate) fn new(base: Duration, max: Duration) -> Self {
        Self { base, max: max.max(base), factor: 2, jitter: DEFAULT_JITTER, next: base, rng: rand::random() }
    }

    /// Each wait `factor` times the one before (at least 1).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn with_factor(mut self, factor: u32) -> Self {
        self.factor = factor.max(1);
        self
    }

    /// Each wait shortened by a random fraction of itself of up to `jitter`
    /// (clamped to `0.0..=1.0`; `0.0`: no jitter, waits are exact).
    pub(crate) fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_nan() { 0.0 } else { jitter.clamp(0.0, 1.0) };
        self
    }

    /// The jitter drawn from a generator seeded with `seed`: the same seed,
    /// the same waits.
    pub(crate) fn with_seed(mut self, seed: u64) -> Self {
        self.rng = seed;
        self
    }

    /// The wait before the next attempt; the one after grows by the factor, up to the max.
    pub(crate) fn next_wait(&mut self) -> Duration {
        let nominal = self.next;
        self.next = nominal.saturating_mul(self.factor).min(self.max);
        if self.jitter == 0.0 {
            return nominal;
        }
        // A uniform draw in [0, 1) from the top 53 bits.
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        // (Never `mul_f64`: it panics where a huge wait rounds beyond `Duration::MAX`.)
        Duration::try_from_secs_f64(nominal.as_secs_f64() * (1.0 - self.jitter * unit))
            .map_or(nominal, |wait| wait.min(nominal))
    }

    /// The next wait before jitter.
    #[cfg_attr(not(test), allow(dead_code))] // for logs
    pub(crate) fn nominal(&self) -> Duration {
        self.next
    }

    /// Success: the next failure waits about `base` again.
    pub(crate) fn reset(&mut self) {
        self.next = self.base;
    }

    /// splitmix64: small, fast, and good enough to spread retries.
    fn next_u64(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn without_jitter_it_doubles_up_to_the_max_and_resets() {
        let mut b = Backoff::new(S, 30 * S).with_jitter(0.0);
        let waits: Vec<u64> = (0..7).map(|_| b.next_wait().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        b.reset();
        assert_eq!(b.next_wait(), S);
        assert_eq!(b.nominal(), 2 * S);
    }

    #[test]
    fn the_factor_is_configurable() {
        let mut b = Backoff::new(S, 100 * S).with_jitter(0.0).with_factor(3);
        let waits: Vec<u64> = (0..5).map(|_| b.next_wait().as_secs()).collect();
        assert_eq!(waits, [1, 3, 9, 27, 81]);
        let mut flat = Backoff::new(S, 100 * S).with_jitter(0.0).with_factor(0);
        assert_eq!([flat.next_wait(), flat.next_wait()], [S, S], "a factor of 0 is 1: a fixed wait");
    }

    #[test]
    fn jitter_only_shortens_and_stays_within_its_fraction() {
        let mut b = Backoff::new(10 * S, 10 * S).with_seed(7);
        for _ in 0..1000 {
            let wait = b.next_wait();
            assert!(wait <= 10 * S && wait > 8 * S, "{wait:?}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_waits_and_different_seeds_spread() {
        let waits = |seed| {
            let mut b = Backoff::new(S, 30 * S).with_seed(seed);
            (0..8).map(|_| b.next_wait()).collect::<Vec<_>>()
        };
        assert_eq!(waits(42), waits(42));
        // A healed partition: 100 peers failed at once; their first retries spread.
        let firsts: std::collections::HashSet<Duration> = (0..100).map(|seed| waits(seed)[0]).collect();
        assert!(firsts.len() > 90, "only {} distinct first waits out of 100", firsts.len());
        let spread = firsts.iter().max().unwrap().saturating_sub(*firsts.iter().min().unwrap());
        assert!(spread > Duration::from_millis(150), "spread {spread:?} of a 1 s wait with 20 % jitter");
    }

    #[test]
    fn odd_settings_are_clamped() {
        let mut b = Backoff::new(5 * S, S).with_jitter(7.0).with_seed(1);
        assert_eq!(b.nominal(), 5 * S, "max below base: base");
        assert!(b.next_wait() <= 5 * S);
        let mut nan = Backoff::new(S, S).with_jitter(f64::NAN);
        assert_eq!(nan.next_wait(), S);
        let mut huge = Backoff::new(Duration::MAX / 2, Duration::MAX).with_seed(3);
        for _ in 0..4 {
            assert!(huge.next_wait() <= Duration::MAX, "saturates, never panics");
        }
        assert_eq!(huge.nominal(), Duration::MAX);
    }
}
