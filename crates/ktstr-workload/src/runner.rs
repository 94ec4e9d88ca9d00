//! Run a [`Scenario`]: cgroups per step, ops between steps, workers for the
//! whole life of their cgroup, then stop, collect, tear down.
//!
//! Cleanup invariant: `Run` owns the worker handles (SIGKILL + reap on drop)
//! declared before the cgroup tree (kill + rmdir on drop), so any early
//! return leaves no process and no cgroup behind.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ktstr_topology::GuestTopology;

use crate::cgroup::{CgroupError, CgroupTree, cgroup2_mount};
use crate::cpuset::{ResolveCpuset, ResolveError};
use crate::hotplug::{Hotplug, HotplugError};
use crate::payload::{LivePayload, PayloadRecord, PayloadSpec, Placement};
use crate::report::{CgroupRecord, ScenarioReport, StepRecord, WorkerTelemetry};
use crate::scx::{ScxObservation, sample};
use crate::spec::{CgroupSpec, CpusetSpec, Op, Scenario, SpecError, WorkKind, total_workers};
use crate::worker::{
    ChildReport, ControlPage, PreparedWork, WorkerError, WorkerHandle, WorkerPlan, mono_ns, pin,
    pipe_pair, spawn,
};

/// Why a run could not complete.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario is invalid for this topology.
    #[error("invalid scenario: {0}")]
    Spec(#[from] SpecError),
    /// cgroup setup or teardown failed.
    #[error("cgroup: {0}")]
    Cgroup(#[from] CgroupError),
    /// A worker could not be started.
    #[error("worker: {0}")]
    Worker(#[from] WorkerError),
    /// A cpuset did not resolve (validation should have caught it).
    #[error("cpuset: {0}")]
    Cpuset(#[from] ResolveError),
    /// An op named a cgroup that is not alive.
    #[error("op names unknown cgroup {0:?}")]
    UnknownCgroup(String),
    /// A CPU hotplug op failed.
    #[error("cpu hotplug: {0}")]
    Hotplug(#[from] HotplugError),
}

/// Where and how to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Directory to create the run's cgroup in; `None` = the cgroup2 mount.
    pub cgroup_parent: Option<PathBuf>,
    /// Name of the run's cgroup; `None` = `ktstr-<pid>`.
    pub root_name: Option<String>,
    /// How long stopped workers get to report before being killed.
    pub stop_timeout: Duration,
    /// sysfs root, for sched_ext state (`/sys`).
    pub sysfs: PathBuf,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            cgroup_parent: None,
            root_name: None,
            stop_timeout: Duration::from_secs(5),
            sysfs: PathBuf::from("/sys"),
        }
    }
}

struct LiveWorker {
    handle: WorkerHandle,
    slot: usize,
    cgroup: String,
    current: String,
    index: u32,
    kind: &'static str,
    cgroup_id: u64,
    allowed: BTreeSet<u32>,
}

/// Field order is drop order: workers and payloads die before their cgroups go.
struct Run<'a> {
    workers: Vec<LiveWorker>,
    payloads: Vec<LivePayload>,
    ctl: ControlPage,
    tree: CgroupTree,
    topo: &'a GuestTopology,
    epoch_ns: u64,
    next_slot: usize,
    alive: BTreeMap<String, Vec<u32>>,
    done: Vec<WorkerTelemetry>,
    cgroups: Vec<CgroupRecord>,
    notes: Vec<String>,
    stop_timeout: Duration,
    /// Last: CPUs come back online once the workers and cgroups are gone.
    hotplug: Hotplug,
    step: usize,
    payload_records: Vec<PayloadRecord>,
}

/// Run `scenario` on this machine (the guest, or a host for tests).
pub fn run_scenario(
    scenario: &Scenario,
    topo: &GuestTopology,
    opts: &RunOptions,
) -> Result<ScenarioReport, RunError> {
    scenario.validate(topo)?;
    let parent = match &opts.cgroup_parent {
        Some(p) => p.clone(),
        None => cgroup2_mount()?,
    };
    let name = opts
        .root_name
        .clone()
        .unwrap_or_else(|| format!("ktstr-{}", std::process::id()));
    let ctl = ControlPage::new(total_workers(scenario))?;
    let tree = CgroupTree::create(&parent, &name)?;
    let mut run = Run {
        workers: Vec::new(),
        payloads: Vec::new(),
        ctl,
        tree,
        topo,
        epoch_ns: mono_ns(),
        next_slot: 0,
        alive: BTreeMap::new(),
        done: Vec::new(),
        cgroups: Vec::new(),
        notes: Vec::new(),
        stop_timeout: opts.stop_timeout,
        hotplug: Hotplug::new(&opts.sysfs),
        step: 0,
        payload_records: Vec::new(),
    };
    if !run.tree.controllers().cpuset {
        run.notes.push(format!(
            "no cpuset controller under {}: cpusets enforced with sched_setaffinity",
            parent.display()
        ));
    }
    if !run.tree.controllers().cpu {
        run.notes
            .push("no cpu controller: cpu.weight not applied".to_string());
    }
    let scx_start = sample(&opts.sysfs);
    let started = Instant::now();
    let mut steps = Vec::new();
    for (i, step) in scenario.steps.iter().enumerate() {
        run.step = i;
        for op in &step.ops_before {
            run.apply(op)?;
        }
        for cg in &step.cgroups {
            run.add_cgroup(cg, "")?;
        }
        // The step's workers start together, now that all are placed.
        run.ctl.open_gate(i as u32 + 1);
        let t0 = Instant::now();
        steps.push(StepRecord {
            index: i,
            started_at_ms: started.elapsed().as_millis() as u64,
            duration_ms: step.duration_ms,
        });
        run.hold_step(t0 + Duration::from_millis(step.duration_ms));
    }
    let all: Vec<usize> = (0..run.workers.len()).collect();
    run.finish_workers(&all);
    let sched_ext = ScxObservation {
        start: scx_start,
        end: sample(&opts.sysfs),
    };
    let wall_ms = started.elapsed().as_millis() as u64;
    let Run {
        tree,
        mut done,
        cgroups,
        notes,
        payload_records: payloads,
        ..
    } = run;
    let controllers = tree.controllers();
    tree.remove_all()?;
    done.sort_by(|a, b| {
        (a.started_at_ms, &a.cgroup, a.index).cmp(&(b.started_at_ms, &b.cgroup, b.index))
    });
    Ok(ScenarioReport {
        scenario: scenario.name.clone(),
        topology: topo.clone(),
        controllers,
        cpuset_enforcement: if controllers.cpuset {
            "cgroup"
        } else {
            "affinity"
        }
        .into(),
        wall_ms,
        steps,
        cgroups,
        workers: done,
        sched_ext,
        notes,
        payloads,
    })
}

impl Run<'_> {
    fn ms_since_epoch(&self, t: u64) -> u64 {
        t.saturating_sub(self.epoch_ns) / 1_000_000
    }

    fn add_cgroup(&mut self, cg: &CgroupSpec, parent: &str) -> Result<(), RunError> {
        let path = if parent.is_empty() {
            cg.name.clone()
        } else {
            format!("{parent}/{}", cg.name)
        };
        let cpus = self.topo.resolve(&cg.cpuset)?;
        self.tree.add(&path, !cg.children.is_empty())?;
        let enforced = self.tree.set_cpus(&path, &cpus)?;
        let weight_applied = match cg.weight {
            Some(w) => self.tree.set_weight(&path, w)?,
            None => false,
        };
        self.alive.insert(path.clone(), cpus.clone());
        self.cgroups.push(CgroupRecord {
            name: path.clone(),
            kind: cg.work.tag().into(),
            workers: cg.workers,
            cpus: cpus.clone(),
            weight: cg.weight,
            weight_applied,
        });
        if cg.workers > 0 {
            let procs = self.tree.procs_file(&path)?;
            let affinity = (!enforced).then(|| cpus.clone());
            let id = self.tree.id(&path);
            if cg.work == WorkKind::PingPong {
                for pair in 0..cg.workers / 2 {
                    let [a_rd, a_wr, b_rd, b_wr] = pipe_pair()?;
                    let ends = [
                        (b_rd.as_raw_fd(), a_wr.as_raw_fd(), true),
                        (a_rd.as_raw_fd(), b_wr.as_raw_fd(), false),
                    ];
                    for (k, (rx, tx, serve)) in ends.into_iter().enumerate() {
                        let work = PreparedWork::PingPong { rx, tx, serve };
                        self.spawn_one(
                            &path,
                            pair * 2 + k as u32,
                            work,
                            &procs,
                            &affinity,
                            &cpus,
                            id,
                            &cg.work,
                        )?;
                    }
                    // Pipe ends drop here: only the pair holds them now.
                }
            } else {
                for i in 0..cg.workers {
                    let seed = u64::from(i) << 32 | self.next_slot as u64;
                    let work = PreparedWork::from_kind(&cg.work, seed)?;
                    self.spawn_one(&path, i, work, &procs, &affinity, &cpus, id, &cg.work)?;
                }
            }
        }
        for child in &cg.children {
            self.add_cgroup(child, &path)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn_one(
        &mut self,
        path: &str,
        index: u32,
        work: PreparedWork,
        procs: &File,
        affinity: &Option<Vec<u32>>,
        cpus: &[u32],
        cgroup_id: u64,
        kind: &WorkKind,
    ) -> Result<(), RunError> {
        let slot = self.next_slot;
        self.next_slot += 1;
        let plan = WorkerPlan {
            slot,
            work,
            procs_fd: Some(procs.as_raw_fd()),
            affinity: affinity.clone(),
            start_with_step: self.step as u32 + 1,
        };
        let handle = spawn(&plan, &self.ctl)?;
        self.workers.push(LiveWorker {
            handle,
            slot,
            cgroup: path.to_string(),
            current: path.to_string(),
            index,
            kind: kind.tag(),
            cgroup_id,
            allowed: cpus.iter().copied().collect(),
        });
        Ok(())
    }

    fn cpus_of(&self, name: &str) -> Result<Vec<u32>, RunError> {
        self.alive
            .get(name)
            .cloned()
            .ok_or_else(|| RunError::UnknownCgroup(name.to_string()))
    }

    fn in_subtree(name: &str, root: &str) -> bool {
        name == root || name.strip_prefix(root).is_some_and(|r| r.starts_with('/'))
    }

    /// Start `spec` in its own cgroup (removed when it ends).
    fn start_payload(&mut self, spec: &PayloadSpec) -> Result<(), RunError> {
        let cpus = self.topo.resolve(&spec.cpuset)?;
        self.tree.add(&spec.name, false)?;
        let enforced = self.tree.set_cpus(&spec.name, &cpus)?;
        let procs = self.tree.procs_file(&spec.name)?;
        let place = Placement {
            procs: &procs,
            pin_to: (!enforced).then(|| cpus.clone()),
            cpus,
        };
        let at = self.ms_since_epoch(mono_ns());
        let live = LivePayload::start(spec, self.step, place, at);
        self.payloads.push(live);
        Ok(())
    }

    /// Hold the current step until `until` and until its payloads ended,
    /// recording each payload as it ends.
    fn hold_step(&mut self, until: Instant) {
        const POLL: Duration = Duration::from_millis(20);
        loop {
            for mut p in std::mem::take(&mut self.payloads) {
                if !p.poll() {
                    self.payloads.push(p);
                    continue;
                }
                let name = p.name().to_owned();
                self.payload_records.push(p.finish());
                // Kills anything it left behind in its cgroup.
                if let Err(e) = self.tree.remove(&name) {
                    self.notes.push(format!("payload {name}: {e}"));
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() && self.payloads.is_empty() {
                return;
            }
            if self.payloads.is_empty() {
                std::thread::sleep(left);
            } else {
                std::thread::sleep(if left.is_zero() { POLL } else { left.min(POLL) });
            }
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), RunError> {
        let cpuset = self.tree.controllers().cpuset;
        match op {
            Op::AddCgroup(cg) => self.add_cgroup(cg, "")?,
            Op::RemoveCgroup { name } => {
                self.cpus_of(name)?;
                let idx: Vec<usize> = (0..self.workers.len())
                    .filter(|&i| Self::in_subtree(&self.workers[i].current, name))
                    .collect();
                self.finish_workers(&idx);
                self.tree.remove(name)?;
                self.alive.retain(|n, _| !Self::in_subtree(n, name));
            }
            Op::SetCpuset {
                cgroup,
                cpuset: spec,
            } => {
                self.cpus_of(cgroup)?;
                let cpus = self.topo.resolve(spec)?;
                if !self.tree.set_cpus(cgroup, &cpus)? {
                    self.pin_cgroup(cgroup, &cpus)?;
                }
                self.alive.insert(cgroup.clone(), cpus.clone());
                self.widen(|c| Self::in_subtree(c, cgroup), &cpus);
            }
            Op::MoveTasks { from, to } => {
                self.cpus_of(from)?;
                let to_cpus = self.cpus_of(to)?;
                for pid in self.tree.pids(from)? {
                    match self.tree.move_pid(to, pid) {
                        Ok(()) => {}
                        // A short-lived task (fork churn child) exited meanwhile.
                        Err(CgroupError::Io { source, .. })
                            if source.raw_os_error() == Some(libc::ESRCH) => {}
                        Err(e) => return Err(e.into()),
                    }
                    if !cpuset {
                        // Best effort: the task may have exited meanwhile.
                        let _ = pin(pid, &to_cpus);
                    }
                }
                for w in &mut self.workers {
                    if w.current == *from {
                        w.current = to.clone();
                        w.allowed.extend(to_cpus.iter().copied());
                    }
                }
            }
            Op::SetAffinity { cgroup, cpus: spec } => {
                self.cpus_of(cgroup)?;
                let cpus = self.topo.resolve(spec)?;
                self.pin_cgroup(cgroup, &cpus)?;
                // With a real cpuset the kernel intersects, so the cpuset
                // still bounds where tasks may run.
                if !cpuset {
                    self.widen(|c| c == cgroup, &cpus);
                }
            }
            Op::CpuOffline { cpu } => {
                self.hotplug.set(*cpu, false)?;
                self.allow_hotplug_fallback();
            }
            Op::CpuOnline { cpu } => self.hotplug.set(*cpu, true)?,
            Op::Payload(spec) => self.start_payload(spec)?,
        }
        self.notes.push(format!("applied {}", describe_op(op)));
        Ok(())
    }

    /// A cgroup left without an online CPU runs its tasks on its nearest
    /// ancestor's online CPUs (cgroup v2 cpuset; with affinity only, the
    /// kernel's fallback is every online CPU): allow those for its workers.
    fn allow_hotplug_fallback(&mut self) {
        let offline = self.hotplug.offline().clone();
        let online = |cpus: &[u32]| -> Vec<u32> {
            cpus.iter()
                .copied()
                .filter(|c| !offline.contains(c))
                .collect()
        };
        let everywhere = online(&self.topo.all_cpus());
        let mut fallback: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for w in &self.workers {
            let mut path = w.current.as_str();
            let cpus = loop {
                if let Some(cpus) = self.alive.get(path).map(|c| online(c))
                    && !cpus.is_empty()
                {
                    break cpus;
                }
                match path.rsplit_once('/') {
                    Some((parent, _)) => path = parent,
                    None => break everywhere.clone(),
                }
            };
            fallback.insert(w.current.clone(), cpus);
        }
        for w in &mut self.workers {
            if let Some(cpus) = fallback.get(&w.current) {
                w.allowed.extend(cpus.iter().copied());
            }
        }
    }

    fn widen(&mut self, pred: impl Fn(&str) -> bool, cpus: &[u32]) {
        for w in &mut self.workers {
            if pred(&w.current) {
                w.allowed.extend(cpus.iter().copied());
            }
        }
    }

    fn pin_cgroup(&self, cgroup: &str, cpus: &[u32]) -> Result<(), RunError> {
        for pid in self.tree.pids(cgroup)? {
            match pin(pid, cpus) {
                Ok(()) => {}
                // The task exited between listing and pinning.
                Err(WorkerError::Sys { source, .. })
                    if source.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Stop the given workers (indexes into `self.workers`), collect their
    /// reports and move them to `done`.
    fn finish_workers(&mut self, idx: &[usize]) {
        for &i in idx {
            self.ctl.stop(self.workers[i].slot);
            // A stopped (SIGSTOP) worker must run to see its flag.
            // SAFETY: signalling our own unreaped child.
            unsafe { libc::kill(self.workers[i].handle.pid() as i32, libc::SIGCONT) };
        }
        let deadline = Instant::now() + self.stop_timeout;
        let mut keep = Vec::new();
        for (i, mut w) in std::mem::take(&mut self.workers).into_iter().enumerate() {
            if !idx.contains(&i) {
                keep.push(w);
                continue;
            }
            let t = match w.handle.collect(deadline) {
                Ok(r) => self.telemetry(&w, r, None),
                Err(why) => {
                    let r = ChildReport {
                        pid: w.handle.pid(),
                        ..ChildReport::default()
                    };
                    self.telemetry(&w, r, Some(why.to_string()))
                }
            };
            self.done.push(t);
        }
        self.workers = keep;
    }

    fn telemetry(&self, w: &LiveWorker, r: ChildReport, lost: Option<String>) -> WorkerTelemetry {
        WorkerTelemetry {
            cgroup: w.cgroup.clone(),
            index: w.index,
            pid: r.pid,
            kind: w.kind.into(),
            cgroup_id: w.cgroup_id,
            started_at_ms: self.ms_since_epoch(r.start_ns),
            cpu_time_ns: r.cpu_time_ns,
            children_cpu_ns: r.children_cpu_ns,
            run_delay_ns: r.run_delay_ns,
            wall_ns: r.end_ns.saturating_sub(r.start_ns),
            work_units: r.work_units,
            voluntary_csw: r.voluntary_csw,
            involuntary_csw: r.involuntary_csw,
            migrations: r.migrations,
            kernel_migrations: r.kernel_migrations,
            cpus_used: r.cpus_used,
            last_cpu: r.last_cpu,
            allowed_cpus: w.allowed.iter().copied().collect(),
            tracks_progress: r.tracks_progress,
            max_gap_ns: r.max_gap_ns,
            max_gap_at_ms: self.ms_since_epoch(r.max_gap_start_ns),
            max_gap_cpu: r.max_gap_cpu,
            wake_latency: r.wake_latency,
            forks: r.forks,
            payload_exits: r.payload_exits,
            error: r.error,
            lost,
        }
    }
}

fn describe_op(op: &Op) -> String {
    let spec = |c: &CpusetSpec| format!("{c:?}");
    match op {
        Op::AddCgroup(cg) => format!("add cgroup {}", cg.name),
        Op::RemoveCgroup { name } => format!("remove cgroup {name}"),
        Op::SetCpuset { cgroup, cpuset } => format!("cpuset {cgroup} := {}", spec(cpuset)),
        Op::MoveTasks { from, to } => format!("move tasks {from} -> {to}"),
        Op::SetAffinity { cgroup, cpus } => format!("affinity {cgroup} := {}", spec(cpus)),
        Op::CpuOffline { cpu } => format!("cpu{cpu} offline"),
        Op::CpuOnline { cpu } => format!("cpu{cpu} online"),
        Op::Payload(p) => format!("start payload {} ({})", p.name, p.program),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_record_carries_the_telemetry() {
        let w = WorkerTelemetry {
            cgroup: "cg_0".into(),
            pid: 42,
            cgroup_id: 7,
            cpu_time_ns: 5,
            work_units: 9,
            cpus_used: vec![1, 3, 70],
            last_cpu: Some(3),
            max_gap_ns: 11,
            ..WorkerTelemetry::default()
        };
        let r = w.to_wire(2);
        assert_eq!(r.worker_id.get(), 2);
        assert_eq!(r.pid.get(), 42);
        assert_eq!(r.cgroup_id.get(), 7);
        assert_eq!(r.work_units.get(), 9);
        assert_eq!(r.cpus_used_lo.get(), 0b1010);
        assert_eq!(r.distinct_cpus.get(), 3);
        assert_eq!(r.last_cpu.get(), 3);
        assert_eq!(r.max_gap_ns.get(), 11);
    }
}
