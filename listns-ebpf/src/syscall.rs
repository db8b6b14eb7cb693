//! Bookkeeping shared by the system call hooks: the entry program saves the
//! arguments per thread, the exit program reads them back with the result.
//!
//! Both programs read the tracepoint records of `syscalls/sys_enter_*` and
//! `sys_exit_*`: after the 8-byte common header comes `int __syscall_nr` at
//! offset 8, then each argument (or the return value) in an 8-byte slot from
//! offset 16 (see `/sys/kernel/tracing/events/syscalls/*/format`). The
//! kernel generates these records from one template for all system calls.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, programs::TracePointContext};
use listns_common::trace::{EventKind, counter};

use crate::{
    emit::emit_current,
    maps::{PENDING, PendingSyscall, count},
};

const SYSCALL_NR_OFFSET: usize = 8;
const FIRST_ARG_OFFSET: usize = 16;
const RET_OFFSET: usize = 16;

/// Reads argument `index` (from 0) of a `sys_enter_*` record.
#[inline(always)]
pub fn argument(ctx: &TracePointContext, index: usize) -> Result<u64, i32> {
    // SAFETY: the offset lies inside every sys_enter record with at least
    // index + 1 arguments; callers pass indexes of their call's arguments.
    unsafe { ctx.read_at::<u64>(FIRST_ARG_OFFSET + 8 * index) }
}

/// Saves the arguments of the current thread's call until its exit.
#[inline(always)]
pub fn save_pending(ctx: &TracePointContext, kind: EventKind, args: [u64; 2]) -> Result<(), i32> {
    // SAFETY: every sys_enter record has __syscall_nr at this offset.
    let syscall_nr = unsafe { ctx.read_at::<i32>(SYSCALL_NR_OFFSET)? };
    let tid = bpf_get_current_pid_tgid() as u32;
    let pending = PendingSyscall {
        kind: kind as u32,
        syscall_nr,
        args,
    };
    if let Err(err) = PENDING.insert(tid, pending, 0) {
        count(counter::PENDING_MAP_FULL);
        return Err(err);
    }
    Ok(())
}

/// Choice of the exits that produce an event.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// Only calls that returned 0.
    Success,
    /// Every call, with its return value.
    Always,
}

/// Takes the saved arguments of the current thread and sends the event.
/// Does nothing when the entry was not seen, for example because the thread
/// was already inside the call when the programs were attached.
#[inline(always)]
pub fn finish_pending(ctx: &TracePointContext, kind: EventKind, report: Report) -> Result<(), i32> {
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: the value is copied out before the entry is removed.
    let Some(pending) = (unsafe { PENDING.get(tid) }).copied() else {
        return Ok(());
    };
    let _ = PENDING.remove(tid);
    if pending.kind != kind as u32 {
        return Ok(());
    }
    // SAFETY: every sys_exit record has the return value at this offset.
    let ret = unsafe { ctx.read_at::<i64>(RET_OFFSET)? };
    if report == Report::Success && ret != 0 {
        return Ok(());
    }
    emit_current(kind, pending.syscall_nr, pending.args, ret, 0, 0);
    Ok(())
}
