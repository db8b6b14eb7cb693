//! The in-kernel snapshot route: BPF iterators read every task's
//! namespaces (`iter/task`) and every open nsfs file, foreign-namespace
//! socket and tun fd (`iter/task_file`) in one read each. This source
//! replaces `tasks.rs` and `fds.rs`; the others stay shared.
//!
//! User space still opens one nsfs file per namespace (through a member
//! task's `/proc` link) for relations, and reads `/proc` for the few things
//! the kernel records lack: containers of processes outside the default
//! namespaces, the type of an nsfs fd on kernels without
//! `ns_common.ns_type`, and the owner of a network namespace that only a
//! socket holds.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aya::programs::Iter;
use aya::{Btf, Ebpf, EbpfLoader, Endianness};
use listns_common::iter::{
    CMDLINE_MAX, CMDLINE_TRUNCATED, CmdlineHeader, FILE_NSFS, FILE_SOCKET, FILE_TUN, FileRecord, TASK_KTHREAD,
    TASK_PENDING_PID_NS, TASK_ZOMBIE, TaskRecord,
};
use listns_common::trace::{SLOT_PID_FOR_CHILDREN, SLOT_TIME_FOR_CHILDREN};

use super::defaults::Defaults;
use super::procfs_io::{open_dir, open_read, read_file};
use super::tasks::{RawTask, pending_pid_namespace, record};
use super::{Found, containers, fds};
use crate::model::{Holder, NsKey, NsType, Task, TaskLinks};
use crate::nsfs;
use crate::trace::load::EBPF_OBJECT;
use crate::trace::{btf, offsets};

/// Records returned by the iterators, with the time each step took.
#[derive(Debug)]
pub struct IterRead {
    pub tasks: Vec<TaskRecord>,
    pub files: Vec<FileRecord>,
    /// The command-line walk, still running on a thread of its own: it is
    /// the slowest walk and no other source needs its result, so the
    /// snapshot collects it last with [`add_cmdlines`].
    pub cmdlines: CmdlineWalk,
    /// Resolving offsets from BTF and loading the programs.
    pub load_time: Duration,
    /// Reading the task and file iterators to their end, in parallel.
    pub read_time: Duration,
    /// Time the task and the file walk took.
    pub walk_times: [Duration; 2],
}

/// The command-line walk running in the background.
#[derive(Debug)]
pub struct CmdlineWalk(std::thread::JoinHandle<Result<(Vec<u8>, Duration)>>);

/// A record type that an iterator writes, decoded from its raw bytes.
pub trait Record: Copy + Default {}
impl Record for TaskRecord {}
impl Record for FileRecord {}

/// Decodes the output of an iterator into records. Fails when the length is
/// not a whole number of records, which means user space and the eBPF
/// object disagree on the layout.
pub fn decode<T: Record>(bytes: &[u8]) -> Result<Vec<T>> {
    let size = size_of::<T>();
    if !bytes.len().is_multiple_of(size) {
        bail!(
            "iterator output of {} bytes is not a whole number of {size}-byte records; rebuild listns and its eBPF object together",
            bytes.len()
        );
    }
    let records = bytes
        .chunks_exact(size)
        .map(|chunk| {
            // SAFETY: the chunk has size_of::<T>() bytes, and T is plain
            // #[repr(C)] data valid for every bit pattern.
            unsafe { chunk.as_ptr().cast::<T>().read_unaligned() }
        })
        .collect();
    Ok(records)
}

/// What the command-line walk returned.
#[derive(Debug, Default)]
pub struct Cmdlines {
    /// Command line of each process with a memory map.
    pub by_pid: HashMap<i32, Vec<String>>,
    /// Processes whose command line could not be copied, with the errno.
    pub errors: Vec<(i32, i32)>,
    /// Processes whose command line is longer than the walk copies.
    pub truncated: Vec<i32>,
}

/// Decodes the variable-length records of the command-line iterator.
pub fn decode_cmdlines(mut bytes: &[u8]) -> Result<Cmdlines> {
    let mut cmdlines = Cmdlines::default();
    while !bytes.is_empty() {
        let Some((head, rest)) = bytes.split_at_checked(size_of::<CmdlineHeader>()) else {
            bail!(
                "command-line iterator output ends inside a record header; rebuild listns and its eBPF object together"
            );
        };
        // SAFETY: `head` has the size of CmdlineHeader, plain #[repr(C)] data.
        let header = unsafe { head.as_ptr().cast::<CmdlineHeader>().read_unaligned() };
        let len = usize::from(header.len);
        if len > CMDLINE_MAX || len > rest.len() {
            bail!(
                "command-line record of PID {} claims {len} bytes, {} remain; rebuild listns and its eBPF object together",
                header.tgid,
                rest.len()
            );
        }
        let (text, rest) = rest.split_at(len);
        let pid = header.tgid as i32;
        match header.error {
            0 => {}
            CMDLINE_TRUNCATED => cmdlines.truncated.push(pid),
            error => cmdlines.errors.push((pid, -i32::from(error))),
        }
        cmdlines.by_pid.insert(pid, crate::model::split_cmdline(text));
        bytes = rest;
    }
    Ok(cmdlines)
}

/// The iterator programs and the kernel function each one attaches to.
const PROGRAMS: [(&str, &str); 3] = [
    ("listns_iter_task", "task"),
    ("listns_iter_task_file", "task_file"),
    ("listns_iter_cmdline", "task"),
];

/// The iterator programs, loaded into the kernel once and read any number
/// of times: each read starts a new walk over every task.
pub struct Iterators {
    ebpf: Ebpf,
    /// Time that parsing BTF and loading the programs took.
    pub load_time: Duration,
}

impl Iterators {
    /// Loads the iterator programs. Needs root (CAP_BPF and CAP_PERFMON),
    /// the kernel's BTF and a listns built with its eBPF object.
    ///
    /// Parsing the kernel's BTF is most of the cost. aya's `EbpfLoader::new`
    /// parses all of it, so that runs on a second thread while listns reads
    /// the struct offsets with its own parser. `Iter::load` (aya 0.14) uses
    /// its BTF argument only to look up the id of `bpf_iter_<target>`, so
    /// it gets a short copy that keeps just those ids (see
    /// `Btf::function_ids_only`) instead of a second full parse.
    pub fn load() -> Result<Iterators> {
        let start = Instant::now();
        if EBPF_OBJECT.is_empty() {
            bail!("this listns was built without its eBPF programs (bpf-linker was missing or AYA_BUILD_SKIP was set)");
        }
        let loader = std::thread::spawn(EbpfLoader::new);
        let kernel_btf = btf::Btf::from_file(Path::new(offsets::VMLINUX_BTF))?;
        let offsets = offsets::resolve(&kernel_btf).context("cannot resolve kernel struct offsets")?;
        let functions: Vec<String> = PROGRAMS
            .iter()
            .map(|(_, target)| format!("bpf_iter_{target}"))
            .collect();
        let functions: Vec<&str> = functions.iter().map(String::as_str).collect();
        let ids_btf = kernel_btf
            .function_ids_only(&functions)
            .context("the kernel cannot run the BPF iterators listns needs")?;
        let ids_btf = Btf::parse(&ids_btf, Endianness::default()).context("aya cannot parse the function ids")?;
        drop(kernel_btf);
        log::debug!("iterators: offsets and function ids after {:?}", start.elapsed());
        let mut loader = loader
            .join()
            .map_err(|_| anyhow::anyhow!("the thread that parses BTF for aya panicked"))?;
        log::debug!("iterators: aya's loader ready after {:?}", start.elapsed());

        // The event ring buffer is part of the object but unused here, so it
        // gets the smallest valid size.
        let page = rustix::param::page_size() as u32;
        let mut ebpf = loader
            .override_global("KERNEL_OFFSETS", &offsets, true)
            .map_max_entries("EVENTS", page)
            .load(EBPF_OBJECT)
            .context("cannot load the eBPF object")?;
        for (program, target) in PROGRAMS {
            let iter: &mut Iter = ebpf
                .program_mut(program)
                .with_context(|| format!("program {program} is missing from the eBPF object"))?
                .try_into()
                .with_context(|| format!("{program} is not an iterator program"))?;
            iter.load(target, &ids_btf)
                .with_context(|| format!("cannot load {program} (iter/{target})"))?;
        }
        let load_time = start.elapsed();
        log::debug!("iterators: programs loaded after {load_time:?}");
        Ok(Iterators { ebpf, load_time })
    }

    /// Starts one walk of each iterator. Reads the task and file walks to
    /// their end, the file walk on a second thread, then leaves the
    /// command-line walk running on a third.
    pub fn read(&mut self) -> Result<IterRead> {
        let start = Instant::now();
        let [tasks, files, cmdlines] = [0, 1, 2].map(|walk| self.start_walk(walk));
        let (tasks, files, cmdlines) = (tasks?, files?, cmdlines?);
        let (tasks, files) = std::thread::scope(|scope| {
            let files = scope.spawn(|| read_all(files, "file"));
            let tasks = read_all(tasks, "task");
            let files = files
                .join()
                .map_err(|_| anyhow::anyhow!("the file iterator's reader thread panicked"))?;
            Ok::<_, anyhow::Error>((tasks?, files?))
        })?;
        // Started only now, so that it does not take a CPU from the walks
        // above; it overlaps with the rest of the snapshot instead.
        let cmdlines = CmdlineWalk(std::thread::spawn(|| read_all(cmdlines, "command-line")));
        Ok(IterRead {
            tasks: decode(&tasks.0)?,
            files: decode(&files.0)?,
            cmdlines,
            load_time: self.load_time,
            read_time: start.elapsed(),
            walk_times: [tasks.1, files.1],
        })
    }

    /// Runs one walk of iterator `walk` (an index into the program list:
    /// 0 tasks, 1 files, 2 command lines) on its own, and returns its output
    /// and the time it took. Benchmarks use it to time each walk alone.
    pub fn walk_alone(&mut self, walk: usize) -> Result<(Vec<u8>, Duration)> {
        let file = self.start_walk(walk)?;
        read_all(file, PROGRAMS[walk].0)
    }

    /// Attaches the iterator program `walk` and returns the file that
    /// starts a new walk when read.
    fn start_walk(&mut self, walk: usize) -> Result<std::fs::File> {
        let (program, target) = *PROGRAMS
            .get(walk)
            .with_context(|| format!("there is no iterator walk {walk}"))?;
        let iter: &mut Iter = self
            .ebpf
            .program_mut(program)
            .with_context(|| format!("program {program} is missing from the eBPF object"))?
            .try_into()
            .with_context(|| format!("{program} is not an iterator program"))?;
        let link = iter.attach().with_context(|| format!("cannot attach {program}"))?;
        iter.take_link(link)
            .context("the iterator link is gone")?
            .into_file()
            .with_context(|| format!("cannot create the {target} iterator of {program}"))
    }
}

/// Reads one iterator to its end, and returns its output and how long the
/// walk took.
fn read_all(mut file: std::fs::File, what: &str) -> Result<(Vec<u8>, Duration)> {
    let start = Instant::now();
    let mut bytes = Vec::with_capacity(1 << 20);
    file.read_to_end(&mut bytes)
        .with_context(|| format!("reading the {what} iterator failed"))?;
    Ok((bytes, start.elapsed()))
}

/// Loads the iterators and reads them once.
pub fn read() -> Result<IterRead> {
    Iterators::load()?.read()
}

/// Returns the name in a NUL-padded `comm` array.
fn comm(raw: &[u8; 16]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// Converts the namespaces of a record to the links `/proc` would show:
/// a pending `pid_for_children` is left out, as its link gives ENOENT.
fn links_of(record: &TaskRecord) -> TaskLinks {
    let mut links = TaskLinks::default();
    for ty in NsType::ALL {
        links.member[ty.index()] = u64::from(record.ns.inum[ty.index()]);
    }
    if record.flags & TASK_PENDING_PID_NS == 0 {
        links.pid_for_children = u64::from(record.ns.inum[SLOT_PID_FOR_CHILDREN]);
    }
    links.time_for_children = u64::from(record.ns.inum[SLOT_TIME_FOR_CHILDREN]);
    links
}

/// Adds the tasks and fds that the iterators found to `found`. Returns the
/// PIDs of the processes among them, and the command-line walk for
/// [`add_cmdlines`].
pub fn scan(found: &mut Found, defaults: &Defaults, mut read: IterRead) -> Result<(HashSet<i32>, CmdlineWalk)> {
    let proc = open_dir(rustix::fs::CWD, "/proc").context("failed to open /proc")?;
    let mut buf = Vec::with_capacity(4096);
    // Leaders first, so that threads inherit their leader's container.
    read.tasks.sort_by_key(|r| (r.tgid, r.tgid != r.tid, r.tid));
    let mut containers_of: HashMap<i32, Option<containers::Container>> = HashMap::new();
    let mut pids = HashSet::with_capacity(read.tasks.len());
    for rec in &read.tasks {
        let (pid, tid) = (rec.tgid as i32, rec.tid as i32);
        pids.insert(pid);
        let links = links_of(rec);
        let kthread = rec.flags & TASK_KTHREAD != 0;
        let zombie = rec.flags & TASK_ZOMBIE != 0;
        // As on the /proc route, containers are looked up only for
        // processes outside the default namespaces.
        let container = if pid != tid {
            containers_of.get(&pid).cloned().flatten()
        } else if !kthread && !zombie && defaults.differs(&links) {
            open_dir(&proc, &pid.to_string()).ok().and_then(|dir| {
                read_file(&dir, "cgroup", &mut buf)
                    .ok()
                    .and_then(|()| containers::container_from_cgroup(&String::from_utf8_lossy(&buf)))
            })
        } else {
            None
        };
        if pid == tid {
            containers_of.insert(pid, container.clone());
        }
        let pending_pid_ns = if rec.flags & TASK_PENDING_PID_NS != 0 && !zombie {
            match pending_pid_namespace(pid, tid) {
                Ok(fd) => Some(fd),
                Err(err) => {
                    found.problems.record("pending pid namespace", pid, &err);
                    None
                }
            }
        } else {
            None
        };
        let task = Task {
            pid,
            tid,
            ppid: rec.ppid as i32,
            uid: Some(rec.euid),
            comm: Some(comm(&rec.comm)),
            cmdline: Vec::new(),
            kthread,
            zombie,
            links,
            container,
            cgroup_id: (rec.cgroup_id != 0).then_some(rec.cgroup_id),
        };
        record(found, RawTask { task, pending_pid_ns });
        remember_ids(found, rec);
    }
    scan_files(found, &read.files);
    found.note(format!(
        "iterators: {} tasks ({:.1} ms) and {} files of interest ({:.1} ms) read in {:.1} ms (load {:.1} ms)",
        read.tasks.len(),
        read.walk_times[0].as_secs_f64() * 1e3,
        read.files.len(),
        read.walk_times[1].as_secs_f64() * 1e3,
        read.read_time.as_secs_f64() * 1e3,
        read.load_time.as_secs_f64() * 1e3,
    ));
    Ok((pids, read.cmdlines))
}

/// Waits for the command-line walk and gives each process its command line.
/// A copy that failed is counted as a problem; a failed walk leaves every
/// command line empty and says so in a note.
pub fn add_cmdlines(found: &mut Found, walk: CmdlineWalk) {
    let result = walk
        .0
        .join()
        .map_err(|_| anyhow::anyhow!("the command-line iterator's reader thread panicked"))
        .and_then(|read| read)
        .and_then(|(bytes, time)| Ok((decode_cmdlines(&bytes)?, time)));
    let (mut cmdlines, time) = match result {
        Ok(read) => read,
        Err(err) => {
            found.note(format!("command lines: not read: {err:#}"));
            return;
        }
    };
    for &(pid, errno) in &cmdlines.errors {
        found
            .problems
            .record("command line", pid, &io::Error::from_raw_os_error(errno));
    }
    // The walk copies the first CMDLINE_MAX bytes; /proc has the rest.
    for &pid in &cmdlines.truncated {
        match std::fs::read(format!("/proc/{pid}/cmdline")) {
            Ok(bytes) => {
                cmdlines.by_pid.insert(pid, crate::model::split_cmdline(&bytes));
            }
            Err(err) => found.problems.record("command line", pid, &err),
        }
    }
    let count = cmdlines.by_pid.len();
    for task in found.tasks.iter_mut().filter(|t| t.is_leader() && t.cmdline.is_empty()) {
        if let Some(cmdline) = cmdlines.by_pid.remove(&task.pid) {
            task.cmdline = cmdline;
        }
    }
    found.note(format!(
        "command lines: {count} read by the command-line iterator in {:.1} ms",
        time.as_secs_f64() * 1e3
    ));
}

/// Keeps the kernel's 64-bit ids for namespaces that no fd could be opened
/// for; `relations::resolve` reads the ids of the others with `NS_GET_ID`.
fn remember_ids(found: &mut Found, rec: &TaskRecord) {
    for (slot, (&inum, &id)) in rec.ns.inum.iter().zip(&rec.ns.id).enumerate() {
        let ty = match slot {
            SLOT_PID_FOR_CHILDREN => NsType::Pid,
            SLOT_TIME_FOR_CHILDREN => NsType::Time,
            _ => NsType::ALL[slot],
        };
        let key = NsKey {
            ty,
            inode: u64::from(inum),
        };
        if inum != 0
            && id != 0
            && let Some(entry) = found.namespaces.get_mut(&key)
            && entry.id.is_none()
        {
            entry.id = Some(id);
        }
    }
}

/// Records the holders that `iter/task_file` found. Our own fds and the
/// nsfs fds of other listns processes are scan state, not holders.
fn scan_files(found: &mut Found, files: &[FileRecord]) {
    let own_pid = rustix::process::getpid().as_raw_nonzero().get();
    let own_exe: fds::ExeId = rustix::fs::stat("/proc/self/exe").ok().map(|st| (st.st_dev, st.st_ino));
    let mut scanners: HashMap<i32, bool> = HashMap::new();
    let mut pidfds = HashMap::new();
    // The network namespace of each task, for tun records without one.
    let task_netns: HashMap<i32, u64> = found
        .tasks
        .iter()
        .map(|task| (task.tid, task.links.member[NsType::Net.index()]))
        .collect();
    for rec in files {
        let (pid, tid, fd) = (rec.tgid as i32, rec.tid as i32, rec.fd as i32);
        if pid == own_pid {
            continue;
        }
        let netns = NsKey {
            ty: NsType::Net,
            inode: u64::from(rec.ns_inum),
        };
        match rec.kind {
            FILE_SOCKET => {
                let holder = Holder::Socket {
                    pid,
                    tid,
                    fd,
                    socket_inode: rec.inode,
                };
                hold_netns(found, &mut pidfds, netns, rec, holder, nsfs::socket_netns);
            }
            FILE_TUN if rec.ns_inum == 0 => {
                // Without the tun driver's BTF the iterator cannot follow the
                // fd to its device, so the fd itself is asked, as on the
                // /proc route. Only a tun device in another network
                // namespace than its task's is a holder.
                let pidfd = pidfds.entry((pid, tid)).or_insert(None);
                let probed = fds::probe_other_fd(found, pidfd, (pid, tid), fd, nsfs::tun_netns);
                if let Some(netns) = probed
                    && task_netns.get(&tid) != Some(&netns.inode)
                {
                    found.hold(netns, Holder::Tun { pid, tid, fd }, super::no_open);
                }
            }
            FILE_TUN => {
                let holder = Holder::Tun { pid, tid, fd };
                hold_netns(found, &mut pidfds, netns, rec, holder, nsfs::tun_netns);
            }
            FILE_NSFS => {
                let is_scanner = *scanners.entry(pid).or_insert_with(|| {
                    let exe = rustix::fs::stat(format!("/proc/{pid}/exe").as_str()).ok();
                    own_exe.is_some() && exe.map(|st| (st.st_dev, st.st_ino)) == own_exe
                });
                if is_scanner {
                    continue;
                }
                let path = if pid == tid {
                    format!("/proc/{pid}/fd/{fd}")
                } else {
                    format!("/proc/{pid}/task/{tid}/fd/{fd}")
                };
                let open = || open_read(rustix::fs::CWD, path.as_str());
                let ty = NsType::from_clone_flag(rec.ns_type);
                let key = match ty {
                    Some(ty) => NsKey {
                        ty,
                        inode: u64::from(rec.ns_inum),
                    },
                    // Kernels before 6.18 have no ns_common.ns_type: the
                    // type comes from NS_GET_NSTYPE on the fd itself.
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
                if rec.ns_id != 0
                    && let Some(entry) = found.namespaces.get_mut(&key)
                    && entry.id.is_none()
                {
                    entry.id = Some(rec.ns_id);
                }
            }
            other => log::debug!("iter/task_file record of unknown kind {other} for PID {pid}"),
        }
    }
    if scanners.values().any(|&s| s) {
        log::info!("skipped the nsfs fds of other listns scans");
    }
}

/// Adds a socket or tun holder of a network namespace. When no task is a
/// member of that namespace, no nsfs file of it is open yet, so the fd is
/// copied with `pidfd_getfd` and asked for its namespace: relations need
/// an open file. That happens once per such namespace.
fn hold_netns(
    found: &mut Found,
    pidfds: &mut HashMap<(i32, i32), Option<std::os::fd::OwnedFd>>,
    netns: NsKey,
    rec: &FileRecord,
    holder: Holder,
    ioctl: fn(std::os::fd::BorrowedFd<'_>) -> io::Result<std::os::fd::OwnedFd>,
) {
    let (pid, tid, fd) = (rec.tgid as i32, rec.tid as i32, rec.fd as i32);
    let needs_fd = found.namespaces.get(&netns).is_none_or(|entry| entry.fd.is_none());
    if needs_fd {
        let pidfd = pidfds.entry((pid, tid)).or_insert(None);
        if let Some(probed) = fds::probe_other_fd(found, pidfd, (pid, tid), fd, ioctl)
            && probed != netns
        {
            log::debug!("fd {fd} of PID {pid} moved from {netns} to {probed} between the iterator and the probe");
        }
    }
    found.hold(netns, holder, super::no_open);
    if rec.ns_id != 0
        && let Some(entry) = found.namespaces.get_mut(&netns)
        && entry.id.is_none()
    {
        entry.id = Some(rec.ns_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of<T: Copy>(records: &[T]) -> Vec<u8> {
        let mut out = Vec::new();
        for record in records {
            // SAFETY: T is plain #[repr(C)] data without padding.
            let raw = unsafe { std::slice::from_raw_parts((record as *const T).cast::<u8>(), size_of::<T>()) };
            out.extend_from_slice(raw);
        }
        out
    }

    #[test]
    fn decode_task_records() {
        let mut first = TaskRecord {
            tgid: 42,
            tid: 43,
            ppid: 1,
            flags: TASK_PENDING_PID_NS,
            euid: 1000,
            cgroup_id: 7,
            ..TaskRecord::default()
        };
        first.comm[..4].copy_from_slice(b"test");
        first.ns.inum[NsType::Net.index()] = 4026531833;
        first.ns.id[NsType::Net.index()] = 0x1_0000_0001;
        let second = TaskRecord {
            tgid: 44,
            tid: 44,
            ..TaskRecord::default()
        };
        let decoded: Vec<TaskRecord> = decode(&bytes_of(&[first, second])).unwrap();
        assert_eq!(decoded, vec![first, second]);
        assert_eq!(comm(&decoded[0].comm), "test");
    }

    #[test]
    fn decode_file_records() {
        let record = FileRecord {
            tgid: 5,
            tid: 6,
            fd: 3,
            kind: FILE_NSFS,
            ns_type: NsType::Uts.clone_flag(),
            ns_inum: 4026532000,
            ns_id: 99,
            inode: 4026532000,
        };
        let decoded: Vec<FileRecord> = decode(&bytes_of(&[record])).unwrap();
        assert_eq!(decoded, vec![record]);
    }

    fn cmdline_record(tgid: u32, text: &[u8], error: i16) -> Vec<u8> {
        let header = CmdlineHeader {
            tgid,
            len: text.len() as u16,
            error,
        };
        let mut out = bytes_of(&[header]);
        out.extend_from_slice(text);
        out
    }

    #[test]
    fn decode_cmdline_records() {
        let mut bytes = cmdline_record(10, b"sleep\x00600\x00", 0);
        bytes.extend(cmdline_record(11, b"", -14));
        bytes.extend(cmdline_record(12, b"a\x00\x00b\x00", 0));
        bytes.extend(cmdline_record(13, b"long\x00", CMDLINE_TRUNCATED));
        let cmdlines = decode_cmdlines(&bytes).unwrap();
        assert_eq!(cmdlines.by_pid[&10], ["sleep", "600"]);
        assert!(cmdlines.by_pid[&11].is_empty());
        assert_eq!(
            cmdlines.by_pid[&12],
            ["a", "", "b"],
            "empty arguments are kept, as on the /proc route"
        );
        assert_eq!(cmdlines.errors, [(11, 14)]);
        assert_eq!(cmdlines.truncated, [13]);
    }

    #[test]
    fn decode_cmdlines_rejects_overlong_record() {
        let mut bytes = cmdline_record(10, b"sleep", 0);
        bytes.truncate(bytes.len() - 1);
        assert!(decode_cmdlines(&bytes).is_err(), "record shorter than its length");
        assert!(decode_cmdlines(&bytes[..4]).is_err(), "partial header");
        assert!(decode_cmdlines(&[]).unwrap().by_pid.is_empty());
    }

    #[test]
    fn decode_rejects_partial_record() {
        let bytes = vec![0u8; size_of::<FileRecord>() + 1];
        assert!(decode::<FileRecord>(&bytes).is_err());
        assert!(decode::<TaskRecord>(&[]).unwrap().is_empty());
    }

    #[test]
    fn pending_pid_namespace_is_no_link() {
        let mut record = TaskRecord::default();
        record.ns.inum[SLOT_PID_FOR_CHILDREN] = 4026532100;
        record.ns.inum[SLOT_TIME_FOR_CHILDREN] = 4026532101;
        assert_eq!(links_of(&record).pid_for_children, 4026532100);
        record.flags |= TASK_PENDING_PID_NS;
        assert_eq!(links_of(&record).pid_for_children, 0);
        assert_eq!(links_of(&record).time_for_children, 4026532101);
    }
}
