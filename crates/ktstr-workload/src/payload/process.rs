//! One payload's life: started in its own process group and cgroup (it
//! joins the cgroup itself between fork and exec, so every child it forks
//! is born there), polled, killed at its deadline, reaped.
//!
//! Cleanup invariant: dropping a [`LivePayload`] that has not ended kills
//! its process group and reaps it; its scratch directory (cwd, stdout,
//! stderr) is a `TempDir` removed with it. Anything that left the group
//! stays in the payload's cgroup, which the runner removes (killing it).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::output::{PARSE_BYTES, TAIL_BYTES, tail};
use super::spawn::{SpawnPlan, spawn};
use super::{PayloadEnd, PayloadRecord, PayloadSpec};

/// Where a payload runs: its cgroup's `cgroup.procs`, and CPUs to pin it
/// to when the hierarchy has no cpuset controller.
pub(crate) struct Placement<'a> {
    pub procs: &'a File,
    pub pin_to: Option<Vec<u32>>,
    pub cpus: Vec<u32>,
}

/// A started (or failed-to-start) payload.
pub(crate) struct LivePayload {
    spec: PayloadSpec,
    step: usize,
    cpus: Vec<u32>,
    started: Instant,
    started_at_ms: u64,
    scratch: Option<tempfile::TempDir>,
    /// Its pid (and process group), until reaped.
    child: Option<libc::pid_t>,
    end: Option<(PayloadEnd, Duration)>,
}

impl LivePayload {
    /// Start `spec` for step `step`; a failure to start is recorded as its
    /// end rather than returned, so the verdict names it.
    pub(crate) fn start(
        spec: &PayloadSpec,
        step: usize,
        place: Placement<'_>,
        started_at_ms: u64,
    ) -> Self {
        let mut p = LivePayload {
            spec: spec.clone(),
            step,
            cpus: place.cpus.clone(),
            started: Instant::now(),
            started_at_ms,
            scratch: None,
            child: None,
            end: None,
        };
        match p.spawn(&place) {
            Ok(()) => tracing::debug!(payload = %spec.name, "payload started"),
            Err(why) => p.end = Some((PayloadEnd::NotStarted(why), Duration::ZERO)),
        }
        p
    }

    fn spawn(&mut self, place: &Placement<'_>) -> Result<(), String> {
        let scratch = tempfile::Builder::new()
            .prefix(&format!("ktstr-payload-{}-", self.spec.name))
            .tempdir()
            .map_err(|e| format!("scratch directory: {e}"))?;
        let create = |name: &str| {
            File::create(scratch.path().join(name)).map_err(|e| format!("create {name}: {e}"))
        };
        let (stdout, stderr) = (create("stdout")?, create("stderr")?);
        self.started = Instant::now();
        let child = spawn(SpawnPlan {
            program: &self.spec.program,
            args: &self.spec.args,
            cwd: scratch.path(),
            stdout,
            stderr,
            procs: place.procs.as_raw_fd(),
            pin_to: place.pin_to.as_deref(),
        })?;
        self.child = Some(child);
        self.scratch = Some(scratch);
        Ok(())
    }

    /// Its name (and cgroup).
    pub(crate) fn name(&self) -> &str {
        &self.spec.name
    }

    /// True once it has ended (on its own, by a signal, or killed now
    /// because its deadline passed).
    pub(crate) fn poll(&mut self) -> bool {
        if self.end.is_some() {
            return true;
        }
        let Some(pid) = self.child else {
            return true;
        };
        let status = match try_wait(pid) {
            Ok(Some(status)) => status,
            Ok(None) if self.started.elapsed() < Duration::from_millis(self.spec.timeout_ms) => {
                return false;
            }
            Ok(None) => {
                self.kill_and_reap();
                self.end = Some((PayloadEnd::TimedOut, self.started.elapsed()));
                return true;
            }
            Err(e) => {
                self.kill_and_reap();
                let why = format!("waiting for it failed: {e}");
                self.end = Some((PayloadEnd::NotStarted(why), self.started.elapsed()));
                return true;
            }
        };
        let end = if libc::WIFEXITED(status) {
            PayloadEnd::Exited(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            PayloadEnd::Killed(libc::WTERMSIG(status))
        } else {
            PayloadEnd::Killed(0)
        };
        self.end = Some((end, self.started.elapsed()));
        self.child = None;
        true
    }

    fn kill_and_reap(&mut self) {
        if let Some(pid) = self.child.take() {
            // SAFETY: kill(2) on the process group of our own unreaped child
            // (its pid is the group's id), then reaping that child.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
    }

    /// Its record, once [`poll`](Self::poll) said it ended: exit, run
    /// time, output tails and figures.
    pub(crate) fn finish(mut self) -> PayloadRecord {
        if self.end.is_none() {
            self.kill_and_reap();
        }
        let (end, wall) = self
            .end
            .take()
            .unwrap_or((PayloadEnd::TimedOut, self.started.elapsed()));
        let read = |name: &str, max| {
            self.scratch
                .as_ref()
                .map_or_else(String::new, |d| tail(&d.path().join(name), max))
        };
        let (mut figures, mut figures_error) = (Default::default(), None);
        if let Some(kind) = self.spec.figures {
            match kind.parse(&read("stdout", PARSE_BYTES), &read("stderr", PARSE_BYTES)) {
                Ok(f) => figures = f,
                Err(e) => figures_error = Some(e),
            }
        }
        PayloadRecord {
            name: self.spec.name.clone(),
            argv: std::iter::once(&self.spec.program)
                .chain(&self.spec.args)
                .cloned()
                .collect(),
            step: self.step,
            cpus: std::mem::take(&mut self.cpus),
            started_at_ms: self.started_at_ms,
            wall_ms: wall.as_millis() as u64,
            timeout_ms: self.spec.timeout_ms,
            end,
            stdout_tail: read("stdout", TAIL_BYTES),
            stderr_tail: read("stderr", TAIL_BYTES),
            figures,
            figures_error,
        }
    }
}

/// `waitpid(pid, WNOHANG)`: its wait status once it ended.
fn try_wait(pid: libc::pid_t) -> std::io::Result<Option<libc::c_int>> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid on our own child with a valid status out-pointer.
        match unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } {
            0 => return Ok(None),
            n if n == pid => return Ok(Some(status)),
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

impl Drop for LivePayload {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}
