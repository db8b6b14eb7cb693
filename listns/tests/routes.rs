//! Cross-check of the two snapshot routes: the BPF iterators and `/proc`
//! must report the same namespaces with the same holders. The fixtures
//! cover every kind of holder; tasks that start or exit between the two
//! reads are the only difference allowed.
//!
//! The test needs root and a listns built with its eBPF object; as another
//! user it prints why and passes.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{NsHandle, Proc, TmpNetnsMount, has_pending_pid_ioctl, is_root, proc_state, wait_until};
use listns::inventory::{self, Inventory, Route};
use listns::model::{Holder, NsKey, NsType, TaskLink};
use listns::problems::Reason;

/// Python prelude: `os.unshare` and `os.setns` exist only from Python 3.12
/// on, so the fixtures call libc through ctypes.
const PY_PRELUDE: &str = r#"
import ctypes, os, socket, sys, threading, time
libc = ctypes.CDLL(None, use_errno=True)
def check(ret, call):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, call + ": " + os.strerror(err))
CLONE_NEWTIME = 0x80
CLONE_NEWUTS = 0x04000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
"#;

fn python(body: &str) -> Proc {
    Proc::python(&format!("{PY_PRELUDE}{body}"), &[])
}

/// What both routes must agree on for one namespace.
#[derive(Debug, PartialEq, Eq)]
struct NsView {
    id: Option<u64>,
    owner: Option<NsKey>,
    parent: Option<NsKey>,
    members: BTreeSet<(i32, i32)>,
    holders: Vec<Holder>,
}

/// Returns every (PID, TID) of a snapshot.
fn task_ids(inventory: &Inventory) -> BTreeSet<(i32, i32)> {
    inventory.tasks.iter().map(|t| (t.pid, t.tid)).collect()
}

/// Projects a snapshot onto the tasks present in both, so that tasks that
/// came or went between the two reads drop out. A namespace that only such
/// tasks referred to drops out with them.
fn view(inventory: &Inventory, stable: &BTreeSet<(i32, i32)>) -> BTreeMap<NsKey, NsView> {
    let stable_pids: BTreeSet<i32> = stable.iter().map(|&(pid, _)| pid).collect();
    let mut out = BTreeMap::new();
    for ns in inventory.namespaces.values() {
        let all_members: BTreeSet<(i32, i32)> = ns
            .tasks
            .iter()
            .map(|&i| (inventory.tasks[i].pid, inventory.tasks[i].tid))
            .collect();
        let members: BTreeSet<(i32, i32)> = all_members.intersection(stable).copied().collect();
        let holders: Vec<Holder> = ns
            .holders
            .iter()
            .filter(|h| h.pid().is_none_or(|pid| stable_pids.contains(&pid)))
            .cloned()
            .collect();
        let transient = members.is_empty() && holders.is_empty() && (!all_members.is_empty() || !ns.holders.is_empty());
        if transient {
            continue;
        }
        let view = NsView {
            id: ns.id,
            owner: ns.owner,
            parent: ns.parent,
            members,
            holders,
        };
        out.insert(ns.key, view);
    }
    out
}

/// Returns the PIDs that `/proc` lists.
fn listed_pids() -> BTreeSet<i32> {
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

fn has_holder(inventory: &Inventory, key: NsKey, wanted: impl Fn(&Holder) -> bool) -> bool {
    inventory
        .namespaces
        .get(&key)
        .is_some_and(|ns| ns.holders.iter().any(wanted))
}

#[test]
fn routes_agree_on_fixtures() {
    if !is_root("routes_agree_on_fixtures") {
        return;
    }
    // Held by a bind mount outside the usual places.
    let mount = TmpNetnsMount::create("routes");
    let mounted = NsHandle::open(&mount.file.path, NsType::Net);

    // Held only by an nsfs fd: the child that created the uts namespace is gone.
    let fd_holder = python(
        r#"
ready_read, ready_write = os.pipe()
pid = os.fork()
if pid == 0:
    libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL: ends with the test's process
    check(libc.unshare(CLONE_NEWUTS), "unshare")
    os.write(ready_write, b"x")
    time.sleep(600)
    os._exit(0)
os.read(ready_read, 1)
fd = os.open("/proc/%d/ns/uts" % pid, os.O_RDONLY)
os.kill(pid, 9)
os.waitpid(pid, 0)
print(fd, flush=True)
sys.stdin.read()
"#,
    );
    let held_fd: i32 = fd_holder.read_number();

    // Held only by a socket created in a network namespace the process left.
    let socket_holder = python(
        r#"
home = os.open("/proc/self/ns/net", os.O_RDONLY)
check(libc.unshare(CLONE_NEWNET), "unshare")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
check(libc.setns(home, CLONE_NEWNET), "setns")
os.close(home)
print(s.fileno(), flush=True)
sys.stdin.read()
"#,
    );
    let socket_fd: i32 = socket_holder.read_number();

    // Held only by a tun device created in a network namespace the process
    // left; its fd stays in a process of the host's network namespace.
    let has_tun = std::path::Path::new("/dev/net/tun").exists();
    let tun_holder = has_tun.then(|| {
        python(
            r#"
import fcntl, struct
home = os.open("/proc/self/ns/net", os.O_RDONLY)
check(libc.unshare(CLONE_NEWNET), "unshare")
tun = os.open("/dev/net/tun", os.O_RDWR)
# TUNSETIFF with IFF_TUN | IFF_NO_PI
fcntl.ioctl(tun, 0x400454ca, struct.pack("16sH", b"lnsroute%d", 0x0001 | 0x1000))
check(libc.setns(home, CLONE_NEWNET), "setns")
os.close(home)
print(tun, flush=True)
sys.stdin.read()
"#,
        )
    });
    let tun_fd: Option<i32> = tun_holder.as_ref().map(|p| p.read_number());

    // A thread in a uts namespace of its own.
    let thread_holder = python(
        r#"
def own():
    check(libc.unshare(CLONE_NEWUTS), "unshare")
    print(threading.get_native_id(), flush=True)
    time.sleep(600)
threading.Thread(target=own, daemon=True).start()
sys.stdin.read()
"#,
    );
    let own_tid: i32 = thread_holder.read_number();

    // pid_for_children with a child in it, and a pending pid namespace
    // (unshare without fork), and a time namespace for children.
    let pid_children = python(
        r#"
check(libc.unshare(CLONE_NEWPID), "unshare")
if os.fork() == 0:
    libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL: ends with the test's process
    time.sleep(600)
    os._exit(0)
print("ready", flush=True)
sys.stdin.read()
"#,
    );
    pid_children.read_line();
    let pending = python(
        r#"
check(libc.unshare(CLONE_NEWPID), "unshare")
print("ready", flush=True)
sys.stdin.read()
"#,
    );
    pending.read_line();
    let time_children = python(
        r#"
check(libc.unshare(CLONE_NEWTIME), "unshare")
print("ready", flush=True)
sys.stdin.read()
"#,
    );
    time_children.read_line();

    // A zombie: the child exits and its parent never waits.
    let zombie_parent = python(
        r#"
pid = os.fork()
if pid == 0:
    os._exit(0)
print(pid, flush=True)
sys.stdin.read()
"#,
    );
    let zombie: i32 = zombie_parent.read_number();
    wait_until("the fixture's child to become a zombie", || {
        proc_state(zombie) == Some('Z')
    });

    // Nested user namespaces: the middle one has no task of its own. Both
    // unshare commands exec, so the PID ends up being the sleep.
    let nested = Proc::spawn_until_comm("unshare", &["-U", "-r", "unshare", "-U", "-r", "sleep", "600"], "sleep");

    // A command line longer than the iterator copies, with empty arguments.
    let long_arg = "y".repeat(10_000);
    let long_cmdline = Proc::python(
        "import sys; print('ready', flush=True); sys.stdin.read()",
        &[&long_arg, "", "x", ""],
    );
    long_cmdline.read_line();

    let listed_before = listed_pids();
    let iter = inventory::scan_with(Route::Iter).unwrap_or_else(|e| panic!("iterator route failed: {e:#}"));
    let proc = inventory::scan_with(Route::Proc).unwrap_or_else(|e| panic!("/proc route failed: {e:#}"));
    assert_eq!(iter.route, "iter");
    assert_eq!(proc.route, "proc");

    // Every fixture is in the iterator snapshot, as the expected holder.
    let bind = |h: &Holder| matches!(h, Holder::BindMount { path, .. } if path == mount.path_str());
    assert!(
        has_holder(&iter, mounted.key, bind),
        "bind mount of {} missing",
        mounted.key
    );
    let fd_pid = fd_holder.pid();
    let fd_ns = iter
        .namespaces
        .values()
        .find(|ns| {
            ns.holders.contains(&Holder::Fd {
                pid: fd_pid,
                tid: fd_pid,
                fd: held_fd,
            })
        })
        .unwrap_or_else(|| panic!("no namespace held by fd {held_fd} of PID {fd_pid}"));
    assert_eq!(
        fd_ns.key.ty,
        NsType::Uts,
        "fd {held_fd} of PID {fd_pid} holds {}",
        fd_ns.key
    );
    let socket_pid = socket_holder.pid();
    let socket_held = iter.namespaces.values().any(|ns| {
        ns.key.ty == NsType::Net
            && ns
                .holders
                .iter()
                .any(|h| matches!(h, Holder::Socket { pid, fd, .. } if *pid == socket_pid && *fd == socket_fd))
    });
    assert!(
        socket_held,
        "no netns held by socket fd {socket_fd} of PID {socket_pid}"
    );
    if let (Some(tun_holder), Some(tun_fd)) = (&tun_holder, tun_fd) {
        let tun_pid = tun_holder.pid();
        let tun_held = iter.namespaces.values().any(|ns| {
            ns.key.ty == NsType::Net
                && ns.tasks.is_empty()
                && ns.holders.contains(&Holder::Tun {
                    pid: tun_pid,
                    tid: tun_pid,
                    fd: tun_fd,
                })
        });
        assert!(tun_held, "no task-less netns held by tun fd {tun_fd} of PID {tun_pid}");
    } else {
        eprintln!("routes_agree_on_fixtures: tun fixture skipped, /dev/net/tun does not exist");
    }
    let thread = iter
        .tasks
        .iter()
        .find(|t| t.tid == own_tid)
        .unwrap_or_else(|| panic!("thread {own_tid} missing"));
    let leader = iter
        .tasks
        .iter()
        .find(|t| t.tid == thread_holder.pid())
        .expect("thread's leader");
    assert_ne!(thread.links.get(NsType::Uts), leader.links.get(NsType::Uts));
    let link_holder = |pid: i32, link: TaskLink| {
        iter.namespaces
            .values()
            .any(|ns| ns.holders.contains(&Holder::Task { pid, tid: pid, link }))
    };
    assert!(
        link_holder(pid_children.pid(), TaskLink::PidForChildren),
        "pid_for_children missing"
    );
    let fallback = "that both routes report the pending pid namespace as a problem";
    if has_pending_pid_ioctl("routes_agree_on_fixtures", pending.pid(), fallback) {
        assert!(
            link_holder(pending.pid(), TaskLink::PendingPidForChildren),
            "pending pid namespace missing"
        );
    } else {
        for inventory in [&iter, &proc] {
            let reported = inventory.problems.rows.iter().any(|(kind, row)| {
                kind.what == "pending pid namespace"
                    && kind.reason == Reason::Unsupported
                    && row.pids.contains(&pending.pid())
            });
            assert!(
                reported,
                "the {} route does not report the pending pid namespace of PID {} as a problem:\n{}",
                inventory.route,
                pending.pid(),
                inventory.problems
            );
        }
    }
    assert!(
        link_holder(time_children.pid(), TaskLink::TimeForChildren),
        "time_for_children missing"
    );
    let zombie_task = iter.tasks.iter().find(|t| t.tid == zombie).expect("zombie task");
    assert!(zombie_task.zombie, "PID {zombie} is not marked as a zombie");
    assert!(
        iter.tasks.iter().any(|t| t.kthread),
        "no kernel thread in the iterator snapshot"
    );
    let sleep_user = iter
        .tasks
        .iter()
        .find(|t| t.tid == nested.pid())
        .and_then(|t| t.links.get(NsType::User))
        .expect("user namespace of the nested sleep");
    let middle = iter.namespaces[&sleep_user]
        .parent
        .expect("parent of the inner user namespace");
    assert!(
        iter.namespaces[&middle].tasks.is_empty(),
        "the middle user namespace has tasks"
    );

    // Both routes read the same command lines: the fixtures' own, which do
    // not change while the test runs.
    let mut fixtures = vec![
        fd_holder.pid(),
        socket_holder.pid(),
        thread_holder.pid(),
        pid_children.pid(),
        pending.pid(),
        time_children.pid(),
        zombie_parent.pid(),
        nested.pid(),
    ];
    fixtures.extend(tun_holder.as_ref().map(Proc::pid));
    fixtures.push(long_cmdline.pid());
    for pid in fixtures {
        let cmdline = |inventory: &Inventory| {
            inventory
                .tasks
                .iter()
                .find(|t| t.pid == pid && t.tid == pid)
                .map(|t| t.cmdline.clone())
                .unwrap_or_else(|| panic!("PID {pid} missing from the {} snapshot", inventory.route))
        };
        let (iter_cmdline, proc_cmdline) = (cmdline(&iter), cmdline(&proc));
        assert!(
            !iter_cmdline.is_empty(),
            "PID {pid} has no command line in the iterator snapshot"
        );
        assert_eq!(
            iter_cmdline, proc_cmdline,
            "command line of PID {pid} (left: iterators, right: /proc)"
        );
    }

    let long = iter
        .tasks
        .iter()
        .find(|t| t.pid == long_cmdline.pid() && t.is_leader())
        .expect("the long command line's process");
    assert!(
        long.cmdline.iter().any(|arg| arg == &long_arg),
        "the 10,000-byte argument is missing or cut: {:?}",
        long.cmdline.iter().map(String::len).collect::<Vec<_>>()
    );
    assert!(
        long.cmdline.ends_with(&[String::new(), "x".into(), String::new()]),
        "empty arguments are missing: {:?}",
        &long.cmdline[long.cmdline.len().saturating_sub(3)..]
    );

    // A process that /proc listed before the iterators ran, and that still
    // exists, is in the iterator snapshot too, even where the iterators
    // cannot see it: it is read through /proc then, and named as a problem.
    let listed_after = listed_pids();
    let missing: Vec<i32> = listed_before
        .intersection(&listed_after)
        .filter(|&&pid| !iter.tasks.iter().any(|t| t.pid == pid))
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "processes missing from the iterator snapshot: {missing:?}"
    );

    // Both routes agree namespace by namespace and holder by holder.
    let stable: BTreeSet<(i32, i32)> = task_ids(&iter).intersection(&task_ids(&proc)).copied().collect();
    let iter_view = view(&iter, &stable);
    let proc_view = view(&proc, &stable);
    let only_iter: Vec<&NsKey> = iter_view.keys().filter(|k| !proc_view.contains_key(k)).collect();
    let only_proc: Vec<&NsKey> = proc_view.keys().filter(|k| !iter_view.contains_key(k)).collect();
    assert!(
        only_iter.is_empty(),
        "namespaces only the iterators found: {only_iter:?}"
    );
    assert!(only_proc.is_empty(), "namespaces only /proc found: {only_proc:?}");
    for (key, iter_ns) in &iter_view {
        assert_eq!(
            iter_ns, &proc_view[key],
            "{key} differs (left: iterators, right: /proc)"
        );
    }
}
