//! Timing of one program run through the timing harness (timed_run.c): wall
//! time from fork to reaping, and peak resident set size from wait4(2).

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::interrupt;

/// One timed run.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    /// User plus system CPU time.
    pub cpu: Duration,
    /// Peak resident set size in KiB (`ru_maxrss`).
    pub max_rss_kib: u64,
}

/// Median and minimum wall time and peak RSS over several runs.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub median: Duration,
    pub min: Duration,
    /// Median of the CPU times.
    pub median_cpu: Duration,
    /// Largest `ru_maxrss` of all runs, in KiB.
    pub peak_rss_kib: u64,
}

/// Runs `program` through the timing harness (timed_run.c) with standard input,
/// output and error on /dev/null, and returns its wall time and peak RSS.
pub fn time_run(harness: &Path, program: &Path, args: &[&str]) -> Result<Sample> {
    let command_line = format!("{} {}", program.display(), args.join(" "));
    let output = Command::new(harness)
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to start {}", harness.display()))?;

    // Ctrl-C reaches the timed program too, so check for it before reporting the program as failed.
    interrupt::check()?;
    if !output.status.success() {
        bail!("the timing harness failed ({}) on `{command_line}`", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let (sample, status) = parse_harness_output(&stdout)
        .with_context(|| format!("unexpected output of the timing harness: {stdout:?}"))?;
    if !status.success() {
        bail!(
            "`{command_line}` failed ({status}; 127 means it could not be executed): run it by hand to see its error output"
        );
    }
    Ok(sample)
}

/// Parses the harness's line "WALL_NS MAXRSS_KIB WAIT_STATUS CPU_US".
fn parse_harness_output(line: &str) -> Option<(Sample, ExitStatus)> {
    let mut fields = line.split_whitespace();
    let wall_ns: u64 = fields.next()?.parse().ok()?;
    let max_rss_kib: u64 = fields.next()?.parse().ok()?;
    let status: i32 = fields.next()?.parse().ok()?;
    let cpu_us: u64 = fields.next()?.parse().ok()?;
    let sample = Sample {
        wall: Duration::from_nanos(wall_ns),
        cpu: Duration::from_micros(cpu_us),
        max_rss_kib,
    };
    Some((sample, ExitStatus::from_raw(status)))
}

/// Summarises `samples`, which must not be empty.
pub fn summarize(samples: &[Sample]) -> Summary {
    let walls: Vec<Duration> = samples.iter().map(|sample| sample.wall).collect();
    let cpus: Vec<Duration> = samples.iter().map(|sample| sample.cpu).collect();
    Summary {
        median: median(walls.clone()),
        min: walls.iter().copied().min().unwrap_or_default(),
        median_cpu: median(cpus),
        peak_rss_kib: samples.iter().map(|sample| sample.max_rss_kib).max().unwrap_or(0),
    }
}

/// Returns the median of `values`, the mean of the two middle ones for an even count.
pub fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2
    } else {
        values[middle]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(millis: u64, rss: u64) -> Sample {
        Sample {
            wall: Duration::from_millis(millis),
            cpu: Duration::from_millis(millis * 2),
            max_rss_kib: rss,
        }
    }

    #[test]
    fn summarize_odd_count() {
        let summary = summarize(&[sample(30, 5), sample(10, 9), sample(20, 7)]);
        assert_eq!(summary.median, Duration::from_millis(20));
        assert_eq!(summary.min, Duration::from_millis(10));
        assert_eq!(summary.median_cpu, Duration::from_millis(40));
        assert_eq!(summary.peak_rss_kib, 9);
    }

    #[test]
    fn summarize_even_count() {
        let summary = summarize(&[sample(40, 1), sample(10, 1), sample(20, 1), sample(30, 1)]);
        assert_eq!(summary.median, Duration::from_millis(25));
        assert_eq!(summary.min, Duration::from_millis(10));
    }

    #[test]
    fn harness_output_parses() {
        let (sample, status) = parse_harness_output("1500000 2048 256 2500\n").unwrap();
        assert_eq!(sample.wall, Duration::from_micros(1500));
        assert_eq!(sample.cpu, Duration::from_micros(2500));
        assert_eq!(sample.max_rss_kib, 2048);
        assert_eq!(status.code(), Some(1));
    }

    #[test]
    fn harness_output_rejects_garbage() {
        assert!(parse_harness_output("1500000 lots").is_none());
    }
}
