//! Starting the tracers the benchmark compares, and waiting until each one
//! is attached: `listns --follow --json` and bpftrace with `hooks.bt`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::process::Background;
use crate::bench::interrupt;
use crate::system;

/// The stderr line that `listns --follow` prints once its eBPF programs are
/// attached and its snapshot is written.
pub const LISTNS_READY: &str = "listns: following namespace changes through eBPF";
/// The stderr line that `listns --follow` prints when it falls back to polling.
const LISTNS_POLLING: &str = "listns: following namespace changes by polling";
/// Time a tracer gets to attach. bpftrace compiles its script with LLVM first.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The tracepoints of `hooks.bt`, the same as in listns/src/trace/hooks.rs.
pub const BPFTRACE_PROBES: [&str; 13] = [
    "tracepoint:sched:sched_process_fork",
    "tracepoint:sched:sched_process_exec",
    "tracepoint:sched:sched_process_exit",
    "tracepoint:syscalls:sys_enter_unshare",
    "tracepoint:syscalls:sys_exit_unshare",
    "tracepoint:syscalls:sys_enter_setns",
    "tracepoint:syscalls:sys_exit_setns",
    "tracepoint:syscalls:sys_enter_mount",
    "tracepoint:syscalls:sys_exit_mount",
    "tracepoint:syscalls:sys_enter_move_mount",
    "tracepoint:syscalls:sys_exit_move_mount",
    "tracepoint:syscalls:sys_enter_umount",
    "tracepoint:syscalls:sys_exit_umount",
];

/// Destination of the events of `listns --follow --json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListnsOutput {
    /// /dev/null, as in `listns --follow --json > /dev/null`.
    DevNull,
    /// A pipe that this process reads line by line.
    Piped,
}

/// A running `listns --follow --json`, attached and past its snapshot.
pub struct Follower {
    pub process: Background,
    /// Just before the spawn.
    pub started: Instant,
    /// Arrival of the readiness line ([`LISTNS_READY`]).
    pub ready: Instant,
}

/// Starts `listns --follow --json` and waits for its readiness line on stderr.
pub fn start_listns(listns: &Path, output: ListnsOutput) -> Result<Follower> {
    let mut command = Command::new(listns);
    command
        .args(["--follow", "--json"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    match output {
        ListnsOutput::DevNull => command.stdout(Stdio::null()),
        ListnsOutput::Piped => command.stdout(Stdio::piped()),
    };

    let started = Instant::now();
    let child = command
        .spawn()
        .with_context(|| format!("failed to start {} --follow --json", listns.display()))?;
    let mut process = Background::new("listns --follow --json", child)?;

    let deadline = started + START_TIMEOUT;
    let ready = loop {
        interrupt::check()?;
        if Instant::now() >= deadline {
            bail!(
                "listns --follow --json printed no readiness line ({LISTNS_READY:?}) within {START_TIMEOUT:?}; \
                 its last error output: {:?}",
                stderr_tail(&process)
            );
        }
        let stderr = process.stderr.as_ref().expect("stderr is piped");
        let line = match stderr.next_line(Duration::from_millis(100)) {
            Ok(Some(line)) => line,
            Ok(None) => continue,
            Err(_) => return Err(process.ended_early("its readiness line")),
        };
        if line.text.starts_with(LISTNS_READY) {
            break line.at;
        }
        if line.text.starts_with(LISTNS_POLLING) {
            bail!(
                "listns --follow fell back to polling, so its eBPF programs did not load: \
                 run `{} --follow --backend ebpf` as root to see why",
                listns.display()
            );
        }
    };
    if let Some(stderr) = &mut process.stderr {
        stderr.discard();
    }
    Ok(Follower {
        process,
        started,
        ready,
    })
}

fn stderr_tail(process: &Background) -> String {
    process.stderr.as_ref().map(|stderr| stderr.tail()).unwrap_or_default()
}

/// Returns the path of the bpftrace script with the same tracepoints as listns.
pub fn bpftrace_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bench/trace/hooks.bt")
}

/// Returns the path of bpftrace, after installing Debian's package with apt-get if it is missing.
pub fn find_or_install_bpftrace() -> Result<PathBuf> {
    if let Some(bpftrace) = system::find_command("bpftrace") {
        return Ok(bpftrace);
    }
    eprintln!("xtask bench: bpftrace not found; installing the Debian package bpftrace");
    if system::find_command("apt-get").is_none() {
        bail!("bpftrace not found, and apt-get not found to install it: install bpftrace, then rerun");
    }
    for args in [
        &["update"][..],
        &["install", "--yes", "--no-install-recommends", "bpftrace"][..],
    ] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .context("failed to start apt-get")?;
        if !status.success() {
            bail!(
                "`apt-get {}` failed ({status}): install bpftrace by hand, then rerun",
                args.join(" ")
            );
        }
    }
    system::find_command("bpftrace")
        .context("installed the package bpftrace but still cannot find bpftrace: check PATH")
}

/// Checks that this kernel offers every probe of [`BPFTRACE_PROBES`]
/// (`bpftrace -l`) and that `hooks.bt` attaches to each of them.
pub fn check_bpftrace_probes(bpftrace: &Path) -> Result<()> {
    let mut available = BTreeSet::new();
    for pattern in ["tracepoint:sched:*", "tracepoint:syscalls:*"] {
        let output = Command::new(bpftrace)
            .args(["-l", pattern])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("failed to start `{} -l {pattern}`", bpftrace.display()))?;
        if !output.status.success() {
            bail!(
                "`bpftrace -l {pattern}` failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        available.extend(String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned));
    }
    let missing: Vec<&str> = BPFTRACE_PROBES
        .iter()
        .copied()
        .filter(|probe| !available.contains(*probe))
        .collect();
    if !missing.is_empty() {
        bail!(
            "this kernel lacks tracepoints that listns and the bpftrace comparison attach to: {} \
             (`bpftrace -l` does not list them)",
            missing.join(", ")
        );
    }

    let script_path = bpftrace_script();
    let script =
        fs::read_to_string(&script_path).with_context(|| format!("failed to read {}", script_path.display()))?;
    let unused: Vec<&str> = BPFTRACE_PROBES
        .iter()
        .copied()
        .filter(|probe| !script.lines().any(|line| line.starts_with(&format!("{probe} {{"))))
        .collect();
    if !unused.is_empty() {
        bail!(
            "{} attaches no program to {}: add them",
            script_path.display(),
            unused.join(", ")
        );
    }
    Ok(())
}

/// Starts bpftrace with `hooks.bt` and waits until its exec probe reports a
/// /bin/true started after it, which shows that the probes are attached.
/// bpftrace prints "Attaching N probes..." before it attaches, so that line
/// cannot serve, and BEGIN fires before the other probes attach. Its output
/// goes to the file `output`, as listns writes to /dev/null, so that no
/// reader competes for the CPUs.
pub fn start_bpftrace(bpftrace: &Path, output: &Path) -> Result<Background> {
    let script = bpftrace_script();
    // bpftrace appends to an existing file; start each run empty.
    fs::write(output, "").with_context(|| format!("failed to create {}", output.display()))?;
    let child = Command::new(bpftrace)
        .arg("-o")
        .arg(output)
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start {} {}", bpftrace.display(), script.display()))?;
    let mut process = Background::new("bpftrace", child)?;

    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        interrupt::check()?;
        if Instant::now() >= deadline {
            bail!(
                "bpftrace reported no exec of /bin/true within {START_TIMEOUT:?}; its last error output: {:?}",
                stderr_tail(&process)
            );
        }
        if process.try_status()?.is_some() {
            return Err(process.ended_early("the exec line of /bin/true"));
        }
        let mut probe = Command::new("/bin/true")
            .stdin(Stdio::null())
            .spawn()
            .context("failed to start /bin/true")?;
        let marker = format!("exec {} ", probe.id());
        probe.wait().context("failed to wait for /bin/true")?;

        // bpftrace writes each printf as it arrives; give it a moment.
        thread::sleep(Duration::from_millis(100));
        let text = fs::read_to_string(output).with_context(|| format!("failed to read {}", output.display()))?;
        if text.lines().any(|line| line.starts_with(&marker)) {
            break;
        }
    }
    if let Some(stderr) = &mut process.stderr {
        stderr.discard();
    }
    Ok(process)
}
