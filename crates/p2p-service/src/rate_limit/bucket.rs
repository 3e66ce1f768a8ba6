//! The token bucket of one peer (the generic cell rate algorithm).

use std::time::Duration;

use tokio::time::Instant;

/// A token bucket, kept as the time it will next be full (the generic cell rate algorithm).
///
/// Taking a token pushes that time `interval` further; a token is there as long
/// as the bucket would be full again within `(burst - 1) * interval` from now.
/// One `Instant` is the whole state, and the arithmetic is exact in nanoseconds,
/// with no floating-point drift.
#[derive(Debug)]
pub(crate) struct Bucket {
    /// The time one token takes to come back: `1 s / rate`.
    interval: Duration,
    /// How far ahead of now `full_at` may be while a token remains: `(burst - 1) * interval`.
    tolerance: Duration,
    /// When the bucket is full again if no more tokens are taken.
    full_at: Instant,
}

impl Bucket {
    /// A full bucket regaining `rate_per_sec` tokens a second and holding at most `burst`.
    pub(crate) fn new(rate_per_sec: u32, burst: u32, now: Instant) -> Self {
        // A rate of 0 (like any rate above 1e9/s) makes a zero interval: no limit.
        let interval = match rate_per_sec {
            0 => Duration::ZERO,
            rate => Duration::from_secs(1) / rate,
        };
        // At most `u32::MAX` seconds ahead: far from overflowing an `Instant`.
        let tolerance = interval * (burst.max(1) - 1);
        Self { interval, tolerance, full_at: now }
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        let full_at = self.full_at.max(now);
        if full_at - now > self.tolerance {
            return false;
        }
        self.full_at = full_at + self.interval;
        true
    }

    /// When the bucket is full again if no more tokens are taken; from then on
    /// it is the same as a new one.
    pub(crate) fn full_at(&self) -> Instant {
        self.full_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take_n(bucket: &mut Bucket, now: Instant, n: usize) -> Vec<bool> {
        (0..n).map(|_| bucket.try_take(now)).collect()
    }

    #[test]
    fn bucket_allows_burst_then_refills_one_token_per_interval() {
        // (rate, burst, requests at t0, allowed at t0, wait, allowed after the wait)
        let cases: &[(u32, u32, usize, usize, Duration, usize)] = &[
            (10, 20, 25, 20, Duration::from_millis(100), 1),
            (10, 20, 25, 20, Duration::from_millis(99), 0),
            (10, 20, 25, 20, Duration::from_secs(1), 10),
            (10, 20, 25, 20, Duration::from_secs(60), 20),
            (1, 0, 3, 1, Duration::from_secs(1), 1),
            (3, 2, 3, 2, Duration::from_millis(334), 1),
            (0, 2, 1000, 1000, Duration::ZERO, 1000),
            (u32::MAX, 1, 1000, 1000, Duration::ZERO, 1000),
        ];
        for &(rate, burst, first, allowed_first, wait, allowed_after) in cases {
            let t0 = Instant::now();
            let mut bucket = Bucket::new(rate, burst, t0);
            let got = take_n(&mut bucket, t0, first).iter().filter(|ok| **ok).count();
            assert_eq!(got, allowed_first, "rate {rate} burst {burst}: at t0");
            let got = take_n(&mut bucket, t0 + wait, 1000).iter().filter(|ok| **ok).count();
            assert_eq!(got, allowed_after, "rate {rate} burst {burst}: after {wait:?}");
        }
    }
}
