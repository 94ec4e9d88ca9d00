//! The request loop of the guest init: one host request at a time, each
//! answered by a `ScenarioResult` carrying a JSON [`Reply`]; scheduler
//! events and command output flow in between through the shared
//! [`Outbox`].

use std::io::{Read, Write};
use std::time::Duration;

use ktstr_wire::{
    ByteStr, Command, Exit, Lifecycle, Message, Phase, Pong, ScenarioResult, ScenarioStatus,
};

use crate::error::Error;
use crate::exec;
use crate::outbox::Outbox;
use crate::proto::{ExecRequest, ProcExit, Reply, Request};
use crate::sched::Scheduler;
use crate::shell;
use crate::transport::Port;

/// Timeout of a bare `Exec` command (which carries none).
pub const EXEC_DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Serve until `Shutdown` (returns the exit code to report) or end of
/// stream ([`Error::Closed`]).
pub fn serve<T: Read + Write>(
    rx: &mut Port<T>,
    out: &Outbox,
    sched: &mut Scheduler,
) -> Result<i32, Error> {
    while let Some(frame) = rx.recv()? {
        match frame.message() {
            Ok(Message::Command(Command::RunStep(step))) => {
                let req: Request = match serde_json::from_slice(step.spec.0) {
                    Ok(r) => r,
                    Err(e) => {
                        let message = format!("bad request JSON: {e}");
                        send_reply(out, step.step, &Reply::Error { message })?;
                        continue;
                    }
                };
                if req == Request::Shell {
                    // The shell reads this channel itself; its watcher replies.
                    let replier = out.clone();
                    let done = shell::run(step.step, rx, out, move |n, r| {
                        let _ = send_reply(&replier, n, r);
                    });
                    if let Err(e) = done {
                        let message = format!("shell: {e}");
                        send_reply(out, step.step, &Reply::Error { message })?;
                    }
                    continue;
                }
                let reply = handle_request(req, out, sched);
                send_reply(out, step.step, &reply)?;
            }
            Ok(Message::Command(Command::Exec(e))) => {
                let argv = e.args().map(|a| String::from_utf8_lossy(a).into_owned());
                let req = ExecRequest {
                    argv: argv.collect(),
                    timeout_ms: EXEC_DEFAULT_TIMEOUT.as_millis() as u64,
                };
                send_reply(out, 0, &exec::run(&req, out))?;
            }
            Ok(Message::Command(Command::Ping(p))) => {
                out.send(&Message::Pong(Pong::new(p.token.get())))?;
            }
            Ok(Message::Command(Command::Shutdown)) => {
                sched.shutdown(out);
                out.send(&Message::Lifecycle(Lifecycle::new(Phase::ShuttingDown)))?;
                out.send(&Message::Exit(Exit::new(0)))?;
                return Ok(0);
            }
            Ok(_) => {}
            Err(e) => out.log(
                ktstr_wire::LogLevel::Warning,
                &format!("skipping bad command payload: {e}"),
            ),
        }
    }
    Err(Error::Closed)
}

fn handle_request(req: Request, out: &Outbox, sched: &mut Scheduler) -> Reply {
    match req {
        Request::Exec(e) => exec::run(&e, out),
        Request::StartScheduler(s) => sched.start(&s, out),
        Request::StopScheduler(s) => sched.stop(&s, out),
        Request::RunScenario { scenario } => crate::scenario::run(&scenario),
        Request::Panic { message } => panic!("{message}"),
        Request::Garbage { bytes } => garbage(bytes, out),
        Request::Raise { signal } if crate::init::panic::FATAL_SIGNALS.contains(&signal) => {
            // SAFETY: raise has no memory effects; the handler reboots.
            unsafe { libc::raise(signal) };
            Reply::Error {
                message: format!("signal {signal} returned"),
            }
        }
        Request::Raise { signal } => Reply::Error {
            message: format!("signal {signal} is not one init handles as fatal"),
        },
        Request::Shell => Reply::Error {
            message: "shell is handled by the loop".into(),
        },
    }
}

/// Write `bytes` xorshift bytes in 64 KiB chunks; unlike console noise they
/// include the frame magic, so false frame starts reach the host too.
fn garbage(bytes: u64, out: &Outbox) -> Reply {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut chunk = vec![0u8; 64 << 10];
    let mut left = bytes;
    while left > 0 {
        for b in chunk.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x >> 24) as u8;
        }
        let n = usize::try_from(left).map_or(chunk.len(), |l| l.min(chunk.len()));
        if let Err(e) = out.send_raw(chunk.get(..n).unwrap_or_default()) {
            return Reply::Error {
                message: e.to_string(),
            };
        }
        left -= n as u64;
    }
    Reply::Exec {
        pid: 0,
        exit: ProcExit::default(),
        timed_out: false,
    }
}

fn status_of(reply: &Reply) -> ScenarioStatus {
    match reply {
        Reply::Exec {
            timed_out: true, ..
        } => ScenarioStatus::Timeout,
        Reply::NotAttached { .. } => ScenarioStatus::Fail,
        Reply::Error { .. } => ScenarioStatus::Error,
        _ => ScenarioStatus::Pass,
    }
}

fn send_reply(out: &Outbox, step: u32, reply: &Reply) -> Result<(), Error> {
    let text = serde_json::to_vec(reply).unwrap_or_else(|e| {
        format!(r#"{{"reply":"error","message":"encode reply: {e}"}}"#).into_bytes()
    });
    out.send(&Message::ScenarioResult(ScenarioResult {
        step,
        status: status_of(reply),
        text: ByteStr(&text),
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;

    use ktstr_wire::{RunStep, VecDecoder, encode};

    use super::*;
    use crate::sched::sysfs::SchedExtSysfs;

    fn step(n: u32, req: &Request) -> Vec<u8> {
        let spec = serde_json::to_vec(req).unwrap();
        let rs = RunStep {
            step: n,
            timeout_ms: 0,
            spec: ByteStr(&spec),
        };
        encode(n.into(), &Command::RunStep(rs).into()).unwrap()
    }

    #[test]
    fn exec_streams_output_then_replies_and_shutdown_exits() {
        let (guest, mut host) = UnixStream::pair().unwrap();
        let exec = |argv: &[&str]| {
            Request::Exec(ExecRequest {
                argv: argv.iter().map(|s| s.to_string()).collect(),
                timeout_ms: 10_000,
            })
        };
        let mut input = step(1, &exec(&["sh", "-c", "echo out; echo err >&2; exit 3"]));
        input.extend(step(2, &exec(&["/nonexistent/prog"])));
        input.extend(step(3, &exec(&["true"])));
        input.extend(encode(4, &Command::Shutdown.into()).unwrap());
        host.write_all(&input).unwrap();
        let out = Outbox::new(Box::new(guest.try_clone().unwrap()));
        let mut rx = Port::new(guest);
        let dir = tempfile::tempdir().unwrap();
        let mut sched = Scheduler::new(SchedExtSysfs::new(dir.path()), None);
        assert_eq!(serve(&mut rx, &out, &mut sched).unwrap(), 0);
        drop((rx, out));
        let mut bytes = Vec::new();
        host.read_to_end(&mut bytes).unwrap();
        let (mut stdout, mut stderr, mut replies, mut exit) = (vec![], vec![], vec![], None);
        VecDecoder::default().push(&bytes, |f| match f.unwrap().message().unwrap() {
            Message::Stdout(c) => stdout.extend_from_slice(c.data.0),
            Message::Stderr(c) => stderr.extend_from_slice(c.data.0),
            Message::ScenarioResult(r) => {
                replies.push((r.step, serde_json::from_slice::<Reply>(r.text.0).unwrap()))
            }
            Message::Exit(e) => exit = Some(e.code.get()),
            _ => {}
        });
        assert_eq!(stdout, b"out\n");
        assert_eq!(stderr, b"err\n");
        assert!(
            matches!(&replies[0], (1, Reply::Exec { exit, timed_out: false, .. }) if exit.code == Some(3)),
            "{replies:?}"
        );
        assert!(
            matches!(&replies[1], (2, Reply::Error { message }) if message.contains("nonexistent"))
        );
        assert!(matches!(&replies[2], (3, Reply::Exec { exit, .. }) if exit.code == Some(0)));
        assert_eq!(exit, Some(0));
    }

    #[test]
    fn exec_deadline_kills_the_process_group() {
        let (a, _b) = UnixStream::pair().unwrap();
        let out = Outbox::new(Box::new(a));
        let req = ExecRequest {
            argv: ["sh", "-c", "sleep 30 & sleep 30"]
                .map(String::from)
                .to_vec(),
            timeout_ms: 200,
        };
        let started = std::time::Instant::now();
        let reply = exec::run(&req, &out);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(
            matches!(reply, Reply::Exec { timed_out: true, exit, .. } if exit.signal == Some(libc::SIGKILL)),
            "{reply:?}"
        );
    }

    #[test]
    fn scheduler_requests_fail_cleanly_without_sched_ext() {
        let (a, _b) = UnixStream::pair().unwrap();
        let out = Outbox::new(Box::new(a));
        let dir = tempfile::tempdir().unwrap();
        let mut sched = Scheduler::new(SchedExtSysfs::new(dir.path()), None);
        let req = crate::proto::StartScheduler {
            path: "/bin/true".into(),
            args: vec![],
            attach_timeout_ms: 100,
            expect_name: None,
        };
        assert!(
            matches!(sched.start(&req, &out), Reply::Error { message } if message.contains("no sched_ext"))
        );
        let stop = crate::proto::StopScheduler {
            grace_ms: 10,
            detach_timeout_ms: 10,
        };
        assert!(matches!(sched.stop(&stop, &out), Reply::Error { .. }));
    }
}
