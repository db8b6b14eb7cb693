//! Trees of namespaces (`-T owner` and `-T parent`).
//!
//! `owner`: every namespace under the user namespace that owns it.
//! `parent`: pid and user namespaces under their parents.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use super::escape::escape;
use crate::inventory::{Inventory, Namespace};
use crate::model::{NsKey, NsState, NsType};

/// Relation that the tree follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TreeKind {
    /// Each namespace under its owning user namespace.
    Owner,
    /// Pid and user namespaces under their parents.
    Parent,
}

/// Writes the tree of `shown`; their ancestors are included so each shown
/// namespace appears at its true place.
pub fn write(out: &mut impl Write, inventory: &Inventory, shown: &[&Namespace], kind: TreeKind) -> io::Result<()> {
    let up = |ns: &Namespace| -> Option<NsKey> {
        match kind {
            TreeKind::Owner => ns.owner,
            TreeKind::Parent => ns.parent,
        }
    };
    let mut included: BTreeSet<NsKey> = BTreeSet::new();
    for ns in shown {
        if kind == TreeKind::Parent && !matches!(ns.key.ty, NsType::Pid | NsType::User) {
            continue;
        }
        let mut current = Some(ns.key);
        // Relations cannot form a cycle in the kernel; the bound guards
        // against a corrupt inventory all the same.
        let mut depth = 0;
        while let Some(key) = current {
            if !included.insert(key) || depth > 64 {
                break;
            }
            depth += 1;
            current = inventory.namespaces.get(&key).and_then(up);
        }
    }
    let mut children: BTreeMap<Option<NsKey>, Vec<NsKey>> = BTreeMap::new();
    for key in &included {
        let parent = inventory
            .namespaces
            .get(key)
            .and_then(up)
            .filter(|p| included.contains(p));
        children.entry(parent).or_default().push(*key);
    }
    // User namespaces last among siblings, so that their subtrees follow the
    // plain namespaces they sit beside.
    for list in children.values_mut() {
        list.sort_by_key(|k| (k.ty == NsType::User, *k));
    }
    let roots = children.get(&None).cloned().unwrap_or_default();
    for root in roots {
        write_node(out, inventory, &children, root, "", None)?;
    }
    Ok(())
}

fn write_node(
    out: &mut impl Write,
    inventory: &Inventory,
    children: &BTreeMap<Option<NsKey>, Vec<NsKey>>,
    key: NsKey,
    prefix: &str,
    last: Option<bool>,
) -> io::Result<()> {
    let (branch, next_prefix) = match last {
        None => (String::new(), String::new()),
        Some(true) => (format!("{prefix}└─"), format!("{prefix}  ")),
        Some(false) => (format!("{prefix}├─"), format!("{prefix}│ ")),
    };
    writeln!(out, "{branch}{}", escape(&describe(inventory, key)))?;
    let kids = children.get(&Some(key)).map(Vec::as_slice).unwrap_or_default();
    for (i, kid) in kids.iter().enumerate() {
        write_node(out, inventory, children, *kid, &next_prefix, Some(i + 1 == kids.len()))?;
    }
    Ok(())
}

/// Returns one line about a namespace: key, state, processes and first
/// command, or its holders when it has no process.
fn describe(inventory: &Inventory, key: NsKey) -> String {
    let Some(ns) = inventory.namespaces.get(&key) else {
        return key.to_string();
    };
    let mut line = key.to_string();
    if let Some(id) = ns.id {
        line.push_str(&format!(" id {id}"));
    }
    line.push_str(&format!(" {}", ns.state.name()));
    let pids = ns.pids(&inventory.tasks);
    if let Some(first) = inventory.first_task(key) {
        let noun = if pids.len() == 1 { "process" } else { "processes" };
        line.push_str(&format!(
            ", {} {noun}: {} {}",
            pids.len(),
            first.pid,
            super::command(first)
        ));
    } else if matches!(ns.state, NsState::Pinned | NsState::Hidden) {
        line.push_str(&format!(", held by {}", super::columns::holders(&ns.holders)));
    }
    line
}
