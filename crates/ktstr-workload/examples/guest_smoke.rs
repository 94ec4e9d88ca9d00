//! A throwaway `/init` that exercises the runner where the `cpu` and
//! `cpuset` controllers really exist (a guest kernel with a pure cgroup v2
//! hierarchy), until `ktstr-guest` calls the runner itself.
//!
//! ```sh
//! RUSTFLAGS="-C target-feature=+crt-static" cargo build --release \
//!     -p ktstr-workload --example guest_smoke --target x86_64-unknown-linux-gnu
//! # pack it as /init in a newc archive, boot with 2+ vCPUs, read COM1.
//! ```
//!
//! As PID 1 it mounts proc/sysfs/cgroup2, runs a few catalogue scenarios,
//! prints each verdict and table, checks that nothing is left behind and
//! powers off. Anywhere else it refuses to run.

use std::path::Path;

use anyhow::{Context, Result, bail};
use ktstr_workload::{GuestTopology, RunOptions, Thresholds, catalogue, evaluate, run_scenario};

fn mount(src: &str, target: &str, fstype: &str) -> Result<()> {
    std::fs::create_dir_all(target)?;
    let c = |s: &str| std::ffi::CString::new(s).context("nul in mount argument");
    let (src, tgt, fs) = (c(src)?, c(target)?, c(fstype)?);
    // SAFETY: all pointers are valid NUL-terminated strings for the call.
    let r = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
    if r != 0 {
        bail!("mount {target}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

fn run() -> Result<()> {
    mount("proc", "/proc", "proc")?;
    mount("sysfs", "/sys", "sysfs")?;
    mount("cgroup2", "/sys/fs/cgroup", "cgroup2")?;
    let topo = GuestTopology::from_sysfs(Path::new("/sys"))?;
    println!("topology: {topo:?}");
    let thresholds = Thresholds {
        max_gap_ms: 3000,
        max_spread_pct: 60.0,
        ..Thresholds::default()
    };
    let mut failed = 0;
    for sc in [
        catalogue::cpuset_split(),
        catalogue::nested_cgroups(),
        catalogue::cpuset_churn(),
        catalogue::move_tasks(),
        catalogue::ping_pong(),
    ] {
        let sc = sc.with_step_ms(1000);
        let r = run_scenario(&sc, &topo, &RunOptions::default())
            .with_context(|| format!("running {}", sc.name))?;
        let v = evaluate(&r, &thresholds, None);
        println!(
            "controllers {:?}, cpusets by {}, weights applied {:?}",
            r.controllers,
            r.cpuset_enforcement,
            r.cgroups
                .iter()
                .map(|c| (c.name.as_str(), c.weight, c.weight_applied))
                .collect::<Vec<_>>()
        );
        for w in &r.workers {
            println!(
                "  {} cpu {} ms used {:?} allowed {:?} gap {} ms",
                w.label(),
                w.cpu_time_ns / 1_000_000,
                w.cpus_used,
                w.allowed_cpus,
                w.max_gap_ns / 1_000_000
            );
        }
        print!("{}", v.render(&sc.name, "guest", &r));
        failed += usize::from(!v.passed);
        let left: Vec<String> = std::fs::read_dir("/sys/fs/cgroup")?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("ktstr-"))
            .collect();
        if !left.is_empty() {
            bail!("left behind: {left:?}");
        }
    }
    println!("GUEST-SMOKE DONE failed={failed}");
    Ok(())
}

fn main() {
    if std::process::id() != 1 {
        eprintln!("guest_smoke only runs as PID 1 inside a throwaway guest");
        std::process::exit(2);
    }
    if let Err(e) = run() {
        println!("GUEST-SMOKE ERROR {e:#}");
    }
    // SAFETY: PID 1 of a throwaway guest; nothing to flush but stdout.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
}
