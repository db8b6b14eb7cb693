//! Records that the BPF iterators (`iter/task`, `iter/task_file`) write with
//! `bpf_seq_write`, one fixed-size record per task or per file of interest.
//!
//! Like the event records, they are `#[repr(C)]` without implicit padding,
//! and both sides are little-endian 64-bit.

use crate::trace::TaskNamespaces;

/// [`TaskRecord::flags`] bit: a kernel thread (`PF_KTHREAD`).
pub const TASK_KTHREAD: u32 = 1;
/// [`TaskRecord::flags`] bit: the task is exiting (`PF_EXITING`).
pub const TASK_EXITING: u32 = 2;
/// [`TaskRecord::flags`] bit: a zombie (`exit_state` is `EXIT_ZOMBIE` or `EXIT_DEAD`).
pub const TASK_ZOMBIE: u32 = 4;
/// [`TaskRecord::flags`] bit: `pid_for_children` is a pid namespace with no
/// process yet (`child_reaper` is NULL), as after `unshare(CLONE_NEWPID)`
/// before the first fork. `/proc/PID/ns/pid_for_children` gives ENOENT then.
pub const TASK_PENDING_PID_NS: u32 = 8;

/// One task (thread), as `iter/task` sees it. Ids are in the initial pid
/// namespace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskRecord {
    pub tgid: u32,
    pub tid: u32,
    /// Thread-group id of `real_parent`.
    pub ppid: u32,
    /// `TASK_*` bits.
    pub flags: u32,
    /// Effective UID of `real_cred`, the owner of `/proc/PID`.
    pub euid: u32,
    pub _pad: u32,
    /// Id of the task's cgroup v2 cgroup (`cgroups->dfl_cgrp->kn->id`), as
    /// `bpf_get_current_cgroup_id` returns it.
    pub cgroup_id: u64,
    /// `task->comm`, NUL-padded.
    pub comm: [u8; 16],
    /// Every link slot: the nsproxy members, the active pid namespace (from
    /// `thread_pid`), `cred->user_ns`, `pid_for_children` and
    /// `time_for_children`. Zeros where the task has no nsproxy (zombies).
    pub ns: TaskNamespaces,
}

/// [`FileRecord::kind`] of an open nsfs file.
pub const FILE_NSFS: u32 = 1;
/// [`FileRecord::kind`] of a socket whose network namespace differs from its task's.
pub const FILE_SOCKET: u32 = 2;
/// [`FileRecord::kind`] of a tun/tap fd whose device lives in a network
/// namespace other than its task's.
pub const FILE_TUN: u32 = 3;

/// One open file of interest, as `iter/task_file` sees it. Threads that
/// share their leader's fd table are not visited again.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileRecord {
    pub tgid: u32,
    pub tid: u32,
    pub fd: u32,
    /// A `FILE_*` value.
    pub kind: u32,
    /// The namespace's `CLONE_NEW*` flag from `ns_common.ns_type`, or 0
    /// where the kernel lacks that field (before Linux 6.18) or for sockets
    /// and tun fds, whose namespace is always a network namespace.
    pub ns_type: u32,
    /// `ns_common.inum` of the namespace the file refers to.
    pub ns_inum: u32,
    /// `ns_common.ns_id`, or 0 before Linux 6.18.
    pub ns_id: u64,
    /// The file's inode number: the namespace inode for nsfs, the socket
    /// inode (as in `socket:[N]`) for sockets.
    pub inode: u64,
}

/// Most bytes of a command line that the command-line iterator copies.
/// Longer command lines are cut there; `/proc/PID/cmdline` would return
/// them whole.
pub const CMDLINE_MAX: usize = 4096;

/// Header of one variable-length record of the command-line iterator
/// (`iter.s/task`): `len` bytes of the command line follow it directly, as
/// in `/proc/PID/cmdline` (arguments separated by NUL bytes). One record per
/// process with a memory map; kernel threads and zombies have none.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CmdlineHeader {
    pub tgid: u32,
    /// Bytes that follow, at most [`CMDLINE_MAX`].
    pub len: u16,
    /// 0; [`CMDLINE_TRUNCATED`] when the command line is longer than
    /// [`CMDLINE_MAX`] and only its start follows; or the negative errno of
    /// `bpf_copy_from_user_task`, when `len` is 0.
    pub error: i16,
}

/// [`CmdlineHeader::error`] of a command line cut at [`CMDLINE_MAX`] bytes.
pub const CMDLINE_TRUNCATED: i16 = 1;

const _: () = assert!(size_of::<TaskRecord>() == 168);
const _: () = assert!(size_of::<CmdlineHeader>() == 8);
const _: () = assert!(CMDLINE_MAX <= u16::MAX as usize);
const _: () = assert!(size_of::<FileRecord>() == 40);

// SAFETY: plain #[repr(C)] data with no padding (the size assertions above
// match the sum of the fields), valid for every bit pattern.
#[cfg(feature = "user")]
unsafe impl aya::Pod for TaskRecord {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for FileRecord {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for CmdlineHeader {}
