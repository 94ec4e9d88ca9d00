//! Running a host-declared scenario in the guest.
//!
//! Init (PID 1) reaps every child it has, which would race the workload
//! runner's own `waitpid` on its workers, so the scenario runs in a child:
//! init writes the spec to a file and starts its own executable with
//! [`SCENARIO_ENV`] naming it; the `.init_array` hook sees that variable and
//! runs [`child_main`] instead of `main`. The child writes the
//! `ScenarioReport` as JSON to the report file and exits; init replies with
//! that JSON.
//!
//! The first child is started ahead of its request ([`prepare`], before
//! `SysReady`, so it is in every snapshot) and waits for end-of-file on its
//! stdin, which init gives by closing the pipe's other end once the spec is
//! written; later requests in the same guest start theirs on demand.
//! Starting this executable costs ~0.2 s of emulated guest time after a
//! snapshot restore (loading and relocating a large test binary); ahead of
//! time it is off the test's path. Closing rather than writing means init
//! never meets `SIGPIPE` if the child died meanwhile: then [`run`] starts
//! a new one.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
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

/// Where init keeps the spec, the report and the child's stderr.
const DIR: &str = "/tmp";

/// A scenario child started ahead of its request, waiting for `go` to close.
struct Standby {
    pid: u32,
    go: OwnedFd,
}

static STANDBY: Mutex<Option<Standby>> = Mutex::new(None);

/// Init side: start a scenario child now, so that the first request finds
/// it running. A failure is left for [`run`] to meet and report.
pub fn prepare() {
    let standby = start_child(Path::new(DIR));
    let mut slot = STANDBY.lock().unwrap_or_else(|e| e.into_inner());
    *slot = standby.ok();
}

/// Init side: run `scenario` in the waiting child (or a new one) and reply
/// with its report. No child is started for a next request: a test runs
/// one scenario per guest, and starting one here would compete with the
/// scheduler's stop that follows (it made that phase ~0.1 s longer).
pub fn run(scenario: &Scenario) -> Reply {
    let standby = STANDBY.lock().unwrap_or_else(|e| e.into_inner()).take();
    match run_in_child(scenario, Path::new(DIR), standby) {
        Ok(report) => Reply::Scenario { report },
        Err(message) => Reply::Error { message },
    }
}

/// Starts this executable as a scenario child that waits for end-of-file on
/// its stdin before it reads the spec.
fn start_child(dir: &Path) -> Result<Standby, String> {
    let (spec, _, errors) = files(dir);
    let (wait, go) = pipe().map_err(|e| format!("pipe for the scenario child: {e}"))?;
    let stderr = std::fs::File::create(&errors).map_err(|e| format!("create stderr: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.env(SCENARIO_ENV, &spec)
        .env_remove(crate::init::INIT_ENV)
        .stdin(Stdio::from(wait))
        .stdout(Stdio::null())
        .stderr(stderr);
    let child = reaper::spawn(&mut cmd).map_err(|e| format!("start scenario child: {e}"))?;
    Ok(Standby { pid: child.pid, go })
}

/// A close-on-exec pipe: (read end, write end). Only init keeps the write
/// end, so its close is the child's end-of-file.
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are open descriptors owned by no one else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn run_in_child(
    scenario: &Scenario,
    dir: &Path,
    standby: Option<Standby>,
) -> Result<String, String> {
    let (spec, report, errors) = files(dir);
    // A child that exited while waiting (killed by an earlier test's
    // exec, say) is replaced.
    let child = match standby {
        Some(s) if reaper::try_status(s.pid).is_none() => s,
        _ => start_child(dir)?,
    };
    let json = serde_json::to_vec(scenario).map_err(|e| format!("encode scenario: {e}"))?;
    std::fs::write(&spec, json).map_err(|e| format!("write {}: {e}", spec.display()))?;
    let _ = std::fs::remove_file(&report);
    let allowed = Duration::from_millis(ktstr_workload::protocol::suggested_timeout_ms(scenario));
    let Standby { pid, go } = child;
    drop(go);
    let status = match reaper::wait(pid, Instant::now() + allowed) {
        Some(s) => s,
        None => {
            reaper::kill(i32::try_from(pid).unwrap_or(i32::MAX), libc::SIGKILL);
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
    let sysfs = Path::new("/sys");
    // Read ahead of the request (so, for the first, inside the snapshot): a
    // guest's topology follows from which CPUs are online and from what
    // does not change at run time (caches, nodes), so it still holds if
    // `online` reads the same once the spec has come.
    let online = || std::fs::read(sysfs.join("devices/system/cpu/online")).ok();
    let ahead = (online(), GuestTopology::from_sysfs(sysfs).ok());
    // Init closes the pipe once the spec is written (stdin is never a
    // terminal or a file here).
    let mut go = [0u8; 1];
    while std::io::Read::read(&mut std::io::stdin(), &mut go)
        .map_err(|e| format!("wait for the spec: {e}"))?
        > 0
    {}
    let bytes = std::fs::read(spec).map_err(|e| format!("read {}: {e}", spec.display()))?;
    let scenario: Scenario =
        serde_json::from_slice(&bytes).map_err(|e| format!("decode scenario: {e}"))?;
    let topo = match ahead {
        (Some(before), Some(topo)) if online().as_ref() == Some(&before) => topo,
        _ => GuestTopology::from_sysfs(sysfs).map_err(|e| format!("topology: {e}"))?,
    };
    let report = run_scenario(&scenario, &topo, &RunOptions::default())
        .map_err(|e| format!("run {:?}: {e}", scenario.name))?;
    let json = serde_json::to_vec(&report).map_err(|e| format!("encode report: {e}"))?;
    let (_, out, _) = files(spec.parent().unwrap_or(Path::new("/tmp")));
    std::fs::write(&out, json).map_err(|e| format!("write {}: {e}", out.display()))
}
