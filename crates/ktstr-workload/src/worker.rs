//! Workers: one forked process each, so the runner can place it in a cgroup
//! and measure it alone. A worker places itself (writes "0" to its cgroup's
//! `cgroup.procs`), says ready, works until its stop slot is set, then writes
//! a JSON [`ChildReport`] to its report pipe and `_exit`s.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::spec::WorkKind;

/// Starting or collecting a worker failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// Which call.
        what: &'static str,
        /// errno.
        source: std::io::Error,
    },
    /// The worker did not report ready in time or failed to place itself.
    #[error("worker pid {pid} did not start: {reason}")]
    Start {
        /// Worker pid.
        pid: i32,
        /// Why.
        reason: String,
    },
    /// A payload path or argument has a NUL byte.
    #[error("payload argument {0:?} contains a NUL byte")]
    NulInArg(String),
}

fn sys(what: &'static str) -> WorkerError {
    WorkerError::Sys {
        what,
        source: std::io::Error::last_os_error(),
    }
}

/// CLOCK_MONOTONIC in ns: the one clock workers and runner share.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn cpu_clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer for the duration of the call.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn current_cpu() -> Option<u32> {
    // SAFETY: sched_getcpu takes no arguments.
    let c = unsafe { libc::sched_getcpu() };
    u32::try_from(c).ok()
}

/// Shared-memory stop flags, one `u32` slot per worker, mapped before any
/// fork so parent and workers see the same page(s).
#[derive(Debug)]
pub struct ControlPage {
    ptr: *mut AtomicU32,
    slots: usize,
    len: usize,
}

impl ControlPage {
    /// Map `slots` zeroed flags.
    pub fn new(slots: usize) -> Result<Self, WorkerError> {
        let len = (slots.max(1) * size_of::<AtomicU32>()).next_multiple_of(4096);
        // SAFETY: anonymous shared mapping, no file; result checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(sys("mmap control page"));
        }
        Ok(Self {
            ptr: p.cast(),
            slots: slots.max(1),
            len,
        })
    }

    fn slot(&self, i: usize) -> Option<&AtomicU32> {
        // SAFETY: i < slots, the mapping is live for &self and zero-initialised,
        // and AtomicU32 has the layout of u32.
        (i < self.slots).then(|| unsafe { &*self.ptr.add(i) })
    }

    /// Tell worker `i` to stop.
    pub fn stop(&self, i: usize) {
        if let Some(s) = self.slot(i) {
            s.store(1, Ordering::Release);
        }
    }

    /// Tell every worker to stop.
    pub fn stop_all(&self) {
        for i in 0..self.slots {
            self.stop(i);
        }
    }

    fn stopped(&self, i: usize) -> bool {
        self.slot(i).is_none_or(|s| s.load(Ordering::Acquire) != 0)
    }
}

impl Drop for ControlPage {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what new() mapped.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Wake-up latency summary, ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyStats {
    /// Samples taken (all of them, even past the kept window).
    pub samples: u64,
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// Maximum.
    pub max_ns: u64,
}

impl LatencyStats {
    /// Summarise samples (sorted in place).
    pub fn from_samples(samples: &mut [u64], total: u64, max_ns: u64) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |pct: usize| samples[(samples.len() - 1) * pct / 100];
        Some(Self {
            samples: total,
            p50_ns: at(50),
            p99_ns: at(99),
            max_ns,
        })
    }
}

/// What a worker measured about itself (clock values are CLOCK_MONOTONIC ns).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildReport {
    /// Worker pid.
    pub pid: u32,
    /// When it started working.
    pub start_ns: u64,
    /// When it saw the stop flag.
    pub end_ns: u64,
    /// Its own CPU time.
    pub cpu_time_ns: u64,
    /// CPU time of its reaped children (fork churn, payload).
    pub children_cpu_ns: u64,
    /// Time spent runnable but waiting for a CPU (`/proc/self/schedstat`
    /// field 2; None without CONFIG_SCHED_INFO).
    pub run_delay_ns: Option<u64>,
    /// Loop turns completed.
    pub work_units: u64,
    /// Voluntary context switches.
    pub voluntary_csw: u64,
    /// Involuntary context switches.
    pub involuntary_csw: u64,
    /// CPU changes seen between consecutive work units.
    pub migrations: u64,
    /// Migrations the kernel counted (`se.nr_migrations` in
    /// `/proc/self/sched`; None without CONFIG_SCHED_DEBUG).
    pub kernel_migrations: Option<u64>,
    /// CPUs it was seen on.
    pub cpus_used: Vec<u32>,
    /// CPU it was last seen on.
    pub last_cpu: Option<u32>,
    /// Whether gaps are meaningful (false for payloads).
    pub tracks_progress: bool,
    /// Longest time without a work unit (intentional sleeps excluded).
    pub max_gap_ns: u64,
    /// When that gap began.
    pub max_gap_start_ns: u64,
    /// CPU it was last seen on before that gap.
    pub max_gap_cpu: Option<u32>,
    /// Wake-up latency (ping-pong: token send to receipt; timers: lateness).
    pub wake_latency: Option<LatencyStats>,
    /// Children forked.
    pub forks: u64,
    /// Payload runs that ended on their own, and the last exit status.
    pub payload_exits: u64,
    /// Last payload wait status, if any ended.
    pub payload_last_status: Option<i32>,
    /// What went wrong inside the worker, if anything.
    pub error: Option<String>,
}

const MAX_LAT_SAMPLES: usize = 1 << 16;
const NO_CPU: u32 = u32::MAX;

/// Per-worker measurements, updated at every work unit.
struct Telemetry {
    start_ns: u64,
    last_ns: u64,
    max_gap_ns: u64,
    max_gap_start_ns: u64,
    max_gap_cpu: u32,
    units: u64,
    last_cpu: u32,
    migrations: u64,
    cpus: BTreeSet<u32>,
    lat: Vec<u64>,
    lat_total: u64,
    lat_max: u64,
    forks: u64,
}

impl Telemetry {
    fn new() -> Self {
        let now = mono_ns();
        let cpu = current_cpu().unwrap_or(NO_CPU);
        let mut cpus = BTreeSet::new();
        if cpu != NO_CPU {
            cpus.insert(cpu);
        }
        Self {
            start_ns: now,
            last_ns: now,
            max_gap_ns: 0,
            max_gap_start_ns: now,
            max_gap_cpu: cpu,
            units: 0,
            last_cpu: cpu,
            migrations: 0,
            cpus,
            lat: Vec::with_capacity(MAX_LAT_SAMPLES),
            lat_total: 0,
            lat_max: 0,
            forks: 0,
        }
    }

    fn gap_to(&mut self, now: u64) {
        let gap = now.saturating_sub(self.last_ns);
        if gap > self.max_gap_ns {
            self.max_gap_ns = gap;
            self.max_gap_start_ns = self.last_ns;
            self.max_gap_cpu = self.last_cpu;
        }
    }

    /// One work unit done.
    fn progress(&mut self) {
        let now = mono_ns();
        self.gap_to(now);
        if let Some(cpu) = current_cpu() {
            if cpu != self.last_cpu {
                if self.last_cpu != NO_CPU {
                    self.migrations += 1;
                }
                self.cpus.insert(cpu);
                self.last_cpu = cpu;
            }
        }
        self.last_ns = now;
        self.units += 1;
    }

    /// The worker chose to be idle until `t`: that time is not a gap.
    fn excuse_until(&mut self, t: u64) {
        self.last_ns = self.last_ns.max(t);
    }

    fn latency(&mut self, ns: u64) {
        if self.lat.len() < MAX_LAT_SAMPLES {
            self.lat.push(ns);
        } else {
            // Keep a rolling window once full; the max stays exact.
            let i = (self.lat_total as usize) % MAX_LAT_SAMPLES;
            self.lat[i] = ns;
        }
        self.lat_total += 1;
        self.lat_max = self.lat_max.max(ns);
    }

    fn finish(mut self, tracks_progress: bool) -> ChildReport {
        let end = mono_ns();
        if tracks_progress {
            self.gap_to(end);
        }
        // SAFETY: zeroed rusage is a valid out-buffer.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: ru is a valid out-pointer.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        // SAFETY: zeroed rusage is a valid out-buffer.
        let mut ch: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: ch is a valid out-pointer.
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ch) };
        let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
        let total = self.lat_total;
        let max = self.lat_max;
        ChildReport {
            pid: std::process::id(),
            start_ns: self.start_ns,
            end_ns: end,
            cpu_time_ns: cpu_clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID),
            children_cpu_ns: tv(ch.ru_utime) + tv(ch.ru_stime),
            run_delay_ns: run_delay_ns(),
            kernel_migrations: kernel_migrations(),
            work_units: self.units,
            voluntary_csw: ru.ru_nvcsw as u64,
            involuntary_csw: ru.ru_nivcsw as u64,
            migrations: self.migrations,
            cpus_used: self.cpus.into_iter().collect(),
            last_cpu: (self.last_cpu != NO_CPU).then_some(self.last_cpu),
            tracks_progress,
            max_gap_ns: if tracks_progress { self.max_gap_ns } else { 0 },
            max_gap_start_ns: self.max_gap_start_ns,
            max_gap_cpu: (self.max_gap_cpu != NO_CPU).then_some(self.max_gap_cpu),
            wake_latency: LatencyStats::from_samples(&mut self.lat, total, max),
            forks: self.forks,
            ..ChildReport::default()
        }
    }
}

fn run_delay_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn kernel_migrations() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/sched").ok()?;
    text.lines()
        .find(|l| l.trim_start().starts_with("se.nr_migrations"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

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
}

/// A work kind with its fds/strings ready.
#[derive(Debug)]
pub enum PreparedWork {
    /// See [`WorkKind::Spin`].
    Spin,
    /// See [`WorkKind::Yield`].
    Yield,
    /// One side of a ping-pong pair.
    PingPong {
        /// Read end of the pipe the peer writes.
        rx: RawFd,
        /// Write end of the pipe the peer reads.
        tx: RawFd,
        /// This side sends the first token.
        serve: bool,
    },
    /// See [`WorkKind::Bursty`].
    Bursty {
        /// Busy ms.
        on_ms: u32,
        /// Sleep ms.
        off_ms: u32,
    },
    /// See [`WorkKind::Mixed`].
    Mixed {
        /// LCG seed (differs per worker).
        seed: u64,
    },
    /// See [`WorkKind::ForkChurn`].
    ForkChurn,
    /// See [`WorkKind::Payload`]; `argv[0]` is the path.
    Payload {
        /// argv, path first.
        argv: Vec<CString>,
    },
}

impl PreparedWork {
    /// Prepare a non-pair work kind (ping-pong pairs come from [`pipe_pair`]).
    pub fn from_kind(kind: &WorkKind, seed: u64) -> Result<Self, WorkerError> {
        Ok(match kind {
            WorkKind::Spin => PreparedWork::Spin,
            WorkKind::Yield => PreparedWork::Yield,
            WorkKind::PingPong => PreparedWork::Spin,
            WorkKind::Bursty { on_ms, off_ms } => PreparedWork::Bursty {
                on_ms: *on_ms,
                off_ms: *off_ms,
            },
            WorkKind::Mixed => PreparedWork::Mixed { seed },
            WorkKind::ForkChurn => PreparedWork::ForkChurn,
            WorkKind::Payload { path, args } => {
                let mut argv = Vec::with_capacity(args.len() + 1);
                for a in std::iter::once(path).chain(args) {
                    argv.push(
                        CString::new(a.as_str()).map_err(|_| WorkerError::NulInArg(a.clone()))?,
                    );
                }
                PreparedWork::Payload { argv }
            }
        })
    }
}

/// Two pipes for a ping-pong pair; the fds stay owned by the returned values
/// and must outlive both forks.
pub fn pipe_pair() -> Result<[OwnedFd; 4], WorkerError> {
    let a = pipe()?;
    let b = pipe()?;
    Ok([a.0, a.1, b.0, b.1])
}

fn pipe() -> Result<(OwnedFd, OwnedFd), WorkerError> {
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
    pub fn collect(&mut self, deadline: Instant) -> Result<ChildReport, String> {
        let mut buf = Vec::new();
        let res = read_until_eof(&mut self.report, &mut buf, deadline);
        if res.is_err() {
            // SAFETY: kill(2) on our own unreaped child; pid cannot be reused yet.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
        let status = self.reap();
        res?;
        if buf.is_empty() {
            return Err(describe_status(status));
        }
        serde_json::from_slice(&buf)
            .map_err(|e| format!("bad report ({e}); {}", describe_status(status)))
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

fn describe_status(status: i32) -> String {
    if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else if libc::WIFEXITED(status) {
        format!(
            "exited with status {} without a report",
            libc::WEXITSTATUS(status)
        )
    } else {
        format!("wait status {status:#x}")
    }
}

fn poll_in(fd: RawFd, timeout: Duration) -> bool {
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

fn read_until_eof(f: &mut File, buf: &mut Vec<u8>, deadline: Instant) -> Result<(), String> {
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("no report before the deadline".into());
        }
        if !poll_in(f.as_raw_fd(), left) {
            continue;
        }
        match f.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading report: {e}")),
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

fn write_all_fd(fd: RawFd, mut bytes: &[u8]) -> bool {
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

fn set_affinity(pid: i32, cpus: &[u32]) -> bool {
    // SAFETY: zeroed cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        if (c as usize) < libc::CPU_SETSIZE as usize {
            // SAFETY: c is below CPU_SETSIZE, so the bit is inside `set`.
            unsafe { libc::CPU_SET(c as usize, &mut set) };
        }
    }
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
    let stop = || ctl.stopped(plan.slot);
    let mut t = Telemetry::new();
    let mut report = match &plan.work {
        PreparedWork::Spin => {
            while !stop() {
                spin(SPIN_ITERS);
                t.progress();
            }
            t.finish(true)
        }
        PreparedWork::Yield => {
            while !stop() {
                spin(SPIN_ITERS / 16);
                // SAFETY: no arguments.
                unsafe { libc::sched_yield() };
                t.progress();
            }
            t.finish(true)
        }
        PreparedWork::PingPong { rx, tx, serve } => ping_pong(t, *rx, *tx, *serve, &stop),
        PreparedWork::Bursty { on_ms, off_ms } => {
            while !stop() {
                let until = mono_ns() + u64::from(*on_ms) * 1_000_000;
                while !stop() && mono_ns() < until {
                    spin(SPIN_ITERS);
                    t.progress();
                }
                sleep_excused(&mut t, u64::from(*off_ms) * 1_000_000, &stop);
            }
            t.finish(true)
        }
        PreparedWork::Mixed { seed } => {
            let mut x = *seed | 1;
            while !stop() {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                match (x >> 33) % 4 {
                    0 | 1 => spin(SPIN_ITERS),
                    // SAFETY: no arguments.
                    2 => unsafe {
                        libc::sched_yield();
                    },
                    _ => sleep_excused(&mut t, 1_000_000, &stop),
                }
                t.progress();
            }
            t.finish(true)
        }
        PreparedWork::ForkChurn => {
            while !stop() {
                // SAFETY: the child only calls _exit.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    // SAFETY: immediate exit of the churn child.
                    unsafe { libc::_exit(0) };
                }
                if pid > 0 {
                    let mut st = 0;
                    // SAFETY: reaping our own child.
                    unsafe { libc::waitpid(pid, &mut st, 0) };
                    t.forks += 1;
                }
                t.progress();
            }
            t.finish(true)
        }
        PreparedWork::Payload { argv } => payload(t, argv, &stop),
    };
    report.pid = std::process::id();
    match serde_json::to_vec(&report) {
        Ok(bytes) if write_all_fd(out, &bytes) => 0,
        _ => 4,
    }
}

const SPIN_ITERS: u32 = 20_000;

fn spin(iters: u32) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..iters {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    std::hint::black_box(x);
}

/// Sleep `ns` in ≤50 ms slices (to notice stop), record the timer's
/// lateness as wake latency, and excuse the intended sleep from gaps.
fn sleep_excused(t: &mut Telemetry, ns: u64, stop: &dyn Fn() -> bool) {
    let target = mono_ns() + ns;
    loop {
        let now = mono_ns();
        if now >= target || stop() {
            break;
        }
        let until = target.min(now + 50_000_000);
        let ts = libc::timespec {
            tv_sec: (until / 1_000_000_000) as libc::time_t,
            tv_nsec: (until % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: ts is valid; absolute sleep on CLOCK_MONOTONIC.
        unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts,
                std::ptr::null_mut(),
            )
        };
    }
    let now = mono_ns();
    if now >= target {
        t.latency(now - target);
    }
    t.excuse_until(target.min(now));
}

fn ping_pong(
    mut t: Telemetry,
    rx: RawFd,
    tx: RawFd,
    serve: bool,
    stop: &dyn Fn() -> bool,
) -> ChildReport {
    let mut error = None;
    if serve && !write_all_fd(tx, &mono_ns().to_ne_bytes()) {
        error = Some(format!(
            "ping-pong send: {}",
            std::io::Error::last_os_error()
        ));
    }
    let mut buf = [0u8; 8];
    let mut have = 0usize;
    while error.is_none() && !stop() {
        if !poll_in(rx, Duration::from_millis(50)) {
            continue;
        }
        // SAFETY: reading into the unfilled tail of buf.
        let n = unsafe { libc::read(rx, buf[have..].as_mut_ptr().cast(), 8 - have) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            // The peer saw the same stop flag first and is gone: not an error.
            if stop() {
                break;
            }
            error = Some("ping-pong peer closed its pipe".into());
            break;
        }
        have += n as usize;
        if have < 8 {
            continue;
        }
        have = 0;
        let sent = u64::from_ne_bytes(buf);
        t.latency(mono_ns().saturating_sub(sent));
        t.progress();
        if !write_all_fd(tx, &mono_ns().to_ne_bytes()) {
            error = Some(format!(
                "ping-pong send: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    let mut r = t.finish(true);
    r.error = error;
    r
}

fn payload(mut t: Telemetry, argv: &[CString], stop: &dyn Fn() -> bool) -> ChildReport {
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // The payload's chatter must not reach the guest console or the wire.
    // SAFETY: a constant NUL-terminated path.
    let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    let mut exits = 0u64;
    let mut last_status = None;
    let mut error = None;
    'outer: while !stop() {
        // SAFETY: the child only calls execv/_exit with pointers prepared above.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: dup2 onto 0..2 (clearing CLOEXEC there) then exec; argv
            // is NUL-terminated and its strings live in this image.
            unsafe {
                if null >= 0 {
                    for fd in 0..3 {
                        libc::dup2(null, fd);
                    }
                }
                libc::execv(ptrs[0], ptrs.as_ptr());
                libc::_exit(127);
            }
        }
        if pid < 0 {
            error = Some(format!("fork payload: {}", std::io::Error::last_os_error()));
            break;
        }
        t.forks += 1;
        loop {
            let mut st = 0;
            // SAFETY: polling our own child.
            let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
            if r == pid {
                last_status = Some(st);
                if libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 127 {
                    error = Some("payload exec failed (status 127)".into());
                    break 'outer;
                }
                exits += 1;
                t.progress();
                break;
            }
            if stop() {
                stop_child(pid);
                break 'outer;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if null >= 0 {
        // SAFETY: closing the fd opened above, once.
        unsafe { libc::close(null) };
    }
    let mut r = t.finish(false);
    r.payload_exits = exits;
    r.payload_last_status = last_status;
    r.work_units = exits;
    r.error = error;
    r
}

/// SIGTERM, up to 1 s grace, then SIGKILL; always reaps.
fn stop_child(pid: i32) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles() {
        let mut s: Vec<u64> = (1..=100).rev().collect();
        let l = LatencyStats::from_samples(&mut s, 100, 100).unwrap();
        assert_eq!(
            (l.p50_ns, l.p99_ns, l.max_ns, l.samples),
            (50, 99, 100, 100)
        );
        assert_eq!(LatencyStats::from_samples(&mut [], 0, 0), None);
    }
}
