//! Issue 17's stress run: P processes × R sessions each at once under the
//! machine-wide VM slots (`KTSTR_MAX_VMS`), with the flake count, per-run
//! times and the usage of the driver and of each worker.
//!
//! `KTSTR_BACKEND=qemu-tcg cargo run --release -p ktstr-harness --example stress -- --procs 4 --runs 25`
//!
//! `--procs 1 --runs 100` gives the "100 VMs in one process" figure (worker
//! 0's usage before and after).

#[path = "../tests/common/stress.rs"]
mod stress;

use std::process::ExitCode;

fn arg(args: &[String], name: &str, default: usize) -> anyhow::Result<usize> {
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args
            .get(i + 1)
            .ok_or_else(|| anyhow::anyhow!("{name} needs a number"))?
            .parse()?),
        None => Ok(default),
    }
}

fn main() -> anyhow::Result<ExitCode> {
    if let Some(code) = stress::run_as_worker() {
        return Ok(code);
    }
    let args: Vec<String> = std::env::args().collect();
    let procs = arg(&args, "--procs", 4)?;
    let runs = arg(&args, "--runs", 25)?;
    let cache = tempfile::Builder::new().prefix("ktstr-stress-").tempdir()?;
    let report = stress::drive(&std::env::current_exe()?, cache.path(), procs, runs)?;
    print!("{report}");
    Ok(if report.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
