//! The `host` row of the matrix: runs the same test binaries directly on
//! this machine's kernel, with the same arguments and timeout as in a guest.

use std::fs::{self, File};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rustix::process::{Pid, Signal, kill_process_group};

use super::guest::Settings;
use super::libtest;
use super::report::{BinaryRun, End, KernelRun};
use super::test_binaries::TestBinary;

/// How often a running test binary is checked for its exit and its timeout.
const POLL: Duration = Duration::from_millis(200);

/// Runs every binary in `tests` and returns the results, with logs in `logs`.
pub fn run(kernel: &str, tests: &[TestBinary], settings: &Settings, logs: &Path) -> Result<KernelRun> {
    let started = Instant::now();
    let release = rustix::system::uname().release().to_string_lossy().into_owned();
    let mut binaries = Vec::new();
    for test in tests {
        binaries.push(run_binary(kernel, test, settings, logs)?);
    }
    Ok(KernelRun {
        kernel: kernel.to_owned(),
        description: format!("this machine's kernel {release}"),
        binaries,
        problem: None,
        boot: None,
        total: started.elapsed(),
        logs: logs.to_path_buf(),
    })
}

fn run_binary(kernel: &str, test: &TestBinary, settings: &Settings, logs: &Path) -> Result<BinaryRun> {
    let log_path = logs.join(format!("{}.log", test.name));
    let log = File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let stderr = log
        .try_clone()
        .with_context(|| format!("cannot duplicate the handle of {}", log_path.display()))?;

    eprintln!("xtask vm: {kernel}: {}: running {} tests", test.name, test.tests.len());
    let started = Instant::now();
    let mut child = Command::new(&test.path)
        .arg("--test-threads")
        .arg(settings.test_threads.to_string())
        .args(&settings.args)
        .current_dir(&settings.workdir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        // A group of its own lets a timeout stop the binary with the processes its tests started.
        .process_group(0)
        .spawn()
        .with_context(|| format!("failed to start {}", test.path.display()))?;

    let timeout = Duration::from_secs(settings.test_timeout);
    let end = loop {
        if let Some(status) = child.try_wait().context("failed to wait for a test binary")? {
            let code = status
                .code()
                .or_else(|| status.signal().map(|signal| 128 + signal))
                .unwrap_or(-1);
            break End::Exited(code);
        }
        if started.elapsed() >= timeout {
            let group = Pid::from_child(&child);
            eprintln!(
                "xtask vm: {kernel}: {}: timed out after {} s, killing process group {}",
                test.name,
                timeout.as_secs(),
                group.as_raw_nonzero()
            );
            // The group is the one created above for this binary.
            let _ = kill_process_group(group, Signal::KILL);
            child.wait().context("failed to wait for a killed test binary")?;
            break End::TimedOut;
        }
        thread::sleep(POLL);
    };

    let output = fs::read(&log_path).with_context(|| format!("cannot read {}", log_path.display()))?;
    let run = BinaryRun {
        name: test.name.clone(),
        listed: test.tests.clone(),
        outcome: libtest::parse(&String::from_utf8_lossy(&output)),
        end,
        duration: Some(started.elapsed()),
    };
    let counts = run.counts();
    eprintln!(
        "xtask vm: {kernel}: {}: {} passed, {} failed, {} ignored, {} not run in {:.0} s",
        test.name,
        counts.passed,
        counts.failed,
        counts.ignored,
        counts.not_run,
        started.elapsed().as_secs_f64()
    );
    Ok(run)
}
