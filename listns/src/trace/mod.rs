//! Live namespace tracing with eBPF: the hook table, kernel struct offsets
//! from BTF, loading and attaching, and decoding of kernel events.
//!
//! The kernel side reports raw facts (task ids, system call, flags and every
//! namespace link of the task); turning them into lifecycle events against a
//! snapshot is left to the caller.

pub mod btf;
pub mod events;
pub mod hooks;
pub mod load;
pub mod offsets;

pub use events::{
    BootClock, Counters, Detail, Event, EventReader, MountCall, NsLinks, NsRef, TaskInfo, derived_clone_flags,
};
pub use load::{POLL_INTERVAL, TraceOptions, Tracer};
