//! Root tests of live tracing: each test loads the eBPF programs, runs real
//! commands that create or enter namespaces, and looks for the events of the
//! PIDs it started. Other work may run on this machine, so every check
//! filters events by those PIDs.
//!
//! Needs root, tracefs (mounted by the loader if missing), `unshare`,
//! `nsenter`, `ip` and `python3`. Without root every test prints why and
//! passes.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use listns::model::NsType;
use listns::nsfs;
use listns::trace::load::HookStatus;
use listns::trace::{Detail, Event, MountCall, NsLinks, POLL_INTERVAL, TraceOptions, Tracer, derived_clone_flags};

/// How long a test waits for the events it expects. Generous, because other
/// work may load the machine.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// The storm test fills ring buffers; the other tests share this lock for
/// reading, the storm takes it for writing, so their buffers never compete.
static STORM_LOCK: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    STORM_LOCK.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    STORM_LOCK.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn is_root(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    eprintln!("skipping {test}: loading eBPF programs needs root; run the tests as root");
    false
}

fn load_tracer() -> Tracer {
    Tracer::load(&TraceOptions::default()).expect("loading the tracer failed")
}

/// Drains events until `done` accepts the ones collected so far, or panics
/// after [`EVENT_TIMEOUT`] with a summary of what matched `relevant`.
fn collect_until(
    tracer: &mut Tracer,
    relevant: impl Fn(&Event) -> bool,
    done: impl Fn(&[Event]) -> bool,
) -> Vec<Event> {
    let start = Instant::now();
    let mut events = Vec::new();
    loop {
        tracer.events.drain(|event| {
            if relevant(&event) {
                events.push(event);
            }
        });
        if done(&events) {
            return events;
        }
        if start.elapsed() > EVENT_TIMEOUT {
            let lines: Vec<String> = events.iter().map(|e| e.to_string()).collect();
            panic!(
                "timed out after {EVENT_TIMEOUT:?}; the matching events were:\n{}",
                lines.join("\n")
            );
        }
        tracer
            .events
            .wait(POLL_INTERVAL)
            .expect("polling the ring buffer failed");
    }
}

/// Returns the inode of `/proc/self/ns/NAME`.
fn own_inode(name: &str) -> u64 {
    std::fs::metadata(format!("/proc/self/ns/{name}"))
        .unwrap_or_else(|e| panic!("cannot stat /proc/self/ns/{name}: {e}"))
        .ino()
}

fn run(program: &str, args: &[&str]) -> u32 {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program} {args:?}: {e}"));
    let pid = child.id();
    let status = child.wait().expect("waiting for the child failed");
    assert!(status.success(), "{program} {args:?} failed with {status}");
    pid
}

fn is_kind(event: &Event, tgid: u32, matches: impl Fn(&Detail) -> bool) -> bool {
    event.task.tgid == tgid && matches(&event.detail)
}

fn find(events: &[Event], tgid: u32, matches: impl Fn(&Detail) -> bool) -> Option<&Event> {
    events.iter().find(|event| is_kind(event, tgid, &matches))
}

/// Returns the exec of `tgid` into `comm`: a spawned command execs twice,
/// first into the launcher (unshare, python3), then into its target.
fn find_exec<'a>(events: &'a [Event], tgid: u32, comm: &str) -> Option<&'a Event> {
    events
        .iter()
        .find(|event| is_kind(event, tgid, |d| matches!(d, Detail::Exec { .. })) && event.task.comm == comm.as_bytes())
}

fn inode(links: &NsLinks, ty: NsType) -> u64 {
    links.get(ty).map_or(0, |ns| ns.inode)
}

/// Waits for the unshare, the exec into `true` and the final exit of one
/// `unshare ... true` run.
fn unshare_exec_exit(tracer: &mut Tracer, pid: u32) -> (Event, Event, Event) {
    let events = collect_until(
        tracer,
        |e| e.task.tgid == pid,
        |events| {
            find(events, pid, |d| matches!(d, Detail::Unshare { .. })).is_some()
                && find_exec(events, pid, "true").is_some()
                && find(events, pid, |d| matches!(d, Detail::Exit { group_dead: true })).is_some()
        },
    );
    let unshare = find(&events, pid, |d| matches!(d, Detail::Unshare { .. }))
        .unwrap()
        .clone();
    let exec = find_exec(&events, pid, "true").unwrap().clone();
    let exit = find(&events, pid, |d| matches!(d, Detail::Exit { group_dead: true }))
        .unwrap()
        .clone();
    (unshare, exec, exit)
}

fn flags_of(event: &Event) -> u64 {
    match event.detail {
        Detail::Unshare { flags } => flags,
        _ => panic!("not an unshare event: {event}"),
    }
}

#[test]
fn unshare_net_short_lived() {
    if !is_root("unshare_net_short_lived") {
        return;
    }
    let _lock = shared();
    let mut tracer = load_tracer();
    let own_net = own_inode("net");

    let pid = run("unshare", &["-n", "true"]);
    let (unshare, exec, exit) = unshare_exec_exit(&mut tracer, pid);

    assert_eq!(flags_of(&unshare), NsType::Net.clone_flag() as u64);
    assert_eq!(unshare.task.tid, pid);
    let new_net = inode(&unshare.namespaces, NsType::Net);
    assert_ne!(new_net, 0, "net inode unread: {unshare}");
    assert_ne!(
        new_net, own_net,
        "unshare -n kept the parent's net namespace: {unshare}"
    );
    assert_eq!(inode(&unshare.namespaces, NsType::Uts), own_inode("uts"));
    let has_ids = common::has_namespace_ids("unshare_net_short_lived", "that events carry no namespace ids");
    assert_eq!(
        unshare.namespaces.get(NsType::Net).unwrap().id.is_some(),
        has_ids,
        "events carry ns_common.ns_id exactly where NS_GET_ID works: {unshare}"
    );

    assert_eq!(exec.task.comm, b"true");
    assert_eq!(inode(&exec.namespaces, NsType::Net), new_net);
    assert_eq!(inode(&exit.namespaces, NsType::Net), new_net);
    assert_eq!(exit.task.tid, pid);
}

#[test]
fn unshare_user_with_root_mapping() {
    if !is_root("unshare_user_with_root_mapping") {
        return;
    }
    let _lock = shared();
    let mut tracer = load_tracer();

    let pid = run("unshare", &["-U", "-r", "-n", "true"]);
    let (unshare, exec, _exit) = unshare_exec_exit(&mut tracer, pid);

    let expected = (NsType::User.clone_flag() | NsType::Net.clone_flag()) as u64;
    assert_eq!(flags_of(&unshare) & expected, expected, "{unshare}");
    assert_ne!(inode(&unshare.namespaces, NsType::User), own_inode("user"));
    assert_ne!(inode(&unshare.namespaces, NsType::Net), own_inode("net"));
    assert_eq!(
        inode(&exec.namespaces, NsType::User),
        inode(&unshare.namespaces, NsType::User)
    );
    // UIDs are reported in the initial user namespace: root there too.
    assert_eq!(exec.task.uid, 0);
}

#[test]
fn unshare_pid_reaches_fork_child() {
    if !is_root("unshare_pid_reaches_fork_child") {
        return;
    }
    let _lock = shared();
    let mut tracer = load_tracer();
    let own_pid_ns = own_inode("pid");

    let pid = run("unshare", &["-p", "-f", "true"]);
    let events = collect_until(
        &mut tracer,
        |e| e.task.tgid == pid || matches!(e.detail, Detail::Fork { creator_tgid, .. } if creator_tgid == pid),
        |events| {
            find(events, pid, |d| matches!(d, Detail::Unshare { .. })).is_some()
                && events.iter().any(|e| matches!(e.detail, Detail::Fork { .. }))
        },
    );
    let unshare = find(&events, pid, |d| matches!(d, Detail::Unshare { .. })).unwrap();
    // unshare(CLONE_NEWPID) moves only pid_for_children.
    assert_eq!(inode(&unshare.namespaces, NsType::Pid), own_pid_ns);
    let pending = unshare
        .namespaces
        .pid_for_children
        .expect("pid_for_children link")
        .inode;
    assert_ne!(pending, own_pid_ns);

    let fork = events.iter().find(|e| matches!(e.detail, Detail::Fork { .. })).unwrap();
    let Detail::Fork {
        creator_tid,
        creator_namespaces,
        ..
    } = &fork.detail
    else {
        unreachable!("filtered to forks");
    };
    assert_eq!(*creator_tid, pid);
    assert_eq!(fork.task.ppid, pid);
    assert_ne!(fork.task.tgid, pid);
    assert_eq!(
        inode(&fork.namespaces, NsType::Pid),
        pending,
        "child runs in the new pid namespace: {fork}"
    );
    assert_eq!(inode(creator_namespaces, NsType::Pid), own_pid_ns);
    assert_eq!(
        derived_clone_flags(&fork.namespaces, creator_namespaces),
        0,
        "the clone created nothing"
    );
}

/// Body of a child cloned with new namespaces: exit at once.
extern "C" fn exit_at_once(_arg: *mut libc::c_void) -> libc::c_int {
    0
}

#[test]
fn clone_with_new_namespaces() {
    if !is_root("clone_with_new_namespaces") {
        return;
    }
    let _lock = shared();
    let mut tracer = load_tracer();

    let mut stack = vec![0u8; CHILD_STACK_BYTES];
    let top = ((stack.as_mut_ptr() as usize + CHILD_STACK_BYTES) & !15) as *mut libc::c_void;
    let flags = (NsType::Uts.clone_flag() | NsType::Net.clone_flag()) as libc::c_int | libc::SIGCHLD;
    // SAFETY: without CLONE_VM the child runs exit_at_once on its own copy
    // of this process's memory, then exits; the stack outlives the call.
    let child = unsafe { libc::clone(exit_at_once, top, flags, std::ptr::null_mut()) };
    assert!(child > 0, "clone failed: {}", std::io::Error::last_os_error());
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    drop(stack);
    let child = child as u32;

    let events = collect_until(
        &mut tracer,
        |e| e.task.tgid == child,
        |events| find(events, child, |d| matches!(d, Detail::Fork { .. })).is_some(),
    );
    let fork = find(&events, child, |d| matches!(d, Detail::Fork { .. })).unwrap();
    let Detail::Fork {
        creator_tgid,
        creator_namespaces,
        ..
    } = &fork.detail
    else {
        unreachable!("filtered to forks")
    };
    assert_eq!(*creator_tgid, std::process::id());
    for ty in [NsType::Uts, NsType::Net] {
        assert_eq!(
            inode(creator_namespaces, ty),
            own_inode(ty.name()),
            "{ty:?} of the creator"
        );
        assert_ne!(
            inode(&fork.namespaces, ty),
            own_inode(ty.name()),
            "{ty:?} of the child: {fork}"
        );
    }
    assert_eq!(inode(&fork.namespaces, NsType::Mnt), own_inode("mnt"));
    assert!(fork.to_string().contains("changed=net,uts"), "{fork}");
    let expected = NsType::Uts.clone_flag() | NsType::Net.clone_flag();
    assert_eq!(derived_clone_flags(&fork.namespaces, creator_namespaces), expected);
}

#[test]
fn fork_fallback_raw_tracepoint() {
    if !is_root("fork_fallback_raw_tracepoint") {
        return;
    }
    let _lock = shared();
    let options = TraceOptions {
        skip_programs: vec!["sched_process_fork_btf".to_owned()],
        ..TraceOptions::default()
    };
    let mut tracer = Tracer::load(&options).expect("loading the tracer failed");
    let fork_hook = tracer.hooks.iter().find(|status| status.hook.name == "fork").unwrap();
    assert_eq!(fork_hook.attached, Some(1), "fork hook: {:?}", fork_hook.failures);

    // The child of unshare -p -f runs in the new pid namespace, which its
    // creator has only as pid_for_children: a fork with a difference.
    let pid = run("unshare", &["-p", "-f", "true"]);
    let events = collect_until(
        &mut tracer,
        |e| matches!(e.detail, Detail::Fork { creator_tgid, .. } if creator_tgid == pid),
        |events| !events.is_empty(),
    );
    let fork = &events[0];
    let Detail::Fork { creator_namespaces, .. } = &fork.detail else {
        unreachable!("filtered to forks")
    };
    assert_eq!(fork.task.ppid, pid);
    assert_eq!(
        inode(&fork.namespaces, NsType::Pid),
        creator_namespaces
            .pid_for_children
            .expect("pid_for_children link")
            .inode,
        "{fork}"
    );
}

#[test]
fn unshare_time_applies_on_exec() {
    if !is_root("unshare_time_applies_on_exec") {
        return;
    }
    let _lock = shared();
    let mut tracer = load_tracer();
    let own_time = own_inode("time");

    let pid = run("unshare", &["-T", "true"]);
    let (unshare, exec, _exit) = unshare_exec_exit(&mut tracer, pid);

    assert_eq!(flags_of(&unshare), NsType::Time.clone_flag() as u64);
    assert_eq!(
        inode(&unshare.namespaces, NsType::Time),
        own_time,
        "time changes only on exec"
    );
    let pending = unshare
        .namespaces
        .time_for_children
        .expect("time_for_children link")
        .inode;
    assert_ne!(pending, own_time);
    let expected = if common::exec_enters_new_time_ns("unshare_time_applies_on_exec") {
        pending
    } else {
        own_time
    };
    assert_eq!(
        inode(&exec.namespaces, NsType::Time),
        expected,
        "time namespace after exec (time_for_children is {pending}): {exec}"
    );
}

#[test]
fn unshare_cgroup_ipc_uts_mnt() {
    if !is_root("unshare_cgroup_ipc_uts_mnt") {
        return;
    }
    let _lock = shared();
    let mut tracer = load_tracer();

    let pid = run("unshare", &["-C", "-i", "-u", "-m", "true"]);
    let (unshare, _exec, _exit) = unshare_exec_exit(&mut tracer, pid);

    for ty in [NsType::Cgroup, NsType::Ipc, NsType::Uts, NsType::Mnt] {
        let flag = ty.clone_flag() as u64;
        assert_eq!(flags_of(&unshare) & flag, flag, "{ty:?} flag missing: {unshare}");
        assert_ne!(
            inode(&unshare.namespaces, ty),
            own_inode(ty.name()),
            "{ty:?} unchanged: {unshare}"
        );
    }
    assert_eq!(inode(&unshare.namespaces, NsType::Net), own_inode("net"));
}

/// A process that sleeps in its own network namespace until dropped.
struct NetnsHolder {
    child: Child,
}

impl NetnsHolder {
    fn start() -> NetnsHolder {
        let child = Command::new("unshare")
            .args(["-n", "sleep", "60"])
            .stdin(Stdio::null())
            .spawn()
            .expect("cannot start unshare -n sleep");
        let holder = NetnsHolder { child };
        let start = Instant::now();
        // Wait until the exec into sleep: then the namespace links are final.
        while std::fs::read_to_string(format!("/proc/{}/comm", holder.pid())).map_or(true, |c| c.trim() != "sleep") {
            assert!(start.elapsed() < EVENT_TIMEOUT, "unshare -n sleep did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        holder
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn ns_path(&self, name: &str) -> String {
        format!("/proc/{}/ns/{name}", self.pid())
    }
}

impl Drop for NetnsHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn exec_links_match_proc() {
    if !is_root("exec_links_match_proc") {
        return;
    }
    let _lock = shared();
    let mut tracer = load_tracer();
    let holder = NetnsHolder::start();
    let pid = holder.pid();

    let events = collect_until(
        &mut tracer,
        |e| e.task.tgid == pid,
        |events| find_exec(events, pid, "sleep").is_some(),
    );
    let exec = find_exec(&events, pid, "sleep").unwrap();
    let has_ids = common::has_namespace_ids("exec_links_match_proc", "that the event carries no ids");
    for ty in NsType::ALL {
        let path = holder.ns_path(ty.name());
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
        let expected_inode = file.metadata().unwrap().ino();
        let ns = exec
            .namespaces
            .get(ty)
            .unwrap_or_else(|| panic!("{ty:?} link missing: {exec}"));
        assert_eq!(ns.inode, expected_inode, "{ty:?} inode differs from {path}");
        let expected_id = if has_ids {
            Some(nsfs::namespace_id(std::os::fd::AsFd::as_fd(&file)).expect("NS_GET_ID"))
        } else {
            None
        };
        assert_eq!(ns.id, expected_id, "{ty:?} id differs from NS_GET_ID of {path}");
    }
    for (name, link) in [
        ("pid_for_children", exec.namespaces.pid_for_children),
        ("time_for_children", exec.namespaces.time_for_children),
    ] {
        let expected = std::fs::metadata(holder.ns_path(name)).unwrap().ino();
        assert_eq!(link.map(|ns| ns.inode), Some(expected), "{name} differs");
    }
}

#[test]
fn setns_by_nsenter() {
    if !is_root("setns_by_nsenter") {
        return;
    }
    let _lock = shared();
    let mut tracer = load_tracer();
    let holder = NetnsHolder::start();
    let target_net = std::fs::metadata(holder.ns_path("net")).unwrap().ino();

    let target = holder.pid().to_string();
    let pid = run("nsenter", &["-t", &target, "-n", "true"]);
    let events = collect_until(
        &mut tracer,
        |e| e.task.tgid == pid,
        |events| find(events, pid, |d| matches!(d, Detail::Setns { .. })).is_some(),
    );
    let setns = find(&events, pid, |d| matches!(d, Detail::Setns { .. })).unwrap();
    let Detail::Setns { fd, nstype } = setns.detail else {
        unreachable!("filtered to setns")
    };
    assert!(fd >= 0, "{setns}");
    assert_eq!(nstype, NsType::Net.clone_flag(), "{setns}");
    assert_eq!(inode(&setns.namespaces, NsType::Net), target_net, "{setns}");
    assert_eq!(setns.syscall_nr, Some(libc::SYS_setns as i32));
}

/// Deletes an `ip netns` name when dropped, so a failed test cleans up.
struct NetnsName(String);

impl Drop for NetnsName {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

fn is_call(detail: &Detail, expected: MountCall) -> bool {
    matches!(detail, Detail::Mount { call, .. } if *call == expected)
}

#[test]
fn ip_netns_add_exec_del() {
    if !is_root("ip_netns_add_exec_del") {
        return;
    }
    let _lock = shared();
    let mut tracer = load_tracer();
    let name = NetnsName(format!("listns-trace-{}", std::process::id()));

    // ip netns add: unshare(CLONE_NEWNET), then bind /proc/self/ns/net to
    // /run/netns/NAME (after making /run/netns a shared bind mount once).
    let add = run("ip", &["netns", "add", &name.0]);
    let pinned = std::fs::metadata(format!("/run/netns/{}", name.0)).unwrap().ino();
    let events = collect_until(
        &mut tracer,
        |e| e.task.tgid == add,
        |events| {
            find(events, add, |d| matches!(d, Detail::Unshare { .. })).is_some()
                && find(events, add, |d| is_call(d, MountCall::Mount)).is_some()
        },
    );
    let unshare = find(&events, add, |d| matches!(d, Detail::Unshare { .. })).unwrap();
    assert_eq!(inode(&unshare.namespaces, NsType::Net), pinned);
    let bind = events.iter().rfind(|e| is_call(&e.detail, MountCall::Mount)).unwrap();
    let Detail::Mount { flags, ret, .. } = bind.detail else {
        unreachable!("filtered to mounts")
    };
    assert_ne!(flags & libc::MS_BIND, 0, "{bind}");
    assert_eq!(ret, 0, "{bind}");

    let exec = run("ip", &["netns", "exec", &name.0, "true"]);
    let events = collect_until(
        &mut tracer,
        |e| e.task.tgid == exec,
        |events| find(events, exec, |d| matches!(d, Detail::Setns { .. })).is_some(),
    );
    let setns = find(&events, exec, |d| matches!(d, Detail::Setns { .. })).unwrap();
    assert_eq!(inode(&setns.namespaces, NsType::Net), pinned, "{setns}");

    // ip netns del: umount2(/run/netns/NAME, MNT_DETACH).
    let del = run("ip", &["netns", "del", &name.0]);
    let events = collect_until(
        &mut tracer,
        |e| e.task.tgid == del,
        |events| find(events, del, |d| is_call(d, MountCall::Umount)).is_some(),
    );
    let umount = find(&events, del, |d| is_call(d, MountCall::Umount)).unwrap();
    let Detail::Mount { flags, ret, .. } = umount.detail else {
        unreachable!("filtered to umounts")
    };
    assert_eq!(flags, libc::MNT_DETACH as u64, "{umount}");
    assert_eq!(ret, 0, "{umount}");
}

#[test]
fn thread_unshare_reports_thread() {
    if !is_root("thread_unshare_reports_thread") {
        return;
    }
    let _lock = shared();
    let mut tracer = load_tracer();

    // Python 3.11 has no os.unshare, so the thread calls libc directly. It
    // prints its native thread id, and the main thread outlives it.
    let script = format!(
        r#"
import ctypes, os, threading, time
libc = ctypes.CDLL(None, use_errno=True)
tids = []
def work():
    if libc.unshare({flag}) != 0:
        raise OSError(ctypes.get_errno(), "unshare failed")
    tids.append(threading.get_native_id())
    print(tids[0], flush=True)
t = threading.Thread(target=work)
t.start()
t.join()
# join() returns before the kernel thread is gone; wait until it is, so
# that the main thread's exit is the last one of the group.
deadline = time.monotonic() + 10
while os.path.exists(f"/proc/self/task/{{tids[0]}}") and time.monotonic() < deadline:
    time.sleep(0.001)
"#,
        flag = NsType::Uts.clone_flag()
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot start python3");
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "python3 failed with {status}");
    let tid: u32 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("invalid thread id {line:?}"));
    assert_ne!(tid, pid, "the unsharing thread is not the main thread");

    let events = collect_until(
        &mut tracer,
        |e| e.task.tgid == pid,
        |events| {
            events
                .iter()
                .any(|e| e.task.tid == tid && matches!(e.detail, Detail::Unshare { .. }))
                && events
                    .iter()
                    .any(|e| e.task.tid == tid && matches!(e.detail, Detail::Exit { .. }))
                && find(events, pid, |d| matches!(d, Detail::Exit { group_dead: true })).is_some()
        },
    );
    let unshare = events
        .iter()
        .find(|e| e.task.tid == tid && matches!(e.detail, Detail::Unshare { .. }))
        .unwrap();
    assert_ne!(inode(&unshare.namespaces, NsType::Uts), own_inode("uts"));
    let thread_exit = events
        .iter()
        .find(|e| e.task.tid == tid && matches!(e.detail, Detail::Exit { .. }))
        .unwrap();
    assert_eq!(thread_exit.detail, Detail::Exit { group_dead: false }, "{thread_exit}");
    assert_eq!(
        inode(&thread_exit.namespaces, NsType::Uts),
        inode(&unshare.namespaces, NsType::Uts)
    );
    let leader_exit = find(&events, pid, |d| matches!(d, Detail::Exit { group_dead: true })).unwrap();
    assert_eq!(leader_exit.task.tid, pid);
    assert_eq!(
        inode(&leader_exit.namespaces, NsType::Uts),
        own_inode("uts"),
        "the main thread kept its uts"
    );
}

#[test]
fn exec_from_non_leader_thread() {
    if !is_root("exec_from_non_leader_thread") {
        return;
    }
    let _lock = shared();
    let mut tracer = load_tracer();

    // A second thread execs: the kernel gives it the leader's id, and the
    // exec event reports the thread's old id.
    let script = r#"
import os, threading
def work():
    print(threading.get_native_id(), flush=True)
    os.execv("/bin/true", ["true"])
threading.Thread(target=work).start()
threading.Event().wait(30)
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot start python3");
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "python3 failed with {status}");
    let tid: u32 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("invalid thread id {line:?}"));

    let events = collect_until(
        &mut tracer,
        |e| e.task.tgid == pid,
        |events| find_exec(events, pid, "true").is_some(),
    );
    let exec = find_exec(&events, pid, "true").unwrap();
    assert_eq!(exec.detail, Detail::Exec { old_tid: tid }, "{exec}");
    assert_eq!(exec.task.tid, pid);
}

/// Returns whether the kernel has the kprobe PMU of `perf_event_open`, which
/// aya attaches kprobes through. Debian's 6.1 and 6.12 kernels have it; a
/// kernel built without `CONFIG_KPROBE_EVENTS` has not.
fn has_kprobes() -> bool {
    std::path::Path::new("/sys/bus/event_source/devices/kprobe/type").exists()
}

fn hook_status<'a>(tracer: &'a Tracer, name: &str) -> &'a HookStatus {
    tracer
        .hooks
        .iter()
        .find(|status| status.hook.name == name)
        .unwrap_or_else(|| panic!("no hook named {name} in the tracer's status"))
}

/// Asserts that every attachment of `status` tried before `upto` left a
/// failure that names its program and gives a reason.
fn assert_failures_explained(status: &HookStatus, upto: usize) {
    assert_eq!(
        status.failures.len(),
        upto,
        "hook {}: expected one failure per attachment tried, found {:?}",
        status.hook.name,
        status.failures
    );
    for (attachment, failure) in status.hook.attachments.iter().zip(&status.failures) {
        let program = attachment.programs[0].name;
        assert!(
            failure.starts_with(program),
            "hook {}: the failure does not name {program}: {failure:?}",
            status.hook.name
        );
        let reason = failure.split_once(": ").map_or("", |(_, reason)| reason.trim());
        assert!(
            !reason.is_empty(),
            "hook {}: the failure of {program} gives no reason: {failure:?}",
            status.hook.name
        );
    }
}

/// Runs `unshare -u true` and waits until the kernel frees the uts
/// namespace it created: the `free_inum` event with its inode number must
/// follow the unshare event.
fn assert_free_of_new_uts(tracer: &mut Tracer) {
    let pid = run("unshare", &["-u", "true"]);
    let unshare_of = |events: &[Event]| {
        events
            .iter()
            .position(|e| is_kind(e, pid, |d| matches!(d, Detail::Unshare { .. })))
    };
    let freed_after = |events: &[Event], start: usize, uts: u64| {
        events[start..]
            .iter()
            .any(|e| e.detail == Detail::FreeInum { inode: uts })
    };
    let uts_of = |event: &Event| inode(&event.namespaces, NsType::Uts);
    let events = collect_until(
        tracer,
        |e| e.task.tgid == pid || matches!(e.detail, Detail::FreeInum { .. }),
        |events| unshare_of(events).is_some_and(|i| freed_after(events, i, uts_of(&events[i]))),
    );
    let unshare = &events[unshare_of(&events).unwrap()];
    assert_ne!(
        uts_of(unshare),
        own_inode("uts"),
        "unshare -u kept the parent's uts namespace: {unshare}"
    );
}

/// On a kernel that allows fentry or kprobes, `ns_free` attaches and reports
/// the free of a namespace. Where it cannot attach (a kernel that refuses
/// fentry with EPERM and was built without kprobes), each attachment's
/// failure is reported with its reason.
#[test]
fn ns_free_hook_attaches_or_says_why() {
    if !is_root("ns_free_hook_attaches_or_says_why") {
        return;
    }
    let _lock = shared();
    let mut tracer = load_tracer();
    let status = hook_status(&tracer, "ns_free").clone();
    eprintln!(
        "ns_free: attached {:?} ({:?}), failures {:?}",
        status.attached,
        status.targets(),
        status.failures
    );
    match status.attached {
        None => {
            assert!(
                !has_kprobes(),
                "this kernel has kprobes, yet ns_free did not attach: {:?}",
                status.failures
            );
            assert_failures_explained(&status, status.hook.attachments.len());
        }
        Some(index) => {
            assert_failures_explained(&status, index);
            assert_free_of_new_uts(&mut tracer);
        }
    }
}

/// With fentry skipped, `ns_free` falls back to its kprobe where the kernel
/// has kprobes; elsewhere both failures are reported.
#[test]
fn ns_free_kprobe_fallback() {
    if !is_root("ns_free_kprobe_fallback") {
        return;
    }
    let _lock = shared();
    let options = TraceOptions {
        skip_programs: vec!["fentry_proc_free_inum".to_owned()],
        ..TraceOptions::default()
    };
    let mut tracer = Tracer::load(&options).expect("loading the tracer failed");
    let status = hook_status(&tracer, "ns_free").clone();
    assert_eq!(
        status.failures.first().map(String::as_str),
        Some("fentry_proc_free_inum skipped on request"),
        "ns_free failures: {:?}",
        status.failures
    );
    if has_kprobes() {
        assert_eq!(status.attached, Some(1), "ns_free failures: {:?}", status.failures);
        assert_eq!(status.targets().as_deref(), Some("kprobe/proc_free_inum"));
        assert_free_of_new_uts(&mut tracer);
    } else {
        assert_eq!(
            status.attached,
            None,
            "ns_free attached without kprobes: {:?}",
            status.targets()
        );
        assert_eq!(status.failures.len(), 2, "ns_free failures: {:?}", status.failures);
        let kprobe = &status.failures[1];
        assert!(
            kprobe.starts_with("kprobe_proc_free_inum: "),
            "the kprobe failure does not name its program: {kprobe:?}"
        );
    }
}

/// Body of one storm child: unshare the namespace type passed in `arg`.
extern "C" fn unshare_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: unshare has no memory-safety preconditions.
    let ret = unsafe { libc::unshare(arg as usize as libc::c_int) };
    if ret == 0 { 0 } else { 1 }
}

/// Size of the stack of a storm child, which only calls unshare.
const CHILD_STACK_BYTES: usize = 64 * 1024;

/// Forks `workers` processes that each start `per_worker` children, one at
/// a time; each child unshares `flag` and exits at once.
///
/// The children are cloned with CLONE_VM | CLONE_VFORK on a stack of their
/// own, as posix_spawn does: copying the test binary's page tables for
/// every child would make the storm ten times slower.
fn start_storm(flag: u32, workers: usize, per_worker: usize) -> Vec<libc::pid_t> {
    let mut pids = Vec::new();
    for _ in 0..workers {
        // Allocated before fork: a child of a multithreaded process must
        // not call malloc.
        let mut stack = vec![0u8; CHILD_STACK_BYTES];
        // The stack grows down from its 16-byte aligned top.
        let top = ((stack.as_mut_ptr() as usize + CHILD_STACK_BYTES) & !15) as *mut libc::c_void;
        // SAFETY: after fork the worker runs only async-signal-safe system
        // calls (clone, waitpid, _exit), as required in a child of a
        // multithreaded process. Each clone child runs unshare_child on
        // its own stack while the worker is suspended (CLONE_VFORK).
        let worker = unsafe { libc::fork() };
        assert!(worker >= 0, "fork failed: {}", std::io::Error::last_os_error());
        if worker == 0 {
            unsafe {
                let mut failures = 0;
                for _ in 0..per_worker {
                    let child = libc::clone(
                        unshare_child,
                        top,
                        libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                        flag as usize as *mut libc::c_void,
                    );
                    let mut status = 0;
                    if child < 0 || libc::waitpid(child, &mut status, 0) != child || status != 0 {
                        failures += 1;
                    }
                }
                libc::_exit(if failures == 0 { 0 } else { 1 });
            }
        }
        pids.push(worker);
        drop(stack);
    }
    pids
}

/// Runs a storm of `total` namespace creations while draining events, and
/// checks that every creation was received or counted as lost.
fn storm(ty: NsType, total: usize) {
    let _lock = exclusive();
    let mut tracer = load_tracer();
    let workers = 2;
    let start = Instant::now();
    let pids = start_storm(ty.clone_flag(), workers, total / workers);
    let worker_set: HashSet<u32> = pids.iter().map(|&pid| pid as u32).collect();

    let mut received = 0u64;
    let mut all_events = 0u64;
    let mut running = pids.clone();
    let mut worker_failed = false;
    while !running.is_empty() {
        all_events += tracer.events.drain(|event| {
            if matches!(event.detail, Detail::Unshare { .. }) && worker_set.contains(&event.task.ppid) {
                received += 1;
            }
        }) as u64;
        running.retain(|&pid| {
            let mut status = 0;
            // SAFETY: waitpid on our own child with WNOHANG.
            let ret = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if ret == pid {
                worker_failed |= status != 0;
                false
            } else {
                true
            }
        });
        tracer
            .events
            .wait(Duration::from_millis(10))
            .expect("polling the ring buffer failed");
    }
    let elapsed = start.elapsed();
    // Events submitted just before the workers ended may still be queued.
    loop {
        let drained = tracer.events.drain(|event| {
            if matches!(event.detail, Detail::Unshare { .. }) && worker_set.contains(&event.task.ppid) {
                received += 1;
            }
        });
        all_events += drained as u64;
        if drained == 0 {
            break;
        }
    }
    let counters = tracer.events.counters().unwrap();
    eprintln!(
        "storm of {total} {} namespaces: {elapsed:?} ({:.0} creations/s), {received} unshare events received, \
         {all_events} events in all ({:.0} events/s), {} lost, {} read failures",
        ty.name(),
        total as f64 / elapsed.as_secs_f64(),
        all_events as f64 / elapsed.as_secs_f64(),
        counters.lost_events,
        counters.read_failed,
    );
    assert!(!worker_failed, "a storm worker saw a failed fork or unshare");
    assert_eq!(counters.read_failed, 0);
    assert!(
        received + counters.lost_events >= total as u64,
        "only {received} received + {} lost of {total} creations",
        counters.lost_events
    );
    assert!(
        received <= total as u64,
        "more unshare events ({received}) than creations ({total})"
    );
}

#[test]
fn storm_of_uts_namespaces() {
    if !is_root("storm_of_uts_namespaces") {
        return;
    }
    storm(NsType::Uts, 100_000);
}

#[test]
fn storm_of_net_namespaces() {
    if !is_root("storm_of_net_namespaces") {
        return;
    }
    storm(NsType::Net, 5_000);
}
