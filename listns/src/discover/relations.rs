//! Relations between namespaces: the 64-bit id of each, its owning user
//! namespace (`NS_GET_USERNS`) and the parent of pid and user namespaces
//! (`NS_GET_PARENT`). Following them reveals ancestors that no task, mount
//! or fd holds, such as the middle user namespace of
//! `unshare -U -r unshare -U -r sleep 600`.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use super::Found;
use crate::model::{NsKey, NsType};
use crate::nsfs;

/// Resolves ids and relations of every namespace with an open fd, adding the
/// namespaces that only these relations reveal. Returns whether the kernel
/// has `NS_GET_ID`.
pub fn resolve(found: &mut Found) -> bool {
    let mut queue: Vec<NsKey> = found.namespaces.keys().copied().collect();
    let mut done = HashSet::new();
    let mut have_ids = true;
    while let Some(key) = queue.pop() {
        if !done.insert(key) {
            continue;
        }
        let Some(entry) = found.namespaces.get(&key) else {
            continue;
        };
        if entry.resolved {
            continue;
        }
        let Some(fd) = entry.fd.as_ref().map(|f| f.as_fd()) else {
            continue;
        };

        let id = if have_ids {
            match nsfs::namespace_id(fd) {
                Ok(id) => Some(id),
                Err(err) => {
                    // Kernels before 6.18 lack NS_GET_ID; inodes are the key there.
                    if err.raw_os_error() == Some(libc::ENOTTY) {
                        have_ids = false;
                    } else {
                        found.problems.record("namespace id (NS_GET_ID)", 0, &err);
                    }
                    None
                }
            }
        } else {
            None
        };
        let owner_uid = if key.ty == NsType::User {
            nsfs::owner_uid(fd).ok()
        } else {
            None
        };
        let owner = related(key, nsfs::owner_userns(fd), NsType::User);
        let parent = if matches!(key.ty, NsType::Pid | NsType::User) {
            related(key, nsfs::parent(fd), key.ty)
        } else {
            None
        };

        let entry = found.namespaces.get_mut(&key).expect("entry checked above");
        entry.resolved = true;
        entry.id = id;
        entry.owner_uid = owner_uid;
        entry.owner = owner.as_ref().map(|(k, _)| *k);
        entry.parent = parent.as_ref().map(|(k, _)| *k);
        for (related_key, related_fd) in owner.into_iter().chain(parent) {
            found.see_fd(related_key, related_fd);
            queue.push(related_key);
        }
    }
    if !have_ids {
        found.note("NS_GET_ID is not supported by this kernel: namespaces are keyed by type and inode only".into());
    }
    have_ids
}

/// Turns the result of a relation ioctl into the related namespace. EPERM
/// (no visible owner or parent, as for the initial namespaces) gives `None`.
fn related(key: NsKey, result: io::Result<OwnedFd>, ty: NsType) -> Option<(NsKey, OwnedFd)> {
    match result {
        Ok(fd) => match nsfs::key_of(fd.as_fd(), Some(ty)) {
            Ok(k) => Some((k, fd)),
            Err(err) => {
                log::debug!("fstat of a relation of {key} failed: {err}");
                None
            }
        },
        Err(err) => {
            if !matches!(err.raw_os_error(), Some(libc::EPERM) | Some(libc::EINVAL)) {
                log::debug!("relation ioctl on {key} failed: {err}");
            }
            None
        }
    }
}
