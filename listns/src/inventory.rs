//! Merges what the sources found into one snapshot and classifies each
//! namespace as default, in use, pinned or hidden.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use anyhow::Context;

use crate::discover::defaults::Defaults;
use crate::discover::{self, Found};
use crate::model::{Holder, NsKey, NsState, NsType, Relation, Task};
use crate::problems::{Problems, Reason};

/// Directories where pinning a namespace by bind mount is ordinary: `ip netns`,
/// container runtimes and snapd keep their namespaces there. A namespace
/// pinned only elsewhere (or by an fd) is "hidden".
pub const USUAL_PIN_DIRS: &[(&str, &str)] = &[
    ("/run/netns/", "ip netns, CNI plugins, podman, CRI-O"),
    ("/var/run/netns/", "ip netns (through the /var/run link)"),
    ("/run/docker/netns/", "Docker"),
    ("/var/run/docker/netns/", "Docker"),
    ("/run/user/*/netns/", "rootless podman and other per-user runtimes"),
    ("/run/user/*/userns/", "rootless podman (pinned user namespaces)"),
    ("/run/containerd/", "containerd"),
    ("/var/run/containerd/", "containerd"),
    ("/run/ipcns/", "CRI-O pinns"),
    ("/var/run/ipcns/", "CRI-O pinns"),
    ("/run/utsns/", "CRI-O pinns"),
    ("/var/run/utsns/", "CRI-O pinns"),
    ("/run/userns/", "CRI-O pinns"),
    ("/var/run/userns/", "CRI-O pinns"),
    ("/run/snapd/ns/", "snapd mount namespaces"),
    ("/var/lib/lxc/", "LXC"),
];

/// Returns whether a bind-mount path is in one of [`USUAL_PIN_DIRS`]. A `*`
/// in an entry stands for one path component, such as a UID.
pub fn is_usual_pin_path(path: &str) -> bool {
    USUAL_PIN_DIRS.iter().any(|(dir, _)| match dir.split_once('*') {
        None => path.starts_with(dir),
        Some((prefix, suffix)) => path
            .strip_prefix(prefix)
            .and_then(|rest| rest.find('/').map(|slash| &rest[slash..]))
            .is_some_and(|rest| rest.starts_with(suffix)),
    })
}

/// One namespace of the snapshot.
#[derive(Debug, Clone)]
pub struct Namespace {
    pub key: NsKey,
    /// The 64-bit id from `NS_GET_ID`; `None` on kernels before 6.18 or where
    /// no fd of the namespace could be opened.
    pub id: Option<u64>,
    pub state: NsState,
    /// The owning user namespace.
    pub owner: Option<NsKey>,
    /// The parent, for pid and user namespaces.
    pub parent: Option<NsKey>,
    /// For user namespaces: the UID of the creator.
    pub owner_uid: Option<u32>,
    /// Indexes into [`Inventory::tasks`] of the member tasks, leaders first.
    pub tasks: Vec<usize>,
    /// Everything but membership that holds it, see [`Holder`].
    pub holders: Vec<Holder>,
    pub names: Vec<String>,
    pub netnsid: Option<i32>,
}

impl Namespace {
    /// Returns the distinct PIDs of the member tasks, in ascending order.
    pub fn pids(&self, tasks: &[Task]) -> Vec<i32> {
        let set: BTreeSet<i32> = self.tasks.iter().map(|&i| tasks[i].pid).collect();
        set.into_iter().collect()
    }
}

/// A complete snapshot of the host's namespaces.
#[derive(Debug)]
pub struct Inventory {
    pub taken_at: SystemTime,
    /// The route the snapshot took: "proc" or "iter" (BPF iterators).
    pub route: &'static str,
    pub defaults: Defaults,
    pub namespaces: BTreeMap<NsKey, Namespace>,
    pub tasks: Vec<Task>,
    pub problems: Problems,
    /// One line per source about its run, e.g. which kernel interfaces were missing.
    pub notes: Vec<String>,
    /// Whether the scan ran with CAP_SYS_ADMIN-level access (effective UID 0).
    pub privileged: bool,
}

impl Inventory {
    /// Returns the lowest PID among the members of `key`, the process lsns shows.
    pub fn first_task(&self, key: NsKey) -> Option<&Task> {
        let ns = self.namespaces.get(&key)?;
        ns.tasks.iter().map(|&i| &self.tasks[i]).min_by_key(|t| (t.pid, t.tid))
    }
}

/// Route by which a snapshot reads tasks and their fds. Mounts, names and relations
/// come from the same sources on both routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Route {
    /// The BPF iterators where they can run (root, kernel BTF, a listns built
    /// with its eBPF programs), else `/proc`.
    #[default]
    Auto,
    /// `/proc/PID/task/TID/ns/*` and `/proc/PID/fd/*`: works without root and BPF.
    Proc,
    /// The BPF iterators `iter/task` and `iter/task_file`; fails without them.
    Iter,
}

/// Takes a snapshot by the route that [`Route::Auto`] picks.
pub fn scan() -> anyhow::Result<Inventory> {
    scan_with(Route::Auto)
}

/// Takes a snapshot by `route`.
pub fn scan_with(route: Route) -> anyhow::Result<Inventory> {
    let taken_at = SystemTime::now();
    let defaults = Defaults::detect();
    let mut found = Found::default();

    if route == Route::Iter
        && let Some(why) = iterators_unavailable()
    {
        anyhow::bail!(
            "--route iter cannot load BPF iterators {why}; run listns as root on the host or use --route proc"
        );
    }
    let mut cmdlines = None;
    let route_name = match pick_route(route) {
        Ok(()) => match scan_iter_tasks(&mut found, &defaults, route) {
            Ok(walk) => {
                cmdlines = Some(walk);
                "iter"
            }
            Err(err) if route == Route::Iter => {
                return Err(err.context("the BPF iterator route failed; use --route proc"));
            }
            Err(err) => {
                log::warn!("the BPF iterator route failed, so the snapshot reads /proc: {err:#}");
                found = Found::default();
                found.note(format!(
                    "snapshot route: /proc, because the BPF iterators failed: {err:#}"
                ));
                scan_proc_tasks(&mut found, &defaults)?;
                "proc"
            }
        },
        Err(why) => {
            found.note(format!("snapshot route: /proc, {why}"));
            scan_proc_tasks(&mut found, &defaults)?;
            "proc"
        }
    };
    discover::mounts::scan(&mut found);
    discover::names::scan(&mut found);
    // The kernel list is compared by id, so the known ids come first; the
    // second pass resolves what the kernel list added.
    discover::relations::resolve(&mut found);
    discover::kernel_list::scan(&mut found);
    discover::relations::resolve(&mut found);
    discover::netnsid::scan(&mut found);
    if let Some(walk) = cmdlines {
        discover::iter::add_cmdlines(&mut found, walk);
    }

    for note in &found.notes {
        log::info!("{note}");
    }
    let mut inventory = assemble(found, defaults, taken_at);
    inventory.route = route_name;
    Ok(inventory)
}

/// Returns `Ok` when the snapshot should try the BPF iterators, or why it
/// reads `/proc` instead.
fn pick_route(route: Route) -> Result<(), String> {
    match route {
        Route::Proc => Err("as requested".into()),
        Route::Iter => Ok(()),
        Route::Auto => match iterators_unavailable() {
            Some(why) => Err(why),
            None => Ok(()),
        },
    }
}

/// Inode number of the initial user namespace, fixed on every kernel
/// (`PROC_USER_INIT_INO`).
const INITIAL_USER_NS_INODE: u64 = 0xEFFF_FFFD;

/// Returns why the BPF iterators cannot load here, or `None` when they may.
fn iterators_unavailable() -> Option<String> {
    if crate::trace::load::EBPF_OBJECT.is_empty() {
        return Some("because this listns was built without its eBPF programs".into());
    }
    if !crate::trace::load::may_load_bpf() {
        return Some("because BPF iterators need root (CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON)".into());
    }
    // Capabilities count for BPF only in the initial user namespace.
    let own_user_ns = rustix::fs::stat("/proc/self/ns/user").map(|st| st.st_ino);
    if own_user_ns.is_ok_and(|inode| inode != INITIAL_USER_NS_INODE) {
        return Some(
            "because listns runs in a user namespace other than the initial one, where BPF is not allowed".into(),
        );
    }
    let btf = crate::trace::offsets::VMLINUX_BTF;
    if !std::path::Path::new(btf).exists() {
        return Some(format!(
            "because {btf} is missing, which BPF iterators need (CONFIG_DEBUG_INFO_BTF)"
        ));
    }
    None
}

/// Reads tasks and fds through the BPF iterators. A process that `/proc`
/// listed before the iterators ran, that they did not visit and that still
/// exists is read through `/proc` and counted as a problem, because on some
/// hardened kernels the iterators skip PID 1.
fn scan_iter_tasks(
    found: &mut Found,
    defaults: &Defaults,
    route: Route,
) -> anyhow::Result<discover::iter::CmdlineWalk> {
    let listed = discover::tasks::list_pids().context("failed to read /proc; is procfs mounted?")?;
    let read = discover::iter::read()?;
    let why = if route == Route::Iter {
        "as requested"
    } else {
        "the default where they can run (--route proc reads /proc instead)"
    };
    found.note(format!("snapshot route: BPF iterators, {why}"));
    let (visited, cmdlines) = discover::iter::scan(found, defaults, read)?;
    let unvisited: BTreeSet<i32> = listed
        .into_iter()
        .filter(|pid| !visited.contains(pid) && std::path::Path::new(&format!("/proc/{pid}")).exists())
        .collect();
    if unvisited.is_empty() {
        return Ok(cmdlines);
    }
    for &pid in &unvisited {
        found.problems.record_reason("processes", pid, Reason::NotIterated);
    }
    let pids: Vec<i32> = unvisited.iter().copied().collect();
    discover::tasks::scan_pids(found, defaults, &pids).context("failed to read /proc; is procfs mounted?")?;
    let only = pids.into_iter().collect();
    if let Err(err) = discover::fds::scan_pids(found, Some(&only)) {
        found.note(format!(
            "fds of processes the iterators did not visit: not scanned: {err}"
        ));
    }
    Ok(cmdlines)
}

/// The `/proc` route's task and fd sources.
fn scan_proc_tasks(found: &mut Found, defaults: &Defaults) -> anyhow::Result<()> {
    discover::tasks::scan(found, defaults).context("failed to read /proc; is procfs mounted?")?;
    match discover::fds::scan(found) {
        Ok(stats) => found.note(format!(
            "fds: {} read in {} fd tables, {} probed",
            count(stats.fds, "fd"),
            stats.processes,
            count(stats.sockets_probed, "socket")
        )),
        Err(err) => found.note(format!("fds: not scanned: {err}")),
    }
    Ok(())
}

/// Builds the inventory from the sources' findings and classifies it.
fn assemble(found: Found, defaults: Defaults, taken_at: SystemTime) -> Inventory {
    let Found {
        namespaces: found_ns,
        tasks,
        problems,
        notes,
    } = found;
    let mut namespaces: BTreeMap<NsKey, Namespace> = found_ns
        .into_iter()
        .map(|(key, f)| {
            let mut holders = f.holders;
            if f.kernel_listed && holders.is_empty() {
                holders.push(Holder::KernelList);
            }
            let ns = Namespace {
                key,
                id: f.id,
                state: NsState::Pinned,
                owner: f.owner,
                parent: f.parent,
                owner_uid: f.owner_uid,
                tasks: Vec::new(),
                holders,
                names: f.names,
                netnsid: f.netnsid,
            };
            (key, ns)
        })
        .collect();

    // Leaders first, so the first task of a namespace is a process.
    let mut order: Vec<usize> = (0..tasks.len()).collect();
    order.sort_by_key(|&i| (tasks[i].pid, !tasks[i].is_leader(), tasks[i].tid));
    for i in order {
        for ty in NsType::ALL {
            if let Some(key) = tasks[i].links.get(ty) {
                namespaces.entry(key).or_insert_with(|| empty(key)).tasks.push(i);
            }
        }
    }

    // A namespace without members is kept alive by the namespaces it owns and
    // by its children. They are listed as holders, because they may be all
    // that keeps it alive.
    let relations: Vec<(NsKey, Relation, NsKey)> = namespaces
        .values()
        .flat_map(|ns| {
            // The owner of a user namespace is its parent, so one holder covers both.
            let owner = ns
                .owner
                .filter(|_| ns.key.ty != NsType::User)
                .map(|o| (o, Relation::Owner, ns.key));
            let parent = ns.parent.map(|p| (p, Relation::Parent, ns.key));
            owner.into_iter().chain(parent)
        })
        .collect();
    for (target, relation, child) in relations {
        if let Some(ns) = namespaces.get_mut(&target)
            && ns.tasks.is_empty()
        {
            ns.holders.push(Holder::Child { relation, child });
        }
    }

    for ns in namespaces.values_mut() {
        ns.holders.sort();
        ns.holders.dedup();
        ns.state = if defaults.contains(ns.key) {
            NsState::Default
        } else if !ns.tasks.is_empty() {
            NsState::InUse
        } else if ns.holders.is_empty() || ns.holders.iter().any(Holder::is_unusual) {
            NsState::Hidden
        } else {
            NsState::Pinned
        };
    }

    Inventory {
        taken_at,
        route: "proc",
        defaults,
        namespaces,
        tasks,
        problems,
        notes,
        privileged: rustix::process::geteuid().is_root(),
    }
}

/// Formats a count with its noun, e.g. `1 socket` or `3 sockets`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn empty(key: NsKey) -> Namespace {
    Namespace {
        key,
        id: None,
        state: NsState::Pinned,
        owner: None,
        parent: None,
        owner_uid: None,
        tasks: Vec::new(),
        holders: Vec::new(),
        names: Vec::new(),
        netnsid: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usual_pin_paths() {
        assert!(is_usual_pin_path("/run/netns/c1"));
        assert!(is_usual_pin_path("/run/docker/netns/1a2b3c"));
        assert!(!is_usual_pin_path("/tmp/c2"));
        assert!(!is_usual_pin_path("/run/netnsx"));
        assert!(is_usual_pin_path("/run/user/1000/netns/netns-1a2b"));
        assert!(!is_usual_pin_path("/run/user/0/evil"));
        assert!(!is_usual_pin_path("/run/user/1000/x/netns/evil"));
    }
}
