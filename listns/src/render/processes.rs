//! The per-process view, the default output: one row per process and
//! namespace, in the layout of the original `listns.py`:
//!
//! ```text
//!  PID Namespace           Thread/Command
//!   -- net:[4026532449] ** bind mount /run/netns/c1 in mnt:[4026531832]
//! 4242 net:[4026532449] ** sleep 600
//! ```
//!
//! `--` rows say what holds a namespace besides its tasks, `**` marks a
//! network namespace that also has an `ip netns` name.

use std::io::{self, Write};

use super::table::{Layout, cell, write_rows};
use crate::inventory::{Inventory, Namespace};
use crate::model::{NsState, NsType, Task};

/// Writes the per-process view of `namespaces`; with `only_pid`, only the
/// rows of that process and the holders it is.
pub fn write(
    out: &mut (impl Write + ?Sized),
    inventory: &Inventory,
    namespaces: &[&Namespace],
    layout: Layout,
    only_pid: Option<i32>,
) -> io::Result<()> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    if !layout.noheadings {
        rows.push(vec!["PID".into(), "Namespace".into(), "Thread/Command".into()]);
    }
    for ns in namespaces {
        let mut name = ns.key.to_string();
        if ns.key.ty == NsType::Net && !ns.names.is_empty() {
            name.push_str(" **");
        }
        let name = cell(&name, layout);
        let state_tag = match ns.state {
            NsState::Hidden => " [hidden]",
            NsState::Pinned => " [pinned]",
            _ => "",
        };
        for holder in ns.holders.iter().filter(|h| only_pid.is_none() || h.pid() == only_pid) {
            rows.push(vec![
                "--".into(),
                name.clone(),
                cell(&format!("{holder}{state_tag}"), layout),
            ]);
        }
        if ns.holders.is_empty() && ns.tasks.is_empty() && only_pid.is_none() {
            rows.push(vec![
                "--".into(),
                name.clone(),
                cell(&format!("no visible holder{state_tag}"), layout),
            ]);
        }
        for (pid, text) in task_rows(inventory, ns)
            .into_iter()
            .filter(|(_, pid, _)| only_pid.is_none_or(|p| p == *pid))
            .map(|(row, _, text)| (row, text))
        {
            rows.push(vec![pid.to_string(), name.clone(), cell(&text, layout)]);
        }
    }
    write_rows(out, rows.iter(), &[true, false, false], layout.raw)
}

/// Returns one row per member process, or per member thread where the
/// thread's leader is not a member: the PID or TID shown, the process's PID,
/// and the text.
fn task_rows(inventory: &Inventory, ns: &Namespace) -> Vec<(i32, i32, String)> {
    let mut rows = Vec::new();
    let members: Vec<&Task> = ns.tasks.iter().map(|&i| &inventory.tasks[i]).collect();
    let mut leader_pid = None;
    for task in members {
        if task.is_leader() {
            leader_pid = Some(task.pid);
            rows.push((task.pid, task.pid, with_tags(super::command(task), task)));
        } else if leader_pid != Some(task.pid) {
            rows.push((task.tid, task.pid, with_tags(super::command(task), task)));
        }
    }
    rows
}

fn with_tags(mut text: String, task: &Task) -> String {
    for tag in super::tags(task) {
        text.push_str(" [");
        text.push_str(tag);
        text.push(']');
    }
    text
}
