//! Storms of namespace creations: how many events per second
//! `listns --follow --json` delivers, whether it loses any, and its memory.

use std::collections::HashSet;
use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::events::parse_event;
use super::overhead::parse_load_output;
use super::process::{Background, Line};
use super::tracers::{self, ListnsOutput};
use super::{Programs, Settings};
use crate::bench::interrupt;

/// Time the storm gets after the helper exits for its events to arrive, when
/// not all of them have arrived and no output is coming.
const STORM_QUIET: Duration = Duration::from_secs(3);
/// Maximum time the benchmark waits for listns to catch up after a storm.
const STORM_CATCH_UP: Duration = Duration::from_secs(300);

/// System call by which the storm helper starts its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StormMode {
    Fork,
    /// vfork skips copying the page tables, so it offers events several times as fast.
    Vfork,
}

impl StormMode {
    pub const ALL: [StormMode; 2] = [StormMode::Fork, StormMode::Vfork];

    pub fn label(self) -> &'static str {
        match self {
            StormMode::Fork => "fork",
            StormMode::Vfork => "vfork",
        }
    }

    /// Returns the mode argument of `trace_load`.
    fn helper_mode(self) -> &'static str {
        match self {
            StormMode::Fork => "storm",
            StormMode::Vfork => "vstorm",
        }
    }
}

/// One storm of namespace creations followed by listns.
#[derive(Debug, Clone, Copy)]
pub struct StormRun {
    pub mode: StormMode,
    pub creations: u32,
    /// The helper's own time for all its creations.
    pub helper_elapsed: Duration,
    /// `created` events of uts namespaces whose task's parent is the helper.
    pub created: u64,
    /// Distinct uts namespaces (by namespace id) named in any event after the
    /// helper started. Every creation should show up in a `created` and a
    /// `destroyed` event, so this counts the creations that listns reported at all.
    pub uts_namespaces: u64,
    /// From the helper's start to the arrival of the last event that named a new uts namespace.
    pub last_uts: Option<Duration>,
    /// All events that arrived after the helper started.
    pub events: u64,
    /// From the helper's start to the arrival of the last event.
    pub last_event: Option<Duration>,
    /// `lost` events, and the sum of their counts of dropped kernel events.
    pub lost_events: u64,
    pub lost_count: u64,
    /// VmHWM of listns once it was ready, before the storm, in KiB.
    pub vm_hwm_ready_kib: u64,
    /// VmHWM and VmRSS of listns after the storm, in KiB.
    pub vm_hwm_kib: u64,
    pub vm_rss_kib: u64,
}

/// Runs `runs` storms of each [`StormMode`], each against a new `listns --follow --json`.
pub fn measure_storms(programs: &Programs<'_>, settings: &Settings) -> Result<Vec<StormRun>> {
    let mut storms = Vec::new();
    for mode in StormMode::ALL {
        for run in 1..=settings.runs {
            eprintln!(
                "xtask bench: {} storm {run} of {}, {} uts namespaces from {} threads",
                mode.label(),
                settings.runs,
                settings.storm,
                settings.storm_threads
            );
            storms.push(measure_storm(programs, settings, mode)?);
        }
    }
    Ok(storms)
}

fn measure_storm(programs: &Programs<'_>, settings: &Settings, mode: StormMode) -> Result<StormRun> {
    let mut follower = tracers::start_listns(programs.listns, ListnsOutput::Piped)?;
    let (vm_hwm_ready_kib, _) = read_memory(follower.process.pid())?;

    let started = Instant::now();
    let child = Command::new(programs.load)
        .args([
            mode.helper_mode(),
            &settings.storm.to_string(),
            &settings.storm_threads.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start {} {}", programs.load.display(), mode.helper_mode()))?;
    let mut helper = Background::new("trace_load storm", child)?;
    let helper_pid = helper.pid();

    // Counting by substring keeps this loop cheap while the storm runs; the
    // lines are parsed properly afterwards. Each creation should end in one
    // `destroyed` event of a uts namespace, with or without a task.
    let destroyed_pattern = "\"event\":\"destroyed\"";
    let uts_pattern = "\"ns\":{\"type\":\"uts\"";
    let mut lines: Vec<Line> = Vec::new();
    let mut destroyed_seen = 0u64;
    let mut helper_done: Option<Instant> = None;
    let mut last_line = started;
    loop {
        interrupt::check()?;
        if helper_done.is_none() && helper.try_status()?.is_some() {
            helper_done = Some(Instant::now());
        }
        let stdout = follower.process.stdout.as_ref().expect("stdout is piped");
        match stdout.next_line(Duration::from_millis(100)) {
            Ok(Some(line)) => {
                if line.text.contains(destroyed_pattern) && line.text.contains(uts_pattern) {
                    destroyed_seen += 1;
                }
                last_line = line.at;
                lines.push(line);
            }
            Ok(None) => {}
            Err(_) => return Err(follower.process.ended_early("the events of the storm")),
        }
        if let Some(done) = helper_done {
            let now = Instant::now();
            let quiet = now - last_line.max(done) >= STORM_QUIET;
            if destroyed_seen >= u64::from(settings.storm) || quiet || now - done >= STORM_CATCH_UP {
                break;
            }
        }
    }

    let (vm_hwm_kib, vm_rss_kib) = read_memory(follower.process.pid())?;
    follower.process.stop()?;
    let helper_elapsed = storm_helper_elapsed(&mut helper)?;

    let mut storm = StormRun {
        mode,
        creations: settings.storm,
        helper_elapsed,
        created: 0,
        uts_namespaces: 0,
        last_uts: None,
        events: 0,
        last_event: None,
        lost_events: 0,
        lost_count: 0,
        vm_hwm_ready_kib,
        vm_hwm_kib,
        vm_rss_kib,
    };
    count_events(&mut storm, &lines, started, helper_pid);
    Ok(storm)
}

/// Adds up the events of `lines` that arrived after `started`.
fn count_events(storm: &mut StormRun, lines: &[Line], started: Instant, helper_pid: u32) {
    let mut uts_ids = HashSet::new();
    for line in lines.iter().filter(|line| line.at >= started) {
        let Some(event) = parse_event(&line.text) else {
            continue;
        };
        let since_start = line.at - started;
        storm.events += 1;
        storm.last_event = Some(since_start);
        let is_uts = event.ns_type.as_deref() == Some("uts");
        if event.kind == "created" && is_uts && event.ppid == Some(helper_pid) {
            storm.created += 1;
        }
        if is_uts
            && let Some(id) = event.ns_id
            && uts_ids.insert(id)
        {
            storm.last_uts = Some(since_start);
        }
        if event.kind == "lost" {
            storm.lost_events += 1;
            storm.lost_count += event.count.unwrap_or(0);
        }
    }
    storm.uts_namespaces = uts_ids.len() as u64;
}

/// Reaps the storm helper and returns the time it printed.
fn storm_helper_elapsed(helper: &mut Background) -> Result<Duration> {
    let mut elapsed = None;
    if let Some(stdout) = &helper.stdout {
        while let Ok(Some(line)) = stdout.next_line(Duration::from_secs(1)) {
            elapsed = parse_load_output(&line.text).map(|(wall, _)| wall).or(elapsed);
        }
    }
    let status = helper.stop()?;
    if !status.success() {
        let stderr = helper.stderr.as_ref().map(|stderr| stderr.tail()).unwrap_or_default();
        bail!("the storm helper failed ({status}): {stderr}");
    }
    elapsed
        .map(Duration::from_nanos)
        .context("the storm helper exited without printing its elapsed time")
}

/// Returns VmHWM and VmRSS of `pid` in KiB, from /proc/PID/status.
fn read_memory(pid: u32) -> Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("failed to read {path}"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("{path} has no {name} line in kB"))
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}
