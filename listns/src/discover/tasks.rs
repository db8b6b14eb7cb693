//! Every task on the host, threads included, and its namespace links:
//! `/proc/PID/task/TID/ns/*`, including `pid_for_children` and
//! `time_for_children`, plus the pending pid namespace that only the pidfd
//! ioctl reveals.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use procfs::FromRead;

use super::defaults::Defaults;
use super::procfs_io::{numeric_entries, open_dir, open_read, read_file, read_link};
use super::{Found, containers};
use crate::model::{Holder, NsKey, NsType, Task, TaskLink, TaskLinks};
use crate::nsfs;
use crate::problems::Problems;

/// `PF_KTHREAD` in the flags field of `/proc/PID/stat`.
const PF_KTHREAD: u32 = 0x0020_0000;

/// The link names of `/proc/PID/task/TID/ns`, with the slot each fills.
const LINKS: [(&str, Slot); 10] = [
    ("cgroup", Slot::Member(NsType::Cgroup)),
    ("ipc", Slot::Member(NsType::Ipc)),
    ("mnt", Slot::Member(NsType::Mnt)),
    ("net", Slot::Member(NsType::Net)),
    ("pid", Slot::Member(NsType::Pid)),
    ("pid_for_children", Slot::PidForChildren),
    ("time", Slot::Member(NsType::Time)),
    ("time_for_children", Slot::TimeForChildren),
    ("user", Slot::Member(NsType::User)),
    ("uts", Slot::Member(NsType::Uts)),
];

#[derive(Clone, Copy)]
enum Slot {
    Member(NsType),
    PidForChildren,
    TimeForChildren,
}

/// The fields of `/proc/PID/stat` that the scan uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatInfo {
    pub comm: String,
    pub ppid: i32,
    pub kthread: bool,
    pub zombie: bool,
}

/// Parses `/proc/PID/stat`. A kernel thread has `PF_KTHREAD` in its flags; a
/// zombie is in state `Z` (or `X` while it is being reaped).
pub fn parse_stat(text: &[u8]) -> io::Result<StatInfo> {
    let stat = procfs::process::Stat::from_read(text)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    Ok(StatInfo {
        comm: stat.comm,
        ppid: stat.ppid,
        kthread: stat.flags & PF_KTHREAD != 0,
        zombie: matches!(stat.state, 'Z' | 'X'),
    })
}

/// Per-worker state: reusable buffers, so the scan allocates little per
/// task, and the worker's own problem counts.
struct Worker {
    file: Vec<u8>,
    link: [u8; 256],
    problems: Problems,
}

impl Default for Worker {
    fn default() -> Worker {
        Worker {
            file: Vec::with_capacity(4096),
            link: [0; 256],
            problems: Problems::default(),
        }
    }
}

impl super::Worker for Worker {
    fn into_problems(self) -> Problems {
        self.problems
    }
}

/// Facts a worker read about one task, before they are added to [`Found`].
pub(super) struct RawTask {
    pub task: Task,
    /// The pending pid namespace, opened through the pidfd ioctl.
    pub pending_pid_ns: Option<OwnedFd>,
}

/// Threads of a process left for the second pass, with what they are
/// compared against and inherit from their leader.
struct ThreadBatch {
    leader: Task,
    tids: Vec<i32>,
}

/// Number of threads read in the first pass together with their process.
/// The rest of a large thread group is split into batches of this size for
/// the second pass, so one process with 10,000 threads keeps every worker busy.
const THREAD_BATCH: usize = 256;

/// Scans every task under `/proc`. Fails only if `/proc` itself cannot be read.
///
/// Reading the links is the cost of a snapshot (ten `readlinkat` calls per
/// thread), so the reads run on a few worker threads. Recording what they
/// found runs on the caller's thread.
pub fn scan(found: &mut Found, defaults: &Defaults) -> io::Result<()> {
    scan_pids(found, defaults, &list_pids()?)
}

/// Returns the PIDs that `/proc` lists.
pub fn list_pids() -> io::Result<Vec<i32>> {
    numeric_entries(rustix::fs::CWD, "/proc")
}

/// Scans the processes `pids` and their threads under `/proc`.
pub fn scan_pids(found: &mut Found, defaults: &Defaults, pids: &[i32]) -> io::Result<()> {
    let proc = open_dir(rustix::fs::CWD, "/proc")?;
    let processes = super::parallel(pids, found, |&pid, worker| {
        read_process(proc.as_fd(), pid, defaults, worker)
    });
    let mut batches = Vec::new();
    for (raw, rest) in processes.into_iter().flatten() {
        for task in raw {
            record(found, task);
        }
        batches.extend(rest);
    }
    let threads = super::parallel(&batches, found, |batch, worker| {
        read_threads(proc.as_fd(), batch, worker)
    });
    for task in threads.into_iter().flatten() {
        record(found, task);
    }
    Ok(())
}

/// Reads one process: its leader, its first threads, and the batches of
/// threads left for the second pass.
fn read_process(
    proc: BorrowedFd<'_>,
    pid: i32,
    defaults: &Defaults,
    worker: &mut Worker,
) -> Option<(Vec<RawTask>, Vec<ThreadBatch>)> {
    let dir = match open_dir(proc, &pid.to_string()) {
        Ok(dir) => dir,
        Err(err) => {
            worker.problems.record("process directory", pid, &err);
            return None;
        }
    };
    // The owner of /proc/PID is the task's effective UID (root for a
    // non-dumpable process, like `ps` shows it).
    let uid = rustix::fs::fstat(&dir).ok().map(|st| st.st_uid);

    let stat = match read_file(&dir, "stat", &mut worker.file).and_then(|()| parse_stat(&worker.file)) {
        Ok(stat) => stat,
        Err(err) => {
            worker.problems.record("stat", pid, &err);
            return None;
        }
    };

    let tids = match numeric_entries(&dir, "task") {
        Ok(tids) => tids,
        Err(err) => {
            worker.problems.record("thread list", pid, &err);
            vec![pid]
        }
    };

    let (links, pending_pid_ns) = read_links(dir.as_fd(), pid, pid, stat.zombie, worker);
    let cmdline = if stat.kthread || stat.zombie {
        Vec::new()
    } else {
        read_cmdline(&dir, &mut worker.file)
    };
    // Containers are looked up only for processes outside the default
    // namespaces; a process with the host's namespaces is not containerised.
    let container = if defaults.differs(&links) {
        read_file(&dir, "cgroup", &mut worker.file)
            .ok()
            .and_then(|()| containers::container_from_cgroup(&String::from_utf8_lossy(&worker.file)))
    } else {
        None
    };
    let leader = Task {
        pid,
        tid: pid,
        ppid: stat.ppid,
        uid,
        comm: Some(stat.comm),
        cmdline,
        kthread: stat.kthread,
        zombie: stat.zombie,
        links,
        container,
        cgroup_id: None,
    };

    let others: Vec<i32> = tids.into_iter().filter(|&tid| tid != pid).collect();
    let (now, later) = others.split_at(others.len().min(THREAD_BATCH));
    let mut raw = Vec::with_capacity(1 + now.len());
    for &tid in now {
        raw.push(read_thread(dir.as_fd(), &leader, tid, worker));
    }
    let batches = later
        .chunks(THREAD_BATCH)
        .map(|tids| ThreadBatch {
            leader: leader.clone(),
            tids: tids.to_vec(),
        })
        .collect();
    raw.insert(
        0,
        RawTask {
            task: leader,
            pending_pid_ns,
        },
    );
    Some((raw, batches))
}

fn read_threads(proc: BorrowedFd<'_>, batch: &ThreadBatch, worker: &mut Worker) -> Vec<RawTask> {
    let pid = batch.leader.pid;
    let dir = match open_dir(proc, &pid.to_string()) {
        Ok(dir) => dir,
        Err(err) => {
            worker.problems.record("process directory", pid, &err);
            return Vec::new();
        }
    };
    batch
        .tids
        .iter()
        .map(|&tid| read_thread(dir.as_fd(), &batch.leader, tid, worker))
        .collect()
}

/// Reads one non-leader thread. Its own name is read only where its
/// namespaces differ from its leader's, which keeps processes with many
/// threads cheap.
fn read_thread(process: BorrowedFd<'_>, leader: &Task, tid: i32, worker: &mut Worker) -> RawTask {
    let pid = leader.pid;
    let (links, pending_pid_ns) = read_links(process, pid, tid, false, worker);
    let comm = if links != leader.links {
        read_file(process, &format!("task/{tid}/stat"), &mut worker.file)
            .and_then(|()| parse_stat(&worker.file))
            .ok()
            .map(|s| s.comm)
    } else {
        None
    };
    let task = Task {
        pid,
        tid,
        ppid: leader.ppid,
        uid: leader.uid,
        comm,
        cmdline: Vec::new(),
        kthread: leader.kthread,
        zombie: false,
        links,
        container: leader.container.clone(),
        cgroup_id: None,
    };
    RawTask { task, pending_pid_ns }
}

pub(super) fn read_cmdline(dir: &OwnedFd, buf: &mut Vec<u8>) -> Vec<String> {
    if read_file(dir, "cmdline", buf).is_err() {
        return Vec::new();
    }
    crate::model::split_cmdline(buf)
}

/// Reads the namespace links of one task. Errors are counted once per task.
/// Where `pid_for_children` gives ENOENT on a live task, the task unshared
/// CLONE_NEWPID and has not forked yet: the pidfd ioctl opens that pending
/// namespace.
fn read_links(
    process: BorrowedFd<'_>,
    pid: i32,
    tid: i32,
    zombie: bool,
    worker: &mut Worker,
) -> (TaskLinks, Option<OwnedFd>) {
    let mut links = TaskLinks::default();
    let ns_dir = match open_dir(process, &format!("task/{tid}/ns")) {
        Ok(dir) => dir,
        Err(err) => {
            worker.problems.record("namespace links", pid, &err);
            return (links, None);
        }
    };
    let mut pid_for_children_missing = false;
    for (name, slot) in LINKS {
        let key = match read_link(&ns_dir, name, &mut worker.link) {
            Ok(text) => match nsfs::parse_link(text) {
                Some(key) => key,
                None => continue,
            },
            // A zombie or exiting task has no namespaces left.
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {
                pid_for_children_missing |= matches!(slot, Slot::PidForChildren);
                continue;
            }
            Err(err) => {
                worker.problems.record("namespace links", pid, &err);
                return (links, None);
            }
        };
        match slot {
            Slot::Member(ty) => links.member[ty.index()] = key.inode,
            Slot::PidForChildren => links.pid_for_children = key.inode,
            Slot::TimeForChildren => links.time_for_children = key.inode,
        }
    }
    let member_pid = links.member[NsType::Pid.index()];
    if !pid_for_children_missing || zombie || member_pid == 0 {
        return (links, None);
    }
    match pending_pid_namespace(pid, tid) {
        Ok(fd) => (links, Some(fd)),
        // The task may simply have exited between the two reads.
        Err(err) => {
            worker.problems.record("pending pid namespace", pid, &err);
            (links, None)
        }
    }
}

/// Adds one task and the namespaces its links name to `found`. A namespace
/// seen for the first time is opened through the task's link, to read its
/// id and relations later.
pub(super) fn record(found: &mut Found, raw: RawTask) {
    let RawTask {
        mut task,
        pending_pid_ns,
    } = raw;
    let (pid, tid) = (task.pid, task.tid);
    for (name, slot) in LINKS {
        let inode = match slot {
            Slot::Member(ty) => task.links.member[ty.index()],
            Slot::PidForChildren => task.links.pid_for_children,
            Slot::TimeForChildren => task.links.time_for_children,
        };
        let ty = match slot {
            Slot::Member(ty) => ty,
            Slot::PidForChildren => NsType::Pid,
            Slot::TimeForChildren => NsType::Time,
        };
        if inode != 0 {
            found.see(NsKey { ty, inode }, || {
                open_read(rustix::fs::CWD, format!("/proc/{pid}/task/{tid}/ns/{name}").as_str())
            });
        }
    }
    // `*_for_children` links that differ from the task's own namespace hold
    // a namespace that may have no member yet.
    let links = task.links;
    if links.pid_for_children != 0 && links.pid_for_children != links.member[NsType::Pid.index()] {
        let key = NsKey {
            ty: NsType::Pid,
            inode: links.pid_for_children,
        };
        found.hold(
            key,
            Holder::Task {
                pid,
                tid,
                link: TaskLink::PidForChildren,
            },
            super::no_open,
        );
    }
    if links.time_for_children != 0 && links.time_for_children != links.member[NsType::Time.index()] {
        let key = NsKey {
            ty: NsType::Time,
            inode: links.time_for_children,
        };
        found.hold(
            key,
            Holder::Task {
                pid,
                tid,
                link: TaskLink::TimeForChildren,
            },
            super::no_open,
        );
    }
    if let Some(fd) = pending_pid_ns {
        match nsfs::key_of(fd.as_fd(), Some(NsType::Pid)) {
            Ok(key) => {
                task.links.pid_for_children = key.inode;
                found.see_fd(key, fd);
                found.hold(
                    key,
                    Holder::Task {
                        pid,
                        tid,
                        link: TaskLink::PendingPidForChildren,
                    },
                    super::no_open,
                );
            }
            Err(err) => found.problems.record("pending pid namespace", pid, &err),
        }
    }
    found.tasks.push(task);
}

/// Opens the pending pid namespace of a task through a pidfd. Where the
/// kernel lacks an interface this needs, the error has kind
/// [`io::ErrorKind::Unsupported`] and names it, so that the problem report
/// gives the reason the namespace is missing.
pub(super) fn pending_pid_namespace(pid: i32, tid: i32) -> io::Result<OwnedFd> {
    let thread = pid != tid;
    let pidfd = nsfs::pidfd_open(tid, thread).map_err(|err| {
        // Kernels before 6.9 reject the PIDFD_THREAD flag with EINVAL.
        if thread && err.raw_os_error() == Some(libc::EINVAL) {
            unsupported(format!(
                "pidfd_open of thread {tid} failed ({err}): pidfds for threads (PIDFD_THREAD) need Linux 6.9"
            ))
        } else {
            err
        }
    })?;
    nsfs::pid_for_children(pidfd.as_fd()).map_err(|err| {
        if err.raw_os_error() == Some(libc::ENOTTY) {
            unsupported(format!(
                "PIDFD_GET_PID_FOR_CHILDREN_NAMESPACE failed ({err}): the ioctl needs Linux 6.11"
            ))
        } else {
            err
        }
    })
}

fn unsupported(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_of_kernel_thread() {
        let text = b"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 26 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        let stat = parse_stat(text).unwrap();
        assert_eq!(stat.comm, "kthreadd");
        assert_eq!(stat.ppid, 0);
        assert!(stat.kthread);
        assert!(!stat.zombie);
    }

    #[test]
    fn stat_of_zombie() {
        let text = b"4242 (sleep) Z 4200 4242 4200 0 -1 4227084 90 0 0 0 0 0 0 0 20 0 1 0 12345 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        let stat = parse_stat(text).unwrap();
        assert_eq!(stat.ppid, 4200);
        assert!(stat.zombie);
        assert!(!stat.kthread);
    }

    #[test]
    fn stat_comm_with_parens_and_spaces() {
        let text = b"77 (a) b (c) R 1 77 77 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        let stat = parse_stat(text).unwrap();
        assert_eq!(stat.comm, "a) b (c");
        assert_eq!(stat.ppid, 1);
        assert!(!stat.zombie);
    }

    #[test]
    fn stat_truncated_is_error() {
        assert!(parse_stat(b"12 (x").is_err());
    }

    /// Without a pending namespace the ioctl opens the task's own pid
    /// namespace. Kernels before 6.11 lack the ioctl, and the error says so.
    #[test]
    fn pending_pid_namespace_of_self() {
        let pid = std::process::id() as i32;
        let own = rustix::fs::stat("/proc/self/ns/pid").unwrap().st_ino;
        match pending_pid_namespace(pid, pid) {
            Ok(fd) => assert_eq!(rustix::fs::fstat(&fd).unwrap().st_ino, own),
            Err(err) => {
                assert!(
                    !crate::discover::defaults::kernel_at_least(6, 11),
                    "the ioctl failed on Linux 6.11 or later: {err}"
                );
                eprintln!("pending_pid_namespace_of_self: this kernel lacks the ioctl (Linux 6.11+): {err}");
                assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
                assert!(err.to_string().contains("Linux 6.11"), "{err}");
            }
        }
    }
}
