//! Developer tasks for listns, run as `cargo xtask COMMAND` (an alias in
//! `.cargo/config.toml`): `setup`, `run`, `test`, `bench` and `vm`.

mod bench;
mod cargo;
mod setup;
mod system;
mod vm;

use std::os::unix::process::CommandExt;
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Set up, run, test and benchmark listns, and test it on other kernels"
)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install what is missing (the Debian packages the tests need, the nightly toolchain's
    /// rust-src and clippy, bpf-linker) and mount tracefs.
    Setup,

    /// Run setup, build listns with its eBPF programs in release mode and run it as root
    /// (through sudo when not root).
    Run {
        /// Arguments for listns, for example `cargo xtask run -- -l`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<String>,
    },

    /// Run setup, then as root `cargo test --workspace` with the eBPF programs, and clippy on
    /// the eBPF crate and the workspace.
    Test {
        /// Arguments for `cargo test`, for example `cargo xtask test -- --test cli`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<String>,
    },

    /// Time listns against lsns and a C scan of /proc with thousands of tasks, as root.
    Bench(bench::Options),

    /// Run the listns test binaries on Debian's kernels under QEMU and on this machine's kernel,
    /// and print a pass/fail table per kernel.
    Vm(vm::Options),

    /// Internal mode of `bench`: start tasks and keep them until standard input closes.
    #[command(hide = true)]
    HoldTasks(bench::holder::HoldArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Task::Setup => setup::run(setup::Verbosity::Report),
        Task::Run { args } => run(&args),
        Task::Test { args } => test(&args),
        Task::Bench(options) => bench::run(&options),
        Task::Vm(options) => vm::run(&options),
        Task::HoldTasks(args) => bench::holder::hold(&args),
    }
}

/// Builds listns in release mode and replaces this process with it, as root.
fn run(args: &[String]) -> Result<()> {
    setup::run(setup::Verbosity::Quiet)?;
    let listns = cargo::build_listns_release()?;

    let mut command = if system::is_root() {
        Command::new(&listns)
    } else if let Some(sudo) = system::find_command("sudo") {
        eprintln!("xtask: not root, running listns through sudo");
        let mut command = Command::new(sudo);
        command.arg("--").arg(&listns);
        command
    } else {
        bail!(
            "listns needs root for the complete inventory, and sudo was not found: \
             run `cargo xtask run` as root, or run {} directly for a partial listing",
            listns.display()
        );
    };
    command.args(args);

    // exec returns only when it failed.
    let err = command.exec();
    Err(err).with_context(|| format!("failed to start {}", listns.display()))
}

/// Runs every test of the workspace, as root because the integration tests
/// create namespaces and attach eBPF programs, then lints the eBPF crate and the workspace.
fn test(args: &[String]) -> Result<()> {
    if !system::is_root() {
        bail!(
            "the integration tests create namespaces, mounts and veths and attach eBPF programs, \
             so they need root: rerun `cargo xtask test` as root"
        );
    }
    setup::run(setup::Verbosity::Quiet)?;

    let mut test = cargo::command();
    test.args(["test", "--workspace"]).args(args);
    let description = ["cargo", "test", "--workspace"]
        .into_iter()
        .chain(args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    run_cargo(&mut test, &description)?;

    // The eBPF crate builds only for the BPF target, where clippy needs nightly
    // and build-std like the build itself.
    let mut clippy_ebpf = cargo::nightly_command();
    clippy_ebpf.args(CLIPPY_EBPF);
    let description = format!("cargo +{} {}", setup::NIGHTLY, CLIPPY_EBPF.join(" "));
    run_cargo(&mut clippy_ebpf, &description)?;

    // listns-ebpf is excluded because its binary does not build for the host
    // (duplicate panic_impl). The command above lints it.
    // TODO: add `-- -D warnings` once the workspace has no clippy warnings.
    // Until then they are printed and do not fail the run.
    let mut clippy = cargo::command();
    clippy.args(CLIPPY_WORKSPACE);
    run_cargo(&mut clippy, &format!("cargo {}", CLIPPY_WORKSPACE.join(" ")))
}

/// Arguments of `cargo +nightly` that lint the eBPF crate, with warnings as errors.
const CLIPPY_EBPF: &[&str] = &[
    "clippy",
    "--package",
    "listns-ebpf",
    "--target",
    "bpfel-unknown-none",
    "-Z",
    "build-std=core",
    "--",
    "-D",
    "warnings",
];

/// Arguments of `cargo` that lint the rest of the workspace.
const CLIPPY_WORKSPACE: &[&str] = &["clippy", "--workspace", "--exclude", "listns-ebpf", "--all-targets"];

/// Runs a nested cargo command and fails with `description` when it fails.
fn run_cargo(command: &mut Command, description: &str) -> Result<()> {
    eprintln!("xtask: {description}");
    let status = command
        .status()
        .with_context(|| format!("failed to start `{description}`"))?;
    if !status.success() {
        bail!("`{description}` failed ({status})");
    }
    Ok(())
}
