//! The command line as a user meets it: invalid input, exit codes, escaping
//! of text that processes control, a reader that stops early, and JSON.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{Proc, is_root, listns, listns_ok, parse_json};

/// `PR_SET_NAME` from <linux/prctl.h>: sets the name (comm) of the calling thread.
const PR_SET_NAME: u32 = 15;
const CLONE_NEWIPC: u32 = 0x0800_0000;
const CLONE_NEWUTS: u32 = 0x0400_0000;

/// A command line argument that would forge a row and one that would clear
/// the screen, if printed as they are.
const FORGED_ROW: &str = "evil\nPID fake";
const CLEAR_SCREEN: &str = "\x1b[2J";
/// A thread name (comm, at most 15 bytes) with both.
const THREAD_NAME: &str = "t\n1 x\x1b[2J";

/// Runs listns and asserts exit status 2 with every `expected` text on
/// stderr, and returns stderr.
fn assert_usage_error(args: &[&str], expected: &[&str]) -> String {
    let output = listns(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "expected exit status 2 for listns {args:?}, stderr: {stderr}"
    );
    for text in expected {
        assert!(
            stderr.contains(text),
            "expected `{text}` in the error for listns {args:?}, found: {stderr}"
        );
    }
    stderr.into_owned()
}

#[test]
fn unknown_type_is_rejected() {
    assert_usage_error(
        &["-t", "foo"],
        &["'foo'", "cgroup, ipc, mnt, net, pid, time, user, uts"],
    );
}

#[test]
fn non_numeric_pid_is_rejected() {
    assert_usage_error(&["-p", "abc"], &["'abc'", "--task", "expected a process ID", "ps -e"]);
}

#[test]
fn out_of_range_pid_is_rejected() {
    for pid in ["0", "-5"] {
        assert_usage_error(
            &["-p", pid],
            &[&format!("'{pid}'"), "--task", "a PID is a positive number"],
        );
    }
    assert_usage_error(&["-p", "99999999999"], &["larger than any PID"]);
}

#[test]
fn unknown_column_is_rejected() {
    assert_usage_error(&["-o", "NOPE"], &["'NOPE'", "valid columns are", "NS, TYPE"]);
    assert_usage_error(&["-o", "NS,,TYPE"], &["empty column name", "-o NS,TYPE"]);
    assert_usage_error(&["-o", "NS,NOPE"], &["'NOPE'", "valid columns are"]);
}

#[test]
fn conflicting_flags_are_rejected() {
    assert_usage_error(&["--json", "--raw"], &["--json", "--raw"]);
    assert_usage_error(&["--all", "--hidden"], &["--all", "--hidden"]);
}

#[test]
fn unknown_tree_relation_is_rejected() {
    assert_usage_error(&["-T", "bogus"], &["'bogus'", "owner, parent"]);
}

#[test]
fn exited_pid_is_rejected() {
    let mut child = Command::new("true").spawn().expect("failed to start true");
    let pid = child.id() as i32;
    child.wait().expect("failed to reap true");
    if std::path::Path::new(&format!("/proc/{pid}")).exists() {
        eprintln!("exited_pid_is_rejected: skipped, PID {pid} was reused at once");
        return;
    }
    let stderr = assert_usage_error(&["-p", &pid.to_string()], &[&format!("no process with PID {pid}")]);
    assert_eq!(
        stderr.lines().count(),
        1,
        "expected only the error for the exited PID {pid}, without a report of the scan: {stderr}"
    );
}

#[test]
fn bad_interval_is_rejected() {
    for interval in ["-1", "0", "abc"] {
        assert_usage_error(
            &["--follow", "--interval", interval],
            &[&format!("'{interval}'"), "--interval", "seconds"],
        );
    }
}

#[test]
fn successful_scans_exit_0() {
    for args in [
        &[][..],
        &["-l"],
        &["-n", "-r", "-o", "NS,TYPE,STATE"],
        &["-T", "owner"],
        &["-T", "parent"],
        &["--hidden"],
    ] {
        let output = listns(args);
        assert!(
            output.status.success(),
            "expected exit 0 from listns {args:?}, found {}; stderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn json_output_parses() {
    let doc = parse_json(&listns_ok(&["-J"]));
    assert_eq!(
        doc["schema"], "listns.snapshot",
        "expected the schema name in {}",
        doc["schema"]
    );
    assert_eq!(
        doc["schema_version"], 1,
        "expected schema version 1, found {}",
        doc["schema_version"]
    );
    let namespaces = doc["namespaces"].as_array();
    assert!(
        namespaces.is_some_and(|n| !n.is_empty()),
        "expected a non-empty namespaces array"
    );
    for ns in namespaces.unwrap() {
        assert!(ns["type"].is_string(), "expected a type in {ns}");
        assert!(ns["inode"].is_u64(), "expected an inode in {ns}");
        assert!(ns["state"].is_string(), "expected a state in {ns}");
        assert!(ns["holders"].is_array(), "expected a holders array in {ns}");
    }
    assert!(
        doc["tasks"].as_array().is_some_and(|t| !t.is_empty()),
        "expected a non-empty tasks array"
    );
    assert!(doc["problems"].is_array(), "expected a problems array");
}

/// Runs listns on a 4 KiB pipe and closes the read end after the first line,
/// as `listns | head -1` does. The small pipe fills after a few lines, so
/// listns surely writes into the closed pipe, whatever its output size here.
fn run_until_first_line(args: &[&str]) -> std::process::Output {
    let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
    rustix::pipe::fcntl_setpipe_size(&read_end, 4096).expect("F_SETPIPE_SZ on the pipe");
    // The temporary Command, and with it this process's write end, is
    // dropped at the end of the statement, so only listns can write.
    let child = Command::new(env!("CARGO_BIN_EXE_listns"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(write_end)
        .stderr(Stdio::piped())
        .spawn()
        .expect("failed to start listns");
    let mut reader = BufReader::new(std::fs::File::from(read_end));
    let mut first = String::new();
    reader.read_line(&mut first).expect("reading the first line of listns");
    assert!(!first.is_empty(), "expected a first line from listns {args:?}");
    drop(reader);
    child.wait_with_output().expect("waiting for listns")
}

#[test]
fn closed_stdout_exits_0() {
    for args in [&["--all"][..], &["-J"], &["-l"]] {
        let output = run_until_first_line(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "expected exit 0 from listns {args:?} after its reader left, found {}; stderr: {stderr}",
            output.status
        );
        for text in ["failed to write", "Broken pipe", "panicked"] {
            assert!(
                !stderr.contains(text),
                "expected no `{text}` on stderr of listns {args:?}, found: {stderr}"
            );
        }
    }
}

/// Starts python3 with [`FORGED_ROW`] and [`CLEAR_SCREEN`] as arguments and
/// returns it with the TID of its thread named [`THREAD_NAME`]. The process
/// enters a new ipc namespace, so it is the first process of a namespace in
/// the table. The thread enters a new uts namespace, so it gets a row of its own.
fn hostile_names() -> (Proc, i32) {
    let script = format!(
        r#"
import ctypes, os, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
def run():
    if libc.unshare({CLONE_NEWUTS}) != 0 or libc.prctl({PR_SET_NAME}, sys.argv[3].encode(), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "unshare or prctl failed")
    print(threading.get_native_id(), flush=True)
    threading.Event().wait()
if libc.unshare({CLONE_NEWIPC}) != 0:
    raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWIPC) failed")
threading.Thread(target=run, daemon=True).start()
sys.stdin.read()
"#
    );
    let python = Proc::python(&script, &[FORGED_ROW, CLEAR_SCREEN, THREAD_NAME]);
    let tid: i32 = python.read_number();
    let comm = common::proc_comm_of_thread(python.pid(), tid);
    assert_eq!(
        comm.as_deref(),
        Some(THREAD_NAME),
        "fixture: prctl(PR_SET_NAME) did not set the thread name"
    );
    (python, tid)
}

/// Asserts that `output` has no raw ESC and that every line is a row of the
/// per-process view: a PID or `--`, then a namespace such as `net:[N]`.
fn assert_rows_intact(output: &str, args: &[&str]) {
    assert!(
        !output.contains('\x1b'),
        "expected no raw ESC in listns {args:?}:\n{output:?}"
    );
    for line in output.lines().skip(1) {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        let second = fields.next().unwrap_or("");
        assert!(
            (first == "--" || first.parse::<i32>().is_ok()) && second.contains(":["),
            "expected `PID TYPE:[N] ...` in every line of listns {args:?}, found the line {line:?}"
        );
    }
}

#[test]
fn hostile_names_are_escaped() {
    if !is_root("hostile_names_are_escaped") {
        return;
    }
    let (python, tid) = hostile_names();
    let pid = python.pid().to_string();

    let args = ["-p", pid.as_str()];
    let output = listns_ok(&args);
    assert_rows_intact(&output, &args);
    assert!(
        output.contains("evil\\x0aPID fake"),
        "expected the argument as `evil\\x0aPID fake` in:\n{output}"
    );
    assert!(
        output.contains("\\x1b[2J"),
        "expected the argument as `\\x1b[2J` in:\n{output}"
    );
    let thread_row = format!("thread {tid} of PID {pid}: t\\x0a1 x\\x1b[2J");
    assert!(
        output.contains(&thread_row),
        "expected the thread row `{thread_row}` in:\n{output}"
    );

    let args = ["-r", "-p", pid.as_str()];
    let output = listns_ok(&args);
    assert_rows_intact(&output, &args);
    assert!(
        output.contains("evil\\x0aPID\\x20fake"),
        "expected `evil\\x0aPID\\x20fake` in raw output:\n{output}"
    );

    let args = ["-l", "-n", "-o", "PID,COMMAND", "-p", pid.as_str()];
    let output = listns_ok(&args);
    assert!(
        !output.contains('\x1b'),
        "expected no raw ESC in listns {args:?}:\n{output:?}"
    );
    for line in output.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        assert!(
            first.parse::<i32>().is_ok(),
            "expected each line of listns {args:?} to start with a PID, found {line:?}"
        );
    }
    assert!(
        output.contains("evil\\x0aPID fake"),
        "expected `evil\\x0aPID fake` in the table:\n{output}"
    );

    let args = ["-T", "owner", "-p", pid.as_str()];
    let output = listns_ok(&args);
    assert!(
        !output.contains('\x1b'),
        "expected no raw ESC in listns {args:?}:\n{output:?}"
    );
    assert!(
        !output.lines().any(|l| l.starts_with("PID fake")),
        "expected no forged line in the tree:\n{output}"
    );

    // JSON keeps the exact text, escaped by JSON's own rules.
    let doc = parse_json(&listns_ok(&["-J", "-p", pid.as_str()]));
    let tasks = doc["tasks"].as_array().cloned().unwrap_or_default();
    let leader = tasks.iter().find(|t| t["tid"].as_i64() == pid.parse().ok());
    assert!(leader.is_some(), "expected PID {pid} among the JSON tasks");
    let cmdline = leader.unwrap()["cmdline"].as_array().cloned().unwrap_or_default();
    assert!(
        cmdline.iter().any(|a| a == FORGED_ROW),
        "expected {FORGED_ROW:?} in the JSON cmdline {cmdline:?}"
    );
    assert!(
        cmdline.iter().any(|a| a == CLEAR_SCREEN),
        "expected {CLEAR_SCREEN:?} in the JSON cmdline {cmdline:?}"
    );
    let thread = tasks.iter().find(|t| t["tid"] == tid);
    assert!(thread.is_some(), "expected TID {tid} among the JSON tasks");
    assert_eq!(
        thread.unwrap()["comm"],
        THREAD_NAME,
        "expected the exact thread name in the JSON"
    );
}

/// Runs listns as user nobody, without any capability, through setpriv.
fn listns_unprivileged(args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(env!("CARGO_BIN_EXE_listns"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("failed to run setpriv listns {args:?}: {e}; setpriv is part of util-linux"))
}

#[test]
fn route_follows_privileges() {
    if !is_root("route_follows_privileges") {
        return;
    }
    let output = listns(&["-J", "-v"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let doc = parse_json(&String::from_utf8_lossy(&output.stdout));
    if doc["route"] == "proc" {
        // Only a listns built without its eBPF programs, or a kernel
        // without BTF, takes /proc as root; the log must say which.
        assert!(
            stderr.contains("snapshot route: /proc, because"),
            "root took /proc without saying why: {stderr}"
        );
    } else {
        assert_eq!(doc["route"], "iter", "unexpected route in {}", doc["route"]);
        assert!(
            stderr.contains("snapshot route: BPF iterators"),
            "the log does not name the iterator route: {stderr}"
        );
    }

    let output = listns_unprivileged(&["-J", "-v"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "listns as nobody failed: {stderr}");
    let doc = parse_json(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(doc["route"], "proc", "nobody cannot load BPF iterators");
    assert!(
        stderr.contains("because BPF iterators need root"),
        "the log does not say why nobody reads /proc: {stderr}"
    );

    let output = listns_unprivileged(&["--route", "iter"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "--route iter as nobody succeeded");
    assert!(
        stderr.contains("--route proc"),
        "the error does not name the fix: {stderr}"
    );
}
