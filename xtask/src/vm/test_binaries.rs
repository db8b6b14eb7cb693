//! Builds the test binaries of the listns package with cargo and finds out
//! which tests each one runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::libtest;
use crate::cargo;

/// One test executable of the listns package.
#[derive(Debug, Clone)]
pub struct TestBinary {
    /// `lib` for the library's unit tests, `bin-NAME` for a binary's unit
    /// tests, else the integration test's name (`cases` for `tests/cases.rs`).
    pub name: String,
    pub path: PathBuf,
    /// The tests it runs with the requested filter, from `--list`.
    pub tests: Vec<String>,
}

/// What `cargo test --no-run` built.
#[derive(Debug)]
pub struct Build {
    pub tests: Vec<TestBinary>,
    /// The listns executable, which the tests start by its absolute path.
    pub listns: PathBuf,
}

const PACKAGE: &str = "listns";

/// Builds the tests of the listns package, with the eBPF programs required
/// (`LISTNS_REQUIRE_EBPF=1`, as `cargo xtask test` builds them).
pub fn build() -> Result<Build> {
    let description = format!("cargo test --package {PACKAGE} --no-run");
    eprintln!("xtask vm: {description}");
    let messages = cargo::run_json(
        cargo::command().args([
            "test",
            "--package",
            PACKAGE,
            "--no-run",
            // Compiler errors still go to stderr as text; stdout carries one JSON object per line.
            "--message-format=json-render-diagnostics",
        ]),
        &description,
    )?;
    let manifest = cargo::workspace_root().join(PACKAGE).join("Cargo.toml");
    parse_artifacts(&messages, &manifest)
}

/// Finds the test executables and the listns binary among cargo's JSON
/// messages, keeping only targets of the package at `manifest`.
fn parse_artifacts(messages: &str, manifest: &Path) -> Result<Build> {
    let mut tests = Vec::new();
    let mut listns = None;
    for line in messages.lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" || message["manifest_path"].as_str() != manifest.to_str() {
            continue;
        }
        let Some(executable) = message["executable"].as_str() else {
            continue;
        };
        let target = &message["target"];
        let name = target["name"].as_str().unwrap_or_default();
        let has_kind = |wanted: &str| {
            target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == wanted))
        };

        if message["profile"]["test"] == true {
            let name = if has_kind("lib") {
                "lib".to_owned()
            } else if has_kind("bin") {
                format!("bin-{name}")
            } else if has_kind("test") {
                name.to_owned()
            } else {
                continue;
            };
            tests.push(TestBinary {
                name,
                path: PathBuf::from(executable),
                tests: Vec::new(),
            });
        } else if has_kind("bin") && name == PACKAGE {
            listns = Some(PathBuf::from(executable));
        }
    }

    let Some(listns) = listns else {
        bail!("cargo built no {PACKAGE} executable, which the integration tests start");
    };
    if tests.is_empty() {
        bail!("cargo built no test executables for the {PACKAGE} package");
    }
    tests.sort_by(|a, b| order(&a.name).cmp(&order(&b.name)).then_with(|| a.name.cmp(&b.name)));
    Ok(Build { tests, listns })
}

/// Sorts unit tests before integration tests.
fn order(name: &str) -> u8 {
    match name {
        "lib" => 0,
        _ if name.starts_with("bin-") => 1,
        _ => 2,
    }
}

/// Keeps the binaries named in `names` (every one when empty) and fills in
/// their tests with `args` as the filter. Binaries without tests are dropped.
pub fn select(build: &Build, names: &[String], args: &[String]) -> Result<Vec<TestBinary>> {
    for name in names {
        if !build.tests.iter().any(|test| &test.name == name) {
            let known: Vec<&str> = build.tests.iter().map(|test| test.name.as_str()).collect();
            bail!("unknown test binary '{name}': choose from {}", known.join(", "));
        }
    }

    let mut selected = Vec::new();
    for test in &build.tests {
        if !names.is_empty() && !names.contains(&test.name) {
            continue;
        }
        let tests = list(&test.path, args)?;
        if tests.is_empty() {
            eprintln!("xtask vm: {}: no tests match, skipped", test.name);
            continue;
        }
        selected.push(TestBinary { tests, ..test.clone() });
    }
    if selected.is_empty() {
        bail!("no test matches the filter {args:?}: check the test names with `cargo test -- --list`");
    }
    Ok(selected)
}

/// Runs `BINARY --list --format terse ARGS` and returns the test names.
fn list(binary: &Path, args: &[String]) -> Result<Vec<String>> {
    let description = format!("{} --list --format terse {}", binary.display(), args.join(" "));
    let output = Command::new(binary)
        .args(["--list", "--format", "terse"])
        .args(args)
        .current_dir(cargo::workspace_root().join(PACKAGE))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("failed to start `{description}`"))?;
    if !output.status.success() {
        bail!("`{description}` failed ({}): check the test arguments", output.status);
    }
    Ok(libtest::parse_list(&String::from_utf8_lossy(&output.stdout)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(manifest: &str, name: &str, kind: &str, test: bool, executable: Option<&str>) -> String {
        serde_json::json!({
            "reason": "compiler-artifact",
            "manifest_path": manifest,
            "target": {"name": name, "kind": [kind]},
            "profile": {"test": test},
            "executable": executable,
        })
        .to_string()
    }

    #[test]
    fn artifacts_of_the_package() {
        let manifest = "/src/listns/Cargo.toml";
        let messages = [
            artifact(manifest, "listns", "lib", true, Some("/t/deps/listns-1")),
            artifact(manifest, "cases", "test", true, Some("/t/deps/cases-2")),
            artifact(manifest, "listns", "bin", false, Some("/t/listns")),
            artifact(manifest, "listns", "bin", true, Some("/t/deps/listns-3")),
            artifact(
                manifest,
                "trace_bench",
                "example",
                false,
                Some("/t/examples/trace_bench"),
            ),
            artifact(manifest, "listns", "lib", false, None),
            artifact("/src/xtask/Cargo.toml", "xtask", "bin", true, Some("/t/deps/xtask-4")),
            "{\"reason\":\"build-finished\",\"success\":true}".to_owned(),
        ]
        .join("\n");

        let build = parse_artifacts(&messages, Path::new(manifest)).unwrap();
        let names: Vec<&str> = build.tests.iter().map(|test| test.name.as_str()).collect();
        assert_eq!(names, ["lib", "bin-listns", "cases"]);
        assert_eq!(build.tests[2].path, Path::new("/t/deps/cases-2"));
        assert_eq!(build.listns, Path::new("/t/listns"));
    }

    #[test]
    fn missing_listns_binary_is_error() {
        let manifest = "/src/listns/Cargo.toml";
        let messages = artifact(manifest, "cases", "test", true, Some("/t/deps/cases-2"));
        assert!(parse_artifacts(&messages, Path::new(manifest)).is_err());
    }
}
