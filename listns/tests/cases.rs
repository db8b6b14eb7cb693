//! The twelve namespace situations that a complete lister must get right,
//! each built by its own fixture and checked in the library inventory and,
//! for several, in the binary's output. Every test looks only at the
//! namespaces and PIDs it created, because other work runs on this machine.
//!
//! The tests need root; as another user they print why and pass.

mod common;

use std::os::fd::AsFd;
use std::process::Command;

use common::{
    NetnsName, NsHandle, Proc, TmpNetnsMount, assert_state, describe, has_pending_pid_ioctl, is_holder_row, is_root,
    json_namespace, kernel_version, listns, listns_ok, parse_json, proc_comm, proc_state, rows_of, run_ok, scan,
    unique_name, wait_until,
};
use listns::discover::defaults::DefaultSource;
use listns::inventory::Inventory;
use listns::model::{Holder, NsKey, NsState, NsType, Relation, Task, TaskLink};
use listns::nsfs;
use listns::problems::Reason;

/// Flags of `unshare(2)` from <linux/sched.h>.
const CLONE_NEWTIME: u32 = 0x80;
const CLONE_NEWUTS: u32 = 0x0400_0000;
const CLONE_NEWPID: u32 = 0x2000_0000;
const CLONE_NEWNET: u32 = 0x4000_0000;

/// Python prelude for fixtures that need raw system calls: `os.unshare` and
/// `os.setns` only exist from Python 3.12 on, so they go through ctypes.
const PY_PRELUDE: &str = r#"
import ctypes, os, socket, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
def check(ret, call):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, call + ": " + os.strerror(err))
"#;

fn python(body: &str) -> Proc {
    Proc::python(&format!("{PY_PRELUDE}{body}"), &[])
}

/// Returns the thread-group leader `pid` in the inventory.
fn leader(inventory: &Inventory, pid: i32) -> &Task {
    inventory
        .tasks
        .iter()
        .find(|t| t.pid == pid && t.is_leader())
        .unwrap_or_else(|| panic!("PID {pid} is missing from the inventory's tasks"))
}

/// Builds case 3: a netns that only fd 4 of a `sleep` holds, after
/// `ip netns del` removed its name.
fn netns_held_by_fd() -> (NsHandle, Proc, NetnsName) {
    let mut netns = NetnsName::add("fd");
    let handle = NsHandle::open(&netns.path, NsType::Net);
    let sleep = Proc::spawn_until_comm(
        "sh",
        &["-c", "exec sleep 600 4<\"$1\"", "sh", netns.path_str()],
        "sleep",
    );
    netns.delete();
    (handle, sleep, netns)
}

// ---- Case 1: `ip netns add` without a process ----

#[test]
fn case_01_ip_netns_without_process() {
    if !is_root("case_01_ip_netns_without_process") {
        return;
    }
    let netns = NetnsName::add("c1");
    let handle = NsHandle::open(&netns.path, NsType::Net);

    let inventory = scan();
    let ns = handle.find(&inventory);
    let details = describe(&inventory, ns);
    assert!(
        ns.tasks.is_empty(),
        "expected no task in the ip netns namespace, found {details}"
    );
    assert!(
        ns.names.contains(&netns.name),
        "expected the name {} on {details}",
        netns.name
    );
    let mounted = ns
        .holders
        .iter()
        .any(|h| matches!(h, Holder::BindMount { path, usual: true, .. } if path == netns.path_str()));
    assert!(
        mounted,
        "expected the holder BindMount {{ path: {}, usual: true }} on {details}",
        netns.path_str()
    );
    assert_state(&inventory, ns, NsState::Pinned, "the ip netns namespace");

    let output = listns_ok(&["-t", "net"]);
    let rows = rows_of(&output, handle.key);
    let bind_row = format!("bind mount {}", netns.path_str());
    assert!(
        rows.iter().any(|r| is_holder_row(r) && r.contains(&bind_row)),
        "expected a `--` row with `{bind_row}` for {}, found rows {rows:#?}",
        handle.key
    );
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r.split_whitespace().nth(2) == Some("**")),
        "expected `**` after {} on every row of a named netns, found rows {rows:#?}",
        handle.key
    );
}

// ---- Case 2: netns bind-mounted outside /run/netns ----

#[test]
fn case_02_netns_mounted_under_tmp() {
    if !is_root("case_02_netns_mounted_under_tmp") {
        return;
    }
    let mount = TmpNetnsMount::create("c2");
    let handle = NsHandle::open(&mount.file.path, NsType::Net);

    let inventory = scan();
    let ns = handle.find(&inventory);
    let details = describe(&inventory, ns);
    assert!(
        ns.tasks.is_empty(),
        "expected no task in the netns mounted on {}, found {details}",
        mount.path_str()
    );
    let mounted = ns
        .holders
        .iter()
        .any(|h| matches!(h, Holder::BindMount { path, usual: false, .. } if path == mount.path_str()));
    assert!(
        mounted,
        "expected the holder BindMount {{ path: {}, usual: false }} on {details}",
        mount.path_str()
    );
    assert_state(&inventory, ns, NsState::Hidden, "the netns mounted under /tmp");

    let output = listns_ok(&["--hidden", "-t", "net"]);
    let rows = rows_of(&output, handle.key);
    let bind_row = format!("bind mount {}", mount.path_str());
    let row = rows.iter().find(|r| is_holder_row(r) && r.contains(&bind_row));
    assert!(
        row.is_some(),
        "expected a `--` row with `{bind_row}` for {} in `listns --hidden`, found rows {rows:#?}",
        handle.key
    );
    assert!(
        row.unwrap().ends_with("[hidden]"),
        "expected the tag [hidden] on {row:?}"
    );
}

// ---- Case 3: netns held only by an open fd ----

#[test]
fn case_03_netns_held_by_fd() {
    if !is_root("case_03_netns_held_by_fd") {
        return;
    }
    let (handle, sleep, _netns) = netns_held_by_fd();
    let pid = sleep.pid();

    let inventory = scan();
    let ns = handle.find(&inventory);
    let details = describe(&inventory, ns);
    assert!(
        ns.tasks.is_empty(),
        "expected no task in the fd-held netns, found {details}"
    );
    assert!(
        ns.holders.contains(&Holder::Fd { pid, tid: pid, fd: 4 }),
        "expected the holder Fd {{ pid: {pid}, tid: {pid}, fd: 4 }} on {details}"
    );
    assert!(
        ns.names.is_empty(),
        "expected no name after `ip netns del`, found {details}"
    );
    assert_state(&inventory, ns, NsState::Hidden, "the fd-held netns");
    let host_net = inventory.defaults.key(NsType::Net);
    let sleep_net = leader(&inventory, pid).links.get(NsType::Net);
    assert_eq!(
        sleep_net,
        Some(host_net),
        "expected the sleep (PID {pid}) in the host netns"
    );

    let doc = parse_json(&listns_ok(&["-J", "-t", "net"]));
    let json_ns =
        json_namespace(&doc, handle.key).unwrap_or_else(|| panic!("expected {} in `listns -J -t net`", handle.key));
    let holders = json_ns["holders"].as_array().cloned().unwrap_or_default();
    assert!(
        holders
            .iter()
            .any(|h| h["kind"] == "fd" && h["pid"] == pid && h["fd"] == 4),
        "expected a holder {{kind: fd, pid: {pid}, fd: 4}} in the JSON of {}, found {json_ns}",
        handle.key
    );
    assert_eq!(
        json_ns["nprocs"], 0,
        "expected nprocs 0 in the JSON of {}, found {json_ns}",
        handle.key
    );
}

// ---- Case 4: netns held only by a socket ----

#[test]
fn case_04_netns_held_by_socket() {
    if !is_root("case_04_netns_held_by_socket") {
        return;
    }
    let python = python(&format!(
        r#"
host = os.open("/proc/self/ns/net", os.O_RDONLY)
check(libc.unshare({CLONE_NEWNET}), "unshare(CLONE_NEWNET)")
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
check(libc.setns(host, {CLONE_NEWNET}), "setns back to the host netns")
os.close(host)
print(sock.fileno(), flush=True)
sys.stdin.read()
"#
    ));
    let sock_fd: i32 = python.read_number();
    let pid = python.pid();
    // The same ioctls listns uses: copy the socket, then ask for its netns.
    let pidfd = nsfs::pidfd_open(pid, false).expect("pidfd_open of the python fixture");
    let copy = nsfs::pidfd_getfd(pidfd.as_fd(), sock_fd).expect("pidfd_getfd of its socket");
    let handle = NsHandle::from_fd(
        nsfs::socket_netns(copy.as_fd()).expect("SIOCGSKNS on the socket"),
        NsType::Net,
    );
    // A copy left open here would be one more socket holder in `listns` runs.
    drop(copy);

    let inventory = scan();
    let ns = handle.find(&inventory);
    let details = describe(&inventory, ns);
    assert!(
        ns.tasks.is_empty(),
        "expected no task in the socket-held netns, found {details}"
    );
    let has_socket = ns
        .holders
        .iter()
        .any(|h| matches!(h, Holder::Socket { pid: p, fd, .. } if *p == pid && *fd == sock_fd));
    assert!(
        has_socket,
        "expected the holder Socket {{ pid: {pid}, fd: {sock_fd} }} on {details}"
    );
    assert_state(&inventory, ns, NsState::Hidden, "the socket-held netns");
    let python_net = leader(&inventory, pid).links.get(NsType::Net);
    assert_eq!(
        python_net,
        Some(inventory.defaults.key(NsType::Net)),
        "expected python (PID {pid}) back in the host netns"
    );

    let output = listns_ok(&["-t", "net"]);
    let rows = rows_of(&output, handle.key);
    let socket_row = format!("socket fd {sock_fd} of PID {pid}");
    assert!(
        rows.iter().any(|r| is_holder_row(r) && r.contains(&socket_row)),
        "expected a `--` row with `{socket_row}` for {}, found rows {rows:#?}",
        handle.key
    );
}

#[test]
fn case_04_netns_held_by_tun() {
    if !is_root("case_04_netns_held_by_tun") {
        return;
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        eprintln!("case_04_netns_held_by_tun: skipped, /dev/net/tun does not exist");
        return;
    }
    // TUNSETIFF with IFF_TAP | IFF_NO_PI creates a tap device in the new
    // netns, so the open fd holds that netns after the process went back.
    let python = python(&format!(
        r#"
import fcntl, struct
host = os.open("/proc/self/ns/net", os.O_RDONLY)
check(libc.unshare({CLONE_NEWNET}), "unshare(CLONE_NEWNET)")
tun = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(tun, 0x400454ca, struct.pack("16sH", b"listns-tap0", 0x0002 | 0x1000))
check(libc.setns(host, {CLONE_NEWNET}), "setns back to the host netns")
os.close(host)
print(tun, flush=True)
sys.stdin.read()
"#
    ));
    let tun_fd: i32 = python.read_number();
    let pid = python.pid();
    let pidfd = nsfs::pidfd_open(pid, false).expect("pidfd_open of the python fixture");
    let copy = nsfs::pidfd_getfd(pidfd.as_fd(), tun_fd).expect("pidfd_getfd of its tun fd");
    let handle = NsHandle::from_fd(
        nsfs::tun_netns(copy.as_fd()).expect("TUNGETDEVNETNS on the tun fd"),
        NsType::Net,
    );
    drop(copy);

    let inventory = scan();
    let ns = handle.find(&inventory);
    let details = describe(&inventory, ns);
    assert!(
        ns.tasks.is_empty(),
        "expected no task in the tun-held netns, found {details}"
    );
    let expected = Holder::Tun {
        pid,
        tid: pid,
        fd: tun_fd,
    };
    assert!(
        ns.holders.contains(&expected),
        "expected the holder {expected:?} on {details}"
    );
    assert_state(&inventory, ns, NsState::Hidden, "the tun-held netns");
}

// ---- Case 5: a thread in other namespaces than its leader ----

#[test]
fn case_05_thread_in_own_namespaces() {
    if !is_root("case_05_thread_in_own_namespaces") {
        return;
    }
    let python = python(&format!(
        r#"
def run():
    check(libc.unshare({CLONE_NEWNET} | {CLONE_NEWUTS}), "unshare(CLONE_NEWNET | CLONE_NEWUTS)")
    print(threading.get_native_id(), flush=True)
    threading.Event().wait()
threading.Thread(target=run, daemon=True).start()
sys.stdin.read()
"#
    ));
    let tid: i32 = python.read_number();
    let pid = python.pid();
    let net = NsHandle::open(format!("/proc/{pid}/task/{tid}/ns/net"), NsType::Net);
    let uts = NsHandle::open(format!("/proc/{pid}/task/{tid}/ns/uts"), NsType::Uts);
    let leader_net = NsHandle::open(format!("/proc/{pid}/ns/net"), NsType::Net);
    assert_ne!(
        leader_net.key, net.key,
        "fixture: the thread's unshare did not change its netns"
    );

    let inventory = scan();
    for handle in [&net, &uts] {
        let ns = handle.find(&inventory);
        let details = describe(&inventory, ns);
        let has_thread = ns
            .tasks
            .iter()
            .any(|&i| inventory.tasks[i].pid == pid && inventory.tasks[i].tid == tid);
        assert!(
            has_thread,
            "expected TID {tid} of PID {pid} among the tasks of {details}"
        );
        let has_leader = ns.tasks.iter().any(|&i| inventory.tasks[i].tid == pid);
        assert!(!has_leader, "expected the leader PID {pid} not to be in {details}");
        assert_state(&inventory, ns, NsState::InUse, "the thread's namespace");
    }
    let leader_link = leader(&inventory, pid).links.get(NsType::Net);
    assert_eq!(
        leader_link,
        Some(leader_net.key),
        "expected the leader's net link to stay {}",
        leader_net.key
    );

    let output = listns_ok(&["-t", "net"]);
    let rows = rows_of(&output, net.key);
    let thread_row = format!("thread {tid} of PID {pid}");
    assert!(
        rows.iter()
            .any(|r| r.split_whitespace().next() == Some(&tid.to_string()) && r.contains(&thread_row)),
        "expected a row `{tid} {} ... {thread_row}`, found rows {rows:#?}",
        net.key
    );
}

// ---- Case 6: pid namespace held only by pid_for_children ----

#[test]
fn case_06_pid_for_children_only() {
    if !is_root("case_06_pid_for_children_only") {
        return;
    }
    let python = python(&format!(
        r#"
check(libc.unshare({CLONE_NEWPID}), "unshare(CLONE_NEWPID)")
child = os.fork()
if child == 0:
    os._exit(0)
os.waitpid(child, 0)
print("ready", flush=True)
sys.stdin.read()
"#
    ));
    assert_eq!(python.read_line(), "ready");
    let pid = python.pid();
    let handle = NsHandle::open(format!("/proc/{pid}/ns/pid_for_children"), NsType::Pid);

    let inventory = scan();
    let ns = handle.find(&inventory);
    let details = describe(&inventory, ns);
    assert!(
        ns.tasks.is_empty(),
        "expected no task in the pid namespace whose only process exited, found {details}"
    );
    let expected = Holder::Task {
        pid,
        tid: pid,
        link: TaskLink::PidForChildren,
    };
    assert!(
        ns.holders.contains(&expected),
        "expected the holder {expected:?} on {details}"
    );
    assert_state(&inventory, ns, NsState::Pinned, "the pid_for_children namespace");

    let doc = parse_json(&listns_ok(&["-J", "-t", "pid"]));
    let json_ns =
        json_namespace(&doc, handle.key).unwrap_or_else(|| panic!("expected {} in `listns -J -t pid`", handle.key));
    let holders = json_ns["holders"].as_array().cloned().unwrap_or_default();
    assert!(
        holders
            .iter()
            .any(|h| h["kind"] == "pid_for_children" && h["pid"] == pid),
        "expected a holder {{kind: pid_for_children, pid: {pid}}} in the JSON of {}, found {json_ns}",
        handle.key
    );
}

// ---- Case 7: pending pid namespace before its first process ----

/// Asserts what a pending pid namespace of `pid` leaves where the kernel
/// lacks the pidfd ioctl that opens it (before Linux 6.11). The task's
/// `pid_for_children` stays unknown, and the snapshot, the table's stderr
/// and the JSON name the failure and the missing interface.
fn assert_pending_pid_namespace_problem(pid: i32) {
    let inventory = scan();
    assert_eq!(
        leader(&inventory, pid).links.pid_for_children,
        0,
        "expected no pid_for_children for PID {pid}, whose pending namespace cannot be opened"
    );
    let row = inventory
        .problems
        .rows
        .iter()
        .find(|(kind, row)| kind.what == "pending pid namespace" && row.pids.contains(&pid));
    let Some((kind, row)) = row else {
        panic!(
            "expected a problem `pending pid namespace` for PID {pid}, found:\n{}",
            inventory.problems
        );
    };
    assert_eq!(kind.reason, Reason::Unsupported, "reason of {row:?}");
    assert!(
        row.example.as_deref().is_some_and(|e| e.contains("Linux 6.11")),
        "expected the error to name Linux 6.11: {row:?}"
    );

    let output = listns(&["-t", "pid"]);
    assert!(output.status.success(), "listns -t pid failed: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("pending pid namespace: not supported by this kernel"));
    assert!(
        line.is_some_and(|l| l.contains(&pid.to_string()) || l.contains(", ...")),
        "expected a line about the pending pid namespace of PID {pid} on stderr:\n{stderr}"
    );
    let doc = parse_json(&listns_ok(&["-J", "-t", "pid"]));
    let problems = doc["problems"].as_array().cloned().unwrap_or_default();
    assert!(
        problems.iter().any(|p| p["what"] == "pending pid namespace"
            && p["reason"] == "not supported by this kernel"
            && p["error"].as_str().is_some_and(|e| e.contains("Linux 6.11"))),
        "expected a JSON problem for the pending pid namespace, found {problems:?}"
    );
}

#[test]
fn case_07_pending_pid_namespace() {
    if !is_root("case_07_pending_pid_namespace") {
        return;
    }
    let sleep = Proc::spawn_until_comm("unshare", &["-p", "sleep", "600"], "sleep");
    let pid = sleep.pid();
    let link = std::fs::read_link(format!("/proc/{pid}/ns/pid_for_children"));
    assert_eq!(
        link.as_ref().map_err(|e| e.raw_os_error()).err(),
        Some(Some(libc::ENOENT)),
        "fixture: expected ENOENT from the pid_for_children link before the first child, found {link:?}"
    );
    let fallback = "that the pending pid namespace is reported as a problem";
    if !has_pending_pid_ioctl("case_07_pending_pid_namespace", pid, fallback) {
        assert_pending_pid_namespace_problem(pid);
        return;
    }
    let pidfd = nsfs::pidfd_open(pid, false).expect("pidfd_open of the sleep");
    let pending =
        nsfs::pid_for_children(pidfd.as_fd()).expect("PIDFD_GET_PID_FOR_CHILDREN_NAMESPACE on the sleep (Linux 6.11+)");
    let handle = NsHandle::from_fd(pending, NsType::Pid);

    let inventory = scan();
    let ns = handle.find(&inventory);
    let details = describe(&inventory, ns);
    assert!(
        ns.tasks.is_empty(),
        "expected no task in the pending pid namespace, found {details}"
    );
    let expected = Holder::Task {
        pid,
        tid: pid,
        link: TaskLink::PendingPidForChildren,
    };
    assert!(
        ns.holders.contains(&expected),
        "expected the holder {expected:?} on {details}"
    );
    assert_state(&inventory, ns, NsState::Pinned, "the pending pid namespace");
    assert_eq!(
        leader(&inventory, pid).links.pid_for_children,
        handle.key.inode,
        "expected the sleep's pid_for_children link to be filled in from the pidfd"
    );

    let output = listns_ok(&["-t", "pid"]);
    let rows = rows_of(&output, handle.key);
    let pending_row = format!("pending pid_for_children of PID {pid}");
    assert!(
        rows.iter().any(|r| is_holder_row(r) && r.contains(&pending_row)),
        "expected a `--` row with `{pending_row}` for {}, found rows {rows:#?}",
        handle.key
    );
    let doc = parse_json(&listns_ok(&["-J", "-t", "pid"]));
    let json_ns =
        json_namespace(&doc, handle.key).unwrap_or_else(|| panic!("expected {} in `listns -J -t pid`", handle.key));
    let holders = json_ns["holders"].as_array().cloned().unwrap_or_default();
    assert!(
        holders
            .iter()
            .any(|h| h["kind"] == "pending_pid_for_children" && h["pid"] == pid),
        "expected a holder {{kind: pending_pid_for_children, pid: {pid}}} in the JSON of {}, found {json_ns}",
        handle.key
    );
}

// ---- Case 8: time namespaces ----

#[test]
fn case_08_time_namespace() {
    if !is_root("case_08_time_namespace") {
        return;
    }
    // A process that exec'd after `unshare -T` is a member of the new time
    // namespace, on kernels that switch time namespaces on exec.
    let sleep = Proc::spawn_until_comm("unshare", &["-T", "--boottime", "86400", "sleep", "600"], "sleep");
    let mut pid = sleep.pid();
    let mut member = NsHandle::open(format!("/proc/{pid}/ns/time"), NsType::Time);
    let own_time = NsHandle::open("/proc/self/ns/time", NsType::Time);
    let mut _forked = None;
    if member.key == own_time.key {
        // Linux 6.1 switches to the new time namespace only in a forked child.
        assert!(
            kernel_version() < (6, 12),
            "the exec after `unshare -T` left the sleep in {}, on Linux 6.12 or later, which switches on exec",
            own_time.key
        );
        eprintln!(
            "case_08_time_namespace: this kernel does not switch time namespaces on exec, so the member of the \
             new time namespace is a forked child instead"
        );
        let parent = python(&format!(
            r#"
check(libc.unshare({CLONE_NEWTIME}), "unshare(CLONE_NEWTIME)")
child = os.fork()
if child == 0:
    libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL: ends with its parent
    os.execvp("sleep", ["sleep", "600"])
print(child, flush=True)
sys.stdin.read()
"#
        ));
        let child: i32 = parent.read_number();
        wait_until(&format!("PID {child} to exec sleep"), || {
            proc_comm(child).as_deref() == Some("sleep")
        });
        pid = child;
        member = NsHandle::open(format!("/proc/{pid}/ns/time"), NsType::Time);
        _forked = Some(parent);
    }
    // One that called unshare(CLONE_NEWTIME) and did not exec only points at it.
    let python = python(&format!(
        r#"
check(libc.unshare({CLONE_NEWTIME}), "unshare(CLONE_NEWTIME)")
print("ready", flush=True)
sys.stdin.read()
"#
    ));
    assert_eq!(python.read_line(), "ready");
    let python_pid = python.pid();
    let pending = NsHandle::open(format!("/proc/{python_pid}/ns/time_for_children"), NsType::Time);

    let inventory = scan();
    let host_time = inventory.defaults.key(NsType::Time);

    let ns = member.find(&inventory);
    let details = describe(&inventory, ns);
    assert_ne!(
        member.key, host_time,
        "fixture: `unshare -T` left the sleep in the host time namespace"
    );
    assert_eq!(
        ns.pids(&inventory.tasks),
        vec![pid],
        "expected exactly the sleep (PID {pid}) in {details}"
    );
    assert_state(&inventory, ns, NsState::InUse, "the time namespace of the sleep");

    let ns = pending.find(&inventory);
    let details = describe(&inventory, ns);
    assert!(
        ns.tasks.is_empty(),
        "expected no task in the time_for_children namespace, found {details}"
    );
    let expected = Holder::Task {
        pid: python_pid,
        tid: python_pid,
        link: TaskLink::TimeForChildren,
    };
    assert!(
        ns.holders.contains(&expected),
        "expected the holder {expected:?} on {details}"
    );
    assert_state(&inventory, ns, NsState::Pinned, "the time_for_children namespace");
    let python_time = leader(&inventory, python_pid).links.get(NsType::Time);
    assert_eq!(
        python_time,
        Some(host_time),
        "expected python (PID {python_pid}) still in the host time namespace"
    );
}

// ---- Case 9: nested user namespaces, middle level without process ----

#[test]
fn case_09_nested_user_namespaces() {
    if !is_root("case_09_nested_user_namespaces") {
        return;
    }
    let sleep = Proc::spawn_until_comm(
        "unshare",
        &["-U", "-r", "unshare", "-U", "-r", "-n", "sleep", "600"],
        "sleep",
    );
    let pid = sleep.pid();
    let inner = NsHandle::open(format!("/proc/{pid}/ns/user"), NsType::User);
    let middle_fd = nsfs::parent(inner.fd.as_fd()).expect("NS_GET_PARENT of the sleep's user namespace");
    let middle = NsHandle::from_fd(middle_fd, NsType::User);
    let net = NsHandle::open(format!("/proc/{pid}/ns/net"), NsType::Net);

    let inventory = scan();
    let host_user = inventory.defaults.key(NsType::User);
    let inner_ns = inner.find(&inventory);
    let middle_ns = middle.find(&inventory);
    let net_ns = net.find(&inventory);
    let inner_details = describe(&inventory, inner_ns);
    let middle_details = describe(&inventory, middle_ns);
    let net_details = describe(&inventory, net_ns);

    assert_eq!(
        inner_ns.pids(&inventory.tasks),
        vec![pid],
        "expected the sleep (PID {pid}) in {inner_details}"
    );
    assert_eq!(
        inner_ns.parent,
        Some(middle.key),
        "expected parent {} of {inner_details}",
        middle.key
    );
    assert!(
        middle_ns.tasks.is_empty(),
        "expected no task in the middle user namespace, found {middle_details}"
    );
    assert_eq!(
        middle_ns.parent,
        Some(host_user),
        "expected parent {host_user} of {middle_details}"
    );
    let child = Holder::Child {
        relation: Relation::Parent,
        child: inner.key,
    };
    assert!(
        middle_ns.holders.contains(&child),
        "expected the holder {child:?} on {middle_details}"
    );
    assert_state(&inventory, middle_ns, NsState::Pinned, "the middle user namespace");
    assert_eq!(
        net_ns.owner,
        Some(inner.key),
        "expected owner {} of {net_details}",
        inner.key
    );

    // The tree nests the sleep's user namespace one level below the middle one.
    let output = listns_ok(&["-T", "parent", "-t", "user"]);
    // A node's own key follows the branch drawing. It may also appear later
    // in the line of another node ("parent of user:[N]").
    let position = |key: listns::model::NsKey| {
        let needle = key.to_string();
        output.lines().enumerate().find_map(|(n, line)| {
            let label = line.trim_start_matches(['│', '├', '└', '─', ' ']);
            label
                .starts_with(&needle)
                .then(|| (n, line.chars().count() - label.chars().count()))
        })
    };
    let middle_at = position(middle.key);
    let inner_at = position(inner.key);
    assert!(
        middle_at.is_some(),
        "expected {} in `listns -T parent`:\n{output}",
        middle.key
    );
    assert!(
        inner_at.is_some(),
        "expected {} in `listns -T parent`:\n{output}",
        inner.key
    );
    let ((middle_line, middle_col), (inner_line, inner_col)) = (middle_at.unwrap(), inner_at.unwrap());
    assert!(
        inner_line > middle_line && inner_col > middle_col,
        "expected {} below and indented under {} in `listns -T parent`:\n{output}",
        inner.key,
        middle.key
    );
}

// ---- Case 10: zombies and churn during a scan ----

#[test]
fn case_10_zombie_and_churn() {
    if !is_root("case_10_zombie_and_churn") {
        return;
    }
    // The test process is the parent and reaps the zombie only in Proc's Drop.
    let zombie = Proc::spawn(&mut Command::new("true"));
    let zombie_pid = zombie.pid();
    wait_until(&format!("PID {zombie_pid} to become a zombie"), || {
        proc_state(zombie_pid) == Some('Z')
    });
    let churn = Proc::spawn(Command::new("sh").args(["-c", "for i in $(seq 2000); do unshare -n true; done"]));
    let children = format!("/proc/{0}/task/{0}/children", churn.pid());
    // Kernels without CONFIG_PROC_CHILDREN lack the file; the scans then
    // start without waiting.
    wait_until("the churn loop to start its first unshare", || {
        std::fs::read_to_string(&children).map_or(true, |c| !c.trim().is_empty())
    });

    let output = listns(&["-J"]);
    assert!(
        output.status.success(),
        "expected exit 0 from `listns -J` during the churn, found {}; stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let doc = parse_json(&String::from_utf8_lossy(&output.stdout));
    let tasks = doc["tasks"].as_array().cloned().unwrap_or_default();
    let json_zombie = tasks.iter().find(|t| t["pid"] == zombie_pid && t["tid"] == zombie_pid);
    assert!(
        json_zombie.is_some(),
        "expected the zombie PID {zombie_pid} among the tasks of `listns -J`"
    );
    assert_eq!(
        json_zombie.unwrap()["zombie"],
        true,
        "expected zombie: true for PID {zombie_pid} in `listns -J`"
    );

    // In-process scans take no lock: this process's own fds are never
    // counted as holders, so they cannot disturb the other tests.
    // Scan at least 5 times, and on while the loop runs, up to 100 scans.
    let churning = || proc_state(churn.pid()).is_some_and(|state| state != 'Z');
    let mut round = 0;
    while round < 5 || (churning() && round < 100) {
        round += 1;
        let inventory = match listns::inventory::scan() {
            Ok(inventory) => inventory,
            Err(err) => panic!("scan {round} during the churn failed: {err:#}"),
        };
        let task = leader(&inventory, zombie_pid);
        assert!(
            task.zombie,
            "scan {round}: expected zombie=true for PID {zombie_pid}, found {task:?}"
        );
        assert!(
            !task.kthread,
            "scan {round}: expected kthread=false for the zombie, found {task:?}"
        );
        let blamed: Vec<String> = inventory
            .problems
            .rows
            .iter()
            .filter(|(_, row)| row.pids.contains(&zombie_pid))
            .map(|(kind, row)| format!("{kind:?}: {row:?}"))
            .collect();
        assert!(
            blamed.is_empty(),
            "scan {round}: expected no problem for the zombie PID {zombie_pid}, found {blamed:?}"
        );

        for ns in inventory.namespaces.values() {
            if ns.state == NsState::InUse {
                assert!(
                    !ns.tasks.is_empty(),
                    "scan {round}: phantom namespace in use without a task: {}",
                    describe(&inventory, ns)
                );
            }
            for &i in &ns.tasks {
                let link = inventory.tasks[i].links.get(ns.key.ty);
                assert_eq!(
                    link,
                    Some(ns.key),
                    "scan {round}: task {:?} is listed in {} but links to {link:?}",
                    inventory.tasks[i],
                    ns.key
                );
            }
        }
    }
}

// ---- Initial namespaces ----

/// The host's initial namespaces are those of kthreadd (PID 2), also where
/// the kernel numbers the initial net and mnt namespaces dynamically (before
/// Linux 6.18), and a namespace that this test creates is not one of them.
#[test]
fn initial_namespaces_from_kthreadd() {
    if !is_root("initial_namespaces_from_kthreadd") {
        return;
    }
    let sleep = Proc::spawn_until_comm("unshare", &["-n", "-m", "sleep", "600"], "sleep");
    let inventory = scan();
    for ty in NsType::ALL {
        let initial = NsHandle::open(format!("/proc/2/ns/{}", ty.name()), ty).key;
        assert_eq!(
            inventory.defaults.inodes[ty.index()],
            initial.inode,
            "default {ty:?} namespace differs from kthreadd's {initial}"
        );
        assert_eq!(
            inventory.defaults.sources[ty.index()],
            DefaultSource::Kthreadd,
            "source of the default {ty:?} namespace"
        );
        let ns = inventory
            .namespaces
            .get(&initial)
            .unwrap_or_else(|| panic!("kthreadd's {initial} is missing from the inventory"));
        assert_eq!(ns.state, NsState::Default, "state of kthreadd's {initial}");
    }
    if kernel_version() < (6, 18) {
        let net = NsHandle::open("/proc/2/ns/net", NsType::Net).key;
        let mnt = NsHandle::open("/proc/2/ns/mnt", NsType::Mnt).key;
        eprintln!("initial_namespaces_from_kthreadd: this kernel numbers the initial {net} and {mnt} dynamically");
    }

    let pid = sleep.pid();
    for ty in [NsType::Net, NsType::Mnt] {
        let own = NsHandle::open(format!("/proc/{pid}/ns/{}", ty.name()), ty).key;
        let ns = inventory
            .namespaces
            .get(&own)
            .unwrap_or_else(|| panic!("{own} of PID {pid} is missing from the inventory"));
        assert_state(
            &inventory,
            ns,
            NsState::InUse,
            &format!("{own} of PID {pid} (unshare -n -m)"),
        );
    }
}

// ---- Case 11: kernel threads ----

#[test]
fn case_11_kernel_threads() {
    if !is_root("case_11_kernel_threads") {
        return;
    }
    let inventory = scan();
    let kthreadd = leader(&inventory, 2);
    assert_eq!(
        kthreadd.comm.as_deref(),
        Some("kthreadd"),
        "expected PID 2 to be kthreadd, found {kthreadd:?}"
    );
    assert!(
        kthreadd.kthread,
        "expected kthread=true for kthreadd, found {kthreadd:?}"
    );
    assert!(
        kthreadd.cmdline.is_empty(),
        "expected no command line for kthreadd, found {kthreadd:?}"
    );

    let Some(kdevtmpfs) = inventory.tasks.iter().find(|t| t.comm.as_deref() == Some("kdevtmpfs")) else {
        eprintln!("case_11_kernel_threads: no kdevtmpfs on this kernel; checked kthreadd only");
        return;
    };
    assert!(
        kdevtmpfs.kthread,
        "expected kthread=true for kdevtmpfs, found {kdevtmpfs:?}"
    );
    let host_mnt = inventory.defaults.key(NsType::Mnt);
    if kdevtmpfs.links.get(NsType::Mnt).is_some_and(|mnt| mnt != host_mnt) {
        // Its own mount namespace puts it in the default per-process view.
        let output = listns_ok(&[]);
        let row = output
            .lines()
            .find(|l| l.split_whitespace().next() == Some(&kdevtmpfs.pid.to_string()));
        assert!(
            row.is_some(),
            "expected a row for kdevtmpfs (PID {}) in `listns`:\n{output}",
            kdevtmpfs.pid
        );
        assert!(
            row.unwrap().contains("[kdevtmpfs] [kthread]"),
            "expected `[kdevtmpfs] [kthread]` in the row of PID {}, found {row:?}",
            kdevtmpfs.pid
        );
    }
}

// ---- Case 12: unreadable processes ----

#[test]
fn case_12_unreadable_pid_1() {
    if !is_root("case_12_unreadable_pid_1") {
        return;
    }
    match std::fs::read_link("/proc/1/ns/net") {
        Ok(link) => {
            eprintln!("case_12_unreadable_pid_1: skipped, /proc/1/ns/net is readable here ({link:?})");
            return;
        }
        Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {}
        Err(err) => panic!("reading /proc/1/ns/net failed with {err}, expected EACCES or success"),
    }

    // Only the /proc route reports PID 1: on this kind of machine the BPF
    // iterators do not visit it at all.
    let inventory = listns::inventory::scan_with(listns::inventory::Route::Proc)
        .unwrap_or_else(|e| panic!("/proc scan failed: {e:#}"));
    let denied = inventory.problems.rows.iter().find(|(kind, row)| {
        kind.reason == Reason::PermissionDenied && kind.what == "namespace links" && row.pids.contains(&1)
    });
    assert!(
        denied.is_some(),
        "expected a problem row (permission denied, namespace links, PID 1), found {:?}",
        inventory.problems.rows
    );
    assert!(
        inventory.problems.count(Reason::PermissionDenied) >= 1,
        "expected at least one permission-denied problem, found {:?}",
        inventory.problems.rows
    );
    let init = leader(&inventory, 1);
    assert!(!init.kthread, "expected PID 1 listed as a user process, found {init:?}");

    // The rest is complete: this test process, for one, is there with its links.
    let own_pid = std::process::id() as i32;
    let own_net = leader(&inventory, own_pid).links.get(NsType::Net);
    assert!(
        own_net.is_some(),
        "expected a readable net link for this test process (PID {own_pid})"
    );

    let output = listns(&["--route", "proc"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "expected exit 0 despite PID 1, found {}; stderr: {stderr}",
        output.status
    );
    let line = stderr
        .lines()
        .find(|l| l.contains("namespace links: permission denied"));
    assert!(
        line.is_some(),
        "expected `namespace links: permission denied` on stderr, found: {stderr}"
    );
    assert!(line.unwrap().contains("PID 1"), "expected PID 1 named in {line:?}");
}

// ---- Classification and --hidden ----

#[test]
fn netns_states_by_holder() {
    if !is_root("netns_states_by_holder") {
        return;
    }
    let sleep = Proc::spawn_until_comm("unshare", &["-n", "sleep", "600"], "sleep");
    let in_use = NsHandle::open(format!("/proc/{}/ns/net", sleep.pid()), NsType::Net);
    let netns = NetnsName::add("pinned");
    let pinned = NsHandle::open(&netns.path, NsType::Net);
    let mount = TmpNetnsMount::create("tmp");
    let tmp_mounted = NsHandle::open(&mount.file.path, NsType::Net);
    let (fd_held, _holder, _deleted) = netns_held_by_fd();

    let inventory = scan();
    let cases = [
        ("a process", &in_use, NsState::InUse),
        ("only /run/netns", &pinned, NsState::Pinned),
        ("a bind mount under /tmp", &tmp_mounted, NsState::Hidden),
        ("only an fd", &fd_held, NsState::Hidden),
    ];
    for (held_by, handle, expected) in cases {
        let ns = handle.find(&inventory);
        assert_state(&inventory, ns, expected, &format!("a netns held by {held_by}"));
    }
}

#[test]
fn hidden_flag_skips_used_namespaces() {
    if !is_root("hidden_flag_skips_used_namespaces") {
        return;
    }
    let sleep = Proc::spawn_until_comm("unshare", &["-n", "sleep", "600"], "sleep");
    let in_use = NsHandle::open(format!("/proc/{}/ns/net", sleep.pid()), NsType::Net);
    let mount = TmpNetnsMount::create("hidden");
    let tmp_mounted = NsHandle::open(&mount.file.path, NsType::Net);
    let (fd_held, _holder, _deleted) = netns_held_by_fd();

    let output = listns_ok(&["--hidden"]);
    let tmp_rows = rows_of(&output, tmp_mounted.key);
    let fd_rows = rows_of(&output, fd_held.key);
    let used_rows = rows_of(&output, in_use.key);
    assert!(
        !tmp_rows.is_empty(),
        "expected {} (mounted under /tmp) in `listns --hidden`:\n{output}",
        tmp_mounted.key
    );
    assert!(
        !fd_rows.is_empty(),
        "expected {} (held by an fd) in `listns --hidden`:\n{output}",
        fd_held.key
    );
    assert!(
        used_rows.is_empty(),
        "expected {} (with a process) not in `listns --hidden`, found {used_rows:#?}",
        in_use.key
    );
}

// ---- Beyond the twelve: fds of a process whose main thread exited ----

/// A process whose main thread called `pthread_exit` is a zombie leader with
/// live threads. Its fd table lives on in the threads (`/proc/PID/task/TID/fd`)
/// while `/proc/PID/fd` is empty, so an fd there still holds a namespace.
#[test]
fn fd_held_after_leader_exit() {
    if !is_root("fd_held_after_leader_exit") {
        return;
    }
    let mut netns = NetnsName::add("zleader");
    let handle = NsHandle::open(&netns.path, NsType::Net);
    let python = Proc::python(
        &format!(
            r#"{PY_PRELUDE}
opened = threading.Event()
def run():
    fd = os.open(sys.argv[1], os.O_RDONLY)
    print(threading.get_native_id(), fd, flush=True)
    opened.set()
    threading.Event().wait()
threading.Thread(target=run).start()
opened.wait()
libc.pthread_exit(None)
"#
        ),
        &[netns.path_str()],
    );
    let line = python.read_line();
    let numbers: Vec<i32> = line.split_whitespace().filter_map(|n| n.parse().ok()).collect();
    let [tid, fd] = numbers[..] else {
        panic!("python printed {line:?}, expected `TID FD`")
    };
    let pid = python.pid();
    wait_until(&format!("the main thread of PID {pid} to exit"), || {
        proc_state(pid) == Some('Z')
    });
    netns.delete();

    let inventory = scan();
    let thread = inventory.tasks.iter().find(|t| t.pid == pid && t.tid == tid);
    assert!(
        thread.is_some_and(|t| !t.zombie),
        "expected the live thread TID {tid} of PID {pid}, found {thread:?}"
    );
    let Some(ns) = inventory.namespaces.get(&handle.key) else {
        panic!(
            "{} (id {:?}), held only by fd {fd} of PID {pid} whose main thread exited, is missing from the inventory",
            handle.key, handle.id
        );
    };
    let expected = Holder::Fd { pid, tid, fd };
    assert!(
        ns.holders.contains(&expected),
        "expected the holder {expected:?} on {}",
        describe(&inventory, ns)
    );
}

/// A thread that unshared its fd table holds a namespace through an fd that
/// its process's own fd table does not have.
#[test]
fn fd_in_thread_private_table() {
    if !is_root("fd_in_thread_private_table") {
        return;
    }
    let mut netns = NetnsName::add("files");
    let handle = NsHandle::open(&netns.path, NsType::Net);
    let python = Proc::python(
        &format!(
            r#"{PY_PRELUDE}
CLONE_FILES = 0x400
opened = threading.Event()
def run():
    check(libc.unshare(CLONE_FILES), "unshare")
    fd = os.open(sys.argv[1], os.O_RDONLY)
    print(threading.get_native_id(), fd, flush=True)
    opened.set()
    threading.Event().wait()
threading.Thread(target=run).start()
opened.wait()
threading.Event().wait()
"#
        ),
        &[netns.path_str()],
    );
    let line = python.read_line();
    let numbers: Vec<i32> = line.split_whitespace().filter_map(|n| n.parse().ok()).collect();
    let [tid, fd] = numbers[..] else {
        panic!("python printed {line:?}, expected `TID FD`")
    };
    let pid = python.pid();
    netns.delete();

    let inventory = scan();
    let Some(ns) = inventory.namespaces.get(&handle.key) else {
        panic!(
            "{} held only by fd {fd} of thread {tid} (PID {pid}) is missing from the inventory",
            handle.key
        );
    };
    let expected = Holder::Fd { pid, tid, fd };
    assert!(
        ns.holders.contains(&expected),
        "expected the holder {expected:?} on {}",
        describe(&inventory, ns)
    );
}

/// Only network namespaces mounted in /run/netns are `ip netns` names; a
/// UTS namespace mounted there must not turn into a phantom network namespace.
#[test]
fn run_netns_ignores_other_types() {
    if !is_root("run_netns_ignores_other_types") {
        return;
    }
    let name = unique_name("uts");
    let path = format!("/run/netns/{name}");
    std::fs::create_dir_all("/run/netns").expect("create /run/netns");
    std::fs::write(&path, b"").expect("create the mount point");
    // Removes the mount and the file also when an assert fails.
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _cleanup = Cleanup(path.clone());
    run_ok("unshare", &[&format!("--uts={path}"), "true"]);
    let handle = NsHandle::open(&path, NsType::Uts);

    let inventory = scan();
    let uts = handle.find(&inventory);
    assert!(
        uts.names.is_empty(),
        "a UTS namespace got ip netns names: {}",
        describe(&inventory, uts)
    );
    let phantom = NsKey {
        ty: NsType::Net,
        inode: handle.key.inode,
    };
    assert!(
        !inventory.namespaces.contains_key(&phantom),
        "{phantom} appeared although only {} is mounted at {path}",
        handle.key
    );
}

/// `-p PID` lists the rows of that process only, as `lsns -p` does, and the
/// namespaces it holds without being in them.
#[test]
fn task_filter_shows_own_rows() {
    if !is_root("task_filter_shows_own_rows") {
        return;
    }
    let proc = python("libc.unshare(0x20000000)\nprint('ready', flush=True)\nthreading.Event().wait()\n");
    assert_eq!(proc.read_line(), "ready");
    let pid = proc.pid();
    let pending_opens = has_pending_pid_ioctl(
        "task_filter_shows_own_rows",
        pid,
        "that `-p` reports the pending pid namespace as a problem",
    );
    let result = listns(&["-p", &pid.to_string()]);
    assert!(result.status.success(), "listns -p {pid} failed: {result:?}");
    let output = String::from_utf8_lossy(&result.stdout).into_owned();
    let rows: Vec<&str> = output.lines().skip(1).collect();
    for row in &rows {
        let first = row.split_whitespace().next().unwrap_or("");
        assert!(
            first == pid.to_string() || first == "--",
            "row of another process in `-p {pid}`: {row:?}"
        );
    }
    if !pending_opens {
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(
            stderr.contains("pending pid namespace: not supported by this kernel"),
            "expected `-p {pid}` to name the unreadable pending pid namespace on stderr:\n{stderr}"
        );
        assert!(
            rows.len() >= 8,
            "expected the 8 namespaces of PID {pid}, found:\n{output}"
        );
        return;
    }
    assert!(
        rows.iter().any(|r| r.contains("pending pid_for_children of PID")),
        "the pending pid namespace held by PID {pid} is missing from `-p {pid}`:\n{output}"
    );
    assert!(
        rows.len() >= 9,
        "expected the 8 namespaces and the pending one of PID {pid}, found:\n{output}"
    );
}
