//! libp2p's timer thread, at idle priority: [`idle_timer_thread`].
//!
//! libp2p's swarm arms a `futures_timer::Delay` for every stream it
//! negotiates (the upgrade timeout), and ping, identify and the idle
//! connection timeout arm more. futures-timer keeps every delay of the
//! process in one helper thread, `futures-timer`, and wakes it (a futex
//! call) each time a delay is armed or dropped: twice per one-request
//! stream. At the default priority the woken thread preempts the thread
//! that woke it, so each 1.0.0 request paid for two round trips through the
//! scheduler: in our profile a third of the node's CPU per request
//! (BENCHMARKS.md, issue 26). At `SCHED_IDLE` the timer thread runs only
//! when the CPU has nothing else to run: the worker that armed a delay goes
//! on, and a wake-up that finds the timer thread already woken costs an
//! atomic store. The timers then fire late only while every CPU is
//! saturated, and `SCHED_IDLE` threads are never starved outright; libp2p's
//! timers are timeouts of seconds (10 s per upgrade, the idle-connection
//! timeout, ping's 20 s), where that delay does not matter. Tokio's timers
//! (ours: request deadlines, rate limits, backoff) are not on that thread.

use std::fmt;
use std::io;

/// What [`idle_timer_thread`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerThread {
    /// The timer thread was started here, at idle priority.
    Idle,
    /// It was already running (a delay was armed before the call, or the
    /// call was made before): its priority is unchanged.
    AlreadyRunning,
    /// Not on this platform (Linux only): nothing was done.
    Unsupported,
}

impl fmt::Display for TimerThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Idle => "libp2p's timer thread runs at idle priority",
            Self::AlreadyRunning => "libp2p's timer thread was already running; its priority is unchanged",
            Self::Unsupported => "libp2p's timer thread keeps its priority (SCHED_IDLE is Linux only)",
        })
    }
}

/// Starts libp2p's timer thread (futures-timer's helper) at `SCHED_IDLE`
/// priority, so that arming and dropping libp2p's delays no longer
/// switches threads (see the module's text for why and what it costs).
///
/// Call it first thing in `main`, before any swarm exists: the thread is
/// started by the first delay armed in the process, and inherits the
/// scheduling policy of the thread that starts it, so this starts it from
/// a short-lived thread of its own at idle priority. Once the timer thread
/// runs, its priority is left alone ([`TimerThread::AlreadyRunning`]).
/// The node works the same without the call; it costs more CPU per
/// one-request stream.
pub fn idle_timer_thread() -> io::Result<TimerThread> {
    imp::idle_timer_thread()
}

#[cfg(target_os = "linux")]
mod imp {
    use std::fs;
    use std::io;
    use std::time::{Duration, Instant};

    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };

    use super::TimerThread;

    /// futures-timer's name for its thread.
    const TIMER_THREAD: &str = "futures-timer";

    pub(super) fn idle_timer_thread() -> io::Result<TimerThread> {
        if timer_thread_policy()?.is_some() {
            return Ok(TimerThread::AlreadyRunning);
        }
        let starter = std::thread::Builder::new().name("idle-timer-start".into()).spawn(|| {
            let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
            set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
                .map_err(|err| io::Error::other(format!("cannot set SCHED_IDLE: {err:?}")))?;
            // futures-timer starts its thread on the first delay armed, from
            // this thread: the new thread inherits SCHED_IDLE.
            drop(futures_timer::Delay::new(Duration::ZERO));
            Ok::<_, io::Error>(())
        })?;
        starter.join().map_err(|_| io::Error::other("the timer thread's starter panicked"))??;
        // The new thread names itself first thing, but it may not have run
        // yet: until then `/proc` shows it under its starter's name.
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            match timer_thread_policy()? {
                Some(SCHED_IDLE) => return Ok(TimerThread::Idle),
                // Another thread armed the first delay at the same time, and won.
                Some(_) => return Ok(TimerThread::AlreadyRunning),
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                None => return Err(io::Error::other("futures-timer's thread did not show up")),
            }
        }
    }

    /// Linux's number for `SCHED_IDLE`, as `/proc/<pid>/task/<tid>/stat` shows it.
    const SCHED_IDLE: u32 = 5;

    /// The scheduling policy of this process's timer thread, if it runs.
    fn timer_thread_policy() -> io::Result<Option<u32>> {
        for task in fs::read_dir("/proc/self/task")? {
            let task = task?.path();
            // A thread may end between the listing and the reads.
            let Ok(comm) = fs::read_to_string(task.join("comm")) else { continue };
            if comm.trim_end() != TIMER_THREAD {
                continue;
            }
            let Ok(stat) = fs::read_to_string(task.join("stat")) else { continue };
            return Ok(policy(&stat));
        }
        Ok(None)
    }

    /// Field 41 of a `stat` line, `policy`; the fields are counted after
    /// the name's closing parenthesis, since a name may hold spaces.
    fn policy(stat: &str) -> Option<u32> {
        let (_, after_name) = stat.rsplit_once(')')?;
        // `after_name` starts at field 3 (state).
        after_name.split_whitespace().nth(41 - 3)?.parse().ok()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn reads_the_policy_after_a_name_with_spaces_and_parentheses() {
            let mut fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
            fields[41 - 3] = "5".into();
            let stat = format!("1234 (a (b) c) {}", fields.join(" "));
            assert_eq!(policy(&stat), Some(5));
            assert_eq!(policy("1234 (short) R 1 2"), None);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;

    use super::TimerThread;

    pub(super) fn idle_timer_thread() -> io::Result<TimerThread> {
        Ok(TimerThread::Unsupported)
    }
}
