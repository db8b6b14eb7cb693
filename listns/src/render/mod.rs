//! Output: the per-process view, the namespace table, trees and JSON.

pub mod columns;
pub mod escape;
pub mod json;
pub mod processes;
pub mod table;
pub mod tree;

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;

use crate::model::Task;

/// Returns the command a task runs, unescaped: the command line, or the
/// thread name in brackets for kernel threads, zombies and other tasks
/// without one (as `ps` shows them). A thread other than the main thread is
/// named as such, because its TID is not in the PID column.
pub fn command(task: &Task) -> String {
    if !task.is_leader() {
        return format!(
            "thread {} of PID {}: {}",
            task.tid,
            task.pid,
            task.comm.as_deref().unwrap_or("?")
        );
    }
    if !task.cmdline.is_empty() {
        return task.cmdline.join(" ");
    }
    match &task.comm {
        Some(comm) => format!("[{comm}]"),
        None => String::new(),
    }
}

/// Returns the tags shown after a task in human output: `[kthread]`,
/// `[zombie]`, and the container runtime, e.g. `[docker]` or `[k8s]`.
pub fn tags(task: &Task) -> Vec<&'static str> {
    let mut tags = Vec::new();
    if task.kthread {
        tags.push("kthread");
    }
    if task.zombie {
        tags.push("zombie");
    }
    if let Some(container) = &task.container {
        tags.push(container.tag());
    }
    tags
}

thread_local! {
    static USER_NAMES: RefCell<HashMap<u32, Option<String>>> = RefCell::new(HashMap::new());
}

/// Returns the user name of a UID through the system's user database (NSS),
/// cached per UID.
pub fn user_name(uid: u32) -> Option<String> {
    USER_NAMES.with(|cache| {
        cache
            .borrow_mut()
            .entry(uid)
            .or_insert_with(|| lookup_user(uid))
            .clone()
    })
}

fn lookup_user(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero passwd is a valid out-parameter for getpwuid_r.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to live, writable memory of the stated size.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`.
    let name = unsafe { CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// Reports on stderr what could not be inspected, so nothing is lost silently.
pub fn report_problems(inventory: &crate::inventory::Inventory) {
    if !inventory.problems.is_empty() {
        let denied = inventory.problems.count(crate::problems::Reason::PermissionDenied);
        eprint!(
            "listns: some tasks or files could not be inspected:\n{}",
            inventory.problems
        );
        if denied > 0 && !inventory.privileged {
            eprintln!(
                "listns: not running as root, so namespaces of other users' processes may be missing; run `sudo listns` for the complete inventory"
            );
        }
    } else if !inventory.privileged {
        eprintln!(
            "listns: not running as root: bind mounts in other mount namespaces and other users' fds may be missing; run `sudo listns` for the complete inventory"
        );
    }
}
