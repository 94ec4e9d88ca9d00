//! Fixed-size messages: zerocopy structs whose bytes are the payload.
//!
//! Fields use zerocopy's little-endian types, so the structs are
//! alignment-free and host-endianness-independent. Build them with `new`, or
//! with struct literals and `.into()` (`U64::from(5)`); read with `.get()`.

use core::mem::{offset_of, size_of};

use zerocopy::byteorder::little_endian::{I32, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::codes::Phase;

/// Guest is up. Carries what the host needs to symbolise guest addresses.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct SysReady {
    /// Number of online CPUs.
    pub online_cpus: U32,
    /// Runtime (KASLR-shifted) virtual address of the kernel's `_text`.
    pub kernel_text: U64,
    /// Physical address the kernel was loaded at (physical KASLR base).
    pub kernel_phys_base: U64,
    /// Runtime `page_offset_base` (start of the direct map).
    pub page_offset_base: U64,
}

const _: () = assert!(size_of::<SysReady>() == 28);
const _: () = assert!(offset_of!(SysReady, online_cpus) == 0);
const _: () = assert!(offset_of!(SysReady, kernel_text) == 4);
const _: () = assert!(offset_of!(SysReady, kernel_phys_base) == 12);
const _: () = assert!(offset_of!(SysReady, page_offset_base) == 20);

impl SysReady {
    /// Build from native values.
    pub fn new(
        online_cpus: u32,
        kernel_text: u64,
        kernel_phys_base: u64,
        page_offset_base: u64,
    ) -> Self {
        Self {
            online_cpus: online_cpus.into(),
            kernel_text: kernel_text.into(),
            kernel_phys_base: kernel_phys_base.into(),
            page_offset_base: page_offset_base.into(),
        }
    }
}

/// Guest lifecycle phase change.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct Lifecycle {
    /// Raw [`Phase`]; kept raw so unknown phases survive untouched.
    pub phase: U32,
}

const _: () = assert!(size_of::<Lifecycle>() == 4);

impl Lifecycle {
    /// Build from a phase.
    pub fn new(phase: Phase) -> Self {
        Self {
            phase: u32::from(phase).into(),
        }
    }

    /// The phase, `Phase::Unknown` for values this version does not name.
    pub fn phase(&self) -> Phase {
        Phase::from(self.phase.get())
    }
}

/// Per-worker statistics at the end of a scenario step.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct WorkerReport {
    /// Worker index within the scenario.
    pub worker_id: U32,
    /// Worker's PID in the guest.
    pub pid: U32,
    /// cgroup v2 id the worker ran in.
    pub cgroup_id: U64,
    /// CPU time consumed, ns.
    pub cpu_time_ns: U64,
    /// Wall-clock time from start to stop, ns.
    pub wall_ns: U64,
    /// Units of work completed (workload-defined).
    pub work_units: U64,
    /// Voluntary context switches.
    pub voluntary_csw: U64,
    /// Involuntary context switches.
    pub involuntary_csw: U64,
    /// CPU migrations.
    pub migrations: U64,
    /// Longest gap between two runs of the worker, ns (starvation signal).
    pub max_gap_ns: U64,
    /// Bit `n` set if the worker ran on CPU `n`, for CPUs 0..64.
    pub cpus_used_lo: U64,
    /// Number of distinct CPUs the worker ran on (any CPU number).
    pub distinct_cpus: U32,
    /// CPU the worker last ran on.
    pub last_cpu: U32,
}

const _: () = assert!(size_of::<WorkerReport>() == 88);
const _: () = assert!(offset_of!(WorkerReport, worker_id) == 0);
const _: () = assert!(offset_of!(WorkerReport, pid) == 4);
const _: () = assert!(offset_of!(WorkerReport, cgroup_id) == 8);
const _: () = assert!(offset_of!(WorkerReport, cpu_time_ns) == 16);
const _: () = assert!(offset_of!(WorkerReport, wall_ns) == 24);
const _: () = assert!(offset_of!(WorkerReport, work_units) == 32);
const _: () = assert!(offset_of!(WorkerReport, voluntary_csw) == 40);
const _: () = assert!(offset_of!(WorkerReport, involuntary_csw) == 48);
const _: () = assert!(offset_of!(WorkerReport, migrations) == 56);
const _: () = assert!(offset_of!(WorkerReport, max_gap_ns) == 64);
const _: () = assert!(offset_of!(WorkerReport, cpus_used_lo) == 72);
const _: () = assert!(offset_of!(WorkerReport, distinct_cpus) == 80);
const _: () = assert!(offset_of!(WorkerReport, last_cpu) == 84);

/// Guest agent exit code.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct Exit {
    /// Exit code.
    pub code: I32,
}

const _: () = assert!(size_of::<Exit>() == 4);

impl Exit {
    /// Build from a native code.
    pub fn new(code: i32) -> Self {
        Self { code: code.into() }
    }
}

/// Host→guest liveness probe; the guest answers with a [`Pong`] carrying the
/// same token.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct Ping {
    /// Opaque token echoed back.
    pub token: U64,
}

/// Guest→host answer to a [`Ping`].
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct Pong {
    /// Token from the [`Ping`].
    pub token: U64,
}

const _: () = assert!(size_of::<Ping>() == 8);
const _: () = assert!(size_of::<Pong>() == 8);

impl Ping {
    /// Build from a native token.
    pub fn new(token: u64) -> Self {
        Self {
            token: token.into(),
        }
    }
}

impl Pong {
    /// Build from a native token.
    pub fn new(token: u64) -> Self {
        Self {
            token: token.into(),
        }
    }
}

// Heads of variable-length messages: the fixed part before their
// length-prefixed fields. Private: users see the native-typed structs.

#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct LogHead {
    pub(crate) level: u8,
}

#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct ChunkHead {
    pub(crate) pid: U32,
}

#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct SchedStateHead {
    pub(crate) state: zerocopy::byteorder::little_endian::U16,
    pub(crate) exit_kind: U32,
    pub(crate) exit_code: zerocopy::byteorder::little_endian::I64,
}

#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct ScenarioHead {
    pub(crate) step: U32,
    pub(crate) status: zerocopy::byteorder::little_endian::U16,
}

#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct RunStepHead {
    pub(crate) step: U32,
    pub(crate) timeout_ms: U32,
}

const _: () = assert!(size_of::<LogHead>() == 1);
const _: () = assert!(size_of::<ChunkHead>() == 4);
const _: () = assert!(size_of::<SchedStateHead>() == 14);
const _: () = assert!(offset_of!(SchedStateHead, exit_kind) == 2);
const _: () = assert!(offset_of!(SchedStateHead, exit_code) == 6);
const _: () = assert!(size_of::<ScenarioHead>() == 6);
const _: () = assert!(offset_of!(ScenarioHead, status) == 4);
const _: () = assert!(size_of::<RunStepHead>() == 8);
const _: () = assert!(offset_of!(RunStepHead, timeout_ms) == 4);
