//! The host-side monitor behind every `#[ktstr_test]`: while the test runs,
//! a sampler thread reads each CPU's run queue from guest memory (ktstr-
//! monitor; the vCPUs never pause), then the detectors judge the series.
//! Findings become verdict failures or report-only notes per the test's
//! [`MonitorSpec`]; samples and findings go into the test's JSON and a
//! per-CPU timeline SVG beside it.
//!
//! The monitor never makes a test fail for its own sake: a kernel it cannot
//! read (no vmlinux beside a bzImage, no BTF) is recorded as `unavailable`
//! with the reason, and a sampler that panicked loses its samples only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use ktstr_backend::PhysMemory;
use ktstr_monitor::{
    DEFAULT_PERIOD, Finding, GuestMemoryReader, MSR_LSTAR, MemoryError, Monitor, Placement,
    Recording, SamplerHandle, StallKind, Thresholds, Vmlinux, detect, render_svg,
};
use ktstr_workload::{MonitorDetector, MonitorFinding};
use serde::Serialize;

use crate::error::HarnessError;
use crate::session::Session;

/// What a test does with one detector's findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorPolicy {
    /// Not looked for.
    Off,
    /// Shown under the verdict and in the JSON; the test still passes.
    Report,
    /// The test fails with the finding.
    Fail,
}

/// Per-detector policies: `#[ktstr_test(monitor = "fail" | "report" |
/// "off")]` sets all three, `monitor_stall`, `monitor_dsq` and
/// `monitor_imbalance` one each (the specific key wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MonitorSpec {
    /// A CPU with runnable tasks that does not run them.
    pub stall: MonitorPolicy,
    /// A local dispatch queue that stays deep.
    pub deep_dsq: MonitorPolicy,
    /// Runnable tasks unevenly spread over CPUs.
    pub imbalance: MonitorPolicy,
}

impl MonitorSpec {
    /// A stall fails the test: no scheduler under test should leave runnable
    /// tasks unrun for seconds. A deep queue or an imbalance can be what a
    /// scenario asks for (all workers pinned to one CPU), so they are
    /// reported.
    pub const DEFAULT: MonitorSpec = MonitorSpec {
        stall: MonitorPolicy::Fail,
        deep_dsq: MonitorPolicy::Report,
        imbalance: MonitorPolicy::Report,
    };

    pub(super) fn samples(&self) -> bool {
        [self.stall, self.deep_dsq, self.imbalance]
            .iter()
            .any(|p| *p != MonitorPolicy::Off)
    }

    fn policy(&self, f: &Finding) -> MonitorPolicy {
        match f {
            Finding::Stall { .. } => self.stall,
            Finding::DeepLocalDsq { .. } => self.deep_dsq,
            Finding::Imbalance { .. } => self.imbalance,
        }
    }
}

impl Default for MonitorSpec {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Guest memory through the backend's shareable handle
/// ([`Session::guest_memory`]), as the monitor reads it.
pub struct BackendMemory(pub Arc<dyn PhysMemory>);

impl GuestMemoryReader for BackendMemory {
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let len = buf.len();
        self.0.read(addr, buf).map_err(|e| MemoryError {
            addr,
            len,
            source: Box::new(e),
        })
    }
}

/// Parsing a vmlinux's BTF takes a while: once per kernel per process, and
/// across processes through the on-disk cache beside the snapshots.
pub(super) fn vmlinux_for(kernel: &Path) -> Result<Arc<Vmlinux>, ktstr_monitor::LoadError> {
    static LOADED: OnceLock<Mutex<HashMap<PathBuf, Arc<Vmlinux>>>> = OnceLock::new();
    let path = Vmlinux::find_for(kernel)?;
    let cache = LOADED.get_or_init(Default::default);
    // A panic while holding the lock leaves a usable map.
    let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(v) = map.get(&path) {
        return Ok(Arc::clone(v));
    }
    let v = Arc::new(Vmlinux::load_cached(&path, &vmlinux_cache_dir())?);
    map.insert(path, Arc::clone(&v));
    Ok(v)
}

/// `monitor/` beside the initramfs cache and the snapshots.
fn vmlinux_cache_dir() -> PathBuf {
    crate::image::beside_images(&crate::image::default_cache_dir(), "monitor")
}

/// A sampler watching one test's guest, from boot until [`Watch::finish`].
pub(crate) struct Watch {
    spec: MonitorSpec,
    sampler: Option<SamplerHandle>,
    /// Why nothing is sampled, when the spec asked for sampling.
    unavailable: Option<String>,
    /// The KASLR offset was confirmed from vCPU state (`MSR_LSTAR`).
    lstar_checked: bool,
    /// What sample times count from.
    attached: Option<Instant>,
}

impl Watch {
    /// Attaches to `session`'s guest (booting `kernel`) and starts sampling
    /// at the default period.
    pub(crate) fn start(session: &Session, kernel: &Path, spec: MonitorSpec) -> Watch {
        let mut watch = Watch {
            spec,
            sampler: None,
            unavailable: None,
            lstar_checked: false,
            attached: None,
        };
        if spec.samples() {
            match Self::spawn(session, kernel) {
                Ok((s, checked, attached)) => {
                    (watch.sampler, watch.lstar_checked) = (Some(s), checked);
                    watch.attached = Some(attached);
                }
                Err(reason) => {
                    tracing::warn!("monitor unavailable: {reason}");
                    watch.unavailable = Some(reason);
                }
            }
        }
        watch
    }

    /// The sampler, whether vCPU state confirmed the KASLR offset, and what
    /// sample times count from.
    fn spawn(session: &Session, kernel: &Path) -> Result<(SamplerHandle, bool, Instant), String> {
        let vmlinux = vmlinux_for(kernel).map_err(|e| e.to_string())?;
        let mem = BackendMemory(
            session
                .guest_memory()
                .ok_or("the VM ended before the monitor attached")?,
        );
        let sys = session.sys_info();
        let placement = Placement {
            text: sys.kernel_text,
            phys_base: sys.kernel_phys_base,
        };
        let monitor = Monitor::attach(vmlinux, placement, &mem).map_err(|e| e.to_string())?;
        // Where the backend reads vCPU state (ktstr-vmm; one brief pause),
        // MSR_LSTAR must give the same KASLR offset; a disagreement leaves
        // the monitor unavailable, saying so, rather than reading wrong memory.
        let lstar = session
            .vcpu_msr(0, MSR_LSTAR)
            .map_err(|e| format!("read MSR_LSTAR for the KASLR cross-check: {e}"))?;
        if let Some(lstar) = lstar {
            monitor.check_lstar(lstar).map_err(|e| e.to_string())?;
        }
        let attached = monitor.started();
        let sampler = SamplerHandle::spawn(monitor, mem, DEFAULT_PERIOD)
            .map_err(|e| format!("start the sampler thread: {e}"))?;
        Ok((sampler, lstar.is_some(), attached))
    }

    /// Stops sampling, runs the detectors, writes the timeline beside
    /// `json` (the test's result file) and sorts findings by policy.
    /// `scenario_started`: when the scenario began, which finding times
    /// count from in the verdict.
    pub(crate) fn finish(
        mut self,
        test: &str,
        json: &Path,
        scenario_started: Option<Instant>,
    ) -> Monitored {
        let spec = self.spec;
        // The scenario's start on the sample clock (ms; it may precede the
        // attach only in principle: the scenario is sent after it).
        let scenario_ms = self.attached.zip(scenario_started).map(|(a, s)| {
            if s >= a {
                (s - a).as_millis() as i64
            } else {
                -((a - s).as_millis() as i64)
            }
        });
        let (recording, state) = match (self.sampler.take(), self.unavailable.take()) {
            (Some(s), _) => match s.stop() {
                Ok(r) => (r, "sampled".to_string()),
                Err(e) => (Recording::default(), e.to_string()),
            },
            (None, Some(reason)) => (Recording::default(), format!("unavailable: {reason}")),
            (None, None) => (Recording::default(), "off".to_string()),
        };
        let findings: Vec<(Finding, MonitorPolicy)> =
            detect(&recording.samples, &Thresholds::default())
                .into_iter()
                .map(|f| {
                    let p = spec.policy(&f);
                    (f, p)
                })
                .filter(|(_, p)| *p != MonitorPolicy::Off)
                .collect();
        let timeline = if recording.samples.is_empty() {
            None
        } else {
            let shown: Vec<Finding> = findings.iter().map(|(f, _)| f.clone()).collect();
            write_timeline(json, &render_svg(test, &recording.samples, &shown))
        };
        let (mut failures, mut reported) = (Vec::new(), Vec::new());
        for (f, p) in &findings {
            let v = verdict_finding(f, scenario_ms);
            match p {
                MonitorPolicy::Fail => failures.push(v),
                _ => reported.push(v),
            }
        }
        // Earliest first: the headline names where things went wrong first.
        failures.sort_by_key(|f: &MonitorFinding| f.from_ms);
        reported.sort_by_key(|f: &MonitorFinding| f.from_ms);
        Monitored {
            record: MonitorRecord {
                state,
                lstar_checked: self.lstar_checked,
                period_ms: DEFAULT_PERIOD.as_millis() as u64,
                spec,
                findings: findings
                    .into_iter()
                    .map(|(finding, policy)| PolicedFinding {
                        from_scenario_ms: from_scenario(&finding, scenario_ms),
                        finding,
                        policy,
                    })
                    .collect(),
                scenario_started_ms: scenario_ms,
                torn: recording.torn,
                samples: recording.samples,
                timeline: timeline.clone(),
            },
            failures,
            reported,
            timeline,
        }
    }
}

impl Drop for Watch {
    /// A test that ended early (an error before [`Watch::finish`]) still
    /// joins its sampler, and says what it found.
    fn drop(&mut self) {
        let Some(s) = self.sampler.take() else {
            return;
        };
        if let Ok(r) = s.stop() {
            for f in detect(&r.samples, &Thresholds::default()) {
                tracing::warn!(
                    "monitor, before the test ended early: {}",
                    verdict_finding(&f, None)
                );
            }
        }
    }
}

/// `svg` beside the test's `json` result; a failure to write it is logged,
/// never the test's failure.
fn write_timeline(json: &Path, svg: &str) -> Option<PathBuf> {
    let path = json.with_extension("svg");
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&path, svg));
    match written {
        Ok(()) => Some(path),
        Err(e) => {
            tracing::warn!("write the monitor timeline {}: {e}", path.display());
            None
        }
    }
}

/// When `f` began, ms from the scenario's start (`scenario_ms` on the
/// sample clock); `None` without a scenario start.
fn from_scenario(f: &Finding, scenario_ms: Option<i64>) -> Option<i64> {
    let (Finding::Stall { from, .. }
    | Finding::DeepLocalDsq { from, .. }
    | Finding::Imbalance { from, .. }) = f;
    scenario_ms.map(|s| from.as_millis() as i64 - s)
}

/// A finding as the verdict shows it; `scenario_ms`: the scenario's start
/// on the sample clock, which its time then counts from.
fn verdict_finding(f: &Finding, scenario_ms: Option<i64>) -> MonitorFinding {
    let mut v = finding_on_the_sample_clock(f);
    v.from_scenario_ms = from_scenario(f, scenario_ms);
    v
}

fn finding_on_the_sample_clock(f: &Finding) -> MonitorFinding {
    let period = DEFAULT_PERIOD.as_millis() as u64;
    let task = |t: &ktstr_monitor::CurrentTask| format!("{}[{}]", t.comm, t.pid);
    match f {
        Finding::Stall {
            cpu,
            kind,
            from,
            samples,
            nr_running,
            curr,
            waiting,
        } => {
            let what = match (kind, waiting) {
                (StallKind::ClockStopped, _) => {
                    format!("rq clock stopped with {nr_running} runnable")
                }
                (StallKind::IdleWhileRunnable, _) => format!("idle while {nr_running} runnable"),
                (StallKind::TaskWaiting, Some(w)) => {
                    format!("{} runnable but not run", task(w))
                }
                (StallKind::TaskWaiting, None) => "a runnable task not run".into(),
            };
            MonitorFinding {
                detector: MonitorDetector::Stall,
                cpu: Some(*cpu as u32),
                from_ms: from.as_millis() as u64,
                from_scenario_ms: None,
                lasted_ms: *samples as u64 * period,
                detail: format!("{what}; current {}", task(curr)),
            }
        }
        Finding::DeepLocalDsq {
            cpu,
            from,
            samples,
            max_depth,
        } => MonitorFinding {
            detector: MonitorDetector::DeepLocalDsq,
            cpu: Some(*cpu as u32),
            from_ms: from.as_millis() as u64,
            from_scenario_ms: None,
            lasted_ms: *samples as u64 * period,
            detail: format!("up to {max_depth} tasks queued"),
        },
        Finding::Imbalance {
            from,
            samples,
            busiest,
            idlest,
        } => MonitorFinding {
            detector: MonitorDetector::Imbalance,
            cpu: None,
            from_ms: from.as_millis() as u64,
            from_scenario_ms: None,
            lasted_ms: *samples as u64 * period,
            detail: format!(
                "cpu{} had {} runnable, cpu{} {}",
                busiest.0, busiest.1, idlest.0, idlest.1
            ),
        },
    }
}

/// One finding with what the test made of it.
#[derive(Debug, Serialize)]
pub struct PolicedFinding {
    /// What the detector saw (`from_ms` on the sample clock).
    #[serde(flatten)]
    pub finding: Finding,
    /// When it began, ms after the scenario started (negative: before).
    pub from_scenario_ms: Option<i64>,
    /// Fail or report.
    pub policy: MonitorPolicy,
}

/// The `monitor` section of `target/ktstr/<test>.json`.
#[derive(Debug, Serialize)]
pub struct MonitorRecord {
    /// `sampled`, `off`, or `unavailable: <why>`.
    pub state: String,
    /// The KASLR offset was confirmed by `MSR_LSTAR` (backends that read
    /// vCPU state: ktstr-vmm; not QEMU).
    pub lstar_checked: bool,
    /// Sampling period.
    pub period_ms: u64,
    /// When the scenario started, on the sample clock (samples' `at_ms`).
    pub scenario_started_ms: Option<i64>,
    /// The test's policies.
    pub spec: MonitorSpec,
    /// Every finding the policies did not turn off.
    pub findings: Vec<PolicedFinding>,
    /// CPU readings dropped as unreadable or torn.
    pub torn: u64,
    /// Every sample, in order.
    pub samples: Vec<ktstr_monitor::Sample>,
    /// The SVG timeline beside the JSON.
    pub timeline: Option<PathBuf>,
}

/// What the monitor contributes to a test's outcome.
#[derive(Debug)]
pub struct Monitored {
    /// For the JSON.
    pub record: MonitorRecord,
    /// Findings that fail the test.
    pub failures: Vec<MonitorFinding>,
    /// Findings shown but not failing it.
    pub reported: Vec<MonitorFinding>,
    /// The SVG, when one was written.
    pub timeline: Option<PathBuf>,
}

impl Monitored {
    /// `e` ended the run early. When the monitor had already found what
    /// fails the test, that finding is the root cause (a wedged guest
    /// cannot start workers or finish its scenario): `e`'s text, for a note
    /// under the verdict. Otherwise `e` stands.
    pub(crate) fn explains(&self, e: HarnessError) -> Result<String, HarnessError> {
        if self.failures.is_empty() {
            Err(e)
        } else {
            tracing::warn!("the run ended early in a guest the monitor saw fail: {e}");
            Ok(e.to_string())
        }
    }

    /// Lines under the verdict: report-only findings, the monitor's state
    /// when it could not sample, and the timeline.
    pub fn notes(&self) -> String {
        let mut s = String::new();
        for f in &self.reported {
            s.push_str(&format!("  report only: {f}\n"));
        }
        if self.record.state.starts_with("unavailable") {
            s.push_str(&format!("  monitor {}\n", self.record.state));
        }
        if let Some(t) = &self.timeline {
            s.push_str(&format!("  timeline: {}\n", t.display()));
        }
        s
    }
}

/// What `target/ktstr/<test>.json` holds: the workload's result with the
/// monitor's record beside it.
#[derive(Serialize)]
pub(crate) struct ResultFile<'a> {
    #[serde(flatten)]
    pub(crate) result: &'a ktstr_workload::report::TestResult,
    pub(crate) monitor: &'a MonitorRecord,
    pub(crate) phases: super::PhaseTimings,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ktstr_monitor::CurrentTask;

    use super::*;

    fn task(pid: i32, comm: &str) -> CurrentTask {
        CurrentTask {
            pid,
            comm: comm.into(),
        }
    }

    #[test]
    fn a_waiting_task_stall_reads_with_cpu_time_and_both_tasks() {
        let stall = Finding::Stall {
            cpu: 1,
            kind: StallKind::TaskWaiting,
            from: Duration::from_millis(2100),
            samples: 20,
            nr_running: 2,
            curr: task(0, "swapper/1"),
            waiting: Some(task(52, "scx_qmap")),
        };
        assert_eq!(MonitorSpec::DEFAULT.policy(&stall), MonitorPolicy::Fail);
        assert_eq!(
            verdict_finding(&stall, None).to_string(),
            "monitor: stall on cpu1 from +2100 ms for 2000 ms: \
             scx_qmap[52] runnable but not run; current swapper/1[0]"
        );
        let imbalance = Finding::Imbalance {
            from: Duration::ZERO,
            samples: 20,
            busiest: (0, 8),
            idlest: (1, 0),
        };
        assert_eq!(
            MonitorSpec::DEFAULT.policy(&imbalance),
            MonitorPolicy::Report
        );
        assert_eq!(
            verdict_finding(&imbalance, None).to_string(),
            "monitor: imbalance on all cpus from +0 ms for 2000 ms: cpu0 had 8 runnable, cpu1 0"
        );
    }

    #[test]
    fn a_run_cut_short_is_the_monitors_verdict_only_when_it_found_a_failure() {
        let monitored = |failures: Vec<MonitorFinding>| Monitored {
            record: MonitorRecord {
                state: "sampled".into(),
                lstar_checked: false,
                period_ms: 100,
                scenario_started_ms: None,
                spec: MonitorSpec::DEFAULT,
                findings: Vec::new(),
                torn: 0,
                samples: Vec::new(),
                timeline: None,
            },
            failures,
            reported: Vec::new(),
            timeline: None,
        };
        let timeout = || HarnessError::Timeout {
            what: "scenario \"steady\"".into(),
            after: Duration::from_secs(48),
        };
        let clean = monitored(Vec::new());
        assert!(matches!(
            clean.explains(timeout()),
            Err(HarnessError::Timeout { .. })
        ));
        let stall = Finding::Stall {
            cpu: 0,
            kind: StallKind::TaskWaiting,
            from: Duration::from_secs(2),
            samples: 20,
            nr_running: 2,
            curr: task(1, "init"),
            waiting: Some(task(16, "rcu_sched")),
        };
        let wedged = monitored(vec![verdict_finding(&stall, None)]);
        assert_eq!(
            wedged.explains(timeout()).ok().as_deref(),
            Some("timed out after 48s waiting for scenario \"steady\"")
        );
    }

    #[test]
    fn only_an_all_off_spec_skips_sampling() {
        let off = MonitorSpec {
            stall: MonitorPolicy::Off,
            deep_dsq: MonitorPolicy::Off,
            imbalance: MonitorPolicy::Off,
        };
        assert!(!off.samples());
        assert!(
            MonitorSpec {
                imbalance: MonitorPolicy::Report,
                ..off
            }
            .samples()
        );
    }
}
