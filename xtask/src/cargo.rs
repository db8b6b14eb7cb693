//! Nested cargo invocations on the workspace.

use std::env;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

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
    command.current_dir(workspace_root());
    command
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
fn run_json(command: &mut Command, description: &str) -> Result<String> {
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
