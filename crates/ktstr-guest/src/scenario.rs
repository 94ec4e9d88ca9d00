//! Running a host-declared scenario in the guest.
//!
//! Init (PID 1) reaps every child it has, which would race the workload
//! runner's own `waitpid` on its workers, so the scenario runs in a child:
//! init writes the spec to a file and starts its own executable with
//! [`SCENARIO_ENV`] naming it; the `.init_array` hook sees that variable and
//! runs [`child_main`] instead of `main`. The child writes the
//! `ScenarioReport` as JSON to the report file and exits; init replies with
//! that JSON.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ktstr_topology::GuestTopology;
use ktstr_workload::{RunOptions, Scenario, run_scenario};

use crate::proto::{ProcExit, Reply};
use crate::reaper;

/// Names the spec file; set only on the scenario child.
pub const SCENARIO_ENV: &str = "KTSTR_SCENARIO";

fn files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join("ktstr-scenario.json"),
        dir.join("ktstr-report.json"),
        dir.join("ktstr-scenario.err"),
    )
}

/// Init side: run `scenario` in a child and reply with its report.
pub fn run(scenario: &Scenario) -> Reply {
    match run_in_child(scenario, Path::new("/tmp")) {
        Ok(report) => Reply::Scenario { report },
        Err(message) => Reply::Error { message },
    }
}

fn run_in_child(scenario: &Scenario, dir: &Path) -> Result<String, String> {
    let (spec, report, errors) = files(dir);
    let json = serde_json::to_vec(scenario).map_err(|e| format!("encode scenario: {e}"))?;
    std::fs::write(&spec, json).map_err(|e| format!("write {}: {e}", spec.display()))?;
    let _ = std::fs::remove_file(&report);
    let stderr = std::fs::File::create(&errors).map_err(|e| format!("create stderr: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.env(SCENARIO_ENV, &spec)
        .env_remove(crate::init::INIT_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    let child = reaper::spawn(&mut cmd).map_err(|e| format!("start scenario child: {e}"))?;
    let allowed = Duration::from_millis(ktstr_workload::protocol::suggested_timeout_ms(scenario));
    let status = match reaper::wait(child.pid, Instant::now() + allowed) {
        Some(s) => s,
        None => {
            reaper::kill(i32::try_from(child.pid).unwrap_or(i32::MAX), libc::SIGKILL);
            let err = std::fs::read_to_string(&errors).unwrap_or_default();
            return Err(format!(
                "scenario {:?} did not finish within its time (steps plus teardown, {} ms); \
                 its stderr: {}",
                scenario.name,
                allowed.as_millis(),
                err.trim()
            ));
        }
    };
    let exit = ProcExit::from_wait_status(status);
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    if exit.code == Some(0) && !text.is_empty() {
        return Ok(text);
    }
    let err = std::fs::read_to_string(&errors).unwrap_or_default();
    Err(format!(
        "scenario {:?} failed ({exit:?}): {}",
        scenario.name,
        err.trim()
    ))
}

/// Child side: read the spec, run it, write the report; never returns.
pub fn child_main(spec: &Path) -> ! {
    let code = match child_run(spec) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            2
        }
    };
    std::process::exit(code)
}

fn child_run(spec: &Path) -> Result<(), String> {
    let bytes = std::fs::read(spec).map_err(|e| format!("read {}: {e}", spec.display()))?;
    let scenario: Scenario =
        serde_json::from_slice(&bytes).map_err(|e| format!("decode scenario: {e}"))?;
    let topo =
        GuestTopology::from_sysfs(Path::new("/sys")).map_err(|e| format!("topology: {e}"))?;
    let report = run_scenario(&scenario, &topo, &RunOptions::default())
        .map_err(|e| format!("run {:?}: {e}", scenario.name))?;
    let json = serde_json::to_vec(&report).map_err(|e| format!("encode report: {e}"))?;
    let (_, out, _) = files(spec.parent().unwrap_or(Path::new("/tmp")));
    std::fs::write(&out, json).map_err(|e| format!("write {}: {e}", out.display()))
}
