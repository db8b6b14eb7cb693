//! `--follow`: the snapshot, then every namespace change as it happens.
//!
//! Kernel events come from the eBPF programs of [`crate::trace`]; where they
//! cannot be loaded, the polling backend diffs snapshots instead and says so.

pub mod event;
pub mod output;
pub mod state;

use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use self::event::Event;
use self::output::Sink;
use self::state::{LiveState, PINNED_RECHECK};
use crate::inventory::{self, Inventory};

/// How `--follow` learns about changes.
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
    pub json: bool,
    pub interval: Duration,
    pub log: Option<std::fs::File>,
}

/// Why following stopped.
pub enum Stop {
    /// SIGINT or SIGTERM.
    Signal,
    /// The reader of stdout went away (`listns --follow | head`).
    ClosedOutput,
}

/// Follows namespace changes until a signal arrives or stdout closes.
/// `write_snapshot` prints the initial inventory in the chosen layout.
pub async fn run(
    options: FollowOptions,
    inventory: Inventory,
    write_snapshot: impl FnOnce(&mut dyn Write, &Inventory) -> io::Result<()>,
) -> anyhow::Result<Stop> {
    let stdout = io::stdout();
    let mut sink = Sink::new(stdout.lock(), options.json, options.log);
    if let Err(err) = write_snapshot(sink.out(), &inventory).and_then(|()| sink.out().flush()) {
        return closed_or(err);
    }
    let mut state = LiveState::from_inventory(&inventory);
    drop(inventory);

    let backend = match options.backend {
        Backend::Poll => Backend::Poll,
        Backend::Ebpf => anyhow::bail!(
            "the eBPF backend is not available in this build; run with --backend poll to follow by polling"
        ),
        Backend::Auto => {
            log::warn!(
                "eBPF tracing is not available in this build: following by polling every {:?}",
                options.interval
            );
            Backend::Poll
        }
    };
    debug_assert_eq!(backend, Backend::Poll);
    eprintln!(
        "listns: following namespace changes by polling every {:?} (Ctrl-C to stop)",
        options.interval
    );

    let mut sigint = signal(SignalKind::interrupt()).context("failed to install the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("failed to install the SIGTERM handler")?;
    let mut poll = tokio::time::interval(options.interval);
    poll.tick().await;
    let mut recheck = tokio::time::interval(PINNED_RECHECK);
    let mut events: Vec<Event> = Vec::new();
    loop {
        let next_check = state.next_check().map(tokio::time::Instant::from_std);
        tokio::select! {
            _ = sigint.recv() => return Ok(Stop::Signal),
            _ = sigterm.recv() => return Ok(Stop::Signal),
            _ = poll.tick() => {
                let snapshot = tokio::task::spawn_blocking(inventory::scan).await.context("scan task failed")??;
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
