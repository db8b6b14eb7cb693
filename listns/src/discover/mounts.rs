//! TEMPORARY STUB until the helper delivers.
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsfsMount { pub mount_id: u64, pub mount_point: Vec<u8>, pub ns_type: String, pub ns_inode: u64 }
pub fn read_nsfs_mounts(_pid: i32) -> io::Result<Vec<NsfsMount>> { Err(io::ErrorKind::Unsupported.into()) }
pub fn all_mount_namespaces(_s: BorrowedFd<'_>) -> io::Result<Vec<(OwnedFd, u64)>> { Err(io::ErrorKind::Unsupported.into()) }
pub fn listmount_nsfs(_id: u64) -> io::Result<Vec<NsfsMount>> { Err(io::ErrorKind::Unsupported.into()) }
pub fn nsfs_mounts_by_entering(_m: BorrowedFd<'_>) -> io::Result<Vec<NsfsMount>> { Err(io::ErrorKind::Unsupported.into()) }

// ---- The mount source: nsfs bind mounts of every mount namespace ----

/// Finds nsfs bind mounts in every mount namespace: through the mountinfo of
/// one task per mount namespace, then, for mount namespaces that no task is
/// in, through `NS_MNT_GET_NEXT` with `listmount`/`statmount` (or by entering
/// them in a child process on kernels without `listmount`).
pub fn scan(found: &mut super::Found) {
    use std::collections::BTreeMap;
    use std::os::fd::AsFd;

    use crate::inventory::is_usual_pin_path;
    use crate::model::{Holder, NsKey, NsType};

    // One process per mount namespace is enough: they all see the same mounts.
    let mut readers: BTreeMap<u64, i32> = BTreeMap::new();
    for task in found.tasks.iter().filter(|t| t.is_leader() && !t.zombie) {
        let mnt = task.links.member[NsType::Mnt.index()];
        if mnt != 0 {
            readers.entry(mnt).or_insert(task.pid);
        }
    }
    let mut read = 0usize;
    for (&mnt_inode, &pid) in &readers {
        let mounts = match read_nsfs_mounts(pid) {
            Ok(mounts) => mounts,
            Err(err) => {
                found.problems.record("mountinfo", pid, &err);
                continue;
            }
        };
        read += 1;
        let mnt_ns = NsKey { ty: NsType::Mnt, inode: mnt_inode };
        for m in mounts {
            let Some(ty) = NsType::from_name(&m.ns_type) else { continue };
            let key = NsKey { ty, inode: m.ns_inode };
            let path = String::from_utf8_lossy(&m.mount_point).into_owned();
            let usual = is_usual_pin_path(&path);
            // The mount point is relative to the task's root; /proc/PID/root
            // resolves it in that task's mount namespace.
            let mut proc_path = format!("/proc/{pid}/root").into_bytes();
            proc_path.extend_from_slice(&m.mount_point);
            let open = || super::procfs_io::open_read(rustix::fs::CWD, proc_path.as_slice());
            found.hold(key, Holder::BindMount { path, mnt_ns: Some(mnt_ns), usual }, open);
        }
    }

    // Mount namespaces without a task: the kernel's list of them.
    let own = match super::procfs_io::open_read(rustix::fs::CWD, "/proc/self/ns/mnt") {
        Ok(fd) => fd,
        Err(err) => return found.note(format!("mounts: mountinfo of {read} mount namespaces; own mount namespace unreadable: {err}")),
    };
    let all = match all_mount_namespaces(own.as_fd()) {
        Ok(all) => all,
        Err(err) => {
            return found.note(format!(
                "mounts: mountinfo of {read} mount namespaces; mount namespaces without a task are not listed \
                 (NS_MNT_GET_NEXT: {err}; needs Linux 6.12+ and root)"
            ));
        }
    };
    let mut orphans = 0usize;
    for (fd, mnt_ns_id) in all {
        let Ok(key) = crate::nsfs::key_of(fd.as_fd(), Some(NsType::Mnt)) else { continue };
        if readers.contains_key(&key.inode) {
            continue;
        }
        orphans += 1;
        let mounts = match listmount_nsfs(mnt_ns_id) {
            Ok(mounts) => Ok(mounts),
            Err(err) => {
                log::debug!("listmount of {key} failed ({err}); entering it instead");
                nsfs_mounts_by_entering(fd.as_fd())
            }
        };
        let entry = found.see_fd(key, fd);
        entry.kernel_listed = true;
        match mounts {
            Ok(mounts) => {
                for m in mounts {
                    let Some(ty) = NsType::from_name(&m.ns_type) else { continue };
                    let target = NsKey { ty, inode: m.ns_inode };
                    let path = String::from_utf8_lossy(&m.mount_point).into_owned();
                    let usual = is_usual_pin_path(&path);
                    // NOTE: a namespace mounted only inside a mount namespace
                    // without a task cannot be opened by path from here, so
                    // its id and relations stay unknown unless another holder
                    // reveals it.
                    found.hold(target, Holder::BindMount { path, mnt_ns: Some(key), usual }, super::no_open);
                }
            }
            Err(err) => found.problems.record("mounts of a mount namespace without a task", 0, &err),
        }
    }
    found.note(format!(
        "mounts: mountinfo of {read} mount namespaces, {orphans} mount namespaces without a task via NS_MNT_GET_NEXT"
    ));
}
