//! Fixtures for the root integration tests: processes, `ip netns` names, bind
//! mounts and temporary files, each undone by a guard's `Drop`, so a failing
//! assert still cleans up.
//!
//! Other work runs on the same machine, so tests look only at the namespaces
//! and PIDs their own fixtures created, identified through [`NsHandle`].

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};
use std::time::{Duration, Instant};

use listns::inventory::{Inventory, Namespace};
use listns::model::{Holder, NsKey, NsState, NsType};
use listns::nsfs;

/// How long a fixture may take to reach the state a test waits for. Generous,
/// because other work may load the machine.
pub const FIXTURE_TIMEOUT: Duration = Duration::from_secs(20);

/// Returns whether the tests run as root, printing why a test is skipped if not.
pub fn is_root(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    eprintln!("skipping {test}: it creates namespaces and needs root; run `sudo cargo test -p listns`");
    false
}

/// Returns (major, minor) of the running kernel.
pub fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("read the kernel release");
    let mut numbers = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|part| part.parse::<u32>().unwrap_or(0));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
}

/// Returns whether the kernel has an interface, judged by `result`, the
/// outcome of one call of it. ENOTTY, ENOSYS and EINVAL mean that it is
/// absent: then this prints one line saying that `test` checks `fallback`
/// instead, and returns false. Panics on other errors, and on a kernel of
/// version `since` or later, which added the interface, so that no test
/// skips a part where the interface must work.
pub fn has_interface<T>(
    test: &str,
    interface: &str,
    since: (u32, u32),
    result: &std::io::Result<T>,
    fallback: &str,
) -> bool {
    let Err(error) = result else {
        return true;
    };
    let absent = matches!(error.raw_os_error(), Some(libc::ENOTTY | libc::ENOSYS | libc::EINVAL));
    assert!(absent, "{test}: {interface} failed: {error}");
    let (major, minor) = since;
    assert!(
        kernel_version() < since,
        "{test}: {interface} failed ({error}) on a kernel of Linux {major}.{minor} or later, which has it"
    );
    eprintln!("{test}: this kernel lacks {interface} (Linux {major}.{minor}+), so the test checks {fallback} instead");
    false
}

/// Returns whether the kernel has `NS_GET_ID` (Linux 6.18+), through
/// [`has_interface`].
pub fn has_namespace_ids(test: &str, fallback: &str) -> bool {
    let own = File::open("/proc/self/ns/net").expect("open /proc/self/ns/net");
    let result = nsfs::namespace_id(own.as_fd());
    has_interface(test, "NS_GET_ID", (6, 18), &result, fallback)
}

/// Returns whether the kernel has `PIDFD_GET_PID_FOR_CHILDREN_NAMESPACE`
/// (Linux 6.11+), tried on the pidfd of `pid`, through [`has_interface`].
pub fn has_pending_pid_ioctl(test: &str, pid: i32, fallback: &str) -> bool {
    let pidfd = nsfs::pidfd_open(pid, false).unwrap_or_else(|e| panic!("pidfd_open of PID {pid} failed: {e}"));
    let result = nsfs::pid_for_children(pidfd.as_fd());
    has_interface(test, "PIDFD_GET_PID_FOR_CHILDREN_NAMESPACE", (6, 11), &result, fallback)
}

/// Returns whether an exec after `unshare(CLONE_NEWTIME)` moves the task
/// into its `time_for_children` namespace, found by running
/// `unshare -T readlink /proc/self/ns/time`. Linux 6.12 does, and Debian's
/// 6.1 switches only in forked children; where it does not, this prints
/// that `test` checks that behaviour instead.
pub fn exec_enters_new_time_ns(test: &str) -> bool {
    let output = Command::new("unshare")
        .args(["-T", "readlink", "/proc/self/ns/time"])
        .output()
        .expect("failed to run unshare -T readlink");
    assert!(output.status.success(), "unshare -T readlink failed: {output:?}");
    let own = std::fs::read_link("/proc/self/ns/time").expect("readlink /proc/self/ns/time");
    let after_exec = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if after_exec != own.to_string_lossy() {
        return true;
    }
    assert!(
        kernel_version() < (6, 12),
        "{test}: the exec after unshare -T stayed in {after_exec} on Linux 6.12 or later, which switches on exec"
    );
    eprintln!("{test}: this kernel enters a new time namespace only in forked children, not on exec");
    false
}

/// Returns a name unique to this test process and call, such as
/// `listns-t4242-3-c1`, for netns names and temporary paths. The first call
/// removes what killed test processes left in /run/netns.
pub fn unique_name(tag: &str) -> String {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(remove_stale_netns_names);
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("listns-t{}-{n}-{tag}", std::process::id())
}

/// Unmounts and removes `/run/netns/listns-tPID-*` and
/// `/run/netns/listns-trace-PID` when no process PID exists. A test binary
/// that was killed (by a timeout, say) leaves its bind mounts there, and
/// they would show up in every later listing.
fn remove_stale_netns_names() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|name| {
            name.strip_prefix("listns-trace-")
                .or_else(|| name.strip_prefix("listns-t"))
        }) else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(pid) = digits.parse::<u32>() else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = entry.path();
        let _ = Command::new("umount").arg(&path).stderr(Stdio::null()).status();
        match std::fs::remove_file(&path) {
            Ok(()) => eprintln!(
                "removed {}, left by the test process {pid}, which has ended",
                path.display()
            ),
            Err(err) => eprintln!(
                "cannot remove {}, left by the ended test process {pid}: {err}",
                path.display()
            ),
        }
    }
}

/// Polls `done` every 10 ms until it returns true; panics after [`FIXTURE_TIMEOUT`].
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > FIXTURE_TIMEOUT {
            panic!("timed out after {FIXTURE_TIMEOUT:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Returns the state letter of `/proc/PID/stat` (`R`, `S`, `Z`, ...).
pub fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; the state follows the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.trim_start().chars().next()
}

/// Returns `/proc/PID/comm` without the trailing newline.
pub fn proc_comm(pid: i32) -> Option<String> {
    proc_comm_of_thread(pid, pid)
}

/// Returns `/proc/PID/task/TID/comm`, the name of one thread, without the
/// trailing newline (which the name itself may contain too).
pub fn proc_comm_of_thread(pid: i32, tid: i32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).ok()?;
    Some(comm.strip_suffix('\n').unwrap_or(&comm).to_string())
}

/// Runs a command to completion and panics with its output if it fails.
pub fn run_ok(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("failed to start {program} {args:?}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A child process that is killed and reaped by PID when dropped.
pub struct Proc {
    child: Child,
    /// Lines of the child's stdout, read by a thread so that waiting for one
    /// can time out.
    lines: Option<Receiver<String>>,
}

impl Proc {
    /// Starts `command` with stdin kept open (so a fixture can block on it),
    /// stdout captured line by line and stderr passed through.
    pub fn spawn(command: &mut Command) -> Proc {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {command:?}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines: Some(receiver),
        }
    }

    /// Starts `python3 -c script args...`.
    pub fn python(script: &str, args: &[&str]) -> Proc {
        Proc::spawn(Command::new("python3").arg("-c").arg(script).args(args))
    }

    /// Starts a program and waits until it has exec'd `comm`, so that
    /// wrappers such as `unshare` have done their work.
    pub fn spawn_until_comm(program: &str, args: &[&str], comm: &str) -> Proc {
        let proc = Proc::spawn(Command::new(program).args(args));
        let pid = proc.pid();
        wait_until(&format!("PID {pid} ({program} {args:?}) to exec {comm}"), || {
            if let Some(state) = proc_state(pid) {
                assert_ne!(state, 'Z', "{program} {args:?} exited before it exec'd {comm}");
            }
            proc_comm(pid).as_deref() == Some(comm)
        });
        proc
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Returns the next line the child printed; panics if none comes within
    /// [`FIXTURE_TIMEOUT`] or stdout closes (see the child's stderr above).
    pub fn read_line(&self) -> String {
        let lines = self.lines.as_ref().expect("stdout is captured");
        match lines.recv_timeout(FIXTURE_TIMEOUT) {
            Ok(line) => line,
            Err(err) => panic!("PID {} printed no line ({err}); its stderr is above", self.pid()),
        }
    }

    /// Returns the next line parsed as a number.
    pub fn read_number<T: std::str::FromStr>(&self) -> T {
        let line = self.read_line();
        line.trim()
            .parse()
            .unwrap_or_else(|_| panic!("PID {} printed {line:?}, expected a number", self.pid()))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // kill() on a child that already exited but is not reaped yet is
        // harmless; wait() then reaps it, zombie or not.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A network namespace created by `ip netns add` under a unique name,
/// deleted when dropped unless deleted before.
pub struct NetnsName {
    pub name: String,
    pub path: PathBuf,
    deleted: bool,
}

impl NetnsName {
    pub fn add(tag: &str) -> NetnsName {
        let name = unique_name(tag);
        run_ok("ip", &["netns", "add", &name]);
        let path = Path::new("/run/netns").join(&name);
        NetnsName {
            name,
            path,
            deleted: false,
        }
    }

    /// Runs `ip netns del`: the name and bind mount go, the namespace lives on
    /// while something else holds it.
    pub fn delete(&mut self) {
        if !self.deleted {
            self.deleted = true;
            run_ok("ip", &["netns", "del", &self.name]);
        }
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().expect("unique names are ASCII")
    }
}

impl Drop for NetnsName {
    fn drop(&mut self) {
        if !self.deleted {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.name])
                .stdin(Stdio::null())
                .output();
        }
    }
}

/// A file under /tmp, removed when dropped.
pub struct TempFile {
    pub path: PathBuf,
}

impl TempFile {
    pub fn create(tag: &str) -> TempFile {
        let path = std::env::temp_dir().join(unique_name(tag));
        File::create(&path).unwrap_or_else(|e| panic!("failed to create {}: {e}", path.display()));
        TempFile { path }
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().expect("unique names are ASCII")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A new network namespace bind-mounted on a file under /tmp, outside the
/// usual pin directories, with `unshare --net=FILE true`. Dropping it
/// unmounts the file (which frees the namespace) and removes it.
pub struct TmpNetnsMount {
    /// Removed after `Drop::drop` below has unmounted it, because fields are
    /// dropped after their struct.
    pub file: TempFile,
}

impl TmpNetnsMount {
    pub fn create(tag: &str) -> TmpNetnsMount {
        let file = TempFile::create(tag);
        let mount = TmpNetnsMount { file };
        run_ok("unshare", &[&format!("--net={}", mount.path_str())[..], "true"]);
        mount
    }

    pub fn path_str(&self) -> &str {
        self.file.path_str()
    }
}

impl Drop for TmpNetnsMount {
    fn drop(&mut self) {
        // A lazy unmount cannot fail with EBUSY, and the tests hold their own fd anyway.
        let _ = rustix::mount::unmount(&self.file.path, rustix::mount::UnmountFlags::DETACH);
    }
}

/// An open namespace with its key and 64-bit id. Holding the fd keeps the
/// namespace alive and its inode number from being reused during the test.
pub struct NsHandle {
    pub fd: OwnedFd,
    pub key: NsKey,
    pub id: Option<u64>,
}

impl NsHandle {
    /// Opens an nsfs file such as `/proc/PID/ns/net` or `/run/netns/NAME`.
    pub fn open(path: impl AsRef<Path>, ty: NsType) -> NsHandle {
        let path = path.as_ref();
        let file = File::open(path).unwrap_or_else(|e| panic!("failed to open {}: {e}", path.display()));
        NsHandle::from_fd(file.into(), ty)
    }

    /// Takes an nsfs fd from an ioctl (`NS_GET_PARENT`, `SIOCGSKNS`, ...).
    pub fn from_fd(fd: OwnedFd, ty: NsType) -> NsHandle {
        let key =
            nsfs::key_of(fd.as_fd(), Some(ty)).unwrap_or_else(|e| panic!("fstat of a {ty:?} namespace fd failed: {e}"));
        let actual = nsfs::namespace_type(fd.as_fd()).unwrap_or_else(|e| panic!("NS_GET_NSTYPE on {key} failed: {e}"));
        assert_eq!(actual, ty, "the fd for {key} is a namespace of another type");
        // ENOTTY before Linux 6.18: tests then match on the inode alone.
        let id = nsfs::namespace_id(fd.as_fd()).ok();
        NsHandle { fd, key, id }
    }

    /// Returns this namespace in the inventory, checking the id where both
    /// sides have one; panics with the key if the scan missed it.
    pub fn find<'a>(&self, inventory: &'a Inventory) -> &'a Namespace {
        let ns = inventory
            .namespaces
            .get(&self.key)
            .unwrap_or_else(|| panic!("{} (id {:?}) is missing from the inventory", self.key, self.id));
        if let (Some(expected), Some(found)) = (self.id, ns.id) {
            assert_eq!(
                found, expected,
                "{} has id {found} in the inventory, expected {expected}",
                self.key
            );
        }
        ns
    }
}

/// Serialises the scans of one test binary: a running scan holds an fd on
/// every namespace it has found, so a listns child started by one test would
/// show up as an fd holder in the scan of another.
static SCAN_LOCK: Mutex<()> = Mutex::new(());

fn scan_lock() -> MutexGuard<'static, ()> {
    // A test that panicked while holding the lock leaves nothing to repair.
    SCAN_LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes a snapshot, panicking with the error if the scan fails.
pub fn scan() -> Inventory {
    let _lock = scan_lock();
    listns::inventory::scan().unwrap_or_else(|e| panic!("scan failed: {e:#}"))
}

/// Returns the PIDs that hold nsfs fds on at least three of the default
/// namespaces. Ordinary programs do not; a namespace scanner running at the
/// same time (listns, lsns, another test run) opens every namespace it finds.
pub fn scanner_pids(inventory: &Inventory) -> BTreeSet<i32> {
    let mut counts: HashMap<i32, usize> = HashMap::new();
    for ty in NsType::ALL {
        let Some(ns) = inventory.namespaces.get(&inventory.defaults.key(ty)) else {
            continue;
        };
        let pids: BTreeSet<i32> = ns
            .holders
            .iter()
            .filter_map(|h| match h {
                Holder::Fd { pid, .. } => Some(*pid),
                _ => None,
            })
            .collect();
        for pid in pids {
            *counts.entry(pid).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .filter(|&(_, n)| n >= 3)
        .map(|(pid, _)| pid)
        .collect()
}

/// Asserts the state of `ns`. A concurrent scanner's fd makes a pinned
/// namespace hidden for the moment it is open; that case is accepted with a
/// note, because the fixture did not create it.
pub fn assert_state(inventory: &Inventory, ns: &Namespace, expected: NsState, context: &str) {
    if ns.state == expected {
        return;
    }
    let scanners = scanner_pids(inventory);
    let is_scanner_fd = |h: &Holder| matches!(h, Holder::Fd { pid, .. } if scanners.contains(pid));
    let others: Vec<&Holder> = ns.holders.iter().filter(|h| !is_scanner_fd(h)).collect();
    let pinned_without_scanners = ns.tasks.is_empty() && !others.is_empty() && !others.iter().any(|h| h.is_unusual());
    if expected == NsState::Pinned
        && ns.state == NsState::Hidden
        && pinned_without_scanners
        && others.len() < ns.holders.len()
    {
        eprintln!(
            "{context}: accepting Hidden for {}, because only fds of concurrent scanners (PIDs {scanners:?}) make it hidden",
            ns.key
        );
        return;
    }
    panic!(
        "{context}: expected state {expected:?}, found {}",
        describe(inventory, ns)
    );
}

/// Describes a namespace for assert messages: state, member PIDs, holders, names.
pub fn describe(inventory: &Inventory, ns: &Namespace) -> String {
    let holders: Vec<String> = ns.holders.iter().map(|h| format!("{h:?}")).collect();
    format!(
        "{} id {:?}: state {:?}, pids {:?}, holders [{}], names {:?}, owner {:?}, parent {:?}",
        ns.key,
        ns.id,
        ns.state,
        ns.pids(&inventory.tasks),
        holders.join(", "),
        ns.names,
        ns.owner,
        ns.parent
    )
}

/// Runs the listns binary with `args` and returns its output.
pub fn listns(args: &[&str]) -> Output {
    let _lock = scan_lock();
    Command::new(env!("CARGO_BIN_EXE_listns"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("failed to run listns {args:?}: {e}"))
}

/// Runs listns, asserts exit status 0 and returns its stdout.
pub fn listns_ok(args: &[&str]) -> String {
    let output = listns(args);
    assert!(
        output.status.success(),
        "listns {args:?} exited with {}, expected 0; stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap_or_else(|e| panic!("listns {args:?} printed invalid UTF-8: {e}"))
}

/// Returns the lines of the per-process view that show namespace `key`.
pub fn rows_of(output: &str, key: NsKey) -> Vec<&str> {
    let needle = key.to_string();
    output
        .lines()
        .filter(|line| line.split_whitespace().nth(1) == Some(needle.as_str()))
        .collect()
}

/// Returns whether a per-process row is a `--` holder row.
pub fn is_holder_row(row: &str) -> bool {
    row.split_whitespace().next() == Some("--")
}

/// Parses `listns -J` output.
pub fn parse_json(output: &str) -> serde_json::Value {
    serde_json::from_str(output).unwrap_or_else(|e| panic!("listns -J printed invalid JSON ({e}): {output}"))
}

/// Returns the JSON object of namespace `key` in a `listns -J` document.
pub fn json_namespace(doc: &serde_json::Value, key: NsKey) -> Option<&serde_json::Value> {
    doc["namespaces"]
        .as_array()?
        .iter()
        .find(|ns| ns["type"] == key.ty.name() && ns["inode"] == key.inode)
}
