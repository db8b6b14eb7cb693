//! Writing records for the current task to the ring buffer.

use core::ptr::addr_of_mut;

use aya_ebpf::helpers::bpf_get_current_task;
use listns_common::trace::{EventKind, RawEvent, counter};

use crate::{
    maps::{EVENTS, count, submit_flags},
    task::{Subject, fill_event, note_read_status, store},
};

/// Sends one event about the current task. A full ring buffer drops the
/// event and counts it in `LOST_EVENTS`. `status` carries the result of the
/// caller's own reads for `aux` (0 when all succeeded), so that one failure
/// counter covers the whole event.
#[inline(always)]
pub fn emit_current(kind: EventKind, syscall_nr: i32, args: [u64; 2], ret: i64, aux: u32, status: i64) {
    let Some(mut entry) = EVENTS.reserve::<RawEvent>(0) else {
        count(counter::LOST_EVENTS);
        return;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: bpf_get_current_task has no preconditions.
    let task = unsafe { bpf_get_current_task() };
    let mut status = status;
    fill_event(event, kind as u32, syscall_nr, task, Subject::Current, &mut status);
    // SAFETY: event points to the RawEvent just reserved.
    unsafe {
        store(addr_of_mut!((*event).args[0]), args[0]);
        store(addr_of_mut!((*event).args[1]), args[1]);
        store(addr_of_mut!((*event).ret), ret);
        store(addr_of_mut!((*event).aux), aux);
    }
    entry.submit(submit_flags());
    note_read_status(status);
}
