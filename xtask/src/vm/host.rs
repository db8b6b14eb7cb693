//! The `host` row of the matrix: runs the same test binaries directly on
//! this machine's kernel, with the same arguments and timeout as in a guest.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rustix::process::{Pid, Signal, kill_process, kill_process_group};

use super::guest::Settings;
use super::libtest;
use super::report::{BinaryRun, End, KernelRun};
use super::test_binaries::TestBinary;

/// How often a running test binary is checked for its exit and its timeout.
const POLL: Duration = Duration::from_millis(200);

/// How long `listns --follow -v` may take to attach its hooks and take its
/// snapshot, as /init allows it in a guest.
const FOLLOWER_START: Duration = Duration::from_secs(300);

/// The line on stderr after which `listns --follow` has attached its hooks.
const FOLLOWER_READY: &str = "following namespace changes";

/// Runs every binary in `tests` and returns the results, with logs in `logs`.
pub fn run(kernel: &str, tests: &[TestBinary], settings: &Settings, logs: &Path) -> Result<KernelRun> {
    let started = Instant::now();
    let release = rustix::system::uname().release().to_string_lossy().into_owned();
    let hooks = record_hooks(&settings.listns, logs)?;
    let mut binaries = Vec::new();
    for test in tests {
        binaries.push(run_binary(kernel, test, settings, logs)?);
    }
    Ok(KernelRun {
        kernel: kernel.to_owned(),
        description: format!("this machine's kernel {release}"),
        binaries,
        hooks,
        problem: None,
        boot: None,
        total: started.elapsed(),
        logs: logs.to_path_buf(),
    })
}

/// Runs `listns --follow -v` until it is ready, stops it with SIGINT and
/// returns the lines that report whether each hook attached, as /init does in a
/// guest. Its whole log goes to `hooks.log`.
fn record_hooks(listns: &Path, logs: &Path) -> Result<Vec<String>> {
    let mut child = Command::new(listns)
        .args(["--follow", "-v"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start {} --follow -v", listns.display()))?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let (sender, lines) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });

    let deadline = Instant::now() + FOLLOWER_START;
    let mut log = Vec::new();
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let ready = line.contains(FOLLOWER_READY);
                log.push(line);
                if ready {
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                eprintln!(
                    "xtask vm: host: listns --follow -v was not ready after {} s; stopping it",
                    FOLLOWER_START.as_secs()
                );
                break;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // The child is the follower started above, and SIGINT ends it cleanly.
    let _ = kill_process(Pid::from_child(&child), Signal::INT);
    log.extend(lines.iter());
    let _ = reader.join();
    child.wait().context("failed to wait for listns --follow")?;

    let path = logs.join("hooks.log");
    fs::write(&path, log.join("\n") + "\n").with_context(|| format!("cannot write {}", path.display()))?;
    Ok(hook_lines(&log))
}

/// Returns the lines of a `listns --follow -v` log that report whether a hook
/// attached, without the `listns: ` prefix of the log format.
fn hook_lines(log: &[String]) -> Vec<String> {
    log.iter()
        .filter_map(|line| line.strip_prefix("listns: "))
        .filter(|message| {
            message.strip_prefix("hook ").is_some_and(|rest| {
                let name_end = rest.find(' ').unwrap_or(rest.len());
                let after = &rest[name_end..];
                after.starts_with(" attached: ") || after.starts_with(" not attached")
            })
        })
        .map(str::to_owned)
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_lines_of_follow_log() {
        let log: Vec<String> = [
            "listns: debug: [listns::trace::load] hook fork: attached tp_btf/sched_process_fork",
            "listns: hook fork attached: tp_btf/sched_process_fork",
            "listns: hook fork: a better attachment failed: x",
            "listns: hook ns_free not attached, so frees go unseen: fentry (needs Linux 5.5+): EPERM",
            "listns: following namespace changes through eBPF (Ctrl-C to stop)",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(
            hook_lines(&log),
            [
                "hook fork attached: tp_btf/sched_process_fork",
                "hook ns_free not attached, so frees go unseen: fentry (needs Linux 5.5+): EPERM",
            ]
        );
    }
}
