//! `cargo xtask setup`: installs what the tests and the benchmark need on a
//! fresh Debian 12 machine.
//!
//! Every step checks first and changes nothing when its part is present, so
//! `run` and `test` call [`run`] each time at little cost.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::system;

/// A command that tests or the benchmark run, and the Debian package that provides it.
struct Tool {
    command: &'static str,
    package: &'static str,
}

impl Tool {
    const fn new(command: &'static str, package: &'static str) -> Tool {
        Tool { command, package }
    }
}

/// Commands the integration tests and `cargo xtask bench` run.
const TOOLS: &[Tool] = &[
    Tool::new("unshare", "util-linux"),
    Tool::new("nsenter", "util-linux"),
    Tool::new("lsns", "util-linux"),
    Tool::new("ip", "iproute2"),
    Tool::new("python3", "python3"),
    Tool::new("ps", "procps"),
];

/// Whether [`run`] prints a summary when it had nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Print every action, and a line when nothing was missing (`cargo xtask setup`).
    Report,
    /// Print only actions, so that `run` and `test` stay quiet on a prepared machine.
    Quiet,
}

/// Runs every set-up step. Messages go to stderr, so that `cargo xtask run -- -J`
/// keeps a clean stdout.
///
/// New steps go here, each idempotent and printing what it changed: the eBPF
/// build will need the nightly toolchain's rust-src component, bpf-linker and a
/// mounted tracefs.
pub fn run(verbosity: Verbosity) -> Result<()> {
    install_missing_packages(TOOLS, verbosity)?;
    Ok(())
}

/// Installs with apt-get the packages whose commands are missing, after one `apt-get update`.
fn install_missing_packages(tools: &[Tool], verbosity: Verbosity) -> Result<()> {
    let missing: Vec<&Tool> = tools
        .iter()
        .filter(|tool| system::find_command(tool.command).is_none())
        .collect();
    if missing.is_empty() {
        if verbosity == Verbosity::Report {
            let commands: Vec<&str> = tools.iter().map(|tool| tool.command).collect();
            eprintln!("xtask setup: nothing to install, found {}", commands.join(", "));
        }
        return Ok(());
    }

    let commands: Vec<&str> = missing.iter().map(|tool| tool.command).collect();
    let packages: BTreeSet<&str> = missing.iter().map(|tool| tool.package).collect();
    let packages: Vec<&str> = packages.into_iter().collect();
    eprintln!(
        "xtask setup: missing {}; installing Debian packages {}",
        commands.join(", "),
        packages.join(", ")
    );
    if system::find_command("apt-get").is_none() {
        bail!(
            "apt-get not found: install the packages that provide {} with this system's package manager, then rerun",
            commands.join(", ")
        );
    }

    apt_get(&["update"])?;
    let mut install = vec!["install", "--yes", "--no-install-recommends"];
    install.extend(&packages);
    apt_get(&install)?;

    let still_missing: Vec<&str> = missing
        .iter()
        .filter(|tool| system::find_command(tool.command).is_none())
        .map(|tool| tool.command)
        .collect();
    if !still_missing.is_empty() {
        bail!(
            "installed {} but still cannot find {}: check PATH",
            packages.join(", "),
            still_missing.join(", ")
        );
    }
    eprintln!("xtask setup: installed {}", packages.join(", "));
    Ok(())
}

/// Runs apt-get with `args` as root, through sudo when this process is not root.
/// It never prompts: there is no standard input and debconf is set to noninteractive.
fn apt_get(args: &[&str]) -> Result<()> {
    let description = format!("apt-get {}", args.join(" "));
    // `env` sets the variable after sudo, which would otherwise reset the environment.
    let mut command = if system::is_root() {
        Command::new("env")
    } else if let Some(sudo) = system::find_command("sudo") {
        let mut command = Command::new(sudo);
        command.args(["--", "env"]);
        command
    } else {
        bail!("`{description}` needs root and sudo was not found: rerun as root");
    };
    let status = command
        .args(["DEBIAN_FRONTEND=noninteractive", "apt-get"])
        .args(args)
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("failed to start `{description}`"))?;
    if !status.success() {
        bail!("`{description}` failed ({status})");
    }
    Ok(())
}
