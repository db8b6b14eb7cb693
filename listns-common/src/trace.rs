//! Records shared by the eBPF programs of `listns --follow` and user space.
//!
//! Every type here is `#[repr(C)]` and laid out without implicit padding, so
//! that the eBPF object (bpfel) and the host agree on each byte. The const
//! assertions at the end pin the sizes. Both sides are little-endian 64-bit: the eBPF
//! programs are built for `bpfel-unknown-none` only.

use crate::NsType;

/// Number of namespace links in [`TaskNamespaces`]: one per [`NsType`]
/// (indexed by [`NsType::index`]), then `pid_for_children` and
/// `time_for_children`.
pub const LINK_SLOTS: usize = 10;
/// Slot of `pid_for_children` (`nsproxy->pid_ns_for_children`).
pub const SLOT_PID_FOR_CHILDREN: usize = 8;
/// Slot of `time_for_children` (`nsproxy->time_ns_for_children`).
pub const SLOT_TIME_FOR_CHILDREN: usize = 9;

/// Returns the name of a link slot, as in `/proc/PID/ns`.
pub const fn slot_name(slot: usize) -> &'static str {
    match slot {
        SLOT_PID_FOR_CHILDREN => "pid_for_children",
        SLOT_TIME_FOR_CHILDREN => "time_for_children",
        _ if slot < 8 => NsType::ALL[slot].name(),
        _ => "invalid",
    }
}

/// The namespaces of one task at the moment of an event.
///
/// A zero inode means the link could not be read: the kernel lacks that
/// namespace type, or the task had no nsproxy any more. A zero id means the
/// kernel has no `ns_common.ns_id` (before Linux 6.18) or the link is unread.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskNamespaces {
    /// `ns_common.inum`: the nsfs inode number, as in `/proc/PID/ns/*`.
    pub inum: [u32; LINK_SLOTS],
    /// `ns_common.ns_id`: the 64-bit id that `NS_GET_ID` returns.
    pub id: [u64; LINK_SLOTS],
}

/// Kind of a [`RawEvent`]. The numbers are the on-wire values of
/// [`RawEvent::kind`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A new task whose namespaces differ from its creator's: a clone with
    /// `CLONE_NEW*`, or the first children after `unshare(CLONE_NEWPID)`.
    /// The record is a [`RawForkEvent`].
    Fork = 1,
    /// A successful `unshare` with at least one `CLONE_NEW*` flag.
    Unshare = 2,
    /// A successful `setns`.
    Setns = 3,
    /// A successful exec; a pending time namespace takes effect here.
    Exec = 4,
    /// A task (thread) exits; its namespaces are still attached.
    Exit = 5,
    /// A `mount` with `MS_BIND` or `MS_MOVE`, which can create or move an
    /// nsfs bind mount.
    Mount = 6,
    /// A `move_mount`, the new mount API's way to attach an nsfs bind mount.
    MoveMount = 7,
    /// An `umount2`, which can drop an nsfs bind mount.
    Umount = 8,
    /// The kernel freed an inode number of its proc inode allocator
    /// (`proc_free_inum`), which it does for every namespace that it frees
    /// and for every removed `/proc` entry that had a number of its own.
    /// [`RawEvent::aux`] is the number; the task fields describe whichever
    /// task ran the free, often a kernel worker.
    FreeInum = 9,
}

impl EventKind {
    /// Returns the kind with this on-wire value.
    pub const fn from_raw(raw: u32) -> Option<EventKind> {
        Some(match raw {
            1 => EventKind::Fork,
            2 => EventKind::Unshare,
            3 => EventKind::Setns,
            4 => EventKind::Exec,
            5 => EventKind::Exit,
            6 => EventKind::Mount,
            7 => EventKind::MoveMount,
            8 => EventKind::Umount,
            9 => EventKind::FreeInum,
            _ => return None,
        })
    }

    /// Returns a short lower-case name, used in logs and text output.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::Fork => "fork",
            EventKind::Unshare => "unshare",
            EventKind::Setns => "setns",
            EventKind::Exec => "exec",
            EventKind::Exit => "exit",
            EventKind::Mount => "mount",
            EventKind::MoveMount => "move_mount",
            EventKind::Umount => "umount",
            EventKind::FreeInum => "free_inum",
        }
    }
}

/// [`RawEvent::aux`] bit of an exit: the task was the last live thread of
/// its thread group (`signal->live` reached zero).
pub const EXIT_GROUP_DEAD: u32 = 1;

/// One event as the eBPF programs write it to the ring buffer.
///
/// Task ids are as seen from the initial pid namespace.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEvent {
    /// An [`EventKind`] value.
    pub kind: u32,
    /// The system call number on this architecture, or -1 for scheduler and
    /// `free_inum` events.
    pub syscall_nr: i32,
    /// `bpf_ktime_get_boot_ns()`: CLOCK_BOOTTIME in nanoseconds, which keeps
    /// counting during suspend.
    pub boot_ns: u64,
    pub tgid: u32,
    pub tid: u32,
    /// Thread-group id of `real_parent`.
    pub ppid: u32,
    /// Real UID of the task's `real_cred`, in the initial user namespace.
    pub uid: u32,
    /// Effective UID of the task's `real_cred` (the owner of `/proc/PID`).
    pub euid: u32,
    /// Kind-specific: for an exit, [`EXIT_GROUP_DEAD`]; for an exec, the
    /// thread id before exec (a non-leader thread that execs takes the
    /// leader's id); for [`EventKind::FreeInum`], the freed inode number,
    /// which is the `unsigned int` argument of `proc_free_inum`.
    pub aux: u32,
    /// `task->comm`, NUL-padded.
    pub comm: [u8; 16],
    /// System call arguments: `unshare(flags)` puts flags in `args[0]`;
    /// `setns(fd, nstype)` puts fd and nstype; `mount`, `move_mount` and
    /// `umount2` put their flags in `args[0]`.
    pub args: [u64; 2],
    /// System call return value (0 or a negative errno).
    pub ret: i64,
    /// The task's namespaces after the event (for an exit: at exit); all
    /// zeros for [`EventKind::FreeInum`].
    pub ns: TaskNamespaces,
}

/// A [`RawEvent`] of kind [`EventKind::Fork`], with the creator's namespaces.
///
/// `event` describes the child. The creator is the task that called clone,
/// which is not the child's `real_parent` after `CLONE_PARENT`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawForkEvent {
    pub event: RawEvent,
    pub creator_tgid: u32,
    pub creator_tid: u32,
    pub creator_ns: TaskNamespaces,
}

/// Indexes of the per-CPU `COUNTERS` array.
pub mod counter {
    /// Events dropped because the ring buffer was full.
    pub const LOST_EVENTS: u32 = 0;
    /// `unshare`/`setns`/mount calls whose arguments did not fit in the
    /// per-thread map, so their exit produced no event.
    pub const PENDING_MAP_FULL: u32 = 1;
    /// Events sent with some fields unread because a kernel read failed.
    pub const READ_FAILED: u32 = 2;
    /// Number of counters.
    pub const COUNT: u32 = 3;
}

/// Struct member offsets the eBPF programs need, resolved from the running
/// kernel's BTF by user space and written into the program's read-only data
/// before loading.
///
/// All values are byte offsets, except where the field name states a size,
/// a bit mask or a flag.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_real_parent: u32,
    pub task_comm: u32,
    pub task_nsproxy: u32,
    pub task_real_cred: u32,
    pub task_thread_pid: u32,
    pub task_signal: u32,
    pub signal_live: u32,
    pub cred_uid: u32,
    pub cred_euid: u32,
    pub cred_user_ns: u32,
    pub pid_level: u32,
    pub pid_numbers: u32,
    /// `sizeof(struct upid)`: the stride of `pid.numbers[]`.
    pub upid_size: u32,
    pub upid_ns: u32,
    pub ns_common_inum: u32,
    /// Valid only when `has_ns_id` is 1.
    pub ns_common_ns_id: u32,
    /// Per slot: offset of the namespace pointer in `struct nsproxy`. Unused
    /// for the user slot (`cred->user_ns`) and the pid slot (`thread_pid`).
    pub nsproxy_member: [u32; LINK_SLOTS],
    /// Per slot: offset of `struct ns_common ns` in the namespace's struct.
    pub ns_common_in: [u32; LINK_SLOTS],
    /// Bit `1 << slot` is set when this kernel has the slot's namespace type.
    pub slots_present: u32,
    /// 1 when `struct ns_common` has `ns_id` (Linux 6.18+), else 0.
    pub has_ns_id: u32,
    /// The offsets below serve the BPF iterators (`iter.rs`) only.
    pub task_flags: u32,
    pub task_exit_state: u32,
    pub task_cgroups: u32,
    pub css_set_dfl_cgrp: u32,
    pub cgroup_kn: u32,
    pub kernfs_node_id: u32,
    /// `pid_namespace.child_reaper`: NULL until the first process of a pid
    /// namespace created by `unshare(CLONE_NEWPID)` exists.
    pub pid_ns_child_reaper: u32,
    pub file_f_inode: u32,
    pub file_private_data: u32,
    pub inode_i_mode: u32,
    pub inode_i_rdev: u32,
    pub inode_i_ino: u32,
    pub inode_i_sb: u32,
    /// On nsfs, `inode->i_private` points to the namespace's `ns_common`.
    pub inode_i_private: u32,
    pub super_block_s_magic: u32,
    pub socket_sk: u32,
    /// `sock.__sk_common.skc_net`: the socket's network namespace pointer.
    pub sock_net: u32,
    /// Valid only when `has_ns_type` is 1.
    pub ns_common_ns_type: u32,
    /// 1 when `struct ns_common` has `ns_type` (Linux 6.18+), else 0.
    pub has_ns_type: u32,
    pub tun_file_tun: u32,
    pub tun_struct_dev: u32,
    pub net_device_nd_net: u32,
    /// 1 when the kernel's BTF describes the tun driver's structs, else 0.
    pub has_tun: u32,
    /// `task_struct.mm` and the bounds of the command line in the process's
    /// memory, for the command-line iterator.
    pub task_mm: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub _reserved: u32,
}

impl KernelOffsets {
    /// The placeholder the eBPF object is built with. It is not zero, so
    /// that the compiler places it in `.rodata`, where the loader can replace
    /// it and the kernel freezes it.
    pub const PLACEHOLDER: KernelOffsets = KernelOffsets {
        task_pid: u32::MAX,
        task_tgid: u32::MAX,
        task_real_parent: u32::MAX,
        task_comm: u32::MAX,
        task_nsproxy: u32::MAX,
        task_real_cred: u32::MAX,
        task_thread_pid: u32::MAX,
        task_signal: u32::MAX,
        signal_live: u32::MAX,
        cred_uid: u32::MAX,
        cred_euid: u32::MAX,
        cred_user_ns: u32::MAX,
        pid_level: u32::MAX,
        pid_numbers: u32::MAX,
        upid_size: u32::MAX,
        upid_ns: u32::MAX,
        ns_common_inum: u32::MAX,
        ns_common_ns_id: u32::MAX,
        nsproxy_member: [u32::MAX; LINK_SLOTS],
        ns_common_in: [u32::MAX; LINK_SLOTS],
        slots_present: 0,
        has_ns_id: 0,
        task_flags: u32::MAX,
        task_exit_state: u32::MAX,
        task_cgroups: u32::MAX,
        css_set_dfl_cgrp: u32::MAX,
        cgroup_kn: u32::MAX,
        kernfs_node_id: u32::MAX,
        pid_ns_child_reaper: u32::MAX,
        file_f_inode: u32::MAX,
        file_private_data: u32::MAX,
        inode_i_mode: u32::MAX,
        inode_i_rdev: u32::MAX,
        inode_i_ino: u32::MAX,
        inode_i_sb: u32::MAX,
        inode_i_private: u32::MAX,
        super_block_s_magic: u32::MAX,
        socket_sk: u32::MAX,
        sock_net: u32::MAX,
        ns_common_ns_type: u32::MAX,
        has_ns_type: 0,
        tun_file_tun: u32::MAX,
        tun_struct_dev: u32::MAX,
        net_device_nd_net: u32::MAX,
        has_tun: 0,
        task_mm: u32::MAX,
        mm_arg_start: u32::MAX,
        mm_arg_end: u32::MAX,
        _reserved: 0,
    };
}

const _: () = assert!(size_of::<TaskNamespaces>() == 120);
const _: () = assert!(size_of::<RawEvent>() == 200);
const _: () = assert!(size_of::<RawForkEvent>() == 328);
const _: () = assert!(size_of::<KernelOffsets>() == 268);
// The ring buffer hands out 8-byte aligned records.
const _: () = assert!(align_of::<RawEvent>() <= 8 && align_of::<RawForkEvent>() <= 8);

// SAFETY: plain #[repr(C)] data with no padding (the size assertions above
// match the sum of the fields), valid for every bit pattern.
#[cfg(feature = "user")]
unsafe impl aya::Pod for KernelOffsets {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for RawEvent {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for RawForkEvent {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for TaskNamespaces {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kinds_round_trip() {
        for raw in 0..16 {
            if let Some(kind) = EventKind::from_raw(raw) {
                assert_eq!(kind as u32, raw);
            }
        }
        assert_eq!(EventKind::from_raw(0), None);
        assert_eq!(EventKind::from_raw(9), Some(EventKind::FreeInum));
        assert_eq!(EventKind::from_raw(10), None);
    }

    #[test]
    fn slot_names_match_proc() {
        assert_eq!(slot_name(NsType::Net.index()), "net");
        assert_eq!(slot_name(SLOT_PID_FOR_CHILDREN), "pid_for_children");
        assert_eq!(slot_name(SLOT_TIME_FOR_CHILDREN), "time_for_children");
    }
}
