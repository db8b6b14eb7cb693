//! Attaches every live-tracing hook and prints the raw kernel events as text,
//! one per line, for checking the eBPF side by hand. Needs root.
//!
//! Usage: trace_events [SECONDS]
//! Runs until Ctrl-C, or for SECONDS. At the end it prints the in-kernel
//! counters (lost events, failed reads) to stderr.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use listns::trace::{BootClock, Event, POLL_INTERVAL, TraceOptions, Tracer};
use tokio::io::unix::AsyncFd;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let limit = match std::env::args().nth(1) {
        Some(arg) => {
            Some(Duration::from_secs(arg.parse().with_context(|| {
                format!("invalid SECONDS {arg:?}: expected a whole number")
            })?))
        }
        None => None,
    };

    let tracer = Tracer::load(&TraceOptions::default())?;
    eprintln!("loaded and attached in {:?}", tracer.load_time);
    for status in &tracer.hooks {
        match status.targets() {
            Some(targets) => eprintln!("hook {:<10} attached: {targets}", status.hook.name),
            None => eprintln!(
                "hook {:<10} NOT attached: {}",
                status.hook.name,
                status.failures.join("; ")
            ),
        }
    }

    let clock = BootClock::new();
    let start = Instant::now();
    // SAFETY: EventReader owns the ring buffer's fd and neither closes nor
    // replaces it while registered with the AsyncFd.
    let mut reader =
        unsafe { AsyncFd::register(tracer.events) }.context("cannot register the ring buffer with tokio")?;
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    let print = |event: Event| {
        let wall = humantime::format_rfc3339_nanos(clock.to_system_time(event.boot_ns));
        println!("{wall} {event}");
    };
    loop {
        let remaining = match limit {
            Some(limit) => match limit.checked_sub(start.elapsed()) {
                Some(remaining) => remaining,
                None => break,
            },
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(remaining) => break,
            // Records below the wakeup threshold make the fd readable only
            // once enough have gathered: drain on a timer as well.
            _ = poll.tick() => {
                reader.get_mut().drain(print);
            }
            guard = reader.readable_mut() => {
                let mut guard = guard.context("waiting for the ring buffer failed")?;
                guard.get_inner_mut().drain(print);
                guard.clear_ready();
            }
        }
    }
    reader.get_mut().drain(print);
    let counters = reader.get_ref().counters()?;
    eprintln!(
        "lost events: {}, calls without room in the pending map: {}, events with failed reads: {}",
        counters.lost_events, counters.pending_map_full, counters.read_failed
    );
    Ok(())
}
