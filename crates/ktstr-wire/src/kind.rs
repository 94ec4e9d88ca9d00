//! Message kinds and their direction.

use core::fmt;

/// A message kind as carried in the frame header.
///
/// Kinds below `0x8000` flow guest→host, kinds at or above flow host→guest.
/// Values not listed here are *unknown*: receivers skip them (see the crate
/// docs), so new kinds can be added in a minor version.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Kind(pub u16);

/// Which way a message travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent by the guest, consumed by the host.
    GuestToHost,
    /// Sent by the host, consumed by the guest.
    HostToGuest,
}

/// The bit that marks host→guest kinds.
const HOST_TO_GUEST_BIT: u16 = 0x8000;

impl Kind {
    /// Guest is up: CPU count and KASLR addresses. Guest→host.
    pub const SYS_READY: Kind = Kind(0x0001);
    /// Lifecycle phase change. Guest→host.
    pub const LIFECYCLE: Kind = Kind(0x0002);
    /// Log line with a level. Guest→host.
    pub const LOG: Kind = Kind(0x0003);
    /// Chunk of a process's stdout. Guest→host.
    pub const STDOUT: Kind = Kind(0x0004);
    /// Chunk of a process's stderr. Guest→host.
    pub const STDERR: Kind = Kind(0x0005);
    /// Scheduler attached / exited / detached. Guest→host.
    pub const SCHEDULER_STATE: Kind = Kind(0x0006);
    /// Per-worker statistics. Guest→host.
    pub const WORKER_REPORT: Kind = Kind(0x0007);
    /// Outcome of a scenario step. Guest→host.
    pub const SCENARIO_RESULT: Kind = Kind(0x0008);
    /// Guest agent exit code. Guest→host.
    pub const EXIT: Kind = Kind(0x0009);
    /// Guest agent panic message. Guest→host.
    pub const PANIC: Kind = Kind(0x000A);
    /// Answer to [`Kind::PING`]. Guest→host.
    pub const PONG: Kind = Kind(0x000B);
    /// Run a scenario step. Host→guest.
    pub const RUN_STEP: Kind = Kind(0x8001);
    /// Shut the guest down. Host→guest.
    pub const SHUTDOWN: Kind = Kind(0x8002);
    /// Liveness probe. Host→guest.
    pub const PING: Kind = Kind(0x8003);
    /// Execute a program. Host→guest.
    pub const EXEC: Kind = Kind(0x8004);
    /// Bytes for the guest: a program's stdin, or bulk data. Host→guest.
    pub const STDIN: Kind = Kind(0x8005);

    /// Direction encoded in the kind's top bit (defined for unknown kinds too).
    pub const fn direction(self) -> Direction {
        if self.0 & HOST_TO_GUEST_BIT != 0 {
            Direction::HostToGuest
        } else {
            Direction::GuestToHost
        }
    }

    /// Name of a known kind, `None` for unknown ones.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self {
            Kind::SYS_READY => "SYS_READY",
            Kind::LIFECYCLE => "LIFECYCLE",
            Kind::LOG => "LOG",
            Kind::STDOUT => "STDOUT",
            Kind::STDERR => "STDERR",
            Kind::SCHEDULER_STATE => "SCHEDULER_STATE",
            Kind::WORKER_REPORT => "WORKER_REPORT",
            Kind::SCENARIO_RESULT => "SCENARIO_RESULT",
            Kind::EXIT => "EXIT",
            Kind::PANIC => "PANIC",
            Kind::PONG => "PONG",
            Kind::RUN_STEP => "RUN_STEP",
            Kind::SHUTDOWN => "SHUTDOWN",
            Kind::PING => "PING",
            Kind::EXEC => "EXEC",
            Kind::STDIN => "STDIN",
            _ => return None,
        })
    }

    /// Whether this crate version has a typed message for the kind.
    pub const fn is_known(self) -> bool {
        self.name().is_some()
    }
}

impl From<u16> for Kind {
    fn from(v: u16) -> Self {
        Kind(v)
    }
}

impl From<Kind> for u16 {
    fn from(k: Kind) -> Self {
        k.0
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "unknown kind {:#06x}", self.0),
        }
    }
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "Kind({:#06x} {name})", self.0),
            None => write!(f, "Kind({:#06x})", self.0),
        }
    }
}
