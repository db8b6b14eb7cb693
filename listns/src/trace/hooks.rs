//! The table of kernel hooks behind `listns --follow`.
//!
//! Each [`Hook`] lists ways to attach, best first. The loader uses the first
//! whose programs all load and attach, and logs why the others did not.
//! Every hook but `ns_free` works with tracepoints alone, so the table also
//! serves kernels that allow nothing but tracepoints. `ns_free` needs fentry
//! or kprobes; without it, user space learns of freed namespaces from
//! liveness checks.
//!
//! Every program also needs the ring buffer (Linux 5.8) and
//! `bpf_ktime_get_boot_ns` (5.8), so 5.8 is the minimum for live tracing.
//!
//! Cost: while any classic system call tracepoint is attached, every system
//! call of every task takes the kernel's slow path. On a 2-core VM with
//! Linux 6.18, getppid took 80 ns longer (165 to 245 ns, `trace_bench`);
//! with only the sched hooks it took under 2 ns longer. A raw `sys_enter`
//! hook costs as much, and kprobes or fentry, which would avoid the slow
//! path, are not available on every kernel. `TraceOptions::skip_hooks`
//! trades the system call hooks for that overhead.
//!
//! NOTE: no hook reports the close of an nsfs fd. Where `ns_free` attaches,
//! it reports the kernel freeing the namespace behind the fd. Elsewhere user
//! space learns of the free only by rechecking pinned namespaces.

/// Attach point of a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A classic tracepoint, `/sys/kernel/tracing/events/CATEGORY/NAME`.
    TracePoint { category: &'static str, name: &'static str },
    /// A BTF-enabled tracepoint (tp_btf): the tracepoint's C arguments, typed.
    BtfTracePoint { name: &'static str },
    /// A raw tracepoint: the tracepoint's C arguments as plain u64 values.
    RawTracePoint { name: &'static str },
    /// The entry of a kernel function, through a BPF trampoline (fentry,
    /// Linux 5.5+): the function's C arguments, typed by BTF.
    FEntry { function: &'static str },
    /// A kprobe on the entry of a kernel function: its arguments from the
    /// saved registers. Needs a kernel built with `CONFIG_KPROBES`.
    KProbe { function: &'static str },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::TracePoint { category, name } => write!(f, "tracepoint/{category}/{name}"),
            Target::BtfTracePoint { name } => write!(f, "tp_btf/{name}"),
            Target::RawTracePoint { name } => write!(f, "raw_tp/{name}"),
            Target::FEntry { function } => write!(f, "fentry/{function}"),
            Target::KProbe { function } => write!(f, "kprobe/{function}"),
        }
    }
}

/// One eBPF program and its attach point.
#[derive(Debug, Clone, Copy)]
pub struct Program {
    /// Function name in the eBPF object.
    pub name: &'static str,
    pub target: Target,
}

/// A way to attach a hook: every program must load and attach.
#[derive(Debug, Clone, Copy)]
pub struct Attachment {
    pub programs: &'static [Program],
    /// Oldest kernel (major, minor) with this kind of attach point.
    pub min_kernel: (u32, u32),
}

/// One thing listns observes, with its ways to attach.
#[derive(Debug, Clone, Copy)]
pub struct Hook {
    /// Short name used in logs.
    pub name: &'static str,
    /// Description of what the hook reports.
    pub observes: &'static str,
    /// Ways to attach, best first.
    pub attachments: &'static [Attachment],
    /// Description of what goes unseen when no attachment works.
    pub without: &'static str,
    /// Whether user space finds what the hook reports later on its own (by
    /// a liveness check), so that a missing hook is logged at info level
    /// instead of as a warning.
    pub optional: bool,
}

const fn tracepoint(name: &'static str, category: &'static str, tracepoint: &'static str) -> Program {
    Program {
        name,
        target: Target::TracePoint {
            category,
            name: tracepoint,
        },
    }
}

const fn syscall_pair(
    enter: &'static str,
    exit: &'static str,
    enter_tracepoint: &'static str,
    exit_tracepoint: &'static str,
) -> [Program; 2] {
    [
        tracepoint(enter, "syscalls", enter_tracepoint),
        tracepoint(exit, "syscalls", exit_tracepoint),
    ]
}

const UNSHARE: [Program; 2] = syscall_pair(
    "sys_enter_unshare",
    "sys_exit_unshare",
    "sys_enter_unshare",
    "sys_exit_unshare",
);
const SETNS: [Program; 2] = syscall_pair("sys_enter_setns", "sys_exit_setns", "sys_enter_setns", "sys_exit_setns");
const MOUNT: [Program; 2] = syscall_pair("sys_enter_mount", "sys_exit_mount", "sys_enter_mount", "sys_exit_mount");
const MOVE_MOUNT: [Program; 2] = syscall_pair(
    "sys_enter_move_mount",
    "sys_exit_move_mount",
    "sys_enter_move_mount",
    "sys_exit_move_mount",
);
// umount2(2) is sys_umount in the kernel.
const UMOUNT: [Program; 2] = syscall_pair(
    "sys_enter_umount",
    "sys_exit_umount",
    "sys_enter_umount",
    "sys_exit_umount",
);

/// Every hook. The clone system calls have no row: `sched_process_fork`
/// fires for every clone, clone3, fork and vfork, with both tasks at hand.
pub const HOOKS: &[Hook] = &[
    Hook {
        name: "fork",
        observes: "new tasks whose namespaces differ from their creator's: clone/clone3 with \
                   CLONE_NEW*, and the first children in a pid or time namespace that the \
                   creator unshared for its children",
        attachments: &[
            Attachment {
                programs: &[Program {
                    name: "sched_process_fork_btf",
                    target: Target::BtfTracePoint {
                        name: "sched_process_fork",
                    },
                }],
                min_kernel: (5, 5),
            },
            Attachment {
                programs: &[Program {
                    name: "sched_process_fork_raw",
                    target: Target::RawTracePoint {
                        name: "sched_process_fork",
                    },
                }],
                min_kernel: (4, 17),
            },
        ],
        without: "namespaces created by clone are seen only when a member unshares, setns, execs or exits",
        optional: false,
    },
    Hook {
        name: "unshare",
        observes: "successful unshare calls with CLONE_NEW* flags, with the thread's namespaces after the call",
        attachments: &[Attachment {
            programs: &UNSHARE,
            min_kernel: (4, 7),
        }],
        without: "namespaces created by unshare go unseen until a rescan",
        optional: false,
    },
    Hook {
        name: "setns",
        observes: "successful setns calls (fd, nstype), with the thread's namespaces after the call",
        attachments: &[Attachment {
            programs: &SETNS,
            min_kernel: (4, 7),
        }],
        without: "threads entering other namespaces go unseen until a rescan",
        optional: false,
    },
    Hook {
        name: "exec",
        observes: "successful execs, with the namespaces after exec (a pending time namespace starts here)",
        attachments: &[Attachment {
            programs: &[tracepoint("sched_process_exec", "sched", "sched_process_exec")],
            min_kernel: (4, 7),
        }],
        without: "time namespaces entered on exec and new command names go unseen",
        optional: false,
    },
    Hook {
        name: "exit",
        observes: "every thread exit, with the namespaces it had and whether it was the group's last thread",
        attachments: &[Attachment {
            programs: &[tracepoint("sched_process_exit", "sched", "sched_process_exit")],
            min_kernel: (4, 7),
        }],
        without: "namespaces left or freed by exiting tasks are seen only on a rescan",
        optional: false,
    },
    Hook {
        name: "mount",
        observes: "mount calls with MS_BIND or MS_MOVE (flags, result), which can pin a namespace on a file",
        attachments: &[Attachment {
            programs: &MOUNT,
            min_kernel: (4, 7),
        }],
        without: "nsfs bind mounts made with mount(2) are seen only on a rescan",
        optional: false,
    },
    Hook {
        name: "move_mount",
        observes: "move_mount calls (flags, result), the new mount API's way to attach a bind mount",
        attachments: &[Attachment {
            programs: &MOVE_MOUNT,
            min_kernel: (5, 2),
        }],
        without: "nsfs bind mounts made with the new mount API are seen only on a rescan",
        optional: false,
    },
    Hook {
        name: "umount",
        observes: "umount2 calls (flags, result), which can drop the last pin of a namespace",
        attachments: &[Attachment {
            programs: &UMOUNT,
            min_kernel: (4, 7),
        }],
        without: "removed nsfs bind mounts are seen only on a rescan",
        optional: false,
    },
    Hook {
        name: "ns_free",
        observes: "namespaces the kernel frees (proc_free_inum gives back their inode numbers), also those \
                   that only an fd, a socket or a child namespace held",
        attachments: &[
            Attachment {
                programs: &[Program {
                    name: "fentry_proc_free_inum",
                    target: Target::FEntry {
                        function: "proc_free_inum",
                    },
                }],
                min_kernel: (5, 5),
            },
            Attachment {
                programs: &[Program {
                    name: "kprobe_proc_free_inum",
                    target: Target::KProbe {
                        function: "proc_free_inum",
                    },
                }],
                min_kernel: (4, 1),
            },
        ],
        without: "a namespace that no task holds is reported destroyed by liveness checks alone: on Linux \
                  6.18+ up to a second after the kernel freed it, and on older kernels as soon as its last \
                  task leaves unless a known bind mount holds it",
        optional: true,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_names_are_unique() {
        let mut names: Vec<&str> = HOOKS
            .iter()
            .flat_map(|hook| hook.attachments.iter())
            .flat_map(|attachment| attachment.programs.iter())
            .map(|program| program.name)
            .collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
    }

    #[test]
    fn ns_free_prefers_fentry_to_kprobe() {
        let hook = HOOKS.iter().find(|hook| hook.name == "ns_free").expect("ns_free row");
        let targets: Vec<String> = hook
            .attachments
            .iter()
            .flat_map(|attachment| attachment.programs.iter())
            .map(|program| program.target.to_string())
            .collect();
        assert_eq!(targets, ["fentry/proc_free_inum", "kprobe/proc_free_inum"]);
        assert!(hook.optional);
    }

    #[test]
    fn every_hook_can_attach_somehow() {
        for hook in HOOKS {
            assert!(!hook.attachments.is_empty(), "{} has no attachment", hook.name);
            for attachment in hook.attachments {
                assert!(!attachment.programs.is_empty(), "{} has an empty attachment", hook.name);
            }
        }
    }
}
