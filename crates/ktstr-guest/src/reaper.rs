//! Child reaping that works for PID 1: every exited child is collected with
//! `waitpid(-1)` (so orphans re-parented to init never stay zombies), and
//! statuses of the children we spawned are kept for whoever waits on them.
//!
//! Spawning goes through [`spawn`], which registers the pid under the same
//! lock the collector takes, so a child that exits at once is never
//! mistaken for an orphan. No thread: waiters poll.

use std::collections::HashMap;
use std::process::{ChildStderr, ChildStdout, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// pid → `None` while running, `Some(status)` once reaped.
static CHILDREN: Mutex<Option<HashMap<i32, Option<i32>>>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut HashMap<i32, Option<i32>>) -> R) -> R {
    let mut g = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// A child registered with the reaper. There is deliberately no
/// `std::process::Child` to wait on: its status is collected here; use
/// [`wait`] / [`try_status`].
#[derive(Debug)]
pub struct Spawned {
    /// Process id.
    pub pid: u32,
    /// Its stdout, if piped.
    pub stdout: Option<ChildStdout>,
    /// Its stderr, if piped.
    pub stderr: Option<ChildStderr>,
}

/// Spawn `cmd` and register the child.
pub fn spawn(cmd: &mut Command) -> std::io::Result<Spawned> {
    with(|map| {
        let mut child = cmd.spawn()?;
        let pid = child.id();
        map.insert(i32::try_from(pid).unwrap_or(i32::MAX), None);
        Ok(Spawned {
            pid,
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
        })
    })
}

/// Collect every exited child without blocking.
pub fn reap_all() {
    with(|map| {
        loop {
            let mut status = 0;
            // SAFETY: `status` is a valid out-pointer; WNOHANG never blocks.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if let Some(slot) = map.get_mut(&pid) {
                *slot = Some(status);
            }
        }
    });
}

/// The raw wait status of registered child `pid` if it has exited; the
/// entry is forgotten once returned.
pub fn try_status(pid: u32) -> Option<i32> {
    reap_all();
    let pid = i32::try_from(pid).ok()?;
    with(|map| match map.get(&pid) {
        Some(Some(status)) => {
            let status = *status;
            map.remove(&pid);
            Some(status)
        }
        _ => None,
    })
}

/// Wait until child `pid` exits or `deadline` passes.
pub fn wait(pid: u32, deadline: Instant) -> Option<i32> {
    let mut nap = Duration::from_millis(1);
    loop {
        if let Some(status) = try_status(pid) {
            return Some(status);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}

/// Send `signal` to `pid` (negative: a process group).
pub fn kill(pid: i32, signal: i32) {
    // SAFETY: kill has no memory effects; a stale pid only yields ESRCH.
    unsafe { libc::kill(pid, signal) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ProcExit;

    #[test]
    fn collects_exit_codes_of_fast_children() {
        let a = spawn(Command::new("sh").args(["-c", "exit 7"])).unwrap();
        let b = spawn(Command::new("sh").args(["-c", "exit 0"])).unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        let sb = wait(b.pid, until).unwrap();
        let sa = wait(a.pid, until).unwrap();
        assert_eq!(ProcExit::from_wait_status(sa).code, Some(7));
        assert_eq!(ProcExit::from_wait_status(sb).code, Some(0));
        assert_eq!(try_status(a.pid), None, "status is handed out once");
    }
}
