//! Request plumbing: frames to the guest, events back, each request a
//! numbered `RunStep` answered by the `ScenarioResult` with the same step.

use std::time::{Duration, Instant};

use ktstr_backend::death::OomKill;
use ktstr_backend::death::console::oom_kills;
use ktstr_guest::proto::{ExecRequest, Reply, Request};
use ktstr_wire::{ByteStr, Command, RunStep, encode};

use super::Session;
use crate::error::HarnessError;
use crate::events::{Event, NoEvent};

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
    /// The kernel's OOM killer killed it (SIGKILL with no deadline): its
    /// line from the guest's kernel log.
    pub oom_kill: Option<OomKill>,
}

impl Session {
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
        match &self.guest {
            Some(guest) => {
                guest.send_bulk(&bytes);
                Ok(())
            }
            // The VM already ended: repeat why.
            None => Err(self.died("a command to the guest", Duration::ZERO)),
        }
    }

    pub(super) fn request(&mut self, req: &Request, wait: Duration) -> Result<Reply, HarnessError> {
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
        let started = Instant::now();
        let until = started + wait;
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
                Err(NoEvent::Closed) => return Err(self.died(&what, started.elapsed())),
            }
        }
    }

    pub(crate) fn take_output(&mut self, pid: u32) -> (Vec<u8>, Vec<u8>) {
        self.output.remove(&pid).unwrap_or_default()
    }

    /// Run `argv` in the guest; `timeout` kills it (and bounds the wait).
    /// A SIGKILL that was not the deadline's is looked up in the guest's
    /// kernel log, so an OOM kill names itself in [`ExecResult::oom_kill`].
    pub fn exec(&mut self, argv: &[&str], timeout: Duration) -> Result<ExecResult, HarnessError> {
        let (pid, mut result) = self.exec_once(argv, timeout)?;
        if result.signal == Some(libc::SIGKILL) && !result.timed_out {
            result.oom_kill = self.oom_kill_of(pid);
        }
        Ok(result)
    }

    /// The OOM killer's kill of guest process `pid`, from `dmesg` in the
    /// guest (`None` if there was none, or the log could not be read).
    fn oom_kill_of(&mut self, pid: u32) -> Option<OomKill> {
        let (_, log) = self.exec_once(&["dmesg"], Duration::from_secs(30)).ok()?;
        oom_kills(&String::from_utf8_lossy(&log.stdout))
            .into_iter()
            .find(|k| k.pid == pid)
    }

    /// `exec` without the OOM look-up; also returns the guest pid.
    fn exec_once(
        &mut self,
        argv: &[&str],
        timeout: Duration,
    ) -> Result<(u32, ExecResult), HarnessError> {
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
                let result = ExecResult {
                    stdout,
                    stderr,
                    code: exit.code,
                    signal: exit.signal,
                    timed_out,
                    oom_kill: None,
                };
                Ok((pid, result))
            }
            other => Err(unexpected("exec", other)),
        }
    }

    /// Make init write `bytes` of unframed garbage on the bulk channel
    /// (tests the decoder's resync); `Ok` once its reply got through.
    pub fn flood_bulk_channel(&mut self, bytes: u64) -> Result<(), HarnessError> {
        let wait = Duration::from_secs(60 + bytes / (1 << 20));
        match self.request(&Request::Garbage { bytes }, wait)? {
            Reply::Exec { .. } => Ok(()),
            other => Err(unexpected("garbage", other)),
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
        self.scenario_sent = Some(std::time::Instant::now());
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
}

pub(super) fn op_name(req: &Request) -> String {
    match req {
        Request::Exec(e) => format!("exec {:?}", e.argv),
        Request::StartScheduler(s) => format!("start scheduler {}", s.path),
        Request::StopScheduler(_) => "stop scheduler".into(),
        Request::RunScenario { scenario } => format!("scenario {:?}", scenario.name),
        Request::Panic { .. } => "panic".into(),
        Request::Raise { signal } => format!("raise signal {signal}"),
        Request::Garbage { bytes } => format!("garbage ({bytes} bytes)"),
        Request::Shell => "shell".into(),
    }
}

pub(super) fn unexpected(what: &str, reply: Reply) -> HarnessError {
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
