//! Markdown output of `cargo xtask bench --trace`: how it ran, one table per
//! measurement, and the targets of the live tracer.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::overhead::{OverheadSample, RunConditions, Tracer, Workload};
use super::startup::StartupRun;
use super::storm::{StormMode, StormRun};
use super::{Results, Settings};
use crate::cargo;

/// Maximum overhead of listns on the fork/exec loop, in percent of the time without a tracer.
const TARGET_FORK_EXEC_OVERHEAD_PERCENT: f64 = 3.0;
/// Maximum time from the start of listns to the arrival of its first event.
const TARGET_FIRST_EVENT: Duration = Duration::from_millis(500);

/// State of the machine that other work can change: load, and other eBPF
/// programs, whose tracepoints slow down the runs without a tracer too.
pub struct Conditions {
    /// The first three fields of /proc/loadavg.
    load_average: String,
    /// Processes that hold eBPF program fds, as "PID comm (N programs)".
    bpf_holders: Vec<String>,
}

impl Conditions {
    /// Reads the load average and finds the processes that hold eBPF
    /// programs (fds linked to `anon_inode:bpf-prog`). Call it while the
    /// benchmark runs no tracer of its own.
    pub fn observe() -> Conditions {
        let load_average = fs::read_to_string("/proc/loadavg")
            .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|err| format!("unknown (/proc/loadavg: {err})"));
        let mut bpf_holders = Vec::new();
        let Ok(entries) = fs::read_dir("/proc") else {
            return Conditions {
                load_average,
                bpf_holders,
            };
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().filter(|name| name.bytes().all(|b| b.is_ascii_digit())) else {
                continue;
            };
            // Processes may end during the walk; their fds then just do not count.
            let programs = fs::read_dir(entry.path().join("fd"))
                .map(|fds| {
                    fds.flatten()
                        .filter(|fd| {
                            fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == "anon_inode:bpf-prog")
                        })
                        .count()
                })
                .unwrap_or(0);
            if programs > 0 {
                let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                bpf_holders.push(format!("{pid} {} ({programs} programs)", comm.trim()));
            }
        }
        Conditions {
            load_average,
            bpf_holders,
        }
    }

    pub fn has_bpf_holders(&self) -> bool {
        !self.bpf_holders.is_empty()
    }

    pub fn describe_bpf_holders(&self) -> String {
        if self.bpf_holders.is_empty() {
            "none".to_owned()
        } else {
            self.bpf_holders.join(", ")
        }
    }
}

/// Prints everything the benchmark measured.
pub fn print(settings: &Settings, bpftrace: &Path, before: &Conditions, after: &Conditions, results: &Results) {
    print_preamble(settings, bpftrace, before, after);
    print_overhead(settings, &results.overhead, &results.overhead_conditions);
    print_storms(settings, &results.storms);
    print_startups(&results.startups);
    print_targets(settings, results);
}

fn print_preamble(settings: &Settings, bpftrace: &Path, before: &Conditions, after: &Conditions) {
    println!("Command: `{}`\n", settings.command_line());
    println!("- Machine: {}", describe_machine());
    println!(
        "- Load average (1, 5, 15 min): {} at the start, {} at the end; other work may share the machine",
        before.load_average, after.load_average
    );
    println!(
        "- Processes holding eBPF programs, outside the benchmark's tracers: {} at the start, {} at the end",
        before.describe_bpf_holders(),
        after.describe_bpf_holders()
    );
    println!("- listns: release build of {}", describe_listns_source());
    println!(
        "- bpftrace: {}, script xtask/src/bench/trace/hooks.bt",
        first_output_line(bpftrace.to_str().unwrap_or("bpftrace"), &["--version"])
    );
    println!(
        "- Workloads: xtask/src/bench/trace_load.c built with `cc -O2` ({})",
        first_output_line("cc", &["--version"])
    );
    println!();
}

fn print_overhead(settings: &Settings, samples: &[OverheadSample], conditions: &[RunConditions]) {
    println!(
        "Overhead, {} runs; in each run the three cases take turns, each tracer started before and stopped \
         after its two loops. Wall and CPU time are the workload's (CPU: user plus system time of the loop \
         and its children); tracer CPU is the tracer process's own CPU time while the loop ran, divided by \
         the loop's operations:\n",
        settings.runs
    );
    println!(
        "| loop | tracer | wall median (ns/op) | wall min (ns/op) | overhead of wall median | overhead of wall min | CPU median (ns/op) | overhead of CPU median | tracer CPU median (ns/op) |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for workload in Workload::ALL {
        let base_wall = stats(samples, Tracer::None, workload, |sample| Some(sample.wall));
        let base_cpu = stats(samples, Tracer::None, workload, |sample| Some(sample.cpu));
        for tracer in Tracer::ALL {
            let this_wall = stats(samples, tracer, workload, |sample| Some(sample.wall));
            let this_cpu = stats(samples, tracer, workload, |sample| Some(sample.cpu));
            let tracer_cpu = stats(samples, tracer, workload, |sample| sample.tracer_cpu);
            let overhead = |value: f64, base: f64| {
                if tracer == Tracer::None {
                    "-".to_owned()
                } else {
                    format!("{:+.1} ns ({:+.1}%)", value - base, percent(value, base))
                }
            };
            let tracer_cpu = if tracer_cpu.median.is_nan() {
                "-".to_owned()
            } else {
                format!("{:.1}", tracer_cpu.median)
            };
            println!(
                "| {} | {} | {:.1} | {:.1} | {} | {} | {:.1} | {} | {tracer_cpu} |",
                workload_label(settings, workload),
                tracer.label(),
                this_wall.median,
                this_wall.min,
                overhead(this_wall.median, base_wall.median),
                overhead(this_wall.min, base_wall.min),
                this_cpu.median,
                overhead(this_cpu.median, base_cpu.median),
            );
        }
    }
    println!("\nLoad average and other processes holding eBPF programs around each overhead run:\n");
    for (index, conditions) in conditions.iter().enumerate() {
        println!(
            "- run {}: waited {:.0} s for other eBPF programs to go; at the start load {} and eBPF holders: {}; \
             at the end load {} and eBPF holders: {}",
            index + 1,
            conditions.waited.as_secs_f64(),
            conditions.start.load_average,
            conditions.start.describe_bpf_holders(),
            conditions.end.load_average,
            conditions.end.describe_bpf_holders(),
        );
    }
    println!();
}

fn print_storms(settings: &Settings, storms: &[StormRun]) {
    println!(
        "Storms: {} children of one helper (started with fork or vfork from {} threads) each unshare a uts \
         namespace and exit, while `listns --follow --json` writes into a pipe that xtask reads; default ring \
         buffer. \"created\" counts created events of uts namespaces whose parent PID is the helper's; \
         \"uts reported\" counts distinct uts namespace ids named in any event after the helper started; \
         times run from the helper's spawn:\n",
        settings.storm, settings.storm_threads
    );
    println!(
        "| children | helper time (s) | creations/s offered | created received | uts reported | uts reported/s | all events | all events/s | lost events (dropped) | last uts after helper end (s) | VmHWM ready (MB) | VmHWM after (MB) | VmRSS after (MB) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for storm in storms {
        let helper = storm.helper_elapsed.as_secs_f64();
        let rate = |count: u64, span: Option<Duration>| {
            span.filter(|span| !span.is_zero()).map_or("-".to_owned(), |span| {
                format!("{:.0}", count as f64 / span.as_secs_f64())
            })
        };
        let lag = storm
            .last_uts
            .map_or("-".to_owned(), |last| format!("{:.2}", last.as_secs_f64() - helper));
        println!(
            "| {} | {helper:.2} | {:.0} | {} | {} | {} | {} | {} | {} ({}) | {lag} | {:.1} | {:.1} | {:.1} |",
            storm.mode.label(),
            f64::from(storm.creations) / helper,
            storm.created,
            storm.uts_namespaces,
            rate(storm.uts_namespaces, storm.last_uts),
            storm.events,
            rate(storm.events, storm.last_event),
            storm.lost_events,
            storm.lost_count,
            kib_to_mb(storm.vm_hwm_ready_kib),
            kib_to_mb(storm.vm_hwm_kib),
            kib_to_mb(storm.vm_rss_kib),
        );
    }
    println!();
}

fn print_startups(startups: &[StartupRun]) {
    println!(
        "Start-up: from just before the spawn of `listns --follow --json` to its readiness line on stderr, \
         and to the arrival of the created event of `unshare -u true`, started as soon as the readiness line arrived:\n"
    );
    println!("| run | readiness (ms) | first event (ms) | unshare start to event (ms) |");
    println!("| ---: | ---: | ---: | ---: |");
    for (index, startup) in startups.iter().enumerate() {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} |",
            index + 1,
            millis(startup.ready),
            millis(startup.first_event),
            millis(startup.trigger_to_event),
        );
    }
    println!();
}

fn print_targets(settings: &Settings, results: &Results) {
    println!("Targets:\n");

    let fork_exec = |tracer, field: fn(&OverheadSample) -> f64| {
        stats(&results.overhead, tracer, Workload::ForkExec, |sample| {
            Some(field(sample))
        })
    };
    let base = fork_exec(Tracer::None, |sample| sample.wall);
    let listns = fork_exec(Tracer::Listns, |sample| sample.wall);
    let bpftrace = fork_exec(Tracer::Bpftrace, |sample| sample.wall);
    let base_cpu = fork_exec(Tracer::None, |sample| sample.cpu).median;
    let listns_cpu = fork_exec(Tracer::Listns, |sample| sample.cpu).median;
    let bpftrace_cpu = fork_exec(Tracer::Bpftrace, |sample| sample.cpu).median;
    let listns_percent = percent(listns.median, base.median);
    let bpftrace_percent = percent(bpftrace.median, base.median);
    println!(
        "- fork/exec overhead (wall medians): listns {listns_percent:+.1}% ({:+.0} ns per fork+exec+wait), \
         bpftrace {bpftrace_percent:+.1}% ({:+.0} ns); of the wall minimums: listns {:+.1}%, bpftrace {:+.1}%; \
         of the workload's CPU medians: listns {:+.1}%, bpftrace {:+.1}%; target at most \
         {TARGET_FORK_EXEC_OVERHEAD_PERCENT}% and below bpftrace, judged on the wall medians: {}",
        listns.median - base.median,
        bpftrace.median - base.median,
        percent(listns.min, base.min),
        percent(bpftrace.min, base.min),
        percent(listns_cpu, base_cpu),
        percent(bpftrace_cpu, base_cpu),
        verdict(listns_percent <= TARGET_FORK_EXEC_OVERHEAD_PERCENT && listns_percent < bpftrace_percent),
    );

    for mode in StormMode::ALL {
        print_storm_targets(settings, results, mode);
    }

    let first_events: Vec<f64> = results
        .startups
        .iter()
        .map(|startup| startup.first_event.as_secs_f64() * 1000.0)
        .collect();
    let slowest = first_events.iter().copied().fold(0.0, f64::max);
    println!(
        "- First event after start: median {:.1} ms, slowest {slowest:.1} ms of {} starts; target within {} ms \
         in every start: {}",
        median(&first_events),
        first_events.len(),
        TARGET_FIRST_EVENT.as_millis(),
        verdict(slowest <= millis(TARGET_FIRST_EVENT)),
    );

    let peak_hwm = results.storms.iter().map(|storm| storm.vm_hwm_kib).max().unwrap_or(0);
    let peak_ready = results
        .storms
        .iter()
        .map(|storm| storm.vm_hwm_ready_kib)
        .max()
        .unwrap_or(0);
    println!(
        "- Peak RSS (VmHWM) of listns: at most {:.1} MB once ready, {:.1} MB after the storms (no target)",
        kib_to_mb(peak_ready),
        kib_to_mb(peak_hwm)
    );
}

/// Prints whether the storms started with `mode` lost events, and how many created events arrived.
fn print_storm_targets(settings: &Settings, results: &Results, mode: StormMode) {
    let storms: Vec<&StormRun> = results.storms.iter().filter(|storm| storm.mode == mode).collect();
    if storms.is_empty() {
        return;
    }
    let lost: u64 = storms.iter().map(|storm| storm.lost_count).sum();
    let lost_events: u64 = storms.iter().map(|storm| storm.lost_events).sum();
    let least_reported = storms.iter().map(|storm| storm.uts_namespaces).min().unwrap_or(0);
    let least_created = storms.iter().map(|storm| storm.created).min().unwrap_or(0);
    let best_rate = storms
        .iter()
        .filter_map(|storm| {
            storm
                .last_uts
                .map(|last| storm.uts_namespaces as f64 / last.as_secs_f64())
        })
        .fold(0.0, f64::max);
    let creations = u64::from(settings.storm);
    println!(
        "- {} storms of {creations} creations: {lost_events} lost events reporting {lost} dropped kernel events \
         over {} storms; at least {least_reported} of {creations} uts namespaces named in some event per storm, \
         at up to {best_rate:.0} namespaces/s; target no loss with the default buffer: {}",
        mode.label(),
        storms.len(),
        verdict(lost_events == 0 && least_reported >= creations),
    );
    println!(
        "- {} storms: at least {least_created} of {creations} created events of the helper's children per storm; \
         expected one per creation: {}",
        mode.label(),
        verdict(least_created == creations),
    );
}

/// Median and minimum of nanoseconds per operation.
struct Stats {
    median: f64,
    min: f64,
}

/// Returns the median and minimum of `field` over the samples of `tracer`
/// and `workload` that have it (NaN and infinity when none has).
fn stats(
    samples: &[OverheadSample],
    tracer: Tracer,
    workload: Workload,
    field: impl Fn(&OverheadSample) -> Option<f64>,
) -> Stats {
    let values: Vec<f64> = samples
        .iter()
        .filter(|sample| sample.tracer == tracer && sample.workload == workload)
        .filter_map(field)
        .collect();
    Stats {
        median: median(&values),
        min: values.iter().copied().fold(f64::INFINITY, f64::min),
    }
}

/// Returns the median, the mean of the two middle values for an even count, NaN when empty.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => f64::NAN,
        len if len % 2 == 0 => (sorted[middle - 1] + sorted[middle]) / 2.0,
        _ => sorted[middle],
    }
}

fn percent(value: f64, base: f64) -> f64 {
    (value - base) / base * 100.0
}

fn workload_label(settings: &Settings, workload: Workload) -> String {
    match workload {
        Workload::ForkExec => format!("fork+exec+wait of /bin/true x{}", settings.fork_execs),
        Workload::Getppid => format!("getppid x{}", settings.getppid_calls),
    }
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
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
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
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(cargo::workspace_root())
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    match (git(&["rev-parse", "--short", "HEAD"]), git(&["status", "--porcelain"])) {
        (Some(commit), Some(changes)) if !changes.is_empty() => format!("commit {commit} with uncommitted changes"),
        (Some(commit), _) => format!("commit {commit}"),
        (None, _) => "an unknown commit (git failed)".to_owned(),
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
    fn median_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn stats_filters_by_tracer_and_workload() {
        let sample = |tracer, workload, wall| OverheadSample {
            tracer,
            workload,
            wall,
            cpu: wall / 2.0,
            tracer_cpu: None,
        };
        let samples = [
            sample(Tracer::None, Workload::Getppid, 100.0),
            sample(Tracer::None, Workload::Getppid, 120.0),
            sample(Tracer::Listns, Workload::Getppid, 500.0),
            sample(Tracer::None, Workload::ForkExec, 9000.0),
        ];
        let walls = stats(&samples, Tracer::None, Workload::Getppid, |sample| Some(sample.wall));
        assert_eq!(walls.median, 110.0);
        assert_eq!(walls.min, 100.0);
        let cpus = stats(&samples, Tracer::None, Workload::Getppid, |sample| Some(sample.cpu));
        assert_eq!(cpus.median, 55.0);
        let tracer_cpus = stats(&samples, Tracer::None, Workload::Getppid, |sample| sample.tracer_cpu);
        assert!(tracer_cpus.median.is_nan());
    }
}
