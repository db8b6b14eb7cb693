//! Times the BPF iterator walks, as root: `cargo run --release --example
//! iter_walks [RUNS]`. It loads the iterators once, then runs the task,
//! file and command-line walks alone, one after another, RUNS times
//! (default 20), and then RUNS reads as a snapshot takes them (task and file
//! walks in parallel). It prints the minimum and median time of each.

use std::time::Duration;

use anyhow::Context;
use listns::discover::iter::Iterators;

fn main() -> anyhow::Result<()> {
    let runs: usize = match std::env::args().nth(1) {
        Some(text) => text
            .parse()
            .with_context(|| format!("invalid number of runs {text:?}: expected a positive integer"))?,
        None => 20,
    };
    anyhow::ensure!(runs > 0, "the number of runs must be at least 1");
    let mut iterators = Iterators::load()?;
    println!("load: {:.1} ms", iterators.load_time.as_secs_f64() * 1e3);
    for (walk, name) in ["tasks", "files", "command lines"].into_iter().enumerate() {
        let mut times: Vec<Duration> = Vec::with_capacity(runs);
        let mut bytes = 0;
        for _ in 0..runs {
            let (output, time) = iterators.walk_alone(walk)?;
            bytes = output.len();
            times.push(time);
        }
        times.sort_unstable();
        println!(
            "{name}: min {:.2} ms, median {:.2} ms, {bytes} bytes",
            times[0].as_secs_f64() * 1e3,
            times[runs / 2].as_secs_f64() * 1e3
        );
    }
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    for _ in 0..runs {
        let read = iterators.read()?;
        times.push(read.read_time);
        // Waits for the command-line walk, so that it does not overlap the next read.
        let mut found = listns::discover::Found::default();
        listns::discover::iter::add_cmdlines(&mut found, read.cmdlines);
    }
    times.sort_unstable();
    println!(
        "read (tasks and files in parallel): min {:.2} ms, median {:.2} ms",
        times[0].as_secs_f64() * 1e3,
        times[runs / 2].as_secs_f64() * 1e3
    );
    Ok(())
}
