//! Kernel modules that the tests need and Debian builds as modules: which
//! files to put into the guest, in which order to load them, and their
//! decompression, because busybox `insmod` in the guest takes plain `.ko` files.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::debian::UnpackedKernel;

/// A module that the tests need, and why.
pub struct TestModule {
    pub name: &'static str,
    pub reason: &'static str,
}

/// Modules that the listns tests use. Debian 12 builds both kernels of the
/// matrix with `CONFIG_TUN=m`.
pub const TEST_MODULES: &[TestModule] = &[TestModule {
    name: "tun",
    reason: "case_04_netns_held_by_tun creates a tap device through /dev/net/tun",
}];

/// A module file for the guest.
#[derive(Debug)]
pub struct GuestModule {
    /// Path relative to `lib/modules/RELEASE`, without the compression suffix.
    pub path: String,
    /// The uncompressed ELF object.
    pub contents: Vec<u8>,
}

/// Decompressors for the suffixes that depmod accepts, each run as `COMMAND -dc FILE`.
const DECOMPRESSORS: &[(&str, &str)] = &[(".ko.xz", "xz"), (".ko.gz", "gzip"), (".ko.zst", "zstd")];

/// Returns the files of [`TEST_MODULES`] and their dependencies in load order,
/// without the modules that `kernel` has built in.
pub fn guest_modules(kernel: &UnpackedKernel) -> Result<Vec<GuestModule>> {
    let read = |name: &str| {
        let path = kernel.modules_dir.join(name);
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    let modules_dep = read("modules.dep")?;
    let builtin = read("modules.builtin")?;

    let mut paths: Vec<String> = Vec::new();
    for module in TEST_MODULES {
        for path in load_order(&modules_dep, &builtin, module.name)
            .with_context(|| format!("{} in {} ({})", module.name, kernel.package, module.reason))?
        {
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
    }

    paths
        .iter()
        .map(|path| {
            let file = kernel.modules_dir.join(path);
            Ok(GuestModule {
                path: strip_compression(path).to_owned(),
                contents: read_module(&file)?,
            })
        })
        .collect()
}

/// Returns the paths (relative to `lib/modules/RELEASE`) to load for module
/// `name`, dependencies first, or nothing when `modules.builtin` lists it.
///
/// Each line of `modules.dep` is `PATH: DEPENDENCY...`, and modprobe loads
/// the dependencies from the last to the first.
fn load_order(modules_dep: &str, builtin: &str, name: &str) -> Result<Vec<String>> {
    let wanted = normalize(name);
    if builtin.lines().any(|path| module_name(path.trim()) == wanted) {
        return Ok(Vec::new());
    }
    for line in modules_dep.lines() {
        let Some((path, dependencies)) = line.split_once(':') else {
            continue;
        };
        if module_name(path.trim()) == wanted {
            let mut order: Vec<String> = dependencies.split_whitespace().rev().map(str::to_owned).collect();
            order.push(path.trim().to_owned());
            return Ok(order);
        }
    }
    bail!("module {name} is neither in modules.dep nor in modules.builtin of this kernel")
}

/// Returns the module name of a path such as `kernel/drivers/net/tun.ko.xz`.
/// The kernel treats `-` and `_` in module names alike, so both become `_`.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = strip_compression(file);
    normalize(stem.strip_suffix(".ko").unwrap_or(stem))
}

fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// Returns `path` with `.ko.xz`, `.ko.gz` or `.ko.zst` shortened to `.ko`.
fn strip_compression(path: &str) -> &str {
    DECOMPRESSORS
        .iter()
        .find_map(|(suffix, _)| path.strip_suffix(suffix).map(|stem| &path[..stem.len() + 3]))
        .unwrap_or(path)
}

/// Reads a module file, decompressing it with the tool its suffix names.
fn read_module(file: &Path) -> Result<Vec<u8>> {
    let name = file.to_string_lossy();
    let Some((_, tool)) = DECOMPRESSORS.iter().find(|(suffix, _)| name.ends_with(suffix)) else {
        return fs::read(file).with_context(|| format!("cannot read {}", file.display()));
    };
    let output = Command::new(tool)
        .arg("-dc")
        .arg(file)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| {
            format!(
                "failed to start `{tool} -dc {}`: install {tool} and rerun",
                file.display()
            )
        })?;
    if !output.status.success() {
        bail!("`{tool} -dc {}` failed ({})", file.display(), output.status);
    }
    Ok(output.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as `depmod -b` writes them for Debian's 6.12 package.
    const MODULES_DEP: &str = "\
kernel/drivers/net/tun.ko.xz:
kernel/net/bridge/bridge.ko.xz: kernel/net/802/stp.ko.xz kernel/net/llc/llc.ko.xz
kernel/net/802/stp.ko.xz: kernel/net/llc/llc.ko.xz
kernel/net/llc/llc.ko.xz:
kernel/drivers/net/wireguard/wireguard.ko.xz: kernel/net/ipv4/udp_tunnel.ko.xz kernel/net/ipv6/ip6_udp_tunnel.ko.xz
";

    #[test]
    fn module_without_dependencies() {
        assert_eq!(
            load_order(MODULES_DEP, "", "tun").unwrap(),
            ["kernel/drivers/net/tun.ko.xz"]
        );
    }

    #[test]
    fn dependencies_load_first() {
        assert_eq!(
            load_order(MODULES_DEP, "", "bridge").unwrap(),
            [
                "kernel/net/llc/llc.ko.xz",
                "kernel/net/802/stp.ko.xz",
                "kernel/net/bridge/bridge.ko.xz"
            ]
        );
    }

    #[test]
    fn builtin_module_needs_no_file() {
        let builtin = "kernel/drivers/net/loopback.ko\nkernel/drivers/net/tun.ko\n";
        assert!(load_order(MODULES_DEP, builtin, "tun").unwrap().is_empty());
    }

    #[test]
    fn unknown_module_is_error() {
        let error = load_order(MODULES_DEP, "", "veth").unwrap_err().to_string();
        assert!(error.contains("veth"), "{error}");
    }

    #[test]
    fn dash_and_underscore_match() {
        let dep = "kernel/drivers/net/ip-vlan.ko:\n";
        assert_eq!(
            load_order(dep, "", "ip_vlan").unwrap(),
            ["kernel/drivers/net/ip-vlan.ko"]
        );
        assert_eq!(module_name("kernel/net/ipv4/udp_tunnel.ko.xz"), "udp_tunnel");
    }

    #[test]
    fn compression_suffix_stripped() {
        assert_eq!(
            strip_compression("kernel/drivers/net/tun.ko.xz"),
            "kernel/drivers/net/tun.ko"
        );
        assert_eq!(
            strip_compression("kernel/drivers/net/tun.ko.zst"),
            "kernel/drivers/net/tun.ko"
        );
        assert_eq!(
            strip_compression("kernel/drivers/net/tun.ko"),
            "kernel/drivers/net/tun.ko"
        );
    }
}
