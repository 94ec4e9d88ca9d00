//! The work kinds: what a worker does between two looks at its stop flag.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::time::Duration;

use super::WorkerError;
use super::process::{poll_in, stop_child, write_all_fd};
use super::telemetry::{ChildReport, Telemetry, mono_ns};
use crate::spec::WorkKind;

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
    /// Prepare a non-pair work kind (ping-pong pairs come from [`pipe_pair`](super::pipe_pair)).
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

/// Runs `work` until `stop` says so; the worker's measurements of itself.
pub(super) fn run(work: &PreparedWork, stop: &dyn Fn() -> bool) -> ChildReport {
    let mut t = Telemetry::new();
    match work {
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
        PreparedWork::PingPong { rx, tx, serve } => ping_pong(t, *rx, *tx, *serve, stop),
        PreparedWork::Bursty { on_ms, off_ms } => {
            while !stop() {
                let until = mono_ns() + u64::from(*on_ms) * 1_000_000;
                while !stop() && mono_ns() < until {
                    spin(SPIN_ITERS);
                    t.progress();
                }
                sleep_excused(&mut t, u64::from(*off_ms) * 1_000_000, stop);
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
                    _ => sleep_excused(&mut t, 1_000_000, stop),
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
        PreparedWork::Payload { argv } => payload(t, argv, stop),
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
