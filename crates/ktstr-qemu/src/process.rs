//! The QEMU child: spawn, signal, reap. Invariant: a pid is signalled only while holding
//! the state lock and only if it has not been reaped, so a kill can never hit a recycled pid.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Cap on captured QEMU stderr; QEMU's own messages are short.
const STDERR_CAP: usize = 64 * 1024;

#[derive(Debug, Default)]
struct ProcState {
    /// `Some` until the child is reaped.
    pid: Option<libc::pid_t>,
    kill_requested: Option<Instant>,
}

fn lock(state: &Mutex<ProcState>) -> MutexGuard<'_, ProcState> {
    // A poisoned lock only means another thread panicked mid-update of two plain fields.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Cloneable, usable from any thread: SIGTERMs QEMU now; the run escalates to SIGKILL
/// after the grace period and reports [`crate::ExitKind::Killed`].
#[derive(Clone, Debug)]
pub struct KillHandle {
    state: Arc<Mutex<ProcState>>,
}

impl KillHandle {
    pub fn kill(&self) {
        let mut st = lock(&self.state);
        st.kill_requested.get_or_insert_with(Instant::now);
        if let Some(pid) = st.pid {
            tracing::debug!(pid, "kill requested: SIGTERM");
            // SAFETY: pid is our unreaped child (checked under the lock); kill has no memory effects.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }

    pub fn kill_requested(&self) -> bool {
        lock(&self.state).kill_requested.is_some()
    }
}

/// The thread that forks QEMU. Linux sends `PR_SET_PDEATHSIG` when the
/// forking *thread* exits, so this one lives until QEMU is reaped: if the
/// whole process dies first (SIGKILL, `panic = "abort"`), QEMU gets SIGKILL
/// and no VM outlives its test.
struct ParentThread {
    release: Sender<()>,
    handle: JoinHandle<()>,
}

impl ParentThread {
    fn spawn(mut cmd: Command) -> Result<(Self, Child)> {
        let (child_tx, child_rx) = channel();
        let (release, released) = channel::<()>();
        let handle = std::thread::Builder::new()
            .name("qemu-parent".into())
            .spawn(move || {
                let spawned = cmd.spawn();
                let ok = spawned.is_ok();
                let _ = child_tx.send(spawned);
                if ok {
                    let _ = released.recv(); // until QEMU is reaped (or the sender drops)
                }
            })
            .map_err(|e| Error::io("spawn qemu-parent thread", e))?;
        match child_rx.recv() {
            Ok(Ok(child)) => Ok((ParentThread { release, handle }, child)),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(Error::io("spawn QEMU", e))
            }
            Err(_) => {
                let _ = handle.join();
                Err(Error::io(
                    "spawn QEMU",
                    std::io::Error::other("qemu-parent thread died"),
                ))
            }
        }
    }

    fn release(self) {
        let _ = self.release.send(());
        let _ = self.handle.join();
    }
}

/// Owns the child; Drop kills and reaps it if the run did not.
pub(crate) struct QemuProcess {
    child: Child,
    parent: Option<ParentThread>,
    state: Arc<Mutex<ProcState>>,
    status: Option<ExitStatus>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    stderr_text: Option<String>,
    grace: Duration,
}

impl QemuProcess {
    /// Starts `binary` with `args`; of this process's descriptors (all close-on-exec) it
    /// inherits exactly `inherit`, under the same numbers.
    pub(crate) fn spawn(
        binary: &Path,
        args: &[OsString],
        inherit: Vec<RawFd>,
        grace: Duration,
    ) -> Result<Self> {
        tracing::debug!(binary = %binary.display(), ?args, ?inherit, "spawning QEMU");
        let mut cmd = Command::new(binary);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the forked child before exec and only makes the
        // async-signal-safe prctl and fcntl system calls (no allocation: `inherit` was
        // built before the fork). Clearing FD_CLOEXEC in the child alone keeps the
        // descriptors out of any other process this one spawns meanwhile.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                for &fd in &inherit {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let (parent, mut child) = ParentThread::spawn(cmd).map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Error::QemuBinaryMissing {
                    path: binary.to_owned(),
                }
            }
            other => other,
        })?;
        let stderr = child.stderr.take().map(|mut pipe| {
            std::thread::Builder::new()
                .name("qemu-stderr".into())
                .spawn(move || {
                    let mut out = Vec::new();
                    let mut buf = [0u8; 4096];
                    // Keep draining past the cap so QEMU never blocks on a full pipe.
                    while let Ok(n @ 1..) = pipe.read(&mut buf) {
                        let room = STDERR_CAP.saturating_sub(out.len());
                        out.extend_from_slice(&buf[..n.min(room)]);
                    }
                    out
                })
        });
        let stderr = match stderr {
            Some(Ok(h)) => Some(h),
            Some(Err(e)) => {
                let _ = child.kill();
                let _ = child.wait();
                parent.release();
                return Err(Error::io("spawn stderr thread", e));
            }
            None => None,
        };
        let pid = libc::pid_t::try_from(child.id()).ok();
        Ok(QemuProcess {
            child,
            parent: Some(parent),
            state: Arc::new(Mutex::new(ProcState {
                pid,
                kill_requested: None,
            })),
            status: None,
            stderr,
            stderr_text: None,
            grace,
        })
    }

    pub(crate) fn kill_handle(&self) -> KillHandle {
        KillHandle {
            state: self.state.clone(),
        }
    }

    pub(crate) fn kill_requested_at(&self) -> Option<Instant> {
        lock(&self.state).kill_requested
    }

    /// Non-blocking reap; the lock makes it atomic with respect to [`KillHandle::kill`].
    pub(crate) fn try_reap(&mut self) -> Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let mut st = lock(&self.state);
        let r = self
            .child
            .try_wait()
            .map_err(|e| Error::io("waitpid QEMU", e))?;
        if let Some(s) = r {
            st.pid = None;
            self.status = Some(s);
        }
        Ok(r)
    }

    /// Polls until the child exits or `until` passes.
    pub(crate) fn reap_until(&mut self, until: Instant) -> Result<Option<ExitStatus>> {
        loop {
            if let Some(s) = self.try_reap()? {
                return Ok(Some(s));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn signal(&self, sig: libc::c_int) {
        let st = lock(&self.state);
        if let Some(pid) = st.pid {
            // SAFETY: pid is our unreaped child (checked under the lock).
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// SIGTERM, wait `grace`, then SIGKILL; always returns with the child reaped.
    pub(crate) fn terminate(&mut self) -> Result<ExitStatus> {
        if let Some(s) = self.try_reap()? {
            return Ok(s);
        }
        self.signal(libc::SIGTERM);
        if let Some(s) = self.reap_until(Instant::now() + self.grace)? {
            return Ok(s);
        }
        self.force_kill()
    }

    /// SIGKILL and blocking reap.
    pub(crate) fn force_kill(&mut self) -> Result<ExitStatus> {
        if let Some(s) = self.try_reap()? {
            return Ok(s);
        }
        tracing::debug!("QEMU ignored SIGTERM: SIGKILL");
        self.signal(libc::SIGKILL);
        // Hold the lock across the blocking reap so no KillHandle can see a stale pid.
        let mut st = lock(&self.state);
        let s = self
            .child
            .wait()
            .map_err(|e| Error::io("waitpid QEMU", e))?;
        st.pid = None;
        drop(st);
        self.status = Some(s);
        Ok(s)
    }

    /// QEMU's stderr; joins the drain thread, so call only after the child is reaped.
    pub(crate) fn stderr(&mut self) -> String {
        if let Some(h) = self.stderr.take() {
            let bytes = h.join().unwrap_or_default();
            self.stderr_text = Some(String::from_utf8_lossy(&bytes).trim_end().to_owned());
        }
        self.stderr_text.clone().unwrap_or_default()
    }

    pub(crate) fn grace(&self) -> Duration {
        self.grace
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        if self.status.is_none() {
            if let Err(e) = self.terminate() {
                tracing::warn!(error = %e, "could not reap QEMU");
            }
        }
        if let Some(h) = self.stderr.take() {
            let _ = h.join();
        }
        if let Some(parent) = self.parent.take() {
            parent.release();
        }
    }
}
