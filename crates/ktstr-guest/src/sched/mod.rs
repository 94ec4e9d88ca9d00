//! The scheduler under test, from start to detach.
//!
//! Start: spawn the binary with piped output (relayed to the host and kept
//! as tails), then poll until `/sys/kernel/sched_ext/state` is `enabled`
//! and `root/ops` names it, while checking that our process is still alive
//! (so the attached scheduler is certainly ours). A monitor thread then
//! watches for the process exiting or the state leaving `enabled`, and
//! reports it with the kernel's reason from `/dev/kmsg`. Stop: SIGINT,
//! SIGKILL after a grace period, then wait for `disabled`. Every transition
//! goes to the host as a `SchedulerState`.

pub mod kmsg;
pub mod sysfs;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ktstr_wire::{ByteStr, Lifecycle, Message, Phase, SchedExitKind, SchedState, SchedulerState};

use crate::outbox::Outbox;
use crate::proto::{ProcExit, Reply, StartScheduler, StopScheduler};
use crate::reaper;
use crate::relay::{self, Stream, Tail};
use kmsg::Kmsg;
use sysfs::SchedExtSysfs;

const POLL: Duration = Duration::from_millis(10);
const MONITOR_POLL: Duration = Duration::from_millis(20);
/// After the kernel disables a scheduler, how long to wait for the process
/// to exit and for the kernel's log line.
const AFTERMATH: Duration = Duration::from_secs(3);
/// How long a scheduler sched_ext asked to restart may take to attach again.
const REATTACH: Duration = Duration::from_secs(10);
/// How long relays may take to hit EOF once the process is gone.
const RELAY_GRACE: Duration = Duration::from_secs(2);

/// Kernel log shared between the monitor and the request handlers.
#[derive(Clone)]
struct KernelLog {
    kmsg: Arc<Mutex<Option<Kmsg>>>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl KernelLog {
    /// Append new sched_ext lines; returns all lines of this run so far.
    fn collect(&self) -> Vec<String> {
        let fresh = {
            let mut k = self.kmsg.lock().unwrap_or_else(|e| e.into_inner());
            k.as_mut().map(Kmsg::drain).unwrap_or_default()
        };
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.extend(kmsg::sched_ext_lines(fresh));
        lines.clone()
    }

    fn reset(&self) {
        self.collect();
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// How a run ended while the monitor watched it.
#[derive(Clone, Debug)]
struct Ended {
    exit: ProcExit,
    proc_gone: bool,
    kernel_log: Vec<String>,
}

struct Running {
    pid: u32,
    name: String,
    relays: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    monitor: Option<JoinHandle<()>>,
    ended: Arc<Mutex<Option<Ended>>>,
}

/// Owner of at most one scheduler run.
pub struct Scheduler {
    sysfs: SchedExtSysfs,
    log: KernelLog,
    running: Option<Running>,
}

impl Scheduler {
    /// Use `sysfs`, and `kmsg` for the kernel's reasons (None: no reasons).
    pub fn new(sysfs: SchedExtSysfs, kmsg: Option<Kmsg>) -> Self {
        Scheduler {
            sysfs,
            log: KernelLog {
                kmsg: Arc::new(Mutex::new(kmsg)),
                lines: Arc::default(),
            },
            running: None,
        }
    }

    /// The real kernel interfaces.
    pub fn system() -> Self {
        Scheduler::new(
            SchedExtSysfs::default(),
            Kmsg::open(Path::new("/dev/kmsg")).ok(),
        )
    }

    /// Start `req` and wait until it is attached (or clearly is not).
    pub fn start(&mut self, req: &StartScheduler, out: &Outbox) -> Reply {
        if let Some(r) = &self.running {
            if lock(&r.ended).is_none() {
                return error(format!(
                    "scheduler {} (pid {}) is still running",
                    r.name, r.pid
                ));
            }
            self.finish_ended();
        }
        if !self.sysfs.present() {
            return error("kernel has no sched_ext (/sys/kernel/sched_ext/state missing)".into());
        }
        let state = self.sysfs.state().unwrap_or_default();
        if state != "disabled" {
            let ops = self.sysfs.ops().unwrap_or_default();
            return error(format!("sched_ext is {state} ({ops}) before starting"));
        }
        self.log.reset();
        let mut cmd = Command::new(&req.path);
        cmd.args(&req.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match reaper::spawn(&mut cmd) {
            Ok(c) => c,
            Err(e) => return error(format!("start {}: {e}", req.path)),
        };
        let pid = child.pid;
        let (out_tail, err_tail) = (Tail::default(), Tail::default());
        let mut relays = Vec::new();
        if let Some(o) = child.stdout.take() {
            relays.extend(relay::start(o, Stream::Stdout, pid, out.clone(), out_tail.clone()).ok());
        }
        if let Some(e) = child.stderr.take() {
            relays.extend(relay::start(e, Stream::Stderr, pid, out.clone(), err_tail.clone()).ok());
        }
        let _ = out.send(&Message::Lifecycle(Lifecycle::new(Phase::SchedulerLoading)));
        let base = Path::new(&req.path)
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let deadline = Instant::now() + Duration::from_millis(req.attach_timeout_ms);
        let not_attached = |exit, timed_out, other_name, relays: Vec<JoinHandle<()>>| {
            join_relays(relays);
            let kernel_log = self.log.collect();
            let stderr = err_tail.text();
            if let Some(exit) = exit {
                send_state(
                    out,
                    SchedState::Exited,
                    SchedExitKind::BeforeAttach,
                    &exit,
                    &base,
                    &stderr,
                );
            }
            Reply::NotAttached {
                pid,
                exit,
                timed_out,
                other_name,
                stderr,
                stdout: out_tail.text(),
                kernel_log,
            }
        };
        loop {
            if let Some(status) = reaper::try_status(pid) {
                let exit = ProcExit::from_wait_status(status);
                return not_attached(Some(exit), false, None, relays);
            }
            if let Some(name) = self.sysfs.attached() {
                if req.expect_name.as_ref().is_some_and(|want| *want != name) {
                    kill_and_wait(pid);
                    return not_attached(None, false, Some(name), relays);
                }
                send_state(
                    out,
                    SchedState::Attached,
                    SchedExitKind::NotExited,
                    &ProcExit::default(),
                    &name,
                    "",
                );
                let run = self.watch(pid, name.clone(), relays, out);
                self.running = Some(run);
                return Reply::Attached { name, pid };
            }
            if Instant::now() >= deadline {
                kill_and_wait(pid);
                return not_attached(None, true, None, relays);
            }
            std::thread::sleep(POLL);
        }
    }

    fn watch(&self, pid: u32, name: String, relays: Vec<JoinHandle<()>>, out: &Outbox) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let ended = Arc::new(Mutex::new(None));
        let (sysfs, log, out) = (self.sysfs.clone(), self.log.clone(), out.clone());
        let (stop2, ended2, name2) = (stop.clone(), ended.clone(), name.clone());
        let monitor = std::thread::Builder::new()
            .name("sched-monitor".into())
            .spawn(move || monitor(pid, &name2, &sysfs, &log, &out, &stop2, &ended2))
            .ok();
        Running {
            pid,
            name,
            relays,
            stop,
            monitor,
            ended,
        }
    }

    /// Stop the running scheduler and wait for the kernel to detach it.
    pub fn stop(&mut self, req: &StopScheduler, out: &Outbox) -> Reply {
        let Some(mut run) = self.running.take() else {
            return error("no scheduler is running".into());
        };
        run.stop.store(true, Ordering::Relaxed);
        if let Some(m) = run.monitor.take() {
            let _ = m.join();
        }
        if let Some(ended) = lock(&run.ended).clone() {
            if !ended.proc_gone {
                kill_and_wait(run.pid);
            }
            join_relays(run.relays);
            return Reply::Detached {
                exit: ended.exit,
                killed: !ended.proc_gone,
                ended_before_stop: true,
                kernel_log: ended.kernel_log,
            };
        }
        let pid = i32::try_from(run.pid).unwrap_or(i32::MAX);
        reaper::kill(pid, libc::SIGINT);
        let grace = Instant::now() + Duration::from_millis(req.grace_ms);
        let (status, killed) = match reaper::wait(run.pid, grace) {
            Some(s) => (Some(s), false),
            None => {
                reaper::kill(pid, libc::SIGKILL);
                let s = reaper::wait(run.pid, Instant::now() + Duration::from_secs(10));
                (s, true)
            }
        };
        join_relays(run.relays);
        let exit = status.map(ProcExit::from_wait_status).unwrap_or_default();
        let detach_by = Instant::now() + Duration::from_millis(req.detach_timeout_ms);
        let mut state = self.sysfs.state().unwrap_or_default();
        while state != "disabled" && Instant::now() < detach_by {
            std::thread::sleep(POLL);
            state = self.sysfs.state().unwrap_or_default();
        }
        let kernel_log = self.log.collect();
        if state != "disabled" {
            return error(format!(
                "{} still {state} after stop (killed={killed})",
                run.name
            ));
        }
        let reason = kernel_log.join("\n");
        send_state(
            out,
            SchedState::Detached,
            SchedExitKind::Process,
            &exit,
            &run.name,
            &reason,
        );
        Reply::Detached {
            exit,
            killed,
            ended_before_stop: false,
            kernel_log,
        }
    }

    /// Stop whatever runs (used before power-off).
    pub fn shutdown(&mut self, out: &Outbox) {
        if self.running.is_some() {
            let req = StopScheduler {
                grace_ms: 2000,
                detach_timeout_ms: 5000,
            };
            let _ = self.stop(&req, out);
        }
    }

    /// Reap the bookkeeping of a run the monitor saw end.
    fn finish_ended(&mut self) {
        if let Some(mut run) = self.running.take() {
            if let Some(m) = run.monitor.take() {
                let _ = m.join();
            }
            if lock(&run.ended).as_ref().is_some_and(|e| !e.proc_gone) {
                kill_and_wait(run.pid);
            }
            join_relays(run.relays);
        }
    }
}

fn monitor(
    pid: u32,
    name: &str,
    sysfs: &SchedExtSysfs,
    log: &KernelLog,
    out: &Outbox,
    stop: &AtomicBool,
    ended: &Mutex<Option<Ended>>,
) {
    // Kernel lines before `seen` belong to attaches the scheduler already
    // recovered from (hotplug restarts).
    let mut seen = 0;
    // A restart can finish between two polls: enable_seq still shows it.
    let mut seq = sysfs.enable_seq();
    while !stop.load(Ordering::Relaxed) {
        let status = reaper::try_status(pid);
        let left = sysfs.state().as_deref() != Some("enabled") || sysfs.enable_seq() != seq;
        if status.is_none() && !left {
            std::thread::sleep(MONITOR_POLL);
            continue;
        }
        // Something ended: give the kernel's log line and the process a
        // moment to catch up, so the report carries both. The kernel logs
        // an error's reason and its message as two records, so a poll can
        // land between them: wait (to the same bound) for the message too.
        let until = Instant::now() + AFTERMATH;
        let mut status = status;
        let mut lines = log.collect();
        let incomplete = |lines: &[String]| {
            kmsg::disable_reason(lines).is_none() || kmsg::error_message_pending(lines)
        };
        while incomplete(lines.get(seen..).unwrap_or_default()) && Instant::now() < until {
            std::thread::sleep(MONITOR_POLL);
            status = status.or_else(|| reaper::try_status(pid));
            lines = log.collect();
        }
        let fresh = lines.get(seen..).unwrap_or_default();
        let restart = kmsg::disable_reason(fresh).is_some_and(kmsg::is_restart_request);
        if status.is_none() && restart && reattached(pid, name, sysfs) {
            // sched_ext asked the scheduler to restart (CPU hotplug without
            // ops.cpu_online/offline) and it did: still the one under test.
            let why = fresh
                .iter()
                .find(|l| l.contains(" disabled ("))
                .cloned()
                .unwrap_or_default();
            send_state(
                out,
                SchedState::Attached,
                SchedExitKind::NotExited,
                &ProcExit::default(),
                name,
                &why,
            );
            seen = lines.len();
            seq = sysfs.enable_seq();
            continue;
        }
        let status = status.or_else(|| reaper::wait(pid, until));
        let fresh = lines.get(seen..).unwrap_or_default();
        let exit = status.map(ProcExit::from_wait_status).unwrap_or_default();
        let kicked = kmsg::disable_reason(fresh)
            .is_some_and(|r| !kmsg::is_clean_unregister(r) && !kmsg::is_restart_request(r));
        let kind = if kicked {
            SchedExitKind::Kernel
        } else {
            SchedExitKind::Process
        };
        let reason = if fresh.is_empty() {
            format!("scheduler process ended: {exit:?}")
        } else {
            fresh.join("\n")
        };
        send_state(out, SchedState::Exited, kind, &exit, name, &reason);
        *lock(ended) = Some(Ended {
            exit,
            proc_gone: status.is_some(),
            kernel_log: fresh.to_vec(),
        });
        return;
    }
}

/// Whether process `pid` attached `name` again within [`REATTACH`].
fn reattached(pid: u32, name: &str, sysfs: &SchedExtSysfs) -> bool {
    let until = Instant::now() + REATTACH;
    while Instant::now() < until {
        if reaper::try_status(pid).is_some() {
            return false;
        }
        if sysfs.attached().as_deref() == Some(name) {
            return true;
        }
        std::thread::sleep(MONITOR_POLL);
    }
    false
}

fn send_state(
    out: &Outbox,
    state: SchedState,
    kind: SchedExitKind,
    exit: &ProcExit,
    name: &str,
    reason: &str,
) {
    let _ = out.send(&Message::SchedulerState(SchedulerState {
        state,
        exit_kind: kind,
        exit_code: if kind == SchedExitKind::NotExited {
            0
        } else {
            exit.wire_code()
        },
        name: ByteStr(name.as_bytes()),
        reason: ByteStr(reason.as_bytes()),
    }));
}

fn kill_and_wait(pid: u32) {
    reaper::kill(i32::try_from(pid).unwrap_or(i32::MAX), libc::SIGKILL);
    let _ = reaper::wait(pid, Instant::now() + Duration::from_secs(10));
}

/// Join relays that reach EOF in time; a relay whose pipe some other
/// process still holds is left to end with it rather than hang init.
fn join_relays(relays: Vec<JoinHandle<()>>) {
    let until = Instant::now() + RELAY_GRACE;
    for r in relays {
        while !r.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        if r.is_finished() {
            let _ = r.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn error(message: String) -> Reply {
    Reply::Error { message }
}
