//! `--follow`: the snapshot, then every namespace change as it happens.
//!
//! Kernel events come from the eBPF programs of [`crate::trace`]; where they
//! cannot be loaded, the polling backend diffs snapshots instead and prints that it does.

pub mod event;
pub mod kernel;
pub mod output;
pub mod state;

use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use self::event::Event;
use self::output::Sink;
use self::state::{LiveState, PINNED_RECHECK};
use crate::inventory::{self, Inventory, Route};
use crate::trace::{BootClock, Counters, EventReader, POLL_INTERVAL, TraceOptions, Tracer};

/// Source of the changes that `--follow` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// eBPF where the kernel and privileges allow it, else polling.
    Auto,
    /// eBPF tracepoints only; fail with the reason if they cannot load.
    Ebpf,
    /// Snapshots at an interval, reporting their differences.
    Poll,
}

/// Settings of a `--follow` run.
pub struct FollowOptions {
    pub backend: Backend,
    /// Route of the initial snapshot, of rescans after lost events and of polls.
    pub route: Route,
    pub json: bool,
    pub interval: Duration,
    pub log: Option<std::fs::File>,
}

/// Reason following stopped.
pub enum Stop {
    /// SIGINT or SIGTERM.
    Signal,
    /// The reader of stdout went away (`listns --follow | head`).
    ClosedOutput,
}

/// Follows namespace changes until a signal arrives or stdout closes.
/// `write_snapshot` prints the initial inventory in the chosen layout.
///
/// The tracer is attached before the snapshot is taken, so no change falls
/// between the two. Events from before the snapshot change nothing, because
/// the state already shows their result.
pub async fn run(
    options: FollowOptions,
    write_snapshot: impl FnOnce(&mut dyn Write, &Inventory) -> io::Result<()>,
) -> anyhow::Result<Stop> {
    // Why `auto` polls, for the start-up line.
    let mut no_ebpf = None;
    let tracer = match options.backend {
        Backend::Poll => None,
        Backend::Ebpf => Some(
            load_tracer().context("the eBPF backend could not start; run with --backend poll to follow by polling")?,
        ),
        Backend::Auto => match load_tracer() {
            Ok(tracer) => Some(tracer),
            Err(err) => {
                no_ebpf = Some(format!("{err:#}"));
                None
            }
        },
    };

    let route = options.route;
    let inventory = tokio::task::spawn_blocking(move || inventory::scan_with(route))
        .await
        .context("scan task failed")??;
    crate::render::report_problems(&inventory);
    let stdout = io::stdout();
    let mut sink = Sink::new(stdout.lock(), options.json, options.log);
    if let Err(err) = write_snapshot(sink.out(), &inventory).and_then(|()| sink.out().flush()) {
        return closed_or(err);
    }
    let mut state = LiveState::from_inventory(&inventory);
    drop(inventory);

    match tracer {
        Some(tracer) => {
            eprintln!("listns: following namespace changes through eBPF (Ctrl-C to stop)");
            follow_kernel(tracer, route, state, sink).await
        }
        None => {
            if let Some(reason) = no_ebpf {
                eprintln!("listns: eBPF tracing is not available: {reason}");
            }
            eprintln!(
                "listns: following namespace changes by polling every {:?} (Ctrl-C to stop)",
                options.interval
            );
            follow_poll(options.interval, route, &mut state, sink).await
        }
    }
}

/// Loads the eBPF programs and logs which hooks attached.
fn load_tracer() -> anyhow::Result<Tracer> {
    if !crate::trace::load::may_load_bpf() {
        anyhow::bail!(
            "loading eBPF programs needs root (CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON); run `sudo listns --follow`"
        );
    }
    let tracer = Tracer::load(&TraceOptions::default())?;
    log::info!("eBPF programs loaded and attached in {:?}", tracer.load_time);
    for status in &tracer.hooks {
        match status.targets() {
            Some(targets) => {
                log::info!("hook {} attached: {targets}", status.hook.name);
                for failure in &status.failures {
                    log::info!("hook {}: a better attachment failed: {failure}", status.hook.name);
                }
            }
            None => log::log!(
                crate::trace::load::missing_level(status.hook),
                "hook {} not attached, so {}: {}",
                status.hook.name,
                status.hook.without,
                status.failures.join("; ")
            ),
        }
    }
    Ok(tracer)
}

/// The signals that end `--follow`.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("failed to install the SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("failed to install the SIGTERM handler")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Follows through the eBPF programs: kernel events, loss counting and
/// rescans, liveness checks.
async fn follow_kernel<W: Write>(
    tracer: Tracer,
    route: Route,
    mut state: LiveState,
    mut sink: Sink<W>,
) -> anyhow::Result<Stop> {
    let mut signals = Signals::new()?;
    let clock = BootClock::new();
    state.set_free_hook(tracer.hook_attached("ns_free"));
    // SAFETY: EventReader owns the ring buffer's fd and neither closes nor
    // replaces it while registered with the AsyncFd.
    let mut reader = unsafe { tokio::io::unix::AsyncFd::register(tracer.events) }
        .context("cannot register the ring buffer with tokio")?;
    let mut drain_timer = tokio::time::interval(POLL_INTERVAL);
    let mut recheck = tokio::time::interval(PINNED_RECHECK);
    let mut events: Vec<Event> = Vec::new();
    let mut seen = Counters::default();
    loop {
        let next_check = state.next_check().map(tokio::time::Instant::from_std);
        let mut stop = false;
        tokio::select! {
            _ = signals.recv() => stop = true,
            // Records below the wakeup threshold make the fd readable only
            // once enough have gathered, so drain on a timer as well.
            _ = drain_timer.tick() => {
                drain(reader.get_mut(), &clock, &mut state, &mut events);
                seen = check_lost(reader.get_ref(), route, seen, &mut state, &mut events).await?;
            }
            guard = reader.readable_mut() => {
                let mut guard = guard.context("waiting for the ring buffer failed")?;
                drain(guard.get_inner_mut(), &clock, &mut state, &mut events);
                guard.clear_ready();
            }
            _ = recheck.tick() => {
                state.recheck_pinned(&mut events);
                state.log_free_counts();
            }
            _ = sleep_until(next_check) => state.run_checks(Instant::now(), &mut events),
        }
        if stop {
            // Everything the kernel reported before the signal is written.
            drain(reader.get_mut(), &clock, &mut state, &mut events);
        }
        if state.mounts_dirty() {
            state.refresh_mounts(&mut events);
        }
        for event in events.drain(..) {
            if let Err(err) = sink.write(&event) {
                return closed_or(err);
            }
        }
        if stop {
            return Ok(Stop::Signal);
        }
    }
}

/// Applies every event in the ring buffer to the state.
fn drain(reader: &mut EventReader, clock: &BootClock, state: &mut LiveState, events: &mut Vec<Event>) {
    reader.drain(|raw| {
        if let Some(change) = kernel::convert(&raw, clock) {
            state.apply(change, events);
        }
    });
}

/// Compares the kernel's counters with the last ones seen. On a loss, it
/// reports the loss and repairs the state with a rescan.
async fn check_lost(
    reader: &EventReader,
    route: Route,
    seen: Counters,
    state: &mut LiveState,
    events: &mut Vec<Event>,
) -> anyhow::Result<Counters> {
    let counters = match reader.counters() {
        Ok(counters) => counters,
        Err(err) => {
            log::warn!("reading the lost-event counters failed: {err}");
            return Ok(seen);
        }
    };
    let unread = counters.read_failed.saturating_sub(seen.read_failed);
    if unread > 0 {
        log::warn!("{unread} kernel events have zeros in fields that the eBPF programs failed to read");
    }
    // A system call whose arguments found no room in the pending map is
    // lost as surely as a dropped record.
    let ring_full = counters.lost_events.saturating_sub(seen.lost_events);
    let map_full = counters.pending_map_full.saturating_sub(seen.pending_map_full);
    if ring_full + map_full == 0 {
        return Ok(counters);
    }
    log::warn!(
        "the kernel dropped {} events ({ring_full} found the ring buffer full, {map_full} system calls found \
         no room in the map of calls in flight); rescanning",
        ring_full + map_full
    );
    let mut event = Event::new(event::EventKind::Lost, event::Origin::Kernel, None);
    event.count = Some(ring_full + map_full);
    events.push(event);
    let snapshot = tokio::task::spawn_blocking(move || inventory::scan_with(route))
        .await
        .context("scan task failed")??;
    let before = events.len();
    state.resync(&snapshot, event::Origin::Rescan, events);
    log::info!("the rescan found {} differences", events.len() - before);
    Ok(counters)
}

/// Follows by polling: a snapshot every `interval`, reporting differences.
async fn follow_poll<W: Write>(
    interval: Duration,
    route: Route,
    state: &mut LiveState,
    mut sink: Sink<W>,
) -> anyhow::Result<Stop> {
    let mut signals = Signals::new()?;
    let mut poll = tokio::time::interval(interval);
    poll.tick().await;
    let mut recheck = tokio::time::interval(PINNED_RECHECK);
    let mut events: Vec<Event> = Vec::new();
    loop {
        let next_check = state.next_check().map(tokio::time::Instant::from_std);
        tokio::select! {
            _ = signals.recv() => return Ok(Stop::Signal),
            _ = poll.tick() => {
                let snapshot = tokio::task::spawn_blocking(move || inventory::scan_with(route)).await.context("scan task failed")??;
                state.resync(&snapshot, event::Origin::Poll, &mut events);
            }
            _ = recheck.tick() => state.recheck_pinned(&mut events),
            _ = sleep_until(next_check) => state.run_checks(Instant::now(), &mut events),
        }
        for event in events.drain(..) {
            if let Err(err) = sink.write(&event) {
                return closed_or(err);
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn closed_or(err: io::Error) -> anyhow::Result<Stop> {
    if err.kind() == io::ErrorKind::BrokenPipe {
        Ok(Stop::ClosedOutput)
    } else {
        Err(anyhow::Error::new(err).context("failed to write an event"))
    }
}
