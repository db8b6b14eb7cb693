//! Results of the test binaries on one kernel, and the table that shows them.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use super::libtest::{self, Outcome, Status};

/// Lines of a failure's captured output shown below the table.
const KEY_LINES: usize = 3;

/// Lines of a failure's captured output shown again after every kernel ran:
/// the panic message, then the end of the output, where the follow tests put
/// the follower's stderr. The end of a CI log then shows why a test failed.
const DETAIL_HEAD: usize = 15;
const DETAIL_TAIL: usize = 25;

/// End of a test binary's run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// It exited with this status (in the guest, as the shell reports it: 128 + N for signal N).
    Exited(i32),
    /// It was stopped after the per-binary timeout.
    TimedOut,
    /// It did not start or finish because the guest stopped first.
    Interrupted,
}

/// One test binary's run on one kernel.
#[derive(Debug)]
pub struct BinaryRun {
    pub name: String,
    /// The tests it should run, from `--list`.
    pub listed: Vec<String>,
    pub outcome: Outcome,
    pub end: End,
    pub duration: Option<Duration>,
}

/// Counts of one binary's tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub ignored: usize,
    /// Listed tests that reported no result, because the binary stopped early.
    pub not_run: usize,
}

impl BinaryRun {
    /// Returns what the failed test `name` printed, or "" if libtest printed nothing for it.
    fn captured(&self, name: &str) -> &str {
        self.outcome.failure_output.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn counts(&self) -> Counts {
        let seen: BTreeSet<&str> = self.outcome.results.iter().map(|(name, _)| name.as_str()).collect();
        let not_run = self.listed.iter().filter(|name| !seen.contains(name.as_str())).count();
        match self.outcome.summary {
            // The summary also counts results whose line other output garbled.
            Some(summary) => Counts {
                passed: summary.passed,
                failed: summary.failed,
                ignored: summary.ignored,
                not_run: 0,
            },
            None => Counts {
                passed: self.outcome.names(Status::Passed).len(),
                failed: self.outcome.names(Status::Failed).len(),
                ignored: self.outcome.names(Status::Ignored).len(),
                not_run,
            },
        }
    }

    /// Describes how the run ended when that is not a normal libtest exit, else None.
    pub fn problem(&self) -> Option<String> {
        match self.end {
            End::TimedOut => Some("timed out".to_owned()),
            End::Interrupted => Some("stopped with the guest".to_owned()),
            End::Exited(status) if self.outcome.summary.is_none() => {
                Some(format!("exit status {status} without a test summary"))
            }
            End::Exited(status) if status != 0 && self.counts().failed == 0 => {
                Some(format!("exit status {status} without a failed test"))
            }
            End::Exited(_) => None,
        }
    }

    pub fn succeeded(&self) -> bool {
        self.problem().is_none() && self.counts().failed == 0 && self.end == End::Exited(0)
    }
}

/// All binaries' runs on one kernel.
#[derive(Debug)]
pub struct KernelRun {
    /// The name of the kernel in the matrix.
    pub kernel: String,
    /// The package, version and release, or the host's release.
    pub description: String,
    pub binaries: Vec<BinaryRun>,
    /// The lines of `listns --follow -v` that report whether each hook attached,
    /// as `hook NAME attached: TARGETS` or `hook NAME not attached, so ...`.
    pub hooks: Vec<String>,
    /// A problem of the run as a whole, such as a guest that never booted.
    pub problem: Option<String>,
    pub boot: Option<Duration>,
    pub total: Duration,
    /// Directory with the logs of this kernel.
    pub logs: PathBuf,
}

impl KernelRun {
    pub fn succeeded(&self) -> bool {
        self.problem.is_none() && self.binaries.iter().all(BinaryRun::succeeded)
    }
}

/// Renders the table of one kernel, then the key lines of each failure.
pub fn render(run: &KernelRun) -> String {
    let mut text = String::new();
    let boot = run
        .boot
        .map(|boot| format!(", booted in {:.1} s", boot.as_secs_f64()))
        .unwrap_or_default();
    let _ = writeln!(
        text,
        "== {}: {}{boot}, {:.0} s in total",
        run.kernel,
        run.description,
        run.total.as_secs_f64()
    );

    let header = ["binary", "passed", "failed", "ignored", "not run", "seconds", "result"];
    let mut rows: Vec<[String; 7]> = Vec::new();
    let mut total = Counts::default();
    for binary in &run.binaries {
        let counts = binary.counts();
        total.passed += counts.passed;
        total.failed += counts.failed;
        total.ignored += counts.ignored;
        total.not_run += counts.not_run;
        rows.push([
            binary.name.clone(),
            counts.passed.to_string(),
            counts.failed.to_string(),
            counts.ignored.to_string(),
            counts.not_run.to_string(),
            binary
                .duration
                .map_or_else(|| "-".to_owned(), |duration| format!("{:.0}", duration.as_secs_f64())),
            result_cell(binary),
        ]);
    }
    rows.push([
        "total".to_owned(),
        total.passed.to_string(),
        total.failed.to_string(),
        total.ignored.to_string(),
        total.not_run.to_string(),
        String::new(),
        String::new(),
    ]);

    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let header: [String; 7] = header.map(str::to_owned);
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = format!("{:<width$}", row[0], width = widths[0]);
        for (cell, width) in row[1..6].iter().zip(&widths[1..6]) {
            let _ = write!(line, "  {cell:>width$}");
        }
        let _ = write!(line, "  {}", row[6]);
        let _ = writeln!(text, "{}", line.trim_end());
    }

    if run.hooks.is_empty() {
        let _ = writeln!(text, "hooks: not recorded (see guest.log)");
    }
    for hook in &run.hooks {
        let _ = writeln!(text, "{hook}");
    }
    if let Some(problem) = &run.problem {
        let _ = writeln!(text, "problem: {problem}");
    }
    for binary in &run.binaries {
        for name in binary.outcome.failed() {
            let _ = writeln!(text, "FAILED {} {name}", binary.name);
            for line in libtest::key_lines(binary.captured(name), KEY_LINES) {
                let _ = writeln!(text, "    {line}");
            }
        }
    }
    let _ = writeln!(text, "logs: {}", run.logs.display());
    text
}

/// Renders the captured output of every failed test of `runs`: its panic
/// message and the last lines of its output.
pub fn failure_details(runs: &[KernelRun]) -> String {
    let mut text = String::new();
    for run in runs {
        for binary in &run.binaries {
            for name in binary.outcome.failed() {
                let captured = binary.captured(name);
                let _ = writeln!(text, "== {}: {} {name} failed:", run.kernel, binary.name);
                let head = libtest::key_lines(captured, DETAIL_HEAD);
                for line in &head {
                    let _ = writeln!(text, "    {line}");
                }
                let lines: Vec<&str> = captured.lines().filter(|line| !line.trim().is_empty()).collect();
                let tail = &lines[lines.len().saturating_sub(DETAIL_TAIL)..];
                // Short output is shown whole by the head already.
                if lines.len() > head.len() {
                    let _ = writeln!(text, "    [...] the last {} lines:", tail.len());
                    for line in tail {
                        let _ = writeln!(text, "    {}", line.trim_end());
                    }
                }
                let _ = writeln!(text, "    full output: {}", run.logs.display());
            }
        }
    }
    text
}

/// Returns `ok`, or what went wrong: the problem, then the failed tests.
fn result_cell(binary: &BinaryRun) -> String {
    let failed = binary.outcome.failed();
    let mut parts = Vec::new();
    if let Some(problem) = binary.problem() {
        parts.push(problem);
    }
    if !failed.is_empty() {
        parts.push(format!("FAILED: {}", failed.join(", ")));
    }
    if parts.is_empty() {
        "ok".to_owned()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_of(output: &str, listed: &[&str], end: End) -> BinaryRun {
        BinaryRun {
            name: "cases".to_owned(),
            listed: listed.iter().map(|name| (*name).to_owned()).collect(),
            outcome: libtest::parse(output),
            end,
            duration: Some(Duration::from_secs(12)),
        }
    }

    #[test]
    fn timed_out_binary_counts_not_run() {
        let run = run_of(
            "test a ... ok\ntest b ... FAILED\n",
            &["a", "b", "c", "d"],
            End::TimedOut,
        );
        assert_eq!(
            run.counts(),
            Counts {
                passed: 1,
                failed: 1,
                ignored: 0,
                not_run: 2
            }
        );
        assert_eq!(run.problem().as_deref(), Some("timed out"));
        assert!(!run.succeeded());
    }

    #[test]
    fn clean_run_succeeds() {
        let output = "test a ... ok\n\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s\n";
        let run = run_of(output, &["a"], End::Exited(0));
        assert!(run.succeeded());
        assert_eq!(result_cell(&run), "ok");
    }

    #[test]
    fn crash_without_summary_is_problem() {
        let run = run_of("test a ... ok\n", &["a", "b"], End::Exited(134));
        assert_eq!(run.problem().as_deref(), Some("exit status 134 without a test summary"));
        assert_eq!(run.counts().not_run, 1);
    }

    #[test]
    fn table_lists_failures_with_key_lines() {
        let output = "\
test a ... ok
test b ... FAILED

failures:

---- b stdout ----

thread 'b' panicked at listns/tests/cases.rs:10:5:
NS_GET_ID failed: Inappropriate ioctl for device (os error 25)
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace


failures:
    b

test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.00s
";
        let run = KernelRun {
            kernel: "6.1".to_owned(),
            description: "linux-image-6.1.0-57-amd64-unsigned 6.1.192-3".to_owned(),
            binaries: vec![run_of(output, &["a", "b"], End::Exited(101))],
            hooks: vec!["hook ns_free attached: kprobe/proc_free_inum".to_owned()],
            problem: None,
            boot: Some(Duration::from_millis(2500)),
            total: Duration::from_secs(30),
            logs: PathBuf::from("target/vm/6.1"),
        };
        let table = render(&run);
        assert!(!run.succeeded());
        assert!(table.contains("booted in 2.5 s, 30 s in total"), "{table}");
        assert!(table.contains("cases        1       1"), "{table}");
        assert!(table.contains("FAILED: b"), "{table}");
        assert!(
            table.contains("\nhook ns_free attached: kprobe/proc_free_inum\n"),
            "{table}"
        );
        assert!(
            table.contains("FAILED cases b\n    panicked at listns/tests/cases.rs:10:5\n    NS_GET_ID failed"),
            "{table}"
        );

        let details = failure_details(&[run]);
        assert!(
            details.starts_with("== 6.1: cases b failed:\n    panicked at listns/tests/cases.rs:10:5\n"),
            "{details}"
        );
        assert!(
            details.contains("    NS_GET_ID failed: Inappropriate ioctl"),
            "{details}"
        );
        assert!(details.ends_with("    full output: target/vm/6.1\n"), "{details}");
    }

    #[test]
    fn failure_details_show_the_end_of_long_output() {
        let mut output = String::from("test b ... FAILED\n\nfailures:\n\n---- b stdout ----\n");
        output.push_str("thread 'b' panicked at listns/tests/follow.rs:1:1:\nno rescan followed\n");
        for index in 0..100 {
            output.push_str(&format!("event {index}\n"));
        }
        output.push_str("its stderr:\nthe kernel dropped 7 events\n\nfailures:\n    b\n\n");
        output.push_str(
            "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.00s\n",
        );
        let run = KernelRun {
            kernel: "6.12".to_owned(),
            description: String::new(),
            binaries: vec![run_of(&output, &["b"], End::Exited(101))],
            hooks: Vec::new(),
            problem: None,
            boot: None,
            total: Duration::from_secs(1),
            logs: PathBuf::from("target/vm/6.12"),
        };

        let details = failure_details(&[run]);

        assert!(details.contains("    no rescan followed\n    event 0\n"), "{details}");
        assert!(details.contains("[...] the last 25 lines:"), "{details}");
        assert!(
            details.contains("    event 99\n    its stderr:\n    the kernel dropped 7 events\n"),
            "{details}"
        );
        assert!(!details.contains("event 50\n"), "{details}");
    }
}
