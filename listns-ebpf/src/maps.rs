//! Maps shared by all programs.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use listns_common::trace::counter;

/// Default size of the event ring buffer, which user space may change to
/// another power of two. At 208 bytes per record (200 plus the ring buffer's
/// 8-byte header), 4 MiB has room for 20,164 events.
pub const EVENTS_BYTES: u32 = 4 << 20;

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// Unread bytes in `EVENTS` from which a new record wakes the reader. Below
/// it, records are submitted without a wakeup and the reader finds them on
/// its next timed poll. This saves a wakeup and a context switch per record.
/// 0 wakes the reader for every record. User space sets the value, which
/// lives in `.rodata` like `KERNEL_OFFSETS`.
#[unsafe(no_mangle)]
pub(crate) static WAKEUP_BYTES: u64 = u64::MAX;

const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;

/// Returns the flags for submitting a record to `EVENTS`.
#[inline(always)]
pub fn submit_flags() -> u64 {
    // SAFETY: reading a static; volatile keeps the placeholder from being
    // folded in.
    let threshold = unsafe { core::ptr::read_volatile(&WAKEUP_BYTES) };
    if threshold == 0 {
        return 0;
    }
    if EVENTS.query(BPF_RB_AVAIL_DATA) >= threshold {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

/// Per-CPU counters, indexed by `listns_common::trace::counter`.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Arguments of a system call saved at entry, for its exit program.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PendingSyscall {
    /// `listns_common::trace::EventKind` value.
    pub kind: u32,
    pub syscall_nr: i32,
    pub args: [u64; 2],
}

/// Calls in flight, keyed by thread id. An entry lives from a syscall's
/// entry to its exit, so the map needs room only for threads that are inside
/// `unshare`, `setns` or a mount call at the same moment.
#[map]
pub static PENDING: HashMap<u32, PendingSyscall> = HashMap::with_max_entries(16384, 0);

/// Adds one to a per-CPU counter.
#[inline(always)]
pub fn count(index: u32) {
    if let Some(value) = COUNTERS.get_ptr_mut(index) {
        // An atomic add (BPF_XADD), in case a preempted program on this CPU
        // is updating the same slot. The bpfel target has no compare-and-swap,
        // so core's AtomicU64 offers no fetch_add there.
        // SAFETY: the map value is a live, aligned u64 for the whole call.
        unsafe {
            core::arch::asm!(
                "lock *(u64 *)({value} + 0) += {one}",
                value = in(reg) value,
                one = in(reg) 1u64,
            );
        }
    }
}
