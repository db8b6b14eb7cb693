//! Every task on the host, threads included, and its namespace links:
//! `/proc/PID/task/TID/ns/*`, including `pid_for_children` and
//! `time_for_children`, plus the pending pid namespace that only the pidfd
//! ioctl reveals.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use procfs::FromRead;

use super::defaults::Defaults;
use super::procfs_io::{numeric_entries, open_dir, read_file, read_link};
use super::{Found, containers};
use crate::model::{Holder, NsKey, NsType, Task, TaskLink, TaskLinks};
use crate::nsfs;

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
    let stat = procfs::process::Stat::from_read(text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    Ok(StatInfo {
        comm: stat.comm,
        ppid: stat.ppid,
        kthread: stat.flags & PF_KTHREAD != 0,
        zombie: matches!(stat.state, 'Z' | 'X'),
    })
}

/// Reusable buffers, so the scan allocates little per task.
struct Buffers {
    file: Vec<u8>,
    link: [u8; 256],
}

/// Scans every task under `/proc`. Fails only if `/proc` itself cannot be read.
pub fn scan(found: &mut Found, defaults: &Defaults) -> io::Result<()> {
    let proc = open_dir(rustix::fs::CWD, "/proc")?;
    let pids = numeric_entries(&proc, ".")?;
    let mut buffers = Buffers { file: Vec::with_capacity(4096), link: [0; 256] };
    for pid in pids {
        scan_process(found, proc.as_fd(), pid, defaults, &mut buffers);
    }
    Ok(())
}

fn scan_process(found: &mut Found, proc: BorrowedFd<'_>, pid: i32, defaults: &Defaults, buffers: &mut Buffers) {
    let dir = match open_dir(proc, &pid.to_string()) {
        Ok(dir) => dir,
        Err(err) => return found.problems.record("process directory", pid, &err),
    };
    // The owner of /proc/PID is the task's effective UID (root for a
    // non-dumpable process, like `ps` shows it).
    let uid = rustix::fs::fstat(&dir).ok().map(|st| st.st_uid);

    let stat = match read_file(&dir, "stat", &mut buffers.file).and_then(|()| parse_stat(&buffers.file)) {
        Ok(stat) => stat,
        Err(err) => return found.problems.record("stat", pid, &err),
    };

    let tids = match numeric_entries(&dir, "task") {
        Ok(tids) => tids,
        Err(err) => {
            found.problems.record("thread list", pid, &err);
            vec![pid]
        }
    };

    let leader_links = read_links(found, dir.as_fd(), pid, pid, stat.zombie, buffers);
    let cmdline = if stat.kthread || stat.zombie { Vec::new() } else { read_cmdline(&dir, &mut buffers.file) };
    // Containers are looked up only for processes outside the default
    // namespaces; a process with the host's namespaces is not containerised.
    let container = if defaults.differs(&leader_links) {
        read_file(&dir, "cgroup", &mut buffers.file)
            .ok()
            .and_then(|()| containers::container_from_cgroup(&String::from_utf8_lossy(&buffers.file)))
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
        links: leader_links,
        container: container.clone(),
    };
    found.tasks.push(leader);

    for tid in tids.into_iter().filter(|&tid| tid != pid) {
        let links = read_links(found, dir.as_fd(), pid, tid, false, buffers);
        // A thread's own name is read only where its namespaces differ from
        // its leader's, which keeps processes with many threads cheap.
        let comm = if links != leader_links {
            read_file(&dir, &format!("task/{tid}/stat"), &mut buffers.file)
                .and_then(|()| parse_stat(&buffers.file))
                .ok()
                .map(|s| s.comm)
        } else {
            None
        };
        found.tasks.push(Task {
            pid,
            tid,
            ppid: stat.ppid,
            uid,
            comm,
            cmdline: Vec::new(),
            kthread: stat.kthread,
            zombie: false,
            links,
            container: container.clone(),
        });
    }
}

fn read_cmdline(dir: &OwnedFd, buf: &mut Vec<u8>) -> Vec<String> {
    if read_file(dir, "cmdline", buf).is_err() {
        return Vec::new();
    }
    buf.split(|&b| b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// Reads the namespace links of one task and records every namespace they
/// name. Errors are counted once per task.
fn read_links(found: &mut Found, process: BorrowedFd<'_>, pid: i32, tid: i32, zombie: bool, buffers: &mut Buffers) -> TaskLinks {
    let mut links = TaskLinks::default();
    let ns_dir = match open_dir(process, &format!("task/{tid}/ns")) {
        Ok(dir) => dir,
        Err(err) => {
            found.problems.record("namespace links", pid, &err);
            return links;
        }
    };
    let mut pending_pid_ns = false;
    for (name, slot) in LINKS {
        let key = match read_link(&ns_dir, name, &mut buffers.link) {
            Ok(text) => match nsfs::parse_link(text) {
                Some(key) => key,
                None => continue,
            },
            // A zombie or exiting task has no namespaces left.
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {
                if matches!(slot, Slot::PidForChildren) && !zombie {
                    pending_pid_ns = true;
                }
                continue;
            }
            Err(err) => {
                found.problems.record("namespace links", pid, &err);
                return links;
            }
        };
        let open = || super::procfs_io::open_read(&ns_dir, name);
        match slot {
            Slot::Member(ty) => {
                debug_assert_eq!(ty, key.ty);
                links.member[ty.index()] = key.inode;
                found.see(key, open);
            }
            Slot::PidForChildren => {
                links.pid_for_children = key.inode;
                found.see(key, open);
            }
            Slot::TimeForChildren => {
                links.time_for_children = key.inode;
                found.see(key, open);
            }
        }
    }
    // `*_for_children` links that differ from the task's own namespace hold
    // a namespace that may have no member yet.
    let member_pid = links.member[NsType::Pid.index()];
    if links.pid_for_children != 0 && links.pid_for_children != member_pid {
        let key = NsKey { ty: NsType::Pid, inode: links.pid_for_children };
        found.hold(key, Holder::Task { pid, tid, link: TaskLink::PidForChildren }, super::no_open);
    }
    let member_time = links.member[NsType::Time.index()];
    if links.time_for_children != 0 && links.time_for_children != member_time {
        let key = NsKey { ty: NsType::Time, inode: links.time_for_children };
        found.hold(key, Holder::Task { pid, tid, link: TaskLink::TimeForChildren }, super::no_open);
    }
    // The member links were readable but pid_for_children was not: the task
    // unshared CLONE_NEWPID and has not forked yet.
    if pending_pid_ns && member_pid != 0 {
        match pending_pid_namespace(pid, tid) {
            Ok(fd) => match nsfs::key_of(fd.as_fd(), Some(NsType::Pid)) {
                Ok(key) => {
                    links.pid_for_children = key.inode;
                    found.see_fd(key, fd);
                    found.hold(key, Holder::Task { pid, tid, link: TaskLink::PendingPidForChildren }, super::no_open);
                }
                Err(err) => found.problems.record("pending pid namespace", pid, &err),
            },
            // The task may simply have exited between the two reads.
            Err(err) => found.problems.record("pending pid namespace", pid, &err),
        }
    }
    links
}

/// Opens the pending pid namespace of a task through a pidfd.
fn pending_pid_namespace(pid: i32, tid: i32) -> io::Result<OwnedFd> {
    let pidfd = nsfs::pidfd_open(tid, pid != tid)?;
    nsfs::pid_for_children(pidfd.as_fd())
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
}
