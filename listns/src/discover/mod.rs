//! Sources of namespaces, one module each. Every source adds what it finds to
//! a shared [`Found`], which [`crate::inventory`] turns into the snapshot.

pub mod containers;
pub mod defaults;
pub mod fds;
pub mod iter;
pub mod kernel_list;
pub mod mounts;
pub mod names;
pub mod netnsid;
pub mod procfs_io;
pub mod relations;
pub mod tasks;

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::model::{Holder, NsKey, NsType, Task};
use crate::nsfs;
use crate::problems::Problems;

/// A namespace as the sources see it, before classification.
#[derive(Debug, Default)]
pub struct FoundNs {
    /// An open nsfs file of this namespace, used for ids and relations.
    /// `None` where no source could open it (e.g. a mount in a mount
    /// namespace without process, seen only through `statmount`).
    pub fd: Option<OwnedFd>,
    pub holders: Vec<Holder>,
    pub id: Option<u64>,
    pub owner: Option<NsKey>,
    pub parent: Option<NsKey>,
    pub owner_uid: Option<u32>,
    /// `ip netns` names: entries of `/run/netns`.
    pub names: Vec<String>,
    pub netnsid: Option<i32>,
    /// A kernel enumeration (`listns()`, `NS_MNT_GET_NEXT`) reported it.
    pub kernel_listed: bool,
    /// Ids and relations were looked up already.
    pub resolved: bool,
}

/// Everything the sources found, keyed by namespace.
#[derive(Debug, Default)]
pub struct Found {
    pub namespaces: HashMap<NsKey, FoundNs>,
    pub tasks: Vec<Task>,
    pub problems: Problems,
    /// One line per source about how it ran ("mount namespaces: 3 via
    /// NS_MNT_GET_NEXT"), for the log and the JSON output.
    pub notes: Vec<String>,
}

impl Found {
    /// Records that `key` exists. When no fd is open for it yet, `open` is
    /// called and its result kept if it really is that namespace: a task can
    /// switch namespaces between a readlink and an open.
    pub fn see(&mut self, key: NsKey, open: impl FnOnce() -> io::Result<OwnedFd>) -> &mut FoundNs {
        let entry = self.namespaces.entry(key).or_default();
        if entry.fd.is_none() {
            match open() {
                Ok(fd) => match nsfs::key_of(fd.as_fd(), Some(key.ty)) {
                    Ok(k) if k == key => entry.fd = Some(fd),
                    Ok(other) => log::debug!("opened {other} while looking for {key}; the task moved"),
                    Err(err) => log::debug!("fstat of {key} failed: {err}"),
                },
                Err(err) => log::debug!("could not open {key}: {err}"),
            }
        }
        entry
    }

    /// Records `key` with an fd that is already open (from an ioctl) and
    /// returns the entry.
    pub fn see_fd(&mut self, key: NsKey, fd: OwnedFd) -> &mut FoundNs {
        let entry = self.namespaces.entry(key).or_default();
        if entry.fd.is_none() {
            entry.fd = Some(fd);
        }
        entry
    }

    /// Adds a holder once.
    pub fn hold(&mut self, key: NsKey, holder: Holder, open: impl FnOnce() -> io::Result<OwnedFd>) {
        let entry = self.see(key, open);
        if !entry.holders.contains(&holder) {
            entry.holders.push(holder);
        }
    }

    pub fn note(&mut self, line: String) {
        log::debug!("{line}");
        self.notes.push(line);
    }
}

/// Returns an error for an open that was not attempted, for [`Found::see`].
pub fn no_open() -> io::Result<OwnedFd> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Returns the type of an nsfs fd, from a link text if it names one.
pub fn type_hint(text: &[u8]) -> Option<NsType> {
    nsfs::parse_link(text).map(|k| k.ty)
}

/// Per-thread state of a parallel read: buffers, and the problems met.
pub trait Worker: Default {
    fn into_problems(self) -> Problems;
}

/// Runs `read` on every item on up to four worker threads and returns the
/// results in item order; the workers' problem counts go to `found`.
pub fn parallel<T: Sync, W: Worker, R: Send>(
    items: &[T],
    found: &mut Found,
    read: impl Fn(&T, &mut W) -> R + Sync,
) -> Vec<R> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = Vec::with_capacity(items.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut worker = W::default();
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        out.push((i, read(item, &mut worker)));
                    }
                    (out, worker.into_problems())
                })
            })
            .collect();
        for handle in handles {
            let (out, problems) = handle.join().expect("scan worker panicked");
            results.extend(out);
            found.problems.merge(problems);
        }
    });
    results.sort_unstable_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}
