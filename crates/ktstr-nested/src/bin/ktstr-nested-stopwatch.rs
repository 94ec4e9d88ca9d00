//! Times a command inside L1 for `ktstr-nested-figures`:
//!
//! ```text
//! ktstr-nested-stopwatch NAME RUNS MARK -- COMMAND [ARGS]...
//! ```
//! Runs COMMAND RUNS times, one after another. A run's time is from its
//! spawn to the first stdout line containing MARK (the command is then
//! killed), or to its exit when MARK is `-`. Prints a `NESTED-FIGURE` line
//! per run and one with the median (see `ktstr_nested::markers::FIGURE`);
//! a run that fails (MARK never seen, a non-zero exit, or still running
//! after `RUN_TIMEOUT`) is not counted
//! and its output's tail is printed.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use ktstr_nested::markers::FIGURE;

/// Output lines kept to show why a run failed.
const TAIL_LINES: usize = 30;
/// A run still going after this is killed and counted as failed, so one
/// hang costs one run, not the whole L1 deadline.
const RUN_TIMEOUT: Duration = Duration::from_secs(400);

/// How one run ended.
struct Run {
    ms: u128,
    ok: bool,
    /// The line that carried MARK (it says what the guest saw, e.g. its CPUs).
    marked_line: Option<String>,
    timed_out: bool,
    tail: Vec<String>,
}

fn time_once(mark: Option<&str>, command: &[String]) -> std::io::Result<Run> {
    let started = Instant::now();
    // stderr stays L1's console, so a slow run shows what it is doing.
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let (tx, lines) = channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
    }
    let mut tail = Vec::new();
    let mut marked = None;
    let mut timed_out = false;
    loop {
        let left = RUN_TIMEOUT.saturating_sub(started.elapsed());
        match lines.recv_timeout(left) {
            Ok(line) if mark.is_some_and(|m| line.contains(m)) => {
                marked = Some((started.elapsed(), line));
                break;
            }
            Ok(line) => {
                if tail.len() == TAIL_LINES {
                    tail.remove(0);
                }
                tail.push(line);
            }
            Err(RecvTimeoutError::Timeout) => {
                timed_out = true;
                tail.push(format!("killed after {RUN_TIMEOUT:?}"));
                break;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if marked.is_some() || timed_out {
        // Past the mark the run is measured; what the guest does next is not.
        let _ = child.kill();
    }
    let status = child.wait()?;
    let ok = match mark {
        Some(_) => marked.is_some(),
        None => status.success() && !timed_out,
    };
    let (elapsed, marked_line) = match marked {
        Some((at, line)) => (at, Some(line)),
        None => (started.elapsed(), None),
    };
    Ok(Run {
        ms: elapsed.as_millis(),
        ok,
        marked_line,
        timed_out,
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
                    if run.timed_out {
                        // The next run would most likely hang the same way.
                        break;
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
