//! Contents of the guest's initramfs: the test binaries at their host
//! paths, the host commands that the tests run with their libraries, the
//! Python standard library, busybox for everything else, the kernel's
//! modules, the `/init` script and its configuration.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::modules::GuestModule;
use super::rootfs::Rootfs;
use super::test_binaries::TestBinary;
use crate::setup::{self, Tool};
use crate::system;

/// Commands that the tests and `/init` run in the guest, copied from the
/// host. busybox provides every other command.
pub const GUEST_TOOLS: &[Tool] = &[
    // Debian's busybox shell runs its own applets in place of the commands
    // on PATH (`sh -c 'unshare -n true'` would run busybox's unshare), so
    // /bin/sh is the host's, as it is for the tests on the host.
    Tool::new("sh", "dash"),
    Tool::new("unshare", "util-linux"),
    Tool::new("nsenter", "util-linux"),
    Tool::new("lsns", "util-linux"),
    // The cli tests drop privileges with util-linux options that busybox's setpriv lacks.
    Tool::new("setpriv", "util-linux"),
    Tool::new("mount", "mount"),
    Tool::new("umount", "mount"),
    Tool::new("ip", "iproute2"),
    Tool::new("ps", "procps"),
    Tool::new("python3", "python3"),
    Tool::new("sleep", "coreutils"),
    Tool::new("true", "coreutils"),
    Tool::new("seq", "coreutils"),
    Tool::new("readlink", "coreutils"),
    // Exits with 124 on a timeout, which /init reports, and busybox's with 143.
    Tool::new("timeout", "coreutils"),
    Tool::new("busybox", "busybox-static"),
];

/// Directories searched for [`GUEST_TOOLS`] on the host: Debian's, so that a
/// pyenv shim or other wrapper on PATH does not end up in the guest.
const DEBIAN_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Top-level entries of the Python standard library that the tests' helper
/// scripts never import: tests, tools and the static library for embedding (`config-*`).
const PYTHON_SKIPPED: &[&str] = &[
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "pydoc_data",
];

const INIT: &str = include_str!("init.sh");

/// Directory of the configuration files that /init reads.
const CONFIG_DIR: &str = "/etc/listns-vm";

/// Settings of /init for running the test binaries.
#[derive(Debug)]
pub struct Settings {
    /// Seconds before `timeout` stops one test binary.
    pub test_timeout: u64,
    pub test_threads: usize,
    /// Arguments for every test binary: filters and libtest options.
    pub args: Vec<String>,
    /// Working directory of the tests, the listns package directory as under `cargo test`.
    pub workdir: PathBuf,
    /// The listns executable, which /init runs once as `listns --follow -v`
    /// to record which hooks attach.
    pub listns: PathBuf,
}

/// Builds the part of the guest tree that is the same for every kernel.
pub fn common_tree(tests: &[TestBinary], listns: &Path, settings: &Settings) -> Result<Rootfs> {
    let mut rootfs = Rootfs::default();

    // The top-level links of a merged /usr come first, so that every later path resolves through them.
    for top in ["/bin", "/sbin", "/lib", "/lib64"] {
        if Path::new(top).exists() {
            rootfs.add_host_path(Path::new(top))?;
        }
    }
    for (dir, permissions) in [
        ("/proc", 0o555),
        ("/sys", 0o555),
        ("/dev", 0o755),
        ("/run", 0o755),
        ("/tmp", 0o1777),
        ("/root", 0o700),
        ("/var", 0o755),
        // /init moves a bind mount of the initramfs here onto /.
        ("/newroot", 0o755),
    ] {
        rootfs.add_directory(Path::new(dir), permissions)?;
    }
    rootfs.add_symlink(Path::new("/var/run"), Path::new("/run"))?;
    // The kernel opens /dev/console for PID 1 before /init can mount devtmpfs.
    rootfs.add_char_device(Path::new("/dev/console"), 0o600, 5, 1)?;
    rootfs.add_contents(
        Path::new("/etc/passwd"),
        b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
        0o644,
    )?;
    rootfs.add_contents(Path::new("/etc/group"), b"root:x:0:\n".to_vec(), 0o644)?;

    let mut python = None;
    let mut busybox = None;
    for tool in GUEST_TOOLS {
        let host_path = find_tool(tool)?;
        let real = rootfs.add_host_path(&host_path)?;
        match tool.command {
            "python3" => python = Some(host_path),
            "busybox" => busybox = Some(real),
            _ => {}
        }
    }
    if let Some(python) = python {
        add_python_stdlib(&mut rootfs, &python)?;
    }

    for test in tests {
        rootfs.add_host_path(&test.path)?;
    }
    // The tests start listns by the absolute path that cargo compiled into them (CARGO_BIN_EXE_listns).
    rootfs.add_host_path(listns)?;
    rootfs.add_host_path(&settings.workdir)?;

    rootfs.add_libraries()?;
    if let Some(busybox) = busybox {
        add_busybox_applets(&mut rootfs, &busybox)?;
    }

    rootfs.add_contents(Path::new("/init"), INIT.as_bytes().to_vec(), 0o755)?;
    rootfs.add_contents(&config_path("settings"), settings_file(settings).into_bytes(), 0o644)?;
    rootfs.add_contents(&config_path("args"), args_file(&settings.args)?.into_bytes(), 0o644)?;
    let tests_file: String = tests
        .iter()
        .map(|test| format!("{} {}\n", test.name, test.path.display()))
        .collect();
    rootfs.add_contents(&config_path("tests"), tests_file.into_bytes(), 0o644)?;
    Ok(rootfs)
}

/// Returns the tree for one kernel: `common` with the kernel's modules under
/// `/lib/modules/RELEASE` and the list that /init loads them from.
pub fn kernel_tree(common: &Rootfs, release: &str, modules: &[GuestModule]) -> Result<Rootfs> {
    let mut rootfs = common.clone();
    // On a merged /usr, /lib is a link and the files go below its target.
    let lib = rootfs.add_host_path(Path::new("/lib"))?;
    let base = lib.join("modules").join(release);

    let mut list = String::new();
    for module in modules {
        let path = base.join(&module.path);
        rootfs.add_contents(&path, module.contents.clone(), 0o644)?;
        list.push_str(&format!("{}\n", path.display()));
    }
    rootfs.add_contents(&config_path("modules"), list.into_bytes(), 0o644)?;
    Ok(rootfs)
}

fn config_path(name: &str) -> PathBuf {
    Path::new(CONFIG_DIR).join(name)
}

fn find_tool(tool: &Tool) -> Result<PathBuf> {
    system::find_command_in(tool.command, OsStr::new(DEBIAN_PATH)).with_context(|| {
        format!(
            "{} not found in {DEBIAN_PATH}, but the guest needs it: install the Debian package {}",
            tool.command, tool.package
        )
    })
}

/// Adds the standard library of the host's Python, which Python finds in the
/// guest at the same path relative to its executable.
fn add_python_stdlib(rootfs: &mut Rootfs, python: &Path) -> Result<()> {
    let description = format!(
        "{} -c 'import sysconfig; print(sysconfig.get_path(\"stdlib\"))'",
        python.display()
    );
    let stdlib = setup::output(
        Command::new(python)
            .args(["-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"])
            .stdin(Stdio::null()),
        &description,
    )?;
    let stdlib = PathBuf::from(stdlib.trim());
    let skip = |path: &Path| {
        path.parent() == Some(stdlib.as_path())
            && path
                .file_name()
                .and_then(OsStr::to_str)
                .is_some_and(|name| PYTHON_SKIPPED.contains(&name) || name.starts_with("config-"))
    };
    rootfs
        .add_host_tree(&stdlib, &skip)
        .with_context(|| format!("cannot add the Python standard library {}", stdlib.display()))
}

/// Adds a link to busybox for each of its applets that no host command provides,
/// next to the busybox binary.
fn add_busybox_applets(rootfs: &mut Rootfs, busybox: &Path) -> Result<()> {
    let applets = setup::output(
        Command::new(busybox).arg("--list").stdin(Stdio::null()),
        &format!("{} --list", busybox.display()),
    )?;
    let Some(dir) = busybox.parent() else {
        bail!("{} has no parent directory", busybox.display());
    };
    let bin_dirs: Vec<PathBuf> = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(PathBuf::from)
        .collect();
    for applet in applets.lines().map(str::trim).filter(|name| !name.is_empty()) {
        if bin_dirs.iter().any(|bin| rootfs.contains(&bin.join(applet))) {
            continue;
        }
        rootfs.add_symlink(&dir.join(applet), Path::new("busybox"))?;
    }
    Ok(())
}

/// Returns the settings as shell assignments for /init to source.
fn settings_file(settings: &Settings) -> String {
    format!(
        "TEST_TIMEOUT={}\nTEST_THREADS={}\nWORKDIR={}\nLISTNS={}\n",
        settings.test_timeout,
        settings.test_threads,
        shell_quote(&settings.workdir.to_string_lossy()),
        shell_quote(&settings.listns.to_string_lossy())
    )
}

/// Returns the arguments one per line, which /init reads back with `read -r`.
fn args_file(args: &[String]) -> Result<String> {
    let mut text = String::new();
    for arg in args {
        if arg.contains('\n') {
            bail!("test argument {arg:?} contains a newline, which the guest cannot pass on: remove it");
        }
        text.push_str(arg);
        text.push('\n');
    }
    Ok(text)
}

/// Quotes `text` for a POSIX shell: single quotes, with each `'` written as `'\''`.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_escapes_quotes() {
        assert_eq!(shell_quote("/work/wt-vm/listns"), "'/work/wt-vm/listns'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn settings_file_is_shell() {
        let settings = Settings {
            test_timeout: 900,
            test_threads: 2,
            args: Vec::new(),
            workdir: PathBuf::from("/src/my listns/listns"),
            listns: PathBuf::from("/src/target/debug/listns"),
        };
        assert_eq!(
            settings_file(&settings),
            "TEST_TIMEOUT=900\nTEST_THREADS=2\nWORKDIR='/src/my listns/listns'\nLISTNS='/src/target/debug/listns'\n"
        );
    }

    #[test]
    fn args_one_per_line() {
        let args = vec!["case_04".to_owned(), "--exact".to_owned(), "with space".to_owned()];
        assert_eq!(args_file(&args).unwrap(), "case_04\n--exact\nwith space\n");
        assert!(args_file(&["a\nb".to_owned()]).is_err());
        assert_eq!(args_file(&[]).unwrap(), "");
    }
}
