//! `sched/sched_process_exec`: a successful exec. A time namespace set by
//! `unshare(CLONE_NEWTIME)` becomes the task's own here, and `comm` changes.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use listns_common::trace::EventKind;

use crate::emit::emit_current;

/// Offset of `pid_t old_pid` in the tracepoint record (see
/// `/sys/kernel/tracing/events/sched/sched_process_exec/format`).
const OLD_PID_OFFSET: usize = 16;

#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let _ = try_sched_process_exec(&ctx);
    0
}

fn try_sched_process_exec(ctx: &TracePointContext) -> Result<(), i32> {
    // SAFETY: the offset lies inside the record, as its format file shows.
    let old_pid = unsafe { ctx.read_at::<i32>(OLD_PID_OFFSET)? };
    emit_current(EventKind::Exec, -1, [0, 0], 0, old_pid as u32, 0);
    Ok(())
}
