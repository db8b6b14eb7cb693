//! `proc_free_inum(unsigned int inum)`: the kernel gives an inode number back
//! to its proc inode allocator.
//!
//! Every namespace but the initial ones takes its nsfs inode number from
//! that allocator and gives it back when the kernel frees the namespace, so
//! user space learns of the free without waiting for a liveness check.
//! Removed `/proc` entries give back their numbers here too, and a network
//! namespace takes dozens of `/proc/net` entries with it. User space drops
//! numbers that match no namespace in its live state.
//!
//! fentry (Linux 5.5+) is preferred, and the kprobe is the fallback on
//! kernels that reject fentry. Both run the same code. The function often
//! runs in a kernel worker or in an RCU callback on top of an unrelated task,
//! so the record's task fields name whichever task ran the free, and its
//! namespace slots are zeros.

use core::ptr::addr_of_mut;

use aya_ebpf::{
    helpers::bpf_get_current_task,
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
};
use listns_common::trace::{EventKind, RawEvent, counter};

use crate::{
    maps::{EVENTS, count, submit_flags},
    task::{Subject, clear_namespaces, fill_task, note_read_status, store},
};

#[fentry(function = "proc_free_inum")]
pub fn fentry_proc_free_inum(ctx: FEntryContext) -> i32 {
    let inum = ctx.arg::<u32>(0);
    let _ = try_free_inum(inum);
    0
}

#[kprobe(function = "proc_free_inum")]
pub fn kprobe_proc_free_inum(ctx: ProbeContext) -> u32 {
    // The register contains 64 bits, of which the argument is the low half.
    let Some(inum) = ctx.arg::<u64>(0) else {
        return 0;
    };
    let _ = try_free_inum(inum as u32);
    0
}

fn try_free_inum(inum: u32) -> Result<(), i32> {
    let Some(mut entry) = EVENTS.reserve::<RawEvent>(0) else {
        count(counter::LOST_EVENTS);
        return Ok(());
    };
    let event = entry.as_mut_ptr();
    // SAFETY: bpf_get_current_task has no preconditions.
    let task = unsafe { bpf_get_current_task() };
    let mut status = 0;
    fill_task(
        event,
        EventKind::FreeInum as u32,
        -1,
        task,
        Subject::Current,
        &mut status,
    );
    // SAFETY: event points to the RawEvent just reserved.
    unsafe {
        clear_namespaces(addr_of_mut!((*event).ns));
        store(addr_of_mut!((*event).args[0]), 0);
        store(addr_of_mut!((*event).args[1]), 0);
        store(addr_of_mut!((*event).ret), 0);
        store(addr_of_mut!((*event).aux), inum);
    }
    entry.submit(submit_flags());
    note_read_status(status);
    Ok(())
}
