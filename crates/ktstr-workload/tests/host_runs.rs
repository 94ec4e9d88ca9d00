//! Real runs on this machine: forked workers in real cgroup v2 directories,
//! measured and judged. Needs root and a cgroup2 mount; without them the
//! tests are reported ignored (and fail under `CI=true`).
//!
//! On a hybrid cgroup host (v2 at /sys/fs/cgroup/unified, cpu/cpuset bound to
//! v1) the run has no cpuset controller and enforces cpusets with
//! sched_setaffinity; the report says so in `cpuset_enforcement`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ktstr_testenv::{Missing, Need};
use ktstr_topology::GuestTopology;
use ktstr_workload::cgroup::cgroup2_mount;
use ktstr_workload::cpuset::ResolveCpuset;
use ktstr_workload::payload::PayloadEnd;
use ktstr_workload::protocol;
use ktstr_workload::report::{self, TestResult};
use ktstr_workload::verdict::Failure;
use ktstr_workload::{
    CgroupSpec, CpusetSpec, Figures, Op, PayloadSpec, RunOptions, Scenario, ScenarioReport, Step,
    Thresholds, WorkKind, catalogue, evaluate, run_scenario,
};

/// One run at a time: the host has 2 shared cores and the no-leftover
/// checks look at this process's children.
static SERIAL: Mutex<()> = Mutex::new(());

/// What the real runs need: root, and a cgroup2 mount.
const NEEDS: &[Need] = &[Need::Root, Need::Probe(cgroup2)];

fn cgroup2() -> Result<(), Missing> {
    cgroup2_mount()
        .map(drop)
        .map_err(|e| Missing::new("a cgroup2 mount", e.to_string()))
}

/// The cgroup2 mount ([`cgroup2`] checked it).
fn cgroup_root() -> PathBuf {
    cgroup2_mount().unwrap_or_else(|e| panic!("cgroup2: {e}"))
}

fn opts(mount: &Path, test: &str) -> RunOptions {
    RunOptions {
        cgroup_parent: Some(mount.to_path_buf()),
        root_name: Some(format!("ktstr-{}-{test}", std::process::id())),
        ..RunOptions::default()
    }
}

fn topo() -> Result<GuestTopology> {
    Ok(GuestTopology::from_sysfs(Path::new("/sys"))?)
}

fn cg(name: &str, workers: u32, work: WorkKind, cpuset: CpusetSpec) -> CgroupSpec {
    CgroupSpec::new(name, workers, work, cpuset)
}

fn one_step(name: &str, ms: u64, cgroups: Vec<CgroupSpec>) -> Scenario {
    Scenario {
        name: name.into(),
        steps: vec![Step {
            duration_ms: ms,
            ops_before: vec![],
            cgroups,
        }],
    }
}

/// No `ktstr-<pid>*` cgroup under the mount, no child process of ours
/// (waitpid says ECHILD), no process anywhere in one of our cgroups.
fn assert_clean(mount: &Path) -> Result<()> {
    let ours = format!("ktstr-{}", std::process::id());
    for e in std::fs::read_dir(mount)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if name.starts_with(&ours) {
            bail!("cgroup {name} left behind under {}", mount.display());
        }
    }
    let mut st = 0;
    // SAFETY: non-blocking wait for any child with a valid status pointer.
    let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    if !(r == -1 && errno == Some(libc::ECHILD)) {
        bail!("a child process is left (waitpid returned {r})");
    }
    for e in std::fs::read_dir("/proc")? {
        let p = e?.path();
        if let Ok(text) = std::fs::read_to_string(p.join("cgroup"))
            && text.contains(&ours)
        {
            bail!("process {} still in one of our cgroups", p.display());
        }
    }
    Ok(())
}

fn save(test: &str, r: &ScenarioReport, t: &Thresholds) -> Result<()> {
    let v = evaluate(r, t, None);
    println!("{}", v.render(test, "host", r));
    // CARGO_TARGET_TMPDIR is target/tmp: results go beside it, in target/ktstr.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("ktstr");
    let path = dir.join(format!("{test}.json"));
    let result = TestResult::new(test, "host", v, r.clone());
    report::json(&path, &result)?;
    let back: TestResult = serde_json::from_slice(&std::fs::read(&path)?)?;
    assert_eq!(back.summary, result.summary);
    assert_eq!(back.report.workers.len(), r.workers.len());
    Ok(())
}

/// Loose limits: 2 cores shared with compiles and VMs.
fn loose() -> Thresholds {
    Thresholds {
        max_gap_ms: 1500,
        max_spread_pct: 80.0,
        ..Thresholds::default()
    }
}

fn split_spinners_progress_stay_in_their_cpuset_and_share_fairly() -> Result<()> {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mount = cgroup_root();
    let topo = topo()?;
    let sc = catalogue::cpuset_split().with_step_ms(800);
    let t0 = Instant::now();
    let r = run_scenario(&sc, &topo, &opts(&mount, "split"))?;
    println!(
        "cpuset_split ran in {:?} ({})",
        t0.elapsed(),
        r.cpuset_enforcement
    );
    save("cpuset_split", &r, &loose())?;
    assert_eq!(r.workers.len(), 4);
    let half = |i| topo.resolve(&CpusetSpec::Slice { index: i, of: 2 });
    let (h0, h1) = (half(0)?, half(1)?);
    for w in &r.workers {
        assert!(w.lost.is_none(), "{} lost: {:?}", w.label(), w.lost);
        assert!(w.work_units > 0, "{} made no progress", w.label());
        assert!(
            w.cpu_time_ns > 20_000_000,
            "{} got only {} ns CPU",
            w.label(),
            w.cpu_time_ns
        );
        let want = if w.cgroup == "cg_0" { &h0 } else { &h1 };
        assert_eq!(&w.allowed_cpus, want, "{}", w.label());
        assert!(
            w.cpus_used.iter().all(|c| want.contains(c)),
            "{} ran on {:?}, allowed {want:?}",
            w.label(),
            w.cpus_used
        );
        assert!(
            w.wall_ns >= 700_000_000,
            "{} wall {} ns",
            w.label(),
            w.wall_ns
        );
        // Sampling can miss migrations, never invent them.
        if let Some(k) = w.kernel_migrations {
            assert!(
                k >= w.migrations,
                "{}: kernel {k} < sampled {}",
                w.label(),
                w.migrations
            );
        }
        // Two spinners share one CPU, so each waits on the runqueue.
        if let Some(d) = w.run_delay_ns {
            assert!(d > 10_000_000, "{} run delay only {d} ns", w.label());
        }
    }
    let v = evaluate(&r, &loose(), None);
    assert!(v.passed, "{}", v.render("cpuset_split", "host", &r));
    assert_clean(&mount)
}

fn ping_pong_pairs_report_wake_latencies() -> Result<()> {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mount = cgroup_root();
    let sc = one_step(
        "pp",
        600,
        vec![cg("pp", 2, WorkKind::PingPong, CpusetSpec::All)],
    );
    // Through the wire helpers, as the guest will: JSON request in, report out.
    let spec = protocol::request_bytes(&sc, 1 << 20)?;
    let r = protocol::run_request(&spec, Path::new("/sys"), &opts(&mount, "pp"))?;
    let back = protocol::parse_report(&protocol::report_bytes(&r, 1 << 20)?)?;
    assert_eq!(back, r);
    save("ping_pong", &r, &loose())?;
    for w in &r.workers {
        assert!(w.error.is_none(), "{}: {:?}", w.label(), w.error);
        let l = w
            .wake_latency
            .with_context(|| format!("{} has no latency", w.label()))?;
        println!(
            "{}: {} round trips, wake p50 {} us p99 {} us max {} us, vcsw {}",
            w.label(),
            w.work_units,
            l.p50_ns / 1000,
            l.p99_ns / 1000,
            l.max_ns / 1000,
            w.voluntary_csw
        );
        assert!(l.samples >= 50, "{} only {} wakes", w.label(), l.samples);
        assert!(l.p50_ns > 0 && l.p50_ns <= l.p99_ns && l.p99_ns <= l.max_ns);
        assert_eq!(l.samples, w.work_units);
        // Blocking on a pipe is a voluntary switch.
        assert!(w.voluntary_csw > 0);
    }
    let (a, b) = (r.workers[0].work_units, r.workers[1].work_units);
    assert!(a.abs_diff(b) <= 1, "pair is lockstep: {a} vs {b}");
    assert_clean(&mount)
}

fn fork_churn_counts_forks_and_payloads_run_and_stop() -> Result<()> {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mount = cgroup_root();
    let sleep = ["/bin/sleep", "/usr/bin/sleep"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("no sleep binary")?;
    let sc = one_step(
        "forks",
        700,
        vec![
            cg("forks", 1, WorkKind::ForkChurn, CpusetSpec::All),
            cg(
                "payload",
                1,
                WorkKind::Payload {
                    path: sleep.into(),
                    args: vec!["0.1".into()],
                },
                CpusetSpec::All,
            ),
            cg(
                "missing",
                1,
                WorkKind::Payload {
                    path: "/nonexistent/ktstr-payload".into(),
                    args: vec![],
                },
                CpusetSpec::All,
            ),
        ],
    );
    let r = run_scenario(&sc, &topo()?, &opts(&mount, "forks"))?;
    save("fork_churn", &r, &loose())?;
    let by = |n: &str| {
        r.workers
            .iter()
            .find(|w| w.cgroup == n)
            .context("worker missing")
    };
    let f = by("forks")?;
    println!(
        "fork churn: {} forks in {} ms",
        f.forks,
        f.wall_ns / 1_000_000
    );
    assert!(f.forks >= 10, "only {} forks", f.forks);
    assert_eq!(f.forks, f.work_units);
    let p = by("payload")?;
    println!(
        "payload: {} runs finished, {} started",
        p.payload_exits, p.forks
    );
    assert!(
        p.payload_exits >= 2,
        "sleep 0.1 should finish several times in 700 ms"
    );
    // The run in flight at stop is killed, unless stop came between two runs.
    assert!(
        p.forks == p.payload_exits + 1 || p.forks == p.payload_exits,
        "{} started, {} finished",
        p.forks,
        p.payload_exits
    );
    let m = by("missing")?;
    assert!(
        m.error
            .as_deref()
            .is_some_and(|e| e.contains("exec failed")),
        "{:?}",
        m.error
    );
    let v = evaluate(&r, &loose(), None);
    assert!(
        v.failures
            .iter()
            .any(|f| matches!(f, Failure::WorkerError { worker, .. } if worker == "missing/0")),
        "{:?}",
        v.failures
    );
    assert_clean(&mount)
}

fn a_sigstopped_worker_is_caught_by_the_starvation_check() -> Result<()> {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mount = cgroup_root();
    let o = opts(&mount, "stop");
    let procs = mount
        .join(o.root_name.as_deref().unwrap_or_default())
        .join("victim/cgroup.procs");
    let sc = one_step(
        "stopped",
        1500,
        vec![cg("victim", 2, WorkKind::Spin, CpusetSpec::All)],
    );
    let topo = topo()?;
    let (r, stopped) = std::thread::scope(|s| {
        let stopper = s.spawn(|| -> Option<u32> {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                let pids: Vec<i32> = std::fs::read_to_string(&procs)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.parse().ok())
                    .collect();
                if pids.len() == 2 {
                    std::thread::sleep(Duration::from_millis(300));
                    // SAFETY: signalling a worker pid read from our own cgroup.
                    unsafe { libc::kill(pids[1], libc::SIGSTOP) };
                    std::thread::sleep(Duration::from_millis(500));
                    // SAFETY: as above.
                    unsafe { libc::kill(pids[1], libc::SIGCONT) };
                    return Some(pids[1] as u32);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            None
        });
        let r = run_scenario(&sc, &topo, &o);
        (r, stopper.join().ok().flatten())
    });
    let r = r?;
    let stopped = stopped.context("never saw the workers")?;
    let t = Thresholds {
        max_gap_ms: 300,
        ..loose()
    };
    save("sigstop", &r, &t)?;
    let victim = r
        .workers
        .iter()
        .find(|w| w.pid == stopped)
        .context("stopped pid not in report")?;
    assert!(
        victim.max_gap_ns >= 450_000_000,
        "gap only {} ns",
        victim.max_gap_ns
    );
    let v = evaluate(&r, &t, None);
    assert!(!v.passed);
    let line = v.headline("stopped", "host");
    println!("{line}");
    let want = format!("worker {} stuck", victim.label());
    assert!(
        v.failures.iter().any(|f| f.to_string().starts_with(&want)),
        "no failure names {}: {line}",
        victim.label()
    );
    // The stop began ~300 ms into the run.
    assert!(
        (200..1200).contains(&victim.max_gap_at_ms),
        "gap at +{} ms",
        victim.max_gap_at_ms
    );
    assert_clean(&mount)
}

fn a_failing_run_leaves_no_process_and_no_cgroup() -> Result<()> {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mount = cgroup_root();
    let o = opts(&mount, "fail");
    let root = mount.join(o.root_name.as_deref().unwrap_or_default());
    let mut sc = one_step(
        "fails",
        400,
        vec![cg("cg_0", 2, WorkKind::Spin, CpusetSpec::All)],
    );
    sc.steps.push(Step {
        duration_ms: 400,
        ops_before: vec![Op::AddCgroup(cg(
            "cg_1",
            1,
            WorkKind::Spin,
            CpusetSpec::All,
        ))],
        cgroups: vec![],
    });
    let topo = topo()?;
    // Step 1's cgroup is squatted while step 0 runs, so its creation fails
    // with workers of cg_0 alive.
    let res = std::thread::scope(|s| {
        s.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if root.join("cg_0").exists() {
                    let _ = std::fs::create_dir(root.join("cg_1"));
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        run_scenario(&sc, &topo, &o)
    });
    let err = res
        .err()
        .context("run should fail on the squatted cgroup")?;
    println!("run failed as intended: {err}");
    assert!(err.to_string().contains("cg_1"), "{err}");
    assert_clean(&mount)
}

fn every_catalogue_scenario_runs_briefly_on_the_host() -> Result<()> {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mount = cgroup_root();
    let topo = topo()?;
    for sc in catalogue::all() {
        let sc = sc.with_step_ms(250);
        let t0 = Instant::now();
        let r = run_scenario(&sc, &topo, &opts(&mount, &sc.name))
            .with_context(|| format!("running {}", sc.name))?;
        let v = evaluate(&r, &loose(), None);
        println!(
            "{} ({:?}): {}",
            sc.name,
            t0.elapsed(),
            v.headline(&sc.name, "host")
        );
        for w in &r.workers {
            assert!(
                w.lost.is_none() && w.error.is_none(),
                "{}: {} {:?} {:?}",
                sc.name,
                w.label(),
                w.lost,
                w.error
            );
            assert!(
                w.work_units > 0,
                "{}: {} made no progress",
                sc.name,
                w.label()
            );
        }
        // Timer sleepers measure how late their wake-ups were.
        for w in r.workers.iter().filter(|w| w.kind == "bursty") {
            assert!(
                w.wake_latency.is_some_and(|l| l.samples > 0),
                "{}: {} has no timer wake latency",
                sc.name,
                w.label()
            );
        }
        // Isolation must hold through cpuset/affinity/move ops.
        assert!(
            !v.failures
                .iter()
                .any(|f| matches!(f, Failure::OutsideCpuset { .. })),
            "{}: {:?}",
            sc.name,
            v.failures
        );
        let cgroups: BTreeSet<&str> = r.workers.iter().map(|w| w.cgroup.as_str()).collect();
        assert_eq!(
            cgroups.len(),
            r.cgroups.iter().filter(|c| c.workers > 0).count()
        );
        assert_clean(&mount)?;
    }
    Ok(())
}

fn moving_fork_churners_back_and_forth_tolerates_exiting_children() -> Result<()> {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mount = cgroup_root();
    let mv = |from: &str, to: &str| Op::MoveTasks {
        from: from.into(),
        to: to.into(),
    };
    let mut sc = one_step(
        "move_churn",
        150,
        vec![
            cg("a", 2, WorkKind::ForkChurn, CpusetSpec::All),
            cg("b", 1, WorkKind::Spin, CpusetSpec::All),
        ],
    );
    for i in 0..6 {
        let (from, to) = if i % 2 == 0 { ("a", "b") } else { ("b", "a") };
        sc.steps.push(Step {
            duration_ms: 150,
            ops_before: vec![mv(from, to)],
            cgroups: vec![],
        });
    }
    let r = run_scenario(&sc, &topo()?, &opts(&mount, "movechurn"))?;
    save("move_churn", &r, &loose())?;
    assert_eq!(r.workers.len(), 3);
    for w in &r.workers {
        assert!(w.lost.is_none() && w.error.is_none(), "{}", w.label());
        assert!(w.work_units > 0, "{} made no progress", w.label());
    }
    assert!(
        r.workers
            .iter()
            .filter(|w| w.cgroup == "a")
            .all(|w| w.forks > 0)
    );
    assert_eq!(
        r.notes
            .iter()
            .filter(|n| n.starts_with("applied move"))
            .count(),
        6
    );
    assert_clean(&mount)
}

fn a_worker_killed_mid_run_is_reported_lost() -> Result<()> {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mount = cgroup_root();
    let o = opts(&mount, "kill");
    let procs = mount
        .join(o.root_name.as_deref().unwrap_or_default())
        .join("cg/cgroup.procs");
    let sc = one_step(
        "killed",
        800,
        vec![cg("cg", 2, WorkKind::Spin, CpusetSpec::All)],
    );
    let topo = topo()?;
    let (r, killed) = std::thread::scope(|s| {
        let killer = s.spawn(|| -> Option<u32> {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                let pids: Vec<i32> = std::fs::read_to_string(&procs)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.parse().ok())
                    .collect();
                if pids.len() == 2 {
                    std::thread::sleep(Duration::from_millis(200));
                    // SAFETY: signalling a worker pid read from our own cgroup.
                    unsafe { libc::kill(pids[0], libc::SIGKILL) };
                    return Some(pids[0] as u32);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            None
        });
        let r = run_scenario(&sc, &topo, &o);
        (r, killer.join().ok().flatten())
    });
    let r = r?;
    let killed = killed.context("never saw the workers")?;
    save("killed", &r, &loose())?;
    let w = r
        .workers
        .iter()
        .find(|w| w.pid == killed)
        .context("killed pid not in report")?;
    assert_eq!(w.lost.as_deref(), Some("killed by signal 9"));
    let v = evaluate(&r, &loose(), None);
    let want = format!("worker {} lost: killed by signal 9", w.label());
    assert!(
        v.failures.iter().any(|f| f.to_string() == want),
        "{:?}",
        v.failures
    );
    // The survivor still reported normally.
    assert!(
        r.workers
            .iter()
            .any(|x| x.pid != killed && x.lost.is_none() && x.work_units > 0)
    );
    assert_clean(&mount)
}

fn payloads_report_exit_output_and_time_and_leave_nothing_behind() -> Result<()> {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mount = cgroup_root();
    let sh = |name: &str, script: &str| PayloadSpec::new("/bin/sh", ["-c", script]).named(name);
    let mut sc = one_step("payloads", 50, vec![]);
    sc.steps[0].ops_before = vec![
        Op::Payload(sh(
            "ok",
            "echo hello; echo warm >&2; cat /proc/self/cgroup; sleep 0.3",
        )),
        Op::Payload(sh("fails", "echo boom >&2; exit 3")),
        // The background sleep shares the group and the cgroup: both die.
        Op::Payload(sh("hangs", "sleep 30 & sleep 30").timeout_ms(400)),
        Op::Payload(PayloadSpec::new("/nonexistent/ktstr-payload", ["x"])),
        Op::Payload(sh("no-figures", "true").figures(Figures::StressNg)),
    ];
    let started = Instant::now();
    let r = run_scenario(&sc, &topo()?, &opts(&mount, "payloads"))?;
    let took = started.elapsed();
    let v = evaluate(&r, &Thresholds::default(), None);
    println!("{}", v.render("payloads", "host", &r));
    let by = |n: &str| {
        r.payloads
            .iter()
            .find(|p| p.name == n)
            .with_context(|| format!("payload {n} missing"))
    };
    // The 50 ms step held until its slowest payload ended.
    assert!(took >= Duration::from_millis(400), "{took:?}");
    let ok = by("ok")?;
    assert_eq!(ok.end, PayloadEnd::Exited(0));
    assert!(ok.wall_ms >= 300, "{}", ok.wall_ms);
    assert!(
        ok.stdout_tail.starts_with("hello\n"),
        "{:?}",
        ok.stdout_tail
    );
    assert_eq!(ok.stderr_tail, "warm\n");
    // It ran in its own cgroup under the run's root.
    assert!(
        ok.stdout_tail.contains("-payloads/ok"),
        "{:?}",
        ok.stdout_tail
    );
    assert_eq!(by("fails")?.end, PayloadEnd::Exited(3));
    let hangs = by("hangs")?;
    assert_eq!(hangs.end, PayloadEnd::TimedOut);
    assert!(
        hangs.wall_ms >= 400 && hangs.wall_ms < 5000,
        "{}",
        hangs.wall_ms
    );
    assert!(matches!(
        by("ktstr-payload")?.end,
        PayloadEnd::NotStarted(ref why) if why.contains("No such file")
    ));
    assert!(by("no-figures")?.figures_error.is_some());
    let failed: Vec<String> = v
        .failures
        .iter()
        .filter_map(|f| match f {
            Failure::Payload { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        failed.iter().collect::<BTreeSet<_>>(),
        ["fails", "hangs", "ktstr-payload", "no-figures"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .iter()
            .collect::<BTreeSet<_>>()
    );
    assert!(
        v.render("payloads", "host", &r)
            .contains("payload fails exited with status 3 after"),
    );
    // The background sleep of "hangs" died with its parent and became
    // init's zombie (as in the guest, where ktstr-guest's init reaps it):
    // give init a moment, then nothing of ours may be left.
    let until = Instant::now() + Duration::from_secs(3);
    while assert_clean(&mount).is_err() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_clean(&mount)
}

fn main() -> std::process::ExitCode {
    let tests = [
        ktstr_testenv::tests![NEEDS; split_spinners_progress_stay_in_their_cpuset_and_share_fairly, ping_pong_pairs_report_wake_latencies, fork_churn_counts_forks_and_payloads_run_and_stop, a_sigstopped_worker_is_caught_by_the_starvation_check, a_failing_run_leaves_no_process_and_no_cgroup, every_catalogue_scenario_runs_briefly_on_the_host, moving_fork_churners_back_and_forth_tolerates_exiting_children, a_worker_killed_mid_run_is_reported_lost, payloads_report_exit_output_and_time_and_leave_nothing_behind],
    ];
    ktstr_testenv::run(tests.into_iter().flatten().collect())
}
