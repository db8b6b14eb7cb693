//! Writing events: one escaped line per event for people, JSON Lines for
//! machines, and the `--output FILE` incident log.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::event::{Event, NsRef, TaskInfo};
use crate::render::escape::escape;
use crate::render::json::{SCHEMA_VERSION, rfc3339};

/// Returns a namespace reference as JSON.
fn ns_json(ns: &NsRef) -> Value {
    json!({"type": ns.key.ty.name(), "inode": ns.key.inode, "id": ns.id})
}

/// Returns one event as a JSON object, in the schema of the snapshot.
pub fn event_json(event: &Event) -> Value {
    let task = event.task.as_ref();
    json!({
        "schema": "listns.event",
        "schema_version": SCHEMA_VERSION,
        "time": rfc3339(event.time),
        "event": event.kind.name(),
        "origin": event.origin.name(),
        "ns": event.ns.as_ref().map(ns_json),
        "pid": task.map(|t| t.pid),
        "tid": task.map(|t| t.tid),
        "ppid": task.map(|t| t.ppid),
        "uid": task.and_then(|t| t.uid),
        "comm": task.and_then(|t| t.comm.as_deref()),
        "cmdline": task.map(|t| t.cmdline.clone()),
        "container": task.and_then(|t| t.container.as_ref()).map(|c| json!({"runtime": c.runtime.name(), "id": c.id, "pod_uid": c.pod_uid})),
        "syscall": event.syscall,
        "flags": event.flags,
        "from": event.from.as_ref().map(ns_json),
        "to": event.to.as_ref().map(ns_json),
        "holders": event.holders.iter().map(|h| json!({"kind": h.kind(), "text": h.to_string()})).collect::<Vec<_>>(),
        "count": event.count,
        "cause": event.cause.map(|cause| cause.name()),
    })
}

/// Formats the wall-clock time of an event for human output, with nanoseconds.
fn clock(time: SystemTime) -> String {
    let text = rfc3339(time);
    // `2026-12-04T20:45:04.123456789Z` -> `20:45:04.123456789`
    text.split_once('T')
        .map(|(_, t)| t.trim_end_matches('Z').to_string())
        .unwrap_or(text)
}

fn command(task: &TaskInfo) -> String {
    if !task.cmdline.is_empty() {
        task.cmdline.join(" ")
    } else {
        task.comm.as_ref().map(|c| format!("[{c}]")).unwrap_or_default()
    }
}

/// Returns one line for people, aligned with the per-process view:
/// `TIME EVENT PID Namespace Thread/Command (details)`. Text that a process
/// controls is escaped.
pub fn event_line(event: &Event) -> String {
    let pid = match &event.task {
        Some(t) if t.pid != t.tid => format!("{}", t.tid),
        Some(t) => t.pid.to_string(),
        None => "--".to_string(),
    };
    let ns = event.ns.map(|n| n.key.to_string()).unwrap_or_else(|| "-".into());
    let mut text = match &event.task {
        Some(t) if t.pid != t.tid => format!("thread {} of PID {}: {}", t.tid, t.pid, command(t)),
        Some(t) => command(t),
        None => String::new(),
    };
    let mut details = Vec::new();
    if let Some(syscall) = event.syscall {
        match event.flags {
            Some(flags) if flags != 0 => details.push(format!("{syscall} {}", flag_names(flags))),
            _ => details.push(syscall.to_string()),
        }
    }
    if let (Some(from), Some(to)) = (event.from, event.to) {
        details.push(format!("from {} to {}", from.key, to.key));
    }
    if !event.holders.is_empty() {
        let holders: Vec<String> = event.holders.iter().map(|h| h.to_string()).collect();
        details.push(holders.join("; "));
    }
    if let Some(count) = event.count {
        details.push(format!("{count} kernel events dropped; rescanning"));
    }
    if let Some(cause) = event.cause {
        details.push(format!("cause {}", cause.name()));
    }
    if let Some(id) = event.ns.and_then(|n| n.id) {
        details.push(format!("id {id}"));
    }
    if !details.is_empty() {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&format!("({})", details.join(", ")));
    }
    format!(
        "{} {:<9} {:>7} {:<20} {}",
        clock(event.time),
        event.kind.name(),
        pid,
        ns,
        escape(&text)
    )
}

/// Names the `CLONE_NEW*` bits of a flag word, e.g. `CLONE_NEWNET|CLONE_NEWUTS`.
pub fn flag_names(flags: u64) -> String {
    const NAMES: [(u64, &str); 8] = [
        (0x0002_0000, "CLONE_NEWNS"),
        (0x0200_0000, "CLONE_NEWCGROUP"),
        (0x0400_0000, "CLONE_NEWUTS"),
        (0x0800_0000, "CLONE_NEWIPC"),
        (0x1000_0000, "CLONE_NEWUSER"),
        (0x2000_0000, "CLONE_NEWPID"),
        (0x4000_0000, "CLONE_NEWNET"),
        (0x0000_0080, "CLONE_NEWTIME"),
    ];
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        format!("{flags:#x}")
    } else {
        names.join("|")
    }
}

/// Destination of events: stdout as lines or JSON Lines, and an optional log file.
pub struct Sink<W: Write> {
    out: W,
    json: bool,
    log: Option<File>,
}

impl<W: Write> Sink<W> {
    pub fn new(out: W, json: bool, log: Option<File>) -> Self {
        Sink { out, json, log }
    }

    /// Writes one event. The log file gets the whole JSON line in one
    /// `write`, so a crash never leaves half a line, and is flushed per event.
    pub fn write(&mut self, event: &Event) -> io::Result<()> {
        let json_line = if self.json || self.log.is_some() {
            let mut line = serde_json::to_string(&event_json(event)).map_err(io::Error::other)?;
            line.push('\n');
            Some(line)
        } else {
            None
        };
        if let (Some(log), Some(line)) = (self.log.as_mut(), json_line.as_ref()) {
            log.write_all(line.as_bytes())?;
        }
        match (&json_line, self.json) {
            (Some(line), true) => self.out.write_all(line.as_bytes())?,
            _ => writeln!(self.out, "{}", event_line(event))?,
        }
        self.out.flush()
    }

    pub fn out(&mut self) -> &mut W {
        &mut self.out
    }
}

/// Opens the `--output` file for appending, creating it if needed.
pub fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}
