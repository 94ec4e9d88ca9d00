//! Starting a payload with its own fork and exec instead of
//! `std::process::Command`: the child must join the payload's cgroup (and
//! maybe be pinned) between fork and exec, so that everything it forks is
//! born there, and std's `pre_exec` forces a spawn path that fails with
//! EAFNOSUPPORT on kernels without AF_UNIX (the lean test kernel). Between
//! fork and exec the child only makes async-signal-safe system calls on data
//! prepared before the fork, and reports a failure as (step, errno) on a
//! close-on-exec pipe, so a successful exec reads as end of file.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::worker::{cpu_set, pipe, write_all_fd};

/// What the child was doing when it failed (the first number it reports).
const STEPS: [&str; 5] = [
    "joining its cgroup",
    "pinning it",
    "entering its directory",
    "redirecting its output",
    "exec",
];

/// How to start a payload.
pub(crate) struct SpawnPlan<'a> {
    pub program: &'a str,
    pub args: &'a [String],
    pub cwd: &'a Path,
    pub stdout: File,
    pub stderr: File,
    /// The cgroup's `cgroup.procs`, which the child writes itself into.
    pub procs: RawFd,
    /// CPUs to pin to when the hierarchy has no cpuset controller.
    pub pin_to: Option<&'a [u32]>,
}

/// Forks and execs `plan`'s program in a new process group; returns its
/// pid (the group's id), or why it could not start.
pub(crate) fn spawn(plan: SpawnPlan<'_>) -> Result<libc::pid_t, String> {
    let path = resolve(plan.program).ok_or_else(|| {
        let enoent = std::io::Error::from_raw_os_error(libc::ENOENT);
        format!("{}: {enoent} (looked for on PATH)", plan.program)
    })?;
    let c =
        |s: &[u8]| CString::new(s).map_err(|_| format!("{}: contains a NUL byte", plan.program));
    let exe = c(path.as_os_str().as_bytes())?;
    let argv_owned: Vec<CString> = std::iter::once(Ok(c(plan.program.as_bytes())?))
        .chain(plan.args.iter().map(|a| c(a.as_bytes())))
        .collect::<Result<_, _>>()?;
    let mut argv: Vec<*const libc::c_char> = argv_owned.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let cwd = c(plan.cwd.as_os_str().as_bytes())?;
    let devnull = File::open("/dev/null").map_err(|e| format!("open /dev/null: {e}"))?;
    let set = plan.pin_to.map(cpu_set);
    let (report_rd, report_wr) = pipe().map_err(|e| format!("pipe: {e}"))?;
    let mut report_rd = File::from(report_rd);
    let fds = [
        devnull.as_raw_fd(),
        plan.stdout.as_raw_fd(),
        plan.stderr.as_raw_fd(),
    ];
    let wr = report_wr.as_raw_fd();
    // SAFETY: fork(2). The child runs only `child`, which makes
    // async-signal-safe calls on the data prepared above and ends in exec or
    // `_exit`, so no parent state is unwound twice.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        child(&exe, &argv, &cwd, fds, plan.procs, set.as_ref(), wr);
    }
    drop(report_wr);
    let mut report = [0u8; 8];
    let mut got = 0;
    while got < report.len() {
        match report_rd.read(&mut report[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if got < report.len() {
        return Ok(pid);
    }
    // SAFETY: reaping our own child, which has exited (it reported and
    // called _exit).
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    let step = i32::from_ne_bytes([report[0], report[1], report[2], report[3]]);
    let errno = i32::from_ne_bytes([report[4], report[5], report[6], report[7]]);
    let what = STEPS.get(step as usize).copied().unwrap_or("starting");
    Err(format!(
        "{} ({what}): {}",
        plan.program,
        std::io::Error::from_raw_os_error(errno)
    ))
}

/// Between fork and exec: never returns.
fn child(
    exe: &CString,
    argv: &[*const libc::c_char],
    cwd: &CString,
    fds: [RawFd; 3],
    procs: RawFd,
    set: Option<&libc::cpu_set_t>,
    report: RawFd,
) -> ! {
    let fail = |step: i32| -> ! {
        // SAFETY: __errno_location is this thread's errno; write and _exit
        // are async-signal-safe.
        unsafe {
            let errno = *libc::__errno_location();
            let mut buf = [0u8; 8];
            buf[..4].copy_from_slice(&step.to_ne_bytes());
            buf[4..].copy_from_slice(&errno.to_ne_bytes());
            write_all_fd(report, &buf);
            libc::_exit(127)
        }
    };
    // SAFETY: setpgid on ourselves: a new group the deadline can kill whole.
    unsafe { libc::setpgid(0, 0) };
    if !write_all_fd(procs, b"0") {
        fail(0);
    }
    if let Some(set) = set {
        // SAFETY: set is a valid cpu_set_t of the size passed.
        if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), set) } != 0 {
            fail(1);
        }
    }
    // SAFETY: cwd is a NUL-terminated path.
    if unsafe { libc::chdir(cwd.as_ptr()) } != 0 {
        fail(2);
    }
    for (to, from) in fds.into_iter().enumerate() {
        // SAFETY: dup2 of open descriptors onto 0, 1, 2.
        if unsafe { libc::dup2(from, to as RawFd) } < 0 {
            fail(3);
        }
    }
    // SAFETY: exe and argv are NUL-terminated, argv ends with a null pointer.
    unsafe { libc::execv(exe.as_ptr(), argv.as_ptr()) };
    fail(4)
}

/// `program` as is when it has a `/`, else the first executable of that
/// name on `PATH` (resolved before the fork: nothing allocates after it).
fn resolve(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    // The guest's PID 1 may run without PATH: fall back to the usual dirs.
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    which::which_in(program, Some(path), "/").ok()
}
