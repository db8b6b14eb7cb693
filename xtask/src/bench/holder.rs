//! The tasks that the benchmark keeps alive while the tools scan /proc.
//!
//! The benchmark re-executes xtask in the hidden `hold-tasks` mode, which
//! starts the tasks and keeps them until its standard input, a pipe from the
//! benchmark, reaches end of file. Forked children read the same pipe, so every
//! task ends when the benchmark ends, even when it is killed with SIGKILL.

use std::fmt;
use std::fs;
use std::io::{self, PipeWriter, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use rustix::process::{Pid, Signal, WaitOptions};

use super::interrupt;

/// Arrangement of the benchmark's tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shape {
    /// Threads of one process.
    Threads,
    /// Separate single-threaded processes.
    Processes,
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Shape::Threads => "threads",
            Shape::Processes => "processes",
        })
    }
}

/// Arguments of the hidden `hold-tasks` mode.
#[derive(Debug, clap::Args)]
pub struct HoldArgs {
    #[arg(long, value_enum)]
    shape: Shape,
    #[arg(long)]
    count: u32,
}

/// Stack size of each held thread. The threads only park, and a small stack
/// keeps 10,000 of them cheap.
const THREAD_STACK_BYTES: usize = 64 * 1024;

/// Limits that stop a process from starting more tasks, named in errors.
const LIMITS_HINT: &str =
    "check kernel.pid_max, kernel.threads-max, vm.max_map_count, RLIMIT_NPROC and the cgroup's pids.max";

/// Maximum time for the holder to start its tasks.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// Maximum time for the holder and its children to exit after the pipe closes.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Runs the `hold-tasks` mode: starts the tasks and keeps them until standard input closes.
pub fn hold(args: &HoldArgs) -> Result<()> {
    match args.shape {
        Shape::Threads => hold_threads(args.count),
        Shape::Processes => hold_processes(args.count),
    }
}

fn hold_threads(count: u32) -> Result<()> {
    for index in 0..count {
        thread::Builder::new()
            .stack_size(THREAD_STACK_BYTES)
            .spawn(|| {
                loop {
                    thread::park();
                }
            })
            .with_context(|| format!("failed to start thread {} of {count}: {LIMITS_HINT}", index + 1))?;
    }
    wait_for_end_of_input();
    // Returning from main ends the process with all its threads.
    Ok(())
}

fn hold_processes(count: u32) -> Result<()> {
    let mut children = ForkedChildren(Vec::with_capacity(count as usize));
    for index in 0..count {
        // SAFETY: this mode starts no threads, so the process is single-threaded
        // when it forks, and the child calls only read(2) and _exit(2).
        match unsafe { libc::fork() } {
            -1 => {
                let err = io::Error::last_os_error();
                bail!("failed to fork process {} of {count}: {err}: {LIMITS_HINT}", index + 1);
            }
            0 => wait_in_child(),
            pid => children.0.push(pid),
        }
    }
    wait_for_end_of_input();
    Ok(())
}

/// Blocks until standard input reaches end of file or fails.
fn wait_for_end_of_input() {
    let mut buffer = [0u8; 64];
    let mut stdin = io::stdin().lock();
    loop {
        match stdin.read(&mut buffer) {
            Ok(0) => return,
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Body of a forked child: waits for end of file on standard input, then exits
/// without running destructors or atexit handlers of the parent's copy.
fn wait_in_child() -> ! {
    let mut byte = 0u8;
    loop {
        // SAFETY: reads at most one byte into a local that outlives the call.
        let read = unsafe { libc::read(0, (&raw mut byte).cast(), 1) };
        if read == 0 || (read < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted) {
            break;
        }
    }
    // SAFETY: _exit ends the process at once, which is all the child should do.
    unsafe { libc::_exit(0) }
}

/// PIDs of forked children, killed and reaped on drop so that none outlives the holder.
struct ForkedChildren(Vec<libc::pid_t>);

impl Drop for ForkedChildren {
    fn drop(&mut self) {
        let pids: Vec<Pid> = self.0.iter().filter_map(|&raw| Pid::from_raw(raw)).collect();
        for &pid in &pids {
            let _ = rustix::process::kill_process(pid, Signal::KILL);
        }
        for &pid in &pids {
            let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
        }
    }
}

/// Tasks held by a `hold-tasks` process. Dropping it ends and reaps them all.
pub struct HeldTasks {
    holder: Child,
    /// Write end of the holder's standard input; closing it ends every held task.
    release: Option<PipeWriter>,
    shape: Shape,
    count: u32,
}

impl HeldTasks {
    /// Starts `count` tasks of the given shape and waits until /proc shows all of them.
    pub fn start(shape: Shape, count: u32) -> Result<Self> {
        // Both ends are close-on-exec, so only the holder's standard input
        // inherits the read end and no child ever gets the write end.
        let (reader, writer) = io::pipe().context("failed to create a pipe for the task holder")?;
        // /proc/self/exe is this very binary even after a rebuild replaced the
        // file on disk, which env::current_exe() would no longer find.
        let holder = Command::new("/proc/self/exe")
            .args([
                "hold-tasks",
                "--shape",
                &shape.to_string(),
                "--count",
                &count.to_string(),
            ])
            .stdin(reader)
            .stdout(Stdio::null())
            // A process group of its own keeps Ctrl-C in the terminal away from
            // the held tasks: the benchmark catches it and releases them itself.
            .process_group(0)
            .spawn()
            .context("failed to start the task holder (xtask hold-tasks)")?;

        let mut held = HeldTasks {
            holder,
            release: Some(writer),
            shape,
            count,
        };
        held.wait_until_started()?;
        Ok(held)
    }

    fn wait_until_started(&mut self) -> Result<()> {
        let started_at = Instant::now();
        loop {
            interrupt::check()?;
            let started = match self.count_started() {
                Ok(started) => started,
                Err(err) => match self.holder.try_wait()? {
                    Some(status) => bail!(
                        "the task holder exited ({status}) before it started {} {}: see its error above",
                        self.count,
                        self.shape
                    ),
                    None => return Err(err),
                },
            };
            if started >= self.count as usize {
                return Ok(());
            }
            if let Some(status) = self.holder.try_wait()? {
                bail!(
                    "the task holder exited ({status}) after it started {started} of {} {}: see its error above",
                    self.count,
                    self.shape
                );
            }
            if started_at.elapsed() > START_TIMEOUT {
                bail!(
                    "timed out after {} s with {started} of {} {} started: {LIMITS_HINT}",
                    START_TIMEOUT.as_secs(),
                    self.count,
                    self.shape
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Counts the held tasks that exist now, as /proc shows them.
    fn count_started(&self) -> Result<usize> {
        let pid = self.holder.id();
        match self.shape {
            Shape::Threads => {
                let dir = format!("/proc/{pid}/task");
                let entries = fs::read_dir(&dir).with_context(|| format!("failed to read {dir}"))?;
                // The holder's main thread is not one of the held threads.
                Ok(entries.count().saturating_sub(1))
            }
            Shape::Processes => {
                // Needs CONFIG_PROC_CHILDREN. Without it the read fails and the error names the file.
                let path = format!("/proc/{pid}/task/{pid}/children");
                let children = fs::read_to_string(&path).with_context(|| format!("failed to read {path}"))?;
                Ok(children.split_whitespace().count())
            }
        }
    }
}

impl Drop for HeldTasks {
    fn drop(&mut self) {
        // End of file on the pipe makes the holder and each forked child exit.
        drop(self.release.take());

        let stop_started = Instant::now();
        while stop_started.elapsed() < STOP_TIMEOUT {
            match self.holder.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) => thread::sleep(POLL_INTERVAL),
                Err(_) => break,
            }
        }

        let pid = self.holder.id();
        eprintln!(
            "xtask bench: the task holder (PID {pid}) did not exit within {} s of its input closing; killing its process group",
            STOP_TIMEOUT.as_secs()
        );
        if let Some(group) = Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process_group(group, Signal::KILL);
        }
        let _ = self.holder.wait();
    }
}
