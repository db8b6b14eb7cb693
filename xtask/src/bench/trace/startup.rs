//! Time from the start of `listns --follow --json` to its readiness line and
//! to its first event.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::Programs;
use super::events::parse_event;
use super::tracers::{self, Follower, ListnsOutput};
use crate::bench::interrupt;

/// Maximum time the benchmark waits for the event of `unshare -u true`.
const FIRST_EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// One start of `listns --follow --json` up to its first event.
#[derive(Debug, Clone, Copy)]
pub struct StartupRun {
    /// From just before the spawn to the readiness line.
    pub ready: Duration,
    /// From just before the spawn to the arrival of the created event of `unshare -u true`.
    pub first_event: Duration,
    /// From just before `unshare -u true` starts to the arrival of its event.
    pub trigger_to_event: Duration,
}

/// Starts `listns --follow --json` `runs` times; each time, as soon as it is
/// ready, runs `unshare -u true` and waits for the created event of that PID.
pub fn measure_startups(programs: &Programs<'_>, runs: u32) -> Result<Vec<StartupRun>> {
    let mut startups = Vec::new();
    for run in 1..=runs {
        eprintln!("xtask bench: start-up run {run} of {runs}");
        let mut follower = tracers::start_listns(programs.listns, ListnsOutput::Piped)?;

        let trigger_start = Instant::now();
        let mut trigger = Command::new(programs.unshare)
            .args(["-u", "true"])
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("failed to start {} -u true", programs.unshare.display()))?;
        let trigger_pid = trigger.id();
        let status = trigger.wait().context("failed to wait for `unshare -u true`")?;
        if !status.success() {
            bail!("`unshare -u true` failed ({status})");
        }

        let arrival = wait_for_created_uts(&mut follower, trigger_pid)?;
        startups.push(StartupRun {
            ready: follower.ready - follower.started,
            first_event: arrival - follower.started,
            trigger_to_event: arrival - trigger_start,
        });
        follower.process.stop()?;
    }
    Ok(startups)
}

/// Reads the events of `follower` until the created event of a uts
/// namespace by `pid` arrives, and returns its arrival time.
fn wait_for_created_uts(follower: &mut Follower, pid: u32) -> Result<Instant> {
    let deadline = Instant::now() + FIRST_EVENT_TIMEOUT;
    loop {
        interrupt::check()?;
        let Some(timeout) = deadline.checked_duration_since(Instant::now()) else {
            bail!(
                "listns --follow --json reported no created uts namespace of PID {pid} within {FIRST_EVENT_TIMEOUT:?}"
            );
        };
        let stdout = follower.process.stdout.as_ref().expect("stdout is piped");
        let line = match stdout.next_line(timeout.min(Duration::from_millis(100))) {
            Ok(Some(line)) => line,
            Ok(None) => continue,
            Err(_) => return Err(follower.process.ended_early("the event of `unshare -u true`")),
        };
        if let Some(event) = parse_event(&line.text)
            && event.kind == "created"
            && event.ns_type.as_deref() == Some("uts")
            && event.pid == Some(pid)
        {
            return Ok(line.at);
        }
    }
}
