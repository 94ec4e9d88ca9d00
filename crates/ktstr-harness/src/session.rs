//! One booted guest and the calls a test makes on it.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ktstr_backend::{BackendKind, BootSpec, Exit as BackendExit, Guest, Outcome};
use ktstr_guest::init::INIT_ENV;
use ktstr_guest::init::panic::PANIC_PREFIX;
use ktstr_guest::proto::{ExecRequest, ProcExit, Reply, Request, StartScheduler, StopScheduler};
use ktstr_wire::{ByteStr, Command, RunStep, SchedExitKind, SchedState, encode};

use crate::compress::Compression;
use crate::error::HarnessError;
use crate::events::{Event, EventStream, NoEvent, SchedEvent, SysInfo};
use crate::image::{CachedImage, GuestImage, default_cache_dir};
use crate::snapshots;

/// How to boot a session.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Kernel image.
    pub kernel: PathBuf,
    /// Which VM backend.
    pub backend: BackendKind,
    /// vCPUs (ignored when `topology` is set).
    pub vcpus: usize,
    /// CPU/NUMA shape the guest sees; `None` is `vcpus` flat CPUs.
    pub topology: Option<ktstr_vmm::topology::NumaTopology>,
    /// Guest memory.
    pub memory_mib: u64,
    /// Hard deadline of the whole VM.
    pub deadline: Duration,
    /// How long until `SysReady`.
    pub boot_timeout: Duration,
    /// The init binary; `None`: the running executable (see `ktstr_guest::init`).
    pub init: Option<PathBuf>,
    /// Scheduler binaries to pack (each must exist).
    pub schedulers: Vec<PathBuf>,
    /// Initramfs storage format.
    pub compression: Compression,
    /// Strip DWARF from the init binary (see `GuestImage::strip_debug`).
    pub strip_debug: bool,
    /// Extra kernel command line.
    pub cmdline: String,
    /// Initramfs cache directory.
    pub cache_dir: PathBuf,
    /// Resume a snapshot of this machine taken at the guest init's `SysReady`, taking it
    /// on the first boot (see [`crate::snapshots`]); QEMU backends only. On by default
    /// there; `KTSTR_SNAPSHOTS=0` turns it off.
    pub snapshots: bool,
    /// Where snapshots live.
    pub snapshot_dir: PathBuf,
}

impl SessionConfig {
    /// Defaults: the backend `ktstr_backend::choose()` picks
    /// (`KTSTR_BACKEND`, else ktstr-vmm on hardware KVM and QEMU TCG
    /// otherwise, since software KVM cannot run guest user space), 2 vCPUs,
    /// 512 MiB, 10 min deadline, this executable as init.
    pub fn new(kernel: impl Into<PathBuf>) -> Self {
        let backend = ktstr_backend::choose().map_or(BackendKind::QemuTcg, |c| c.kind);
        SessionConfig {
            kernel: kernel.into(),
            backend,
            vcpus: 2,
            topology: None,
            memory_mib: 512,
            deadline: Duration::from_secs(600),
            boot_timeout: Duration::from_secs(120),
            init: None,
            schedulers: Vec::new(),
            compression: Compression::None,
            strip_debug: true,
            cmdline: "quiet".into(),
            snapshots: backend != BackendKind::Vmm
                && std::env::var("KTSTR_SNAPSHOTS").map_or(true, |v| v != "0"),
            snapshot_dir: snapshots::default_root(&default_cache_dir()),
            cache_dir: default_cache_dir(),
        }
    }
}

/// What `exec` returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecResult {
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
    /// Exit code (None if a signal killed it).
    pub code: Option<i32>,
    /// The killing signal, if any.
    pub signal: Option<i32>,
    /// True if the deadline killed it.
    pub timed_out: bool,
}

/// A scheduler that attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attached {
    /// `root/ops`, as reported in `SchedulerState::Attached`.
    pub name: String,
    /// Guest pid.
    pub pid: u32,
}

/// A scheduler that detached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detached {
    /// How its process ended.
    pub exit: ProcExit,
    /// SIGKILL was needed.
    pub killed: bool,
    /// The sched_ext kernel log of the run.
    pub kernel_log: Vec<String>,
    /// Everything the scheduler wrote.
    pub output: String,
}

/// How the guest ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestExit {
    /// Init sent `Exit { code }` and powered off.
    Exited(i32),
    /// Init panicked: the `PANIC:` line from COM2.
    InitPanic(String),
    /// The kernel panicked.
    KernelPanic,
    /// The VM ended without an `Exit` (e.g. init failed early).
    NoExit(BackendExit),
}

/// The typed end of a session.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Classified exit.
    pub exit: GuestExit,
    /// The backend's view (COM1, COM2, run time).
    pub outcome: Outcome,
}

/// A booted guest that has reported `SysReady`.
pub struct Session {
    guest: Guest,
    events: EventStream,
    seq: u64,
    next_step: u32,
    output: HashMap<u32, (Vec<u8>, Vec<u8>)>,
    sched: VecDeque<SchedEvent>,
    exit_code: Option<i32>,
    sys: SysInfo,
    image: CachedImage,
    packed: Vec<PathBuf>,
    scheduler: Option<Attached>,
    deadline: Duration,
    logs: Vec<String>,
    timings: BootTimings,
}

/// Where a session's start-up time went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootTimings {
    /// Building (or hashing and reusing) the initramfs.
    pub image: Duration,
    /// From starting the VM to the guest's `SysReady` (or, restored, to the guest running).
    pub boot: Duration,
    /// The guest resumed a snapshot instead of booting.
    pub restored: bool,
}

impl Session {
    /// Check inputs, build (or reuse) the image, boot, wait for `SysReady`.
    pub fn boot(cfg: &SessionConfig) -> Result<Session, HarnessError> {
        for s in &cfg.schedulers {
            if !s.is_file() {
                return Err(HarnessError::SchedulerNotFound(s.clone()));
            }
        }
        if !cfg.kernel.is_file() {
            return Err(HarnessError::KernelNotFound(cfg.kernel.clone()));
        }
        let init = match &cfg.init {
            Some(p) => p.clone(),
            None => std::env::current_exe().map_err(|e| HarnessError::io("current_exe", e))?,
        };
        let mut img = GuestImage::new(init);
        img.schedulers = cfg.schedulers.clone();
        img.compression = cfg.compression;
        img.strip_debug = cfg.strip_debug;
        let started = Instant::now();
        let image = img.build_cached(&cfg.cache_dir)?;
        let image_time = started.elapsed();
        tracing::info!(path = %image.path.display(), reused = image.reused, "initramfs");
        let mut spec = BootSpec {
            kernel: cfg.kernel.clone(),
            initramfs: Some(image.path.clone()),
            cmdline: format!("{} {INIT_ENV}=1", cfg.cmdline),
            vcpus: cfg.vcpus,
            memory_mib: cfg.memory_mib,
            deadline: cfg.deadline,
            topology: cfg.topology.clone(),
            restore_from: None,
        };
        if !cfg.snapshots {
            return Self::cold_boot(cfg, &spec, image, image_time);
        }
        let dir = snapshots::dir_for(&cfg.snapshot_dir, &spec, cfg.backend);
        let _building = snapshots::DirLock::acquire(&dir)?;
        if snapshots::exists(&dir) {
            if let Some(sys) = snapshots::load_sys(&dir) {
                spec.restore_from = Some(dir.clone());
                match Self::start(cfg, &spec, image.clone(), image_time) {
                    Ok(mut s) => {
                        s.sys = sys;
                        s.timings.restored = true;
                        snapshots::touch_and_prune(&dir);
                        tracing::info!(dir = %dir.display(), "resumed snapshot");
                        return Ok(s);
                    }
                    Err(e) => tracing::warn!(error = %e, "snapshot did not restore; rebuilding"),
                }
                spec.restore_from = None;
            }
            snapshots::discard(&dir);
        }
        let s = Self::cold_boot(cfg, &spec, image, image_time)?;
        // The guest idles in its request loop: snapshot it for the next session.
        let building = dir.with_extension("building");
        snapshots::discard(&building);
        let saved = s
            .guest
            .snapshot(&building)
            .map_err(HarnessError::from)
            .and_then(|()| snapshots::save_sys(&building, &s.sys))
            .and_then(|()| {
                std::fs::rename(&building, &dir)
                    .map_err(|e| HarnessError::io("publish snapshot", e))
            })
            .map(|()| snapshots::touch_and_prune(&dir));
        if let Err(e) = saved {
            tracing::warn!(error = %e, "could not snapshot the booted guest; later sessions boot");
            snapshots::discard(&building);
        }
        Ok(s)
    }

    /// Boot `spec` and wait for the guest init's `SysReady`.
    fn cold_boot(
        cfg: &SessionConfig,
        spec: &BootSpec,
        image: CachedImage,
        image_time: Duration,
    ) -> Result<Session, HarnessError> {
        let started = Instant::now();
        let mut s = Self::start(cfg, spec, image, image_time)?;
        let until = Instant::now() + cfg.boot_timeout;
        loop {
            match s.next_event(until) {
                Ok(Event::SysReady(info)) => {
                    s.sys = info;
                    s.timings.boot = started.elapsed();
                    return Ok(s);
                }
                Ok(_) => {}
                Err(_) => {
                    s.guest.kill();
                    let com1 = s.guest.wait().map(|o| o.com1_text()).unwrap_or_default();
                    return Err(HarnessError::BootFailed {
                        after: cfg.boot_timeout,
                        com1_tail: tail_lines(&com1, 30),
                    });
                }
            }
        }
    }

    /// Start the VM (boot or restore) and wrap it in a session.
    fn start(
        cfg: &SessionConfig,
        spec: &BootSpec,
        image: CachedImage,
        image_time: Duration,
    ) -> Result<Session, HarnessError> {
        let started = Instant::now();
        let mut guest = ktstr_backend::boot(cfg.backend, spec)?;
        let Some(rx) = guest.take_bulk_receiver() else {
            return Err(HarnessError::Protocol {
                what: "boot".into(),
                detail: "backend has no bulk channel".into(),
            });
        };
        Ok(Session {
            guest,
            events: EventStream::new(rx),
            seq: 0,
            next_step: 1,
            output: HashMap::new(),
            sched: VecDeque::new(),
            exit_code: None,
            sys: SysInfo::default(),
            image,
            packed: cfg.schedulers.clone(),
            scheduler: None,
            deadline: cfg.deadline,
            logs: Vec::new(),
            timings: BootTimings {
                image: image_time,
                boot: started.elapsed(),
                restored: false,
            },
        })
    }

    /// What the guest reported at boot.
    pub fn sys_info(&self) -> SysInfo {
        self.sys
    }

    /// Image and boot times of this session.
    pub fn timings(&self) -> BootTimings {
        self.timings
    }

    /// The initramfs this session booted.
    pub fn image(&self) -> &CachedImage {
        &self.image
    }

    /// Kill the VM now (the escape key of [`shell`](Self::shell)).
    pub fn kill(&self) {
        self.guest.kill();
    }

    /// `Log` lines received so far.
    pub fn logs(&self) -> &[String] {
        &self.logs
    }

    /// Next event; output, scheduler reports and logs are also filed.
    pub(crate) fn next_event(&mut self, until: Instant) -> Result<Event, NoEvent> {
        let e = self.events.next(until)?;
        match &e {
            Event::Stdout(pid, d) => self.output.entry(*pid).or_default().0.extend(d),
            Event::Stderr(pid, d) => self.output.entry(*pid).or_default().1.extend(d),
            Event::Sched(s) => self.sched.push_back(s.clone()),
            Event::Exit(c) => self.exit_code = Some(*c),
            Event::Log(l) => self.logs.push(l.clone()),
            _ => {}
        }
        Ok(e)
    }

    pub(crate) fn send(&mut self, cmd: Command<'_>) -> Result<(), HarnessError> {
        let bytes = encode(self.seq, &cmd.into()).map_err(|e| HarnessError::Protocol {
            what: "encode".into(),
            detail: e.to_string(),
        })?;
        self.seq += 1;
        self.guest.send_bulk(&bytes);
        Ok(())
    }

    fn request(&mut self, req: &Request, wait: Duration) -> Result<Reply, HarnessError> {
        let step = self.send_request(req, wait)?;
        self.await_reply(step, &op_name(req), wait)
    }

    /// Send `req` as the next `RunStep`; returns its step number.
    pub(crate) fn send_request(
        &mut self,
        req: &Request,
        wait: Duration,
    ) -> Result<u32, HarnessError> {
        let what = op_name(req);
        let step = self.next_step;
        self.next_step += 1;
        let spec = serde_json::to_vec(req).map_err(|e| HarnessError::Protocol {
            what: what.clone(),
            detail: e.to_string(),
        })?;
        let timeout_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        self.send(Command::RunStep(RunStep {
            step,
            timeout_ms,
            spec: ByteStr(&spec),
        }))?;
        Ok(step)
    }

    /// Wait for the reply to `step`, filing other events.
    pub(crate) fn await_reply(
        &mut self,
        step: u32,
        what: &str,
        wait: Duration,
    ) -> Result<Reply, HarnessError> {
        let what = what.to_owned();
        let until = Instant::now() + wait;
        loop {
            match self.next_event(until) {
                Ok(Event::Result { step: s, text, .. }) if s == step => {
                    return serde_json::from_slice(&text).map_err(|e| HarnessError::Protocol {
                        what,
                        detail: format!("{e}: {}", String::from_utf8_lossy(&text)),
                    });
                }
                Ok(Event::Panic(m)) => return Err(HarnessError::GuestPanic(m)),
                Ok(_) => {}
                Err(NoEvent::Timeout) => return Err(HarnessError::Timeout { what, after: wait }),
                Err(NoEvent::Closed) => return Err(HarnessError::GuestGone { what }),
            }
        }
    }

    pub(crate) fn take_output(&mut self, pid: u32) -> (Vec<u8>, Vec<u8>) {
        self.output.remove(&pid).unwrap_or_default()
    }

    /// Run `argv` in the guest; `timeout` kills it (and bounds the wait).
    pub fn exec(&mut self, argv: &[&str], timeout: Duration) -> Result<ExecResult, HarnessError> {
        let req = Request::Exec(ExecRequest {
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        });
        match self.request(&req, timeout + Duration::from_secs(30))? {
            Reply::Exec {
                pid,
                exit,
                timed_out,
            } => {
                let (stdout, stderr) = self.take_output(pid);
                Ok(ExecResult {
                    stdout,
                    stderr,
                    code: exit.code,
                    signal: exit.signal,
                    timed_out,
                })
            }
            other => Err(unexpected("exec", other)),
        }
    }

    /// Start a packed scheduler and wait until the kernel reports it attached.
    pub fn start_scheduler(
        &mut self,
        host_path: &Path,
        args: &[&str],
        attach_deadline: Duration,
    ) -> Result<Attached, HarnessError> {
        if !self.packed.iter().any(|p| p == host_path) {
            return Err(HarnessError::SchedulerNotPacked(host_path.to_owned()));
        }
        let name = host_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let req = Request::StartScheduler(StartScheduler {
            path: GuestImage::guest_path(host_path),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            attach_timeout_ms: u64::try_from(attach_deadline.as_millis()).unwrap_or(u64::MAX),
            expect_name: None,
        });
        match self.request(&req, attach_deadline + Duration::from_secs(30))? {
            Reply::Attached { name, pid } => {
                let reported = self
                    .sched
                    .iter()
                    .rev()
                    .find(|e| e.state == SchedState::Attached)
                    .map(|e| e.name.clone());
                if reported.as_deref() != Some(name.as_str()) {
                    return Err(HarnessError::Protocol {
                        what: "start_scheduler".into(),
                        detail: format!("reply names {name:?}, SchedulerState said {reported:?}"),
                    });
                }
                let a = Attached { name, pid };
                self.scheduler = Some(a.clone());
                Ok(a)
            }
            Reply::NotAttached {
                exit: Some(exit),
                stderr,
                kernel_log,
                ..
            } => Err(HarnessError::SchedulerExitedBeforeAttach {
                name,
                exit: describe(&exit),
                stderr,
                kernel_log,
            }),
            Reply::NotAttached {
                other_name: Some(found),
                ..
            } => Err(HarnessError::WrongScheduler {
                expected: name,
                found,
            }),
            Reply::NotAttached { stderr, .. } => Err(HarnessError::AttachTimeout {
                name,
                deadline: attach_deadline,
                stderr,
            }),
            other => Err(unexpected("start_scheduler", other)),
        }
    }

    /// Run `scenario` in the guest (cgroups, workers, telemetry) and return its report.
    /// The scheduler keeps running; check [`Session::scheduler_exit`] afterwards.
    pub fn run_scenario(
        &mut self,
        scenario: &ktstr_workload::Scenario,
    ) -> Result<ktstr_workload::ScenarioReport, HarnessError> {
        // The guest's own limit plus time for its reply to come back.
        let wait = Duration::from_millis(ktstr_workload::protocol::suggested_timeout_ms(scenario))
            + Duration::from_secs(30);
        let req = Request::RunScenario {
            scenario: scenario.clone(),
        };
        match self.request(&req, wait)? {
            Reply::Scenario { report } => ktstr_workload::protocol::parse_report(report.as_bytes())
                .map_err(|e| HarnessError::Protocol {
                    what: "run_scenario".into(),
                    detail: format!("report: {e}"),
                }),
            Reply::Error { message } => Err(HarnessError::Guest {
                what: format!("scenario {:?}", scenario.name),
                message,
            }),
            other => Err(unexpected("run_scenario", other)),
        }
    }

    /// If the attached scheduler has ended (exited or kicked out by the
    /// kernel), that ending as an error naming the kernel's reason.
    pub fn scheduler_exit(&mut self) -> Option<HarnessError> {
        let att = self.scheduler.clone()?;
        let ended = self
            .sched
            .iter()
            .find(|e| e.state == SchedState::Exited)
            .cloned()?;
        Some(self.ended_error(&att, ended))
    }

    /// The `SchedulerState` reports received so far (oldest first).
    pub fn scheduler_events(&self) -> impl Iterator<Item = &SchedEvent> {
        self.sched.iter()
    }

    /// Watch the attached scheduler for `period`: `Ok` if it is still
    /// attached at the end, else why it ended.
    pub fn watch_scheduler(&mut self, period: Duration) -> Result<(), HarnessError> {
        let Some(att) = self.scheduler.clone() else {
            return Err(HarnessError::Guest {
                what: "watch_scheduler".into(),
                message: "no scheduler is attached".into(),
            });
        };
        let until = Instant::now() + period;
        loop {
            if let Some(e) = self
                .sched
                .iter()
                .find(|e| e.state == SchedState::Exited)
                .cloned()
            {
                return Err(self.ended_error(&att, e));
            }
            match self.next_event(until) {
                Ok(_) => {}
                Err(NoEvent::Timeout) => return Ok(()),
                Err(NoEvent::Closed) => {
                    return Err(HarnessError::GuestGone {
                        what: "scheduler watch".into(),
                    });
                }
            }
        }
    }

    fn ended_error(&mut self, att: &Attached, e: SchedEvent) -> HarnessError {
        let (o, er) = self.output.get(&att.pid).cloned().unwrap_or_default();
        let scheduler_output = format!(
            "{}{}",
            String::from_utf8_lossy(&o),
            String::from_utf8_lossy(&er)
        );
        if e.exit_kind == SchedExitKind::Kernel {
            HarnessError::SchedulerKicked {
                name: e.name,
                reason: e.reason,
                exit_code: e.exit_code,
                scheduler_output,
            }
        } else {
            HarnessError::SchedulerExited {
                name: e.name,
                reason: e.reason,
                exit_code: e.exit_code,
                scheduler_output,
            }
        }
    }

    /// Stop the scheduler (SIGINT, SIGKILL after `grace`) and confirm the
    /// kernel detached it.
    pub fn stop_scheduler(&mut self, grace: Duration) -> Result<Detached, HarnessError> {
        let req = Request::StopScheduler(StopScheduler {
            grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            detach_timeout_ms: 10_000,
        });
        let reply = self.request(&req, grace + Duration::from_secs(60))?;
        let att = self.scheduler.take();
        match reply {
            Reply::Detached {
                exit,
                killed,
                kernel_log,
                ..
            } => {
                let (o, e) = att.map(|a| self.take_output(a.pid)).unwrap_or_default();
                Ok(Detached {
                    exit,
                    killed,
                    kernel_log,
                    output: format!(
                        "{}{}",
                        String::from_utf8_lossy(&o),
                        String::from_utf8_lossy(&e)
                    ),
                })
            }
            other => Err(unexpected("stop_scheduler", other)),
        }
    }

    /// Ask init to power off; returns how the guest ended.
    pub fn shutdown(mut self) -> Result<RunResult, HarnessError> {
        self.send(Command::Shutdown)?;
        let until = Instant::now() + Duration::from_secs(60).min(self.deadline);
        while self.exit_code.is_none() {
            if self.next_event(until).is_err() {
                break;
            }
        }
        if self.exit_code.is_none() {
            // No `Exit`: init is stuck or gone; do not wait out the deadline.
            self.guest.kill();
        }
        self.finish()
    }

    /// Make init panic (tests the panic path) and collect the end.
    pub fn trigger_init_panic(self, message: &str) -> Result<RunResult, HarnessError> {
        self.fatal(&Request::Panic {
            message: message.to_owned(),
        })
    }

    /// Make init raise fatal `signal` (tests the signal path) and collect the end.
    pub fn trigger_init_signal(self, signal: i32) -> Result<RunResult, HarnessError> {
        self.fatal(&Request::Raise { signal })
    }

    fn fatal(mut self, req: &Request) -> Result<RunResult, HarnessError> {
        match self.request(req, Duration::from_secs(60)) {
            Err(HarnessError::GuestGone { .. } | HarnessError::Timeout { .. }) => {}
            Err(e) => return Err(e),
            Ok(r) => return Err(unexpected("panic", r)),
        }
        self.finish()
    }

    fn finish(mut self) -> Result<RunResult, HarnessError> {
        // Drain anything still buffered so a late `Exit` counts.
        while self.next_event(Instant::now()).is_ok() {}
        let code = self.exit_code;
        let outcome = self.guest.wait()?;
        let exit = classify(code, &outcome);
        Ok(RunResult { exit, outcome })
    }
}

/// The `PANIC:` line of init on COM2, if any.
pub fn init_panic_message(com2: &[u8]) -> Option<String> {
    String::from_utf8_lossy(com2).lines().find_map(|l| {
        l.trim_start_matches('\0')
            .strip_prefix(PANIC_PREFIX)
            .map(|m| m.trim_end().to_owned())
    })
}

fn classify(code: Option<i32>, outcome: &Outcome) -> GuestExit {
    if let Some(m) = init_panic_message(&outcome.com2) {
        return GuestExit::InitPanic(m);
    }
    if outcome.exit == BackendExit::GuestPanic {
        return GuestExit::KernelPanic;
    }
    match (code, &outcome.exit) {
        (Some(c), BackendExit::Reboot | BackendExit::Shutdown) => GuestExit::Exited(c),
        (_, other) => GuestExit::NoExit(other.clone()),
    }
}

fn describe(exit: &ProcExit) -> String {
    match (exit.code, exit.signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown status".into(),
    }
}

fn op_name(req: &Request) -> String {
    match req {
        Request::Exec(e) => format!("exec {:?}", e.argv),
        Request::StartScheduler(s) => format!("start scheduler {}", s.path),
        Request::StopScheduler(_) => "stop scheduler".into(),
        Request::RunScenario { scenario } => format!("scenario {:?}", scenario.name),
        Request::Panic { .. } => "panic".into(),
        Request::Raise { signal } => format!("raise signal {signal}"),
        Request::Shell => "shell".into(),
    }
}

fn unexpected(what: &str, reply: Reply) -> HarnessError {
    match reply {
        Reply::Error { message } => HarnessError::Guest {
            what: what.into(),
            message,
        },
        other => HarnessError::Protocol {
            what: what.into(),
            detail: format!("unexpected reply {other:?}"),
        },
    }
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_panic_line_on_com2() {
        assert_eq!(
            init_panic_message(b"noise\r\nPANIC: boom at src/x.rs:3\r\n"),
            Some("boom at src/x.rs:3".into())
        );
        assert_eq!(init_panic_message(b"nothing"), None);
    }
}
