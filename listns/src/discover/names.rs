//! Names of network namespaces: the entries of `/run/netns` that `ip netns`
//! creates, as the tool's own mount namespace sees them.

use std::os::fd::AsFd;

use super::Found;
use super::procfs_io::open_read;
use crate::model::{NsKey, NsType};
use crate::nsfs;

/// Directories where `ip netns` keeps its names. `/var/run` is usually a
/// link to `/run`; entries seen twice are counted once.
const NETNS_DIRS: [&str; 2] = ["/run/netns", "/var/run/netns"];

/// Adds the `ip netns` names to the network namespaces they refer to.
pub fn scan(found: &mut Found) {
    let Ok(nsfs_dev) = nsfs::nsfs_device() else { return };
    for dir_path in NETNS_DIRS {
        let Ok(dir) = rustix::fs::openat(
            rustix::fs::CWD,
            dir_path,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        ) else {
            continue;
        };
        let Ok(entries) = rustix::fs::Dir::read_from(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().to_str() else { continue };
            if name == "." || name == ".." {
                continue;
            }
            let name = name.to_owned();
            // An unmounted leftover file is a regular file on another device.
            let Ok(st) = rustix::fs::statat(dir.as_fd(), name.as_str(), rustix::fs::AtFlags::empty()) else {
                continue;
            };
            if st.st_dev != nsfs_dev {
                continue;
            }
            let key = NsKey {
                ty: NsType::Net,
                inode: st.st_ino,
            };
            let entry = found.see(key, || open_read(&dir, &name));
            if !entry.names.contains(&name) {
                entry.names.push(name);
            }
        }
    }
}
