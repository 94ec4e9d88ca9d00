//! Minimal QMP client: capabilities handshake, then a reader thread that turns events into
//! [`QmpEvent`]s and hands command replies to [`QmpCommands`], so commands (`cont`, `stop`,
//! migration for snapshots) can be issued while the guest runs. QEMU is started with -S, so
//! no guest event can precede the handshake.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};

/// The QMP events the run cares about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum QmpEvent {
    /// SHUTDOWN with its `reason` (guest-reset, guest-shutdown, guest-panic, host-signal, ...).
    Shutdown {
        reason: String,
    },
    GuestPanicked,
}

pub(crate) fn parse_event(line: &str) -> Option<QmpEvent> {
    let v: Value = serde_json::from_str(line).ok()?;
    match v.get("event")?.as_str()? {
        "SHUTDOWN" => Some(QmpEvent::Shutdown {
            reason: v
                .pointer("/data/reason")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned(),
        }),
        "GUEST_PANICKED" => Some(QmpEvent::GuestPanicked),
        _ => None,
    }
}

fn read_msg(r: &mut BufReader<UnixStream>) -> Result<Value> {
    let mut line = String::new();
    let n = r
        .read_line(&mut line)
        .map_err(|e| Error::Qmp(format!("read: {e}")))?;
    if n == 0 {
        return Err(Error::Qmp("QEMU closed the QMP socket".into()));
    }
    serde_json::from_str(&line).map_err(|e| Error::Qmp(format!("bad JSON {line:?}: {e}")))
}

/// Sends `cmd` on the handshake reader and waits for its `return`, queueing events seen meanwhile.
fn execute(r: &mut BufReader<UnixStream>, cmd: &str, early: &mut Vec<QmpEvent>) -> Result<()> {
    let mut w = r.get_ref();
    writeln!(w, "{{\"execute\":\"{cmd}\"}}")
        .map_err(|e| Error::Qmp(format!("write {cmd}: {e}")))?;
    loop {
        let v = read_msg(r)?;
        if v.get("return").is_some() {
            return Ok(());
        }
        if let Some(err) = v.get("error") {
            return Err(Error::Qmp(format!("{cmd} failed: {err}")));
        }
        if let Some(ev) = parse_event(&v.to_string()) {
            early.push(ev);
        }
    }
}

/// Negotiates capabilities; returns the reader for events (the guest is still paused).
pub(crate) fn start(
    stream: UnixStream,
    timeout: Duration,
) -> Result<(BufReader<UnixStream>, Vec<QmpEvent>)> {
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| Error::io("set QMP timeout", e))?;
    let mut r = BufReader::new(stream);
    let greeting = read_msg(&mut r)?;
    if greeting.get("QMP").is_none() {
        return Err(Error::Qmp(format!("unexpected greeting {greeting}")));
    }
    let mut early = Vec::new();
    execute(&mut r, "qmp_capabilities", &mut early)?;
    r.get_ref()
        .set_read_timeout(None)
        .map_err(|e| Error::io("clear QMP timeout", e))?;
    Ok((r, early))
}

/// Issues QMP commands after the handshake; replies arrive through the reader thread.
pub(crate) struct QmpCommands {
    writer: Mutex<UnixStream>,
    replies: Mutex<Receiver<Value>>,
}

impl QmpCommands {
    pub(crate) fn new(writer: UnixStream, replies: Receiver<Value>) -> Self {
        QmpCommands {
            writer: Mutex::new(writer),
            replies: Mutex::new(replies),
        }
    }

    /// Runs `cmd` with `args` (a JSON object or `null`) and returns its `return` value.
    pub(crate) fn execute(&self, cmd: &str, args: Value, timeout: Duration) -> Result<Value> {
        let replies = self
            .replies
            .lock()
            .map_err(|_| Error::Qmp("reply channel poisoned".into()))?;
        // Replies to an earlier command that timed out must not answer this one.
        while replies.try_recv().is_ok() {}
        let mut msg = serde_json::json!({ "execute": cmd });
        if !args.is_null() {
            msg["arguments"] = args;
        }
        {
            let mut w = self
                .writer
                .lock()
                .map_err(|_| Error::Qmp("writer poisoned".into()))?;
            writeln!(w, "{msg}").map_err(|e| Error::Qmp(format!("write {cmd}: {e}")))?;
        }
        match replies.recv_timeout(timeout) {
            Ok(v) => match v.get("return") {
                Some(r) => Ok(r.clone()),
                None => Err(Error::Qmp(format!(
                    "{cmd} failed: {}",
                    v.get("error").unwrap_or(&v)
                ))),
            },
            Err(RecvTimeoutError::Timeout) => {
                Err(Error::Qmp(format!("{cmd}: no reply within {timeout:?}")))
            }
            Err(RecvTimeoutError::Disconnected) => {
                Err(Error::Qmp(format!("{cmd}: QEMU closed the QMP socket")))
            }
        }
    }
}

/// Forwards events (and command replies, to `replies`) until QEMU closes the socket.
pub(crate) fn spawn_event_reader(
    mut r: BufReader<UnixStream>,
    tx: Sender<QmpEvent>,
    replies: Sender<Value>,
) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("qemu-qmp".into())
        .spawn(move || {
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        tracing::trace!(qmp = line.trim_end());
                        if let Some(ev) = parse_event(&line) {
                            let _ = tx.send(ev);
                        } else if let Ok(v) = serde_json::from_str::<Value>(&line) {
                            if v.get("return").is_some() || v.get("error").is_some() {
                                let _ = replies.send(v);
                            }
                        }
                    }
                }
            }
        })
        .map_err(|e| Error::io("spawn QMP thread", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events() {
        let l = r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-reset"}}"#;
        assert_eq!(
            parse_event(l),
            Some(QmpEvent::Shutdown {
                reason: "guest-reset".into()
            })
        );
        assert_eq!(
            parse_event(r#"{"event": "GUEST_PANICKED", "data": {"action": "pause"}}"#),
            Some(QmpEvent::GuestPanicked)
        );
        assert_eq!(parse_event(r#"{"event": "RESUME"}"#), None);
        assert_eq!(parse_event("not json"), None);
    }
}
