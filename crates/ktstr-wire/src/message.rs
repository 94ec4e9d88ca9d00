//! The typed message catalogue and the kind ↔ payload dispatch.

use crate::codec::Codec;
use crate::cursor::{Reader, Writer};
use crate::error::{EncodeError, ParseError};
use crate::fixed::{Exit, Lifecycle, Ping, Pong, SysReady, WorkerReport};
use crate::kind::{Direction, Kind};
use crate::variable::{Chunk, Exec, Log, Panic, RunStep, ScenarioResult, SchedulerState};

/// Every message, borrowing variable fields from the payload it was parsed
/// from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Message<'a> {
    /// Guest→host, [`Kind::SYS_READY`].
    SysReady(SysReady),
    /// Guest→host, [`Kind::LIFECYCLE`].
    Lifecycle(Lifecycle),
    /// Guest→host, [`Kind::LOG`].
    Log(Log<'a>),
    /// Guest→host, [`Kind::STDOUT`].
    Stdout(Chunk<'a>),
    /// Guest→host, [`Kind::STDERR`].
    Stderr(Chunk<'a>),
    /// Guest→host, [`Kind::SCHEDULER_STATE`].
    SchedulerState(SchedulerState<'a>),
    /// Guest→host, [`Kind::WORKER_REPORT`].
    WorkerReport(WorkerReport),
    /// Guest→host, [`Kind::SCENARIO_RESULT`].
    ScenarioResult(ScenarioResult<'a>),
    /// Guest→host, [`Kind::EXIT`].
    Exit(Exit),
    /// Guest→host, [`Kind::PANIC`].
    Panic(Panic<'a>),
    /// Guest→host, [`Kind::PONG`].
    Pong(Pong),
    /// Host→guest commands.
    Command(Command<'a>),
    /// A kind this version does not know. Receivers skip it; it re-encodes
    /// byte-for-byte, so relays can forward it.
    Unknown {
        /// Kind from the header.
        kind: Kind,
        /// Raw payload.
        payload: &'a [u8],
    },
}

/// Host→guest commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Command<'a> {
    /// [`Kind::RUN_STEP`].
    RunStep(RunStep<'a>),
    /// [`Kind::SHUTDOWN`]; empty payload.
    Shutdown,
    /// [`Kind::PING`].
    Ping(Ping),
    /// [`Kind::EXEC`].
    Exec(Exec<'a>),
    /// [`Kind::STDIN`]: bytes for the guest (same layout as `Stdout`).
    Stdin(Chunk<'a>),
}

impl<'a> From<Command<'a>> for Message<'a> {
    fn from(c: Command<'a>) -> Self {
        Message::Command(c)
    }
}

/// Run `$body` with `$m` bound to the payload struct of any typed variant;
/// `$shutdown` and `$unknown` handle the two payload-less/raw cases.
macro_rules! with_codec {
    ($msg:expr, $m:ident => $body:expr, shutdown => $shutdown:expr, unknown($p:ident) => $unknown:expr) => {
        match $msg {
            Message::SysReady($m) => $body,
            Message::Lifecycle($m) => $body,
            Message::Log($m) => $body,
            Message::Stdout($m) | Message::Stderr($m) => $body,
            Message::SchedulerState($m) => $body,
            Message::WorkerReport($m) => $body,
            Message::ScenarioResult($m) => $body,
            Message::Exit($m) => $body,
            Message::Panic($m) => $body,
            Message::Pong($m) => $body,
            Message::Command(Command::RunStep($m)) => $body,
            Message::Command(Command::Ping($m)) => $body,
            Message::Command(Command::Exec($m)) => $body,
            Message::Command(Command::Stdin($m)) => $body,
            Message::Command(Command::Shutdown) => $shutdown,
            Message::Unknown { payload: $p, .. } => $unknown,
        }
    };
}

impl<'a> Message<'a> {
    /// Parse `payload` as a message of `kind`, borrowing from `payload`.
    ///
    /// Unknown kinds are not an error: they come back as
    /// [`Message::Unknown`]. Bytes after the last known field are ignored
    /// (a newer minor version may have appended fields).
    pub fn parse(kind: impl Into<Kind>, payload: &'a [u8]) -> Result<Self, ParseError> {
        let kind = kind.into();
        let r = &mut Reader::new(kind, payload);
        Ok(match kind {
            Kind::SYS_READY => Message::SysReady(Codec::read(r)?),
            Kind::LIFECYCLE => Message::Lifecycle(Codec::read(r)?),
            Kind::LOG => Message::Log(Codec::read(r)?),
            Kind::STDOUT => Message::Stdout(Codec::read(r)?),
            Kind::STDERR => Message::Stderr(Codec::read(r)?),
            Kind::SCHEDULER_STATE => Message::SchedulerState(Codec::read(r)?),
            Kind::WORKER_REPORT => Message::WorkerReport(Codec::read(r)?),
            Kind::SCENARIO_RESULT => Message::ScenarioResult(Codec::read(r)?),
            Kind::EXIT => Message::Exit(Codec::read(r)?),
            Kind::PANIC => Message::Panic(Codec::read(r)?),
            Kind::PONG => Message::Pong(Codec::read(r)?),
            Kind::RUN_STEP => Command::RunStep(Codec::read(r)?).into(),
            Kind::SHUTDOWN => Command::Shutdown.into(),
            Kind::PING => Command::Ping(Codec::read(r)?).into(),
            Kind::EXEC => Command::Exec(Codec::read(r)?).into(),
            Kind::STDIN => Command::Stdin(Codec::read(r)?).into(),
            kind => Message::Unknown { kind, payload },
        })
    }

    /// The kind this message is sent as.
    pub fn kind(&self) -> Kind {
        match self {
            Message::SysReady(_) => Kind::SYS_READY,
            Message::Lifecycle(_) => Kind::LIFECYCLE,
            Message::Log(_) => Kind::LOG,
            Message::Stdout(_) => Kind::STDOUT,
            Message::Stderr(_) => Kind::STDERR,
            Message::SchedulerState(_) => Kind::SCHEDULER_STATE,
            Message::WorkerReport(_) => Kind::WORKER_REPORT,
            Message::ScenarioResult(_) => Kind::SCENARIO_RESULT,
            Message::Exit(_) => Kind::EXIT,
            Message::Panic(_) => Kind::PANIC,
            Message::Pong(_) => Kind::PONG,
            Message::Command(Command::RunStep(_)) => Kind::RUN_STEP,
            Message::Command(Command::Shutdown) => Kind::SHUTDOWN,
            Message::Command(Command::Ping(_)) => Kind::PING,
            Message::Command(Command::Exec(_)) => Kind::EXEC,
            Message::Command(Command::Stdin(_)) => Kind::STDIN,
            Message::Unknown { kind, .. } => *kind,
        }
    }

    /// Which way the message travels.
    pub fn direction(&self) -> Direction {
        self.kind().direction()
    }

    /// Exact payload size in bytes (the frame adds [`HEADER_LEN`](crate::HEADER_LEN)).
    pub fn payload_len(&self) -> usize {
        with_codec!(self, m => m.payload_len(), shutdown => 0, unknown(p) => p.len())
    }

    /// Write the payload into `out`, returning the bytes written.
    pub(crate) fn write_payload(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        with_codec!(self, m => m.write(&mut w)?, shutdown => (), unknown(p) => w.put(p)?);
        Ok(w.written())
    }
}
