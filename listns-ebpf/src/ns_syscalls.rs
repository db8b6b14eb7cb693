//! `unshare` and `setns`: the entry saves the arguments, a successful exit
//! reports the thread's namespaces after the call.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use listns_common::{NsType, trace::EventKind};

use crate::syscall::{Report, argument, finish_pending, save_pending};

/// Every `CLONE_NEW*` flag; an `unshare` without one changes no namespace.
const CLONE_NEW_ANY: u64 = {
    let mut flags = 0u64;
    let mut i = 0;
    while i < NsType::ALL.len() {
        flags |= NsType::ALL[i].clone_flag() as u64;
        i += 1;
    }
    flags
};

#[tracepoint(category = "syscalls", name = "sys_enter_unshare")]
pub fn sys_enter_unshare(ctx: TracePointContext) -> u32 {
    let _ = try_sys_enter_unshare(&ctx);
    0
}

fn try_sys_enter_unshare(ctx: &TracePointContext) -> Result<(), i32> {
    let flags = argument(ctx, 0)?;
    if flags & CLONE_NEW_ANY == 0 {
        return Ok(());
    }
    save_pending(ctx, EventKind::Unshare, [flags, 0])
}

#[tracepoint(category = "syscalls", name = "sys_exit_unshare")]
pub fn sys_exit_unshare(ctx: TracePointContext) -> u32 {
    let _ = finish_pending(&ctx, EventKind::Unshare, Report::Success);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_setns")]
pub fn sys_enter_setns(ctx: TracePointContext) -> u32 {
    let _ = try_sys_enter_setns(&ctx);
    0
}

fn try_sys_enter_setns(ctx: &TracePointContext) -> Result<(), i32> {
    // setns(int fd, int nstype): fd is a namespace fd or a pidfd.
    let fd = argument(ctx, 0)? as u32 as u64;
    let nstype = argument(ctx, 1)? as u32 as u64;
    save_pending(ctx, EventKind::Setns, [fd, nstype])
}

#[tracepoint(category = "syscalls", name = "sys_exit_setns")]
pub fn sys_exit_setns(ctx: TracePointContext) -> u32 {
    let _ = finish_pending(&ctx, EventKind::Setns, Report::Success);
    0
}
