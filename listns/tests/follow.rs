//! Root tests of `listns --follow --json`. Each test starts the listns binary
//! as a follower and waits until it is ready. Then it runs real commands that
//! create, enter, pin and free namespaces, and waits for the event lines about
//! its own PIDs and namespace ids. Other work may run on this machine, so no
//! test counts events that it did not cause.
//!
//! Needs root, `unshare`, `ip` and `python3`. Without root every test prints
//! why and passes.

mod common;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{
    NetnsName, NsHandle, Proc, TempFile, TmpNetnsMount, has_namespace_ids, is_root, listns_ok, parse_json, wait_until,
};
use listns::model::NsType;

/// How long a test waits for the events it expects after its action.
/// Generous, because other work may load the machine.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the follower may take to load its eBPF programs, scan and print
/// the snapshot.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the follower may take to exit after SIGINT or a closed stdout.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The storm: its number of children, how long the helper may take, and how
/// long the follower may take after the helper to report every event.
const STORM_CHILDREN: usize = 5000;
const STORM_TIMEOUT: Duration = Duration::from_secs(180);
const STORM_CATCH_UP: Duration = Duration::from_secs(60);
/// How long a wait for events takes lines before checking them again.
const BATCH: Duration = Duration::from_millis(50);

/// The line on stderr after which the eBPF follower reports every change.
const READY_EBPF: &str = "listns: following namespace changes through eBPF";
/// The same line of the polling backend.
const READY_POLL: &str = "listns: following namespace changes by polling";

// `CLONE_NEW*` flags from <linux/sched.h>, written out so that the tests do
// not take them from the code under test.
const CLONE_NEWTIME: u64 = 0x0000_0080;
const CLONE_NEWNS: u64 = 0x0002_0000;
const CLONE_NEWCGROUP: u64 = 0x0200_0000;
const CLONE_NEWUTS: u64 = 0x0400_0000;
const CLONE_NEWIPC: u64 = 0x0800_0000;
const CLONE_NEWUSER: u64 = 0x1000_0000;
const CLONE_NEWPID: u64 = 0x2000_0000;
const CLONE_NEWNET: u64 = 0x4000_0000;

/// The storm fills the ring buffer of every follower that runs at the same
/// time. The other tests share this lock for reading and the storm takes it
/// for writing, so the storm does not make them lose events.
static STORM_LOCK: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    STORM_LOCK.read().unwrap_or_else(PoisonError::into_inner)
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    STORM_LOCK.write().unwrap_or_else(PoisonError::into_inner)
}

/// Serialises the start of followers in this binary. A starting follower
/// keeps an fd open on every namespace while it scans, which delays the
/// `destroyed` event of a namespace that another test frees at that moment
/// (it is reported `pinned`, then `destroyed` by the next liveness check).
static START_LOCK: Mutex<()> = Mutex::new(());

/// Reads a child's stderr in a thread, keeping all of it and signalling the
/// first line that starts with one of `ready_lines`.
fn read_stderr(stderr: ChildStderr, ready_lines: &'static [&'static str]) -> (Arc<Mutex<String>>, Receiver<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let (ready_sender, ready) = mpsc::channel();
    let kept = Arc::clone(&text);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if ready_lines.iter().any(|r| line.starts_with(r)) {
                let _ = ready_sender.send(());
            }
            let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
            kept.push_str(&line);
            kept.push('\n');
        }
    });
    (text, ready)
}

/// A `listns --follow --json` child. Dropping it kills and reaps it, so a
/// failed assert leaves no follower behind.
struct Follower {
    child: Child,
    pid: i32,
    args: Vec<String>,
    /// Lines of stdout after the snapshot, read by a thread so that waiting
    /// can time out; disconnected when stdout closes.
    lines: Receiver<String>,
    /// Every event line received so far, as printed and parsed.
    raw: Vec<String>,
    events: Vec<Value>,
    stderr: Arc<Mutex<String>>,
    /// The first line: the snapshot document.
    snapshot: Value,
}

impl Follower {
    /// Starts `listns --follow --json` with the eBPF backend (the default
    /// `auto`, which must not fall back to polling here) and waits until it
    /// reports changes.
    fn start(extra: &[&str]) -> Follower {
        Follower::start_with(extra, &[READY_EBPF])
    }

    /// Starts a follower with the polling backend, which takes a snapshot
    /// every `interval` seconds.
    fn start_polling(interval: &str) -> Follower {
        Follower::start_with(&["--backend", "poll", "--interval", interval], &[READY_POLL])
    }

    fn start_with(extra: &[&str], ready_lines: &'static [&'static str]) -> Follower {
        let _lock = START_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        let mut args: Vec<String> = vec!["--follow".into(), "--json".into()];
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_listns"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start listns {args:?}: {e}"));
        let pid = child.id() as i32;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let (stderr, ready) = read_stderr(child.stderr.take().expect("stderr is piped"), ready_lines);
        let mut follower = Follower {
            child,
            pid,
            args,
            lines,
            raw: Vec::new(),
            events: Vec::new(),
            stderr,
            snapshot: Value::Null,
        };

        let first = match follower.lines.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(err) => panic!(
                "listns {:?} printed no snapshot line within {START_TIMEOUT:?} ({err}); {}",
                follower.args,
                follower.report()
            ),
        };
        follower.snapshot =
            serde_json::from_str(&first).unwrap_or_else(|e| panic!("the snapshot line is invalid JSON ({e}): {first}"));
        assert_eq!(
            follower.snapshot["schema"], "listns.snapshot",
            "the first line of listns {:?} is not the snapshot",
            follower.args
        );
        if let Err(err) = ready.recv_timeout(START_TIMEOUT) {
            panic!(
                "listns {:?} did not print {ready_lines:?} within {START_TIMEOUT:?} ({err}); {}",
                follower.args,
                follower.report()
            );
        }
        follower
    }

    /// Reads one line into the event lists, panicking on a line that is
    /// not a JSON event.
    fn take_line(&mut self, line: String) {
        let event: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("listns printed an event line that is invalid JSON ({e}): {line}"));
        assert_eq!(
            event["schema"], "listns.event",
            "listns printed a line that is not an event: {line}"
        );
        self.raw.push(line);
        self.events.push(event);
    }

    /// Receives events until `done` accepts the list, or panics after
    /// `timeout` with the expectation and every event received.
    fn wait_for_within(&mut self, timeout: Duration, expected: &str, done: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.events) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.take_line(line),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("timed out after {timeout:?}; expected {expected}; {}", self.report())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait();
                    panic!(
                        "the follower closed stdout (status {status:?}); expected {expected}; {}",
                        self.report()
                    )
                }
            }
            self.take_batch(deadline);
        }
    }

    /// Takes the lines that have arrived, without waiting.
    fn take_available(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.take_line(line);
        }
    }

    /// Takes the lines that arrive within `BATCH` before asking `done`
    /// again. A storm's thousands of events come one line at a time, and a
    /// check after each line would make the storm's checks quadratic.
    fn take_batch(&mut self, deadline: Instant) {
        let until = (Instant::now() + BATCH).min(deadline);
        while let Ok(line) = self.lines.recv_timeout(until.saturating_duration_since(Instant::now())) {
            self.take_line(line);
        }
    }

    fn wait_for(&mut self, expected: &str, done: impl Fn(&[Value]) -> bool) {
        self.wait_for_within(EVENT_TIMEOUT, expected, done);
    }

    /// Waits for an event that `matches` and returns it.
    fn wait_event(&mut self, expected: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let index = self.wait_index(expected, matches);
        self.events[index].clone()
    }

    /// Waits for an event that `matches` and returns its index.
    fn wait_index(&mut self, expected: &str, matches: impl Fn(&Value) -> bool) -> usize {
        self.wait_for(expected, |events| events.iter().any(&matches));
        self.events.iter().position(matches).expect("found above")
    }

    /// Waits for the `created` event of a namespace that the task `pid`
    /// created, and returns the namespace as later events name it.
    fn wait_created(&mut self, expected: &str, ty: &str, pid: i32, ns: Ns) -> (Ns, Value) {
        let index = self.wait_index(expected, |e| is_by(e, "created", ty, pid) && ns.matches(&e["ns"]));
        (ns.since(index), self.events[index].clone())
    }

    /// Panics with the follower's report unless the namespace reference
    /// `value` (such as an event's `from`) is `expected`.
    fn assert_ns(&self, event: &Value, field: &str, expected: Ns) {
        assert!(
            expected.matches(&event[field]),
            "field {field}: expected {expected}, found {}\nin event {event}\n{}",
            event[field],
            self.report()
        );
    }

    /// Describes the follower for a failure: its command, every event line it
    /// printed, and its stderr. A long list goes to a file under the
    /// temporary directory.
    /// Returns what the follower has written to stderr so far.
    fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn report(&self) -> String {
        let stderr = self.stderr();
        let events = if self.raw.len() <= 1000 {
            self.raw.join("\n")
        } else {
            let path = std::env::temp_dir().join(format!("listns-follow-{}.jsonl", self.pid));
            let written = std::fs::write(&path, self.raw.join("\n") + "\n");
            let tail = self.raw[self.raw.len() - 50..].join("\n");
            format!(
                "(all of them in {}: {written:?}; the last 50 follow)\n{tail}",
                path.display()
            )
        };
        let lost = self.events.iter().filter(|e| kind(e) == "lost").count();
        let note = if lost > 0 {
            format!("\n({lost} lost events arrived: other work on this machine may have filled the ring buffer)")
        } else {
            String::new()
        };
        format!(
            "listns {:?} (PID {}) printed {} events:\n{events}\nits stderr:\n{stderr}{note}",
            self.args,
            self.pid,
            self.raw.len()
        )
    }

    /// Panics with the follower's report unless `event[field] == expected`.
    fn assert_field(&self, event: &Value, field: &str, expected: impl Into<Value>) {
        let expected = expected.into();
        assert!(
            event[field] == expected,
            "field {field}: expected {expected}, found {}\nin event {event}\n{}",
            event[field],
            self.report()
        );
    }

    /// Waits for the `unnamed` and `destroyed` events of network namespace
    /// `net` after its bind mount at `path` was removed, and panics unless
    /// `unnamed` names `path` and comes first.
    fn wait_unnamed_then_destroyed(&mut self, net: Ns, path: &str) {
        self.wait_for(
            &format!("unnamed and destroyed events for net namespace {net} after ip netns del"),
            |events| any_about(events, "unnamed", "net", net) && any_about(events, "destroyed", "net", net),
        );
        let unnamed = find_about(&self.events, "unnamed", "net", net).expect("found above");
        assert!(
            names_mount(&unnamed, path),
            "the unnamed event does not name the bind mount {path}: {unnamed}\n{}",
            self.report()
        );
        let order = (
            index_about(&self.events, "unnamed", "net", net),
            index_about(&self.events, "destroyed", "net", net),
        );
        assert!(
            order.0 < order.1,
            "expected unnamed before destroyed for net namespace {net}, found them at {order:?}\n{}",
            self.report()
        );
    }

    /// Panics unless a `destroyed` event came from a liveness check
    /// (`cause: "check"`) or from a new namespace that took the inode number
    /// first (`cause: "recycled"`). These are the two signs without the
    /// `ns_free` hook, and the second is common because the kernel gives a
    /// freed inode number to the next namespace that other tests create.
    fn assert_unhooked_destroy(&self, event: &Value) {
        let origin = match event["cause"].as_str() {
            Some("check") => "check",
            Some("recycled") => "kernel",
            _ => panic!(
                "field cause: expected \"check\" or \"recycled\", found {}\nin event {event}\n{}",
                event["cause"],
                self.report()
            ),
        };
        self.assert_field(event, "origin", origin);
    }

    /// Panics unless the event's `flags` contain every bit of `bits`.
    fn assert_flags_contain(&self, event: &Value, bits: u64) {
        let flags = event["flags"].as_u64();
        assert!(
            flags.is_some_and(|f| f & bits == bits),
            "flags: expected the bits {bits:#x}, found {}\nin event {event}\n{}",
            event["flags"],
            self.report()
        );
    }

    /// Sends SIGINT, reads the events that listns drains and flushes before
    /// it exits, and asserts exit status 0.
    fn stop(&mut self) {
        let pid = rustix::process::Pid::from_raw(self.pid).expect("child PIDs are positive");
        rustix::process::kill_process(pid, rustix::process::Signal::INT)
            .unwrap_or_else(|e| panic!("failed to send SIGINT to the follower (PID {}): {e}", self.pid));
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.take_line(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "the follower kept stdout open {EXIT_TIMEOUT:?} after SIGINT; {}",
                    self.report()
                ),
            }
        }
        let status = wait_exit(&mut self.child, deadline)
            .unwrap_or_else(|| panic!("the follower did not exit after SIGINT; {}", self.report()));
        assert!(
            status.success(),
            "the follower exited with {status} after SIGINT, expected 0; {}",
            self.report()
        );
    }

    /// Asserts that the follower process is still running.
    fn assert_running(&mut self) {
        let status = self.child.try_wait().expect("try_wait on the follower failed");
        assert!(
            status.is_none(),
            "the follower exited with {status:?}; {}",
            self.report()
        );
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        // Kill the child only if it has not been reaped by `stop` already.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits for `child` to exit until `deadline`; `None` if it is still running.
fn wait_exit(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().expect("try_wait failed") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A process that this test did not start directly (a grandchild), killed
/// with SIGKILL when dropped while its parent is still `parent`. Checking
/// the parent keeps the guard from killing a reused PID.
struct KillOnDrop {
    pid: i32,
    parent: i32,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if parent_of(self.pid) == Some(self.parent)
            && let Some(pid) = rustix::process::Pid::from_raw(self.pid)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Returns the parent PID of `pid` from `/proc/PID/stat`.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; state and PPID follow the last ')'.
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(1)?.parse().ok()
}

/// Returns the children of a single-threaded process.
fn children_of(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Runs a command to completion, asserts success and returns its PID.
fn run_pid(program: &str, args: &[&str]) -> i32 {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to start {program} {args:?}: {e}"));
    let pid = child.id() as i32;
    let status = child.wait().expect("waiting for the child failed");
    assert!(status.success(), "{program} {args:?} failed with {status}");
    pid
}

/// A namespace as the tests find it in events: by its 64-bit id where the
/// kernel has ids (Linux 6.18+), else by its inode number. The kernel reuses
/// the inode numbers of freed namespaces, so a match by inode number counts
/// only from the event index `since` on, the namespace's `created` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ns {
    inode: u64,
    id: Option<u64>,
    since: usize,
}

impl Ns {
    /// Returns the namespace that an event reference (`ns`, `from`, `to`) names.
    fn of(reference: &Value) -> Ns {
        Ns {
            inode: reference["inode"].as_u64().unwrap_or(0),
            id: reference["id"].as_u64(),
            since: 0,
        }
    }

    /// Returns this namespace with matches by inode number counted from event `index` on.
    fn since(self, index: usize) -> Ns {
        Ns { since: index, ..self }
    }

    /// Returns whether an event's namespace reference names this namespace.
    fn matches(&self, reference: &Value) -> bool {
        match self.id {
            Some(id) => reference["id"].as_u64() == Some(id),
            None => reference["inode"].as_u64() == Some(self.inode),
        }
    }
}

impl std::fmt::Display for Ns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.id {
            Some(id) => write!(f, "id {id}"),
            None => write!(f, "inode {}", self.inode),
        }
    }
}

/// Opens namespace `ty` of a task and returns it as events name it. The fd
/// is closed before returning, so the test does not keep the namespace
/// alive. Before Linux 6.18 it has no id, and the first such namespace of a
/// test prints that the test matches events by inode number.
fn ns_of(path: &str, ty: NsType) -> Ns {
    let handle = NsHandle::open(path, ty);
    if handle.id.is_none() {
        announce_inode_matching();
    }
    Ns {
        inode: handle.key.inode,
        id: handle.id,
        since: 0,
    }
}

/// Prints once per test (libtest names each test's thread after it) that
/// events are matched by inode number, after checking that the kernel
/// predates `NS_GET_ID`.
fn announce_inode_matching() {
    thread_local! {
        static ANNOUNCED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if ANNOUNCED.with(|announced| announced.replace(true)) {
        return;
    }
    let test = std::thread::current().name().unwrap_or("follow test").to_string();
    let ids = has_namespace_ids(
        &test,
        "events matched by inode number after each namespace's created event",
    );
    assert!(
        !ids,
        "{test}: NS_GET_ID works on /proc/self/ns/net but failed on a namespace of the test"
    );
}

fn kind(event: &Value) -> &str {
    event["event"].as_str().unwrap_or("")
}

fn ns_type(event: &Value) -> &str {
    event["ns"]["type"].as_str().unwrap_or("")
}

fn ns_id(event: &Value) -> Option<u64> {
    event["ns"]["id"].as_u64()
}

fn pid_of(event: &Value) -> Option<i64> {
    event["pid"].as_i64()
}

/// Returns whether `event` is a `kind` event about namespace `ns` of type
/// `ty`. It does not look at the event's index: see [`any_about`].
fn is_about(event: &Value, event_kind: &str, ty: &str, ns: Ns) -> bool {
    kind(event) == event_kind && ns_type(event) == ty && ns.matches(&event["ns"])
}

/// Returns the index of the first `kind` event about namespace `ns` of type
/// `ty` at or after `ns.since`.
fn index_about(events: &[Value], event_kind: &str, ty: &str, ns: Ns) -> Option<usize> {
    let later = events.get(ns.since..).unwrap_or_default();
    later
        .iter()
        .position(|e| is_about(e, event_kind, ty, ns))
        .map(|i| ns.since + i)
}

/// Returns whether there is a `kind` event about namespace `ns` of type
/// `ty` at or after `ns.since`.
fn any_about(events: &[Value], event_kind: &str, ty: &str, ns: Ns) -> bool {
    index_about(events, event_kind, ty, ns).is_some()
}

/// Returns the first `kind` event about namespace `ns` of type `ty` at or
/// after `ns.since`.
fn find_about(events: &[Value], event_kind: &str, ty: &str, ns: Ns) -> Option<Value> {
    index_about(events, event_kind, ty, ns).map(|i| events[i].clone())
}

/// Returns whether `event` is a `kind` event about a namespace of type `ty`
/// by the task with PID `pid`.
fn is_by(event: &Value, event_kind: &str, ty: &str, pid: i32) -> bool {
    kind(event) == event_kind && ns_type(event) == ty && pid_of(event) == Some(i64::from(pid))
}

/// Returns whether a holder list names the bind mount at `path`.
fn names_mount(event: &Value, path: &str) -> bool {
    event["holders"].as_array().is_some_and(|holders| {
        holders
            .iter()
            .any(|h| h["kind"] == "bind_mount" && h["text"].as_str().is_some_and(|t| t.contains(path)))
    })
}

/// Returns the index of the first event that matches, to check the order of two events.
fn position(events: &[Value], matches: impl Fn(&Value) -> bool) -> Option<usize> {
    events.iter().position(matches)
}

#[test]
fn short_lived_netns_created_and_destroyed() {
    if !is_root("short_lived_netns_created_and_destroyed") {
        return;
    }
    let _lock = shared();
    let own_net = ns_of("/proc/self/ns/net", NsType::Net);
    let mut follower = Follower::start(&[]);

    let pid = run_pid("unshare", &["-n", "true"]);
    let index = follower.wait_index(&format!("a created net event of PID {pid} (unshare -n true)"), |e| {
        is_by(e, "created", "net", pid)
    });
    let created = follower.events[index].clone();
    follower.assert_field(&created, "origin", "kernel");
    follower.assert_field(&created, "tid", pid);
    follower.assert_field(&created, "syscall", "unshare");
    follower.assert_field(&created, "flags", CLONE_NEWNET);
    follower.assert_ns(&created, "from", own_net);
    follower.assert_field(&created, "to", created["ns"].clone());
    let net = Ns::of(&created["ns"]).since(index);
    assert!(
        net.id.is_some() == own_net.id.is_some(),
        "the created event has an id only where NS_GET_ID works: {created}"
    );
    assert!(
        !own_net.matches(&created["ns"]),
        "unshare -n reported the host's net namespace: {created}"
    );

    follower.wait_for(&format!("a destroyed event for net namespace {net}"), |events| {
        any_about(events, "destroyed", "net", net)
    });
    follower.stop();
}

#[test]
fn user_and_net_destroyed_on_kill() {
    if !is_root("user_and_net_destroyed_on_kill") {
        return;
    }
    let _lock = shared();
    let mut follower = Follower::start(&[]);

    let sleeper = Proc::spawn_until_comm("unshare", &["-U", "-r", "-n", "sleep", "600"], "sleep");
    let pid = sleeper.pid();
    let user = ns_of(&format!("/proc/{pid}/ns/user"), NsType::User);
    let net = ns_of(&format!("/proc/{pid}/ns/net"), NsType::Net);
    let (user, created_user) = follower.wait_created(
        &format!("a created event for user namespace {user} of PID {pid}"),
        "user",
        pid,
        user,
    );
    let (net, created_net) = follower.wait_created(
        &format!("a created event for net namespace {net} of PID {pid}"),
        "net",
        pid,
        net,
    );
    for created in [created_user, created_net] {
        follower.assert_field(&created, "syscall", "unshare");
        follower.assert_flags_contain(&created, CLONE_NEWUSER | CLONE_NEWNET);
    }

    drop(sleeper);
    follower.wait_for(
        &format!("destroyed events for user namespace {user} and net namespace {net} after PID {pid} was killed"),
        |events| any_about(events, "destroyed", "user", user) && any_about(events, "destroyed", "net", net),
    );
    follower.stop();
}

#[test]
fn pid_namespace_and_first_child() {
    if !is_root("pid_namespace_and_first_child") {
        return;
    }
    let _lock = shared();
    let mut follower = Follower::start(&[]);

    // `--kill-child` sends SIGKILL to the child when unshare dies, so
    // killing unshare cannot leave an orphaned `sleep 600` behind.
    let unshare = Proc::spawn(Command::new("unshare").args(["-p", "-f", "--kill-child", "sleep", "600"]));
    let parent = unshare.pid();
    let mut child = 0;
    wait_until(&format!("unshare -p -f (PID {parent}) to fork sleep"), || {
        child = children_of(parent).first().copied().unwrap_or(0);
        child != 0 && common::proc_comm(child).as_deref() == Some("sleep")
    });
    let child_guard = KillOnDrop { pid: child, parent };
    let pid_ns = ns_of(&format!("/proc/{child}/ns/pid"), NsType::Pid);

    let (pid_ns, created) = follower.wait_created(
        &format!("a created pid event for namespace {pid_ns} by unshare (PID {parent})"),
        "pid",
        parent,
        pid_ns,
    );
    follower.assert_field(&created, "syscall", "unshare");
    follower.assert_flags_contain(&created, CLONE_NEWPID);

    let entered = follower.wait_event(
        &format!("an event of the first child (PID {child}) in pid namespace {pid_ns}"),
        |e| pid_of(e) == Some(i64::from(child)) && ns_type(e) == "pid" && pid_ns.matches(&e["ns"]),
    );
    follower.assert_field(&entered, "event", "entered");
    follower.assert_field(&entered, "syscall", "clone");
    follower.assert_field(&entered, "ppid", parent);

    // Killing PID 1 of the namespace ends it; unshare reaps it and exits.
    // Killing unshare as well would leave the child an orphan, whose zombie
    // keeps the namespace alive until PID 1 of the machine reaps it.
    drop(child_guard);
    wait_until(&format!("unshare (PID {parent}) to exit after its child"), || {
        common::proc_state(parent).is_none_or(|state| state == 'Z')
    });
    drop(unshare);
    follower.wait_for(&format!("a destroyed event for pid namespace {pid_ns}"), |events| {
        any_about(events, "destroyed", "pid", pid_ns)
    });
    follower.stop();
}

/// Becomes the child subreaper, starts `unshare -p -f --kill-child sleep 600`
/// and prints its PID. Orphans (the sleep, once unshare is killed) become
/// its children, and it leaves them zombies until SIGUSR1, then reaps every
/// child and prints `reaped`.
const LAZY_REAPER: &str = r#"
import ctypes, os, signal, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("PR_SET_CHILD_SUBREAPER failed with errno %d" % ctypes.get_errno())
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
unshare = subprocess.Popen(["unshare", "-p", "-f", "--kill-child", "sleep", "600"], stdin=subprocess.DEVNULL)
print(unshare.pid, flush=True)
signal.sigwait([signal.SIGUSR1])
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
print("reaped", flush=True)
sys.stdin.readline()
"#;

/// A zombie keeps its pid namespace alive until it is reaped, and a reaper
/// may take its time (PID 1 of a container, or of this machine). The
/// namespace must be reported destroyed once the zombie is gone.
#[test]
fn pid_namespace_freed_when_zombie_reaped() {
    if !is_root("pid_namespace_freed_when_zombie_reaped") {
        return;
    }
    let _lock = shared();
    let mut follower = Follower::start(&[]);

    let reaper = Proc::python(LAZY_REAPER, &[]);
    let unshare: i32 = reaper.read_number();
    let unshare_guard = KillOnDrop {
        pid: unshare,
        parent: reaper.pid(),
    };
    let mut child = 0;
    wait_until(&format!("unshare -p -f (PID {unshare}) to fork sleep"), || {
        child = children_of(unshare).first().copied().unwrap_or(0);
        child != 0 && common::proc_comm(child).as_deref() == Some("sleep")
    });
    let child_guard = KillOnDrop {
        pid: child,
        parent: unshare,
    };
    let pid_ns = ns_of(&format!("/proc/{child}/ns/pid"), NsType::Pid);
    let (pid_ns, _) = follower.wait_created(
        &format!("a created event (by PID {unshare}) for pid namespace {pid_ns}"),
        "pid",
        unshare,
        pid_ns,
    );
    follower.wait_for(
        &format!("an entered event (by PID {child}) for pid namespace {pid_ns}"),
        |events| {
            events[pid_ns.since..]
                .iter()
                .any(|e| is_about(e, "entered", "pid", pid_ns) && pid_of(e) == Some(i64::from(child)))
        },
    );

    // SIGKILL to unshare; `--kill-child` passes it on to the sleep, which
    // becomes a zombie of the reaper.
    drop(unshare_guard);
    wait_until(&format!("PID {child} to be a zombie of the reaper"), || {
        common::proc_state(child) == Some('Z') && parent_of(child) == Some(reaper.pid())
    });
    drop(child_guard);
    // Long enough for every liveness check after the last exit (20, 100
    // and 400 ms) while the zombie still keeps the namespace alive.
    std::thread::sleep(Duration::from_millis(1500));
    follower.take_available();
    let early = find_about(&follower.events, "destroyed", "pid", pid_ns);
    assert!(
        early.is_none(),
        "pid namespace {pid_ns} was reported destroyed while the zombie PID {child} holds it: {early:?}\n{}",
        follower.report()
    );

    let reaper_pid = rustix::process::Pid::from_raw(reaper.pid()).expect("child PIDs are positive");
    rustix::process::kill_process(reaper_pid, rustix::process::Signal::USR1)
        .expect("failed to send SIGUSR1 to the reaper");
    assert_eq!(reaper.read_line(), "reaped");
    follower.wait_for(
        &format!("a destroyed event for pid namespace {pid_ns} after its zombie PID {child} was reaped"),
        |events| any_about(events, "destroyed", "pid", pid_ns),
    );
    follower.stop();
}

#[test]
fn time_namespace_on_exec() {
    if !is_root("time_namespace_on_exec") {
        return;
    }
    let _lock = shared();
    let mut follower = Follower::start(&[]);

    let sleeper = Proc::spawn_until_comm("unshare", &["-T", "sleep", "600"], "sleep");
    let pid = sleeper.pid();
    let time = ns_of(&format!("/proc/{pid}/ns/time_for_children"), NsType::Time);
    let switched = NsHandle::open(format!("/proc/{pid}/ns/time"), NsType::Time).key.inode == time.inode;

    let (time, created) = follower.wait_created(
        &format!("a created time event for namespace {time} by PID {pid}"),
        "time",
        pid,
        time,
    );
    follower.assert_field(&created, "syscall", "unshare");
    follower.assert_field(&created, "flags", CLONE_NEWTIME);

    // unshare(CLONE_NEWTIME) changes only time_for_children; the exec moves
    // the task itself into the new namespace.
    if switched {
        let entered = follower.wait_event(
            &format!("an entered time event for namespace {time} by the exec of PID {pid}"),
            |e| is_about(e, "entered", "time", time) && pid_of(e) == Some(i64::from(pid)),
        );
        follower.assert_field(&entered, "syscall", "execve");
    } else {
        assert!(
            common::kernel_version() < (6, 12),
            "the exec of PID {pid} did not enter its time_for_children namespace {time} on Linux 6.12 or later"
        );
        eprintln!(
            "time_namespace_on_exec: this kernel does not switch time namespaces on exec, so the test skips \
             the entered event of the exec"
        );
    }

    drop(sleeper);
    follower.wait_for(&format!("a destroyed event for time namespace {time}"), |events| {
        any_about(events, "destroyed", "time", time)
    });
    follower.stop();
}

#[test]
fn cgroup_ipc_uts_mnt_created() {
    if !is_root("cgroup_ipc_uts_mnt_created") {
        return;
    }
    let _lock = shared();
    let mut follower = Follower::start(&[]);

    let sleeper = Proc::spawn_until_comm("unshare", &["-C", "-i", "-u", "-m", "sleep", "600"], "sleep");
    let pid = sleeper.pid();
    let all = CLONE_NEWCGROUP | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNS;
    let mut expected: Vec<(&str, Ns)> = Vec::new();
    for (name, ty) in [
        ("cgroup", NsType::Cgroup),
        ("ipc", NsType::Ipc),
        ("uts", NsType::Uts),
        ("mnt", NsType::Mnt),
    ] {
        let ns = ns_of(&format!("/proc/{pid}/ns/{name}"), ty);
        let (ns, created) =
            follower.wait_created(&format!("a created {name} event of PID {pid} for {ns}"), name, pid, ns);
        follower.assert_field(&created, "syscall", "unshare");
        follower.assert_field(&created, "flags", all);
        expected.push((name, ns));
    }

    drop(sleeper);
    follower.wait_for(
        &format!("destroyed events for the namespaces {expected:?} after PID {pid} was killed"),
        |events| expected.iter().all(|&(ty, ns)| any_about(events, "destroyed", ty, ns)),
    );
    follower.stop();
}

/// Calls clone3 (system call 435 on x86_64 and aarch64) with a
/// `struct clone_args` of CLONE_NEWUTS and exit_signal SIGCHLD, and no stack,
/// so the child continues like a fork. The parent prints the child's PID,
/// the child sleeps until killed (or until the parent dies).
const CLONE3_UTS: &str = r#"
import ctypes, os, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
# flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls
args = ctypes.create_string_buffer(struct.pack("=8Q", 0x04000000, 0, 0, 0, 17, 0, 0, 0), 64)
pid = libc.syscall(ctypes.c_long(435), args, ctypes.c_size_t(64))
if pid == 0:
    libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    time.sleep(600)
    os._exit(0)
if pid < 0:
    print("clone3 failed with errno", ctypes.get_errno(), file=sys.stderr, flush=True)
    sys.exit(1)
print(pid, flush=True)
sys.stdin.readline()
"#;

#[test]
fn clone3_new_uts_created() {
    if !is_root("clone3_new_uts_created") {
        return;
    }
    let _lock = shared();
    let mut follower = Follower::start(&[]);

    let python = Proc::python(CLONE3_UTS, &[]);
    let parent = python.pid();
    let child: i32 = python.read_number();
    let child_guard = KillOnDrop { pid: child, parent };
    let uts = ns_of(&format!("/proc/{child}/ns/uts"), NsType::Uts);

    let (uts, created) = follower.wait_created(
        &format!("a created uts event for namespace {uts} by the clone3 child (PID {child})"),
        "uts",
        child,
        uts,
    );
    follower.assert_field(&created, "tid", child);
    follower.assert_field(&created, "ppid", parent);
    follower.assert_field(&created, "syscall", "clone");
    follower.assert_flags_contain(&created, CLONE_NEWUTS);

    drop(child_guard);
    follower.wait_for(&format!("a destroyed event for uts namespace {uts}"), |events| {
        any_about(events, "destroyed", "uts", uts)
    });
    drop(python);
    follower.stop();
}

#[test]
fn ip_netns_named_entered_unnamed() {
    if !is_root("ip_netns_named_entered_unnamed") {
        return;
    }
    let _lock = shared();
    let own_net = ns_of("/proc/self/ns/net", NsType::Net);
    let mut follower = Follower::start(&[]);

    let mut netns = NetnsName::add("follow");
    let path = netns.path_str().to_string();
    let net = ns_of(&path, NsType::Net);
    // `ip netns add` unshares in the ip process itself.
    let index = follower.wait_index(
        &format!("a created event by ip for net namespace {net} ({path})"),
        |e| is_about(e, "created", "net", net) && e["comm"] == "ip",
    );
    let net = net.since(index);
    follower.assert_field(&follower.events[index].clone(), "syscall", "unshare");
    follower.wait_for(&format!("a named event for net namespace {net} ({path})"), |events| {
        any_about(events, "named", "net", net)
    });
    let named = find_about(&follower.events, "named", "net", net).expect("found above");
    assert!(
        names_mount(&named, &path),
        "the named event does not name the bind mount {path}: {named}\n{}",
        follower.report()
    );

    let sleeper = Proc::spawn_until_comm("ip", &["netns", "exec", &netns.name, "sleep", "600"], "sleep");
    let pid = sleeper.pid();
    let entered = follower.wait_event(
        &format!("an entered event of PID {pid} (ip netns exec) into net namespace {net}"),
        |e| is_about(e, "entered", "net", net) && pid_of(e) == Some(i64::from(pid)),
    );
    follower.assert_field(&entered, "syscall", "setns");
    follower.assert_field(&entered, "flags", CLONE_NEWNET);
    follower.assert_ns(&entered, "from", own_net);
    follower.assert_ns(&entered, "to", net);

    drop(sleeper);
    netns.delete();
    follower.wait_unnamed_then_destroyed(net, &path);
    follower.stop();
}

/// Starts a thread that unshares CLONE_NEWUTS, prints its thread id and
/// blocks on stdin.
const THREAD_UNSHARE_UTS: &str = r#"
import ctypes, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
def run():
    if libc.unshare(0x04000000) != 0:
        print("unshare failed with errno", ctypes.get_errno(), file=sys.stderr, flush=True)
        sys.exit(1)
    print(threading.get_native_id(), flush=True)
    sys.stdin.readline()
thread = threading.Thread(target=run)
thread.start()
thread.join()
"#;

#[test]
fn thread_unshare_reports_tid() {
    if !is_root("thread_unshare_reports_tid") {
        return;
    }
    let _lock = shared();
    let mut follower = Follower::start(&[]);

    let python = Proc::python(THREAD_UNSHARE_UTS, &[]);
    let pid = python.pid();
    let tid: i32 = python.read_number();
    assert_ne!(tid, pid, "the unsharing thread is the main thread");
    let uts = ns_of(&format!("/proc/{pid}/task/{tid}/ns/uts"), NsType::Uts);

    let (uts, created) = follower.wait_created(
        &format!("a created uts event for namespace {uts} by thread {tid} of PID {pid}"),
        "uts",
        pid,
        uts,
    );
    follower.assert_field(&created, "tid", tid);
    follower.assert_field(&created, "syscall", "unshare");
    follower.assert_field(&created, "flags", CLONE_NEWUTS);

    drop(python);
    follower.wait_for(&format!("a destroyed event for uts namespace {uts}"), |events| {
        any_about(events, "destroyed", "uts", uts)
    });
    follower.stop();
}

/// Starts a thread that enters the network namespace of the nsfs file
/// `sys.argv[1]` with setns, prints its thread id and blocks on stdin.
const THREAD_SETNS_NET: &str = r#"
import ctypes, os, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
def run():
    fd = os.open(sys.argv[1], os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0:
        print("setns failed with errno", ctypes.get_errno(), file=sys.stderr, flush=True)
        sys.exit(1)
    os.close(fd)
    print(threading.get_native_id(), flush=True)
    sys.stdin.readline()
thread = threading.Thread(target=run)
thread.start()
thread.join()
"#;

#[test]
fn thread_setns_reports_tid() {
    if !is_root("thread_setns_reports_tid") {
        return;
    }
    let _lock = shared();
    let own_net = ns_of("/proc/self/ns/net", NsType::Net);
    let netns = NetnsName::add("setns");
    let net = ns_of(netns.path_str(), NsType::Net);
    let mut follower = Follower::start(&[]);

    let python = Proc::python(THREAD_SETNS_NET, &[netns.path_str()]);
    let pid = python.pid();
    let tid: i32 = python.read_number();
    assert_ne!(tid, pid, "the thread that called setns is the main thread");

    // The follower starts after the namespace exists, so an inode match
    // cannot belong to an earlier namespace.
    let entered = follower.wait_event(
        &format!("an entered net event for namespace {net} by thread {tid} of PID {pid}"),
        |e| is_about(e, "entered", "net", net) && pid_of(e) == Some(i64::from(pid)),
    );
    follower.assert_field(&entered, "tid", tid);
    follower.assert_field(&entered, "syscall", "setns");
    follower.assert_field(&entered, "flags", CLONE_NEWNET);
    follower.assert_ns(&entered, "from", own_net);
    follower.stop();
}

#[test]
fn bind_mount_pins_netns() {
    if !is_root("bind_mount_pins_netns") {
        return;
    }
    let _lock = shared();
    let mut follower = Follower::start(&[]);

    // The guard unmounts (lazily) and removes the file if the test fails.
    let mount = TmpNetnsMount {
        file: TempFile::create("pin"),
    };
    let path = mount.path_str().to_string();
    let sleeper = Proc::spawn_until_comm("unshare", &[&format!("--net={path}")[..], "sleep", "600"], "sleep");
    let pid = sleeper.pid();
    let net = ns_of(&path, NsType::Net);
    let (net, _) = follower.wait_created(
        &format!("a created event by PID {pid} for net namespace {net}"),
        "net",
        pid,
        net,
    );
    follower.wait_for(&format!("a named event ({path}) for net namespace {net}"), |events| {
        any_about(events, "named", "net", net)
    });
    let named = find_about(&follower.events, "named", "net", net).expect("found above");
    assert!(
        names_mount(&named, &path),
        "the named event does not name {path}: {named}\n{}",
        follower.report()
    );

    drop(sleeper);
    follower.wait_for(
        &format!("a pinned event for net namespace {net} after PID {pid} was killed"),
        |events| any_about(events, "pinned", "net", net),
    );
    let pinned = find_about(&follower.events, "pinned", "net", net).expect("found above");
    assert!(
        names_mount(&pinned, &path),
        "the pinned event does not name the bind mount {path} as holder: {pinned}\n{}",
        follower.report()
    );
    let early = find_about(&follower.events, "destroyed", "net", net);
    assert!(
        early.is_none(),
        "net namespace {net} was reported destroyed while {path} holds it: {early:?}\n{}",
        follower.report()
    );

    rustix::mount::unmount(&mount.file.path, rustix::mount::UnmountFlags::empty())
        .unwrap_or_else(|e| panic!("umount {path} failed: {e}"));
    follower.wait_for(
        &format!("unnamed and destroyed events for net namespace {net} after umount {path}"),
        |events| any_about(events, "unnamed", "net", net) && any_about(events, "destroyed", "net", net),
    );
    let unnamed = find_about(&follower.events, "unnamed", "net", net).expect("found above");
    assert!(
        names_mount(&unnamed, &path),
        "the unnamed event does not name {path}: {unnamed}\n{}",
        follower.report()
    );
    follower.assert_field(&unnamed, "syscall", "umount");
    follower.stop();
}

/// Outcome of the `ns_free` hook, as the follower's `-v` log reports it.
enum FreeHook {
    /// The log line `hook ns_free attached: TARGETS`.
    Attached(String),
    /// The log line `hook ns_free not attached, so ...: REASONS`.
    NotAttached(String),
}

/// Reads from the stderr of a follower started with `-v` whether the
/// `ns_free` hook attached; panics unless exactly one such line names it.
fn free_hook_of(follower: &Follower) -> FreeHook {
    let stderr = follower.stderr.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let attached: Vec<&str> = stderr
        .lines()
        .filter_map(|line| line.split_once("hook ns_free attached: ").map(|(_, targets)| targets))
        .collect();
    let missing: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("hook ns_free not attached, so "))
        .collect();
    match (attached.as_slice(), missing.as_slice()) {
        ([targets], []) => FreeHook::Attached(targets.to_string()),
        ([], [line]) => FreeHook::NotAttached(line.to_string()),
        _ => panic!(
            "expected one start-up line saying whether hook ns_free attached, found {} and {}; {}",
            attached.len(),
            missing.len(),
            follower.report()
        ),
    }
}

/// Returns whether `event` is a `kind` event about the namespace of type `ty`
/// with this inode number, and with this id where the kernel has ids.
fn is_about_inode(event: &Value, event_kind: &str, ty: &str, inode: u64, id: Option<u64>) -> bool {
    kind(event) == event_kind
        && ns_type(event) == ty
        && event["ns"]["inode"].as_u64() == Some(inode)
        && (id.is_none() || ns_id(event) == id)
}

/// A network namespace that only an fd of this test holds is reported
/// `destroyed` once the fd closes. Where the `ns_free` hook is attached, the
/// kernel's free reports it (`cause: "freed"`); elsewhere the liveness check
/// of pinned namespaces does (`cause: "check"`), and the start-up log says
/// why the hook is missing.
#[test]
fn fd_held_netns_destroyed_on_close() {
    if !is_root("fd_held_netns_destroyed_on_close") {
        return;
    }
    let _lock = shared();
    let mut follower = Follower::start(&["-v"]);
    let free_hook = free_hook_of(&follower);
    let kprobes = std::path::Path::new("/sys/bus/event_source/devices/kprobe/type").exists();
    match &free_hook {
        FreeHook::Attached(targets) => eprintln!("ns_free attached: {targets}"),
        FreeHook::NotAttached(line) => {
            assert!(
                !kprobes,
                "this kernel has kprobes, yet the follower did not attach ns_free: {line}\n{}",
                follower.report()
            );
            for program in ["fentry_proc_free_inum", "kprobe_proc_free_inum"] {
                assert!(
                    line.contains(&format!("{program}: ")),
                    "the start-up log gives no reason why {program} did not attach: {line}\n{}",
                    follower.report()
                );
            }
        }
    }

    let sleeper = Proc::spawn_until_comm("unshare", &["-n", "sleep", "600"], "sleep");
    let pid = sleeper.pid();
    let holder = NsHandle::open(format!("/proc/{pid}/ns/net"), NsType::Net);
    let (inode, id) = (holder.key.inode, holder.id);
    // Before Linux 6.18 there are no ids, and an inode number may have
    // belonged to an earlier namespace: later checks look only at the events
    // after this one.
    let is_created = |e: &Value| is_about_inode(e, "created", "net", inode, id) && pid_of(e) == Some(i64::from(pid));
    follower.wait_for(
        &format!("a created event for net:[{inode}] by PID {pid} (unshare -n sleep 600)"),
        |events| events.iter().any(is_created),
    );
    let created_at = position(&follower.events, is_created).expect("found above");

    drop(sleeper);
    if id.is_none() && matches!(free_hook, FreeHook::NotAttached(_)) {
        // NOTE: before Linux 6.18 a namespace cannot be opened by its id, so
        // without ns_free nothing shows that the fd still holds it, and it
        // is reported destroyed when its last task leaves.
        let destroyed_after = |events: &[Value]| {
            events[created_at..]
                .iter()
                .find(|e| is_about_inode(e, "destroyed", "net", inode, id))
                .cloned()
        };
        follower.wait_for(
            &format!("a destroyed event for net:[{inode}] after PID {pid} was killed"),
            |events| destroyed_after(events).is_some(),
        );
        let destroyed = destroyed_after(&follower.events).expect("found above");
        follower.assert_unhooked_destroy(&destroyed);
        follower.stop();
        return;
    }
    let pinned_after = |events: &[Value]| {
        position(&events[created_at..], |e| is_about_inode(e, "pinned", "net", inode, id)).map(|i| created_at + i)
    };
    follower.wait_for(
        &format!("a pinned event for net:[{inode}] after PID {pid} was killed, while this test holds an fd"),
        |events| pinned_after(events).is_some(),
    );
    let pinned_at = pinned_after(&follower.events).expect("found above");
    let early = position(&follower.events[created_at..], |e| {
        is_about_inode(e, "destroyed", "net", inode, id)
    });
    assert!(
        early.is_none(),
        "net:[{inode}] was reported destroyed while this test holds an fd to it\n{}",
        follower.report()
    );

    drop(holder);
    let destroyed = {
        let after_pin = |events: &[Value]| {
            events[pinned_at..]
                .iter()
                .find(|e| is_about_inode(e, "destroyed", "net", inode, id))
                .cloned()
        };
        follower.wait_for(
            &format!("a destroyed event for net:[{inode}] after its last fd closed"),
            |events| after_pin(events).is_some(),
        );
        after_pin(&follower.events).expect("found above")
    };
    match free_hook {
        FreeHook::Attached(_) => {
            follower.assert_field(&destroyed, "cause", "freed");
            follower.assert_field(&destroyed, "origin", "kernel");
        }
        FreeHook::NotAttached(_) => follower.assert_unhooked_destroy(&destroyed),
    }
    follower.stop();
}

#[test]
fn output_file_appends_events() {
    if !is_root("output_file_appends_events") {
        return;
    }
    let _lock = shared();
    let log = TempFile::create("events.jsonl");
    let earlier = r#"{"note":"written before listns started"}"#;
    std::fs::write(&log.path, format!("{earlier}\n")).expect("writing the log file failed");
    let mut follower = Follower::start(&["--output", log.path_str()]);

    let pid = run_pid("unshare", &["-u", "true"]);
    let index = follower.wait_index(&format!("a created uts event of PID {pid}"), |e| {
        is_by(e, "created", "uts", pid)
    });
    let uts = Ns::of(&follower.events[index]["ns"]).since(index);
    follower.wait_for(&format!("a destroyed event for uts namespace {uts}"), |events| {
        any_about(events, "destroyed", "uts", uts)
    });
    follower.stop();

    let mut text = String::new();
    File::open(&log.path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .unwrap_or_else(|e| panic!("reading {} failed: {e}", log.path.display()));
    assert!(
        text.ends_with('\n'),
        "{} does not end with a newline: {text}",
        log.path.display()
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(earlier),
        "the line written before listns started is gone from {}",
        log.path.display()
    );
    for line in &lines[1..] {
        let event: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{} has a line that is invalid JSON ({e}): {line}", log.path.display()));
        assert_eq!(event["schema"], "listns.event", "not an event: {line}");
    }
    let stdout: Vec<&str> = follower.raw.iter().map(String::as_str).collect();
    assert_eq!(
        &lines[1..],
        &stdout[..],
        "the events in {} differ from those on stdout",
        log.path.display()
    );
}

#[test]
fn closed_stdout_ends_quietly() {
    if !is_root("closed_stdout_ends_quietly") {
        return;
    }
    let _lock = shared();
    let _start = START_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let mut child = Command::new(env!("CARGO_BIN_EXE_listns"))
        .arg("--follow")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("failed to start listns --follow");
    let (stderr, ready) = read_stderr(child.stderr.take().expect("stderr is piped"), &[READY_EBPF]);
    // `head -1`: read one line, then close the pipe.
    let mut reader = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut first = String::new();
    reader.read_line(&mut first).expect("reading the first line failed");
    assert!(!first.is_empty(), "listns --follow printed nothing");
    drop(reader);
    drop(_start);

    // The snapshot may fill the pipe, so listns can see the closed pipe
    // before it is ready; otherwise the next event shows it. Each
    // `unshare -u true` causes events.
    let deadline = Instant::now() + START_TIMEOUT;
    let mut ready_seen = false;
    let status = loop {
        if let Some(status) = wait_exit(&mut child, Instant::now() + Duration::from_millis(200)) {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "listns --follow still ran {START_TIMEOUT:?} after its stdout closed; stderr:\n{}",
                stderr.lock().unwrap_or_else(PoisonError::into_inner)
            );
        }
        ready_seen = ready_seen || ready.try_recv().is_ok();
        if ready_seen {
            run_pid("unshare", &["-u", "true"]);
        }
    };
    // The stderr thread ends when listns closes stderr on exit.
    std::thread::sleep(Duration::from_millis(100));
    let stderr = stderr.lock().unwrap_or_else(PoisonError::into_inner).clone();
    assert!(
        status.success(),
        "listns --follow exited with {status} after its stdout closed, expected 0; stderr:\n{stderr}"
    );
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            let l = l.to_lowercase();
            l.contains("pipe") || l.contains("failed to write") || l.contains("broken")
        })
        .collect();
    assert!(
        complaints.is_empty(),
        "listns --follow complained about the closed stdout: {complaints:?}\nstderr:\n{stderr}"
    );
}

/// Forks `sys.argv[1]` children, at most 64 at a time, for at most
/// `sys.argv[2]` seconds. Each child unshares CLONE_NEWUTS `sys.argv[3]`
/// times (each time a new namespace) and exits. Prints the number of failed
/// children and then the PIDs of all, on one line each.
const STORM: &str = r#"
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
count = int(sys.argv[1])
deadline = time.monotonic() + float(sys.argv[2])
unshares = int(sys.argv[3])
running, pids, failed = [], [], 0
for _ in range(count):
    if time.monotonic() > deadline:
        break
    pid = os.fork()
    if pid == 0:
        for _ in range(unshares):
            if libc.unshare(0x04000000) != 0:
                os._exit(1)
        os._exit(0)
    running.append(pid)
    pids.append(pid)
    if len(running) >= 64:
        for done in running[:32]:
            if os.waitpid(done, 0)[1] != 0:
                failed += 1
        del running[:32]
for done in running:
    if os.waitpid(done, 0)[1] != 0:
        failed += 1
print(failed)
print(" ".join(map(str, pids)), flush=True)
"#;

/// Runs the storm helper, and returns its PID, the time it took and the
/// PIDs of its children. A PID may occur twice, because PIDs wrap around at
/// `/proc/sys/kernel/pid_max`.
fn run_storm_helper(unshares: usize) -> (i32, Duration, Vec<i64>) {
    let started = Instant::now();
    let helper = Command::new("python3")
        .args([
            "-c",
            STORM,
            &STORM_CHILDREN.to_string(),
            &STORM_TIMEOUT.as_secs().to_string(),
            &unshares.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("failed to start the storm helper (python3)");
    let helper_pid = helper.id() as i32;
    let output = helper.wait_with_output().expect("waiting for the storm helper failed");
    let storm_time = started.elapsed();
    assert!(
        output.status.success(),
        "the storm helper failed with {}",
        output.status
    );

    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut out_lines = stdout.lines();
    let failed: usize = out_lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("the storm helper printed no count of failed children: {stdout}"));
    let children: Vec<i64> = out_lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert_eq!(failed, 0, "{failed} storm children failed to unshare");
    assert_eq!(
        children.len(),
        STORM_CHILDREN,
        "the helper forked {} children in {storm_time:?}, expected {STORM_CHILDREN}",
        children.len()
    );
    (helper_pid, storm_time, children)
}

/// What a storm left in the follower's output.
struct StormResult {
    lost_events: usize,
}

/// The uts namespaces of a storm as the follower's events report them. A
/// namespace is keyed by its id, or, before Linux 6.18, by the index of its
/// `created` event, because the storm reuses inode numbers at once.
#[derive(Debug, Default)]
struct StormNamespaces {
    /// Key and PID of each namespace that a storm child was reported to create.
    created: HashMap<u64, i64>,
    /// Origin of the `destroyed` event of each key.
    destroyed: HashMap<u64, String>,
    /// The inode numbers of the storm's namespaces.
    inodes: HashSet<u64>,
}

/// Sorts the uts events of a storm (`is_storm` matches a storm child's
/// `created` event) into namespaces. Without ids, a `destroyed` event ends
/// the last namespace created with its inode number.
fn storm_namespaces(events: &[Value], is_storm: impl Fn(&Value) -> bool) -> StormNamespaces {
    let mut storm = StormNamespaces::default();
    // Without ids: the key of the storm namespace that has each inode number.
    let mut by_inode: HashMap<u64, u64> = HashMap::new();
    for (index, event) in events.iter().enumerate() {
        if ns_type(event) != "uts" {
            continue;
        }
        let inode = event["ns"]["inode"].as_u64().unwrap_or(0);
        let key = match ns_id(event) {
            Some(id) => Some(id),
            None if kind(event) == "created" => {
                let key = index as u64;
                if is_storm(event) {
                    by_inode.insert(inode, key);
                } else {
                    by_inode.remove(&inode);
                }
                Some(key)
            }
            None if kind(event) == "destroyed" => by_inode.remove(&inode),
            None => None,
        };
        let Some(key) = key else { continue };
        match kind(event) {
            "created" if is_storm(event) => {
                if let Some(pid) = pid_of(event) {
                    storm.created.insert(key, pid);
                    storm.inodes.insert(inode);
                }
            }
            "destroyed" => {
                let origin = event["origin"].as_str().unwrap_or("?").to_string();
                storm.destroyed.insert(key, origin);
            }
            _ => {}
        }
    }
    storm
}

/// Runs the storm while `follower` follows, stopped with SIGSTOP for the
/// whole storm if `pause`. Then checks that the namespaces of every child
/// were reported created or covered by a `lost` event, and that every one
/// reported was destroyed again. A fresh snapshot must agree.
fn storm(follower: &mut Follower, pause: bool, unshares: usize) -> StormResult {
    let follower_pid = rustix::process::Pid::from_raw(follower.pid).expect("child PIDs are positive");
    if pause {
        rustix::process::kill_process(follower_pid, rustix::process::Signal::STOP)
            .expect("failed to send SIGSTOP to the follower");
    }
    let started = Instant::now();
    let (helper_pid, storm_time, children) = run_storm_helper(unshares);
    // Namespace ids are never reused, unlike PIDs and inode numbers.
    let expected_namespaces = children.len() * unshares;
    let children: HashSet<i64> = children.into_iter().collect();
    if pause {
        rustix::process::kill_process(follower_pid, rustix::process::Signal::CONT)
            .expect("failed to send SIGCONT to the follower");
    }

    let is_storm = |e: &Value| e["ppid"].as_i64() == Some(i64::from(helper_pid)) && ns_type(e) == "uts";
    let settled = |events: &[Value]| {
        let lost = events.iter().any(|e| kind(e) == "lost");
        let storm = storm_namespaces(events, is_storm);
        (lost || storm.created.len() >= expected_namespaces)
            && storm.created.keys().all(|key| storm.destroyed.contains_key(key))
    };
    follower.wait_for_within(
        STORM_CATCH_UP,
        &format!(
            "{expected_namespaces} created uts events from the {STORM_CHILDREN} children of PID {helper_pid} \
             (or a lost event), and a destroyed event for each"
        ),
        settled,
    );
    let caught_up = started.elapsed();
    // The follower writes the events drained from the ring buffer, a lost
    // event and the rescan's events as one batch, and the events of later
    // records after it. So a namespace created now is reported after the batch.
    let marker = run_pid("unshare", &["--uts", "true"]);
    follower.wait_event(
        &format!("a created uts event of PID {marker} (unshare --uts true) after the storm"),
        |e| is_by(e, "created", "uts", marker),
    );

    let storm = storm_namespaces(&follower.events, is_storm);
    let created = &storm.created;
    let reported: HashSet<i64> = created.values().copied().collect();
    let unknown: Vec<&i64> = reported.iter().filter(|p| !children.contains(p)).collect();
    assert!(
        unknown.is_empty(),
        "created events name PIDs {unknown:?} with PPID {helper_pid} that the helper did not fork"
    );
    let missing = expected_namespaces.saturating_sub(created.len());
    let silent_pids = children.iter().filter(|p| !reported.contains(p)).count();
    let lost: Vec<Value> = follower.events.iter().filter(|e| kind(e) == "lost").cloned().collect();
    let lost_count: u64 = lost.iter().filter_map(|e| e["count"].as_u64()).sum();
    let rescan = follower.events.iter().filter(|e| e["origin"] == "rescan").count();
    let destroyed_by: HashMap<&str, usize> = storm
        .destroyed
        .iter()
        .filter(|(key, _)| created.contains_key(key))
        .fold(HashMap::new(), |mut counts, (_, origin)| {
            *counts.entry(origin.as_str()).or_default() += 1;
            counts
        });
    eprintln!(
        "storm (follower {}): {STORM_CHILDREN} children ({} distinct PIDs) in {storm_time:.1?}, \
         follower caught up after {caught_up:.1?}; {} of {expected_namespaces} namespaces reported created, \
         {silent_pids} PIDs without a created event, {} lost events dropping {lost_count} kernel events, \
         {rescan} events with origin rescan, destroyed events for the storm's namespaces by origin: {destroyed_by:?}; \
         the follower logged: {:?}",
        if pause { "stopped during the storm" } else { "running" },
        children.len(),
        created.len(),
        lost.len(),
        follower
            .stderr()
            .lines()
            .filter(|l| l.contains("dropped"))
            .collect::<Vec<_>>()
    );
    if missing > 0 || silent_pids > 0 {
        assert!(
            !lost.is_empty(),
            "{missing} namespaces of the children of PID {helper_pid} got no created event \
             ({silent_pids} PIDs none at all), and no lost event says why\n{}",
            follower.report()
        );
    }
    // Each dropped kernel event hides at most one unshare.
    assert!(
        missing as u64 <= lost_count,
        "{missing} namespaces of the children of PID {helper_pid} got no created event, \
         but lost events account for only {lost_count}\n{}",
        follower.report()
    );
    for event in &lost {
        assert!(
            event["count"].as_u64().is_some_and(|c| c > 0),
            "a lost event without a positive count: {event}"
        );
        assert!(event["ns"].is_null(), "a lost event names a namespace: {event}");
    }
    // The follower logs a loss before it writes the lost event, so a later
    // loss may be logged already but not yet received.
    let rescans = follower.stderr().matches("; rescanning").count();
    assert!(
        rescans >= lost.len(),
        "{} lost events, but the follower logged only {rescans} rescans\n{}",
        lost.len(),
        follower.report()
    );

    // A fresh snapshot agrees that none of the storm's namespaces is left.
    // Without ids, a uts namespace with a storm's inode number may only be
    // one that the follower reported after the storm's.
    let snapshot = parse_json(&listns_ok(&["-J"]));
    let last_kind = |inode: u64| {
        follower
            .events
            .iter()
            .rev()
            .find(|e| ns_type(e) == "uts" && e["ns"]["inode"].as_u64() == Some(inode))
            .map(|e| kind(e).to_string())
    };
    let alive: Vec<String> = snapshot["namespaces"]
        .as_array()
        .expect("the snapshot has a namespaces array")
        .iter()
        .filter(|ns| ns["type"] == "uts")
        .filter(|ns| match ns["id"].as_u64() {
            Some(id) => created.contains_key(&id),
            None => ns["inode"]
                .as_u64()
                .is_some_and(|inode| storm.inodes.contains(&inode) && last_kind(inode).as_deref() == Some("destroyed")),
        })
        .map(|ns| ns.to_string())
        .collect();
    assert!(
        alive.is_empty(),
        "listns -J still shows storm uts namespaces {alive:?}, which the follower reported destroyed"
    );
    follower.assert_running();
    StormResult {
        lost_events: lost.len(),
    }
}

#[test]
fn storm_of_short_lived_namespaces() {
    if !is_root("storm_of_short_lived_namespaces") {
        return;
    }
    let _lock = exclusive();
    let mut follower = Follower::start(&[]);
    storm(&mut follower, false, 1);
    follower.stop();
}

/// A follower stopped during the storm cannot drain the ring buffer, which
/// overflows: the loss is reported and repaired by a rescan.
#[test]
fn storm_while_follower_stopped() {
    if !is_root("storm_while_follower_stopped") {
        return;
    }
    let _lock = exclusive();
    let mut follower = Follower::start(&[]);
    // The 4 MiB ring buffer has room for about 20,000 events of 208 bytes
    // (a 200-byte record and its header). Five unshares and an exit per
    // child make 30,000.
    let unshares = 5;
    let result = storm(&mut follower, true, unshares);
    assert!(
        result.lost_events > 0,
        "no lost event although the follower was stopped while {STORM_CHILDREN} children caused {} kernel events; \
         if the ring buffer grew, the storm needs more children to overflow it\n{}",
        STORM_CHILDREN * (unshares + 1),
        follower.report()
    );
    follower.stop();
}

#[test]
fn polling_backend_netns() {
    if !is_root("polling_backend_netns") {
        return;
    }
    let _lock = shared();
    let mut follower = Follower::start_polling("0.2");

    let mut netns = NetnsName::add("poll");
    let path = netns.path_str().to_string();
    let net = ns_of(&path, NsType::Net);
    // Only this namespace has the bind mount at `path`, whichever earlier
    // namespace had its inode number. A poll between the unshare and the
    // mount of `ip netns add` finds it without the mount, so the `named`
    // event comes with the `created` event or with a later poll.
    let named_at = follower.wait_index(&format!("a named event for {path} (net namespace {net})"), |e| {
        is_about(e, "named", "net", net) && names_mount(e, &path)
    });
    let index = follower.events[..named_at]
        .iter()
        .rposition(|e| is_about(e, "created", "net", net))
        .unwrap_or_else(|| {
            panic!(
                "no created event for net namespace {net} before its named event\n{}",
                follower.report()
            )
        });
    let net = net.since(index);
    follower.assert_field(&follower.events[index].clone(), "origin", "poll");
    follower.assert_field(&follower.events[named_at].clone(), "origin", "poll");

    netns.delete();
    follower.wait_unnamed_then_destroyed(net, &path);
    follower.stop();
}
