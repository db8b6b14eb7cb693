//! Turns decoded eBPF events into the changes that [`super::state`] applies.

use crate::model::TaskLinks;
use crate::trace::events::derived_clone_flags;
use crate::trace::{BootClock, Detail, Event, NsLinks};

use super::state::{Change, KernelEvent, TaskFacts};

/// Returns the inode and id of every link slot of a kernel event.
fn links_and_ids(links: &NsLinks) -> (TaskLinks, [u64; crate::model::LINK_COUNT]) {
    let mut task = TaskLinks::default();
    let mut ids = [0; crate::model::LINK_COUNT];
    for (slot, id) in ids.iter_mut().enumerate() {
        let Some(ns) = links.slot(slot) else { continue };
        *id = ns.id.unwrap_or(0);
        match slot {
            0..=7 => task.member[slot] = ns.inode,
            8 => task.pid_for_children = ns.inode,
            _ => task.time_for_children = ns.inode,
        }
    }
    (task, ids)
}

/// Returns the facts about the task of an event.
fn facts(event: &Event) -> TaskFacts {
    let (links, ids) = links_and_ids(&event.namespaces);
    // The effective UID is what `ps` and the snapshot show; u32::MAX means
    // the kernel read failed.
    let uid = if event.task.euid != u32::MAX {
        event.task.euid
    } else {
        event.task.uid
    };
    TaskFacts {
        pid: event.task.tgid as i32,
        tid: event.task.tid as i32,
        ppid: event.task.ppid as i32,
        uid,
        comm: String::from_utf8_lossy(&event.task.comm).into_owned(),
        links,
        ids,
    }
}

/// Converts one kernel event; `None` for events that change nothing (a
/// failed mount call).
pub fn convert(event: &Event, clock: &BootClock) -> Option<KernelEvent> {
    let change = match &event.detail {
        Detail::Fork {
            creator_tid,
            creator_namespaces,
            ..
        } => {
            let (creator, _) = links_and_ids(creator_namespaces);
            let flags = derived_clone_flags(&event.namespaces, creator_namespaces);
            Change::Fork {
                parent_tid: *creator_tid as i32,
                creator,
                child: facts(event),
                flags: u64::from(flags),
            }
        }
        Detail::Unshare { flags } => Change::Unshare {
            task: facts(event),
            flags: *flags,
        },
        Detail::Setns { nstype, .. } => Change::Setns {
            task: facts(event),
            nstype: u64::from(*nstype),
        },
        Detail::Exec { old_tid } => Change::Exec {
            task: facts(event),
            old_tid: *old_tid as i32,
        },
        Detail::Exit { .. } => Change::Exit { task: facts(event) },
        Detail::Mount { ret, call, .. } => {
            if *ret != 0 {
                return None;
            }
            let syscall = match call {
                crate::trace::MountCall::Mount => "mount",
                crate::trace::MountCall::MoveMount => "move_mount",
                crate::trace::MountCall::Umount => "umount",
            };
            Change::Mount {
                task: facts(event),
                syscall,
            }
        }
        // The task that ran the free is no part of the change.
        Detail::FreeInum { inode } => Change::FreeInum { inode: *inode },
    };
    Some(KernelEvent {
        time: clock.to_system_time(event.boot_ns),
        boot_ns: event.boot_ns,
        change,
    })
}
