//! Nested cargo invocations on the workspace.

use std::env;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::setup;

/// Returns the workspace root, the parent of this crate's directory.
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in a subdirectory of the workspace")
}

/// Returns a cargo command in the workspace root, using the cargo that runs
/// xtask (`CARGO`) so that both use the same toolchain.
pub fn command() -> Command {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    prepare(&mut command);
    command
}

/// Returns `rustup run nightly cargo` in the workspace root, for the eBPF
/// crate, which builds only for bpfel-unknown-none with nightly features.
pub fn nightly_command() -> Command {
    let mut command = Command::new("rustup");
    prepare(&mut command);
    command.args(["run", setup::NIGHTLY, "cargo"]);
    command
}

fn prepare(command: &mut Command) {
    command
        .current_dir(workspace_root())
        // Setup installs bpf-linker in $CARGO_HOME/bin, and listns/build.rs looks for it on PATH.
        .env("PATH", setup::child_path())
        // Setup has installed everything the eBPF build needs, so a build
        // without the eBPF programs would hide a broken setup: fail instead.
        .env("LISTNS_REQUIRE_EBPF", "1");
}

/// Builds the listns binary in release mode and returns its path as cargo reports it.
pub fn build_listns_release() -> Result<PathBuf> {
    let messages = run_json(
        command().args([
            "build",
            "--release",
            "--package",
            "listns",
            "--bin",
            "listns",
            // Compiler errors still go to stderr as text; stdout carries one JSON object per line.
            "--message-format=json-render-diagnostics",
        ]),
        "cargo build --release --package listns",
    )?;

    for line in messages.lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let is_listns_bin = message["reason"] == "compiler-artifact"
            && message["target"]["name"] == "listns"
            && message["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"));
        if is_listns_bin && let Some(executable) = message["executable"].as_str() {
            return Ok(PathBuf::from(executable));
        }
    }
    bail!("`cargo build --release --package listns` succeeded but reported no listns executable")
}

/// Returns cargo's target directory for this workspace (`target/` unless configured otherwise).
pub fn target_dir() -> Result<PathBuf> {
    let metadata = run_json(
        command().args(["metadata", "--format-version", "1", "--no-deps"]),
        "cargo metadata",
    )?;
    let metadata: Value = serde_json::from_str(&metadata).context("failed to parse the output of `cargo metadata`")?;
    match metadata["target_directory"].as_str() {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => bail!("`cargo metadata` returned no target_directory"),
    }
}

/// Runs a cargo command with stderr shown to the user and returns its stdout.
pub fn run_json(command: &mut Command, description: &str) -> Result<String> {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start `{description}`"))?;
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout is piped")
        .read_to_string(&mut stdout)
        .with_context(|| format!("failed to read the output of `{description}`"))?;
    let status = child
        .wait()
        .with_context(|| format!("failed to wait for `{description}`"))?;
    if !status.success() {
        bail!("`{description}` failed ({status})");
    }
    Ok(stdout)
}
