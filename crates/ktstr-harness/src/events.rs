//! Guest→host frames turned into owned events.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use ktstr_wire::{Message, Phase, ScenarioStatus, SchedExitKind, SchedState, VecDecoder};

/// `SysReady`, in native types.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SysInfo {
    /// Online CPUs.
    pub online_cpus: u32,
    /// Runtime `_text` (0 if the guest could not read it).
    pub kernel_text: u64,
    /// Physical load address (0 if unknown).
    pub kernel_phys_base: u64,
}

/// One `SchedulerState` report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedEvent {
    /// Attached / Exited / Detached.
    pub state: SchedState,
    /// How it ended ([`SchedExitKind::NotExited`] for Attached).
    pub exit_kind: SchedExitKind,
    /// Exit code (128+signal when killed by one).
    pub exit_code: i64,
    /// `root/ops` name (or binary name before attach).
    pub name: String,
    /// Kernel log lines or stderr, depending on the transition.
    pub reason: String,
}

/// Something the guest said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `SysReady`.
    SysReady(SysInfo),
    /// `Lifecycle`.
    Lifecycle(Phase),
    /// `Log` text.
    Log(String),
    /// Output of guest process `pid`.
    Stdout(u32, Vec<u8>),
    /// Error output of guest process `pid`.
    Stderr(u32, Vec<u8>),
    /// A scheduler transition.
    Sched(SchedEvent),
    /// The reply to request `step`.
    Result {
        /// Request number.
        step: u32,
        /// Pass / Fail / Error / Timeout.
        status: ScenarioStatus,
        /// JSON reply.
        text: Vec<u8>,
    },
    /// `Exit { code }`.
    Exit(i32),
    /// `Panic` over the wire.
    Panic(String),
    /// `Pong`.
    Pong(u64),
}

/// Why [`EventStream::next`] returned nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoEvent {
    /// The deadline passed.
    Timeout,
    /// The guest's channel closed.
    Closed,
}

/// Decodes the bulk stream into [`Event`]s.
pub struct EventStream {
    rx: Receiver<Vec<u8>>,
    dec: VecDecoder,
    queue: std::collections::VecDeque<Event>,
    /// Frames that failed to decode or parse.
    pub errors: u64,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl EventStream {
    /// Decode what `rx` delivers.
    pub fn new(rx: Receiver<Vec<u8>>) -> Self {
        EventStream {
            rx,
            dec: VecDecoder::default(),
            queue: Default::default(),
            errors: 0,
        }
    }

    /// The next event, waiting until `deadline`.
    pub fn next(&mut self, deadline: Instant) -> Result<Event, NoEvent> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Ok(e);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = match self.rx.recv_timeout(left) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => return Err(NoEvent::Timeout),
                Err(RecvTimeoutError::Disconnected) => return Err(NoEvent::Closed),
            };
            let (queue, errors) = (&mut self.queue, &mut self.errors);
            self.dec.push(&chunk, |item| {
                let Ok(frame) = item else {
                    *errors += 1;
                    return;
                };
                match frame.message() {
                    Ok(m) => queue.extend(to_event(&m)),
                    Err(_) => *errors += 1,
                }
            });
        }
    }
}

fn to_event(m: &Message<'_>) -> Option<Event> {
    Some(match m {
        Message::SysReady(s) => Event::SysReady(SysInfo {
            online_cpus: s.online_cpus.get(),
            kernel_text: s.kernel_text.get(),
            kernel_phys_base: s.kernel_phys_base.get(),
        }),
        Message::Lifecycle(l) => Event::Lifecycle(l.phase()),
        Message::Log(l) => Event::Log(text(l.text.0)),
        Message::Stdout(c) => Event::Stdout(c.pid, c.data.0.to_vec()),
        Message::Stderr(c) => Event::Stderr(c.pid, c.data.0.to_vec()),
        Message::SchedulerState(s) => Event::Sched(SchedEvent {
            state: s.state,
            exit_kind: s.exit_kind,
            exit_code: s.exit_code,
            name: text(s.name.0),
            reason: text(s.reason.0),
        }),
        Message::ScenarioResult(r) => Event::Result {
            step: r.step,
            status: r.status,
            text: r.text.0.to_vec(),
        },
        Message::Exit(e) => Event::Exit(e.code.get()),
        Message::Panic(p) => Event::Panic(text(p.message.0)),
        Message::Pong(p) => Event::Pong(p.token.get()),
        _ => return None,
    })
}
