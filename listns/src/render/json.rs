//! `--json`: the inventory as one JSON document. The schema is documented in
//! `docs/json-schema.md`; bump [`SCHEMA_VERSION`] on any incompatible change.

use std::io::{self, Write};
use std::time::SystemTime;

use std::cell::RefCell;

use serde::Serialize;
use serde_json::{Value, json};

use crate::inventory::{Inventory, Namespace};
use crate::model::{Holder, NsKey, NsType, Task};

/// Version of the JSON schema shared by the snapshot and the event stream.
pub const SCHEMA_VERSION: u32 = 1;

/// Formats a time as RFC 3339 in UTC with nanoseconds.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_nanos(time).to_string()
}

/// Writes the inventory, limited to `namespaces` and the tasks in them
/// (`all_tasks` adds tasks whose namespaces could not be read), indented
/// for people or on one line (`pretty` false) for JSON Lines.
pub fn write(
    out: &mut (impl Write + ?Sized),
    inventory: &Inventory,
    namespaces: &[&Namespace],
    all_tasks: bool,
    pretty: bool,
) -> io::Result<()> {
    let shown: std::collections::HashSet<NsKey> = namespaces.iter().map(|ns| ns.key).collect();
    let defaults: serde_json::Map<String, Value> = NsType::ALL
        .into_iter()
        .map(|ty| {
            let i = ty.index();
            let key = inventory.defaults.key(ty);
            let id = inventory.namespaces.get(&key).and_then(|ns| ns.id);
            let value = json!({"inode": key.inode, "id": id, "source": inventory.defaults.sources[i].name()});
            (ty.name().to_string(), value)
        })
        .collect();
    let problems: Vec<Value> = inventory
        .problems
        .rows
        .iter()
        .map(|(kind, row)| {
            json!({"what": kind.what, "reason": kind.reason.name(), "count": row.count, "nprocs": row.pids.len(), "pids": row.first_pids(), "error": row.example})
        })
        .collect();
    let tasks = inventory.tasks.iter().filter(|t| {
        let member = NsType::ALL
            .into_iter()
            .any(|ty| t.links.get(ty).is_some_and(|k| shown.contains(&k)));
        member || (all_tasks && t.links.member.iter().all(|&i| i == 0))
    });
    // Namespaces and tasks are serialized one at a time as the writer goes,
    // so a host with 10,000 tasks never holds the whole document in memory.
    let doc = Snapshot {
        schema: "listns.snapshot",
        schema_version: SCHEMA_VERSION,
        time: rfc3339(inventory.taken_at),
        route: inventory.route,
        privileged: inventory.privileged,
        kernel: rustix::system::uname().release().to_string_lossy().into_owned(),
        defaults,
        namespaces: Lazy::new(namespaces.iter().map(|ns| namespace(inventory, ns))),
        tasks: Lazy::new(tasks.map(task)),
        problems,
        notes: &inventory.notes,
    };
    if pretty {
        serde_json::to_writer_pretty(&mut *out, &doc)?;
    } else {
        serde_json::to_writer(&mut *out, &doc)?;
    }
    writeln!(out)
}

/// The top level of the snapshot document, in output order.
#[derive(Serialize)]
#[serde(bound(serialize = "N: Iterator<Item = Value>, T: Iterator<Item = Value>"))]
struct Snapshot<'a, N, T> {
    schema: &'static str,
    schema_version: u32,
    time: String,
    route: &'static str,
    privileged: bool,
    kernel: String,
    defaults: serde_json::Map<String, Value>,
    namespaces: Lazy<N>,
    tasks: Lazy<T>,
    problems: Vec<Value>,
    notes: &'a [String],
}

/// A JSON array whose elements are made only while it is being written.
struct Lazy<I>(RefCell<Option<I>>);

impl<I> Lazy<I> {
    fn new(items: I) -> Self {
        Lazy(RefCell::new(Some(items)))
    }
}

impl<I: Iterator<Item = Value>> Serialize for Lazy<I> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let items = self.0.borrow_mut().take();
        serializer.collect_seq(items.into_iter().flatten())
    }
}

/// Returns a reference to another namespace: type, inode and id.
pub fn ns_ref(inventory: &Inventory, key: NsKey) -> Value {
    let id = inventory.namespaces.get(&key).and_then(|ns| ns.id);
    json!({"type": key.ty.name(), "inode": key.inode, "id": id})
}

fn namespace(inventory: &Inventory, ns: &Namespace) -> Value {
    let first = inventory.first_task(ns.key);
    json!({
        "type": ns.key.ty.name(),
        "inode": ns.key.inode,
        "id": ns.id,
        "state": ns.state.name(),
        "owner": ns.owner.map(|k| ns_ref(inventory, k)),
        "parent": ns.parent.map(|k| ns_ref(inventory, k)),
        "owner_uid": ns.owner_uid,
        "nprocs": ns.pids(&inventory.tasks).len(),
        "ntasks": ns.tasks.len(),
        "pids": ns.pids(&inventory.tasks),
        "first_pid": first.map(|t| t.pid),
        "names": ns.names,
        "netnsid": ns.netnsid,
        "holders": ns.holders.iter().map(|h| holder(inventory, h)).collect::<Vec<_>>(),
    })
}

fn holder(inventory: &Inventory, holder: &Holder) -> Value {
    let mut value = match holder {
        Holder::Task { pid, tid, .. } => json!({"pid": pid, "tid": tid}),
        Holder::BindMount { path, mnt_ns, usual } => {
            json!({"path": path, "mnt_ns": mnt_ns.map(|k| ns_ref(inventory, k)), "usual": usual})
        }
        Holder::Fd { pid, tid, fd } | Holder::Tun { pid, tid, fd } => json!({"pid": pid, "tid": tid, "fd": fd}),
        Holder::Socket {
            pid,
            tid,
            fd,
            socket_inode,
        } => {
            json!({"pid": pid, "tid": tid, "fd": fd, "socket_inode": socket_inode})
        }
        Holder::Child { child, .. } => json!({"namespace": ns_ref(inventory, *child)}),
        Holder::KernelList => json!({}),
    };
    value["kind"] = json!(holder.kind());
    value["text"] = json!(holder.to_string());
    value
}

/// Returns one task, as the snapshot and the event stream show it.
pub fn task(task: &Task) -> Value {
    let mut namespaces = serde_json::Map::new();
    for ty in NsType::ALL {
        if let Some(key) = task.links.get(ty) {
            namespaces.insert(ty.name().into(), json!(key.inode));
        }
    }
    if task.links.pid_for_children != 0 {
        namespaces.insert("pid_for_children".into(), json!(task.links.pid_for_children));
    }
    if task.links.time_for_children != 0 {
        namespaces.insert("time_for_children".into(), json!(task.links.time_for_children));
    }
    json!({
        "pid": task.pid,
        "tid": task.tid,
        "ppid": task.ppid,
        "uid": task.uid,
        "user": task.uid.and_then(super::user_name),
        "comm": task.comm,
        "cmdline": task.cmdline,
        "kthread": task.kthread,
        "zombie": task.zombie,
        "container": task.container.as_ref().map(|c| json!({"runtime": c.runtime.name(), "id": c.id, "pod_uid": c.pod_uid})),
        "namespaces": namespaces,
    })
}
