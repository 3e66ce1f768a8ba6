//! Latency histograms (hdrhistogram, in microseconds) and how latencies read.

use std::time::Duration;

pub use hdrhistogram::Histogram;

/// The longest latency a histogram tells apart; a longer one counts as this.
pub const MAX_TRACKED: Duration = Duration::from_secs(3600);

/// An empty latency histogram in microseconds: 1 µs to [`MAX_TRACKED`], 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED.as_micros() as u64, 3).expect("valid histogram bounds")
}

/// Records `latency` in `histogram` (clamped to [`MAX_TRACKED`]).
pub fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    histogram.saturating_record(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
}

/// The latency at `quantile` (0.5 for the median); zero when nothing was recorded.
pub fn quantile(histogram: &Histogram<u64>, quantile: f64) -> Duration {
    if histogram.is_empty() {
        return Duration::ZERO;
    }
    Duration::from_micros(histogram.value_at_quantile(quantile))
}

/// The longest latency recorded; zero when nothing was.
pub fn max(histogram: &Histogram<u64>) -> Duration {
    Duration::from_micros(histogram.max())
}

/// All of `histograms` added up in one.
pub fn merged<'a>(histograms: impl IntoIterator<Item = &'a Histogram<u64>>) -> Histogram<u64> {
    let mut all = new_histogram();
    for histogram in histograms {
        all.add(histogram).expect("histograms of new_histogram() add up");
    }
    all
}

/// A latency the human way: `87µs`, `1.24ms`, `2.503s`.
pub fn human(latency: Duration) -> String {
    let us = latency.as_micros();
    match us {
        0..1_000 => format!("{us}µs"),
        1_000..1_000_000 => format!("{:.2}ms", us as f64 / 1e3),
        _ => format!("{:.3}s", us as f64 / 1e6),
    }
}

/// A latency in milliseconds with two decimals: `1.24 ms`.
pub fn ms(latency: Duration) -> String {
    format!("{:.2} ms", latency.as_secs_f64() * 1000.0)
}

/// A latency in milliseconds rounded to the microsecond, for JSON: `1.234`.
pub fn ms_number(latency: Duration) -> f64 {
    latency.as_micros() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_read_well() {
        assert_eq!(human(Duration::from_micros(87)), "87µs");
        assert_eq!(human(Duration::from_micros(1_240)), "1.24ms");
        assert_eq!(human(Duration::from_micros(2_503_000)), "2.503s");
        assert_eq!(ms(Duration::from_micros(1_238)), "1.24 ms");
        assert_eq!(ms_number(Duration::from_nanos(1_234_567)), 1.234);
    }

    #[test]
    fn empty_histograms_read_zero_and_long_latencies_saturate() {
        let mut histogram = new_histogram();
        assert_eq!((quantile(&histogram, 0.99), max(&histogram)), (Duration::ZERO, Duration::ZERO));
        record(&mut histogram, Duration::from_secs(7200));
        assert!(max(&histogram) >= MAX_TRACKED && max(&histogram) < MAX_TRACKED + Duration::from_secs(4));
        let all = merged([&histogram, &histogram]);
        assert_eq!(all.len(), 2);
    }
}
