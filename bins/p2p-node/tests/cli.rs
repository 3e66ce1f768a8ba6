//! The built binary, driven as a user would: on 127.0.0.1 only, mDNS off.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

fn p2p_node() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_p2p-node"));
    command.env("RUST_LOG", "warn").env_remove("XDG_DATA_HOME");
    command
}

/// Runs `p2p-node` to completion.
fn output(args: &[&str]) -> Output {
    p2p_node().args(args).stdin(Stdio::null()).output().expect("p2p-node runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A running node; killed when dropped, whatever happened to the test.
struct Node {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    /// Reads the node's stderr to its end (the node's exit).
    stderr: Option<thread::JoinHandle<String>>,
}

/// The arguments of a node that stays on 127.0.0.1 and never multicasts.
fn local_args(key_file: Option<&Path>) -> Vec<String> {
    let mut args: Vec<String> =
        ["run", "--no-mdns", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--listen", "/ip4/127.0.0.1/tcp/0"]
            .map(String::from)
            .to_vec();
    if let Some(path) = key_file {
        args.extend(["--key-file".to_owned(), path.display().to_string()]);
    }
    args
}

impl Node {
    fn start(args: &[String], env: &[(&str, &Path)]) -> Self {
        let mut command = p2p_node();
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("p2p-node starts");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().expect("piped stderr");
        let stderr = thread::spawn(move || {
            let mut buf = String::new();
            let _ = err.read_to_string(&mut buf);
            buf
        });
        Self { child, lines, seen: Vec::new(), stderr: Some(stderr) }
    }

    /// The first line (seen before or arriving within the deadline) that `matches`.
    fn wait_for(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.seen.iter().find(|l| matches(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    // The killed node's stderr is closed: its reader ends.
                    let stderr = self.stderr.take().and_then(|reader| reader.join().ok()).unwrap_or_default();
                    panic!(
                        "no {what} within {DEADLINE:?}; stdout:\n{}\nstderr:\n{stderr}",
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// The node's first `LISTEN` address with `/p2p/` (the QUIC one).
    fn listen_addr(&mut self) -> String {
        let line = self.wait_for("LISTEN on QUIC", |l| l.starts_with("LISTEN ") && l.contains("/quic-v1/"));
        line["LISTEN ".len()..].to_owned()
    }

    fn peer_id(&mut self) -> String {
        let addr = self.listen_addr();
        addr.rsplit("/p2p/").next().expect("/p2p/ suffix").to_owned()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn id_is_stable_and_the_key_file_private() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("node.key");
    let key = key.to_str().unwrap();
    let first = output(&["id", "--key-file", key]);
    let second = output(&["id", "--key-file", key]);
    assert!(first.status.success() && second.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).trim().starts_with("12D3KooW"), "{}", stdout(&first));
    assert_eq!(stdout(&first), stdout(&second));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(key).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_corrupt_key_file_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("corrupt.key");
    std::fs::write(&key, b"not a key").unwrap();
    let key_arg = key.display().to_string();
    let mut run = local_args(Some(&key));
    run.extend(["--interval".to_owned(), "1s".to_owned()]);
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    for args in [&["id", "--key-file", &key_arg][..], &run[..]] {
        let out = output(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr(&out).contains(&key_arg), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(std::fs::read(&key).unwrap(), b"not a key", "the file is never replaced");
}

#[test]
fn two_nodes_greet_each_other_and_answer_a_one_shot_greet() {
    let dir = tempfile::tempdir().unwrap();
    let mut a_args = local_args(Some(&dir.path().join("a.key")));
    a_args.extend(["--interval", "200ms", "--message", "from a"].map(String::from));
    let mut a = Node::start(&a_args, &[]);
    let a_addr = a.listen_addr();
    let a_id = a.peer_id();

    let mut b_args = local_args(Some(&dir.path().join("b.key")));
    b_args.extend(["--interval", "200ms", "--message", "from b", "--peer", &a_addr].map(String::from));
    let mut b = Node::start(&b_args, &[]);
    let b_id = b.peer_id();

    let line = a.wait_for("GREETED b", greeted(&b_id));
    assert!(line.ends_with(r#""from b (you said: from a)""#), "{line}");
    b.wait_for("GREETED a", greeted(&a_id));
    a.wait_for("CONNECTED b", |l| l.starts_with(&format!("CONNECTED {b_id} ")));

    // The same key file cannot run a second node.
    let out = output(&a_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));

    let out = output(&["greet", &a_addr, "--message", "one shot", "--timeout", "20s"]);
    assert!(out.status.success(), "greet failed: {}", stderr(&out));
    let line = stdout(&out);
    assert!(line.starts_with(&format!("GREETED {a_id} rtt_ms=")), "{line}");
    assert!(line.contains(" observed=/ip4/127.0.0.1/udp/"), "{line}");
    assert!(line.trim_end().ends_with(r#""from a (you said: one shot)""#), "{line}");
}

/// A node listening on WebSocket prints a `LISTEN .../ws/p2p/<id>` line and is
/// greeted over it; `--no-websocket` leaves the default `/ws` listener out.
#[test]
fn a_node_listens_on_websocket_and_is_greeted_over_it_unless_turned_off() {
    let mut args = local_args(None);
    args.extend([
        "--listen".to_owned(),
        "/ip4/127.0.0.1/tcp/0/ws".to_owned(),
        "--message".to_owned(),
        "a".to_owned(),
    ]);
    let mut a = Node::start(&args, &[]);
    let line = a.wait_for("LISTEN on WebSocket", |l| l.starts_with("LISTEN ") && l.contains("/ws/p2p/"));
    let ws_addr = &line["LISTEN ".len()..];
    let a_id = a.peer_id();
    assert!(ws_addr.ends_with(&format!("/ws/p2p/{a_id}")), "{ws_addr}");
    let out = output(&["greet", ws_addr, "--message", "over ws", "--timeout", "20s"]);
    assert!(out.status.success(), "greet failed: {}", stderr(&out));
    let line = stdout(&out);
    assert!(line.starts_with(&format!("GREETED {a_id} rtt_ms=")), "{line}");
    assert!(line.contains(" observed=/ip4/127.0.0.1/tcp/") && line.contains("/ws "), "{line}");

    let out = output(&["run", "--no-mdns", "--no-websocket", "--listen", "/ip4/127.0.0.1/tcp/0/ws"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--no-websocket"), "{}", stderr(&out));
}

fn greeted(peer_id: &str) -> impl Fn(&str) -> bool {
    let prefix = format!("GREETED {peer_id} rtt_ms=");
    move |line| line.starts_with(&prefix)
}

#[test]
fn greet_to_a_dead_address_fails_with_a_one_line_reason() {
    // A port nobody listens on any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let peer = "12D3KooWM7N1uQr9o9kbNm4BzyzkR5icTqkWSCzbU2THZyxuRamV";
    let addr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{peer}");
    let started = Instant::now();
    let out = output(&["greet", &addr, "--timeout", "1s"]);
    assert!(!out.status.success());
    assert!(started.elapsed() < DEADLINE);
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(&addr), "{err}");
    assert!(stdout(&out).is_empty());

    let out = output(&["greet", &format!("/ip4/127.0.0.1/tcp/{port}")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/p2p/"), "{}", stderr(&out));
}

#[test]
fn two_nodes_on_the_default_key_file_get_two_identities() {
    let data = tempfile::tempdir().unwrap();
    let env = [("XDG_DATA_HOME", data.path())];
    let mut first = Node::start(&local_args(None), &env);
    let first_id = first.peer_id();
    let mut second = Node::start(&local_args(None), &env);
    let second_id = second.peer_id();
    assert_ne!(first_id, second_id);
    let dir = data.path().join("p2p-node");
    assert!(dir.join("key").is_file() && dir.join("key-1").is_file());

    // `id` names the identity of the default key file, held or not.
    let out = p2p_node().env("XDG_DATA_HOME", data.path()).arg("id").output().unwrap();
    assert_eq!(stdout(&out).trim(), first_id);
}

/// `--timestamps` puts the wall-clock time (ms since the epoch) before every
/// line, and a node's `LISTEN` lines come before anything about its peers,
/// here a peer it dials at start.
#[test]
fn with_timestamps_every_line_is_stamped_and_listen_lines_come_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut a_args = local_args(Some(&dir.path().join("a.key")));
    a_args.extend(["--interval", "200ms"].map(String::from));
    let mut a = Node::start(&a_args, &[]);
    let a_addr = a.listen_addr();
    let a_id = a.peer_id();

    let mut b_args = local_args(Some(&dir.path().join("b.key")));
    b_args.extend(["--interval", "200ms", "--timestamps", "--peer", &a_addr].map(String::from));
    let mut b = Node::start(&b_args, &[]);
    let prefix = format!("GREETED {a_id} rtt_ms=");
    b.wait_for("GREETED a", |l| l.split_once(' ').is_some_and(|(_, rest)| rest.starts_with(&prefix)));
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let mut keywords = Vec::new();
    for line in &b.seen {
        let (ms, rest) = line.split_once(' ').unwrap_or_else(|| panic!("no timestamp: {line}"));
        let ms: u128 = ms.parse().unwrap_or_else(|_| panic!("no timestamp: {line}"));
        assert!(ms <= since_epoch && since_epoch - ms < 60_000, "not the time: {line}");
        keywords.push(rest.split(' ').next().unwrap_or_default().to_owned());
    }
    assert_eq!(keywords[..2], ["LISTEN", "LISTEN"], "{:?}", b.seen);
    assert!(keywords.contains(&"CONNECTED".to_owned()), "{:?}", b.seen);
}

/// The scheduling policy (field 41 of `stat`) of `pid`'s libp2p timer thread
/// (futures-timer's), if it runs.
#[cfg(target_os = "linux")]
fn timer_thread_policy(pid: u32) -> Option<u32> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let task = task.ok()?.path();
        let Ok(comm) = std::fs::read_to_string(task.join("comm")) else { continue };
        if comm.trim_end() == "futures-timer" {
            let stat = std::fs::read_to_string(task.join("stat")).ok()?;
            return stat.rsplit_once(')')?.1.split_whitespace().nth(41 - 3)?.parse().ok();
        }
    }
    None
}

/// `p2p-node` starts libp2p's timer thread at idle priority (SCHED_IDLE, 5)
/// before anything else; `--no-idle-timer` leaves it at normal (0).
#[cfg(target_os = "linux")]
#[test]
fn the_node_runs_libp2p_timer_thread_at_idle_priority_unless_told_not_to() {
    const SCHED_OTHER: u32 = 0;
    const SCHED_IDLE: u32 = 5;
    let dir = tempfile::tempdir().unwrap();
    for (flag, expected) in [(None, SCHED_IDLE), (Some("--no-idle-timer"), SCHED_OTHER)] {
        let mut args = local_args(Some(&dir.path().join(format!("{expected}.key"))));
        args.extend(flag.map(String::from));
        let mut node = Node::start(&args, &[]);
        let addr = node.listen_addr();
        // A connection arms libp2p's timers (the thread starts on the first).
        let out = output(&["greet", &addr, "--timeout", "20s"]);
        assert!(out.status.success(), "greet failed: {}", stderr(&out));
        assert_eq!(timer_thread_policy(node.child.id()), Some(expected), "{flag:?}");
    }
}
