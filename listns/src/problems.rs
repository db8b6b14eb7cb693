//! Counts of what a scan could not inspect, by reason, so nothing is dropped
//! silently.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;

/// Reason a task, file or namespace could not be inspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// EACCES or EPERM: usually not root, or a process protected by the kernel.
    PermissionDenied,
    /// ENOENT or ESRCH: the task exited between listing and reading it.
    Vanished,
    /// The BPF task iterator did not visit a process that `/proc` lists
    /// (PID 1 on some hardened kernels); it was read through `/proc` instead.
    NotIterated,
    /// The kernel lacks the interface the read needs (an error of kind
    /// [`io::ErrorKind::Unsupported`], whose message names it).
    Unsupported,
    /// Any other error.
    Failed,
}

impl Reason {
    pub fn from_error(err: &io::Error) -> Reason {
        if err.kind() == io::ErrorKind::Unsupported {
            return Reason::Unsupported;
        }
        match err.raw_os_error() {
            Some(libc::EACCES) | Some(libc::EPERM) => Reason::PermissionDenied,
            Some(libc::ENOENT) | Some(libc::ESRCH) => Reason::Vanished,
            _ => Reason::Failed,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Reason::PermissionDenied => "permission denied",
            Reason::Vanished => "vanished during the scan",
            Reason::NotIterated => "not visited by the BPF task iterator, read through /proc",
            Reason::Unsupported => "not supported by this kernel",
            Reason::Failed => "failed",
        }
    }
}

/// Kind of failure: the reason and the item that could not be read, e.g.
/// `(PermissionDenied, "namespace links")`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProblemKind {
    pub reason: Reason,
    pub what: &'static str,
}

/// One row of the report: how often it happened, and the PIDs involved.
#[derive(Debug, Clone, Default)]
pub struct ProblemCount {
    /// Failures counted: one per task, fd or file that could not be read.
    pub count: u64,
    /// The distinct PIDs involved.
    pub pids: BTreeSet<i32>,
    /// The first error message of a `Failed` or `Unsupported` row.
    pub example: Option<String>,
}

impl ProblemCount {
    /// Returns the lowest [`SHOWN_PIDS`] PIDs, which the report names.
    pub fn first_pids(&self) -> Vec<i32> {
        self.pids.iter().copied().take(SHOWN_PIDS).collect()
    }
}

/// Number of PIDs the report names per row.
const SHOWN_PIDS: usize = 10;

/// Failures of one scan, by kind.
#[derive(Debug, Clone, Default)]
pub struct Problems {
    pub rows: BTreeMap<ProblemKind, ProblemCount>,
}

impl Problems {
    /// Counts one failure to read `what` of `pid` (0 if no PID is involved).
    pub fn record(&mut self, what: &'static str, pid: i32, err: &io::Error) {
        let reason = Reason::from_error(err);
        log::debug!("could not read {what} of PID {pid}: {err}");
        let row = self.rows.entry(ProblemKind { reason, what }).or_default();
        row.count += 1;
        if pid != 0 {
            row.pids.insert(pid);
        }
        let explained = matches!(reason, Reason::Failed | Reason::Unsupported);
        if explained && row.example.is_none() {
            row.example = Some(err.to_string());
        }
    }

    /// Counts one item of `pid` that was not read for `reason`, with no
    /// error behind it.
    pub fn record_reason(&mut self, what: &'static str, pid: i32, reason: Reason) {
        log::debug!("{what} of PID {pid}: {}", reason.name());
        let row = self.rows.entry(ProblemKind { reason, what }).or_default();
        row.count += 1;
        if pid != 0 {
            row.pids.insert(pid);
        }
    }

    /// Adds the counts of another scan worker.
    pub fn merge(&mut self, other: Problems) {
        for (kind, theirs) in other.rows {
            let row = self.rows.entry(kind).or_default();
            row.count += theirs.count;
            row.pids.extend(theirs.pids);
            if row.example.is_none() {
                row.example = theirs.example;
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Returns the number of failures with this reason, over all rows.
    pub fn count(&self, reason: Reason) -> u64 {
        self.rows
            .iter()
            .filter(|(k, _)| k.reason == reason)
            .map(|(_, v)| v.count)
            .sum()
    }
}

/// One line per row, e.g.
/// `  namespace links: permission denied, 18 times in 1 process (PID 1)`.
impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (kind, row) in &self.rows {
            write!(f, "  {}: {}", kind.what, kind.reason.name())?;
            if let Some(example) = &row.example {
                write!(f, " ({example})")?;
            }
            match row.count {
                1 => write!(f, ", once")?,
                n => write!(f, ", {n} times")?,
            }
            if !row.pids.is_empty() {
                let pids: Vec<String> = row.first_pids().iter().map(i32::to_string).collect();
                let more = if row.pids.len() > SHOWN_PIDS { ", ..." } else { "" };
                let noun = if row.pids.len() == 1 { "process" } else { "processes" };
                write!(f, " in {} {noun} (PID {}{more})", row.pids.len(), pids.join(", "))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_reasons() {
        let cases = [
            (io::Error::from_raw_os_error(libc::EACCES), Reason::PermissionDenied),
            (io::Error::from_raw_os_error(libc::ESRCH), Reason::Vanished),
            (io::Error::from_raw_os_error(libc::ENOTTY), Reason::Failed),
            (
                io::Error::new(io::ErrorKind::Unsupported, "needs Linux 6.11"),
                Reason::Unsupported,
            ),
        ];
        for (error, reason) in cases {
            assert_eq!(Reason::from_error(&error), reason, "{error}");
        }
    }

    #[test]
    fn unsupported_row_keeps_message() {
        let mut problems = Problems::default();
        let error = io::Error::new(io::ErrorKind::Unsupported, "the ioctl needs Linux 6.11");
        problems.record("pending pid namespace", 42, &error);
        problems.record("pending pid namespace", 43, &error);

        assert_eq!(problems.count(Reason::Unsupported), 2);
        assert_eq!(
            problems.to_string(),
            "  pending pid namespace: not supported by this kernel (the ioctl needs Linux 6.11), \
             2 times in 2 processes (PID 42, 43)\n"
        );
    }
}
