//! `cargo xtask setup`: installs and prepares what building, running and
//! testing listns need on a fresh Debian 12 machine with rustup.
//!
//! Every step checks first and changes nothing when its part is present, so
//! `run`, `test` and `bench` call [`run`] each time at little cost.

use std::collections::BTreeSet;
use std::env;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{cargo, system};

/// A command that tests or the benchmark run, and the Debian package that provides it.
pub struct Tool {
    pub command: &'static str,
    pub package: &'static str,
}

impl Tool {
    pub const fn new(command: &'static str, package: &'static str) -> Tool {
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

/// The rustup toolchain that builds and lints the eBPF crate. aya-build runs
/// `rustup run nightly cargo build`, so it must be the channel name, not a dated nightly.
pub const NIGHTLY: &str = "nightly";

/// Components of [`NIGHTLY`]: `-Z build-std=core` compiles `core` for
/// bpfel-unknown-none from rust-src, and `cargo xtask test` lints the eBPF
/// crate with nightly clippy.
const NIGHTLY_COMPONENTS: &[&str] = &["rust-src", "clippy"];

/// bpf-linker release that `cargo xtask setup` installs, unless BPF_LINKER_VERSION names another.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Mount point of tracefs, where classic tracepoints have their ids (`events/*/*/id`).
const TRACEFS: &str = "/sys/kernel/tracing";

/// Whether [`run`] prints a summary when it had nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Print every action, and a line per step when nothing was missing (`cargo xtask setup`).
    Report,
    /// Print only actions, so that `run` and `test` stay quiet on a prepared machine.
    Quiet,
}

/// Runs every set-up step. Messages go to stderr, so that `cargo xtask run -- -J`
/// keeps a clean stdout. New steps go here, each idempotent and printing what it changed.
pub fn run(verbosity: Verbosity) -> Result<()> {
    // The integration tests and the benchmark run these commands.
    install_missing_packages(TOOLS, verbosity)?;

    // rustup puts cargo and rustup, and the step below bpf-linker, in
    // ~/.cargo/bin, which the PATH of a non-login shell or of CI may lack.
    // Every child process that xtask starts gets it through `child_path`.
    if verbosity == Verbosity::Report {
        report_cargo_bin();
    }

    // listns/build.rs builds the eBPF crate with the nightly toolchain and
    // `-Z build-std=core`, which needs rust-src. `cargo xtask test` lints the
    // crate with nightly clippy.
    install_nightly_components(verbosity)?;

    // bpf-linker links the eBPF crate. Without it listns builds with an empty
    // eBPF object and `--follow` cannot trace.
    install_bpf_linker(verbosity)?;

    // `--follow` attaches classic tracepoints by the ids in tracefs, which is
    // not mounted at boot on every machine. listns also mounts it when it
    // loads its programs as root.
    mount_tracefs(verbosity)?;
    Ok(())
}

/// Returns `$CARGO_HOME`, or `~/.cargo` as rustup defaults to, or None when HOME is unset too.
fn cargo_home() -> Option<PathBuf> {
    let from_env = |name: &str| env::var_os(name).filter(|value| !value.is_empty()).map(PathBuf::from);
    from_env("CARGO_HOME").or_else(|| from_env("HOME").map(|home| home.join(".cargo")))
}

/// Returns the PATH for the child processes of xtask: this process's PATH with
/// `$CARGO_HOME/bin` in front when it is missing. listns/build.rs looks for
/// bpf-linker on PATH, and aya-build runs `rustup`.
pub fn child_path() -> OsString {
    let path = env::var_os("PATH").unwrap_or_default();
    match cargo_home() {
        Some(home) => path_with_dir(&path, &home.join("bin")),
        None => path,
    }
}

/// Returns `path` with `dir` prepended, or `path` unchanged when it already lists `dir`.
fn path_with_dir(path: &OsStr, dir: &Path) -> OsString {
    if env::split_paths(path).any(|entry| entry == dir) {
        return path.to_owned();
    }
    let entries = std::iter::once(dir.to_path_buf()).chain(env::split_paths(path));
    // join_paths fails only when a directory name contains ':'. Entries split
    // from PATH cannot, so only a CARGO_HOME with ':' leaves PATH unchanged.
    env::join_paths(entries).unwrap_or_else(|_| path.to_owned())
}

fn report_cargo_bin() {
    let Some(home) = cargo_home() else {
        eprintln!("xtask setup: neither CARGO_HOME nor HOME is set, so child processes keep this PATH");
        return;
    };
    let bin = home.join("bin");
    let path = env::var_os("PATH").unwrap_or_default();
    if env::split_paths(&path).any(|entry| entry == bin) {
        eprintln!("xtask setup: {} is on PATH", bin.display());
    } else {
        eprintln!(
            "xtask setup: {} is not on PATH, so xtask adds it for the commands it runs \
             (add it to your shell's PATH to run bpf-linker yourself)",
            bin.display()
        );
    }
}

/// Returns a command for `program`, looked up in and run with [`child_path`].
fn command(program: &str) -> Command {
    let mut command = Command::new(program);
    command.env("PATH", child_path()).stdin(Stdio::null());
    command
}

/// Runs `command`, passing its stderr through, and returns its stdout.
pub fn output(command: &mut Command, description: &str) -> Result<String> {
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("failed to start `{description}`"))?;
    if !output.status.success() {
        bail!("`{description}` failed ({})", output.status);
    }
    String::from_utf8(output.stdout).with_context(|| format!("`{description}` printed invalid UTF-8"))
}

/// Runs `command` with its stdout sent to stderr, so that `cargo xtask run` keeps a clean stdout.
pub fn run_to_stderr(command: &mut Command, description: &str) -> Result<()> {
    let stderr = io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("failed to duplicate stderr")?;
    let status = command
        .stdout(stderr)
        .status()
        .with_context(|| format!("failed to start `{description}`"))?;
    if !status.success() {
        bail!("`{description}` failed ({status})");
    }
    Ok(())
}

/// Installs with apt-get the packages whose commands are missing, after one `apt-get update`.
pub fn install_missing_packages(tools: &[Tool], verbosity: Verbosity) -> Result<()> {
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
pub fn apt_get(args: &[&str]) -> Result<()> {
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
    command.args(["DEBIAN_FRONTEND=noninteractive", "apt-get"]).args(args);
    // apt-get prints its progress on stdout.
    run_to_stderr(command.stdin(Stdio::null()), &description)
}

/// Installs the [`NIGHTLY`] toolchain or the [`NIGHTLY_COMPONENTS`] it lacks.
fn install_nightly_components(verbosity: Verbosity) -> Result<()> {
    if system::find_command_in("rustup", &child_path()).is_none() {
        bail!(
            "rustup not found on PATH or in $CARGO_HOME/bin, but the eBPF build needs rustup's \
             {NIGHTLY} toolchain: install rustup (https://rustup.rs) and rerun"
        );
    }

    let toolchains = output(command("rustup").args(["toolchain", "list"]), "rustup toolchain list")?;
    if !lists_channel_toolchain(&toolchains, NIGHTLY) {
        eprintln!(
            "xtask setup: installing the rustup toolchain {NIGHTLY} with {}",
            NIGHTLY_COMPONENTS.join(", ")
        );
        let mut install = command("rustup");
        install.args(["toolchain", "install", NIGHTLY, "--profile", "minimal"]);
        for component in NIGHTLY_COMPONENTS {
            install.args(["--component", component]);
        }
        return run_to_stderr(&mut install, &format!("rustup toolchain install {NIGHTLY}"));
    }

    let description = format!("rustup component list --toolchain {NIGHTLY} --installed");
    let installed = output(
        command("rustup").args(["component", "list", "--toolchain", NIGHTLY, "--installed"]),
        &description,
    )?;
    let missing: Vec<&str> = NIGHTLY_COMPONENTS
        .iter()
        .copied()
        .filter(|component| !lists_component(&installed, component))
        .collect();
    if missing.is_empty() {
        if verbosity == Verbosity::Report {
            eprintln!(
                "xtask setup: the {NIGHTLY} toolchain has {}",
                NIGHTLY_COMPONENTS.join(", ")
            );
        }
        return Ok(());
    }

    eprintln!("xtask setup: adding {} to the {NIGHTLY} toolchain", missing.join(", "));
    let description = format!("rustup component add {} --toolchain {NIGHTLY}", missing.join(" "));
    let mut add = command("rustup");
    add.args(["component", "add"])
        .args(&missing)
        .args(["--toolchain", NIGHTLY]);
    run_to_stderr(&mut add, &description)
}

/// Returns whether `rustup toolchain list` output lists the undated toolchain of
/// `channel`, such as `nightly-x86_64-unknown-linux-gnu` but not `nightly-2025-01-01-...`.
fn lists_channel_toolchain(toolchains: &str, channel: &str) -> bool {
    toolchains
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|name| name.strip_prefix(channel)?.strip_prefix('-'))
        // A host triple starts with the architecture, a dated toolchain with the year.
        .any(|rest| rest.starts_with(|c: char| c.is_ascii_alphabetic()))
}

/// Returns whether `rustup component list --installed` output lists `component`,
/// either bare (`rust-src`) or with the host triple (`clippy-x86_64-unknown-linux-gnu`).
fn lists_component(installed: &str, component: &str) -> bool {
    installed
        .lines()
        .map(str::trim)
        .any(|line| line == component || line.strip_prefix(component).is_some_and(|rest| rest.starts_with('-')))
}

/// The LLVM shared library that the nightly toolchain ships.
#[derive(Debug, PartialEq, Eq)]
struct NightlyLlvm {
    /// Full path in the toolchain's `lib` directory.
    path: PathBuf,
    /// File name, which is also the soname that bpf-linker records, for example `libLLVM.so.22.1-rust-1.97.0-nightly`.
    soname: String,
    /// LLVM major version, which selects bpf-linker's `llvm-NN` cargo feature.
    major: u32,
}

/// Installs bpf-linker when it is missing, does not run, or was built for
/// another bpf-linker version or another libLLVM (after a nightly update).
///
/// `cargo install bpf-linker` needs an LLVM installation of rustc's LLVM major
/// version (22 for nightly 1.97), and Debian 12 ships LLVM 14 only. The nightly
/// toolchain carries libLLVM as a shared library, so this step points
/// LLVM_PREFIX at a directory that links to it. The links also serve as the
/// installed binary's RUNPATH, so they must stay in place.
fn install_bpf_linker(verbosity: Verbosity) -> Result<()> {
    let home =
        cargo_home().context("neither CARGO_HOME nor HOME is set: set one so that bpf-linker can be installed")?;
    let version = env::var("BPF_LINKER_VERSION").unwrap_or_else(|_| BPF_LINKER_VERSION.to_owned());
    // BPF_LINKER_LLVM moves the directory with the libLLVM links.
    let prefix = env::var_os("BPF_LINKER_LLVM").map_or_else(|| home.join("bpf-linker-llvm"), PathBuf::from);

    let llvm = nightly_llvm()?;
    let lib = prefix.join("lib");
    fs::create_dir_all(&lib).with_context(|| format!("cannot create {}", lib.display()))?;
    // The build links against libLLVM.so, and the binary loads the soname at run time.
    link(&llvm.path, &lib.join("libLLVM.so"))?;
    link(&llvm.path, &lib.join(&llvm.soname))?;

    let binary = home.join("bin").join("bpf-linker");
    let stamp = prefix.join("installed");
    let expected = format!("bpf-linker {version} llvm-{} {}", llvm.major, llvm.soname);
    let reason = if !binary.is_file() {
        format!("{} is missing", binary.display())
    } else if !runs(&binary) {
        format!("`{} --version` failed", binary.display())
    } else if fs::read_to_string(&stamp).is_ok_and(|text| text.trim_end() == expected) {
        if verbosity == Verbosity::Report {
            eprintln!(
                "xtask setup: bpf-linker {version} is installed ({}, {})",
                binary.display(),
                llvm.soname
            );
        }
        warn_if_shadowed(&binary);
        return Ok(());
    } else {
        format!("{} does not record `{expected}`", stamp.display())
    };

    eprintln!(
        "xtask setup: installing bpf-linker {version} against {} because {reason} (takes about a minute)",
        llvm.soname
    );
    let feature = format!("llvm-{}", llvm.major);
    let mut install = cargo::command();
    install
        .env("LLVM_PREFIX", &prefix)
        .args(["install", "--force", "--locked", "bpf-linker", "--version", &version])
        .args(["--no-default-features", "--features", &feature])
        .stdin(Stdio::null());
    let description = format!("cargo install bpf-linker --version {version} --features {feature}");
    run_to_stderr(&mut install, &description)?;

    if !runs(&binary) {
        bail!(
            "`{description}` succeeded but `{} --version` fails: check that {} links to {}",
            binary.display(),
            lib.join(&llvm.soname).display(),
            llvm.path.display()
        );
    }
    fs::write(&stamp, format!("{expected}\n")).with_context(|| format!("cannot write {}", stamp.display()))?;
    eprintln!("xtask setup: installed bpf-linker {version} in {}", binary.display());
    warn_if_shadowed(&binary);
    Ok(())
}

/// Finds libLLVM in the nightly toolchain's `lib` directory.
fn nightly_llvm() -> Result<NightlyLlvm> {
    let description = format!("rustup run {NIGHTLY} rustc --print sysroot");
    let sysroot = output(
        command("rustup").args(["run", NIGHTLY, "rustc", "--print", "sysroot"]),
        &description,
    )?;
    let lib = Path::new(sysroot.trim_end()).join("lib");

    let entries = fs::read_dir(&lib).with_context(|| format!("cannot list {}", lib.display()))?;
    let mut candidates = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", lib.display()))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        // Next to the library, current toolchains ship `libLLVM-NN-rust-*.so`
        // as a linker script that names it. bpf-linker must link the library itself.
        if let Some(major) = llvm_major(&name)
            && is_elf(&entry.path())
        {
            candidates.push(NightlyLlvm {
                path: entry.path(),
                soname: name,
                major,
            });
        }
    }
    // A toolchain ships one libLLVM. Sorting makes the choice stable should there be more.
    candidates.sort_by(|a, b| a.soname.cmp(&b.soname));
    candidates.into_iter().next().with_context(|| {
        format!(
            "no libLLVM shared library in {}: bpf-linker is built against the one the {NIGHTLY} toolchain ships; \
             update it with `rustup toolchain install {NIGHTLY}`",
            lib.display()
        )
    })
}

/// Returns the LLVM major version in the file name of a Rust toolchain's
/// libLLVM: `libLLVM.so.22.1-rust-1.97.0-nightly`, or `libLLVM-22-rust-1.97.0-nightly.so`,
/// which older toolchains used for the library and current ones for a linker script.
fn llvm_major(file_name: &str) -> Option<u32> {
    let (rest, end) = if let Some(rest) = file_name.strip_prefix("libLLVM.so.") {
        (rest, '.')
    } else if let Some(rest) = file_name.strip_prefix("libLLVM-") {
        (rest, '-')
    } else {
        return None;
    };
    let (major, _) = rest.split_once(end)?;
    major.parse().ok()
}

/// Returns whether `path` starts with the ELF magic number.
fn is_elf(path: &Path) -> bool {
    let mut magic = [0; 4];
    fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// Makes `link` a symbolic link to `target`, replacing what was there.
fn link(target: &Path, link: &Path) -> Result<()> {
    if fs::read_link(link).is_ok_and(|current| current == target) {
        return Ok(());
    }
    match fs::remove_file(link) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("cannot replace {}", link.display())),
    }
    symlink(target, link).with_context(|| format!("cannot link {} to {}", link.display(), target.display()))
}

/// Returns whether `bpf-linker --version` succeeds, which also proves that it finds libLLVM.
fn runs(binary: &Path) -> bool {
    Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Warns when another bpf-linker comes first on PATH, because listns/build.rs uses that one.
fn warn_if_shadowed(installed: &Path) {
    if let Some(found) = system::find_command_in("bpf-linker", &child_path())
        && found != installed
    {
        eprintln!(
            "xtask setup: warning: the eBPF build will use {} from PATH, not {}",
            found.display(),
            installed.display()
        );
    }
}

/// Mounts tracefs on [`TRACEFS`] unless /proc/mounts lists it there. A failure
/// only warns, because listings work without tracefs and `--follow` then polls.
fn mount_tracefs(verbosity: Verbosity) -> Result<()> {
    let mounts = fs::read_to_string("/proc/mounts").context("cannot read /proc/mounts")?;
    if is_mounted(&mounts, TRACEFS, "tracefs") {
        if verbosity == Verbosity::Report {
            eprintln!("xtask setup: tracefs is mounted on {TRACEFS}");
        }
        return Ok(());
    }
    if !Path::new(TRACEFS).is_dir() {
        eprintln!(
            "xtask setup: warning: {TRACEFS} does not exist, so this kernel has no tracefs \
             and `listns --follow` polls instead of using eBPF tracepoints"
        );
        return Ok(());
    }

    eprintln!("xtask setup: mounting tracefs on {TRACEFS}");
    let result = if system::is_root() {
        rustix::mount::mount("nodev", TRACEFS, "tracefs", rustix::mount::MountFlags::empty(), None)
            .map_err(anyhow::Error::from)
    } else if let Some(sudo) = system::find_command("sudo") {
        let mut mount = Command::new(sudo);
        mount.args(["--", "mount", "-t", "tracefs", "nodev", TRACEFS]);
        run_to_stderr(&mut mount, &format!("sudo mount -t tracefs nodev {TRACEFS}"))
    } else {
        Err(anyhow::anyhow!("not root and sudo was not found"))
    };
    if let Err(err) = result {
        eprintln!(
            "xtask setup: warning: cannot mount tracefs on {TRACEFS} ({err:#}). `listns --follow` \
             needs it for eBPF tracepoints: mount it as root with `mount -t tracefs nodev {TRACEFS}`"
        );
    }
    Ok(())
}

/// Returns whether `mounts`, in the format of /proc/mounts, lists a file
/// system of type `fs_type` on `mount_point`. The kernel escapes spaces in
/// mount points as `\040`, so `mount_point` must not contain white space.
fn is_mounted(mounts: &str, mount_point: &str, fs_type: &str) -> bool {
    mounts.lines().any(|line| {
        let mut fields = line.split_whitespace().skip(1);
        fields.next() == Some(mount_point) && fields.next() == Some(fs_type)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_with_dir_prepends_missing() {
        let path = path_with_dir(OsStr::new("/usr/bin:/bin"), Path::new("/root/.cargo/bin"));
        assert_eq!(path, "/root/.cargo/bin:/usr/bin:/bin");
    }

    #[test]
    fn path_with_dir_keeps_present() {
        let path = path_with_dir(OsStr::new("/usr/bin:/root/.cargo/bin"), Path::new("/root/.cargo/bin"));
        assert_eq!(path, "/usr/bin:/root/.cargo/bin");
    }

    #[test]
    fn path_with_dir_on_empty_path() {
        let path = path_with_dir(OsStr::new(""), Path::new("/root/.cargo/bin"));
        assert!(env::split_paths(&path).any(|entry| entry == Path::new("/root/.cargo/bin")));
    }

    #[test]
    fn channel_toolchain_listed() {
        let list = "stable-x86_64-unknown-linux-gnu (active, default)\nnightly-x86_64-unknown-linux-gnu\n";
        assert!(lists_channel_toolchain(list, "nightly"));
        assert!(lists_channel_toolchain(list, "stable"));
    }

    #[test]
    fn dated_nightly_is_not_channel() {
        let list = "stable-x86_64-unknown-linux-gnu (active, default)\nnightly-2025-01-01-x86_64-unknown-linux-gnu\n";
        assert!(!lists_channel_toolchain(list, "nightly"));
        assert!(!lists_channel_toolchain("no installed toolchains\n", "nightly"));
    }

    #[test]
    fn components_bare_and_with_triple() {
        let installed = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\nrust-src\nrust-std-x86_64-unknown-linux-gnu\n";
        assert!(lists_component(installed, "rust-src"));
        assert!(lists_component(installed, "clippy"));
        assert!(!lists_component(installed, "rustfmt"));
        assert!(!lists_component("rust-std-x86_64-unknown-linux-gnu\n", "rust-src"));
        assert!(!lists_component("clippy-preview\n", "clippy-p"));
    }

    #[test]
    fn llvm_major_from_file_names() {
        assert_eq!(llvm_major("libLLVM.so.22.1-rust-1.97.0-nightly"), Some(22));
        assert_eq!(llvm_major("libLLVM-18-rust-1.78.0-nightly.so"), Some(18));
        assert_eq!(llvm_major("libLLVM.so"), None);
        assert_eq!(llvm_major("libLLVMSupport.a"), None);
        assert_eq!(llvm_major("librustc_driver-1234.so"), None);
    }

    #[test]
    fn is_elf_tells_binary_from_text() {
        let test_binary = env::current_exe().expect("path of the test binary");
        assert!(is_elf(&test_binary));
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        assert!(!is_elf(&manifest));
        assert!(!is_elf(Path::new("/nonexistent/libLLVM.so")));
    }

    /// Lines as Linux 6.18 prints them in /proc/mounts.
    const MOUNTS: &str = "\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
debugfs /sys/kernel/debug debugfs rw,nosuid,nodev,noexec,relatime 0 0
nodev /sys/kernel/tracing tracefs rw,relatime 0 0
";

    #[test]
    fn tracefs_mounted() {
        assert!(is_mounted(MOUNTS, "/sys/kernel/tracing", "tracefs"));
    }

    #[test]
    fn tracefs_not_mounted() {
        let without: String = MOUNTS
            .lines()
            .filter(|line| !line.contains("tracefs"))
            .map(|line| format!("{line}\n"))
            .collect();
        assert!(!is_mounted(&without, "/sys/kernel/tracing", "tracefs"));
        assert!(!is_mounted("", "/sys/kernel/tracing", "tracefs"));
    }

    #[test]
    fn tracefs_elsewhere_or_other_type() {
        let under_debugfs = "tracefs /sys/kernel/debug/tracing tracefs rw,relatime 0 0\n";
        assert!(!is_mounted(under_debugfs, "/sys/kernel/tracing", "tracefs"));
        let other_type = "none /sys/kernel/tracing tmpfs rw 0 0\n";
        assert!(!is_mounted(other_type, "/sys/kernel/tracing", "tracefs"));
    }
}
