//! `cargo xtask vm`: runs the listns test binaries on the kernels of a
//! matrix, Debian's own kernels booted under QEMU and this machine's kernel,
//! and prints one pass/fail table per kernel.
//!
//! It installs the Debian packages it needs, downloads and unpacks each
//! kernel into `target/vm/kernels` and builds the tests with `cargo test --no-run`.
//! Then it packs them with the commands they run into an initramfs, boots it,
//! and parses the libtest output that the guest's /init sends back over a serial port.
//! Logs go to `target/vm/KERNEL/`: `guest.log` (all test output),
//! `BINARY.log` (one test binary's output) and `console.log` (the kernel log).

mod cpio;
mod debian;
mod guest;
mod host;
mod kernels;
mod libtest;
mod modules;
mod qemu;
mod report;
mod rootfs;
mod test_binaries;

use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::builder::{PossibleValue, PossibleValuesParser};

use self::kernels::{Kernel, Source};
use crate::setup::{self, Tool};
use crate::{cargo, system};

/// Commands that `cargo xtask vm` runs on the host for the VM rows, besides [`guest::GUEST_TOOLS`].
const HOST_TOOLS: &[Tool] = &[
    Tool::new("qemu-system-x86_64", "qemu-system-x86"),
    // depmod writes modules.dep into the unpacked kernel package.
    Tool::new("depmod", "kmod"),
    // Debian 13's and the 6.12 backport's modules are .ko.xz files.
    Tool::new("xz", "xz-utils"),
    Tool::new("ldd", "libc-bin"),
    Tool::new("dpkg", "dpkg"),
];

/// Margin for booting and powering off, added to the default `--kernel-timeout`.
const BOOT_MARGIN: Duration = Duration::from_secs(300);

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Kernel to run the tests on; repeat for several. Default: every kernel of the matrix.
    #[arg(long = "kernel", value_name = "NAME", value_parser = kernel_names())]
    kernels: Vec<String>,

    /// Test binary to run; repeat for several: `lib` (the library's unit tests), `bin-listns`,
    /// or an integration test of listns/tests such as `cases` or `follow`. Default: all.
    #[arg(long = "test", value_name = "NAME")]
    tests: Vec<String>,

    /// Number of vCPUs of each VM.
    #[arg(long, default_value_t = 2, value_name = "COUNT")]
    cpus: usize,

    /// Memory of each VM in MiB. The uncompressed initramfs (about 500 MiB with
    /// debug test binaries) is held twice while the kernel unpacks it.
    #[arg(long, default_value_t = 4096, value_name = "MIB")]
    memory: u64,

    /// Threads of each test binary (libtest's --test-threads). Default: the number of vCPUs.
    #[arg(long, value_name = "COUNT")]
    test_threads: Option<usize>,

    /// Seconds after which one test binary is stopped and its unfinished tests count as not run.
    /// The slowest binaries, `follow` and `trace`, took up to 750 s on Debian's 6.1 under TCG on 2 host cores.
    #[arg(long, default_value_t = 1800, value_name = "SECONDS")]
    test_timeout: u64,

    /// Seconds after which the VM of one kernel is killed. Default: --test-timeout
    /// for each test binary plus 300.
    #[arg(long, value_name = "SECONDS")]
    kernel_timeout: Option<u64>,

    /// Keep each kernel's initramfs in target/vm/KERNEL/ and print the QEMU command that boots it.
    #[arg(long)]
    keep: bool,

    /// Arguments for every test binary: a test name filter and libtest options,
    /// for example `cargo xtask vm -- case_04 --exact`.
    #[arg(last = true, value_name = "TEST_ARGS")]
    args: Vec<String>,
}

/// Returns a clap parser for the names of [`kernels::KERNELS`], with their reasons as help.
fn kernel_names() -> PossibleValuesParser {
    PossibleValuesParser::new(
        kernels::KERNELS
            .iter()
            .map(|kernel| PossibleValue::new(kernel.name).help(kernel.reason)),
    )
}

/// A kernel of the matrix, ready to run.
enum Prepared {
    Host,
    Debian(debian::UnpackedKernel),
}

pub fn run(options: &Options) -> Result<()> {
    let selected = kernels::select(&options.kernels)?;
    if options.cpus == 0 || options.test_threads == Some(0) {
        bail!("--cpus and --test-threads must be at least 1");
    }
    let needs_host = selected.iter().any(|kernel| matches!(kernel.source, Source::Host));
    let needs_vm = selected
        .iter()
        .any(|kernel| matches!(kernel.source, Source::Debian { .. }));
    if needs_host && !system::is_root() {
        bail!(
            "the host row runs the integration tests directly, and they create namespaces and attach \
             eBPF programs, so it needs root: rerun as root, or choose VM kernels only with --kernel 6.1 --kernel 6.12"
        );
    }

    setup::run(setup::Verbosity::Quiet)?;
    if needs_vm {
        let tools: Vec<Tool> = HOST_TOOLS
            .iter()
            .chain(guest::GUEST_TOOLS)
            .map(|tool| Tool::new(tool.command, tool.package))
            .collect();
        setup::install_missing_packages(&tools, setup::Verbosity::Quiet)?;
    }

    let vm_dir = cargo::target_dir()?.join("vm");
    let mut prepared = Vec::new();
    let mut apt_updated = false;
    for kernel in &selected {
        prepared.push(match kernel.source {
            Source::Host => Prepared::Host,
            Source::Debian { package_pattern } => Prepared::Debian(debian::prepare(
                kernel.name,
                package_pattern,
                &vm_dir.join("kernels"),
                &mut apt_updated,
            )?),
        });
    }

    let build = test_binaries::build()?;
    let tests = test_binaries::select(&build, &options.tests, &options.args)?;
    let settings = guest::Settings {
        test_timeout: options.test_timeout,
        test_threads: options.test_threads.unwrap_or(options.cpus),
        args: options.args.clone(),
        workdir: cargo::workspace_root().join("listns"),
        listns: build.listns.clone(),
    };
    let common_tree = if needs_vm {
        Some(guest::common_tree(&tests, &build.listns, &settings)?)
    } else {
        None
    };

    let mut runs = Vec::new();
    for (kernel, prepared) in selected.iter().zip(&prepared) {
        let logs = vm_dir.join(kernel.name);
        if logs.exists() {
            fs::remove_dir_all(&logs).with_context(|| format!("cannot remove the old logs in {}", logs.display()))?;
        }
        fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;

        let run = match prepared {
            Prepared::Host => host::run(kernel.name, &tests, &settings, &logs)?,
            Prepared::Debian(unpacked) => {
                let tree = common_tree.as_ref().expect("built when a VM kernel is selected");
                run_vm(kernel, unpacked, tree, &tests, options, &logs)?
            }
        };
        println!("{}", report::render(&run));
        runs.push(run);
    }

    let failed: Vec<&str> = runs
        .iter()
        .filter(|run| !run.succeeded())
        .map(|run| run.kernel.as_str())
        .collect();
    if !failed.is_empty() {
        print!("{}", report::failure_details(&runs));
        // A failed test is a result, not an error of this task, so it ends
        // with a status and without anyhow's error report.
        eprintln!(
            "xtask vm: tests failed on {}: see the tables above and the logs in {}",
            failed.join(", "),
            vm_dir.display()
        );
        std::process::exit(1);
    }
    Ok(())
}

/// Writes the initramfs of one kernel, boots it and returns the results.
fn run_vm(
    kernel: &Kernel,
    unpacked: &debian::UnpackedKernel,
    common_tree: &rootfs::Rootfs,
    tests: &[test_binaries::TestBinary],
    options: &Options,
    logs: &Path,
) -> Result<report::KernelRun> {
    let modules = modules::guest_modules(unpacked)?;
    let tree = guest::kernel_tree(common_tree, &unpacked.release, &modules)?;
    let initramfs = logs.join("initramfs.cpio");
    let size = tree.write(&initramfs)?;
    eprintln!(
        "xtask vm: {}: wrote {} ({} MiB)",
        kernel.name,
        initramfs.display(),
        size >> 20
    );

    let default_timeout = Duration::from_secs(options.test_timeout) * tests.len() as u32 + BOOT_MARGIN;
    let machine = qemu::Machine {
        qemu: system::find_command("qemu-system-x86_64")
            .context("qemu-system-x86_64 not found: install the Debian package qemu-system-x86")?,
        memory_mib: options.memory,
        cpus: options.cpus,
        timeout: options.kernel_timeout.map_or(default_timeout, Duration::from_secs),
    };
    let boot = qemu::Boot {
        kernel: kernel.name,
        description: format!("{} {} ({})", unpacked.package, unpacked.version, unpacked.release),
        vmlinuz: &unpacked.vmlinuz,
        initramfs: &initramfs,
        logs,
    };
    let result = qemu::run(&machine, &boot, tests);

    if options.keep {
        let command = qemu::command(&machine, &boot);
        let words: Vec<String> = std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|word| shell_word(&word.to_string_lossy()))
            .collect();
        eprintln!(
            "xtask vm: {}: kept the initramfs; boot it with:\n{}",
            kernel.name,
            words.join(" ")
        );
    } else {
        remove_file(&initramfs)?;
    }
    result
}

fn remove_file(path: &Path) -> Result<()> {
    fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))
}

/// Quotes `word` for a shell when it contains anything but safe characters.
fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        guest::shell_quote(word)
    }
}
