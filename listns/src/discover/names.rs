//! Names of network namespaces: the entries of `/run/netns` that `ip netns`
//! creates, as the tool's own mount namespace sees them.

use std::os::fd::AsFd;

use super::Found;
use super::procfs_io::open_read;
use crate::model::NsType;
use crate::nsfs;

/// Directories where `ip netns` keeps its names. `/var/run` is usually a
/// link to `/run`; entries seen twice are counted once.
const NETNS_DIRS: [&str; 2] = ["/run/netns", "/var/run/netns"];

/// Adds the `ip netns` names to the network namespaces they refer to.
pub fn scan(found: &mut Found) {
    let Ok(nsfs_dev) = nsfs::nsfs_device() else { return };
    for dir_path in NETNS_DIRS {
        let dir = match rustix::fs::openat(
            rustix::fs::CWD,
            dir_path,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        ) {
            Ok(dir) => dir,
            // No `ip netns` name was ever created.
            Err(rustix::io::Errno::NOENT) => continue,
            Err(err) => {
                found.problems.record("ip netns names", 0, &err.into());
                continue;
            }
        };
        let entries = match rustix::fs::Dir::read_from(&dir) {
            Ok(entries) => entries,
            Err(err) => {
                found.problems.record("ip netns names", 0, &err.into());
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => {
                    found.problems.record("ip netns names", 0, &err.into());
                    break;
                }
            };
            let raw = entry.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            let name = String::from_utf8_lossy(raw).into_owned();
            // An unmounted leftover file is a regular file on another device.
            let st = match rustix::fs::statat(dir.as_fd(), raw, rustix::fs::AtFlags::empty()) {
                Ok(st) => st,
                Err(err) => {
                    found.problems.record("ip netns names", 0, &err.into());
                    continue;
                }
            };
            if st.st_dev != nsfs_dev {
                continue;
            }
            // Any namespace can be bind-mounted here; only network ones are names.
            let file = match open_read(&dir, raw) {
                Ok(file) => file,
                Err(err) => {
                    found.problems.record("ip netns names", 0, &err);
                    continue;
                }
            };
            let key = match nsfs::key_of(file.as_fd(), None) {
                Ok(key) if key.ty == NsType::Net => key,
                Ok(_) => continue,
                Err(err) => {
                    found.problems.record("ip netns names", 0, &err);
                    continue;
                }
            };
            let entry = found.see_fd(key, file);
            if !entry.names.contains(&name) {
                entry.names.push(name);
            }
        }
    }
}
