//! The scheduler under test: start it and confirm it attached, watch it,
//! report how it ended (kicked out by the kernel or exited), stop it.

use std::path::Path;
use std::time::{Duration, Instant};

use ktstr_guest::proto::{ProcExit, Reply, Request, StartScheduler, StopScheduler};
use ktstr_wire::{SchedExitKind, SchedState};

use super::Session;
use super::requests::unexpected;
use crate::error::HarnessError;
use crate::events::{NoEvent, SchedEvent};
use crate::image::GuestImage;

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

impl Session {
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

    /// What the attached scheduler has written to stderr so far.
    pub fn scheduler_stderr(&self) -> Option<String> {
        let att = self.scheduler.as_ref()?;
        let (_, err) = self.output.get(&att.pid)?;
        Some(String::from_utf8_lossy(err).into_owned())
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
        let started = Instant::now();
        let until = started + period;
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
                    return Err(self.died(&format!("scheduler {}", att.name), started.elapsed()));
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
}

fn describe(exit: &ProcExit) -> String {
    match (exit.code, exit.signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown status".into(),
    }
}
