//! The kernels of the test matrix: which Debian kernel series each one is,
//! and why it is in the matrix.

use anyhow::{Result, bail};

/// One row of the matrix.
#[derive(Debug)]
pub struct Kernel {
    /// The value of `--kernel` and the heading of the report.
    pub name: &'static str,
    pub source: Source,
    /// The interfaces this kernel has or lacks that make it worth a run.
    pub reason: &'static str,
}

/// Origin of the kernel of a row.
#[derive(Debug)]
pub enum Source {
    /// The kernel this machine runs: the test binaries run directly, without a VM.
    Host,
    /// The newest binary package of a Debian kernel series, booted under QEMU.
    Debian {
        /// POSIX extended regular expression for `apt-cache search --names-only`
        /// that matches every package of the series and no other flavour.
        package_pattern: &'static str,
    },
}

/// The matrix, in the order of the report.
pub const KERNELS: &[Kernel] = &[
    Kernel {
        name: "host",
        source: Source::Host,
        reason: "the kernel of this machine, without a VM",
    },
    Kernel {
        name: "6.1",
        source: Source::Debian {
            package_pattern: r"^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$",
        },
        reason: "Debian 12 default; lacks NS_GET_ID, nsfs file handles, listmount, NS_MNT_GET_NEXT \
                 and the pidfd namespace ioctls, and allocates net and mnt inode numbers dynamically",
    },
    Kernel {
        name: "6.12",
        source: Source::Debian {
            package_pattern: r"^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$",
        },
        reason: "Debian 12 backports and Debian 13; has kprobe.multi, listmount, NS_MNT_GET_NEXT and the \
                 pidfd namespace ioctls, lacks NS_GET_ID and nsfs file handles, and allocates net and mnt \
                 inode numbers dynamically",
    },
];

/// Returns the rows named in `names` in the order of [`KERNELS`], or every row when `names` is empty.
pub fn select(names: &[String]) -> Result<Vec<&'static Kernel>> {
    for name in names {
        if !KERNELS.iter().any(|kernel| kernel.name == name) {
            let known: Vec<&str> = KERNELS.iter().map(|kernel| kernel.name).collect();
            bail!("unknown kernel '{name}': choose from {}", known.join(", "));
        }
    }
    Ok(KERNELS
        .iter()
        .filter(|kernel| names.is_empty() || names.iter().any(|name| name == kernel.name))
        .collect())
}

/// Returns the package with the highest version among the names that
/// `apt-cache search --names-only` printed (`NAME - DESCRIPTION` per line).
pub fn newest_package(search_output: &str) -> Option<&str> {
    search_output
        .lines()
        .filter_map(|line| line.split(" - ").next())
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .max_by_key(|name| version_key(name))
}

/// Returns the numbers in a package name in order, which sorts the packages
/// of one series by version: `linux-image-6.1.0-57-amd64-unsigned` gives
/// `[6, 1, 0, 57, 64]`, and `-47-` sorts before `-57-` and `-100-`.
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().unwrap_or(u64::MAX))
        .collect()
}

/// Returns the `Candidate:` version that `apt-cache policy PACKAGE` printed,
/// or None when apt has no installable version (`(none)`).
pub fn candidate_version(policy_output: &str) -> Option<&str> {
    policy_output
        .lines()
        .find_map(|line| line.trim().strip_prefix("Candidate:"))
        .map(str::trim)
        .filter(|version| !version.is_empty() && *version != "(none)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_keeps_table_order() {
        let names = vec!["6.12".to_owned(), "host".to_owned()];
        let selected: Vec<&str> = select(&names).unwrap().iter().map(|kernel| kernel.name).collect();
        assert_eq!(selected, ["host", "6.12"]);
    }

    #[test]
    fn select_all_by_default() {
        assert_eq!(select(&[]).unwrap().len(), KERNELS.len());
    }

    #[test]
    fn select_unknown_names_choices() {
        let error = select(&["5.10".to_owned()]).unwrap_err().to_string();
        assert!(error.contains("'5.10'"), "{error}");
        assert!(error.contains("host, 6.1, 6.12"), "{error}");
    }

    #[test]
    fn newest_package_by_number_not_text() {
        let output = "\
linux-image-6.1.0-9-amd64-unsigned - Linux 6.1 for 64-bit PCs
linux-image-6.1.0-57-amd64-unsigned - Linux 6.1 for 64-bit PCs
linux-image-6.1.0-100-amd64-unsigned - Linux 6.1 for 64-bit PCs
linux-image-6.1.0-47-amd64-unsigned - Linux 6.1 for 64-bit PCs
";
        assert_eq!(newest_package(output), Some("linux-image-6.1.0-100-amd64-unsigned"));
    }

    #[test]
    fn newest_package_of_6_12_series() {
        let output = "\
linux-image-6.12.107+deb12-amd64-unsigned - Linux 6.12 for 64-bit PCs
linux-image-6.12.118+deb12-amd64-unsigned - Linux 6.12 for 64-bit PCs
linux-image-6.12.115+deb12-amd64-unsigned - Linux 6.12 for 64-bit PCs
";
        assert_eq!(
            newest_package(output),
            Some("linux-image-6.12.118+deb12-amd64-unsigned")
        );
        assert_eq!(newest_package(""), None);
    }

    #[test]
    fn candidate_from_policy() {
        let policy = "\
linux-image-6.1.0-57-amd64-unsigned:
  Installed: (none)
  Candidate: 6.1.192-3
  Version table:
     6.1.192-3 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
";
        assert_eq!(candidate_version(policy), Some("6.1.192-3"));
    }

    #[test]
    fn no_candidate_in_policy() {
        let policy =
            "linux-image-6.1.0-48-amd64-unsigned:\n  Installed: (none)\n  Candidate: (none)\n  Version table:\n";
        assert_eq!(candidate_version(policy), None);
        assert_eq!(candidate_version(""), None);
    }
}
