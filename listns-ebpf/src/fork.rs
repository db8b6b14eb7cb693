//! `sched_process_fork`: a new task (process or thread) whose namespaces
//! differ from its creator's.
//!
//! The classic `sched/sched_process_fork` tracepoint passes only pids, so
//! these programs use the tracepoint's C arguments instead:
//! `(struct task_struct *parent, struct task_struct *child)`, where `parent`
//! is the task that called clone. The BTF-enabled variant (tp_btf, Linux
//! 5.5+) is preferred; the raw tracepoint (Linux 4.17+) is the fallback.
//! Both run the same code.
//!
//! The tracepoint fires for every clone, clone3, fork and vfork, so the clone
//! system calls need no hooks of their own.

use core::{ffi::c_void, ptr::addr_of_mut};

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{btf_tracepoint, raw_tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext},
};
use listns_common::trace::{EventKind, RawForkEvent, counter};

use crate::{
    maps::{EVENTS, count, submit_flags},
    task::{Subject, fill_event, identity, note_read_status, store, write_namespaces},
};

#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork_btf(ctx: BtfTracePointContext) -> i32 {
    let creator = ctx.arg::<*const c_void>(0) as u64;
    let child = ctx.arg::<*const c_void>(1) as u64;
    let _ = try_sched_process_fork(creator, child);
    0
}

#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork_raw(ctx: RawTracePointContext) -> u32 {
    let creator = ctx.arg::<*const c_void>(0) as u64;
    let child = ctx.arg::<*const c_void>(1) as u64;
    let _ = try_sched_process_fork(creator, child);
    0
}

fn try_sched_process_fork(creator: u64, child: u64) -> Result<(), i32> {
    // Most forks share nsproxy, the credentials' user namespace and the
    // active pid namespace with the creator: compare those pointers before
    // reading anything else.
    // A failed read gives a zero pointer; the event then shows the failure.
    let mut compare_status = 0;
    if identity(creator, &mut compare_status).same_as(&identity(child, &mut compare_status)) {
        return Ok(());
    }

    let Some(mut entry) = EVENTS.reserve::<RawForkEvent>(0) else {
        count(counter::LOST_EVENTS);
        return Ok(());
    };
    let record = entry.as_mut_ptr();
    let mut status = 0;
    // SAFETY: record points to the RawForkEvent just reserved; every write
    // stays inside it.
    unsafe {
        let event = addr_of_mut!((*record).event);
        fill_event(event, EventKind::Fork as u32, -1, child, Subject::Other, &mut status);
        store(addr_of_mut!((*event).args[0]), 0);
        store(addr_of_mut!((*event).args[1]), 0);
        store(addr_of_mut!((*event).ret), 0);
        store(addr_of_mut!((*event).aux), 0);

        // The creator is the current task.
        let pid_tgid = bpf_get_current_pid_tgid();
        (*record).creator_tgid = (pid_tgid >> 32) as u32;
        (*record).creator_tid = pid_tgid as u32;
        write_namespaces(creator, addr_of_mut!((*record).creator_ns), &mut status);
    }
    entry.submit(submit_flags());
    note_read_status(status);
    Ok(())
}
