//! Forking a worker, placing it (cgroup, affinity), and collecting its report
//! and exit status; the parent's side of the worker's life.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::control::ControlPage;
use super::telemetry::ChildReport;
use super::work::{self, PreparedWork};
use super::{WorkerError, sys};

/// Everything a worker needs, prepared before `fork` so the child allocates
/// as little as possible.
#[derive(Debug)]
pub struct WorkerPlan {
    /// Index of this worker's stop slot.
    pub slot: usize,
    /// What to do.
    pub work: PreparedWork,
    /// Raw fd of the cgroup's `cgroup.procs`, or None to stay put.
    pub procs_fd: Option<RawFd>,
    /// CPUs to pin to before starting (cpuset emulation), if any.
    pub affinity: Option<Vec<u32>>,
    /// The step (1-based) whose gate opening starts the work (see
    /// [`ControlPage::open_gate`]); 0 starts at once.
    pub start_with_step: u32,
}

/// Two pipes for a ping-pong pair; the fds stay owned by the returned values
/// and must outlive both forks.
pub fn pipe_pair() -> Result<[OwnedFd; 4], WorkerError> {
    let a = pipe()?;
    let b = pipe()?;
    Ok([a.0, a.1, b.0, b.1])
}

/// A close-on-exec pipe: (read end, write end).
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), WorkerError> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid 2-int out-array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(sys("pipe2"));
    }
    // SAFETY: both fds were just returned by pipe2 and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A running worker as the parent sees it. Dropping an unreaped worker
/// SIGKILLs and reaps it.
#[derive(Debug)]
pub struct WorkerHandle {
    pid: i32,
    report: File,
    reaped: bool,
}

impl WorkerHandle {
    /// The worker's pid.
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Read the worker's report (it must already have been told to stop),
    /// then reap it. A worker that does not answer by `deadline` is killed.
    pub fn collect(&mut self, deadline: Instant) -> Result<ChildReport, CollectError> {
        let mut buf = Vec::new();
        let res = read_until_eof(&mut self.report, &mut buf, deadline);
        if res.is_err() {
            // SAFETY: kill(2) on our own unreaped child; pid cannot be reused yet.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
        let status = self.reap();
        res?;
        if buf.is_empty() {
            return Err(CollectError::NoReport(WaitStatus(status)));
        }
        serde_json::from_slice(&buf).map_err(|source| CollectError::BadReport {
            source,
            status: WaitStatus(status),
        })
    }

    fn reap(&mut self) -> i32 {
        if self.reaped {
            return 0;
        }
        let mut status = 0;
        loop {
            // SAFETY: waitpid on our own child with a valid status pointer.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r == self.pid || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)
            {
                break;
            }
        }
        self.reaped = true;
        status
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: kill(2) on our own unreaped child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            self.reap();
        }
    }
}

/// Why a worker's report could not be collected.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The worker did not close its report pipe in time (it was killed).
    #[error("no report before the deadline")]
    Deadline,
    /// Reading the report pipe failed.
    #[error("reading report: {0}")]
    Read(std::io::Error),
    /// The worker ended without writing a report.
    #[error("{0}")]
    NoReport(WaitStatus),
    /// The report is not a [`ChildReport`].
    #[error("bad report ({source}); {status}")]
    BadReport {
        /// The JSON error.
        source: serde_json::Error,
        /// How the worker ended.
        status: WaitStatus,
    },
}

/// A `waitpid` status, displayed as how the worker ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitStatus(pub i32);

impl std::fmt::Display for WaitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.0;
        if libc::WIFSIGNALED(status) {
            write!(f, "killed by signal {}", libc::WTERMSIG(status))
        } else if libc::WIFEXITED(status) {
            write!(
                f,
                "exited with status {} without a report",
                libc::WEXITSTATUS(status)
            )
        } else {
            write!(f, "wait status {status:#x}")
        }
    }
}

pub(super) fn poll_in(fd: RawFd, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    r > 0
}

fn read_until_eof(f: &mut File, buf: &mut Vec<u8>, deadline: Instant) -> Result<(), CollectError> {
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(CollectError::Deadline);
        }
        if !poll_in(f.as_raw_fd(), left) {
            continue;
        }
        match f.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(CollectError::Read(e)),
        }
    }
}

/// Fork a worker and wait (up to 5 s) until it has placed itself.
pub fn spawn(plan: &WorkerPlan, ctl: &ControlPage) -> Result<WorkerHandle, WorkerError> {
    let (rd, wr) = pipe()?;
    // SAFETY: fork(2). The child only runs `child_entry`, which never returns
    // (it ends in `_exit`), so no parent state is unwound twice.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(sys("fork"));
    }
    if pid == 0 {
        drop(rd);
        child_entry(plan, ctl, wr.as_raw_fd());
    }
    drop(wr);
    let mut h = WorkerHandle {
        pid,
        report: File::from(rd),
        reaped: false,
    };
    let mut first = [0u8; 1];
    let ready = poll_in(h.report.as_raw_fd(), Duration::from_secs(5))
        && matches!(h.report.read(&mut first), Ok(1))
        && first[0] == b'R';
    if !ready {
        let mut rest = Vec::new();
        let _ = read_until_eof(
            &mut h.report,
            &mut rest,
            Instant::now() + Duration::from_millis(100),
        );
        return Err(WorkerError::Start {
            pid,
            reason: String::from_utf8_lossy(&rest).into_owned(),
        });
    }
    Ok(h)
}

pub(crate) fn write_all_fd(fd: RawFd, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        // SAFETY: bytes is a valid slice for its length.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return false;
        }
        bytes = &bytes[n as usize..];
    }
    true
}

fn child_entry(plan: &WorkerPlan, ctl: &ControlPage, out: RawFd) -> ! {
    // A panic must never unwind into the parent's copy of the stack.
    let code =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child_main(plan, ctl, out)))
            .unwrap_or(101);
    // SAFETY: _exit skips atexit handlers and destructors that belong to the parent.
    unsafe { libc::_exit(code) }
}

/// `cpus` as a `cpu_set_t` (CPUs past `CPU_SETSIZE` left out).
pub(crate) fn cpu_set(cpus: &[u32]) -> libc::cpu_set_t {
    // SAFETY: zeroed cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        if (c as usize) < libc::CPU_SETSIZE as usize {
            // SAFETY: c is below CPU_SETSIZE, so the bit is inside `set`.
            unsafe { libc::CPU_SET(c as usize, &mut set) };
        }
    }
    set
}

fn set_affinity(pid: i32, cpus: &[u32]) -> bool {
    let set = cpu_set(cpus);
    // SAFETY: set is a valid cpu_set_t of the size passed.
    unsafe { libc::sched_setaffinity(pid, size_of::<libc::cpu_set_t>(), &set) == 0 }
}

/// Pin `pid` to `cpus` (used for cpuset emulation and `SetAffinity`).
pub fn pin(pid: u32, cpus: &[u32]) -> Result<(), WorkerError> {
    if set_affinity(pid as i32, cpus) {
        Ok(())
    } else {
        Err(sys("sched_setaffinity"))
    }
}

fn child_main(plan: &WorkerPlan, ctl: &ControlPage, out: RawFd) -> i32 {
    if let Some(fd) = plan.procs_fd
        && !write_all_fd(fd, b"0")
    {
        let msg = format!("joining cgroup: {}", std::io::Error::last_os_error());
        write_all_fd(out, msg.as_bytes());
        return 2;
    }
    if let Some(cpus) = &plan.affinity
        && !set_affinity(0, cpus)
    {
        let msg = format!("sched_setaffinity: {}", std::io::Error::last_os_error());
        write_all_fd(out, msg.as_bytes());
        return 2;
    }
    if !write_all_fd(out, b"R") {
        return 3;
    }
    ctl.wait_at_gate(plan.start_with_step, plan.slot);
    let stop = || ctl.stopped(plan.slot);
    let mut report = work::run(&plan.work, &stop);
    report.pid = std::process::id();
    match serde_json::to_vec(&report) {
        Ok(bytes) if write_all_fd(out, &bytes) => 0,
        _ => 4,
    }
}

/// SIGTERM, up to 1 s grace, then SIGKILL; always reaps.
pub(super) fn stop_child(pid: i32) {
    // SAFETY: signalling our own unreaped child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut st = 0;
    while Instant::now() < deadline {
        // SAFETY: polling our own child.
        if unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) } == pid {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: as above; then a blocking reap of the killed child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, &mut st, 0);
    }
}
