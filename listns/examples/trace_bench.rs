//! Measures the live tracer: load and attach time, ring buffer capacity and
//! reader throughput, and the overhead of the hooks on a null-syscall loop
//! and a fork/exec loop. Needs root; run the release build, on an otherwise
//! idle machine:
//!
//!     cargo run --release --example trace_bench
//!
//! Every figure is printed with the loop it comes from; rerun to see the
//! spread between runs. SKIP_HOOKS=fork,exec (hook names, comma-separated)
//! leaves hooks out of the overhead loops.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use listns::trace::load::DEFAULT_WAKEUP_BYTES;
use listns::trace::{Detail, POLL_INTERVAL, TraceOptions, Tracer};

const NULL_SYSCALLS: u64 = 10_000_000;
const FORK_EXECS: u32 = 1_000;
const ROUNDS: usize = 7;
const STORM_CREATIONS: u32 = 100_000;
const STORM_THREADS: u32 = 2;
const STALLED_CREATIONS: u32 = 30_000;

fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    if !rustix::process::geteuid().is_root() {
        bail!("trace_bench loads eBPF programs and needs root");
    }

    measure_load()?;
    measure_capacity()?;
    for ring_bytes in [4 << 20, 1 << 20, 256 << 10, 64 << 10] {
        measure_storm(ring_bytes)?;
    }

    let skip: Vec<String> = std::env::var("SKIP_HOOKS")
        .map(|list| list.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    if !skip.is_empty() {
        println!("hooks skipped: {}", skip.join(", "));
    }

    // Rounds alternate between no tracer, a tracer with the default wakeup
    // threshold, and a tracer that wakes the reader for every event, so that
    // drift of the machine spreads over all three.
    let mut null_calls = [Vec::new(), Vec::new(), Vec::new()];
    let mut fork_execs = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        null_calls[0].push(null_syscall_loop());
        fork_execs[0].push(fork_exec_loop()?);
        for (mode, wakeup_bytes) in [(1, DEFAULT_WAKEUP_BYTES), (2, 0)] {
            let ((null, fork), _) = with_tracer(&skip, wakeup_bytes, || Ok((null_syscall_loop(), fork_exec_loop()?)))?;
            null_calls[mode].push(null);
            fork_execs[mode].push(fork);
        }
    }
    let [base, batched, eager] = null_calls.map(median);
    println!(
        "getppid x{NULL_SYSCALLS}, median of {ROUNDS} rounds: {base:.1} ns/call without tracer, \
         {batched:.1} with it (+{:.1}), {eager:.1} with a wakeup per event (+{:.1})",
        batched - base,
        eager - base
    );
    let [base, batched, eager] = fork_execs.map(median);
    println!(
        "fork+exec+wait of /bin/true x{FORK_EXECS}, median of {ROUNDS} rounds: {base:.1} us without tracer, \
         {batched:.1} with it (+{:.1}), {eager:.1} with a wakeup per event (+{:.1})",
        batched - base,
        eager - base
    );
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Time from the start of loading until the first event of a new process
/// has been read.
fn measure_load() -> Result<()> {
    let start = Instant::now();
    let mut tracer = Tracer::load(&TraceOptions::default())?;
    let loaded = start.elapsed();
    let child = Command::new("/bin/true").spawn().context("cannot start /bin/true")?;
    let pid = child.id();
    let mut child = child;
    child.wait()?;
    let mut seen = false;
    while !seen {
        if start.elapsed() > Duration::from_secs(10) {
            bail!("no event of PID {pid} within 10 s");
        }
        tracer.events.wait(POLL_INTERVAL)?;
        tracer.events.drain(|event| seen |= event.task.tgid == pid);
    }
    println!(
        "load and attach: {loaded:?} (offsets, BTF, verifier, attach); first event of a new process read after {:?}",
        start.elapsed()
    );
    Ok(())
}

/// Fills the ring buffer with the reader stalled, then times the drain.
fn measure_capacity() -> Result<()> {
    let mut tracer = Tracer::load(&TraceOptions::default())?;
    // Each creation sends one unshare and one exit event.
    let start = Instant::now();
    run_storm(STALLED_CREATIONS)?;
    let produced = start.elapsed();
    let lost = tracer.events.counters()?.lost_events;

    let start = Instant::now();
    let mut unshares = 0u64;
    let records = tracer.events.drain(|event| {
        if matches!(event.detail, Detail::Unshare { .. }) {
            unshares += 1;
        }
    });
    let drain = start.elapsed();
    println!(
        "stalled reader: {STALLED_CREATIONS} uts creations in {produced:?} ({:.0} events/s offered); \
         the 4 MiB ring buffer held {records} events ({unshares} unshares), {lost} were lost",
        2.0 * f64::from(STALLED_CREATIONS) / produced.as_secs_f64()
    );
    println!(
        "reader: decoded {records} buffered events in {drain:?} ({:.0} events/s)",
        records as f64 / drain.as_secs_f64()
    );
    Ok(())
}

/// Runs a storm from two threads while a reader drains, with a ring buffer
/// of `ring_bytes` and the default wakeup fraction (1/16).
fn measure_storm(ring_bytes: u32) -> Result<()> {
    let options = TraceOptions {
        ring_buffer_bytes: ring_bytes,
        wakeup_bytes: ring_bytes / 16,
        ..TraceOptions::default()
    };
    let mut tracer = Tracer::load(&options)?;

    let start = Instant::now();
    let workers: Vec<_> = (0..STORM_THREADS)
        .map(|_| thread::spawn(|| run_storm(STORM_CREATIONS / STORM_THREADS)))
        .collect();
    let mut records = 0u64;
    while !workers.iter().all(|worker| worker.is_finished()) {
        tracer.events.wait(POLL_INTERVAL)?;
        records += tracer.events.drain(|_| {}) as u64;
    }
    let elapsed = start.elapsed();
    for worker in workers {
        worker.join().expect("a storm thread panicked")?;
    }
    records += tracer.events.drain(|_| {}) as u64;

    let lost = tracer.events.counters()?.lost_events;
    println!(
        "storm with a draining reader, {} KiB ring buffer: {STORM_CREATIONS} uts creations in {elapsed:?}, \
         {records} events read ({:.0}/s), {lost} lost",
        ring_bytes / 1024,
        records as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

/// Runs `work` with the tracer attached and a reader thread that drains on
/// every wakeup and every [`POLL_INTERVAL`]. Returns the work's result and
/// the number of events read.
fn with_tracer<T>(skip_hooks: &[String], wakeup_bytes: u32, work: impl FnOnce() -> Result<T>) -> Result<(T, u64)> {
    let options = TraceOptions {
        skip_hooks: skip_hooks.to_vec(),
        wakeup_bytes,
        ..TraceOptions::default()
    };
    let mut tracer = Tracer::load(&options)?;

    let stop = Arc::new(AtomicBool::new(false));
    let drained = Arc::new(AtomicU64::new(0));
    let (stop_reader, drained_reader) = (stop.clone(), drained.clone());
    let reader = thread::spawn(move || -> Result<Tracer> {
        while !stop_reader.load(Ordering::Relaxed) {
            tracer.events.wait(POLL_INTERVAL)?;
            let count = tracer.events.drain(|_| {});
            drained_reader.fetch_add(count as u64, Ordering::Relaxed);
        }
        let count = tracer.events.drain(|_| {});
        drained_reader.fetch_add(count as u64, Ordering::Relaxed);
        Ok(tracer)
    });

    let result = work();
    stop.store(true, Ordering::Relaxed);
    let tracer = reader.join().expect("the reader thread panicked")?;
    let lost = tracer.events.counters()?.lost_events;
    if lost > 0 {
        println!("note: {lost} events were lost during the overhead loops");
    }
    Ok((result?, drained.load(Ordering::Relaxed)))
}

/// Returns nanoseconds per getppid call over [`NULL_SYSCALLS`] calls.
fn null_syscall_loop() -> f64 {
    let start = Instant::now();
    for _ in 0..NULL_SYSCALLS {
        // SAFETY: getppid has no preconditions.
        std::hint::black_box(unsafe { libc::getppid() });
    }
    start.elapsed().as_nanos() as f64 / NULL_SYSCALLS as f64
}

/// Returns microseconds per fork+exec+wait of /bin/true.
fn fork_exec_loop() -> Result<f64> {
    let start = Instant::now();
    for _ in 0..FORK_EXECS {
        let status = Command::new("/bin/true").stdin(Stdio::null()).status()?;
        if !status.success() {
            bail!("/bin/true failed with {status}");
        }
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(FORK_EXECS))
}

/// Body of one storm child: unshare a uts namespace and exit.
extern "C" fn unshare_uts(_arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: unshare has no memory-safety preconditions.
    let ret = unsafe { libc::unshare(libc::CLONE_NEWUTS) };
    if ret == 0 { 0 } else { 1 }
}

/// Creates `count` uts namespaces, each in a short-lived child cloned with
/// CLONE_VM | CLONE_VFORK on its own stack.
fn run_storm(count: u32) -> Result<()> {
    let mut stack = vec![0u8; 64 * 1024];
    let top = ((stack.as_mut_ptr() as usize + stack.len()) & !15) as *mut libc::c_void;
    for _ in 0..count {
        // SAFETY: the child runs unshare_uts on its own stack while this
        // thread is suspended (CLONE_VFORK); it touches no shared state.
        let child = unsafe {
            libc::clone(
                unshare_uts,
                top,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                std::ptr::null_mut(),
            )
        };
        if child < 0 {
            bail!("clone failed: {}", std::io::Error::last_os_error());
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        if unsafe { libc::waitpid(child, &mut status, 0) } != child || status != 0 {
            bail!("storm child {child} failed (wait status {status})");
        }
    }
    drop(stack);
    Ok(())
}
