//! Kernel and process limits that the benchmark raises so that it can hold its
//! tasks. Sysctls go back to their old values when the guard drops.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rustix::process::{Resource, Rlimit};

/// Tasks that other programs may start during the benchmark, kept free in every limit.
const HEADROOM: u64 = 1000;

/// PIDs below 300 are not reused after the PID counter wraps (RESERVED_PIDS,
/// include/linux/pid.h in current kernels), so they do not count towards usable PIDs.
const RESERVED_PIDS: u64 = 300;

/// Largest value of kernel.pid_max on 64-bit kernels (PID_MAX_LIMIT, 2^22).
const PID_MAX_LIMIT: u64 = 4_194_304;

/// Sysctls raised for the benchmark, restored on drop.
#[derive(Default)]
pub struct RaisedLimits {
    /// Path under /proc/sys and the value it had before.
    originals: Vec<(PathBuf, String)>,
}

/// Raises kernel.pid_max, kernel.threads-max, vm.max_map_count and RLIMIT_NPROC
/// where they are too low for `max_tasks` more tasks. Needs root.
pub fn raise_for(max_tasks: u32) -> Result<RaisedLimits> {
    let max_tasks = u64::from(max_tasks);
    let needed_tasks = count_host_tasks()? + max_tasks + HEADROOM;
    if needed_tasks + RESERVED_PIDS > PID_MAX_LIMIT {
        bail!("{max_tasks} tasks do not fit under the kernel's PID limit of {PID_MAX_LIMIT}: benchmark fewer tasks");
    }

    let mut raised = RaisedLimits::default();
    raised.raise_sysctl("kernel/pid_max", needed_tasks + RESERVED_PIDS)?;
    raised.raise_sysctl("kernel/threads-max", needed_tasks)?;
    // Every thread stack is two mappings (the stack and its guard page), and
    // vm.max_map_count limits mappings per process.
    raised.raise_sysctl("vm/max_map_count", 2 * max_tasks + HEADROOM)?;
    raise_nproc(needed_tasks)?;
    Ok(raised)
}

/// Counts the tasks on the host from the fourth field of /proc/loadavg ("running/total").
pub fn count_host_tasks() -> Result<u64> {
    let loadavg = fs::read_to_string("/proc/loadavg").context("failed to read /proc/loadavg")?;
    loadavg
        .split_whitespace()
        .nth(3)
        .and_then(|field| field.split_once('/'))
        .and_then(|(_, total)| total.parse().ok())
        .with_context(|| format!("no task count in /proc/loadavg: {loadavg:?}"))
}

impl RaisedLimits {
    fn raise_sysctl(&mut self, name: &str, minimum: u64) -> Result<()> {
        let path = Path::new("/proc/sys").join(name);
        let dotted = name.replace('/', ".");
        let original = fs::read_to_string(&path).with_context(|| format!("failed to read {}", path.display()))?;
        let current: u64 = original
            .trim()
            .parse()
            .with_context(|| format!("{} contains {original:?}, not a number", path.display()))?;
        if current >= minimum {
            return Ok(());
        }

        fs::write(&path, minimum.to_string()).with_context(|| {
            format!("failed to raise {dotted} from {current} to {minimum}: run `sysctl -w {dotted}={minimum}` as root, or benchmark fewer tasks")
        })?;
        eprintln!("xtask bench: raised {dotted} from {current} to {minimum}; it is restored at the end");
        self.originals.push((path, original));
        Ok(())
    }
}

impl Drop for RaisedLimits {
    fn drop(&mut self) {
        for (path, original) in self.originals.iter().rev() {
            if let Err(err) = fs::write(path, original) {
                eprintln!(
                    "xtask bench: failed to restore {} to {}: {err}; write it back by hand",
                    path.display(),
                    original.trim()
                );
            }
        }
    }
}

/// Raises this process's RLIMIT_NPROC, which the held tasks inherit. Root is
/// exempt from it, but a raise costs nothing and keeps the limit from mattering.
fn raise_nproc(needed_tasks: u64) -> Result<()> {
    let limit = rustix::process::getrlimit(Resource::Nproc);
    // `None` means unlimited.
    if limit.current.is_none_or(|current| current >= needed_tasks) {
        return Ok(());
    }
    let maximum = limit.maximum.map(|maximum| maximum.max(needed_tasks));
    rustix::process::setrlimit(
        Resource::Nproc,
        Rlimit {
            current: Some(needed_tasks),
            maximum,
        },
    )
    .with_context(|| {
        format!("failed to raise RLIMIT_NPROC to {needed_tasks}: raise it with `ulimit -u {needed_tasks}`")
    })?;
    Ok(())
}
