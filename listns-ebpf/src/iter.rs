//! BPF iterators for the in-kernel snapshot: `iter/task` writes one
//! [`TaskRecord`] per task, `iter/task_file` one [`FileRecord`] per nsfs
//! file, foreign-namespace socket or tun fd, and the sleepable
//! `iter.s/task` the command line of every process.
//!
//! aya-ebpf 0.2.1 has no `#[iter]` macro, so each program is a plain
//! function in its link section. The verifier accepts `bpf_seq_write` only
//! with the `seq_file` pointer loaded directly from the context (a
//! `bpf_probe_read_kernel` copy turns it into a plain number), and pointer
//! arithmetic on the task only after a NULL check.

use core::ffi::c_void;
use core::mem::MaybeUninit;
use core::ptr::{addr_of_mut, read_volatile};

use aya_ebpf::bindings::task_struct;
use aya_ebpf::helpers::generated::{bpf_copy_from_user_task, bpf_seq_write};
use aya_ebpf::macros::map;
use aya_ebpf::maps::PerCpuArray;
use listns_common::NsType;
use listns_common::iter::{
    CMDLINE_MAX, CMDLINE_TRUNCATED, CmdlineHeader, FILE_NSFS, FILE_SOCKET, FILE_TUN, FileRecord, TASK_EXITING,
    TASK_KTHREAD, TASK_PENDING_PID_NS, TASK_ZOMBIE, TaskRecord,
};
use listns_common::trace::SLOT_PID_FOR_CHILDREN;

use crate::task::{offset, read_to, read_u32, read_u64, store, write_namespaces};

/// `struct bpf_iter_meta`.
#[repr(C)]
pub struct IterMeta {
    seq: *mut c_void,
    session_id: u64,
    seq_num: u64,
}

/// `struct bpf_iter__task`.
#[repr(C)]
pub struct TaskContext {
    meta: *const IterMeta,
    task: *const c_void,
}

/// `struct bpf_iter__task_file`.
#[repr(C)]
pub struct TaskFileContext {
    meta: *const IterMeta,
    task: *const c_void,
    fd: u32,
    file: *const c_void,
}

const PF_EXITING: u32 = 0x0000_0004;
const PF_KTHREAD: u32 = 0x0020_0000;
/// `EXIT_ZOMBIE | EXIT_DEAD` in `task->exit_state`.
const EXIT_ZOMBIE_OR_DEAD: u32 = 0x0000_0030;
const NSFS_MAGIC: u64 = 0x6e73_6673;
const S_IFMT: u32 = 0o170_000;
const S_IFSOCK: u32 = 0o140_000;
const S_IFCHR: u32 = 0o020_000;
/// `/dev/net/tun` (major 10, minor 200) in the kernel's `dev_t` encoding.
const TUN_RDEV: u32 = (10 << 20) | 200;

/// Writes one [`TaskRecord`] per task.
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task")]
pub extern "C" fn listns_iter_task(ctx: *const TaskContext) -> i32 {
    // SAFETY: the kernel passes a valid bpf_iter__task; meta is never NULL.
    let (seq, task) = unsafe { (read_volatile(&(*(*ctx).meta).seq), read_volatile(&(*ctx).task)) };
    // The last call of a walk has no task.
    if task.is_null() {
        return 0;
    }
    let task = task as u64;
    let mut record = MaybeUninit::<TaskRecord>::uninit();
    let out = record.as_mut_ptr();
    // The iterator reports failed reads as zeros (a zombie has no nsproxy);
    // user space cannot act on the status, so it is not sent.
    let mut status = 0i64;
    // SAFETY: every store stays inside `record`, which is fully written
    // before bpf_seq_write reads it.
    unsafe {
        store(
            addr_of_mut!((*out).tgid),
            read_u32(task, offset!(task_tgid), &mut status),
        );
        store(addr_of_mut!((*out).tid), read_u32(task, offset!(task_pid), &mut status));
        let parent = read_u64(task, offset!(task_real_parent), &mut status);
        store(
            addr_of_mut!((*out).ppid),
            read_u32(parent, offset!(task_tgid), &mut status),
        );

        let task_flags = read_u32(task, offset!(task_flags), &mut status);
        let exit_state = read_u32(task, offset!(task_exit_state), &mut status);
        let mut flags = 0;
        if task_flags & PF_KTHREAD != 0 {
            flags |= TASK_KTHREAD;
        }
        if task_flags & PF_EXITING != 0 {
            flags |= TASK_EXITING;
        }
        if exit_state & EXIT_ZOMBIE_OR_DEAD != 0 {
            flags |= TASK_ZOMBIE;
        }
        let nsproxy = read_u64(task, offset!(task_nsproxy), &mut status);
        if nsproxy != 0 {
            let children = read_u64(nsproxy, offset!(nsproxy_member[SLOT_PID_FOR_CHILDREN]), &mut status);
            if children != 0 && read_u64(children, offset!(pid_ns_child_reaper), &mut status) == 0 {
                flags |= TASK_PENDING_PID_NS;
            }
        }
        store(addr_of_mut!((*out).flags), flags);

        let cred = read_u64(task, offset!(task_real_cred), &mut status);
        store(
            addr_of_mut!((*out).euid),
            read_u32(cred, offset!(cred_euid), &mut status),
        );
        store(addr_of_mut!((*out)._pad), 0);
        let css_set = read_u64(task, offset!(task_cgroups), &mut status);
        let cgroup = read_u64(css_set, offset!(css_set_dfl_cgrp), &mut status);
        let kernfs_node = read_u64(cgroup, offset!(cgroup_kn), &mut status);
        store(
            addr_of_mut!((*out).cgroup_id),
            read_u64(kernfs_node, offset!(kernfs_node_id), &mut status),
        );
        status |= read_to(addr_of_mut!((*out).comm), task, offset!(task_comm));
        write_namespaces(task, addr_of_mut!((*out).ns), &mut status);

        bpf_seq_write(seq.cast(), out.cast(), size_of::<TaskRecord>() as u32);
    }
    0
}

/// Writes one [`FileRecord`] per open nsfs file, per socket whose network
/// namespace differs from its task's, and per such tun fd.
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task_file")]
pub extern "C" fn listns_iter_task_file(ctx: *const TaskFileContext) -> i32 {
    // SAFETY: the kernel passes a valid bpf_iter__task_file; meta is never NULL.
    let (seq, task, fd, file) = unsafe {
        (
            read_volatile(&(*(*ctx).meta).seq),
            read_volatile(&(*ctx).task),
            read_volatile(&(*ctx).fd),
            read_volatile(&(*ctx).file),
        )
    };
    if task.is_null() || file.is_null() {
        return 0;
    }
    // Most files are neither sockets, tun fds nor nsfs files. Direct loads
    // sort them out at the cost of a memory read each, where a
    // bpf_probe_read_kernel call costs tens of nanoseconds.
    // SAFETY: `file` is the kernel's trusted `struct file *`, and the
    // offsets name a pointer and a 16-bit member.
    let inode_ptr: *const u8 = unsafe { load(file.cast(), offset!(file_f_inode)) };
    if inode_ptr.is_null() {
        return 0;
    }
    // SAFETY: as above, for `struct inode`.
    let mode = u32::from(unsafe { load::<u16>(inode_ptr, offset!(inode_i_mode)) }) & S_IFMT;
    if mode != S_IFSOCK && mode != S_IFCHR {
        // SAFETY: as above; `i_sb` is a pointer, `s_magic` a 64-bit value.
        let magic: u64 = unsafe {
            let super_block: *const u8 = load(inode_ptr, offset!(inode_i_sb));
            if super_block.is_null() {
                return 0;
            }
            load(super_block, offset!(super_block_s_magic))
        };
        if magic != NSFS_MAGIC {
            return 0;
        }
    }
    let (task, file, inode) = (task as u64, file as u64, inode_ptr as u64);
    let mut status = 0i64;

    // The namespace the file refers to, as a pointer to its ns_common, and
    // the record kind.
    let (kind, common) = if mode == S_IFSOCK {
        let socket = read_u64(file, offset!(file_private_data), &mut status);
        let sock = read_u64(socket, offset!(socket_sk), &mut status);
        let net = read_u64(sock, offset!(sock_net), &mut status);
        if net == 0 || net == task_netns(task, &mut status) {
            return 0;
        }
        (FILE_SOCKET, net + offset!(ns_common_in[NsType::Net.index()]) as u64)
    } else if mode == S_IFCHR {
        if read_u32(inode, offset!(inode_i_rdev), &mut status) != TUN_RDEV {
            return 0;
        }
        if offset!(has_tun) == 0 {
            // The tun driver's structs are in the BTF of its module, which
            // the offsets do not cover. The record names the fd without a
            // namespace, and user space asks the fd for it.
            write_file_record(seq, task, fd, FILE_TUN, 0, inode, status);
            return 0;
        }
        let tun_file = read_u64(file, offset!(file_private_data), &mut status);
        let tun = read_u64(tun_file, offset!(tun_file_tun), &mut status);
        let device = read_u64(tun, offset!(tun_struct_dev), &mut status);
        let net = read_u64(device, offset!(net_device_nd_net), &mut status);
        // A tun fd not attached to a device has no namespace.
        if net == 0 || net == task_netns(task, &mut status) {
            return 0;
        }
        (FILE_TUN, net + offset!(ns_common_in[NsType::Net.index()]) as u64)
    } else {
        (FILE_NSFS, read_u64(inode, offset!(inode_i_private), &mut status))
    };
    if common == 0 {
        return 0;
    }
    write_file_record(seq, task, fd, kind, common, inode, status);
    0
}

/// Writes one [`FileRecord`] for fd `fd` of `task`. `common` points to the
/// `ns_common` of the namespace the fd refers to, or is 0 where the program
/// cannot find it (a tun fd without the tun driver's BTF), and then the
/// namespace fields are zeros.
#[inline(always)]
fn write_file_record(seq: *mut c_void, task: u64, fd: u32, kind: u32, common: u64, inode: u64, mut status: i64) {
    let mut record = MaybeUninit::<FileRecord>::uninit();
    let out = record.as_mut_ptr();
    // SAFETY: every store stays inside `record`, which is fully written
    // before bpf_seq_write reads it.
    unsafe {
        store(
            addr_of_mut!((*out).tgid),
            read_u32(task, offset!(task_tgid), &mut status),
        );
        store(addr_of_mut!((*out).tid), read_u32(task, offset!(task_pid), &mut status));
        store(addr_of_mut!((*out).fd), fd);
        store(addr_of_mut!((*out).kind), kind);
        let ns_type = if kind == FILE_NSFS && offset!(has_ns_type) != 0 {
            read_u32(common, offset!(ns_common_ns_type), &mut status)
        } else {
            0
        };
        store(addr_of_mut!((*out).ns_type), ns_type);
        let inum = if common != 0 {
            read_u32(common, offset!(ns_common_inum), &mut status)
        } else {
            0
        };
        store(addr_of_mut!((*out).ns_inum), inum);
        let id = if common != 0 && offset!(has_ns_id) != 0 {
            read_u64(common, offset!(ns_common_ns_id), &mut status)
        } else {
            0
        };
        store(addr_of_mut!((*out).ns_id), id);
        store(
            addr_of_mut!((*out).inode),
            read_u64(inode, offset!(inode_i_ino), &mut status),
        );
        bpf_seq_write(seq.cast(), out.cast(), size_of::<FileRecord>() as u32);
    }
}

/// Loads a `T` at `offset` bytes into the kernel object at `base` with a
/// plain memory load. The verifier accepts it because `base` is a BTF-typed
/// pointer and `offset` a constant from the frozen `.rodata`, and it turns
/// the load into one that yields 0 instead of faulting. A loaded pointer
/// member is BTF-typed in turn.
///
/// # Safety
///
/// `base` must come from the iterator's context or from another `load`,
/// and `offset` must be the offset of a member of type `T`.
#[inline(always)]
unsafe fn load<T: Copy>(base: *const u8, offset: u32) -> T {
    // SAFETY: the caller passes a kernel pointer and a member offset; the
    // verifier checks both against the kernel's BTF.
    unsafe { read_volatile(base.add(offset as usize).cast::<T>()) }
}

/// Returns the network namespace pointer of `task`, 0 when it has no nsproxy.
#[inline(always)]
fn task_netns(task: u64, status: &mut i64) -> u64 {
    let nsproxy = read_u64(task, offset!(task_nsproxy), status);
    read_u64(nsproxy, offset!(nsproxy_member[NsType::Net.index()]), status)
}

/// One command-line record as it is written: header, then the bytes.
#[repr(C)]
pub struct CmdlineRecord {
    header: CmdlineHeader,
    bytes: [u8; CMDLINE_MAX],
}

/// Scratch space for [`CmdlineRecord`], too large for the 512-byte stack.
/// Sleepable programs run with migration disabled, so a per-CPU slot is
/// theirs until they return.
#[map]
static CMDLINE_BUFFER: PerCpuArray<CmdlineRecord> = PerCpuArray::with_max_entries(1, 0);

/// Writes one [`CmdlineHeader`] and the command line of every process with
/// a memory map. `bpf_copy_from_user_task` may fault pages in, so the
/// program is sleepable (`iter.s`); it reads another process's memory the
/// way `/proc/PID/cmdline` does, without a path lookup per process.
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter.s/task")]
pub extern "C" fn listns_iter_cmdline(ctx: *const TaskContext) -> i32 {
    // SAFETY: the kernel passes a valid bpf_iter__task; meta is never NULL.
    let (seq, task_ptr) = unsafe { (read_volatile(&(*(*ctx).meta).seq), read_volatile(&(*ctx).task)) };
    if task_ptr.is_null() {
        return 0;
    }
    let task = task_ptr as u64;
    let mut status = 0i64;
    let tgid = read_u32(task, offset!(task_tgid), &mut status);
    // Threads share their leader's memory map.
    if tgid != read_u32(task, offset!(task_pid), &mut status)
        || read_u32(task, offset!(task_flags), &mut status) & PF_KTHREAD != 0
    {
        return 0;
    }
    let mm = read_u64(task, offset!(task_mm), &mut status);
    if mm == 0 {
        return 0;
    }
    let start = read_u64(mm, offset!(mm_arg_start), &mut status);
    let end = read_u64(mm, offset!(mm_arg_end), &mut status);
    if status != 0 || end <= start {
        return 0;
    }
    let Some(record) = CMDLINE_BUFFER.get_ptr_mut(0) else {
        return 0;
    };
    let mut len = end - start;
    let mut truncated = 0;
    if len > CMDLINE_MAX as u64 {
        len = CMDLINE_MAX as u64;
        truncated = CMDLINE_TRUNCATED;
    }
    // SAFETY: `record` points to this CPU's slot, `len` is at most the size
    // of its byte array, and the helper checks the user address.
    unsafe {
        let copied = bpf_copy_from_user_task(
            addr_of_mut!((*record).bytes).cast(),
            len as u32,
            start as *const c_void,
            task_ptr as *mut task_struct,
            0,
        );
        let header = if copied == 0 {
            CmdlineHeader {
                tgid,
                len: len as u16,
                error: truncated,
            }
        } else {
            len = 0;
            CmdlineHeader {
                tgid,
                len: 0,
                error: copied as i16,
            }
        };
        store(addr_of_mut!((*record).header), header);
        bpf_seq_write(
            seq.cast(),
            record.cast(),
            (size_of::<CmdlineHeader>() as u64 + len) as u32,
        );
    }
    0
}
