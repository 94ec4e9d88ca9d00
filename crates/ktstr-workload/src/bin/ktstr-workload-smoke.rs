//! `/init` for a throwaway guest that exercises the runner where the `cpu`
//! and `cpuset` controllers really exist (a guest kernel with a pure cgroup
//! v2 hierarchy), until `ktstr-guest` calls the runner itself. Used by
//! `tests/guest_qemu.rs`.
//!
//! As PID 1 it mounts proc/sysfs/cgroup2, runs a few catalogue scenarios
//! (step length from `ktstr.step_ms=` on the kernel command line, default
//! 1000), prints each verdict and table plus one `KTSTR-RESULT <json>` line,
//! checks nothing is left behind, and reboots (QEMU runs with -no-reboot, so
//! that ends the VM). Anywhere else it refuses to run.

use std::ffi::CString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ktstr_topology::GuestTopology;
use ktstr_workload::report::TestResult;
use ktstr_workload::{RunOptions, Scenario, Thresholds, catalogue, evaluate, run_scenario, scx};

type Res<T> = Result<T, String>;

fn mount(src: &str, target: &str, fstype: &str) -> Res<()> {
    std::fs::create_dir_all(target).map_err(|e| format!("mkdir {target}: {e}"))?;
    let c = |s: &str| CString::new(s).map_err(|_| format!("nul in {s:?}"));
    let (src, tgt, fs) = (c(src)?, c(target)?, c(fstype)?);
    // SAFETY: all pointers are valid NUL-terminated strings for the call.
    let r = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
    if r != 0 {
        return Err(format!(
            "mount {target}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn step_ms() -> u64 {
    std::fs::read_to_string("/proc/cmdline")
        .unwrap_or_default()
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ktstr.step_ms=")?.parse().ok())
        .unwrap_or(1000)
}

const SCX_SIMPLE: &str = "/bin/scx_simple";

/// Run one scenario, print its verdict, table and `KTSTR-RESULT` line, and
/// check no cgroup is left; true when it passed.
fn run_one(sc: &Scenario, test: &str, topo: &GuestTopology, t: &Thresholds) -> Res<bool> {
    let r = run_scenario(sc, topo, &RunOptions::default())
        .map_err(|e| format!("running {test}: {e}"))?;
    let v = evaluate(&r, t, None);
    print!("{}", v.render(test, "guest", &r));
    let passed = v.passed;
    let left: Vec<String> = std::fs::read_dir("/sys/fs/cgroup")
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ktstr-"))
        .collect();
    if !left.is_empty() {
        return Err(format!("left behind after {test}: {left:?}"));
    }
    let json =
        serde_json::to_string(&TestResult::new(test, "guest", v, r)).map_err(|e| e.to_string())?;
    println!("KTSTR-RESULT {json}");
    Ok(passed)
}

fn wait_state(want: &str, secs: u64) -> Res<()> {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if scx::sample(Path::new("/sys")).is_some_and(|s| s.state == want) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("sched_ext never reached {want:?} in {secs} s"))
}

/// scx_simple attached for a whole run (must pass), then detached by SIGINT
/// in the middle of a run (the verdict must say so).
fn sched_phases(topo: &GuestTopology, t: &Thresholds) -> Res<()> {
    for (test, interrupt) in [("sched_attached", false), ("sched_detached", true)] {
        let mut child = Command::new(SCX_SIMPLE)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {SCX_SIMPLE}: {e}"))?;
        let pid = child.id() as i32;
        let res = wait_state("enabled", 120).and_then(|()| {
            std::thread::scope(|s| {
                if interrupt {
                    s.spawn(|| {
                        std::thread::sleep(Duration::from_millis(500));
                        // SAFETY: signalling our own child scheduler.
                        unsafe { libc::kill(pid, libc::SIGINT) };
                    });
                }
                run_one(&catalogue::steady().with_step_ms(1500), test, topo, t)
            })
        });
        // SAFETY: as above; SIGINT makes scx_simple detach and exit.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let _ = child.wait();
        res?;
        wait_state("disabled", 30)?;
    }
    Ok(())
}

fn run() -> Res<usize> {
    mount("proc", "/proc", "proc")?;
    mount("sysfs", "/sys", "sysfs")?;
    mount("cgroup2", "/sys/fs/cgroup", "cgroup2")?;
    let topo = GuestTopology::from_sysfs(Path::new("/sys")).map_err(|e| e.to_string())?;
    println!("topology: {topo:?}");
    let thresholds = Thresholds {
        max_gap_ms: 3000,
        max_spread_pct: 60.0,
        ..Thresholds::default()
    };
    let ms = step_ms();
    let mut failed = 0;
    for sc in [
        catalogue::cpuset_split(),
        catalogue::nested_cgroups(),
        catalogue::cpuset_churn(),
        catalogue::move_tasks(),
        catalogue::ping_pong(),
    ] {
        let sc = sc.with_step_ms(ms);
        failed += usize::from(!run_one(&sc, &sc.name, &topo, &thresholds)?);
    }
    if Path::new(SCX_SIMPLE).exists() {
        sched_phases(&topo, &thresholds)?;
    } else {
        println!("KTSTR-SCHED-SKIP {SCX_SIMPLE} not packed");
    }
    Ok(failed)
}

fn main() {
    if std::process::id() != 1 {
        eprintln!("ktstr-workload-smoke only runs as PID 1 inside a throwaway guest");
        std::process::exit(2);
    }
    match run() {
        Ok(failed) => println!("KTSTR-SMOKE-DONE failed={failed}"),
        Err(e) => println!("KTSTR-SMOKE-ERROR {e}"),
    }
    // SAFETY: PID 1 of a throwaway guest; a restart ends QEMU under -no-reboot.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_AUTOBOOT);
    }
}
