//! Times a command inside L1 for `ktstr-nested-figures`:
//!
//! ```text
//! ktstr-nested-stopwatch NAME RUNS MARK -- COMMAND [ARGS]...
//! ```
//! Runs COMMAND RUNS times, one after another. A run's time is from its
//! spawn to the first stdout line containing MARK (the command is then
//! killed), or to its exit when MARK is `-`. Prints a `NESTED-FIGURE` line
//! per run and one with the median (see `ktstr_nested::markers::FIGURE`);
//! a run that fails (MARK never seen, or a non-zero exit) is not counted
//! and its output's tail is printed.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use ktstr_nested::markers::FIGURE;

/// Output lines kept to show why a run failed.
const TAIL_LINES: usize = 30;

/// How one run ended.
struct Run {
    ms: u128,
    ok: bool,
    /// The line that carried MARK (it says what the guest saw, e.g. its CPUs).
    marked_line: Option<String>,
    tail: Vec<String>,
}

fn time_once(mark: Option<&str>, command: &[String]) -> std::io::Result<Run> {
    let started = Instant::now();
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut tail = Vec::new();
    let mut marked = None;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line.unwrap_or_default();
            if mark.is_some_and(|m| line.contains(m)) {
                marked = Some((started.elapsed(), line));
                break;
            }
            if tail.len() == TAIL_LINES {
                tail.remove(0);
            }
            tail.push(line);
        }
    }
    if marked.is_some() {
        // Past the mark the run is measured; what the guest does next is not.
        let _ = child.kill();
    }
    let status = child.wait()?;
    let ok = match mark {
        Some(_) => marked.is_some(),
        None => status.success(),
    };
    let (elapsed, marked_line) = match marked {
        Some((at, line)) => (at, Some(line)),
        None => (started.elapsed(), None),
    };
    Ok(Run {
        ms: elapsed.as_millis(),
        ok,
        marked_line,
        tail,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(name), Some(Ok(runs)), Some(mark), Some("--")) = (
        args.first(),
        args.get(1).map(|r| r.parse::<usize>()),
        args.get(2),
        args.get(3).map(String::as_str),
    ) else {
        eprintln!("usage: ktstr-nested-stopwatch NAME RUNS MARK -- COMMAND [ARGS]...");
        return ExitCode::from(2);
    };
    let command = &args[4..];
    if command.is_empty() {
        eprintln!("ktstr-nested-stopwatch: no command");
        return ExitCode::from(2);
    }
    let mark = (mark != "-").then_some(mark.as_str());
    let mut times = Vec::new();
    let mut failed = 0;
    for i in 1..=runs {
        match time_once(mark, command) {
            Ok(run) => {
                println!(
                    "{FIGURE} {name} run={i} ms={} ok={} {}",
                    run.ms,
                    run.ok,
                    run.marked_line.as_deref().unwrap_or_default()
                );
                if run.ok {
                    times.push(run.ms);
                } else {
                    failed += 1;
                    for line in &run.tail {
                        println!("{FIGURE} {name} run={i} output| {line}");
                    }
                }
            }
            Err(e) => {
                failed += 1;
                println!("{FIGURE} {name} run={i} ok=false spawn: {e}");
            }
        }
    }
    let listed: Vec<String> = times.iter().map(u128::to_string).collect();
    times.sort_unstable();
    let median = times
        .get(times.len() / 2)
        .map_or("none".to_owned(), u128::to_string);
    println!(
        "{FIGURE} {name} median_ms={median} runs_ms={} failed={failed}",
        listed.join(",")
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
