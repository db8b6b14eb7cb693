//! Parsers for the text output of Rust test binaries (libtest's `pretty`
//! and `terse --list` formats), which is all a stable toolchain offers.
//!
//! A test's child processes write to the same stdout and stderr, so a result
//! line may follow other text on the same line. The parser finds results
//! anywhere in a line, and treats the final `failures:` list and `test result:`
//! line as the authoritative record when the binary got that far.

use std::collections::BTreeMap;

/// The result of one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Passed,
    Failed,
    Ignored,
}

/// The counts of the `test result:` line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub ignored: usize,
    pub filtered_out: usize,
}

/// Results parsed from the output of one run of a test binary.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Results in the order they were printed.
    pub results: Vec<(String, Status)>,
    /// The captured output of each failed test, from its `---- NAME stdout ----` section.
    pub failure_output: BTreeMap<String, String>,
    /// The names in the final `failures:` list.
    pub failures_listed: Vec<String>,
    pub summary: Option<Summary>,
}

impl Outcome {
    /// Returns the names of the tests with `status`, in order.
    pub fn names(&self, status: Status) -> Vec<&str> {
        self.results
            .iter()
            .filter(|(_, result)| *result == status)
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// Returns the failed tests: the final list when there is one, else the result lines.
    pub fn failed(&self) -> Vec<&str> {
        if self.summary.is_some() && !self.failures_listed.is_empty() {
            self.failures_listed.iter().map(String::as_str).collect()
        } else {
            self.names(Status::Failed)
        }
    }
}

/// Part of the output that the parser is in.
enum Section {
    /// Result lines, before or between failure reports.
    Results,
    /// After a `failures:` line, before a section header or the name list.
    Failures,
    /// In the captured output of the named test.
    Captured(String),
    /// In the final list of failed tests.
    FailureList,
}

/// Parses the output of one run of a test binary in libtest's default (`pretty`) format.
pub fn parse(output: &str) -> Outcome {
    let mut outcome = Outcome::default();
    let mut section = Section::Results;
    // With --test-threads=1 libtest prints `test NAME ... ` before the test
    // runs and the status after it, possibly with other output in between.
    let mut pending: Option<String> = None;

    for line in output.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);

        if let Some(summary) = line.strip_prefix("test result: ") {
            outcome.summary = Some(parse_summary(summary));
            section = Section::Results;
            continue;
        }
        if line == "failures:" {
            section = Section::Failures;
            continue;
        }
        if let Some(name) = section_header(line) {
            outcome.failure_output.insert(name.to_owned(), String::new());
            section = Section::Captured(name.to_owned());
            continue;
        }

        match &section {
            Section::Captured(name) => {
                let text = outcome.failure_output.entry(name.clone()).or_default();
                text.push_str(line);
                text.push('\n');
            }
            Section::Failures | Section::FailureList => {
                if let Some(name) = line.strip_prefix("    ") {
                    outcome.failures_listed.push(name.trim().to_owned());
                    section = Section::FailureList;
                }
            }
            Section::Results => match result_line(line) {
                Some(ResultLine::Complete(name, status)) => {
                    pending = None;
                    outcome.results.push((name.to_owned(), status));
                }
                Some(ResultLine::Started(name)) => pending = Some(name.to_owned()),
                None => {
                    if let Some(status) = status_word(line.trim())
                        && let Some(name) = pending.take()
                    {
                        outcome.results.push((name, status));
                    }
                }
            },
        }
    }
    outcome
}

/// Returns the test names that `BINARY --list --format terse` printed (`NAME: test` lines).
pub fn parse_list(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .map(str::to_owned)
        .collect()
}

/// Returns the lines of a failure's captured output that explain it: the
/// message of the first panic, without libtest's note about backtraces, or
/// the last lines of the output when nothing panicked.
pub fn key_lines(captured: &str, max_lines: usize) -> Vec<String> {
    let lines: Vec<&str> = captured.lines().collect();
    let is_note =
        |line: &str| line.starts_with("note: run with `RUST_BACKTRACE=1`") || line.starts_with("stack backtrace:");

    if let Some(start) = lines.iter().position(|line| line.contains("panicked at ")) {
        // Since Rust 1.73 the message follows on its own lines: `thread 'NAME' panicked at FILE:LINE:COLUMN:`.
        let location = lines[start]
            .split("panicked at ")
            .nth(1)
            .unwrap_or_default()
            .trim_end_matches(':');
        let mut key = vec![format!("panicked at {location}")];
        key.extend(
            lines[start + 1..]
                .iter()
                .take_while(|line| !is_note(line))
                .filter(|line| !line.trim().is_empty())
                .take(max_lines.saturating_sub(1))
                .map(|line| line.trim_end().to_owned()),
        );
        return key;
    }

    let meaningful: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|line| !line.trim().is_empty() && !is_note(line))
        .collect();
    meaningful[meaningful.len().saturating_sub(max_lines)..]
        .iter()
        .map(|line| line.trim_end().to_owned())
        .collect()
}

enum ResultLine<'a> {
    Complete(&'a str, Status),
    /// `test NAME ... ` without a status yet.
    Started(&'a str),
}

/// Finds `test NAME ... STATUS` at any position in `line`, so that a result
/// after unterminated output of a child process still counts. A line that
/// starts with `test NAME ... ` and has no status is a started test.
fn result_line(line: &str) -> Option<ResultLine<'_>> {
    let valid_name = |name: &str| !name.is_empty() && !name.contains(' ');

    let mut search_from = 0;
    while let Some(offset) = line[search_from..].find("test ") {
        let start = search_from + offset;
        let rest = &line[start + "test ".len()..];
        if let Some((name, status)) = rest.split_once(" ... ")
            && valid_name(name)
            && let Some(status) = status_word(status.trim())
        {
            return Some(ResultLine::Complete(name, status));
        }
        search_from = start + 1;
    }

    let rest = line.strip_prefix("test ")?;
    let name = match rest.split_once(" ... ") {
        Some((name, _)) => name,
        None => rest.strip_suffix(" ...")?,
    };
    valid_name(name).then_some(ResultLine::Started(name))
}

/// Returns the status that libtest prints after ` ... `: `ok`, `FAILED`,
/// `ignored` or `ignored, REASON`.
fn status_word(text: &str) -> Option<Status> {
    match text {
        "ok" => Some(Status::Passed),
        "FAILED" => Some(Status::Failed),
        _ if text == "ignored" || text.starts_with("ignored, ") => Some(Status::Ignored),
        _ => None,
    }
}

/// Returns NAME from `---- NAME stdout ----`.
fn section_header(line: &str) -> Option<&str> {
    line.strip_prefix("---- ")?.strip_suffix(" stdout ----")
}

/// Parses `ok. 3 passed; 1 failed; 0 ignored; 0 measured; 2 filtered out; finished in 0.50s`.
fn parse_summary(text: &str) -> Summary {
    let mut summary = Summary::default();
    let counts = text.split_once(". ").map_or(text, |(_, counts)| counts);
    for part in counts.split(';') {
        let mut words = part.split_whitespace();
        let (Some(number), Some(label)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(number) = number.parse() else {
            continue;
        };
        match label {
            "passed" => summary.passed = number,
            "failed" => summary.failed = number,
            "ignored" => summary.ignored = number,
            "filtered" => summary.filtered_out = number,
            _ => {}
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output of a test binary built by Rust 1.95 with two threads, one failure and one ignored test.
    const OUTPUT: &str = "
running 4 tests
test case_01_plain ... ok
test case_03_skipped ... ignored, needs a tap device
test case_02_broken ... FAILED
listns: some tasks could not be inspectedtest case_04_late ... ok

failures:

---- case_02_broken stdout ----

thread 'case_02_broken' panicked at listns/tests/cases.rs:120:9:
assertion `left == right` failed: NS_GET_ID on net:[4026532174]
  left: Some(5)
 right: None
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace


failures:
    case_02_broken

test result: FAILED. 2 passed; 1 failed; 1 ignored; 0 measured; 3 filtered out; finished in 2.34s

";

    #[test]
    fn results_and_summary() {
        let outcome = parse(OUTPUT);
        assert_eq!(outcome.names(Status::Passed), ["case_01_plain", "case_04_late"]);
        assert_eq!(outcome.names(Status::Ignored), ["case_03_skipped"]);
        assert_eq!(outcome.failed(), ["case_02_broken"]);
        assert_eq!(
            outcome.summary,
            Some(Summary {
                passed: 2,
                failed: 1,
                ignored: 1,
                filtered_out: 3
            })
        );
    }

    #[test]
    fn failure_output_captured() {
        let outcome = parse(OUTPUT);
        let captured = &outcome.failure_output["case_02_broken"];
        assert!(captured.contains("left: Some(5)"), "{captured}");
        assert!(!captured.contains("test result"), "{captured}");
        assert_eq!(
            key_lines(captured, 3),
            [
                "panicked at listns/tests/cases.rs:120:9",
                "assertion `left == right` failed: NS_GET_ID on net:[4026532174]",
                "  left: Some(5)",
            ]
        );
    }

    #[test]
    fn single_thread_status_after_output() {
        let output = "test follow_unshare ... listns: following namespace changes\nFAILED\ntest next_one ... ok\n";
        let outcome = parse(output);
        assert_eq!(
            outcome.results,
            [
                ("follow_unshare".to_owned(), Status::Failed),
                ("next_one".to_owned(), Status::Passed)
            ]
        );
    }

    #[test]
    fn killed_binary_keeps_finished_results() {
        let output = "running 3 tests\ntest a ... ok\ntest b has been running for over 60 seconds\n";
        let outcome = parse(output);
        assert_eq!(outcome.names(Status::Passed), ["a"]);
        assert!(outcome.summary.is_none());
    }

    #[test]
    fn carriage_returns_ignored() {
        let outcome = parse(
            "test a ... ok\r\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s\r\n",
        );
        assert_eq!(outcome.names(Status::Passed), ["a"]);
        assert_eq!(outcome.summary.map(|summary| summary.passed), Some(1));
    }

    #[test]
    fn list_output_parsed() {
        let output = "discover::mounts::tests::parses_line: test\ncases_bench: bench\nother: test\n";
        assert_eq!(parse_list(output), ["discover::mounts::tests::parses_line", "other"]);
    }

    #[test]
    fn key_lines_without_panic() {
        let captured = "listns: starting\nerror: failed to attach sys_enter_unshare\n\n";
        assert_eq!(key_lines(captured, 1), ["error: failed to attach sys_enter_unshare"]);
        assert!(key_lines("", 2).is_empty());
    }
}
