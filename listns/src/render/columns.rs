//! The columns of the namespace table (`--list`), defined once as data: the
//! table, `-o` and `--help` all read [`COLUMNS`].

use crate::inventory::{Inventory, Namespace};
use crate::model::{Holder, Task};

/// One namespace with the context its columns need.
pub struct Row<'a> {
    pub inventory: &'a Inventory,
    pub ns: &'a Namespace,
    /// The member process with the lowest PID, which PID, USER and COMMAND describe.
    pub first: Option<&'a Task>,
}

/// One output column.
pub struct Column {
    pub name: &'static str,
    pub help: &'static str,
    pub right_align: bool,
    /// Shown when `-o` is not given.
    pub default: bool,
    /// Returns the cell text, unescaped; empty when the value is unknown.
    pub value: fn(&Row<'_>) -> String,
}

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// Every column, in the default order.
pub const COLUMNS: &[Column] = &[
    Column {
        name: "NS",
        help: "namespace inode number",
        right_align: true,
        default: true,
        value: |r| r.ns.key.inode.to_string(),
    },
    Column {
        name: "TYPE",
        help: "namespace type (cgroup, ipc, mnt, net, pid, time, user, uts)",
        right_align: false,
        default: true,
        value: |r| r.ns.key.ty.name().to_string(),
    },
    Column {
        name: "ID",
        help: "64-bit namespace id (NS_GET_ID, Linux 6.18+), never reused",
        right_align: true,
        default: true,
        value: |r| opt(r.ns.id),
    },
    Column {
        name: "NPROCS",
        help: "number of processes in the namespace",
        right_align: true,
        default: true,
        value: |r| r.ns.pids(&r.inventory.tasks).len().to_string(),
    },
    Column {
        name: "NTASKS",
        help: "number of tasks (threads) in the namespace",
        right_align: true,
        default: false,
        value: |r| r.ns.tasks.len().to_string(),
    },
    Column {
        name: "PID",
        help: "lowest PID in the namespace",
        right_align: true,
        default: true,
        value: |r| opt(r.first.map(|t| t.pid)),
    },
    Column {
        name: "PPID",
        help: "parent PID of that process",
        right_align: true,
        default: false,
        value: |r| opt(r.first.map(|t| t.ppid)),
    },
    Column {
        name: "UID",
        help: "effective UID of that process",
        right_align: true,
        default: false,
        value: |r| opt(r.first.and_then(|t| t.uid)),
    },
    Column {
        name: "USER",
        help: "user name of that process",
        right_align: false,
        default: true,
        value: |r| {
            r.first
                .and_then(|t| t.uid)
                .map(|uid| super::user_name(uid).unwrap_or_else(|| uid.to_string()))
                .unwrap_or_default()
        },
    },
    Column {
        name: "STATE",
        help: "default, in_use, pinned (no task, held by something usual) or hidden (held outside the usual places)",
        right_align: false,
        default: false,
        value: |r| r.ns.state.name().to_string(),
    },
    Column {
        name: "HOLDERS",
        help: "what holds the namespace besides its tasks: bind mounts, fds, sockets, child namespaces",
        right_align: false,
        default: true,
        value: |r| holders(&r.ns.holders),
    },
    Column {
        name: "NETNSID",
        help: "network namespace id assigned in this tool's network namespace",
        right_align: true,
        default: false,
        value: |r| opt(r.ns.netnsid),
    },
    Column {
        name: "NAME",
        help: "ip netns names of a network namespace",
        right_align: false,
        default: false,
        value: |r| r.ns.names.join(","),
    },
    Column {
        name: "NSFS",
        help: "paths where the namespace is bind-mounted",
        right_align: false,
        default: false,
        value: |r| {
            let paths: Vec<&str> =
                r.ns.holders
                    .iter()
                    .filter_map(|h| match h {
                        Holder::BindMount { path, .. } => Some(path.as_str()),
                        _ => None,
                    })
                    .collect();
            paths.join(",")
        },
    },
    Column {
        name: "PNS",
        help: "parent namespace inode (pid and user namespaces)",
        right_align: true,
        default: false,
        value: |r| opt(r.ns.parent.map(|k| k.inode)),
    },
    Column {
        name: "ONS",
        help: "owning user namespace inode",
        right_align: true,
        default: false,
        value: |r| opt(r.ns.owner.map(|k| k.inode)),
    },
    Column {
        name: "CONTAINER",
        help: "container runtime and id of that process",
        right_align: false,
        default: false,
        value: |r| {
            r.first
                .and_then(|t| t.container.as_ref())
                .map(|c| format!("{}:{}", c.runtime.name(), c.id))
                .unwrap_or_default()
        },
    },
    Column {
        name: "COMMAND",
        help: "command line of that process",
        right_align: false,
        default: true,
        value: |r| r.first.map(super::command).unwrap_or_default(),
    },
];

/// Describes holders in one cell, e.g. `bind mount /run/netns/c1; fd 4 of PID 812`.
pub fn holders(holders: &[Holder]) -> String {
    let parts: Vec<String> = holders.iter().map(Holder::to_string).collect();
    parts.join("; ")
}

impl std::fmt::Debug for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Returns the column with this name, ignoring case.
pub fn find(name: &str) -> Option<&'static Column> {
    COLUMNS.iter().find(|c| c.name.eq_ignore_ascii_case(name))
}

/// Parses one `-o` entry for clap, naming the valid columns on error.
pub fn parse(name: &str) -> Result<&'static Column, String> {
    if name.trim().is_empty() {
        return Err("empty column name; separate the names with single commas, as in -o NS,TYPE".into());
    }
    find(name.trim()).ok_or_else(|| {
        let names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        format!("unknown column; valid columns are {}", names.join(", "))
    })
}

/// Returns the default columns.
pub fn defaults() -> Vec<&'static Column> {
    COLUMNS.iter().filter(|c| c.default).collect()
}

/// Returns the column list for `--help`.
pub fn help_text() -> String {
    let mut text = String::from("Columns of the namespace table (-o):\n");
    for c in COLUMNS {
        text.push_str(&format!(
            "  {:<10} {}{}\n",
            c.name,
            c.help,
            if c.default { " (default)" } else { "" }
        ));
    }
    text
}
