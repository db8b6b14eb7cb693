//! Empty library target. `listns` names this crate as a build dependency so
//! that cargo reruns its build script, which builds the eBPF binary
//! (`src/main.rs`) for `bpfel-unknown-none`, when this crate changes.
#![no_std]
