//! `idle_timer_thread` starts libp2p's timer thread at `SCHED_IDLE`, and
//! leaves a running one alone. A file of its own: its own process, where
//! no delay was armed before the test.

#![cfg(target_os = "linux")]

use std::fs;
use std::time::Duration;

use p2p_transport::{TimerThread, idle_timer_thread};

/// The policy (field 41 of `stat`) of every thread named `futures-timer`.
fn timer_threads() -> Vec<u32> {
    let mut policies = Vec::new();
    for task in fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap().path();
        let Ok(comm) = fs::read_to_string(task.join("comm")) else { continue };
        if comm.trim_end() == "futures-timer" {
            let stat = fs::read_to_string(task.join("stat")).unwrap();
            let after_name = stat.rsplit_once(')').unwrap().1;
            policies.push(after_name.split_whitespace().nth(41 - 3).unwrap().parse().unwrap());
        }
    }
    policies
}

const SCHED_IDLE: u32 = 5;

#[test]
fn libp2p_timer_thread_starts_at_idle_priority_and_only_once() {
    assert_eq!(timer_threads(), Vec::<u32>::new(), "no timer thread before the call");
    assert_eq!(idle_timer_thread().unwrap(), TimerThread::Idle);
    assert_eq!(timer_threads(), vec![SCHED_IDLE]);
    // Delays armed afterwards (as the swarm arms them) use that thread.
    drop(futures_timer::Delay::new(Duration::from_secs(1)));
    assert_eq!(idle_timer_thread().unwrap(), TimerThread::AlreadyRunning);
    assert_eq!(timer_threads(), vec![SCHED_IDLE]);
}
