//! Variable-length messages: a small fixed head, then length-prefixed fields.
//!
//! Parsed values borrow their byte fields from the payload (zero-copy).

use zerocopy::byteorder::little_endian::{I64, U16, U32};

use crate::bytes::ByteStr;
use crate::codec::Codec;
use crate::codes::{LogLevel, ScenarioStatus, SchedExitKind, SchedState};
use crate::cursor::{Reader, Writer, lp_len};
use crate::error::{EncodeError, ParseError};
use crate::fixed::{ChunkHead, LogHead, RunStepHead, ScenarioHead, SchedStateHead};

/// A log line. Wire: `level: u8`, `text: lp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Log<'a> {
    /// Severity.
    pub level: LogLevel,
    /// Message text (usually UTF-8, not enforced).
    pub text: ByteStr<'a>,
}

impl<'a> Codec<'a> for Log<'a> {
    fn payload_len(&self) -> usize {
        size_of::<LogHead>().saturating_add(lp_len(&self.text))
    }
    fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.fixed(&LogHead {
            level: self.level.into(),
        })?;
        w.lp(&self.text)
    }
    fn read(r: &mut Reader<'a>) -> Result<Self, ParseError> {
        let head: LogHead = r.fixed("level")?;
        Ok(Self {
            level: head.level.into(),
            text: ByteStr(r.lp("text")?),
        })
    }
}

/// A chunk of a guest process's stdout or stderr (the stream is the message
/// kind). Wire: `pid: u32`, `data: lp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Chunk<'a> {
    /// Producing process (0 for the guest agent itself).
    pub pid: u32,
    /// Raw output bytes; chunk boundaries carry no meaning.
    pub data: ByteStr<'a>,
}

impl<'a> Codec<'a> for Chunk<'a> {
    fn payload_len(&self) -> usize {
        size_of::<ChunkHead>().saturating_add(lp_len(&self.data))
    }
    fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.fixed(&ChunkHead {
            pid: U32::new(self.pid),
        })?;
        w.lp(&self.data)
    }
    fn read(r: &mut Reader<'a>) -> Result<Self, ParseError> {
        let head: ChunkHead = r.fixed("pid")?;
        Ok(Self {
            pid: head.pid.get(),
            data: ByteStr(r.lp("data")?),
        })
    }
}

/// Scheduler state change. Wire: `state: u16`, `exit_kind: u32`,
/// `exit_code: i64`, `name: lp`, `reason: lp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SchedulerState<'a> {
    /// Attached / exited / detached.
    pub state: SchedState,
    /// How it ended ([`SchedExitKind::NotExited`] when it has not).
    pub exit_kind: SchedExitKind,
    /// sched_ext exit code (0 when not exited).
    pub exit_code: i64,
    /// Scheduler name (`ops.name`).
    pub name: ByteStr<'a>,
    /// Exit reason / message, empty if none.
    pub reason: ByteStr<'a>,
}

impl<'a> Codec<'a> for SchedulerState<'a> {
    fn payload_len(&self) -> usize {
        size_of::<SchedStateHead>()
            .saturating_add(lp_len(&self.name))
            .saturating_add(lp_len(&self.reason))
    }
    fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.fixed(&SchedStateHead {
            state: U16::new(self.state.into()),
            exit_kind: U32::new(self.exit_kind.into()),
            exit_code: I64::new(self.exit_code),
        })?;
        w.lp(&self.name)?;
        w.lp(&self.reason)
    }
    fn read(r: &mut Reader<'a>) -> Result<Self, ParseError> {
        let head: SchedStateHead = r.fixed("state")?;
        Ok(Self {
            state: head.state.get().into(),
            exit_kind: head.exit_kind.get().into(),
            exit_code: head.exit_code.get(),
            name: ByteStr(r.lp("name")?),
            reason: ByteStr(r.lp("reason")?),
        })
    }
}

/// Outcome of a scenario step. Wire: `step: u32`, `status: u16`, `text: lp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScenarioResult<'a> {
    /// Step index.
    pub step: u32,
    /// Pass / fail / ….
    pub status: ScenarioStatus,
    /// Human-readable detail, empty if none.
    pub text: ByteStr<'a>,
}

impl<'a> Codec<'a> for ScenarioResult<'a> {
    fn payload_len(&self) -> usize {
        size_of::<ScenarioHead>().saturating_add(lp_len(&self.text))
    }
    fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.fixed(&ScenarioHead {
            step: U32::new(self.step),
            status: U16::new(self.status.into()),
        })?;
        w.lp(&self.text)
    }
    fn read(r: &mut Reader<'a>) -> Result<Self, ParseError> {
        let head: ScenarioHead = r.fixed("step")?;
        Ok(Self {
            step: head.step.get(),
            status: head.status.get().into(),
            text: ByteStr(r.lp("text")?),
        })
    }
}

/// Guest agent panic. Wire: `message: lp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Panic<'a> {
    /// Panic message (with location, if the sender includes it).
    pub message: ByteStr<'a>,
}

impl<'a> Codec<'a> for Panic<'a> {
    fn payload_len(&self) -> usize {
        lp_len(&self.message)
    }
    fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.lp(&self.message)
    }
    fn read(r: &mut Reader<'a>) -> Result<Self, ParseError> {
        Ok(Self {
            message: ByteStr(r.lp("message")?),
        })
    }
}

/// Host→guest: run one scenario step. Wire: `step: u32`, `timeout_ms: u32`,
/// `spec: lp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RunStep<'a> {
    /// Step index, echoed in the matching [`ScenarioResult`].
    pub step: u32,
    /// Time budget in ms (0 = none).
    pub timeout_ms: u32,
    /// Step description; opaque to the wire format.
    pub spec: ByteStr<'a>,
}

impl<'a> Codec<'a> for RunStep<'a> {
    fn payload_len(&self) -> usize {
        size_of::<RunStepHead>().saturating_add(lp_len(&self.spec))
    }
    fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.fixed(&RunStepHead {
            step: U32::new(self.step),
            timeout_ms: U32::new(self.timeout_ms),
        })?;
        w.lp(&self.spec)
    }
    fn read(r: &mut Reader<'a>) -> Result<Self, ParseError> {
        let head: RunStepHead = r.fixed("step")?;
        Ok(Self {
            step: head.step.get(),
            timeout_ms: head.timeout_ms.get(),
            spec: ByteStr(r.lp("spec")?),
        })
    }
}

/// Host→guest: execute a program. Wire: `argv: lp`, the arguments separated
/// by NUL bytes (a trailing NUL is allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Exec<'a> {
    /// NUL-separated arguments, `argv[0]` first.
    pub argv: ByteStr<'a>,
}

impl<'a> Exec<'a> {
    /// The arguments, split on NUL.
    pub fn args(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let argv: &'a [u8] = self.argv.0;
        // A trailing NUL terminates the last argument rather than adding an
        // empty one; an empty argv has no arguments.
        let body = argv.strip_suffix(&[0]).unwrap_or(argv);
        body.split(|&b| b == 0).filter(move |_| !argv.is_empty())
    }
}

impl<'a> Codec<'a> for Exec<'a> {
    fn payload_len(&self) -> usize {
        lp_len(&self.argv)
    }
    fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.lp(&self.argv)
    }
    fn read(r: &mut Reader<'a>) -> Result<Self, ParseError> {
        Ok(Self {
            argv: ByteStr(r.lp("argv")?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_args_split_on_nul() {
        let e = Exec {
            argv: ByteStr(b"/bin/stress\0-c\x004\0"),
        };
        let args: [&[u8]; 3] = [b"/bin/stress", b"-c", b"4"];
        assert!(e.args().eq(args));
        let empty = Exec { argv: ByteStr(b"") };
        assert_eq!(empty.args().count(), 0);
        let one = Exec {
            argv: ByteStr(b"x"),
        };
        assert!(one.args().eq([b"x".as_slice()]));
    }
}
