//! Mount calls that can create, move or drop an nsfs bind mount. These
//! programs report only the raw call (flags and result); user space rereads
//! mountinfo of the task's mount namespace to see what changed.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use listns_common::trace::EventKind;

use crate::syscall::{Report, argument, finish_pending, save_pending};

const MS_REMOUNT: u64 = 0x20;
const MS_BIND: u64 = 0x1000;
const MS_MOVE: u64 = 0x2000;

#[tracepoint(category = "syscalls", name = "sys_enter_mount")]
pub fn sys_enter_mount(ctx: TracePointContext) -> u32 {
    let _ = try_sys_enter_mount(&ctx);
    0
}

fn try_sys_enter_mount(ctx: &TracePointContext) -> Result<(), i32> {
    // mount(dev_name, dir_name, type, flags, data). nsfs cannot be mounted
    // by type, only bound or moved; a remount changes no binding.
    let flags = argument(ctx, 3)?;
    if flags & (MS_BIND | MS_MOVE) == 0 || flags & MS_REMOUNT != 0 {
        return Ok(());
    }
    save_pending(ctx, EventKind::Mount, [flags, 0])
}

#[tracepoint(category = "syscalls", name = "sys_exit_mount")]
pub fn sys_exit_mount(ctx: TracePointContext) -> u32 {
    let _ = finish_pending(&ctx, EventKind::Mount, Report::Always);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_move_mount")]
pub fn sys_enter_move_mount(ctx: TracePointContext) -> u32 {
    let _ = try_sys_enter_move_mount(&ctx);
    0
}

fn try_sys_enter_move_mount(ctx: &TracePointContext) -> Result<(), i32> {
    // move_mount(from_dfd, from_path, to_dfd, to_path, flags)
    let flags = argument(ctx, 4)? as u32 as u64;
    save_pending(ctx, EventKind::MoveMount, [flags, 0])
}

#[tracepoint(category = "syscalls", name = "sys_exit_move_mount")]
pub fn sys_exit_move_mount(ctx: TracePointContext) -> u32 {
    let _ = finish_pending(&ctx, EventKind::MoveMount, Report::Always);
    0
}

/// `umount2` is `sys_umount` in the kernel, so its tracepoints are named
/// `sys_enter_umount` and `sys_exit_umount`.
#[tracepoint(category = "syscalls", name = "sys_enter_umount")]
pub fn sys_enter_umount(ctx: TracePointContext) -> u32 {
    let _ = try_sys_enter_umount(&ctx);
    0
}

fn try_sys_enter_umount(ctx: &TracePointContext) -> Result<(), i32> {
    // umount2(name, flags)
    let flags = argument(ctx, 1)? as u32 as u64;
    save_pending(ctx, EventKind::Umount, [flags, 0])
}

#[tracepoint(category = "syscalls", name = "sys_exit_umount")]
pub fn sys_exit_umount(ctx: TracePointContext) -> u32 {
    let _ = finish_pending(&ctx, EventKind::Umount, Report::Always);
    0
}
