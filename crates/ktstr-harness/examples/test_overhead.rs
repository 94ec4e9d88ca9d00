//! Issue 18's figures: what a warm `#[ktstr_test]` costs beyond its scenario,
//! phase by phase. Runs one test of a `test_main` test binary (by default the
//! newest `target/debug/deps/schedulers-*`, i.e. `tests/schedulers.rs`) as
//! its own process N times after one warm-up run (which may boot and take
//! the snapshot), and prints per run and as medians: the process's wall
//! time, the scenario's own `wall_ms` (from the test's JSON), their
//! difference (the overhead), and the phases the runner wrote into the JSON.
//!
//! ```sh
//! cargo test --test schedulers --no-run
//! KTSTR_BACKEND=qemu-tcg cargo run -p ktstr-harness --example test_overhead -- \
//!     --test scx_simple_two_cgroups --runs 5 [BINARY ...]
//! ```
//!
//! Several binaries (e.g. one built from an older commit, copied aside) run
//! in turn, A B A B ..., so a before/after comparison shares the machine's
//! load; a binary whose JSON has no `"phases"` shows only its totals.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use ktstr_harness::test::Phase;
use serde_json::Value;

struct Run {
    /// The verdict failed (under load a fairness check can): its timings still count.
    failed: bool,
    wall_ms: f64,
    scenario_ms: f64,
    phases: Option<Value>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The newest `schedulers-*` test executable under `target/debug/deps`.
fn default_binary() -> anyhow::Result<PathBuf> {
    let deps = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/deps");
    let newest = std::fs::read_dir(&deps)
        .with_context(|| format!("read {}", deps.display()))?
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("schedulers-") && !n.contains('.')
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max();
    match newest {
        Some((_, p)) => Ok(p),
        None => bail!(
            "no schedulers test binary in {}: run `cargo test --test schedulers --no-run`",
            deps.display()
        ),
    }
}

/// `<target>/ktstr/<test>.json` for a binary under `<target>/…`.
fn result_json(binary: &Path, test: &str) -> anyhow::Result<PathBuf> {
    let target = binary
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .with_context(|| format!("{} is not under a target directory", binary.display()))?;
    Ok(target
        .join("ktstr")
        .join(format!("{}.json", test.replace('/', "__"))))
}

fn run_once(binary: &Path, test: &str) -> anyhow::Result<Run> {
    let json = result_json(binary, test)?;
    let _ = std::fs::remove_file(&json);
    let started = Instant::now();
    let out = Command::new(binary)
        .args([test, "--exact", "--test-threads", "1"])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {}", binary.display()))?;
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
    // A test that could not run writes no JSON; one whose verdict failed does.
    let Ok(bytes) = std::fs::read(&json) else {
        bail!(
            "{} {test} wrote no {}:\n{}{}",
            binary.display(),
            json.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let v: Value = serde_json::from_slice(&bytes)?;
    let scenario_ms = v["report"]["wall_ms"]
        .as_f64()
        .with_context(|| format!("no report.wall_ms in {}", json.display()))?;
    Ok(Run {
        failed: !out.status.success(),
        wall_ms,
        scenario_ms,
        phases: v.get("phases").cloned(),
    })
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut test, mut runs, mut binaries) = ("scx_simple_two_cgroups".to_string(), 5, vec![]);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--test" => test = args.next().context("--test needs a name")?,
            "--runs" => runs = args.next().context("--runs needs a number")?.parse()?,
            _ => binaries.push(PathBuf::from(a)),
        }
    }
    if binaries.is_empty() {
        binaries.push(default_binary()?);
    }
    for b in &binaries {
        run_once(b, &test).with_context(|| format!("warm-up of {}", b.display()))?;
    }
    let mut results: Vec<Vec<Run>> = binaries.iter().map(|_| Vec::new()).collect();
    for i in 0..runs {
        for (b, r) in binaries.iter().zip(&mut results) {
            let run = run_once(b, &test)?;
            println!(
                "run {i} {}: wall {:.0} ms, scenario {:.0} ms, overhead {:.0} ms{}",
                b.display(),
                run.wall_ms,
                run.scenario_ms,
                run.wall_ms - run.scenario_ms,
                if run.failed { " (verdict failed)" } else { "" }
            );
            r.push(run);
        }
    }
    println!("\n{test}: medians of {runs} warm runs, one process each");
    for (b, r) in binaries.iter().zip(&results) {
        let m = |f: &dyn Fn(&Run) -> f64| median(r.iter().map(f).collect());
        println!(
            "{} ({} of {runs} verdicts failed)\n  process wall {:.0} ms, scenario wall_ms {:.0} ms, overhead (wall - scenario) {:.0} ms",
            b.display(),
            r.iter().filter(|x| x.failed).count(),
            m(&|x| x.wall_ms),
            m(&|x| x.scenario_ms),
            m(&|x| x.wall_ms - x.scenario_ms)
        );
        if r.iter().all(|x| x.phases.is_none()) {
            println!("  (no phases in its JSON)");
            continue;
        }
        println!("  {:<22} {:>9}", "phase", "median ms");
        let keys = std::iter::once("process_start")
            .chain(Phase::ALL.iter().map(|p| p.name()))
            .chain(["total", "scenario_wall", "overhead"])
            .map(|k| format!("{k}_ms"));
        for key in keys {
            let v = m(&|x| {
                x.phases
                    .as_ref()
                    .and_then(|p| p[key.as_str()].as_f64())
                    .unwrap_or(f64::NAN)
            });
            println!("  {:<22} {v:>9.0}", key.trim_end_matches("_ms"));
        }
    }
    Ok(())
}
