//! `sched/sched_process_exit`: a thread exits. The tracepoint fires in
//! `do_exit` before `exit_task_namespaces`, so `nsproxy` still points to the
//! namespaces the thread had.

use aya_ebpf::{helpers::bpf_get_current_task, macros::tracepoint, programs::TracePointContext};
use listns_common::trace::{EXIT_GROUP_DEAD, EventKind};

use crate::{
    emit::emit_current,
    task::{offset, read_u32, read_u64},
};

#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    let _ = try_sched_process_exit();
    0
}

fn try_sched_process_exit() -> Result<(), i32> {
    // SAFETY: bpf_get_current_task has no preconditions.
    let task = unsafe { bpf_get_current_task() };
    // do_exit decrements signal->live before this tracepoint, so zero means
    // this is the last thread of the group. The tracepoint record of Linux
    // 6.18 also has group_dead, but older kernels' records lack it. An
    // unreadable counter reads as 0 and reports a group exit, and the event
    // then counts in READ_FAILED.
    let mut status = 0;
    let signal = read_u64(task, offset!(task_signal), &mut status);
    let live = read_u32(signal, offset!(signal_live), &mut status);
    let aux = if live == 0 { EXIT_GROUP_DEAD } else { 0 };
    emit_current(EventKind::Exit, -1, [0, 0], 0, aux, status);
    Ok(())
}
