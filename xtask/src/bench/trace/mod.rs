//! `cargo xtask bench --trace`: measures `listns --follow`, the live tracer.
//!
//! - Overhead of the attached hooks on a fork/exec loop and a getppid loop,
//!   with no tracer, with `listns --follow --json > /dev/null` and with
//!   bpftrace on the same tracepoints (`hooks.bt`), in turn within each run.
//! - Events per second and loss while children of one helper create
//!   100,000 uts namespaces (once with fork, once with vfork), with listns
//!   writing into a pipe that xtask reads.
//! - Time from the start of listns to its readiness line and to the arrival
//!   of the first event (`unshare -u true`).
//! - Peak RSS (VmHWM) of listns before and after each storm.
//!
//! The workloads are `trace_load.c`, built with `cc -O2` at bench time.

mod events;
mod overhead;
mod process;
mod report;
mod startup;
mod storm;
mod tracers;

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::bench::interrupt;
use crate::{cargo, setup, system};
use overhead::{OverheadSample, RunConditions, Workload};
use report::Conditions;
use startup::StartupRun;
use storm::StormRun;

/// Options of `cargo xtask bench --trace`; `--runs` of `bench` sets the runs of each measurement.
#[derive(Debug, clap::Args)]
// The snapshot benchmark's options are a group named "Options" already.
#[group(id = "TraceOptions")]
pub struct Options {
    /// Measure the live tracer (`listns --follow`) instead of the snapshot:
    /// overhead against bpftrace, events per second, time to the first event,
    /// RSS. --runs sets the runs of each measurement.
    #[arg(long = "trace", id = "trace", conflicts_with = "tasks")]
    pub enabled: bool,

    /// fork+exec+wait iterations of /bin/true per run, with --trace.
    #[arg(long, value_name = "N", default_value_t = 2000, requires = "trace",
          value_parser = clap::value_parser!(u32).range(1..))]
    fork_execs: u32,

    /// getppid calls per run, with --trace.
    #[arg(long, value_name = "N", default_value_t = 10_000_000, requires = "trace",
          value_parser = clap::value_parser!(u64).range(1..))]
    getppid_calls: u64,

    /// uts namespaces created per storm, with --trace.
    #[arg(long, value_name = "N", default_value_t = 100_000, requires = "trace",
          value_parser = clap::value_parser!(u32).range(1..))]
    storm: u32,

    /// Threads of the storm helper that start the children, with --trace [default: number of CPUs].
    #[arg(long, value_name = "N", requires = "trace",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    storm_threads: Option<u32>,
}

/// Everything one `cargo xtask bench --trace` measured.
pub struct Results {
    pub overhead: Vec<OverheadSample>,
    /// Load and other eBPF programs around each overhead run.
    pub overhead_conditions: Vec<RunConditions>,
    pub startups: Vec<StartupRun>,
    pub storms: Vec<StormRun>,
}

/// The settings of one benchmark run after defaults are filled in.
pub struct Settings {
    pub runs: u32,
    pub fork_execs: u32,
    pub getppid_calls: u64,
    pub storm: u32,
    pub storm_threads: u32,
}

impl Settings {
    /// Returns the command line that repeats this benchmark, with every option spelled out.
    pub fn command_line(&self) -> String {
        format!(
            "cargo xtask bench --trace --runs {} --fork-execs {} --getppid-calls {} --storm {} --storm-threads {}",
            self.runs, self.fork_execs, self.getppid_calls, self.storm, self.storm_threads
        )
    }

    fn operations(&self, workload: Workload) -> u64 {
        match workload {
            Workload::ForkExec => u64::from(self.fork_execs),
            Workload::Getppid => self.getppid_calls,
        }
    }
}

/// Programs the measurements run.
struct Programs<'a> {
    listns: &'a Path,
    bpftrace: &'a Path,
    unshare: &'a Path,
    load: &'a Path,
    /// File that bpftrace writes its output to.
    bpftrace_output: &'a Path,
}

/// Runs the tracer benchmark and prints the results as Markdown on stdout, progress on stderr.
pub fn run(options: &Options, runs: u32) -> Result<()> {
    if !system::is_root() {
        bail!("the tracer benchmark loads eBPF programs and needs root: rerun `cargo xtask bench --trace` as root");
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let settings = Settings {
        runs,
        fork_execs: options.fork_execs,
        getppid_calls: options.getppid_calls,
        storm: options.storm,
        storm_threads: options.storm_threads.unwrap_or(cpus),
    };

    setup::run(setup::Verbosity::Quiet)?;
    let unshare = system::find_command("unshare").context("unshare not found: run `cargo xtask setup`")?;
    let bpftrace = tracers::find_or_install_bpftrace()?;
    tracers::check_bpftrace_probes(&bpftrace)?;
    let listns = cargo::build_listns_release()?;
    let load = super::compile_c("trace_load")?;
    let bpftrace_output = cargo::target_dir()?.join("xtask/bpftrace-hooks.out");
    let programs = Programs {
        listns: &listns,
        bpftrace: &bpftrace,
        unshare: &unshare,
        load: &load,
        bpftrace_output: &bpftrace_output,
    };

    interrupt::install()?;
    let before = Conditions::observe();
    let (overhead, overhead_conditions) = overhead::measure_overhead(&programs, &settings)?;
    let results = Results {
        overhead,
        overhead_conditions,
        startups: startup::measure_startups(&programs, settings.runs)?,
        storms: storm::measure_storms(&programs, &settings)?,
    };
    let after = Conditions::observe();

    report::print(&settings, &bpftrace, &before, &after, &results);
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    /// `cargo xtask bench` with its options, as main.rs declares it.
    #[derive(Debug, Parser)]
    struct Bench {
        #[command(flatten)]
        options: crate::bench::Options,
    }

    #[test]
    fn bench_options_are_consistent() {
        Bench::command().debug_assert();
    }

    #[test]
    fn trace_options_parse() {
        let bench = Bench::try_parse_from([
            "bench",
            "--trace",
            "--runs",
            "3",
            "--storm",
            "500",
            "--storm-threads",
            "4",
        ])
        .unwrap();
        assert!(bench.options.trace.enabled);
        assert_eq!(bench.options.runs, 3);
        assert_eq!(bench.options.trace.storm, 500);
        assert_eq!(bench.options.trace.storm_threads, Some(4));
        assert_eq!(bench.options.trace.fork_execs, 2000);
    }

    #[test]
    fn trace_options_need_trace() {
        assert!(Bench::try_parse_from(["bench", "--storm", "500"]).is_err());
        assert!(Bench::try_parse_from(["bench", "--trace", "--tasks", "100"]).is_err());
    }
}
