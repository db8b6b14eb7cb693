//! Lifecycle events of `--follow`: what changed, to which namespace, by which
//! task. Event kinds are defined once, as data.

use std::time::SystemTime;

use crate::discover::containers::Container;
use crate::model::{Holder, NsKey};

/// Kind of a lifecycle event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    Created,
    Entered,
    Left,
    Pinned,
    Destroyed,
    Named,
    Unnamed,
    Lost,
}

/// Every event kind with its JSON name and meaning; `docs/events.md` and the
/// help text follow this table.
pub const EVENT_KINDS: &[(EventKind, &str, &str)] = &[
    (
        EventKind::Created,
        "created",
        "a namespace appeared (clone, unshare, or found by a rescan)",
    ),
    (
        EventKind::Entered,
        "entered",
        "a task moved into an existing namespace (setns, exec, or clone into a pending pid namespace)",
    ),
    (
        EventKind::Left,
        "left",
        "a task moved out of a namespace that still has other holders",
    ),
    (
        EventKind::Pinned,
        "pinned",
        "the last task left, and something else still holds the namespace",
    ),
    (EventKind::Destroyed, "destroyed", "the namespace is gone"),
    (
        EventKind::Named,
        "named",
        "an nsfs bind mount of the namespace appeared (ip netns add, unshare --net=FILE)",
    ),
    (
        EventKind::Unnamed,
        "unnamed",
        "an nsfs bind mount of the namespace was removed",
    ),
    (
        EventKind::Lost,
        "lost",
        "the kernel dropped events; a rescan follows and reports the difference",
    ),
];

impl EventKind {
    pub fn name(self) -> &'static str {
        EVENT_KINDS
            .iter()
            .find(|(k, _, _)| *k == self)
            .map_or("?", |(_, name, _)| name)
    }
}

/// Source of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A kernel event from the eBPF programs.
    Kernel,
    /// The difference found by a rescan after lost events.
    Rescan,
    /// The difference between two snapshots of the polling backend.
    Poll,
    /// A check of a namespace's liveness after its last task left or its
    /// last bind mount went away.
    Check,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Origin::Kernel => "kernel",
            Origin::Rescan => "rescan",
            Origin::Poll => "poll",
            Origin::Check => "check",
        }
    }
}

/// Evidence that a namespace is gone, for `destroyed` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The `ns_free` hook saw the kernel free the namespace's inode number.
    Freed,
    /// A liveness check no longer found the namespace. Before Linux 6.18,
    /// which cannot open a namespace by its id, the check can only assume
    /// that a namespace whose last task left is gone when no known bind mount
    /// holds it and no `ns_free` hook would report its free.
    Check,
    /// Its inode number came back with another namespace id, so the kernel
    /// freed it and gave the number to a new namespace.
    Recycled,
    /// A rescan or poll snapshot no longer contains it.
    Snapshot,
}

impl Cause {
    /// Returns the name used in JSON and text output.
    pub fn name(self) -> &'static str {
        match self {
            Cause::Freed => "freed",
            Cause::Check => "check",
            Cause::Recycled => "recycled",
            Cause::Snapshot => "snapshot",
        }
    }
}

/// A namespace as an event names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NsRef {
    pub key: NsKey,
    pub id: Option<u64>,
}

/// The task an event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskInfo {
    pub pid: i32,
    pub tid: i32,
    pub ppid: i32,
    pub uid: Option<u32>,
    pub comm: Option<String>,
    pub cmdline: Vec<String>,
    pub container: Option<Container>,
}

/// One lifecycle event.
#[derive(Debug, Clone)]
pub struct Event {
    pub time: SystemTime,
    pub kind: EventKind,
    pub origin: Origin,
    /// The namespace; `None` only for `lost`.
    pub ns: Option<NsRef>,
    pub task: Option<TaskInfo>,
    /// The system call behind a kernel event (`clone`, `unshare`, `setns`,
    /// `execve`, `exit`, `mount`, `umount`).
    pub syscall: Option<&'static str>,
    /// Its `CLONE_NEW*` flags, or the `nstype` of setns.
    pub flags: Option<u64>,
    /// For `entered` and `left`: the namespace the task came from and went to.
    pub from: Option<NsRef>,
    pub to: Option<NsRef>,
    /// For `pinned`, `named` and `unnamed`: the holders involved.
    pub holders: Vec<Holder>,
    /// For `lost`: how many kernel events were dropped.
    pub count: Option<u64>,
    /// For `destroyed`: the evidence that the namespace is gone.
    pub cause: Option<Cause>,
}

impl Event {
    pub fn new(kind: EventKind, origin: Origin, ns: Option<NsRef>) -> Event {
        Event {
            time: SystemTime::now(),
            kind,
            origin,
            ns,
            task: None,
            syscall: None,
            flags: None,
            from: None,
            to: None,
            holders: Vec::new(),
            count: None,
            cause: None,
        }
    }
}
