//! The live state of `--follow`: tasks and namespaces, seeded from a snapshot
//! and changed by kernel events, rescans or polls. Every change becomes
//! lifecycle events.

use std::collections::{HashMap, HashSet};
use std::os::fd::AsFd;
use std::time::{Duration, Instant, SystemTime};

use super::event::{Cause, Event, EventKind, NsRef, Origin, TaskInfo};
use crate::discover::defaults::Defaults;
use crate::discover::{self, Found};
use crate::inventory::Inventory;
use crate::model::{Holder, LINK_COUNT, NsKey, NsState, NsType, Task, TaskLinks};

/// Delays after which a namespace that lost its last task is checked again:
/// a namespace still alive after the last one is reported `pinned`. The
/// kernel frees some namespaces only after an RCU grace period (a user
/// namespace held by a dying task's credentials took 16 ms here).
const CHECK_DELAYS: [Duration; 3] = [
    Duration::from_millis(20),
    Duration::from_millis(100),
    Duration::from_millis(400),
];

/// Interval between liveness checks of pinned namespaces, which catch the
/// release of a pin that no event reports (an fd closed, a socket freed).
pub const PINNED_RECHECK: Duration = Duration::from_secs(1);

/// How long a namespace that a liveness check found gone waits for its free
/// event while the `ns_free` hook is attached, before the check reports it.
/// The kernel unhashes some namespaces well before it frees their inode
/// numbers: a network namespace, for example, is torn down in a kernel
/// worker after its last reference is gone.
const FREE_GRACE: Duration = Duration::from_secs(1);

/// Facts a kernel event reports about one task after the change.
#[derive(Debug, Clone, Default)]
pub struct TaskFacts {
    pub pid: i32,
    pub tid: i32,
    pub ppid: i32,
    pub uid: u32,
    pub comm: String,
    pub links: TaskLinks,
    /// 64-bit ids of the namespaces in `links`, in link-slot order (see
    /// [`slot_key`]); 0 where the kernel has none.
    pub ids: [u64; LINK_COUNT],
}

/// A change reported by the kernel.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new task whose namespaces differ from its creator's (`creator`);
    /// `flags` are the `CLONE_NEW*` flags that explain the difference.
    Fork {
        parent_tid: i32,
        creator: TaskLinks,
        child: TaskFacts,
        flags: u64,
    },
    Unshare {
        task: TaskFacts,
        flags: u64,
    },
    Setns {
        task: TaskFacts,
        nstype: u64,
    },
    /// An exec; a thread other than the leader that execs takes over the
    /// leader's id, so `old_tid` is the id it had before.
    Exec {
        task: TaskFacts,
        old_tid: i32,
    },
    Exit {
        task: TaskFacts,
    },
    /// A successful mount-table change, which may add or remove nsfs bind mounts.
    Mount {
        task: TaskFacts,
        syscall: &'static str,
    },
    /// The kernel freed an inode number of its proc inode allocator: that of
    /// a namespace, or of a removed `/proc` entry.
    FreeInum {
        inode: u64,
    },
}

#[derive(Debug, Clone)]
pub struct KernelEvent {
    pub time: SystemTime,
    /// CLOCK_BOOTTIME stamp of the event in nanoseconds, which orders it
    /// against the snapshot the state was seeded from.
    pub boot_ns: u64,
    pub change: Change,
}

/// How a system call with `CLONE_NEW*` flags creates namespaces, which
/// decides the link slot each new namespace appears in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Creation {
    /// unshare: a new pid or time namespace appears in `pid_for_children` or
    /// `time_for_children`, every other type in the task's own link.
    Unshare,
    /// clone, seen in the child: a new pid namespace is the child's own, a
    /// new time namespace its `time_for_children` (which it also enters
    /// unless it shares memory with its creator).
    Clone,
}

/// Returns the namespaces that a successful call with `flags` created,
/// read from the links the task has after it. Such a namespace is new even
/// where the state has its inode number: the kernel reuses the numbers of
/// freed namespaces at once, and kernels before 6.18 have no ids that tell
/// the two apart.
fn created_keys(links: &TaskLinks, flags: u64, creation: Creation) -> Vec<NsKey> {
    let mut keys = Vec::new();
    for ty in NsType::ALL {
        if flags & u64::from(ty.clone_flag()) == 0 {
            continue;
        }
        let slot = match (ty, creation) {
            (NsType::Pid, Creation::Unshare) => 8,
            (NsType::Time, _) => 9,
            _ => ty.index(),
        };
        if let Some(key) = slot_key(links, slot)
            && !keys.contains(&key)
        {
            keys.push(key);
        }
    }
    keys
}

/// Returns the namespace in link slot `slot` of `links`: slots 0 to 7 are
/// the member links by [`NsType::index`], 8 is `pid_for_children`, 9 is
/// `time_for_children`.
pub fn slot_key(links: &TaskLinks, slot: usize) -> Option<NsKey> {
    let (ty, inode) = match slot {
        0..=7 => (NsType::ALL[slot], links.member[slot]),
        8 => (NsType::Pid, links.pid_for_children),
        _ => (NsType::Time, links.time_for_children),
    };
    (inode != 0).then_some(NsKey { ty, inode })
}

/// A namespace in the live state.
#[derive(Debug, Clone)]
struct LiveNs {
    id: Option<u64>,
    /// Tasks that refer to it through any link, `*_for_children` included.
    tasks: HashSet<i32>,
    /// Bind mounts and other holders, as of the last scan or mount refresh.
    holders: Vec<Holder>,
    state: NsState,
}

/// A namespace whose last task left: checked again after [`CHECK_DELAYS`].
#[derive(Debug, Clone)]
struct PendingCheck {
    key: NsKey,
    due: Instant,
    attempt: usize,
    /// The task whose departure triggered the check.
    task: Option<TaskInfo>,
    syscall: Option<&'static str>,
    /// Origin of the events the check reports: `Kernel` after a kernel
    /// event, `Check` for the periodic check of pinned namespaces.
    origin: Origin,
    /// The namespace was found gone once, and the check waits [`FREE_GRACE`]
    /// for its free event.
    awaiting_free: bool,
}

/// Counts of free events that matched no namespace without tasks, for the
/// debug log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct FreeCounts {
    /// Numbers that match no namespace in the state: `/proc` entries, and
    /// namespaces the state never saw.
    unmatched: u64,
    /// Frees from before the state was seeded, which are ignored.
    before_seed: u64,
    /// Numbers of namespaces that still have tasks in the state.
    with_tasks: u64,
}

/// Tasks and namespaces as `--follow` currently believes them to be.
pub struct LiveState {
    tasks: HashMap<i32, Task>,
    namespaces: HashMap<NsKey, LiveNs>,
    defaults: Defaults,
    checks: Vec<PendingCheck>,
    mounts_dirty: bool,
    /// The mount system calls seen since the last mount refresh, which name
    /// the `syscall` of the `named` and `unnamed` events it reports.
    mount_calls: Vec<&'static str>,
    /// CLOCK_BOOTTIME in nanoseconds when the state was seeded from a
    /// snapshot. A free from before then may have given its inode number to
    /// a namespace that the snapshot saw, so it is ignored.
    seeded_boot_ns: u64,
    /// Whether the `ns_free` hook reports namespaces being freed.
    free_hook: bool,
    free_counts: FreeCounts,
    free_counts_logged: FreeCounts,
}

impl LiveState {
    /// Seeds the state from a snapshot.
    pub fn from_inventory(inventory: &Inventory) -> LiveState {
        let mut state = LiveState {
            tasks: HashMap::new(),
            namespaces: HashMap::new(),
            defaults: inventory.defaults.clone(),
            checks: Vec::new(),
            mounts_dirty: false,
            mount_calls: Vec::new(),
            seeded_boot_ns: boot_time_ns(),
            free_hook: false,
            free_counts: FreeCounts::default(),
            free_counts_logged: FreeCounts::default(),
        };
        for ns in inventory.namespaces.values() {
            let holders = ns
                .holders
                .iter()
                .filter(|h| !matches!(h, Holder::Child { .. }))
                .cloned()
                .collect();
            state.namespaces.insert(
                ns.key,
                LiveNs {
                    id: ns.id,
                    tasks: HashSet::new(),
                    holders,
                    state: ns.state,
                },
            );
        }
        for task in &inventory.tasks {
            state.tasks.insert(task.tid, task.clone());
            for slot in 0..LINK_COUNT {
                if let Some(key) = slot_key(&task.links, slot) {
                    state
                        .namespaces
                        .entry(key)
                        .or_insert_with(|| LiveNs::new(None))
                        .tasks
                        .insert(task.tid);
                }
            }
        }
        state
    }

    /// Tells the state whether the `ns_free` hook is attached. With it, a
    /// namespace that a liveness check finds gone waits briefly for its free
    /// event, and on kernels that cannot check liveness (before Linux 6.18)
    /// a namespace counts as alive until its free event arrives.
    pub fn set_free_hook(&mut self, attached: bool) {
        self.free_hook = attached;
    }

    /// Returns the number of namespaces in the state.
    pub fn namespace_count(&self) -> usize {
        self.namespaces.len()
    }

    /// Returns the id the state has for a namespace.
    pub fn id_of(&self, key: NsKey) -> Option<u64> {
        self.namespaces.get(&key).and_then(|ns| ns.id)
    }

    /// Applies one kernel event, appending the lifecycle events it causes.
    pub fn apply(&mut self, event: KernelEvent, out: &mut Vec<Event>) {
        let time = event.time;
        let start = out.len();
        // The snapshot may already contain what an earlier event created, so
        // only later events count as proof of a new namespace.
        let after_seed = event.boot_ns > self.seeded_boot_ns;
        match event.change {
            Change::Fork {
                parent_tid,
                creator,
                child,
                flags,
            } => {
                // The kernel reports the creator's namespaces; a poll has none.
                let before = if creator == TaskLinks::default() {
                    self.tasks.get(&parent_tid).map(|p| p.links).unwrap_or(child.links)
                } else {
                    creator
                };
                let task = self.task_from_facts(&child, Some(parent_tid));
                let created = if after_seed {
                    created_keys(&child.links, flags, Creation::Clone)
                } else {
                    Vec::new()
                };
                let call = Call {
                    syscall: "clone",
                    flags,
                    created,
                };
                self.move_task(task, &child, Some(before), call, false, out);
            }
            Change::Unshare { task: facts, flags } => {
                let task = self.task_from_facts(&facts, None);
                let before = self.links_before(&facts);
                let created = if after_seed {
                    created_keys(&facts.links, flags, Creation::Unshare)
                } else {
                    Vec::new()
                };
                let call = Call {
                    syscall: "unshare",
                    flags,
                    created,
                };
                self.move_task(task, &facts, before, call, true, out);
            }
            Change::Setns { task: facts, nstype } => {
                let task = self.task_from_facts(&facts, None);
                let before = self.links_before(&facts);
                self.move_task(task, &facts, before, Call::moving("setns", nstype), true, out);
            }
            Change::Exec { task: facts, old_tid } => {
                if old_tid != facts.tid
                    && let Some(old) = self.tasks.remove(&old_tid)
                {
                    // The exec'ing thread replaces the leader: it keeps the
                    // namespaces, under the leader's id.
                    for slot in 0..LINK_COUNT {
                        if let Some(ns) = slot_key(&old.links, slot).and_then(|k| self.namespaces.get_mut(&k)) {
                            ns.tasks.remove(&old_tid);
                        }
                    }
                }
                let mut task = self.task_from_facts(&facts, None);
                // A new program: its command line is read again.
                task.cmdline = read_cmdline(facts.pid);
                let before = self.tasks.get(&facts.tid).map(|t| t.links);
                self.move_task(task, &facts, before, Call::moving("execve", 0), true, out);
            }
            Change::Exit { task: facts } => {
                let info = self.task_info(facts.tid).unwrap_or_else(|| info_from_facts(&facts));
                if let Some(task) = self.tasks.remove(&facts.tid) {
                    for slot in 0..LINK_COUNT {
                        if let Some(key) = slot_key(&task.links, slot) {
                            self.release(key, facts.tid, &info, "exit");
                        }
                    }
                }
            }
            Change::Mount { syscall, .. } => {
                self.mounts_dirty = true;
                if !self.mount_calls.contains(&syscall) {
                    self.mount_calls.push(syscall);
                }
            }
            Change::FreeInum { inode } => self.free_inum(inode, event.boot_ns, out),
        }
        for e in &mut out[start..] {
            e.time = time;
        }
    }

    /// Returns the links a task had before a change. A task the state has
    /// not seen (a thread, or a child forked without a namespace change) had
    /// its leader's links, or else its parent's.
    fn links_before(&self, facts: &TaskFacts) -> Option<TaskLinks> {
        [facts.tid, facts.pid, facts.ppid]
            .iter()
            .find_map(|id| self.tasks.get(id))
            .map(|t| t.links)
    }

    /// Builds the task a kernel event describes, keeping what the state
    /// has about it (command line, container) where the kernel has less.
    fn task_from_facts(&self, facts: &TaskFacts, parent_tid: Option<i32>) -> Task {
        let known = self
            .tasks
            .get(&facts.tid)
            .or_else(|| parent_tid.and_then(|p| self.tasks.get(&p)));
        let cmdline = match known {
            Some(k) if k.pid == facts.pid => k.cmdline.clone(),
            _ if facts.pid == facts.tid => read_cmdline(facts.pid),
            _ => Vec::new(),
        };
        Task {
            pid: facts.pid,
            tid: facts.tid,
            ppid: facts.ppid,
            uid: Some(facts.uid),
            comm: Some(facts.comm.clone()),
            cmdline,
            kthread: false,
            zombie: false,
            links: facts.links,
            container: known.and_then(|k| k.container.clone()),
            cgroup_id: known.and_then(|k| k.cgroup_id),
        }
    }

    /// Moves a task to the namespaces in `facts`. Namespaces that the call
    /// created, or that the task is the first to reach, are `created`,
    /// existing ones `entered`. Namespaces it left are `left` and, if it was
    /// their last task, checked for liveness.
    fn move_task(
        &mut self,
        task: Task,
        facts: &TaskFacts,
        before: Option<TaskLinks>,
        call: Call,
        leaves: bool,
        out: &mut Vec<Event>,
    ) {
        let Call {
            syscall,
            flags,
            created: mut new_keys,
        } = call;
        let tid = task.tid;
        let info = task_info(&task);
        let old = self.tasks.insert(tid, task).map(|t| t.links);
        let before = before.unwrap_or_else(|| old.unwrap_or(facts.links));
        for slot in 0..LINK_COUNT {
            let from = slot_key(&before, slot);
            let to = slot_key(&facts.links, slot);
            let id = (facts.ids[slot] != 0).then_some(facts.ids[slot]);
            // Taken before a renewal replaces the entry of a reused number.
            let from_ref = from.map(|k| self.ns_ref(k));
            // A namespace that the call created is new once, in the first
            // slot that shows it (a clone's new time namespace is also the
            // child's own).
            let mut renewed = false;
            if let Some(key) = to {
                let created = match new_keys.iter().position(|k| *k == key) {
                    Some(index) => {
                        new_keys.swap_remove(index);
                        renewed = true;
                        self.renew(key, id, out)
                    }
                    None => self.ensure(key, id, out),
                };
                let entry = self.namespaces.get_mut(&key).expect("ensured above");
                entry.tasks.insert(tid);
                entry.state = NsState::InUse;
                if from != to || renewed {
                    let kind = if created {
                        EventKind::Created
                    } else {
                        EventKind::Entered
                    };
                    // Entering through a `*_for_children` link is not a move;
                    // only a new namespace there is worth an event.
                    if created || slot < 8 {
                        let mut event = Event::new(kind, Origin::Kernel, Some(self.ns_ref(key)));
                        event.task = Some(info.clone());
                        event.syscall = Some(syscall);
                        event.flags = Some(flags);
                        event.from = from_ref;
                        event.to = Some(self.ns_ref(key));
                        out.push(event);
                    }
                }
            }
            if let Some(key) = from
                && from != to
                && leaves
                && !self.still_refers(tid, key)
            {
                if slot < 8 && !self.defaults.contains(key) {
                    let mut event = Event::new(EventKind::Left, Origin::Kernel, Some(self.ns_ref(key)));
                    event.task = Some(info.clone());
                    event.syscall = Some(syscall);
                    event.flags = Some(flags);
                    event.from = Some(self.ns_ref(key));
                    event.to = to.map(|k| self.ns_ref(k));
                    out.push(event);
                }
                self.release(key, tid, &info, syscall);
            }
        }
    }

    /// Returns whether the task still refers to `key` through any link.
    fn still_refers(&self, tid: i32, key: NsKey) -> bool {
        self.tasks
            .get(&tid)
            .is_some_and(|t| (0..LINK_COUNT).any(|slot| slot_key(&t.links, slot) == Some(key)))
    }

    /// Adds `key`, a namespace that a system call has just created, and
    /// returns whether it is new. A namespace of the same inode number in the
    /// state is an earlier one whose number the kernel freed and reused: it
    /// is reported destroyed (cause `recycled`), unless equal ids show that
    /// it is this one.
    fn renew(&mut self, key: NsKey, id: Option<u64>, out: &mut Vec<Event>) -> bool {
        let Some(ns) = self.namespaces.get(&key) else {
            self.namespaces.insert(key, LiveNs::new(id));
            return true;
        };
        let same_id = matches!((ns.id, id), (Some(old), Some(new)) if old == new);
        // The initial namespaces are never freed, so their numbers never return.
        if same_id || self.defaults.contains(key) {
            return self.ensure(key, id, out);
        }
        let mut gone = Event::new(EventKind::Destroyed, Origin::Kernel, Some(NsRef { key, id: ns.id }));
        gone.cause = Some(Cause::Recycled);
        out.push(gone);
        self.checks.retain(|c| c.key != key);
        self.namespaces.insert(key, LiveNs::new(id));
        true
    }

    /// Adds `key` to the state if it is missing, and returns whether it is new. An
    /// inode seen with another id was recycled: the old namespace is gone.
    fn ensure(&mut self, key: NsKey, id: Option<u64>, out: &mut Vec<Event>) -> bool {
        match self.namespaces.get_mut(&key) {
            Some(ns) => match (ns.id, id) {
                (Some(old), Some(new)) if old != new => {
                    let mut gone = Event::new(EventKind::Destroyed, Origin::Kernel, Some(NsRef { key, id: Some(old) }));
                    gone.cause = Some(Cause::Recycled);
                    out.push(gone);
                    self.checks.retain(|c| c.key != key);
                    self.namespaces.insert(key, LiveNs::new(id));
                    true
                }
                (None, Some(new)) => {
                    ns.id = Some(new);
                    false
                }
                _ => false,
            },
            None => {
                self.namespaces.insert(key, LiveNs::new(id));
                true
            }
        }
    }

    /// Removes a task's reference to a namespace; a namespace left without
    /// tasks is checked for liveness shortly.
    fn release(&mut self, key: NsKey, tid: i32, info: &TaskInfo, syscall: &'static str) {
        let Some(ns) = self.namespaces.get_mut(&key) else {
            return;
        };
        ns.tasks.remove(&tid);
        if ns.tasks.is_empty() && !self.defaults.contains(key) {
            self.schedule_check(key, Some(info.clone()), syscall);
        }
    }

    /// Schedules a liveness check of `key`, attributed to the latest task and
    /// system call that may have released it.
    fn schedule_check(&mut self, key: NsKey, task: Option<TaskInfo>, syscall: impl Into<Option<&'static str>>) {
        let due = Instant::now() + CHECK_DELAYS[0];
        let check = PendingCheck {
            key,
            due,
            attempt: 0,
            task,
            syscall: syscall.into(),
            origin: Origin::Kernel,
            awaiting_free: false,
        };
        match self.checks.iter_mut().find(|c| c.key == key) {
            Some(pending) => *pending = check,
            None => self.checks.push(check),
        }
    }

    fn ns_ref(&self, key: NsKey) -> NsRef {
        NsRef {
            key,
            id: self.id_of(key),
        }
    }

    fn task_info(&self, tid: i32) -> Option<TaskInfo> {
        self.tasks.get(&tid).map(task_info)
    }

    /// Returns when the next liveness check is due.
    pub fn next_check(&self) -> Option<Instant> {
        self.checks.iter().map(|c| c.due).min()
    }

    /// Returns whether a mount-table change calls for [`Self::refresh_mounts`].
    pub fn mounts_dirty(&self) -> bool {
        self.mounts_dirty
    }

    /// Runs the liveness checks that are due: a namespace that is gone is
    /// `destroyed`; one still alive after the last delay is `pinned`.
    pub fn run_checks(&mut self, now: Instant, out: &mut Vec<Event>) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.checks).into_iter().partition(|c| c.due <= now);
        self.checks = later;
        for mut check in due {
            let Some(ns) = self.namespaces.get(&check.key) else {
                continue;
            };
            if !ns.tasks.is_empty() {
                continue;
            }
            let (id, no_holders) = (ns.id, ns.holders.is_empty());
            let alive = match alive(check.key, id) {
                // Where liveness cannot be tested, the free event is the one
                // sign of a free: until it arrives, the namespace is alive.
                None if self.free_hook => Some(true),
                alive => alive,
            };
            match alive {
                Some(false) if self.free_hook && !check.awaiting_free => {
                    check.awaiting_free = true;
                    check.due = now + FREE_GRACE;
                    self.checks.push(check);
                }
                Some(false) => {
                    let (origin, task) = (check.origin, check.task.take());
                    self.destroy(check.key, task, check.syscall, origin, Cause::Check, out);
                }
                Some(true) if check.attempt + 1 < CHECK_DELAYS.len() => {
                    check.attempt += 1;
                    check.due = now + CHECK_DELAYS[check.attempt];
                    self.checks.push(check);
                }
                // The kernel reports forks only where namespaces change, so a
                // child that inherited this namespace may still be in it.
                _ if self.adopt_members(check.key) => {}
                Some(true) => self.pin(check.key, check.task.take(), check.syscall, out),
                // NOTE: without nsfs file handles (before Linux 6.18) and
                // without the ns_free hook, liveness cannot be tested. A
                // namespace is then taken as pinned only while a known bind
                // mount holds it, so one held by an fd is reported destroyed.
                None if no_holders => {
                    let (origin, task) = (check.origin, check.task.take());
                    self.destroy(check.key, task, check.syscall, origin, Cause::Check, out);
                }
                None => self.pin(check.key, check.task.take(), check.syscall, out),
            }
        }
    }

    /// Looks for tasks in `key` that the state does not know (children
    /// that inherited it) and adds them; returns whether any was found.
    fn adopt_members(&mut self, key: NsKey) -> bool {
        let members = find_members(key);
        let found = !members.is_empty();
        for task in members {
            let tid = task.tid;
            for slot in 0..LINK_COUNT {
                if let Some(k) = slot_key(&task.links, slot)
                    && let Some(ns) = self.namespaces.get_mut(&k)
                {
                    ns.tasks.insert(tid);
                }
            }
            self.tasks.entry(tid).or_insert(task);
        }
        found
    }

    fn pin(&mut self, key: NsKey, task: Option<TaskInfo>, syscall: Option<&'static str>, out: &mut Vec<Event>) {
        let Some(ns) = self.namespaces.get_mut(&key) else {
            return;
        };
        let hidden = ns.holders.is_empty() || ns.holders.iter().any(Holder::is_unusual);
        ns.state = if hidden { NsState::Hidden } else { NsState::Pinned };
        let mut event = Event::new(EventKind::Pinned, Origin::Check, Some(NsRef { key, id: ns.id }));
        event.holders = ns.holders.clone();
        event.task = task;
        event.syscall = syscall;
        out.push(event);
    }

    fn destroy(
        &mut self,
        key: NsKey,
        task: Option<TaskInfo>,
        syscall: Option<&'static str>,
        origin: Origin,
        cause: Cause,
        out: &mut Vec<Event>,
    ) {
        let Some(ns) = self.namespaces.remove(&key) else { return };
        let ns_ref = NsRef { key, id: ns.id };
        // A namespace that is gone has no bind mounts left. The `ns_free`
        // hook can report the free before the mount refresh that follows an
        // umount, so the mounts still in the state end here.
        let mounts = bind_mounts(&ns.holders);
        if !mounts.is_empty() {
            let mut unnamed = Event::new(EventKind::Unnamed, origin, Some(ns_ref));
            unnamed.holders = mounts;
            out.push(unnamed);
        }
        let mut event = Event::new(EventKind::Destroyed, origin, Some(ns_ref));
        event.task = task;
        event.syscall = syscall;
        event.cause = Some(cause);
        out.push(event);
        // Bind mounts inside a mount namespace end with it, which no umount
        // reports, so the next mount refresh reports them `unnamed`.
        if key.ty == NsType::Mnt && self.has_mounts_in(key) {
            self.mounts_dirty = true;
        }
    }

    /// Returns whether any namespace in the state has a bind mount inside
    /// mount namespace `mnt_ns`.
    fn has_mounts_in(&self, mnt_ns: NsKey) -> bool {
        self.namespaces
            .values()
            .flat_map(|ns| &ns.holders)
            .any(|h| matches!(h, Holder::BindMount { mnt_ns: Some(inside), .. } if *inside == mnt_ns))
    }

    /// Checks every pinned namespace; those whose pin went away without an
    /// event (an fd closed) are `destroyed`. While the `ns_free` hook is
    /// attached, a namespace found gone first waits [`FREE_GRACE`] for its
    /// free event.
    pub fn recheck_pinned(&mut self, out: &mut Vec<Event>) {
        let pinned: Vec<(NsKey, Option<u64>)> = self
            .namespaces
            .iter()
            .filter(|(k, ns)| ns.tasks.is_empty() && !self.defaults.contains(**k))
            .filter(|(k, _)| !self.checks.iter().any(|c| c.key == **k))
            .map(|(k, ns)| (*k, ns.id))
            .collect();
        for (key, id) in pinned {
            if alive(key, id) != Some(false) {
                continue;
            }
            if self.free_hook {
                self.checks.push(PendingCheck {
                    key,
                    due: Instant::now() + FREE_GRACE,
                    attempt: 0,
                    task: None,
                    syscall: None,
                    origin: Origin::Check,
                    awaiting_free: true,
                });
            } else {
                self.destroy(key, None, None, Origin::Check, Cause::Check, out);
            }
        }
    }

    /// Applies a free of inode number `inode`: every namespace of that number
    /// without tasks is `destroyed` at once. While allocated, an inode number
    /// belongs to one namespace or `/proc` entry, so the match is exact. A
    /// pending liveness check of the namespace ends here, and its task and
    /// system call describe the event.
    fn free_inum(&mut self, inode: u64, boot_ns: u64, out: &mut Vec<Event>) {
        if boot_ns <= self.seeded_boot_ns {
            // The number may since belong to a namespace the snapshot saw.
            // A namespace freed while the snapshot was taken is left to the
            // liveness checks.
            self.free_counts.before_seed += 1;
            return;
        }
        let mut matched = false;
        for ty in NsType::ALL {
            let key = NsKey { ty, inode };
            let Some(ns) = self.namespaces.get(&key) else {
                continue;
            };
            matched = true;
            if self.defaults.contains(key) {
                continue;
            }
            if !ns.tasks.is_empty() {
                // The state missed the departure of these tasks, and a rescan
                // or their exit events will set it right.
                self.free_counts.with_tasks += 1;
                log::debug!(
                    "inode number {inode} was freed, but {key} still has {} tasks in the state; ignoring the free",
                    ns.tasks.len()
                );
                continue;
            }
            let (mut task, mut syscall) = (None, None);
            if let Some(index) = self.checks.iter().position(|c| c.key == key) {
                let check = self.checks.swap_remove(index);
                (task, syscall) = (check.task, check.syscall);
            }
            self.destroy(key, task, syscall, Origin::Kernel, Cause::Freed, out);
        }
        if !matched {
            self.free_counts.unmatched += 1;
        }
    }

    /// Logs, at debug level, how many free events matched no namespace
    /// without tasks since the last call. Called about once a second.
    pub fn log_free_counts(&mut self) {
        let (now, logged) = (self.free_counts, self.free_counts_logged);
        if now == logged {
            return;
        }
        log::debug!(
            "ignored freed inode numbers: {} matched no namespace (removed /proc entries, or namespaces never seen), \
             {} were freed before the snapshot, {} belonged to namespaces with tasks in the state",
            now.unmatched - logged.unmatched,
            now.before_seed - logged.before_seed,
            now.with_tasks - logged.with_tasks
        );
        self.free_counts_logged = now;
    }

    /// Re-reads the nsfs bind mounts of every mount namespace and reports the
    /// difference as `named` and `unnamed`.
    pub fn refresh_mounts(&mut self, out: &mut Vec<Event>) {
        self.mounts_dirty = false;
        let calls = std::mem::take(&mut self.mount_calls);
        // A bind mount can also end with its mount namespace, which no
        // system call reports.
        let unnamed_by = calls.contains(&"umount").then_some("umount");
        let named_by = ["mount", "move_mount"].into_iter().find(|call| calls.contains(call));
        let mut found = Found {
            tasks: self.tasks.values().filter(|t| t.is_leader()).cloned().collect(),
            ..Found::default()
        };
        let mnt_in_use: HashSet<u64> = self
            .tasks
            .values()
            .map(|t| t.links.member[NsType::Mnt.index()])
            .collect();
        discover::mounts::scan(&mut found);
        let mut now: HashMap<NsKey, Vec<Holder>> = HashMap::new();
        for (key, entry) in found.namespaces {
            let mounts: Vec<Holder> = entry
                .holders
                .into_iter()
                .filter(|h| matches!(h, Holder::BindMount { .. }))
                .collect();
            if !mounts.is_empty() {
                now.insert(key, mounts);
            }
            if let Some(fd) = entry.fd
                && !self.namespaces.contains_key(&key)
            {
                // A bind mount of a namespace the state never saw (it was
                // created and pinned between two events we lost).
                let id = crate::nsfs::namespace_id(fd.as_fd()).ok();
                let mut ns = LiveNs::new(id);
                ns.state = NsState::Pinned;
                self.namespaces.insert(key, ns);
                out.push(Event::new(EventKind::Created, Origin::Check, Some(NsRef { key, id })));
            }
        }
        let keys: Vec<NsKey> = self
            .namespaces
            .keys()
            .copied()
            .chain(now.keys().copied())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        for key in keys {
            let Some(ns) = self.namespaces.get_mut(&key) else {
                continue;
            };
            let new_mounts = now.remove(&key).unwrap_or_default();
            let old_mounts: Vec<Holder> = ns
                .holders
                .iter()
                .filter(|h| matches!(h, Holder::BindMount { .. }))
                .cloned()
                .collect();
            let added: Vec<Holder> = new_mounts.iter().filter(|h| !old_mounts.contains(h)).cloned().collect();
            let removed: Vec<Holder> = old_mounts.iter().filter(|h| !new_mounts.contains(h)).cloned().collect();
            if added.is_empty() && removed.is_empty() {
                continue;
            }
            ns.holders.retain(|h| !matches!(h, Holder::BindMount { .. }));
            ns.holders.extend(new_mounts);
            let ns_ref = NsRef { key, id: ns.id };
            // A bind mount in a mount namespace that no task is in any more
            // ended with that namespace, not by a umount.
            let (ended, unmounted): (Vec<Holder>, Vec<Holder>) = removed.into_iter().partition(
                |h| matches!(h, Holder::BindMount { mnt_ns: Some(mnt), .. } if !mnt_in_use.contains(&mnt.inode)),
            );
            for (kind, holders, syscall) in [
                (EventKind::Named, added, named_by),
                (EventKind::Unnamed, unmounted, unnamed_by),
                (EventKind::Unnamed, ended, None),
            ] {
                if holders.is_empty() {
                    continue;
                }
                let mut event = Event::new(kind, Origin::Kernel, Some(ns_ref));
                event.syscall = syscall;
                event.holders = holders;
                out.push(event);
            }
            let no_tasks = ns.tasks.is_empty();
            let no_mounts = !ns.holders.iter().any(|h| matches!(h, Holder::BindMount { .. }));
            if no_tasks && no_mounts {
                self.schedule_check(key, None, unnamed_by);
            }
        }
    }

    /// Replaces the state with a fresh snapshot and reports the difference,
    /// after lost events (`Origin::Rescan`) or as the polling backend
    /// (`Origin::Poll`).
    pub fn resync(&mut self, inventory: &Inventory, origin: Origin, out: &mut Vec<Event>) {
        let new = LiveState::from_inventory(inventory);
        let time = inventory.taken_at;
        let start = out.len();

        for (key, ns) in &new.namespaces {
            let old = self.namespaces.get(key);
            let recycled = matches!((old.and_then(|o| o.id), ns.id), (Some(a), Some(b)) if a != b);
            if recycled {
                let id = old.and_then(|o| o.id);
                let mut destroyed = Event::new(EventKind::Destroyed, origin, Some(NsRef { key: *key, id }));
                destroyed.cause = Some(Cause::Recycled);
                out.push(destroyed);
            }
            if old.is_none() || recycled {
                let ns_ref = NsRef { key: *key, id: ns.id };
                let mut event = Event::new(EventKind::Created, origin, Some(ns_ref));
                event.task = inventory.first_task(*key).map(task_info);
                event.holders = ns.holders.clone();
                out.push(event);
                // As the kernel hooks report it: `named` for each bind mount.
                let mounts = bind_mounts(&ns.holders);
                if !mounts.is_empty() {
                    let mut named = Event::new(EventKind::Named, origin, Some(ns_ref));
                    named.holders = mounts;
                    out.push(named);
                }
                continue;
            }
            let old = old.expect("checked above");
            if !old.tasks.is_empty() && ns.tasks.is_empty() && !new.defaults.contains(*key) {
                let mut event = Event::new(EventKind::Pinned, origin, Some(NsRef { key: *key, id: ns.id }));
                event.holders = ns.holders.clone();
                out.push(event);
            }
            let (before, after) = (bind_mounts(&old.holders), bind_mounts(&ns.holders));
            let added: Vec<Holder> = after.iter().filter(|h| !before.contains(h)).cloned().collect();
            let removed: Vec<Holder> = before.iter().filter(|h| !after.contains(h)).cloned().collect();
            for (kind, holders) in [(EventKind::Named, added), (EventKind::Unnamed, removed)] {
                if !holders.is_empty() {
                    let mut event = Event::new(kind, origin, Some(NsRef { key: *key, id: ns.id }));
                    event.holders = holders;
                    out.push(event);
                }
            }
        }
        for (key, ns) in &self.namespaces {
            if !new.namespaces.contains_key(key) {
                let mounts = bind_mounts(&ns.holders);
                if !mounts.is_empty() {
                    let mut unnamed = Event::new(EventKind::Unnamed, origin, Some(NsRef { key: *key, id: ns.id }));
                    unnamed.holders = mounts;
                    out.push(unnamed);
                }
                let mut destroyed = Event::new(EventKind::Destroyed, origin, Some(NsRef { key: *key, id: ns.id }));
                destroyed.cause = Some(Cause::Snapshot);
                out.push(destroyed);
            }
        }
        // Tasks that changed namespaces since the last state, and new tasks
        // whose namespaces differ from their parent's.
        for (tid, task) in &new.tasks {
            let before = match self.tasks.get(tid) {
                Some(old) if old.pid == task.pid => Some(old.links),
                _ => new
                    .tasks
                    .get(&task.ppid)
                    .or_else(|| self.tasks.get(&task.ppid))
                    .map(|p| p.links),
            };
            let Some(before) = before else { continue };
            for slot in 0..8 {
                let (from, to) = (slot_key(&before, slot), slot_key(&task.links, slot));
                let (Some(from), Some(to)) = (from, to) else { continue };
                if from == to || !self.namespaces.contains_key(&to) {
                    continue;
                }
                let mut event = Event::new(EventKind::Entered, origin, Some(new.ns_ref(to)));
                event.task = Some(task_info(task));
                event.from = Some(new.ns_ref(from));
                event.to = Some(new.ns_ref(to));
                out.push(event);
            }
        }
        for e in &mut out[start..] {
            e.time = time;
        }
        let checks = std::mem::take(&mut self.checks);
        let (free_hook, free_counts, free_counts_logged) = (self.free_hook, self.free_counts, self.free_counts_logged);
        *self = new;
        self.free_hook = free_hook;
        self.free_counts = free_counts;
        self.free_counts_logged = free_counts_logged;
        // Pending checks of namespaces still without tasks stay valid.
        self.checks = checks
            .into_iter()
            .filter(|c| self.namespaces.get(&c.key).is_some_and(|ns| ns.tasks.is_empty()))
            .collect();
    }
}

/// Returns the bind-mount holders among `holders`.
fn bind_mounts(holders: &[Holder]) -> Vec<Holder> {
    holders
        .iter()
        .filter(|h| matches!(h, Holder::BindMount { .. }))
        .cloned()
        .collect()
}

/// The system call behind a task's move, as the state applies it.
#[derive(Debug, Clone)]
struct Call {
    syscall: &'static str,
    /// The call's `CLONE_NEW*` flags (`nstype` for setns).
    flags: u64,
    /// The namespaces it created, see [`created_keys`].
    created: Vec<NsKey>,
}

impl Call {
    /// Returns a call that creates no namespace (setns, execve).
    fn moving(syscall: &'static str, flags: u64) -> Call {
        Call {
            syscall,
            flags,
            created: Vec::new(),
        }
    }
}

impl LiveNs {
    fn new(id: Option<u64>) -> LiveNs {
        LiveNs {
            id,
            tasks: HashSet::new(),
            holders: Vec::new(),
            state: NsState::InUse,
        }
    }
}

/// Returns CLOCK_BOOTTIME in nanoseconds, the clock of kernel event stamps.
fn boot_time_ns() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Describes a task for an event.
pub fn task_info(task: &Task) -> TaskInfo {
    TaskInfo {
        pid: task.pid,
        tid: task.tid,
        ppid: task.ppid,
        uid: task.uid,
        comm: task.comm.clone(),
        cmdline: task.cmdline.clone(),
        container: task.container.clone(),
    }
}

fn info_from_facts(facts: &TaskFacts) -> TaskInfo {
    TaskInfo {
        pid: facts.pid,
        tid: facts.tid,
        ppid: facts.ppid,
        uid: Some(facts.uid),
        comm: Some(facts.comm.clone()),
        cmdline: Vec::new(),
        container: None,
    }
}

/// Finds every task that refers to `key` through its links, by reading one
/// link per task: about 10,000 `readlinkat` calls on a host of 10,000 tasks.
fn find_members(key: NsKey) -> Vec<Task> {
    let names: &[&str] = match key.ty {
        NsType::Pid => &["pid", "pid_for_children"],
        NsType::Time => &["time", "time_for_children"],
        ty => &[ty.name()],
    };
    let mut members = Vec::new();
    let Ok(pids) = discover::procfs_io::numeric_entries(rustix::fs::CWD, "/proc") else {
        return members;
    };
    let mut text = [0u8; 64];
    for pid in pids {
        let Ok(tids) = discover::procfs_io::numeric_entries(rustix::fs::CWD, format!("/proc/{pid}/task").as_str())
        else {
            continue;
        };
        for tid in tids {
            let refers = names.iter().any(|name| {
                let path = format!("/proc/{pid}/task/{tid}/ns/{name}");
                discover::procfs_io::read_link(rustix::fs::CWD, &path, &mut text)
                    .ok()
                    .and_then(crate::nsfs::parse_link)
                    == Some(key)
            });
            // A zombie still shows its links but has left every namespace
            // but its user namespace, and no exit event will come for it.
            if refers && let Some(task) = read_task(pid, tid).filter(|t| !t.zombie) {
                members.push(task);
            }
        }
    }
    members
}

/// Reads what the state keeps about one task from `/proc`.
fn read_task(pid: i32, tid: i32) -> Option<Task> {
    let stat = std::fs::read(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    let stat = discover::tasks::parse_stat(&stat).ok()?;
    let mut links = TaskLinks::default();
    let mut text = [0u8; 64];
    for slot in 0..LINK_COUNT {
        let name = match slot {
            0..=7 => NsType::ALL[slot].name(),
            8 => "pid_for_children",
            _ => "time_for_children",
        };
        let path = format!("/proc/{pid}/task/{tid}/ns/{name}");
        let Ok(t) = discover::procfs_io::read_link(rustix::fs::CWD, &path, &mut text) else {
            continue;
        };
        let Some(key) = crate::nsfs::parse_link(t) else {
            continue;
        };
        match slot {
            0..=7 => links.member[slot] = key.inode,
            8 => links.pid_for_children = key.inode,
            _ => links.time_for_children = key.inode,
        }
    }
    Some(Task {
        pid,
        tid,
        ppid: stat.ppid,
        uid: None,
        comm: Some(stat.comm),
        cmdline: if pid == tid { read_cmdline(pid) } else { Vec::new() },
        kthread: stat.kthread,
        zombie: stat.zombie,
        links,
        container: None,
        cgroup_id: None,
    })
}

/// Reads a process's command line; empty if it is gone already.
fn read_cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| crate::model::split_cmdline(&bytes))
        .unwrap_or_default()
}

/// Returns whether a namespace still exists, by opening it through an nsfs
/// file handle (Linux 6.18+); `None` where that is not possible. The fd is
/// closed at once, so the check itself pins nothing.
pub fn alive(key: NsKey, id: Option<u64>) -> Option<bool> {
    let id = id?;
    let inode = u32::try_from(key.inode).ok()?;
    match discover::kernel_list::open_namespace_by_id(id, key.ty.clone_flag(), inode) {
        Ok(_) => Some(true),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Some(false),
        Err(err) => {
            log::debug!("liveness check of {key} (id {id}) failed: {err}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::defaults::DefaultSource;

    /// Boot time at which the test states were seeded.
    const SEEDED_NS: u64 = 1_000_000;

    fn net(inode: u64) -> NsKey {
        NsKey { ty: NsType::Net, inode }
    }

    /// Returns a state with the namespaces `keys`, none of them with tasks,
    /// no default namespace among them, and the `ns_free` hook attached.
    fn state_with(keys: &[NsKey]) -> LiveState {
        let namespaces = keys.iter().map(|key| (*key, LiveNs::new(None))).collect();
        LiveState {
            tasks: HashMap::new(),
            namespaces,
            defaults: Defaults {
                inodes: [0; 8],
                sources: [DefaultSource::FixedInode; 8],
            },
            checks: Vec::new(),
            mounts_dirty: false,
            mount_calls: Vec::new(),
            seeded_boot_ns: SEEDED_NS,
            free_hook: true,
            free_counts: FreeCounts::default(),
            free_counts_logged: FreeCounts::default(),
        }
    }

    fn free(state: &mut LiveState, inode: u64, boot_ns: u64) -> Vec<Event> {
        let mut out = Vec::new();
        let change = Change::FreeInum { inode };
        state.apply(
            KernelEvent {
                time: SystemTime::now(),
                boot_ns,
                change,
            },
            &mut out,
        );
        out
    }

    #[test]
    fn free_destroys_namespace_without_tasks() {
        let key = net(4026532300);
        let mut state = state_with(&[key, net(4026532301)]);

        let events = free(&mut state, key.inode, SEEDED_NS + 1);

        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].kind, EventKind::Destroyed);
        assert_eq!(events[0].cause, Some(Cause::Freed));
        assert_eq!(events[0].origin, Origin::Kernel);
        assert_eq!(events[0].ns.map(|ns| ns.key), Some(key));
        assert_eq!(state.namespace_count(), 1);
    }

    #[test]
    fn free_ends_pending_check() {
        let key = net(4026532300);
        let mut state = state_with(&[key]);
        let task = TaskInfo {
            pid: 42,
            tid: 42,
            ..TaskInfo::default()
        };
        state.schedule_check(key, Some(task.clone()), "exit");

        let events = free(&mut state, key.inode, SEEDED_NS + 1);

        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].task, Some(task));
        assert_eq!(events[0].syscall, Some("exit"));
        assert_eq!(state.next_check(), None);
    }

    #[test]
    fn free_before_seeding_is_ignored() {
        let key = net(4026532300);
        let mut state = state_with(&[key]);

        let events = free(&mut state, key.inode, SEEDED_NS);

        assert!(events.is_empty(), "{events:?}");
        assert_eq!(state.namespace_count(), 1);
        assert_eq!(state.free_counts.before_seed, 1);
    }

    #[test]
    fn free_of_unknown_number_is_ignored() {
        let mut state = state_with(&[net(4026532300)]);

        let events = free(&mut state, 4026532999, SEEDED_NS + 1);

        assert!(events.is_empty(), "{events:?}");
        assert_eq!(state.namespace_count(), 1);
        assert_eq!(state.free_counts.unmatched, 1);
    }

    #[test]
    fn free_of_namespace_with_tasks_is_ignored() {
        let key = net(4026532300);
        let mut state = state_with(&[key]);
        state.namespaces.get_mut(&key).unwrap().tasks.insert(7);

        let events = free(&mut state, key.inode, SEEDED_NS + 1);

        assert!(events.is_empty(), "{events:?}");
        assert_eq!(state.namespace_count(), 1);
        assert_eq!(state.free_counts.with_tasks, 1);
    }

    /// A net namespace id that no namespace has: ids count up from 1 and
    /// are never reused.
    const UNUSED_ID: u64 = u64::MAX - 1;

    /// Returns whether this kernel and process can test liveness by id
    /// (Linux 6.18+, as root); the tests below need it.
    fn liveness_testable(test: &str) -> bool {
        let testable = alive(net(4026532300), Some(UNUSED_ID)) == Some(false);
        if !testable {
            eprintln!("skipping {test}: needs root and a kernel that opens namespaces by id (Linux 6.18+)");
        }
        testable
    }

    /// Returns a state with one net namespace that is already gone, and a
    /// liveness check due for it after the exit of PID 42.
    fn state_with_gone_namespace(free_hook: bool) -> (LiveState, NsKey) {
        let key = net(4026532300);
        let mut state = state_with(&[key]);
        state.free_hook = free_hook;
        state.namespaces.get_mut(&key).unwrap().id = Some(UNUSED_ID);
        let task = TaskInfo {
            pid: 42,
            tid: 42,
            ..TaskInfo::default()
        };
        state.schedule_check(key, Some(task), "exit");
        (state, key)
    }

    #[test]
    fn gone_namespace_waits_for_free_event() {
        if !liveness_testable("gone_namespace_waits_for_free_event") {
            return;
        }
        let (mut state, key) = state_with_gone_namespace(true);
        let now = Instant::now() + CHECK_DELAYS[0];
        let mut events = Vec::new();

        state.run_checks(now, &mut events);
        assert!(events.is_empty(), "reported before the free event: {events:?}");
        assert_eq!(state.next_check(), Some(now + FREE_GRACE));

        let events = free(&mut state, key.inode, SEEDED_NS + 1);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].cause, Some(Cause::Freed));
        assert_eq!(events[0].syscall, Some("exit"));
        assert_eq!(events[0].task.as_ref().map(|t| t.pid), Some(42));
        assert_eq!(state.next_check(), None);
    }

    #[test]
    fn gone_namespace_reported_without_free_event() {
        if !liveness_testable("gone_namespace_reported_without_free_event") {
            return;
        }
        let (mut state, _) = state_with_gone_namespace(true);
        let now = Instant::now() + CHECK_DELAYS[0];
        let mut events = Vec::new();

        state.run_checks(now, &mut events);
        state.run_checks(now + FREE_GRACE, &mut events);

        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].kind, EventKind::Destroyed);
        assert_eq!(events[0].cause, Some(Cause::Check));
        assert_eq!(events[0].origin, Origin::Kernel);
    }

    #[test]
    fn gone_namespace_reported_at_once_without_hook() {
        if !liveness_testable("gone_namespace_reported_at_once_without_hook") {
            return;
        }
        let (mut state, _) = state_with_gone_namespace(false);
        let mut events = Vec::new();

        state.run_checks(Instant::now() + CHECK_DELAYS[0], &mut events);

        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].cause, Some(Cause::Check));
        assert_eq!(events[0].syscall, Some("exit"));
    }

    #[test]
    fn pinned_recheck_waits_for_free_event() {
        if !liveness_testable("pinned_recheck_waits_for_free_event") {
            return;
        }
        let key = net(4026532300);
        let mut state = state_with(&[key]);
        state.namespaces.get_mut(&key).unwrap().id = Some(UNUSED_ID);
        let mut events = Vec::new();

        state.recheck_pinned(&mut events);
        assert!(events.is_empty(), "reported before the free event: {events:?}");
        let due = state.next_check().expect("a check waits for the free event");
        state.run_checks(due, &mut events);

        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].cause, Some(Cause::Check));
        assert_eq!(events[0].origin, Origin::Check);
    }

    /// Before Linux 6.18 nothing tests liveness, which a namespace without a
    /// known id simulates here.
    #[test]
    fn namespace_without_id_lives_until_freed() {
        let key = net(4026532300);
        let mut state = state_with(&[key]);
        state.schedule_check(key, None, "exit");
        let mut events = Vec::new();

        while let Some(due) = state.next_check() {
            state.run_checks(due, &mut events);
        }
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].kind, EventKind::Pinned);

        let events = free(&mut state, key.inode, SEEDED_NS + 1);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].kind, EventKind::Destroyed);
        assert_eq!(events[0].cause, Some(Cause::Freed));
    }

    fn uts(inode: u64) -> NsKey {
        NsKey { ty: NsType::Uts, inode }
    }

    /// A PID far above the kernel's limit, so no real process has it.
    const PID: i32 = i32::MAX - 7;

    /// Returns a task's links with these member namespaces.
    fn links_of(members: &[NsKey]) -> TaskLinks {
        let mut links = TaskLinks::default();
        for key in members {
            links.member[key.ty.index()] = key.inode;
        }
        links
    }

    /// Adds task [`PID`] with `links` to the state.
    fn add_task(state: &mut LiveState, links: TaskLinks) {
        let task = Task {
            pid: PID,
            tid: PID,
            ppid: 1,
            uid: Some(0),
            comm: Some("test".into()),
            cmdline: Vec::new(),
            kthread: false,
            zombie: false,
            links,
            container: None,
            cgroup_id: None,
        };
        for slot in 0..LINK_COUNT {
            if let Some(key) = slot_key(&links, slot) {
                state
                    .namespaces
                    .entry(key)
                    .or_insert_with(|| LiveNs::new(None))
                    .tasks
                    .insert(PID);
            }
        }
        state.tasks.insert(PID, task);
    }

    /// Applies an unshare by task [`PID`] that left it with `links`.
    fn unshare(state: &mut LiveState, flags: u64, links: TaskLinks, boot_ns: u64) -> Vec<Event> {
        let task = TaskFacts {
            pid: PID,
            tid: PID,
            ppid: 1,
            links,
            ..TaskFacts::default()
        };
        let mut out = Vec::new();
        let change = Change::Unshare { task, flags };
        state.apply(
            KernelEvent {
                time: SystemTime::now(),
                boot_ns,
                change,
            },
            &mut out,
        );
        out
    }

    fn kinds(events: &[Event]) -> Vec<(EventKind, Option<NsKey>, Option<Cause>)> {
        events
            .iter()
            .map(|e| (e.kind, e.ns.map(|ns| ns.key), e.cause))
            .collect()
    }

    const CLONE_NEWUTS: u64 = 0x0400_0000;

    /// Without ids, a namespace whose inode number the state still holds
    /// for a freed one is `created`, not `entered`, and the old one ends.
    #[test]
    fn unshare_into_reused_inode_is_created() {
        let (old, host) = (uts(4026532300), uts(4026531838));
        let mut state = state_with(&[old]);
        state.schedule_check(old, None, "exit");
        add_task(&mut state, links_of(&[host]));

        let events = unshare(&mut state, CLONE_NEWUTS, links_of(&[old]), SEEDED_NS + 1);

        assert_eq!(
            kinds(&events),
            [
                (EventKind::Destroyed, Some(old), Some(Cause::Recycled)),
                (EventKind::Created, Some(old), None),
                (EventKind::Left, Some(host), None),
            ]
        );
        assert_eq!(events[1].syscall, Some("unshare"));
        assert_eq!(events[1].from.map(|ns| ns.key), Some(host));
        assert!(state.checks.iter().all(|c| c.key != old), "{:?}", state.checks);
    }

    /// A task that unshares again can get the inode number of the namespace
    /// it leaves, which the kernel freed during the call.
    #[test]
    fn unshare_reusing_own_inode_is_created() {
        let own = uts(4026532300);
        let mut state = state_with(&[]);
        add_task(&mut state, links_of(&[own]));

        let events = unshare(&mut state, CLONE_NEWUTS, links_of(&[own]), SEEDED_NS + 1);

        assert_eq!(
            kinds(&events),
            [
                (EventKind::Destroyed, Some(own), Some(Cause::Recycled)),
                (EventKind::Created, Some(own), None),
            ]
        );
        let ns = state.namespaces.get(&own).expect("the new namespace");
        assert!(ns.tasks.contains(&PID), "{:?}", ns.tasks);
    }

    /// Equal ids show that the state's namespace is the one the call
    /// reports, so nothing is recycled.
    #[test]
    fn unshare_with_same_id_is_not_recycled() {
        let (new, host) = (uts(4026532300), uts(4026531838));
        let mut state = state_with(&[new]);
        state.namespaces.get_mut(&new).unwrap().id = Some(77);
        add_task(&mut state, links_of(&[host]));
        let task = TaskFacts {
            pid: PID,
            tid: PID,
            ppid: 1,
            links: links_of(&[new]),
            ids: {
                let mut ids = [0; LINK_COUNT];
                ids[NsType::Uts.index()] = 77;
                ids
            },
            ..TaskFacts::default()
        };
        let mut events = Vec::new();
        state.apply(
            KernelEvent {
                time: SystemTime::now(),
                boot_ns: SEEDED_NS + 1,
                change: Change::Unshare {
                    task,
                    flags: CLONE_NEWUTS,
                },
            },
            &mut events,
        );

        assert_eq!(
            kinds(&events),
            [
                (EventKind::Entered, Some(new), None),
                (EventKind::Left, Some(host), None)
            ]
        );
    }

    /// An event from before the snapshot may have created a namespace that
    /// the snapshot saw, so it proves nothing new.
    #[test]
    fn unshare_before_seeding_enters_known_namespace() {
        let (known, host) = (uts(4026532300), uts(4026531838));
        let mut state = state_with(&[known]);
        add_task(&mut state, links_of(&[host]));

        let events = unshare(&mut state, CLONE_NEWUTS, links_of(&[known]), SEEDED_NS);

        assert_eq!(
            kinds(&events),
            [
                (EventKind::Entered, Some(known), None),
                (EventKind::Left, Some(host), None)
            ]
        );
    }

    #[test]
    fn created_keys_by_slot() {
        let mut links = links_of(&[
            uts(10),
            NsKey {
                ty: NsType::Pid,
                inode: 20,
            },
        ]);
        links.pid_for_children = 21;
        links.time_for_children = 31;
        let pid_uts_time = 0x2000_0000 | CLONE_NEWUTS | 0x80;

        let unshared = created_keys(&links, pid_uts_time, Creation::Unshare);
        let cloned = created_keys(&links, pid_uts_time, Creation::Clone);

        let pid = |inode| NsKey { ty: NsType::Pid, inode };
        let time = NsKey {
            ty: NsType::Time,
            inode: 31,
        };
        assert_eq!(unshared, [pid(21), time, uts(10)]);
        assert_eq!(cloned, [pid(20), time, uts(10)]);
        assert_eq!(created_keys(&links, 0, Creation::Unshare), []);
    }

    /// A freed namespace loses the bind mounts the state still knew, which
    /// an umount's mount refresh would have reported later, and a freed
    /// mount namespace marks the bind mounts inside it for the next refresh.
    #[test]
    fn free_of_named_namespace_unnames_it_first() {
        let (netns, mnt_ns) = (
            net(4026532300),
            NsKey {
                ty: NsType::Mnt,
                inode: 4026532301,
            },
        );
        let mut state = state_with(&[netns, mnt_ns]);
        let mount = Holder::BindMount {
            path: "/run/netns/a".into(),
            mnt_ns: Some(mnt_ns),
            usual: true,
        };
        state.namespaces.get_mut(&netns).unwrap().holders = vec![mount.clone()];

        let events = free(&mut state, mnt_ns.inode, SEEDED_NS + 1);

        assert_eq!(
            kinds(&events),
            [(EventKind::Destroyed, Some(mnt_ns), Some(Cause::Freed))]
        );
        assert!(
            state.mounts_dirty,
            "the mounts inside {mnt_ns} were not marked for a refresh"
        );

        let events = free(&mut state, netns.inode, SEEDED_NS + 2);

        assert_eq!(
            kinds(&events),
            [
                (EventKind::Unnamed, Some(netns), None),
                (EventKind::Destroyed, Some(netns), Some(Cause::Freed)),
            ]
        );
        assert_eq!(events[0].holders, [mount]);
    }

    #[test]
    fn free_of_default_namespace_is_ignored() {
        let key = net(4026531833);
        let mut state = state_with(&[key]);
        state.defaults.inodes[NsType::Net.index()] = key.inode;

        let events = free(&mut state, key.inode, SEEDED_NS + 1);

        assert!(events.is_empty(), "{events:?}");
        assert_eq!(state.namespace_count(), 1);
    }

    /// Adds a bind mount of `ns` at `path` inside mount namespace `mnt`.
    fn add_bind_mount(state: &mut LiveState, ns: NsKey, path: &str, mnt: NsKey) -> Holder {
        let holder = Holder::BindMount {
            path: path.into(),
            mnt_ns: Some(mnt),
            usual: false,
        };
        let live = state.namespaces.get_mut(&ns).expect("the namespace is in the state");
        live.holders.push(holder.clone());
        holder
    }

    /// The mount refresh reads the real mount namespaces, which lack the
    /// test's bind mounts, so it reports both gone. Only the one whose mount
    /// namespace still has a task was unmounted. The other ended with its
    /// mount namespace, even though a umount ran meanwhile.
    #[test]
    fn refresh_tells_unmounted_from_ended() {
        let (kept_mnt, gone_mnt) = (
            NsKey {
                ty: NsType::Mnt,
                inode: 4026532400,
            },
            NsKey {
                ty: NsType::Mnt,
                inode: 4026532401,
            },
        );
        let (pinned, ended) = (uts(4026532402), uts(4026532403));
        let mut state = state_with(&[pinned, ended]);
        add_task(&mut state, links_of(&[kept_mnt]));
        let unmounted = add_bind_mount(&mut state, pinned, "/nonexistent/listns-unit/unmounted", kept_mnt);
        let lost_with_mnt = add_bind_mount(&mut state, ended, "/nonexistent/listns-unit/ended", gone_mnt);
        state.mount_calls.push("umount");

        let mut events = Vec::new();
        state.refresh_mounts(&mut events);

        let unnamed = |key: NsKey| {
            events
                .iter()
                .find(|e| e.kind == EventKind::Unnamed && e.ns.map(|ns| ns.key) == Some(key))
                .unwrap_or_else(|| panic!("no unnamed event for {key}: {events:?}"))
        };
        assert_eq!(unnamed(pinned).syscall, Some("umount"));
        assert_eq!(unnamed(pinned).holders, [unmounted]);
        assert_eq!(unnamed(ended).syscall, None);
        assert_eq!(unnamed(ended).holders, [lost_with_mnt]);
    }
}
