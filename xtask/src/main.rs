//! Developer tasks for listns, run as `cargo xtask COMMAND` (an alias in
//! `.cargo/config.toml`): `setup`, `run`, `test` and `bench`.

mod bench;
mod cargo;
mod setup;
mod system;

use std::os::unix::process::CommandExt;
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Set up, run, test and benchmark listns"
)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install the Debian packages the tests need (util-linux, iproute2, python3, procps)
    /// when one of their commands is missing.
    Setup,

    /// Run setup, build listns in release mode and run it as root (through sudo when not root).
    Run {
        /// Arguments for listns, for example `cargo xtask run -- -l`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<String>,
    },

    /// Run setup, then `cargo test --workspace` as root.
    Test {
        /// Arguments for `cargo test`, for example `cargo xtask test -- --test cli`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<String>,
    },

    /// Time listns against lsns and a C scan of /proc with thousands of tasks, as root.
    Bench(bench::Options),

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

/// Runs every test of the workspace, as root because the integration tests create namespaces.
fn test(args: &[String]) -> Result<()> {
    if !system::is_root() {
        bail!(
            "the integration tests create namespaces, mounts and veths and need root: \
             rerun `cargo xtask test` as root"
        );
    }
    setup::run(setup::Verbosity::Quiet)?;

    let status = cargo::command()
        .args(["test", "--workspace"])
        .args(args)
        .status()
        .context("failed to start `cargo test`")?;
    if !status.success() {
        bail!("`cargo test --workspace {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
