//! Debian kernel packages: finds the newest package of a series, downloads
//! and unpacks it into a cache under the target directory, without
//! installing it, so /boot and the host's modules stay untouched.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::kernels;
use crate::setup;

/// A Debian kernel package unpacked in the cache.
#[derive(Debug)]
pub struct UnpackedKernel {
    pub package: String,
    /// The Debian version of the package, such as `6.1.192-3`.
    pub version: String,
    /// The kernel release (`uname -r`), such as `6.1.0-57-amd64`.
    pub release: String,
    pub vmlinuz: PathBuf,
    /// `lib/modules/RELEASE` in the unpacked tree, with the `modules.dep` that depmod wrote.
    pub modules_dir: PathBuf,
}

/// Name of the file in a package's cache directory that records the unpacked version.
const STAMP: &str = "unpacked";

/// Finds the package that `package_pattern` selects and unpacks it under
/// `cache`, or reuses the tree there when it contains the candidate version.
/// `updated` records whether this run has already run `apt-get update`.
pub fn prepare(kernel: &str, package_pattern: &str, cache: &Path, updated: &mut bool) -> Result<UnpackedKernel> {
    let package = newest_package(kernel, package_pattern, updated)?;
    let policy = setup::output(
        Command::new("apt-cache")
            .args(["policy", &package])
            .stdin(Stdio::null()),
        &format!("apt-cache policy {package}"),
    )?;
    let Some(version) = kernels::candidate_version(&policy) else {
        bail!("apt has no installable version of {package} (kernel {kernel}): run `apt-get update` and retry");
    };

    let dir = cache.join(&package);
    let root = dir.join("root");
    let stamp = dir.join(STAMP);
    if fs::read_to_string(&stamp).is_ok_and(|text| text.trim_end() == version) {
        eprintln!("xtask vm: {kernel}: using {package} {version} from {}", dir.display());
    } else {
        eprintln!("xtask vm: {kernel}: downloading and unpacking {package} {version}");
        unpack(&package, version, &dir, &root)?;
    }

    let (release, vmlinuz) = find_vmlinuz(&root)?;
    let modules_dir = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|base| root.join(base).join(&release))
        .find(|dir| dir.is_dir())
        .with_context(|| format!("{package} has no lib/modules/{release} under {}", root.display()))?;

    if !stamp.exists() {
        // Debian's packages ship no modules.dep: the postinst script runs
        // depmod at installation. `depmod -b` writes it into the unpacked tree.
        let description = format!("depmod -b {} {release}", root.display());
        let depmod = crate::system::find_command("depmod")
            .context("depmod not found: install the Debian package kmod and rerun")?;
        setup::run_to_stderr(
            Command::new(depmod)
                .arg("-b")
                .arg(&root)
                .arg(&release)
                .stdin(Stdio::null()),
            &description,
        )?;
        fs::write(&stamp, format!("{version}\n")).with_context(|| format!("cannot write {}", stamp.display()))?;
    }

    Ok(UnpackedKernel {
        package,
        version: version.to_owned(),
        release,
        vmlinuz,
        modules_dir,
    })
}

/// Returns the newest package that `apt-cache search` finds for `package_pattern`,
/// running `apt-get update` once when it finds none.
fn newest_package(kernel: &str, package_pattern: &str, updated: &mut bool) -> Result<String> {
    loop {
        let description = format!("apt-cache search --names-only '{package_pattern}'");
        let search = setup::output(
            Command::new("apt-cache")
                .args(["search", "--names-only", package_pattern])
                .stdin(Stdio::null()),
            &description,
        )?;
        if let Some(package) = kernels::newest_package(&search) {
            return Ok(package.to_owned());
        }
        if *updated {
            bail!(
                "no Debian package matches '{package_pattern}' for kernel {kernel}, even after apt-get update: \
                 check that /etc/apt/sources.list.d lists bookworm and bookworm-security with the main component"
            );
        }
        eprintln!("xtask vm: {kernel}: no package matches '{package_pattern}'; running apt-get update");
        setup::apt_get(&["update"])?;
        *updated = true;
    }
}

/// Downloads `package` at `version` into `dir` and unpacks it into `root`, replacing what was there.
fn unpack(package: &str, version: &str, dir: &Path, root: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot remove the old cache {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;

    // apt-get download saves PACKAGE_VERSION_ARCH.deb in the working directory.
    // As root it warns that the `_apt` user cannot write there and downloads without its sandbox.
    let request = format!("{package}={version}");
    setup::run_to_stderr(
        Command::new("apt-get")
            .args(["download", "--quiet", &request])
            .current_dir(dir)
            .stdin(Stdio::null()),
        &format!("apt-get download {request}"),
    )?;
    let deb = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| path.extension().is_some_and(|extension| extension == "deb"))
        .with_context(|| format!("apt-get download {request} saved no .deb file in {}", dir.display()))?;

    setup::run_to_stderr(
        Command::new("dpkg").arg("-x").arg(&deb).arg(root).stdin(Stdio::null()),
        &format!("dpkg -x {} {}", deb.display(), root.display()),
    )?;
    // The unpacked tree has everything the runs need.
    fs::remove_file(&deb).with_context(|| format!("cannot remove {}", deb.display()))
}

/// Returns the release and path of the only `boot/vmlinuz-RELEASE` in `root`.
fn find_vmlinuz(root: &Path) -> Result<(String, PathBuf)> {
    let boot = root.join("boot");
    let mut found = Vec::new();
    for entry in fs::read_dir(&boot).with_context(|| format!("cannot list {}", boot.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", boot.display()))?;
        if let Some(release) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.strip_prefix("vmlinuz-"))
        {
            found.push((release.to_owned(), entry.path()));
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!(
            "no vmlinuz-RELEASE in {}: is this a kernel image package?",
            boot.display()
        ),
        _ => bail!(
            "several vmlinuz files in {}: remove the directory and rerun",
            boot.display()
        ),
    }
}
