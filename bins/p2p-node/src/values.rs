//! Values on the command line that more than one subcommand parses: peers'
//! addresses (durations are `p2p_load::HumanDuration`, shared with
//! `p2p-fault`). A leaf: every subcommand's arguments use it, it uses none of
//! them.

use p2p_transport::libp2p::Multiaddr;

/// A peer's address: a multiaddr ending in `/p2p/<peer-id>`.
pub(crate) fn parse_peer_addr(text: &str) -> Result<Multiaddr, String> {
    let addr: Multiaddr = text.parse().map_err(|err| format!("{err}"))?;
    match addr.iter().last() {
        Some(p2p_transport::libp2p::multiaddr::Protocol::P2p(_)) => Ok(addr),
        _ => Err("must end with /p2p/<peer-id>".to_owned()),
    }
}

/// A number of bytes: `1048576`, `100MiB`, `1.5GB`, `10k` (k/KB/M/MB/G/GB/T/TB
/// are powers of 1000, KiB/MiB/GiB/TiB of 1024; a trailing `B` alone is bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Size(pub(crate) u64);

impl std::str::FromStr for Size {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number.parse().map_err(|_| format!("{text:?} is not a size (like 100MiB)"))?;
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "k" | "K" | "kB" | "KB" => 1_000,
            "KiB" => 1 << 10,
            "M" | "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "G" | "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            "T" | "TB" => 1_000_000_000_000,
            "TiB" => 1 << 40,
            other => {
                return Err(format!(
                    "unknown unit {other:?} (B, k/KB, KiB, M/MB, MiB, G/GB, GiB, T/TB, TiB)"
                ));
            }
        };
        let bytes = number * scale as f64;
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(format!("{text:?} is too large"));
        }
        Ok(Self(bytes.round() as u64))
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            0 => write!(f, "0"),
            n if n % (1 << 30) == 0 => write!(f, "{}GiB", n >> 30),
            n if n % (1 << 20) == 0 => write!(f, "{}MiB", n >> 20),
            n if n % (1 << 10) == 0 => write!(f, "{}KiB", n >> 10),
            n => write!(f, "{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Size;

    #[test]
    fn sizes_parse_with_their_units() {
        for (text, bytes) in [
            ("0", 0),
            ("1048576", 1 << 20),
            ("100MiB", 100 << 20),
            ("1.5GB", 1_500_000_000),
            ("10k", 10_000),
            ("2 KiB", 2048),
            ("10GiB", 10 << 30),
            ("7B", 7),
        ] {
            assert_eq!(text.parse::<Size>(), Ok(Size(bytes)), "{text}");
        }
        for bad in ["", "MiB", "1.2.3", "5 parsecs", "-1", "1e30"] {
            assert!(bad.parse::<Size>().is_err(), "{bad}");
        }
        assert_eq!(Size(10 << 30).to_string(), "10GiB");
        assert_eq!("10GiB".parse::<Size>().unwrap().to_string(), "10GiB");
    }
}
