//! Command-line interface: one clap definition with the help text of every
//! flag. lsns users will recognise `-J`, `-r`, `-n`, `-o`, `-t`, `-p`, `-T`.

use clap::{ArgAction, Parser, ValueEnum};

use crate::follow::Backend;
use crate::inventory::Route;
use crate::model::NsType;
use crate::render::columns::{self, Column};
use crate::render::tree::TreeKind;

/// A namespace type as the user names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TypeArg {
    Cgroup,
    Ipc,
    Mnt,
    Net,
    Pid,
    Time,
    User,
    Uts,
}

impl From<TypeArg> for NsType {
    fn from(t: TypeArg) -> NsType {
        match t {
            TypeArg::Cgroup => NsType::Cgroup,
            TypeArg::Ipc => NsType::Ipc,
            TypeArg::Mnt => NsType::Mnt,
            TypeArg::Net => NsType::Net,
            TypeArg::Pid => NsType::Pid,
            TypeArg::Time => NsType::Time,
            TypeArg::User => NsType::User,
            TypeArg::Uts => NsType::Uts,
        }
    }
}

fn after_help() -> String {
    format!(
        "{}\nBy default listns prints one row per process and non-default namespace, with `--` rows for what\n\
         holds a namespace besides its tasks and `**` on network namespaces that have an `ip netns` name.\n\
         Run it as root for the complete inventory; without root it lists what it can see and says what it could not.",
        columns::help_text()
    )
}

#[derive(Debug, Parser)]
#[command(
    name = "listns",
    version,
    about = "List every Linux namespace on this host and what holds it alive",
    after_help = after_help(),
)]
pub struct Cli {
    /// Print one row per namespace, like lsns, instead of one row per process and namespace.
    #[arg(short = 'l', long)]
    pub list: bool,

    /// Columns of the namespace table, comma-separated (see the list below); implies --list.
    #[arg(short = 'o', long = "columns", value_name = "LIST", value_delimiter = ',', value_parser = columns::parse)]
    pub columns: Option<Vec<&'static Column>>,

    /// Print every column of the namespace table; implies --list.
    #[arg(long = "output-all", conflicts_with = "columns")]
    pub output_all: bool,

    /// Do not print a header line.
    #[arg(short = 'n', long)]
    pub noheadings: bool,

    /// Raw output: columns separated by one space, white space in values escaped as \x20.
    #[arg(short = 'r', long)]
    pub raw: bool,

    /// Print the whole inventory as JSON (schema in docs/json-schema.md).
    #[arg(short = 'J', long, conflicts_with_all = ["raw", "noheadings", "columns", "output_all", "tree", "list"])]
    pub json: bool,

    /// Only namespaces of these types (comma-separated or repeated).
    #[arg(short = 't', long = "type", value_name = "TYPE", value_enum, value_delimiter = ',', action = ArgAction::Append)]
    pub types: Vec<TypeArg>,

    /// Only the namespaces of the process with this PID (including its default ones).
    #[arg(short = 'p', long = "task", value_name = "PID", allow_negative_numbers = true, value_parser = parse_pid)]
    pub pid: Option<i32>,

    /// Print a tree of namespaces by owner (user namespaces) or parent (pid and user namespaces).
    #[arg(short = 'T', long, value_name = "RELATION", value_enum, num_args = 0..=1, default_missing_value = "owner", conflicts_with_all = ["list", "columns", "output_all"])]
    pub tree: Option<TreeKind>,

    /// Also list the default (initial) namespaces in the per-process view; the namespace table, trees and JSON always include them.
    #[arg(short = 'a', long, conflicts_with = "hidden")]
    pub all: bool,

    /// Only namespaces that no task is in: pinned by bind mounts, fds, sockets or child namespaces.
    #[arg(long)]
    pub hidden: bool,

    /// After the snapshot, print every namespace change as it happens, until Ctrl-C or SIGTERM.
    #[arg(short = 'f', long, conflicts_with_all = ["tree", "list", "columns", "output_all"])]
    pub follow: bool,

    /// Source of the changes --follow reports: eBPF tracepoints, polling snapshots, or auto (eBPF where possible).
    #[arg(long, value_enum, default_value = "auto", requires = "follow")]
    pub backend: Backend,

    /// Seconds between two snapshots of the polling backend.
    #[arg(long, value_name = "SECONDS", default_value = "1", allow_negative_numbers = true, value_parser = parse_interval, requires = "follow")]
    pub interval: std::time::Duration,

    /// Also append every event as a JSON line to FILE (an incident log), flushed per event.
    #[arg(long, value_name = "FILE", requires = "follow")]
    pub output: Option<std::path::PathBuf>,

    /// Route by which the snapshot reads tasks and fds: iter reads them inside the kernel through BPF iterators (needs root and kernel BTF), proc reads /proc; auto (the default) takes iter where it can run and falls back to proc, and -v logs why.
    #[arg(long, value_enum, default_value = "auto")]
    pub route: Route,

    /// Log more about each source on stderr (-v info, -vv debug); RUST_LOG overrides it.
    #[arg(short = 'v', long, action = ArgAction::Count)]
    pub verbose: u8,
}

/// Parses `-p`: a process ID as `ps` prints it.
fn parse_pid(text: &str) -> Result<i32, String> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected a process ID such as 1234; `ps -e` lists them".into());
    }
    if text.starts_with('-') || digits.bytes().all(|b| b == b'0') {
        return Err("a PID is a positive number; `ps -e` lists them".into());
    }
    text.parse::<i32>()
        .map_err(|_| format!("{text} is larger than any PID; `ps -e` lists them"))
}

/// Parses `--interval`: a positive number of seconds, fractions allowed.
fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| "expected a number of seconds, e.g. 1 or 0.5".to_string())?;
    if !(0.01..=3600.0).contains(&seconds) {
        return Err("expected between 0.01 and 3600 seconds".into());
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

impl Cli {
    /// Returns the types selected with `-t`, or every type.
    pub fn selected_types(&self) -> Vec<NsType> {
        if self.types.is_empty() {
            NsType::ALL.to_vec()
        } else {
            self.types.iter().map(|&t| t.into()).collect()
        }
    }

    /// Returns whether the namespace table is requested.
    pub fn wants_table(&self) -> bool {
        self.list || self.columns.is_some() || self.output_all
    }
}
