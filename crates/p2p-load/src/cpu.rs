//! A process's CPU time, from `/proc/<pid>/stat` (Linux): what a server
//! spent on the requests a bench measured, whichever process it is (the
//! node, or the raw baseline beside it).

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

/// `/proc/<pid>/stat` counts in `USER_HZ`, 100 a second on every Linux
/// architecture (whatever the kernel's own tick).
const USER_HZ: u64 = 100;

/// The user + system CPU time `pid` has used so far; `None` if it cannot be
/// read (no such process, not Linux).
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// utime + stime from a `/proc/<pid>/stat` line (fields 14 and 15, counted
/// after the command name, which may hold spaces and parentheses).
fn parse_stat(stat: &str) -> Option<Duration> {
    let (_, after_name) = stat.rsplit_once(") ")?;
    let mut fields = after_name.split(' ').skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// Measures the CPU time `pid` uses from `warmup` after now for `window`:
/// started beside a load run with the same warm-up and duration, it is the
/// server's cost of the requests that run counts. `None` if unreadable.
pub fn measure(pid: u32, warmup: Duration, window: Duration) -> JoinHandle<Option<Duration>> {
    let start = Instant::now();
    tokio::spawn(async move {
        tokio::time::sleep_until(start + warmup).await;
        let before = process_cpu(pid)?;
        tokio::time::sleep_until(start + warmup + window).await;
        let after = process_cpu(pid)?;
        Some(after.saturating_sub(before))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utime_and_stime_are_read_after_a_name_with_spaces() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
        let stat = "4242 (p2p (node) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(parse_stat(stat), Some(Duration::from_secs(3)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn our_own_process_has_used_some_cpu() {
        let pid = std::process::id();
        let spent = process_cpu(pid).expect("/proc/self readable on Linux");
        // Burn a little, then look again: the clock only moves forward.
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(process_cpu(pid).unwrap() >= spent);
    }
}
