//! Namespaces held by open file descriptors: fds on nsfs files, and sockets
//! or tun fds whose network namespace differs from their process's.
//!
//! An nsfs fd is recognised by the device of the file it refers to, because
//! its link text can be `net:[N]`, the path of a bind mount it was opened
//! through, or just `/` once that mount is gone.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::procfs_io::{numeric_entries, open_dir, open_read, read_link};
use super::{Found, type_hint};
use crate::model::{Holder, NsKey, NsType};
use crate::nsfs;
use crate::problems::Problems;

/// Counts of the work this source did, for the log.
#[derive(Debug, Default)]
pub struct FdStats {
    pub processes: usize,
    pub fds: usize,
    pub sockets_probed: usize,
}

/// The fd table of one process: where to read it and whom it belongs to.
#[derive(Clone, Copy)]
struct FdTable {
    pid: i32,
    /// The task whose `/proc` directory shows the table: the leader, or a
    /// live thread when the leader has exited (its own `fd` directory is
    /// empty then, while the threads still share the table).
    tid: i32,
    netns: u64,
}

/// One fd of interest, as a worker read it.
enum FdKind {
    /// An fd on an nsfs file; `ty` is known when the link text names it.
    Nsfs {
        ty: Option<NsType>,
        inode: u64,
    },
    Socket {
        inode: u64,
    },
    Tun,
}

/// Findings of a worker in one fd table.
struct TableScan {
    fds: usize,
    found: Vec<(i32, FdKind)>,
}

/// Per-thread state of the parallel read.
struct Worker {
    link: Vec<u8>,
    problems: Problems,
}

impl Default for Worker {
    fn default() -> Worker {
        Worker {
            link: vec![0; 4096],
            problems: Problems::default(),
        }
    }
}

impl super::Worker for Worker {
    fn into_problems(self) -> Problems {
        self.problems
    }
}

/// Device number of `/dev/net/tun`: major 10, minor 200.
const TUN_DEVICE: u64 = (10 << 8) | 200;

/// The identity of the running executable, to recognise other listns runs.
pub(super) type ExeId = Option<(u64, u64)>;

/// Scans the fd table of every process that the task scan found.
///
/// Worker threads read the fd links and `stat` the candidates; the caller's
/// thread then probes sockets and tun fds (`pidfd_getfd`) and records holders.
///
/// NOTE: threads that unshared their fd table (`unshare(CLONE_FILES)`) have
/// fds of their own under `/proc/PID/task/TID/fd`; only one table per
/// process is read.
pub fn scan(found: &mut Found) -> io::Result<FdStats> {
    scan_pids(found, None)
}

/// Scans the fd tables of the processes in `only`, or of every process
/// when it is `None`.
pub fn scan_pids(found: &mut Found, only: Option<&HashSet<i32>>) -> io::Result<FdStats> {
    let nsfs_dev = nsfs::nsfs_device()?;
    let proc = open_dir(rustix::fs::CWD, "/proc")?;
    // Our own fds include every namespace the scan has opened so far.
    let own_pid = rustix::process::getpid().as_raw_nonzero().get();
    let own_exe: ExeId = rustix::fs::stat("/proc/self/exe").ok().map(|st| (st.st_dev, st.st_ino));
    let tables = fd_tables(found, own_pid, only);
    let scans = super::parallel(&tables, found, |table, worker: &mut Worker| {
        read_table(proc.as_fd(), table, nsfs_dev, own_exe, worker)
    });

    let mut stats = FdStats::default();
    // A socket shared by several processes (after fork) is probed once.
    let mut socket_netns: HashMap<u64, Option<NsKey>> = HashMap::new();
    for (table, scan) in tables.iter().zip(scans) {
        let Some(scan) = scan else { continue };
        let FdTable {
            pid,
            tid,
            netns: own_netns,
        } = *table;
        stats.processes += 1;
        stats.fds += scan.fds;
        let fd_path = |fd: i32| {
            if pid == tid {
                format!("/proc/{pid}/fd/{fd}")
            } else {
                format!("/proc/{pid}/task/{tid}/fd/{fd}")
            }
        };
        let mut pidfd: Option<OwnedFd> = None;
        for (fd, kind) in scan.found {
            match kind {
                FdKind::Socket { inode } => {
                    let netns = match socket_netns.get(&inode) {
                        Some(netns) => *netns,
                        None => {
                            stats.sockets_probed += 1;
                            let netns = probe_other_fd(found, &mut pidfd, (pid, tid), fd, nsfs::socket_netns);
                            socket_netns.insert(inode, netns);
                            netns
                        }
                    };
                    if let Some(netns) = netns.filter(|k| k.inode != own_netns) {
                        found.hold(
                            netns,
                            Holder::Socket {
                                pid,
                                tid,
                                fd,
                                socket_inode: inode,
                            },
                            super::no_open,
                        );
                    }
                }
                FdKind::Tun => {
                    if let Some(netns) = probe_other_fd(found, &mut pidfd, (pid, tid), fd, nsfs::tun_netns)
                        && netns.inode != own_netns
                    {
                        found.hold(netns, Holder::Tun { pid, tid, fd }, super::no_open);
                    }
                }
                FdKind::Nsfs { ty, inode } => {
                    let path = fd_path(fd);
                    let open = || open_read(rustix::fs::CWD, path.as_str());
                    let key = match ty {
                        Some(ty) => NsKey { ty, inode },
                        None => match open().and_then(|f| nsfs::key_of(f.as_fd(), None).map(|k| (k, f))) {
                            Ok((key, file)) => {
                                found.see_fd(key, file);
                                key
                            }
                            Err(err) => {
                                found.problems.record("nsfs fd type", pid, &err);
                                continue;
                            }
                        },
                    };
                    found.hold(key, Holder::Fd { pid, tid, fd }, open);
                }
            }
        }
    }
    Ok(stats)
}

/// Reads one fd table: every fd link, and `stat` where the link could be an
/// nsfs file. Returns `None` if the table could not be listed.
fn read_table(
    proc: BorrowedFd<'_>,
    table: &FdTable,
    nsfs_dev: u64,
    own_exe: ExeId,
    worker: &mut Worker,
) -> Option<TableScan> {
    let FdTable { pid, tid, .. } = *table;
    let task_path = if pid == tid {
        pid.to_string()
    } else {
        format!("{pid}/task/{tid}")
    };
    let listed = open_dir(proc, &task_path).and_then(|dir| Ok((numeric_entries(&dir, "fd")?, dir)));
    let (fds, dir) = match listed {
        Ok(listed) => listed,
        Err(err) => {
            worker.problems.record("fd list", pid, &err);
            return None;
        }
    };
    let mut scan = TableScan {
        fds: fds.len(),
        found: Vec::new(),
    };
    // Another listns holds an fd on every namespace it has found so far;
    // those are its scan state, not holders. Checked on the first nsfs fd
    // only, by the identity of the executable, not its name.
    let mut other_scanner: Option<bool> = None;
    for fd in fds {
        let path = format!("fd/{fd}");
        let link = match read_link(&dir, &path, &mut worker.link) {
            Ok(link) => link,
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(err) => {
                worker.problems.record("fd links", pid, &err);
                break;
            }
        };
        if let Some(inode) = link
            .strip_prefix(b"socket:[")
            .and_then(|r| parse_number(r.strip_suffix(b"]")?))
        {
            scan.found.push((fd, FdKind::Socket { inode }));
            continue;
        }
        // Pipes, anonymous inodes and the like are never namespaces.
        let hint = type_hint(link);
        if hint.is_none() && !link.starts_with(b"/") {
            continue;
        }
        let st = match rustix::fs::statat(&dir, path.as_str(), rustix::fs::AtFlags::empty()) {
            Ok(st) => st,
            Err(err) => {
                worker.problems.record("fd stat", pid, &err.into());
                continue;
            }
        };
        // The tun device is recognised by its number, whatever its path
        // (a container may have its own /dev).
        if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::CharacterDevice
            && st.st_rdev == TUN_DEVICE
        {
            scan.found.push((fd, FdKind::Tun));
            continue;
        }
        if st.st_dev != nsfs_dev {
            continue;
        }
        let is_scanner = *other_scanner.get_or_insert_with(|| {
            let exe = rustix::fs::statat(&dir, "exe", rustix::fs::AtFlags::empty()).ok();
            own_exe.is_some() && exe.map(|st| (st.st_dev, st.st_ino)) == own_exe
        });
        if is_scanner {
            log::info!("skipping the nsfs fds of PID {pid}, another listns scan");
            scan.found.retain(|(_, kind)| !matches!(kind, FdKind::Nsfs { .. }));
            break;
        }
        scan.found.push((
            fd,
            FdKind::Nsfs {
                ty: hint,
                inode: st.st_ino,
            },
        ));
    }
    Some(scan)
}

/// Picks the fd tables to read: one per process (the leader's, or a live
/// thread's when the leader has exited), plus one per thread that has a
/// table of its own, as `kcmp(KCMP_FILES)` reports it. Kernel threads have no fds,
/// and the scanner's own are skipped.
fn fd_tables(found: &mut Found, own_pid: i32, only: Option<&HashSet<i32>>) -> Vec<FdTable> {
    let mut tables: Vec<FdTable> = Vec::new();
    let mut first: HashMap<i32, i32> = HashMap::new();
    let mut kcmp_missing = false;
    let mut failures = Vec::new();
    // The task scan records each leader before its threads, so a process
    // keeps its leader when the leader is alive.
    for task in &found.tasks {
        if task.kthread || task.pid == own_pid || task.zombie || only.is_some_and(|only| !only.contains(&task.pid)) {
            continue;
        }
        if !task.is_leader() && task.links.member.iter().all(|&i| i == 0) {
            continue;
        }
        let table = FdTable {
            pid: task.pid,
            tid: task.tid,
            netns: task.links.member[NsType::Net.index()],
        };
        let Some(&reader) = first.get(&task.pid) else {
            first.insert(task.pid, task.tid);
            tables.push(table);
            continue;
        };
        if kcmp_missing {
            continue;
        }
        match shares_files(reader, task.tid) {
            Ok(true) => {}
            Ok(false) => tables.push(table),
            Err(err) if err.raw_os_error() == Some(libc::ENOSYS) => kcmp_missing = true,
            Err(err) => failures.push((task.pid, err)),
        }
    }
    for (pid, err) in failures {
        found.problems.record("fd table of a thread", pid, &err);
    }
    if kcmp_missing {
        found.note(
            "fds: kcmp() is missing (CONFIG_CHECKPOINT_RESTORE), so fd tables private to one thread are not read"
                .into(),
        );
    }
    tables
}

/// `KCMP_FILES` of `kcmp(2)`.
const KCMP_FILES: libc::c_long = 2;

/// Returns whether two tasks share one fd table.
fn shares_files(a: i32, b: i32) -> io::Result<bool> {
    // SAFETY: kcmp takes two pids, a type and two unused arguments, and
    // returns 0 for "same object" or a positive order otherwise.
    let ret = unsafe { libc::syscall(libc::SYS_kcmp, a, b, KCMP_FILES, 0, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret == 0)
}

fn parse_number(digits: &[u8]) -> Option<u64> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Duplicates fd `fd` of `pid` with `pidfd_getfd` and runs `ioctl` on the
/// copy to get the network namespace behind it. The copy is closed at once.
pub(super) fn probe_other_fd(
    found: &mut Found,
    pidfd: &mut Option<OwnedFd>,
    (pid, tid): (i32, i32),
    fd: i32,
    ioctl: fn(std::os::fd::BorrowedFd<'_>) -> io::Result<OwnedFd>,
) -> Option<NsKey> {
    if pidfd.is_none() {
        match nsfs::pidfd_open(tid, pid != tid) {
            Ok(p) => *pidfd = Some(p),
            Err(err) => {
                found.problems.record("pidfd", pid, &err);
                return None;
            }
        }
    }
    let copy = match nsfs::pidfd_getfd(pidfd.as_ref()?.as_fd(), fd) {
        Ok(copy) => copy,
        Err(err) if err.raw_os_error() == Some(libc::EBADF) => return None,
        Err(err) => {
            found.problems.record("pidfd_getfd", pid, &err);
            return None;
        }
    };
    let netns = match ioctl(copy.as_fd()) {
        Ok(netns) => netns,
        // A tun fd that is not attached to a device has no namespace.
        Err(err) if err.raw_os_error() == Some(libc::EBADFD) => return None,
        Err(err) => {
            found.problems.record("network namespace of fd", pid, &err);
            return None;
        }
    };
    match nsfs::key_of(netns.as_fd(), Some(NsType::Net)) {
        Ok(key) => {
            found.see_fd(key, netns);
            Some(key)
        }
        Err(err) => {
            found.problems.record("network namespace of fd", pid, &err);
            None
        }
    }
}
