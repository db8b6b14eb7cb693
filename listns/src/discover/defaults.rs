//! The host's initial ("default") namespaces, the reference that "non-default"
//! is measured against.
//!
//! PID 1 is no safe reference: it may run in other namespaces than the host
//! (a container's init), and on some machines even root cannot read
//! `/proc/1/ns/*`. kthreadd (PID 2) never leaves the initial namespaces.

use std::fmt;

use super::procfs_io::{open_dir, read_file, read_link};
use super::tasks::parse_stat;
use crate::model::{NsKey, NsType, TaskLinks};
use crate::nsfs;

/// Source of the default namespace of one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultSource {
    /// The namespace links of kthreadd (PID 2).
    Kthreadd,
    /// The kernel's fixed inode number for initial namespaces.
    FixedInode,
    /// The tool's own namespace, the last resort on kernels before 6.18 for
    /// net and mnt when kthreadd is not visible (e.g. inside a container).
    Own,
}

impl DefaultSource {
    pub fn name(self) -> &'static str {
        match self {
            DefaultSource::Kthreadd => "kthreadd",
            DefaultSource::FixedInode => "fixed_inode",
            DefaultSource::Own => "own",
        }
    }
}

impl fmt::Display for DefaultSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The default namespace of every type.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// Indexed by [`NsType::index`].
    pub inodes: [u64; 8],
    pub sources: [DefaultSource; 8],
}

impl Defaults {
    /// Finds the initial namespaces, preferring kthreadd's links.
    pub fn detect() -> Defaults {
        let kthreadd = kthreadd_links();
        let fixed_net_mnt = kernel_at_least(6, 18);
        let mut inodes = [0; 8];
        let mut sources = [DefaultSource::Own; 8];
        for ty in NsType::ALL {
            let i = ty.index();
            if let Some(links) = &kthreadd
                && links.member[i] != 0
            {
                inodes[i] = links.member[i];
                sources[i] = DefaultSource::Kthreadd;
            } else if !matches!(ty, NsType::Net | NsType::Mnt) || fixed_net_mnt {
                inodes[i] = ty.initial_inode();
                sources[i] = DefaultSource::FixedInode;
            } else {
                inodes[i] = own_inode(ty).unwrap_or(0);
                sources[i] = DefaultSource::Own;
            }
        }
        log::info!("default namespaces from {}", sources[0]);
        Defaults { inodes, sources }
    }

    pub fn contains(&self, key: NsKey) -> bool {
        self.inodes[key.ty.index()] == key.inode
    }

    pub fn key(&self, ty: NsType) -> NsKey {
        NsKey {
            ty,
            inode: self.inodes[ty.index()],
        }
    }

    /// Returns whether a task has any readable namespace outside the defaults.
    pub fn differs(&self, links: &TaskLinks) -> bool {
        NsType::ALL.into_iter().any(|ty| {
            let inode = links.member[ty.index()];
            inode != 0 && inode != self.inodes[ty.index()]
        })
    }
}

/// Reads kthreadd's links, if PID 2 is kthreadd and visible.
fn kthreadd_links() -> Option<TaskLinks> {
    let dir = open_dir(rustix::fs::CWD, "/proc/2").ok()?;
    let mut buf = Vec::new();
    read_file(&dir, "stat", &mut buf).ok()?;
    let stat = parse_stat(&buf).ok()?;
    if !stat.kthread || stat.comm != "kthreadd" {
        return None;
    }
    let mut links = TaskLinks::default();
    let mut text = [0u8; 64];
    for ty in NsType::ALL {
        if let Ok(t) = read_link(&dir, &format!("ns/{}", ty.name()), &mut text)
            && let Some(key) = nsfs::parse_link(t)
        {
            links.member[ty.index()] = key.inode;
        }
    }
    Some(links)
}

fn own_inode(ty: NsType) -> Option<u64> {
    let mut text = [0u8; 64];
    let t = read_link(rustix::fs::CWD, &format!("/proc/self/ns/{}", ty.name()), &mut text).ok()?;
    nsfs::parse_link(t).map(|k| k.inode)
}

/// Returns whether the running kernel is at least `major.minor`.
pub(crate) fn kernel_at_least(major: u32, minor: u32) -> bool {
    let uname = rustix::system::uname();
    let release = uname.release().to_string_lossy();
    parse_release(&release).is_some_and(|v| v >= (major, minor))
}

fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_parsing() {
        assert_eq!(parse_release("6.18.44-fc-v1272"), Some((6, 18)));
        assert_eq!(parse_release("6.1.0-31-amd64"), Some((6, 1)));
        assert_eq!(parse_release("garbage"), None);
    }

    #[test]
    fn defaults_include_kthreadd_or_fixed() {
        let d = Defaults::detect();
        for ty in NsType::ALL {
            assert_ne!(d.inodes[ty.index()], 0, "{ty:?}");
        }
    }
}
