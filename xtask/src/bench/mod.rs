//! `cargo xtask bench`: times listns against lsns and a minimal C scan of /proc
//! while thousands of tasks exist, as threads of one process and as separate
//! processes. Timing belongs here, never in the tests.

pub mod holder;
mod interrupt;
mod limits;
mod measure;
mod report;
mod trace;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{cargo, setup, system};
use holder::{HeldTasks, Shape};
use measure::{Sample, Summary};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Numbers of tasks, comma-separated; each is measured as threads of one process
    /// and as separate processes.
    #[arg(
        long,
        value_name = "N,...",
        value_delimiter = ',',
        num_args = 1..,
        default_values_t = [5000, 10000],
        value_parser = clap::value_parser!(u32).range(1..=1_000_000),
    )]
    tasks: Vec<u32>,

    /// Timed runs of each tool per number and shape of tasks, after one untimed warm-up run.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,

    #[command(flatten)]
    trace: trace::Options,
}

impl Options {
    /// Returns the command line that repeats this benchmark, with every option spelled out.
    fn command_line(&self) -> String {
        let tasks: Vec<String> = self.tasks.iter().map(u32::to_string).collect();
        format!("cargo xtask bench --tasks {} --runs {}", tasks.join(","), self.runs)
    }
}

/// The programs the benchmark compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ToolKind {
    /// listns with its default per-process view.
    Listns,
    /// listns with `-J`, the whole inventory as JSON.
    ListnsJson,
    /// listns forced onto the BPF iterator route (`--route iter`).
    ListnsIter,
    /// listns forced onto the /proc route (`--route proc`).
    ListnsProc,
    /// lsns from util-linux.
    Lsns,
    /// nsscan.c, which only reads every task's namespace links.
    CScan,
}

impl ToolKind {
    fn label(self) -> &'static str {
        match self {
            ToolKind::Listns => "listns",
            ToolKind::ListnsJson => "listns -J",
            ToolKind::ListnsIter => "listns --route iter",
            ToolKind::ListnsProc => "listns --route proc",
            ToolKind::Lsns => "lsns",
            ToolKind::CScan => "C scan (nsscan)",
        }
    }
}

/// A program to time and the arguments of every run.
struct Tool {
    kind: ToolKind,
    program: PathBuf,
    args: &'static [&'static str],
}

/// Results of every tool for one number and shape of tasks.
struct Configuration {
    count: u32,
    shape: Shape,
    /// Tasks on the whole host while the tools ran, held ones included.
    host_tasks: u64,
    summaries: Vec<(ToolKind, Summary)>,
    /// Load and read times of the iterator route, one per run, as listns
    /// itself measured them.
    iter_phases: Vec<IterPhases>,
}

/// The two phases of the iterator route inside one listns run: loading
/// the programs (BTF parsing, verification) and reading the iterators.
#[derive(Debug, Clone, Copy, PartialEq)]
struct IterPhases {
    load: std::time::Duration,
    read: std::time::Duration,
}

/// Finds the phases in the notes of `listns -J`, in the line
/// `iterators: ... read in X ms (load Y ms)`.
fn parse_iter_phases(notes: &[serde_json::Value]) -> Option<IterPhases> {
    let line = notes
        .iter()
        .filter_map(|n| n.as_str())
        .find(|n| n.starts_with("iterators: "))?;
    let (_, rest) = line.rsplit_once(" read in ")?;
    let (read, rest) = rest.split_once(" ms (load ")?;
    let load = rest.strip_suffix(" ms)")?;
    let millis = |text: &str| {
        text.parse::<f64>()
            .ok()
            .map(|ms| std::time::Duration::from_secs_f64(ms / 1e3))
    };
    Some(IterPhases {
        load: millis(load)?,
        read: millis(read)?,
    })
}

/// Runs `listns --route iter -J` and returns the phases it reports.
fn measure_iter_phases(listns: &Path) -> Result<IterPhases> {
    let output = Command::new(listns)
        .args(["--route", "iter", "-J"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("failed to start {}", listns.display()))?;
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("`listns --route iter -J` printed no JSON document")?;
    let notes = json["notes"].as_array().map(Vec::as_slice).unwrap_or_default();
    parse_iter_phases(notes)
        .with_context(|| format!("`listns --route iter -J` reported no iterator times in its notes: {notes:?}"))
}

impl Configuration {
    fn summary(&self, kind: ToolKind) -> Option<&Summary> {
        self.summaries
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, summary)| summary)
    }
}

/// Runs the benchmark and prints the results as Markdown on stdout, progress on stderr.
pub fn run(options: &Options) -> Result<()> {
    if options.trace.enabled {
        return trace::run(&options.trace, options.runs);
    }
    if !system::is_root() {
        bail!(
            "the benchmark raises kernel limits and must read the namespaces of every task: \
             rerun `cargo xtask bench` as root"
        );
    }
    setup::run(setup::Verbosity::Quiet)?;
    let listns = cargo::build_listns_release()?;
    let nsscan = compile_c("nsscan")?;
    let harness = compile_c("timed_run")?;
    let lsns = system::find_command("lsns").context("lsns not found: run `cargo xtask setup`")?;
    let tools = [
        Tool {
            kind: ToolKind::Listns,
            program: listns.clone(),
            args: &[],
        },
        Tool {
            kind: ToolKind::ListnsJson,
            program: listns.clone(),
            args: &["-J"],
        },
        Tool {
            kind: ToolKind::ListnsIter,
            program: listns.clone(),
            args: &["--route", "iter"],
        },
        Tool {
            kind: ToolKind::ListnsProc,
            program: listns.clone(),
            args: &["--route", "proc"],
        },
        Tool {
            kind: ToolKind::Lsns,
            program: lsns.clone(),
            args: &[],
        },
        Tool {
            kind: ToolKind::CScan,
            program: nsscan,
            args: &[],
        },
    ];

    interrupt::install()?;
    let max_tasks = options.tasks.iter().copied().max().unwrap_or(0);
    // Restores the sysctls when it drops, on success, error and interruption alike.
    let _limits = limits::raise_for(max_tasks)?;

    report::print_preamble(&options.command_line(), &lsns);
    report::print_table_header();
    let mut configurations = Vec::new();
    for &count in &options.tasks {
        for shape in [Shape::Threads, Shape::Processes] {
            eprintln!("xtask bench: starting {count} {shape}");
            let held = HeldTasks::start(shape, count)?;
            let configuration = measure_configuration(&harness, &tools, count, shape, options.runs)?;
            // Ends and reaps the held tasks before the next configuration starts its own.
            drop(held);
            report::print_rows(&configuration);
            configurations.push(configuration);
        }
    }
    report::print_iter_phases(&configurations);
    report::print_targets(&configurations);
    Ok(())
}

/// Builds `NAME.c` from this directory with `cc -O2` into the target directory
/// and returns the binary's path.
fn compile_c(name: &str) -> Result<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("src/bench/{name}.c"));
    let out_dir = cargo::target_dir()?.join("xtask");
    fs::create_dir_all(&out_dir).with_context(|| format!("failed to create {}", out_dir.display()))?;
    let binary = out_dir.join(name);

    let status = Command::new("cc")
        .args(["-O2", "-Wall", "-Wextra", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .context("failed to start cc: install a C compiler (apt-get install gcc)")?;
    if !status.success() {
        bail!("`cc -O2 {}` failed ({status})", source.display());
    }
    Ok(binary)
}

/// Times every tool `runs` times while the held tasks exist.
fn measure_configuration(harness: &Path, tools: &[Tool], count: u32, shape: Shape, runs: u32) -> Result<Configuration> {
    warm_up(tools)?;
    let host_tasks = limits::count_host_tasks()?;

    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); tools.len()];
    for run in 1..=runs {
        eprintln!("xtask bench: {count} {shape}, run {run} of {runs}");
        // One run of each tool in turn, so that drift in the machine's load
        // spreads over all tools instead of falling on one.
        for (tool, samples) in tools.iter().zip(&mut samples) {
            samples.push(measure::time_run(harness, &tool.program, tool.args)?);
        }
    }

    let summaries = tools
        .iter()
        .zip(&samples)
        .map(|(tool, samples)| (tool.kind, measure::summarize(samples)))
        .collect();
    let listns = &tools
        .iter()
        .find(|tool| tool.kind == ToolKind::ListnsIter)
        .context("the benchmark has no iterator route tool")?
        .program;
    let iter_phases = (0..runs)
        .map(|_| measure_iter_phases(listns))
        .collect::<Result<Vec<_>>>()?;
    Ok(Configuration {
        count,
        shape,
        host_tasks,
        summaries,
        iter_phases,
    })
}

/// Runs every tool once untimed, so that all of them find the kernel's caches
/// warm, and fails with the tool's error output if one fails.
fn warm_up(tools: &[Tool]) -> Result<()> {
    for tool in tools {
        let output = Command::new(&tool.program)
            .args(tool.args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("failed to start {}", tool.program.display()))?;
        interrupt::check()?;
        if !output.status.success() {
            bail!(
                "`{} {}` failed ({}): {}",
                tool.program.display(),
                tool.args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn iter_phases_from_notes() {
        let notes = [
            serde_json::json!("mounts: mountinfo of 2 mount namespaces"),
            serde_json::json!(
                "iterators: 10077 tasks, 3 files of interest and 10010 command lines read in 12.5 ms (load 41.0 ms)"
            ),
        ];
        let phases = parse_iter_phases(&notes).unwrap();
        assert_eq!(phases.read, Duration::from_secs_f64(0.0125));
        assert_eq!(phases.load, Duration::from_secs_f64(0.041));
        assert_eq!(parse_iter_phases(&notes[..1]), None);
        assert_eq!(
            parse_iter_phases(&[serde_json::json!("iterators: read in x ms (load 1 ms)")]),
            None
        );
    }
}
