//! Overhead of the tracers on a fork/exec loop and a getppid loop: wall and
//! CPU time per operation of the workload, and CPU time of the tracer itself.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::process::Background;
use super::report::Conditions;
use super::tracers::{self, ListnsOutput};
use super::{Programs, Settings};
use crate::bench::interrupt;

/// Maximum time an overhead run waits for other processes' eBPF programs to
/// go, because their tracepoints would slow down the runs without a tracer too.
const OTHER_BPF_WAIT: Duration = Duration::from_secs(120);

/// Tracer that runs beside the overhead workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracer {
    None,
    Listns,
    Bpftrace,
}

impl Tracer {
    pub const ALL: [Tracer; 3] = [Tracer::None, Tracer::Listns, Tracer::Bpftrace];

    pub fn label(self) -> &'static str {
        match self {
            Tracer::None => "no tracer",
            Tracer::Listns => "listns --follow --json",
            Tracer::Bpftrace => "bpftrace hooks.bt",
        }
    }
}

/// A loop of `trace_load.c` whose time per operation the tracers change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    ForkExec,
    Getppid,
}

impl Workload {
    pub const ALL: [Workload; 2] = [Workload::ForkExec, Workload::Getppid];

    /// Returns the mode argument of `trace_load`.
    fn mode(self) -> &'static str {
        match self {
            Workload::ForkExec => "forkexec",
            Workload::Getppid => "getppid",
        }
    }
}

/// Times per operation of one workload run, in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct OverheadSample {
    pub tracer: Tracer,
    pub workload: Workload,
    pub wall: f64,
    /// User plus system CPU time of the workload and its children.
    pub cpu: f64,
    /// User plus system CPU time of the tracer process while the workload ran
    /// (None without a tracer). The kernel counts it in clock ticks (10 ms at USER_HZ 100).
    pub tracer_cpu: Option<f64>,
}

/// Load and other eBPF programs around one overhead run.
pub struct RunConditions {
    pub start: Conditions,
    /// Time spent waiting for other eBPF programs to go before the run.
    pub waited: Duration,
    pub end: Conditions,
}

/// Runs both workloads `runs` times under each tracer. Within a run the
/// tracers take turns, starting with a different one each run, so that drift
/// in the machine's load spreads over all of them.
pub fn measure_overhead(
    programs: &Programs<'_>,
    settings: &Settings,
) -> Result<(Vec<OverheadSample>, Vec<RunConditions>)> {
    eprintln!("xtask bench: warm-up run of the workloads");
    for workload in Workload::ALL {
        run_workload(programs.load, workload, settings.operations(workload))?;
    }

    let mut samples = Vec::new();
    let mut conditions = Vec::new();
    for run in 0..settings.runs {
        let (start, waited) = wait_for_other_bpf_to_end()?;
        for turn in 0..Tracer::ALL.len() {
            let tracer = Tracer::ALL[(run as usize + turn) % Tracer::ALL.len()];
            eprintln!(
                "xtask bench: overhead run {} of {}, {}",
                run + 1,
                settings.runs,
                tracer.label()
            );
            let mut process = match tracer {
                Tracer::None => None,
                Tracer::Listns => Some(tracers::start_listns(programs.listns, ListnsOutput::DevNull)?.process),
                Tracer::Bpftrace => Some(tracers::start_bpftrace(programs.bpftrace, programs.bpftrace_output)?),
            };
            for workload in Workload::ALL {
                samples.push(measure_workload(
                    programs.load,
                    settings,
                    tracer,
                    workload,
                    process.as_ref(),
                )?);
            }
            if let Some(process) = &mut process {
                // A tracer that died during the loop would make its figures those of no tracer.
                if process.try_status()?.is_some() {
                    return Err(process.ended_early("the end of the workloads"));
                }
                process.stop()?;
            }
        }
        conditions.push(RunConditions {
            start,
            waited,
            end: Conditions::observe(),
        });
    }
    Ok((samples, conditions))
}

fn measure_workload(
    load: &Path,
    settings: &Settings,
    tracer: Tracer,
    workload: Workload,
    process: Option<&Background>,
) -> Result<OverheadSample> {
    let operations = settings.operations(workload);
    let cpu_before = process.map(|process| process_cpu_ns(process.pid())).transpose()?;
    let (wall_ns, cpu_ns) = run_workload(load, workload, operations)?;
    let tracer_cpu = match (process, cpu_before) {
        (Some(process), Some(before)) => Some((process_cpu_ns(process.pid())? - before) as f64 / operations as f64),
        _ => None,
    };
    Ok(OverheadSample {
        tracer,
        workload,
        wall: wall_ns as f64 / operations as f64,
        cpu: cpu_ns as f64 / operations as f64,
        tracer_cpu,
    })
}

/// Runs one workload of `trace_load` and returns its wall and CPU time in nanoseconds.
fn run_workload(load: &Path, workload: Workload, operations: u64) -> Result<(u64, u64)> {
    let output = Command::new(load)
        .args([workload.mode(), &operations.to_string()])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to start {}", load.display()))?;
    interrupt::check()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "`{} {} {operations}` failed ({}): {}",
            load.display(),
            workload.mode(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    parse_load_output(&stdout)
        .with_context(|| format!("unexpected output of `trace_load {}`: {stdout:?}", workload.mode()))
}

/// Parses the line "WALL_NS CPU_NS" of `trace_load`.
pub fn parse_load_output(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_whitespace();
    let wall = fields.next()?.parse().ok()?;
    let cpu = fields.next()?.parse().ok()?;
    Some((wall, cpu))
}

/// Returns the user plus system CPU time of process `pid` and its ended
/// threads, from /proc/PID/stat, in nanoseconds.
fn process_cpu_ns(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("failed to read {path}"))?;
    let ticks = parse_stat_cpu_ticks(&stat).with_context(|| format!("unexpected format of {path}: {stat:?}"))?;
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks_per_second <= 0 {
        bail!("sysconf(_SC_CLK_TCK) failed");
    }
    Ok(ticks * 1_000_000_000 / ticks_per_second as u64)
}

/// Returns utime plus stime (fields 14 and 15 of proc_pid_stat(5)), in clock ticks.
fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces and parentheses; fields after it start at its last ')'.
    let (_, after_comm) = stat.rsplit_once(')')?;
    let mut fields = after_comm.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Waits up to [`OTHER_BPF_WAIT`] until no other process has eBPF programs
/// open, and returns the conditions it found last and the time it waited.
fn wait_for_other_bpf_to_end() -> Result<(Conditions, Duration)> {
    let start = Instant::now();
    let mut reported = false;
    loop {
        let conditions = Conditions::observe();
        let waited = start.elapsed();
        if !conditions.has_bpf_holders() || waited >= OTHER_BPF_WAIT {
            return Ok((conditions, waited));
        }
        if !reported {
            reported = true;
            eprintln!(
                "xtask bench: waiting up to {OTHER_BPF_WAIT:?} for eBPF programs of other processes to go: {}",
                conditions.describe_bpf_holders()
            );
        }
        interrupt::check()?;
        thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_ticks_after_odd_comm() {
        let stat = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 99 1000 50";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(12));
    }

    #[test]
    fn stat_cpu_ticks_rejects_short_line() {
        assert_eq!(parse_stat_cpu_ticks("4242 (x) S 1 2"), None);
    }

    #[test]
    fn load_output_parses() {
        assert_eq!(parse_load_output("1500 900\n"), Some((1500, 900)));
        assert_eq!(parse_load_output("1500\n"), None);
    }
}
