//! Markdown output of the benchmark: how it ran, one table row per tool and
//! configuration, and the listns performance targets.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use super::holder::Shape;
use super::{Configuration, ToolKind, measure};
use crate::cargo;

/// listns must be at least this many times faster than lsns with the largest number of processes.
const TARGET_SPEEDUP_OVER_LSNS: f64 = 3.0;
/// The BPF iterator route against lsns at 10,000 separate processes.
const TARGET_ITER_SPEEDUP_OVER_LSNS: f64 = 30.0;
/// listns may take at most this many times as long as the C scan with the largest number of threads.
const TARGET_RATIO_TO_C_SCAN: f64 = 1.5;
/// The iterator route reads every task and file within this many milliseconds at 10,000 tasks.
const TARGET_ITER_READ_MS: f64 = 30.0;
/// Maximum peak RSS of listns in MB (10^6 bytes).
const TARGET_MAX_RSS_MB: f64 = 30.0;

/// Prints the command line, the machine and the versions of the tools.
pub fn print_preamble(command_line: &str, lsns: &Path) {
    println!("Command: `{command_line}`\n");
    println!("- Machine: {}", describe_machine());
    println!("- listns: release build of {}", describe_listns_source());
    println!(
        "- lsns: {}",
        first_output_line(lsns.as_os_str().to_str().unwrap_or("lsns"), &["--version"])
    );
    println!(
        "- C scan: xtask/src/bench/nsscan.c built with `cc -O2` ({})",
        first_output_line("cc", &["--version"])
    );
    println!(
        "- Method: each tool runs once untimed, then once per timed run in turn, started by \
         xtask/src/bench/timed_run.c with stdin, stdout and stderr on /dev/null; wall time runs \
         from fork to wait4; CPU time is user plus system time of the tool and its threads; peak RSS is the largest `ru_maxrss` of the timed runs (1 MB = 10^6 bytes)."
    );
    println!();
}

pub fn print_table_header() {
    println!("| tasks | shape | tasks on host | tool | median (ms) | min (ms) | median CPU (ms) | peak RSS (MB) |");
    println!("| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: |");
}

/// Prints one table row per tool of `configuration`.
pub fn print_rows(configuration: &Configuration) {
    for (kind, summary) in &configuration.summaries {
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            configuration.count,
            configuration.shape,
            configuration.host_tasks,
            kind.label(),
            millis(summary.median),
            millis(summary.min),
            millis(summary.median_cpu),
            kib_to_mb(summary.peak_rss_kib),
        );
    }
}

/// Prints the iterator route's own load and read times, medians over the runs.
pub fn print_iter_phases(configurations: &[Configuration]) {
    println!("\nPhases of `listns --route iter -J`, as listns measures them (`notes` of its output):\n");
    println!("| tasks | shape | load programs, median (ms) | read iterators, median (ms) | read, max (ms) |");
    println!("| ---: | --- | ---: | ---: | ---: |");
    for configuration in configurations {
        let phases = &configuration.iter_phases;
        let loads = phases.iter().map(|p| p.load).collect();
        let reads: Vec<Duration> = phases.iter().map(|p| p.read).collect();
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} |",
            configuration.count,
            configuration.shape,
            millis(measure::median(loads)),
            millis(measure::median(reads.clone())),
            millis(reads.iter().copied().max().unwrap_or_default()),
        );
    }
}

/// Prints whether listns meets its targets at the largest number of tasks measured.
pub fn print_targets(configurations: &[Configuration]) {
    let Some(largest) = configurations.iter().map(|c| c.count).max() else {
        return;
    };
    println!("\nTargets at {largest} tasks (listns = default view):\n");

    let processes = find(configurations, largest, Shape::Processes);
    if let (Some(listns), Some(lsns)) = (processes.summary(ToolKind::Listns), processes.summary(ToolKind::Lsns)) {
        let speedup = lsns.median.as_secs_f64() / listns.median.as_secs_f64();
        println!(
            "- {largest} processes: listns is {speedup:.2} times as fast as lsns (median {:.1} ms against {:.1} ms); target at least {TARGET_SPEEDUP_OVER_LSNS}: {}",
            millis(listns.median),
            millis(lsns.median),
            verdict(speedup >= TARGET_SPEEDUP_OVER_LSNS),
        );
    }

    if let (Some(iter), Some(lsns)) = (
        processes.summary(ToolKind::ListnsIter),
        processes.summary(ToolKind::Lsns),
    ) {
        let speedup = lsns.median.as_secs_f64() / iter.median.as_secs_f64();
        println!(
            "- {largest} processes: the iterator route is {speedup:.1} times as fast as lsns (median {:.1} ms against {:.1} ms); target at least {TARGET_ITER_SPEEDUP_OVER_LSNS}: {}",
            millis(iter.median),
            millis(lsns.median),
            verdict(speedup >= TARGET_ITER_SPEEDUP_OVER_LSNS),
        );
    }

    let slowest_read = configurations
        .iter()
        .filter(|c| c.count == largest)
        .map(|c| measure::median(c.iter_phases.iter().map(|p| p.read).collect()))
        .max()
        .unwrap_or_default();
    println!(
        "- {largest} tasks: the iterators are read in {:.1} ms (median, slower shape; task and file walks in parallel, the command-line walk runs on in the background); target within {TARGET_ITER_READ_MS} ms: {}",
        millis(slowest_read),
        verdict(millis(slowest_read) <= TARGET_ITER_READ_MS),
    );

    let threads = find(configurations, largest, Shape::Threads);
    if let (Some(listns), Some(scan)) = (threads.summary(ToolKind::Listns), threads.summary(ToolKind::CScan)) {
        let ratio = listns.median.as_secs_f64() / scan.median.as_secs_f64();
        println!(
            "- {largest} threads: listns takes {ratio:.2} times as long as the C scan (median {:.1} ms against {:.1} ms); target at most {TARGET_RATIO_TO_C_SCAN}: {}",
            millis(listns.median),
            millis(scan.median),
            verdict(ratio <= TARGET_RATIO_TO_C_SCAN),
        );
    }

    for kind in [
        ToolKind::Listns,
        ToolKind::ListnsJson,
        ToolKind::ListnsIter,
        ToolKind::ListnsProc,
    ] {
        let peak_rss_mb = configurations
            .iter()
            .filter_map(|c| c.summary(kind))
            .map(|summary| kib_to_mb(summary.peak_rss_kib))
            .fold(0.0, f64::max);
        println!(
            "- Peak RSS of `{}` over every configuration: {peak_rss_mb:.1} MB; target under {TARGET_MAX_RSS_MB} MB: {}",
            kind.label(),
            verdict(peak_rss_mb < TARGET_MAX_RSS_MB),
        );
    }
}

fn find(configurations: &[Configuration], count: u32, shape: Shape) -> &Configuration {
    configurations
        .iter()
        .find(|c| c.count == count && c.shape == shape)
        .expect("every count is measured in both shapes")
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn kib_to_mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

/// Returns CPU count, CPU model, memory and kernel release, from /proc.
fn describe_machine() -> String {
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = proc_field(&cpuinfo, "model name").unwrap_or("unknown CPU");
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = proc_field(&meminfo, "MemTotal")
        .and_then(|value| value.trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpus} CPUs ({model}), {memory_gib:.1} GiB RAM, Linux {}",
        kernel.trim()
    )
}

/// Returns the value of the first `key: value` line of a /proc file.
fn proc_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim() == key)
        .map(|(_, value)| value.trim())
}

/// Returns the git commit of the workspace and whether the work tree has uncommitted changes.
fn describe_listns_source() -> String {
    let root = cargo::workspace_root();
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) => match git(&["status", "--porcelain"]) {
            Some(changes) if !changes.is_empty() => {
                format!("commit {commit} with uncommitted changes")
            }
            _ => format!("commit {commit}"),
        },
        None => "an unknown commit (git failed)".to_owned(),
    }
}

fn first_output_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|output| {
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| format!("unknown version ({program} {} failed)", args.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_field_finds_key() {
        let text = "processor\t: 0\nmodel name\t: AMD EPYC\n";
        assert_eq!(proc_field(text, "model name"), Some("AMD EPYC"));
    }

    #[test]
    fn proc_field_missing_key() {
        assert_eq!(proc_field("MemTotal: 1 kB\n", "MemFree"), None);
    }
}
