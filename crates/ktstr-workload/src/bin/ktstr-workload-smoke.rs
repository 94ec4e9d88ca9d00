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

use ktstr_workload::report::TestResult;
use ktstr_workload::{GuestTopology, RunOptions, Thresholds, catalogue, evaluate, run_scenario};

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
        let r = run_scenario(&sc, &topo, &RunOptions::default())
            .map_err(|e| format!("running {}: {e}", sc.name))?;
        let v = evaluate(&r, &thresholds, None);
        print!("{}", v.render(&sc.name, "guest", &r));
        failed += usize::from(!v.passed);
        let left: Vec<String> = std::fs::read_dir("/sys/fs/cgroup")
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("ktstr-"))
            .collect();
        if !left.is_empty() {
            return Err(format!("left behind after {}: {left:?}", sc.name));
        }
        let json = serde_json::to_string(&TestResult::new(&sc.name, "guest", v, r))
            .map_err(|e| e.to_string())?;
        println!("KTSTR-RESULT {json}");
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
