//! Durations on a tool's command line: the one parser `p2p-node` and
//! `p2p-fault` share, and a value that shows itself the way it is written.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// `250ms`, `10s`, `1m 30s` (humantime), or plain seconds (`2.5`).
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(p2p_load::parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(p2p_load::parse_duration("2.5"), Ok(Duration::from_millis(2500)));
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).or_else(|err| {
        text.parse::<f64>()
            .ok()
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .ok_or_else(|| format!("not a duration: {err}"))
    })
}

/// A duration read with [`parse_duration`] and shown the human way (`5s`,
/// `200ms`, `1m 30s`; zero as `0s`), for a flag whose default `--help` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// A limit where `None` (disabled) is written `0s`.
    pub fn from_limit(limit: Option<Duration>) -> Self {
        Self(limit.unwrap_or(Duration::ZERO))
    }
}

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_duration(text).map(Self)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            return f.write_str("0s");
        }
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_or_plain_seconds() {
        assert_eq!(parse_duration("150ms"), Ok(Duration::from_millis(150)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn durations_round_trip_through_their_display() {
        for text in ["0s", "200ms", "5s", "1m 30s"] {
            assert_eq!(text.parse::<HumanDuration>().unwrap().to_string(), text);
        }
    }
}
