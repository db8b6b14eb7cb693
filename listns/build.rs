//! Builds the eBPF programs (`listns-ebpf`) for `bpfel-unknown-none` with the
//! `nightly` toolchain and `-Z build-std=core`, through aya-build. The object
//! lands in OUT_DIR, where `src/trace/load.rs` includes it.
//!
//! The build needs bpf-linker on PATH (`cargo xtask setup` installs it).
//! Without it, or with AYA_BUILD_SKIP=1, this script writes an empty object
//! and warns. listns then builds and takes snapshots, and live tracing fails
//! at start with an error that explains how to fix the build. Set
//! LISTNS_REQUIRE_EBPF=1 (as CI should) to make a missing bpf-linker fail the
//! build instead.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

const OBJECT_NAME: &str = "listns-ebpf";

fn main() -> Result<()> {
    println!("cargo:rerun-if-env-changed=LISTNS_REQUIRE_EBPF");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let required = std::env::var("LISTNS_REQUIRE_EBPF").is_ok_and(|v| v == "1");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").context("OUT_DIR is not set")?);

    if std::env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        return write_placeholder(&out_dir, "AYA_BUILD_SKIP is set");
    }
    if find_on_path("bpf-linker").is_none() {
        if required {
            bail!("bpf-linker is not on PATH and LISTNS_REQUIRE_EBPF=1; run `cargo xtask setup`");
        }
        return write_placeholder(&out_dir, "bpf-linker is not on PATH (run `cargo xtask setup`)");
    }

    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR is not set")?);
    let ebpf_dir = manifest_dir.join("../listns-ebpf");
    let ebpf_dir = ebpf_dir
        .canonicalize()
        .with_context(|| format!("the eBPF crate is missing at {}", ebpf_dir.display()))?;
    let root_dir = ebpf_dir.to_str().context("the eBPF crate's path is not UTF-8")?;
    let package = aya_build::Package {
        name: OBJECT_NAME,
        root_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::default()).context("building the eBPF programs failed")
}

/// Writes an empty eBPF object, which `Tracer::load` rejects with `reason`.
fn write_placeholder(out_dir: &Path, reason: &str) -> Result<()> {
    println!("cargo:warning=listns is built without its eBPF programs: {reason}; live tracing will not work");
    // Rerun on every build until bpf-linker shows up: cargo treats a path
    // that does not exist as changed.
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        println!("cargo:rerun-if-changed={}", dir.join("bpf-linker").display());
    }
    let path = out_dir.join(OBJECT_NAME);
    std::fs::write(&path, b"").with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
