//! The vocabulary shared by discovery, the inventory and every output:
//! namespaces, what holds them, and tasks.

use std::fmt;

pub use listns_common::NsType;

use crate::discover::containers::Container;

/// Identity of a namespace within one snapshot: its type and nsfs inode.
///
/// Inode numbers are unique among live namespaces but recycled once a
/// namespace is freed, so anything that spans time keys on [`Namespace::id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NsKey {
    pub ty: NsType,
    pub inode: u64,
}

impl fmt::Display for NsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:[{}]", self.ty.name(), self.inode)
    }
}

/// Link of `/proc/PID/task/TID/ns` through which a task refers to a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskLink {
    /// The namespace the task runs in (`ns/net`, `ns/pid`, ...).
    Member,
    /// `ns/pid_for_children`: the pid namespace of the task's future children.
    PidForChildren,
    /// `ns/time_for_children`: the time namespace the task enters on exec.
    TimeForChildren,
    /// A pid namespace created by `unshare(CLONE_NEWPID)` before its first
    /// process: the link gives ENOENT, the pidfd ioctl still returns it.
    PendingPidForChildren,
}

/// Relation of one namespace to another, as the nsfs ioctls report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Relation {
    /// The holder is a user namespace that owns the namespace (`NS_GET_USERNS`).
    Owner,
    /// The holder is the parent of a pid or user namespace (`NS_GET_PARENT`).
    Parent,
}

/// Something that keeps a namespace alive, or that revealed it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Holder {
    /// A task's namespace link other than plain membership (membership is
    /// recorded in [`Namespace::tasks`], which can hold thousands of entries).
    Task { pid: i32, tid: i32, link: TaskLink },
    /// An nsfs bind mount, in the mount namespace `mnt_ns`.
    BindMount {
        path: String,
        mnt_ns: Option<NsKey>,
        /// Whether the mount point is one of the usual places ([`crate::inventory::USUAL_PIN_DIRS`]).
        usual: bool,
    },
    /// An open file descriptor on an nsfs file. `tid` differs from `pid`
    /// only for a thread with an fd table of its own (`unshare(CLONE_FILES)`),
    /// or when the leader has exited.
    Fd { pid: i32, tid: i32, fd: i32 },
    /// A socket whose network namespace differs from its process's.
    Socket {
        pid: i32,
        tid: i32,
        fd: i32,
        socket_inode: u64,
    },
    /// A tun/tap fd whose device lives in another network namespace.
    Tun { pid: i32, tid: i32, fd: i32 },
    /// Another namespace that refers to this one: a user namespace owns
    /// namespaces, and pid and user namespaces keep their parents alive.
    Child { relation: Relation, child: NsKey },
    /// Only the kernel's own namespace list (`listns()`) reports it.
    KernelList,
}

impl Holder {
    /// Returns the PID whose task, fd or socket this holder is, if any.
    pub fn pid(&self) -> Option<i32> {
        match *self {
            Holder::Task { pid, .. }
            | Holder::Fd { pid, .. }
            | Holder::Socket { pid, .. }
            | Holder::Tun { pid, .. } => Some(pid),
            _ => None,
        }
    }

    /// Returns whether this holder is outside the usual places, which makes a
    /// namespace held by it "hidden".
    pub fn is_unusual(&self) -> bool {
        match self {
            Holder::BindMount { usual, .. } => !usual,
            Holder::Fd { .. } | Holder::Socket { .. } | Holder::Tun { .. } | Holder::KernelList => true,
            Holder::Task { .. } | Holder::Child { .. } => false,
        }
    }

    /// Returns the stable machine-readable name of this holder kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Holder::Task {
                link: TaskLink::Member, ..
            } => "task",
            Holder::Task {
                link: TaskLink::PidForChildren,
                ..
            } => "pid_for_children",
            Holder::Task {
                link: TaskLink::TimeForChildren,
                ..
            } => "time_for_children",
            Holder::Task {
                link: TaskLink::PendingPidForChildren,
                ..
            } => "pending_pid_for_children",
            Holder::BindMount { .. } => "bind_mount",
            Holder::Fd { .. } => "fd",
            Holder::Socket { .. } => "socket",
            Holder::Tun { .. } => "tun",
            Holder::Child {
                relation: Relation::Owner,
                ..
            } => "owned_namespace",
            Holder::Child {
                relation: Relation::Parent,
                ..
            } => "child_namespace",
            Holder::KernelList => "kernel_list",
        }
    }
}

/// Describes the holder for people; paths are not escaped here.
impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::Task { pid, tid, link } => {
                let link = match link {
                    TaskLink::Member => "member",
                    TaskLink::PidForChildren => "pid_for_children",
                    TaskLink::TimeForChildren => "time_for_children",
                    TaskLink::PendingPidForChildren => "pending pid_for_children",
                };
                if pid == tid {
                    write!(f, "{link} of PID {pid}")
                } else {
                    write!(f, "{link} of TID {tid} (PID {pid})")
                }
            }
            Holder::BindMount { path, mnt_ns, .. } => match mnt_ns {
                Some(mnt) => write!(f, "bind mount {path} in {mnt}"),
                None => write!(f, "bind mount {path}"),
            },
            Holder::Fd { pid, tid, fd } => write!(f, "fd {fd} of {}", owner(*pid, *tid)),
            Holder::Socket { pid, tid, fd, .. } => write!(f, "socket fd {fd} of {}", owner(*pid, *tid)),
            Holder::Tun { pid, tid, fd } => write!(f, "tun fd {fd} of {}", owner(*pid, *tid)),
            Holder::Child {
                relation: Relation::Owner,
                child,
            } => write!(f, "owner of {child}"),
            Holder::Child {
                relation: Relation::Parent,
                child,
            } => write!(f, "parent of {child}"),
            Holder::KernelList => f.write_str("kernel namespace list only"),
        }
    }
}

/// Names the task whose fd table holds an fd: `PID 812`, or `TID 815 (PID 812)`.
fn owner(pid: i32, tid: i32) -> String {
    if pid == tid {
        format!("PID {pid}")
    } else {
        format!("TID {tid} (PID {pid})")
    }
}

/// Classification of a namespace in the inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NsState {
    /// One of the host's initial namespaces.
    Default,
    /// At least one task is a member.
    InUse,
    /// No task is a member, but something ordinary holds it: a bind mount in
    /// a usual place, a `*_for_children` link, or a child namespace.
    Pinned,
    /// No task is a member, and something outside the usual places holds it.
    Hidden,
}

impl NsState {
    pub fn name(self) -> &'static str {
        match self {
            NsState::Default => "default",
            NsState::InUse => "in_use",
            NsState::Pinned => "pinned",
            NsState::Hidden => "hidden",
        }
    }
}

/// Number of namespace links per task: one per type plus `pid_for_children`
/// and `time_for_children`.
pub const LINK_COUNT: usize = 10;

/// The namespace links of one task, as inode numbers (0 where unreadable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskLinks {
    /// Indexed by [`NsType::index`].
    pub member: [u64; 8],
    pub pid_for_children: u64,
    pub time_for_children: u64,
}

impl TaskLinks {
    pub fn get(&self, ty: NsType) -> Option<NsKey> {
        let inode = self.member[ty.index()];
        (inode != 0).then_some(NsKey { ty, inode })
    }
}

/// One task (thread) seen by the scan.
#[derive(Debug, Clone)]
pub struct Task {
    pub pid: i32,
    pub tid: i32,
    pub ppid: i32,
    /// Effective UID, from the owner of `/proc/PID`.
    pub uid: Option<u32>,
    /// Thread name; `None` for threads whose namespaces match their leader's,
    /// which the scan does not read, to stay fast on processes with many threads.
    pub comm: Option<String>,
    /// Command line of a thread-group leader; empty for kernel threads and zombies.
    pub cmdline: Vec<String>,
    pub kthread: bool,
    pub zombie: bool,
    pub links: TaskLinks,
    pub container: Option<Container>,
    /// Id of the task's cgroup v2 cgroup; only the BPF iterator route reads it.
    pub cgroup_id: Option<u64>,
}

impl Task {
    pub fn is_leader(&self) -> bool {
        self.pid == self.tid
    }
}

/// Splits the contents of `/proc/PID/cmdline` into arguments. Each argument
/// ends with a NUL byte; empty arguments are kept, and bytes after the last
/// NUL (a process that overwrote its arguments) form a last argument.
pub fn split_cmdline(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|&b| b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

#[cfg(test)]
mod cmdline_tests {
    use super::split_cmdline;

    #[test]
    fn split_cmdline_keeps_empty_arguments() {
        assert_eq!(
            split_cmdline(b"python3\x00a\x00\x00b\x00\x00"),
            ["python3", "a", "", "b", ""]
        );
        assert_eq!(split_cmdline(b"sleep\x00600\x00"), ["sleep", "600"]);
        assert_eq!(split_cmdline(b"title without nul"), ["title without nul"]);
        assert!(split_cmdline(b"").is_empty());
    }
}
