//! Reading a task's ids, credentials and namespaces, and filling event records.
//!
//! Every kernel read goes through `bpf_probe_read_kernel` at an offset from
//! `KERNEL_OFFSETS`, so the same object works on any kernel whose BTF user
//! space could resolve.
//!
//! The reads do not branch on errors. The helper zero-fills its destination
//! when a read fails, so a failed pointer read yields 0, and the reads through
//! it fail too and yield zeros. Callers OR every return code into one status
//! word and check it once. Branching on each result made the verifier walk
//! every combination of outcomes: over its limit of one million instructions
//! for the fork program.

use core::ffi::c_void;
use core::ptr::addr_of_mut;

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns,
    generated::{bpf_get_current_comm, bpf_probe_read_kernel},
};
use listns_common::{
    NsType,
    trace::{
        KernelOffsets, LINK_SLOTS, RawEvent, SLOT_PID_FOR_CHILDREN, SLOT_TIME_FOR_CHILDREN, TaskNamespaces, counter,
    },
};

use crate::maps::count;

/// Struct offsets of the running kernel. User space replaces the
/// placeholder before loading. It must stay in `.rodata`: the kernel freezes
/// that map, so the verifier treats these values as constants.
#[unsafe(no_mangle)]
pub(crate) static KERNEL_OFFSETS: KernelOffsets = KernelOffsets::PLACEHOLDER;

/// Reads one field of `KERNEL_OFFSETS`. The volatile read keeps the compiler
/// from folding in the placeholder value.
macro_rules! offset {
    ($($field:tt)+) => {
        {
            let field = &$crate::task::KERNEL_OFFSETS.$($field)+;
            // SAFETY: a reference to a field of a static is valid to read.
            #[allow(unused_unsafe)]
            let value = unsafe { ::core::ptr::read_volatile(field) };
            value
        }
    };
}
pub(crate) use offset;

/// Bit mask of the slots whose pointer lives in `struct nsproxy`.
const NSPROXY_SLOTS: u32 = (1 << NsType::Cgroup.index())
    | (1 << NsType::Ipc.index())
    | (1 << NsType::Mnt.index())
    | (1 << NsType::Net.index())
    | (1 << NsType::Time.index())
    | (1 << NsType::Uts.index())
    | (1 << SLOT_PID_FOR_CHILDREN)
    | (1 << SLOT_TIME_FOR_CHILDREN);

/// Writes `value` to `dst` with a volatile store. Plain stores of zeros
/// next to each other get merged into a `memset` call, which BPF lacks.
#[inline(always)]
pub fn store<T>(dst: *mut T, value: T) {
    // SAFETY: callers pass pointers into a reserved ring buffer record.
    unsafe { core::ptr::write_volatile(dst, value) }
}

/// Copies a `T` from kernel address `base + offset` to `dst`. Returns 0 or a
/// negative errno, and on error fills `dst` with zeros.
#[inline(always)]
pub(crate) fn read_to<T>(dst: *mut T, base: u64, offset: u32) -> i64 {
    let src = base.wrapping_add(offset as u64) as *const c_void;
    // SAFETY: dst points to writable memory of size_of::<T>() bytes;
    // bpf_probe_read_kernel checks the source address and fails cleanly.
    unsafe { bpf_probe_read_kernel(dst.cast(), size_of::<T>() as u32, src) }
}

/// Reads a pointer-sized value; 0 on error, which is ORed into `status`.
#[inline(always)]
pub fn read_u64(base: u64, offset: u32, status: &mut i64) -> u64 {
    let mut value = 0u64;
    *status |= read_to(&mut value, base, offset);
    value
}

/// Reads a 32-bit value; 0 on error, which is ORed into `status`.
#[inline(always)]
pub fn read_u32(base: u64, offset: u32, status: &mut i64) -> u32 {
    let mut value = 0u32;
    *status |= read_to(&mut value, base, offset);
    value
}

/// The three pointers that decide whether two tasks share every namespace:
/// `nsproxy` covers eight slots, the user namespace comes from the
/// credentials and the active pid namespace from `thread_pid`.
pub struct NsIdentity {
    pub nsproxy: u64,
    pub user_ns: u64,
    pub pid_ns: u64,
}

impl NsIdentity {
    #[inline(always)]
    pub fn same_as(&self, other: &NsIdentity) -> bool {
        // Bitwise, to give the verifier one branch instead of three.
        ((self.nsproxy ^ other.nsproxy) | (self.user_ns ^ other.user_ns) | (self.pid_ns ^ other.pid_ns)) == 0
    }
}

/// Reads the pointers that [`NsIdentity`] compares.
///
/// The user namespace is `real_cred->user_ns`, as `/proc/PID/ns/user`
/// shows. The active pid namespace is `thread_pid->numbers[level].ns`, as
/// `/proc/PID/ns/pid` shows.
#[inline(always)]
pub fn identity(task: u64, status: &mut i64) -> NsIdentity {
    let nsproxy = read_u64(task, offset!(task_nsproxy), status);
    let cred = read_u64(task, offset!(task_real_cred), status);
    let user_ns = read_u64(cred, offset!(cred_user_ns), status);
    let pid = read_u64(task, offset!(task_thread_pid), status);
    let level = read_u32(pid, offset!(pid_level), status);
    let upid = pid + offset!(pid_numbers) as u64 + level as u64 * offset!(upid_size) as u64;
    let pid_ns = read_u64(upid, offset!(upid_ns), status);
    NsIdentity {
        nsproxy,
        user_ns,
        pid_ns,
    }
}

/// Writes inode and id of every link slot of `task` to `out`, which may be
/// ring buffer memory. Slots the kernel lacks get zeros.
///
/// Each slot has its own copy of the code instead of a loop. In the task
/// iterator, LLVM laid out a loop over the slots with a jump back to its head
/// that the verifier of Linux 6.1 rejects ("back-edge from insn"), while 6.12
/// and 6.18 accept it.
#[inline(always)]
pub fn write_namespaces(task: u64, out: *mut TaskNamespaces, status: &mut i64) {
    const _: () = assert!(LINK_SLOTS == 10, "write_namespaces writes slots 0 to 9");
    let ids = identity(task, status);
    write_slot::<0>(&ids, out, status);
    write_slot::<1>(&ids, out, status);
    write_slot::<2>(&ids, out, status);
    write_slot::<3>(&ids, out, status);
    write_slot::<4>(&ids, out, status);
    write_slot::<5>(&ids, out, status);
    write_slot::<6>(&ids, out, status);
    write_slot::<7>(&ids, out, status);
    write_slot::<8>(&ids, out, status);
    write_slot::<9>(&ids, out, status);
}

/// Writes inode and id of link slot `SLOT` for [`write_namespaces`].
#[inline(always)]
fn write_slot<const SLOT: usize>(ids: &NsIdentity, out: *mut TaskNamespaces, status: &mut i64) {
    // SAFETY: out points to a whole TaskNamespaces and SLOT < LINK_SLOTS.
    let (inum, id) = unsafe { (addr_of_mut!((*out).inum[SLOT]), addr_of_mut!((*out).id[SLOT])) };
    let bit = 1u32 << SLOT;
    if offset!(slots_present) & bit == 0 {
        store(inum, 0);
        store(id, 0);
        return;
    }
    let ns = if SLOT == NsType::User.index() {
        ids.user_ns
    } else if SLOT == NsType::Pid.index() {
        ids.pid_ns
    } else if NSPROXY_SLOTS & bit != 0 {
        read_u64(ids.nsproxy, offset!(nsproxy_member[SLOT]), status)
    } else {
        0
    };
    let common = ns.wrapping_add(offset!(ns_common_in[SLOT]) as u64);
    *status |= read_to(inum, common, offset!(ns_common_inum));
    if offset!(has_ns_id) != 0 {
        *status |= read_to(id, common, offset!(ns_common_ns_id));
    } else {
        store(id, 0);
    }
}

/// Source of the task pointer of an event.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The task running the program (`bpf_get_current_task`).
    Current,
    /// Another task, such as a new child at fork.
    Other,
}

/// Fills everything in `event` but `args`, `ret` and `aux`, for `task`, and
/// ORs the result of every read into `status`.
///
/// `task` is a `struct task_struct *`; for [`Subject::Current`] it must be
/// the current task.
#[inline(always)]
pub fn fill_event(event: *mut RawEvent, kind: u32, syscall_nr: i32, task: u64, subject: Subject, status: &mut i64) {
    fill_task(event, kind, syscall_nr, task, subject, status);
    // SAFETY: event points to a whole RawEvent in ring buffer memory.
    let ns = unsafe { addr_of_mut!((*event).ns) };
    write_namespaces(task, ns, status);
}

/// Fills what [`fill_event`] fills except the namespaces: kind, stamp, task
/// ids, command name and credentials.
#[inline(always)]
pub fn fill_task(event: *mut RawEvent, kind: u32, syscall_nr: i32, task: u64, subject: Subject, status: &mut i64) {
    // SAFETY: event points to a whole RawEvent in ring buffer memory; every
    // write below stays inside it.
    unsafe {
        (*event).kind = kind;
        (*event).syscall_nr = syscall_nr;
        (*event).boot_ns = bpf_ktime_get_boot_ns();

        let comm = addr_of_mut!((*event).comm);
        if subject == Subject::Current {
            let pid_tgid = bpf_get_current_pid_tgid();
            (*event).tgid = (pid_tgid >> 32) as u32;
            (*event).tid = pid_tgid as u32;
            *status |= bpf_get_current_comm(comm.cast(), 16);
        } else {
            (*event).tgid = read_u32(task, offset!(task_tgid), status);
            (*event).tid = read_u32(task, offset!(task_pid), status);
            *status |= read_to(comm, task, offset!(task_comm));
        }

        let parent = read_u64(task, offset!(task_real_parent), status);
        (*event).ppid = read_u32(parent, offset!(task_tgid), status);
        let mut cred_status = 0;
        let cred = read_u64(task, offset!(task_real_cred), &mut cred_status);
        let uid = read_u32(cred, offset!(cred_uid), &mut cred_status);
        let euid = read_u32(cred, offset!(cred_euid), &mut cred_status);
        // A failed read must not pass for root.
        let unread = cred_status != 0;
        (*event).uid = if unread { u32::MAX } else { uid };
        (*event).euid = if unread { u32::MAX } else { euid };
        *status |= cred_status;
    }
}

/// Writes zeros to every link slot of `out`, which may be ring buffer memory.
#[inline(always)]
pub fn clear_namespaces(out: *mut TaskNamespaces) {
    for slot in 0..LINK_SLOTS {
        // SAFETY: out points to a whole TaskNamespaces and slot < LINK_SLOTS.
        unsafe {
            store(addr_of_mut!((*out).inum[slot]), 0);
            store(addr_of_mut!((*out).id[slot]), 0);
        }
    }
}

/// Counts an event whose reads did not all succeed.
#[inline(always)]
pub fn note_read_status(status: i64) {
    if status != 0 {
        count(counter::READ_FAILED);
    }
}
