//! The eBPF programs behind `listns --follow`, and the BPF iterators behind
//! its in-kernel snapshot (`iter.rs`).
//!
//! Each hook family has its own module; every program is a thin entry point
//! that calls a `try_` function. The programs write [`RawEvent`] records to
//! the `EVENTS` ring buffer. Struct offsets come from user space through
//! `KERNEL_OFFSETS` (see `task.rs`), because Rust eBPF has no CO-RE
//! relocations.
//!
//! [`RawEvent`]: listns_common::trace::RawEvent
#![no_std]
#![no_main]
// Inline assembly on the BPF target, for the atomic counter add in maps.rs.
// The crate needs a nightly compiler anyway (-Z build-std=core).
#![feature(asm_experimental_arch)]

mod emit;
mod exec;
mod exit;
mod fork;
mod free;
mod iter;
mod maps;
mod mount;
mod ns_syscalls;
mod syscall;
mod task;

/// The kernel accepts `bpf_probe_read_kernel` and the other helpers used
/// here only from programs with a GPL-compatible license string.
#[unsafe(no_mangle)]
#[unsafe(link_section = "license")]
pub static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a loaded program: the verifier rejects any path that
    // gets here, because the loop never ends.
    loop {}
}
