use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::Parser;

use listns::cli::Cli;
use listns::follow::FollowOptions;
use listns::inventory::{self, Inventory, Namespace};
use listns::model::NsState;
use listns::render::{self, columns, table::Layout};

/// Exit status for invalid command-line input, as clap uses it.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    if cli.follow {
        return follow(&cli);
    }

    let inventory = match inventory::scan_with(cli.route) {
        Ok(inventory) => inventory,
        Err(err) => {
            eprintln!("listns: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(pid) = cli.pid
        && let Err((code, message)) = check_pid(&inventory, pid)
    {
        // A wrong PID is the whole error. For unreadable namespaces, the
        // report explains the cause.
        if code != EXIT_USAGE {
            render::report_problems(&inventory);
        }
        eprintln!("listns: {message}");
        return ExitCode::from(code);
    }

    let shown = select(&cli, &inventory);
    let mut out = BufWriter::new(io::stdout().lock());
    let result = write(&mut out, &cli, &inventory, &shown).and_then(|()| out.flush());
    match result {
        Ok(()) => {}
        // A closed pipe (`listns | head`) is a normal way to stop reading.
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => return ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("listns: failed to write the output: {err}");
            return ExitCode::FAILURE;
        }
    }
    render::report_problems(&inventory);
    ExitCode::SUCCESS
}

/// Runs `--follow`: the snapshot in the chosen layout, then events.
fn follow(cli: &Cli) -> ExitCode {
    let log = match &cli.output {
        Some(path) => match listns::follow::output::open_log(path) {
            Ok(file) => Some(file),
            Err(err) => {
                eprintln!(
                    "listns: cannot open --output file {}: {err}; check the directory and its permissions",
                    path.display()
                );
                return ExitCode::from(EXIT_USAGE);
            }
        },
        None => None,
    };
    let options = FollowOptions {
        backend: cli.backend,
        route: cli.route,
        json: cli.json,
        interval: cli.interval,
        log,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("listns: failed to start the event loop: {err}");
            return ExitCode::FAILURE;
        }
    };
    let write_snapshot = |out: &mut dyn Write, inventory: &Inventory| {
        let shown = select(cli, inventory);
        if cli.json {
            let unfiltered = cli.types.is_empty() && cli.pid.is_none() && !cli.hidden;
            render::json::write(out, inventory, &shown, unfiltered, false)
        } else {
            render::processes::write(
                out,
                inventory,
                &shown,
                Layout {
                    noheadings: cli.noheadings,
                    raw: cli.raw,
                },
                cli.pid,
            )
        }
    };
    match runtime.block_on(listns::follow::run(options, write_snapshot)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("listns: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Checks the PID of `-p`: it must be a process whose namespaces were read.
fn check_pid(inventory: &Inventory, pid: i32) -> Result<(), (u8, String)> {
    let tasks: Vec<_> = inventory.tasks.iter().filter(|t| t.pid == pid).collect();
    if tasks.is_empty() {
        return Err(match inventory.tasks.iter().find(|t| t.tid == pid) {
            Some(thread) => (
                EXIT_USAGE,
                format!("{pid} is a thread of process {}; use -p {}", thread.pid, thread.pid),
            ),
            None => (
                EXIT_USAGE,
                format!("no process with PID {pid}: check the PID with `ps -p {pid}`"),
            ),
        });
    }
    if tasks.iter().all(|t| t.links.member.iter().all(|&inode| inode == 0)) {
        let zombie = tasks.iter().any(|t| t.zombie && t.is_leader());
        let why = if zombie {
            "it is a zombie, which has no namespaces left"
        } else {
            "see the report above"
        };
        return Err((1, format!("the namespaces of PID {pid} could not be read: {why}")));
    }
    Ok(())
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format(|out, record| {
            // Lines start with `listns:` like the tool's other messages. Debug
            // lines and lines of other crates also name their module.
            let level = match record.level() {
                log::Level::Error => "error: ",
                log::Level::Warn => "warning: ",
                log::Level::Info => "",
                log::Level::Debug => "debug: ",
                log::Level::Trace => "trace: ",
            };
            let target = record.target();
            if record.level() >= log::Level::Debug || !target.starts_with("listns") {
                writeln!(out, "listns: {level}[{target}] {}", record.args())
            } else {
                writeln!(out, "listns: {level}{}", record.args())
            }
        })
        .init();
}

/// Applies `-t`, `-p`, `--hidden` and `--all` to the inventory.
fn select<'a>(cli: &Cli, inventory: &'a Inventory) -> Vec<&'a Namespace> {
    let types = cli.selected_types();
    // The per-process view hides default namespaces unless asked; lsns-style
    // views and JSON list everything, as lsns does.
    let hide_defaults = !cli.all && cli.pid.is_none() && !cli.json && !cli.wants_table() && cli.tree.is_none();
    inventory
        .namespaces
        .values()
        .filter(|ns| types.contains(&ns.key.ty))
        .filter(|ns| !(hide_defaults && ns.state == NsState::Default))
        .filter(|ns| !cli.hidden || matches!(ns.state, NsState::Pinned | NsState::Hidden))
        .filter(|ns| match cli.pid {
            Some(pid) => {
                ns.tasks.iter().any(|&i| inventory.tasks[i].pid == pid)
                    || ns.holders.iter().any(|h| h.pid() == Some(pid))
            }
            None => true,
        })
        .collect()
}

fn write(out: &mut impl Write, cli: &Cli, inventory: &Inventory, shown: &[&Namespace]) -> io::Result<()> {
    let layout = Layout {
        noheadings: cli.noheadings,
        raw: cli.raw,
    };
    if cli.json {
        let unfiltered = cli.types.is_empty() && cli.pid.is_none() && !cli.hidden;
        return render::json::write(out, inventory, shown, unfiltered, true);
    }
    if let Some(kind) = cli.tree {
        return render::tree::write(out, inventory, shown, kind);
    }
    if cli.wants_table() {
        let cols = if cli.output_all {
            columns::COLUMNS.iter().collect()
        } else {
            cli.columns.clone().unwrap_or_else(columns::defaults)
        };
        return render::table::write(out, inventory, shown, &cols, layout);
    }
    render::processes::write(out, inventory, shown, layout, cli.pid)
}
