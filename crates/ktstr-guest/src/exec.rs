//! Run one command for the host: output streamed as chunks tagged with the
//! child's pid, then a [`Reply::Exec`] with its exit status.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::outbox::Outbox;
use crate::proto::{ExecRequest, ProcExit, Reply};
use crate::reaper;
use crate::relay::{self, Stream, Tail};

/// After the child exits, how long its output pipes may stay open (held by
/// a background grandchild) before the process group is killed.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Run `req`, streaming its output through `out`.
pub fn run(req: &ExecRequest, out: &Outbox) -> Reply {
    let Some((prog, args)) = req.argv.split_first() else {
        return Reply::Error {
            message: "exec: empty argv".into(),
        };
    };
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group: a timeout kills the whole pipeline.
        .process_group(0);
    let mut child = match reaper::spawn(&mut cmd) {
        Ok(c) => c,
        Err(e) => {
            return Reply::Error {
                message: format!("exec {prog:?}: {e}"),
            };
        }
    };
    let pid = child.pid;
    let mut relays = Vec::new();
    if let Some(o) = child.stdout.take() {
        relays.push(relay::start(
            o,
            Stream::Stdout,
            pid,
            out.clone(),
            Tail::default(),
        ));
    }
    if let Some(e) = child.stderr.take() {
        relays.push(relay::start(
            e,
            Stream::Stderr,
            pid,
            out.clone(),
            Tail::default(),
        ));
    }
    let group = -i32::try_from(pid).unwrap_or(i32::MAX);
    let deadline = Instant::now() + Duration::from_millis(req.timeout_ms);
    let (status, timed_out) = match reaper::wait(pid, deadline) {
        Some(s) => (s, false),
        None => {
            reaper::kill(group, libc::SIGKILL);
            let s = reaper::wait(pid, Instant::now() + Duration::from_secs(10));
            (s.unwrap_or(-1), true)
        }
    };
    let drained_by = Instant::now() + DRAIN_GRACE;
    for r in relays.into_iter().flatten() {
        while !r.is_finished() && Instant::now() < drained_by {
            std::thread::sleep(Duration::from_millis(5));
        }
        if !r.is_finished() {
            reaper::kill(group, libc::SIGKILL);
        }
        let _ = r.join();
    }
    reaper::reap_all();
    Reply::Exec {
        pid,
        exit: ProcExit::from_wait_status(status),
        timed_out,
    }
}
