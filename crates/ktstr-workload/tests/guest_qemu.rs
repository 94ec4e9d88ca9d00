//! The runner inside a real guest kernel (QEMU TCG, 2 vCPUs, pure cgroup v2
//! with the `cpu` and `cpuset` controllers): the path the host's hybrid
//! hierarchy cannot exercise. `ktstr-workload-smoke` is /init; it prints one
//! `KTSTR-RESULT <json>` line per scenario, and this test asserts on those.
//! With `scx_simple` packed, two more runs: one with the scheduler
//! attached throughout (passes, `root/ops` = simple at both ends), one where
//! it is SIGINTed mid-run (the verdict reports the detach from sysfs alone).
//!
//! Kernel, QEMU and `scx_simple` as `ktstr_testenv` finds them; when one is
//! missing the test is reported ignored (and fails under `CI=true`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ktstr_initramfs::Archive;
use ktstr_testenv::{Need, test_env, vm_slot};
use ktstr_workload::report::TestResult;
use ktstr_workload::verdict::Failure;

const QEMU: &str = "qemu-system-x86_64";
const NEEDS: &[Need] = &[Need::Kernel, Need::Qemu, Need::Scheduler("scx_simple")];
/// Generous: TCG on a shared 2-core host.
const DEADLINE: Duration = Duration::from_secs(240);

/// The shared scx_simple: the runner checked [`Need::Scheduler`] first.
fn scx_simple() -> PathBuf {
    ktstr_testenv::find_scheduler("scx_simple").unwrap_or_else(|m| panic!("{m}"))
}

fn initramfs(scx: &Path) -> Result<tempfile::NamedTempFile> {
    let mut a = Archive::new();
    a.add_elf_with_libs("init", env!("CARGO_BIN_EXE_ktstr-workload-smoke"))?
        .add_char_dev("dev/console", 0o600, 5, 1)?
        .add_char_dev("dev/null", 0o666, 1, 3)?
        .add_dir("proc", 0o555)?
        .add_dir("sys", 0o555)?
        .add_elf_with_libs("bin/scx_simple", scx)?;
    let f = tempfile::Builder::new()
        .prefix("ktstr-workload-initrd-")
        .tempfile()?;
    a.write_to(f.path())?;
    Ok(f)
}

/// Boot, collect COM1 until QEMU exits or the deadline kills it.
fn boot(kernel: &Path, initrd: &Path) -> Result<String> {
    let mut child = Command::new(QEMU)
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ])
        // pc, not microvm: its PIT lets the kernel calibrate the TSC without
        // being told the frequency.
        .args(["-machine", "pc", "-accel", "tcg", "-cpu", "max"])
        .args(["-smp", "2", "-m", "512M", "-serial", "stdio"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            "console=ttyS0 reboot=t panic=-1 quiet ktstr.step_ms=1000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning QEMU")?;
    let mut out = child.stdout.take().context("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let until = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if Instant::now() >= until {
            child.kill()?;
            child.wait()?;
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let bytes = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if status.is_none() {
        bail!("QEMU killed at the {DEADLINE:?} deadline; COM1:\n{text}");
    }
    Ok(text)
}

fn runner_in_a_real_guest_uses_cgroup_cpusets_weights_and_sees_scx_detach() -> Result<()> {
    let _slot = vm_slot();
    let kernel = test_env().kernel;
    let scx = scx_simple();
    let initrd = initramfs(&scx)?;
    let t0 = Instant::now();
    let com1 = boot(&kernel, initrd.path())?;
    println!("guest run took {:?}", t0.elapsed());
    if !com1.contains("KTSTR-SMOKE-DONE") {
        bail!("guest did not finish; COM1:\n{com1}");
    }
    let results: Vec<TestResult> = com1
        .lines()
        .filter_map(|l| l.trim().strip_prefix("KTSTR-RESULT "))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    // 5 scenarios, then 2 with scx_simple packed (attached, detached mid-run).
    assert_eq!(results.len(), 7, "COM1:\n{com1}");
    for r in &results {
        println!("{}", r.summary);
        let rep = &r.report;
        assert!(
            rep.controllers.cpuset && rep.controllers.cpu,
            "{:?}",
            rep.controllers
        );
        assert_eq!(rep.cpuset_enforcement, "cgroup");
        for w in &rep.workers {
            assert!(
                w.lost.is_none() && w.error.is_none(),
                "{}: {}",
                r.test,
                w.label()
            );
            assert!(
                w.work_units > 0,
                "{}: {} made no progress",
                r.test,
                w.label()
            );
            assert!(
                w.cpus_used.iter().all(|c| w.allowed_cpus.contains(c)),
                "{}: {} ran on {:?} outside {:?}",
                r.test,
                w.label(),
                w.cpus_used,
                w.allowed_cpus
            );
            assert!(w.cgroup_id != 0);
        }
    }
    let get = |n: &str| results.iter().find(|r| r.test == n).context(n.to_string());
    // Split: the kernel's cpuset (not affinity) kept each half on its CPU.
    let split = get("cpuset_split")?;
    for w in &split.report.workers {
        let want = if w.cgroup == "cg_0" { vec![0] } else { vec![1] };
        assert_eq!(w.cpus_used, want, "{}", w.label());
    }
    // Nested: cpu.weight 300 vs 100 was written and shows in CPU time.
    let nested = get("nested_cgroups")?;
    assert!(
        nested
            .report
            .cgroups
            .iter()
            .filter(|c| c.weight.is_some())
            .all(|c| c.weight_applied)
    );
    let cpu = |cg: &str| -> u64 {
        nested
            .report
            .workers
            .iter()
            .filter(|w| w.cgroup == cg)
            .map(|w| w.cpu_time_ns)
            .sum()
    };
    let (high, low) = (cpu("outer/high"), cpu("outer/low"));
    println!(
        "nested: high {} ms, low {} ms",
        high / 1_000_000,
        low / 1_000_000
    );
    assert!(
        high > low * 3 / 2,
        "weight 300 vs 100 gave {high} vs {low} ns"
    );
    // Ping-pong wakes were measured in the guest.
    let pp = get("ping_pong")?;
    assert!(
        pp.report
            .workers
            .iter()
            .all(|w| w.wake_latency.is_some_and(|l| l.samples > 10))
    );
    // scx_simple attached throughout: seen at both ends, run passes.
    let on = get("sched_attached")?;
    let ops = |s: &Option<ktstr_workload::scx::ScxSample>| s.as_ref().and_then(|s| s.ops.clone());
    assert_eq!(
        ops(&on.report.sched_ext.start).as_deref(),
        Some("simple"),
        "{:?}",
        on.report.sched_ext
    );
    assert_eq!(ops(&on.report.sched_ext.end).as_deref(), Some("simple"));
    // Only the attachment is asserted: gaps/spread under TCG on a loaded
    // host are not this test's subject (the summary shows them).
    let detach = |r: &TestResult| {
        r.verdict
            .failures
            .iter()
            .any(|f| matches!(f, Failure::SchedulerDetached { .. }))
    };
    assert!(!detach(on), "{}", on.summary);
    // SIGINT at +500 ms detaches it mid-run: the verdict must say so.
    let off = get("sched_detached")?;
    println!("{}", off.summary);
    assert!(!off.verdict.passed);
    assert!(
        off.verdict.failures.iter().any(
            |f| matches!(f, Failure::SchedulerDetached { reason } if reason.contains("simple"))
        ),
        "{}",
        off.summary
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let tests = [
        ktstr_testenv::tests![NEEDS; runner_in_a_real_guest_uses_cgroup_cpusets_weights_and_sees_scx_detach],
    ];
    ktstr_testenv::run(tests.into_iter().flatten().collect())
}
