//! Boots one kernel with the test initramfs under QEMU and collects the
//! results that the guest's /init prints on its second serial port.
//!
//! KVM is not used: on the machines this was developed on, /dev/kvm opens
//! but a guest never gets past the kernel's decompressor. TCG with one host
//! thread per vCPU boots Debian's kernels to /init in about 2.5 s.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::libtest;
use super::report::{BinaryRun, End, KernelRun};
use super::test_binaries::TestBinary;

/// The machine that boots a kernel.
#[derive(Debug)]
pub struct Machine {
    pub qemu: PathBuf,
    pub memory_mib: u64,
    pub cpus: usize,
    /// Time from starting QEMU after which it is killed.
    pub timeout: Duration,
}

/// A kernel and initramfs to boot, and the directory for its logs.
#[derive(Debug)]
pub struct Boot<'a> {
    /// The kernel's name in the matrix.
    pub kernel: &'a str,
    pub description: String,
    pub vmlinuz: &'a Path,
    pub initramfs: &'a Path,
    pub logs: &'a Path,
}

/// The exit status of coreutils `timeout` when the command timed out, and
/// after it had to send SIGKILL (128 + 9).
const TIMEOUT_STATUSES: [i32; 2] = [124, 137];

/// Lines that /init prints around the tests' output.
#[derive(Debug, PartialEq, Eq)]
enum Marker<'a> {
    Boot(&'a str),
    Module {
        path: &'a str,
        status: i32,
    },
    /// A line of `listns --follow -v` about one hook, such as `hook fork attached: tp_btf/sched_process_fork`.
    Hook(&'a str),
    Begin(&'a str),
    End {
        binary: &'a str,
        status: i32,
    },
    Done,
}

/// Returns the QEMU command that boots `boot` on `machine`: the kernel log
/// goes to `console.log` through ttyS0, and ttyS1 is QEMU's stdout.
pub fn command(machine: &Machine, boot: &Boot) -> Command {
    let mut command = Command::new(&machine.qemu);
    command
        .args(["-nodefaults", "-display", "none", "-no-reboot"])
        .args(["-accel", "tcg,thread=multi", "-cpu", "max"])
        .args(["-m", &machine.memory_mib.to_string(), "-smp", &machine.cpus.to_string()])
        .arg("-kernel")
        .arg(boot.vmlinuz)
        .arg("-initrd")
        .arg(boot.initramfs)
        // panic=-1 reboots at once on a panic, which -no-reboot turns into QEMU's exit.
        .args(["-append", "console=ttyS0 panic=-1"])
        .arg("-serial")
        .arg(format!("file:{}", boot.logs.join("console.log").display()))
        .args(["-serial", "stdio"])
        // No network device: the tests use loopback and their own namespaces only.
        .args(["-nic", "none"]);
    command
}

/// Boots the guest, streams its output into `boot.logs` and returns the results.
pub fn run(machine: &Machine, boot: &Boot, tests: &[TestBinary]) -> Result<KernelRun> {
    let started = Instant::now();
    let qemu_stderr = boot.logs.join("qemu-stderr.log");
    let mut command = command(machine, boot);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(&qemu_stderr).with_context(|| format!("cannot create {}", qemu_stderr.display()))?);
    let mut child = command
        .spawn()
        .with_context(|| format!("failed to start {}", machine.qemu.display()))?;
    eprintln!(
        "xtask vm: {}: started QEMU (PID {}), timeout {} s; serial output in {}",
        boot.kernel,
        child.id(),
        machine.timeout.as_secs(),
        boot.logs.display()
    );

    let stdout = child.stdout.take().expect("stdout is piped");
    let (sender, lines) = mpsc::channel::<String>();
    let reader = thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            match reader.read_until(b'\n', &mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buffer);
                    let line = line.trim_end_matches(['\n', '\r']).to_owned();
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });

    let mut collector = Collector::new(boot, tests, started)?;
    let deadline = started + machine.timeout;
    let mut timed_out = false;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            timed_out = true;
            break;
        }
        match lines.recv_timeout(remaining) {
            Ok(line) => collector.line(&line)?,
            Err(RecvTimeoutError::Timeout) => {
                timed_out = true;
                break;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }

    let status = stop(&mut child, timed_out, boot.kernel)?;
    // The reader ends at EOF, which QEMU's exit or kill causes.
    let _ = reader.join();
    for line in lines.try_iter() {
        collector.line(&line)?;
    }

    let mut problem = None;
    if timed_out {
        problem = Some(format!(
            "killed QEMU after {} s (--kernel-timeout)",
            machine.timeout.as_secs()
        ));
    } else if !collector.done {
        let stderr = fs::read_to_string(&qemu_stderr).unwrap_or_default();
        problem = Some(format!(
            "the guest stopped before /init finished (QEMU {status}): see console.log{}",
            if stderr.trim().is_empty() {
                String::new()
            } else {
                format!(" and qemu-stderr.log ({})", stderr.trim())
            }
        ));
    }
    problem = match (problem, collector.module_problems()) {
        (Some(problem), Some(modules)) => Some(format!("{problem}; {modules}")),
        (problem, modules) => problem.or(modules),
    };

    let booted = collector.booted;
    let hooks = std::mem::take(&mut collector.hooks);
    Ok(KernelRun {
        kernel: boot.kernel.to_owned(),
        description: boot.description.clone(),
        binaries: collector.finish(),
        hooks,
        problem,
        boot: booted,
        total: started.elapsed(),
        logs: boot.logs.to_path_buf(),
    })
}

/// Waits for QEMU, or kills it by its PID first when it timed out.
fn stop(child: &mut Child, timed_out: bool, kernel: &str) -> Result<std::process::ExitStatus> {
    if timed_out {
        eprintln!("xtask vm: {kernel}: timed out, killing QEMU (PID {})", child.id());
        // Child::kill sends SIGKILL to this child's PID only.
        child.kill().context("failed to kill QEMU")?;
    }
    child.wait().context("failed to wait for QEMU")
}

/// Sorts the guest's output into per-binary logs and results.
struct Collector<'a> {
    kernel: &'a str,
    logs: &'a Path,
    tests: &'a [TestBinary],
    started: Instant,
    /// The whole output of ttyS1.
    guest_log: File,
    booted: Option<Duration>,
    failed_modules: Vec<String>,
    hooks: Vec<String>,
    /// The binary between BEGIN and END: name, start, log file and output so far.
    current: Option<(String, Instant, File, String)>,
    finished: Vec<BinaryRun>,
    done: bool,
}

impl<'a> Collector<'a> {
    fn new(boot: &'a Boot, tests: &'a [TestBinary], started: Instant) -> Result<Collector<'a>> {
        let path = boot.logs.join("guest.log");
        Ok(Collector {
            kernel: boot.kernel,
            logs: boot.logs,
            tests,
            started,
            guest_log: File::create(&path).with_context(|| format!("cannot create {}", path.display()))?,
            booted: None,
            failed_modules: Vec::new(),
            hooks: Vec::new(),
            current: None,
            finished: Vec::new(),
            done: false,
        })
    }

    fn line(&mut self, line: &str) -> Result<()> {
        writeln!(self.guest_log, "{line}").context("cannot write guest.log")?;
        match parse_marker(line) {
            Some(Marker::Boot(release)) => {
                let booted = self.started.elapsed();
                self.booted = Some(booted);
                eprintln!(
                    "xtask vm: {}: booted {release} in {:.1} s",
                    self.kernel,
                    booted.as_secs_f64()
                );
            }
            Some(Marker::Module { path, status }) => {
                if status != 0 {
                    eprintln!("xtask vm: {}: insmod {path} failed ({status})", self.kernel);
                    self.failed_modules.push(path.to_owned());
                }
            }
            Some(Marker::Hook(line)) => self.hooks.push(line.to_owned()),
            Some(Marker::Begin(binary)) => {
                self.end_current(End::Interrupted);
                let path = self.logs.join(format!("{binary}.log"));
                let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
                let count = self.listed(binary).len();
                eprintln!("xtask vm: {}: {binary}: running {count} tests", self.kernel);
                self.current = Some((binary.to_owned(), Instant::now(), file, String::new()));
            }
            Some(Marker::End { binary, status }) => {
                if self.current.as_ref().is_some_and(|(name, ..)| name == binary) {
                    let end = if TIMEOUT_STATUSES.contains(&status) {
                        End::TimedOut
                    } else {
                        End::Exited(status)
                    };
                    self.end_current(end);
                }
            }
            Some(Marker::Done) => self.done = true,
            None => {
                if let Some((binary, _, file, output)) = &mut self.current {
                    writeln!(file, "{line}").with_context(|| format!("cannot write the log of {binary}"))?;
                    output.push_str(line);
                    output.push('\n');
                    if line.contains(" ... FAILED") {
                        eprintln!("xtask vm: {}: {binary}: {}", self.kernel, line.trim());
                    }
                }
            }
        }
        Ok(())
    }

    fn listed(&self, binary: &str) -> &[String] {
        self.tests
            .iter()
            .find(|test| test.name == binary)
            .map_or(&[], |test| test.tests.as_slice())
    }

    fn end_current(&mut self, end: End) {
        let Some((binary, started, _, output)) = self.current.take() else {
            return;
        };
        let outcome = libtest::parse(&output);
        let run = BinaryRun {
            listed: self.listed(&binary).to_vec(),
            name: binary,
            outcome,
            end,
            duration: Some(started.elapsed()),
        };
        let counts = run.counts();
        eprintln!(
            "xtask vm: {}: {}: {} passed, {} failed, {} ignored, {} not run in {:.0} s{}",
            self.kernel,
            run.name,
            counts.passed,
            counts.failed,
            counts.ignored,
            counts.not_run,
            started.elapsed().as_secs_f64(),
            run.problem().map(|problem| format!(" ({problem})")).unwrap_or_default()
        );
        self.finished.push(run);
    }

    fn module_problems(&self) -> Option<String> {
        (!self.failed_modules.is_empty()).then(|| {
            format!(
                "insmod failed for {} (see console.log for the kernel's reason)",
                self.failed_modules.join(", ")
            )
        })
    }

    /// Returns a run for every binary, in the order of `tests`; those the guest never reached end `Interrupted`.
    fn finish(mut self) -> Vec<BinaryRun> {
        self.end_current(End::Interrupted);
        let mut runs = Vec::new();
        for test in self.tests {
            match self.finished.iter().position(|run| run.name == test.name) {
                Some(index) => runs.push(self.finished.remove(index)),
                None => runs.push(BinaryRun {
                    name: test.name.clone(),
                    listed: test.tests.clone(),
                    outcome: libtest::Outcome::default(),
                    end: End::Interrupted,
                    duration: None,
                }),
            }
        }
        runs
    }
}

/// Finds a marker of /init in `line`. It may follow output that did not end with a newline.
fn parse_marker(line: &str) -> Option<Marker<'_>> {
    let start = line.find("LISTNS-VM-")?;
    let mut words = line[start..].split_whitespace();
    let marker = match words.next()? {
        "LISTNS-VM-BOOT" => Marker::Boot(words.next()?),
        "LISTNS-VM-MODULE" => Marker::Module {
            path: words.next()?,
            status: words.next()?.parse().ok()?,
        },
        "LISTNS-VM-HOOK" => {
            let rest = line[start..].strip_prefix("LISTNS-VM-HOOK")?.trim();
            if rest.is_empty() {
                return None;
            }
            Marker::Hook(rest)
        }
        "LISTNS-VM-BEGIN" => Marker::Begin(words.next()?),
        "LISTNS-VM-END" => Marker::End {
            binary: words.next()?,
            status: words.next()?.parse().ok()?,
        },
        "LISTNS-VM-DONE" => Marker::Done,
        _ => return None,
    };
    Some(marker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_parsed() {
        assert_eq!(
            parse_marker("LISTNS-VM-BOOT 6.1.0-57-amd64"),
            Some(Marker::Boot("6.1.0-57-amd64"))
        );
        assert_eq!(
            parse_marker("LISTNS-VM-MODULE /usr/lib/modules/6.1.0-57-amd64/kernel/drivers/net/tun.ko 0"),
            Some(Marker::Module {
                path: "/usr/lib/modules/6.1.0-57-amd64/kernel/drivers/net/tun.ko",
                status: 0
            })
        );
        assert_eq!(
            parse_marker("LISTNS-VM-HOOK hook ns_free attached: kprobe/proc_free_inum"),
            Some(Marker::Hook("hook ns_free attached: kprobe/proc_free_inum"))
        );
        assert_eq!(parse_marker("LISTNS-VM-BEGIN cases"), Some(Marker::Begin("cases")));
        assert_eq!(
            parse_marker("LISTNS-VM-END follow 124"),
            Some(Marker::End {
                binary: "follow",
                status: 124
            })
        );
        assert_eq!(parse_marker("LISTNS-VM-DONE"), Some(Marker::Done));
    }

    #[test]
    fn marker_after_unterminated_output() {
        assert_eq!(
            parse_marker("partial lineLISTNS-VM-END cases 101"),
            Some(Marker::End {
                binary: "cases",
                status: 101
            })
        );
    }

    #[test]
    fn malformed_markers_ignored() {
        assert_eq!(parse_marker("test a ... ok"), None);
        assert_eq!(parse_marker("LISTNS-VM-END cases"), None);
        assert_eq!(parse_marker("LISTNS-VM-END cases x"), None);
        assert_eq!(parse_marker("LISTNS-VM-OTHER"), None);
    }

    #[test]
    fn command_has_no_network_and_two_serial_ports() {
        let machine = Machine {
            qemu: PathBuf::from("qemu-system-x86_64"),
            memory_mib: 4096,
            cpus: 2,
            timeout: Duration::from_secs(60),
        };
        let boot = Boot {
            kernel: "6.1",
            description: String::new(),
            vmlinuz: Path::new("/cache/vmlinuz"),
            initramfs: Path::new("/cache/initramfs.cpio"),
            logs: Path::new("/logs"),
        };
        let args: Vec<String> = command(&machine, &boot)
            .get_args()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(
            joined.contains("-serial file:/logs/console.log -serial stdio"),
            "{joined}"
        );
        assert!(joined.contains("-nic none"), "{joined}");
        assert!(joined.contains("-m 4096 -smp 2"), "{joined}");
        assert!(joined.contains("-accel tcg,thread=multi"), "{joined}");
    }
}
