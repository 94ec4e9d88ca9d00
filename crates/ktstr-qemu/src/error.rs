//! Typed errors for everything that stops a run from starting or the host API from working.
//! Guest behaviour (reboot, panic, kill, deadline) is an [`crate::ExitKind`], never an error.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use crate::topology::ShapeError;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "`qemu-system-x86_64` was not found on PATH; install the Debian package `qemu-system-x86` \
         (apt-get install qemu-system-x86) or set the QEMU binary path"
    )]
    QemuNotFound,
    #[error(
        "QEMU binary {path} does not exist or is not executable; install the Debian package \
         `qemu-system-x86` or fix the path"
    )]
    QemuBinaryMissing { path: PathBuf },
    #[error("kernel image {path} does not exist or is not a file")]
    KernelMissing { path: PathBuf },
    #[error("initramfs {path} does not exist or is not a file")]
    InitramfsMissing { path: PathBuf },
    #[error("invalid topology: {0}")]
    Topology(#[from] ShapeError),
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    #[error(
        "guest memory of {mib} MiB is above the supported {max_mib} MiB for this machine (RAM must stay below the PCI hole in one piece)"
    )]
    MemoryTooLarge { mib: u64, max_mib: u64 },
    #[error("QEMU exited during startup ({status}); stderr:\n{stderr}")]
    QemuExitedEarly { status: ExitStatus, stderr: String },
    #[error("QEMU did not finish starting within {timeout:?}; stderr:\n{stderr}")]
    StartupTimeout { timeout: Duration, stderr: String },
    #[error("snapshot in {dir} is unusable: {why}")]
    SnapshotInvalid { dir: PathBuf, why: String },
    #[error(
        "snapshot in {dir} was taken from a different machine (kernel, initramfs, command line, CPUs, topology, memory or accelerator differ)"
    )]
    SnapshotKeyMismatch { dir: PathBuf },
    #[error("QMP: {0}")]
    Qmp(String),
    #[error("guest memory read of {len} bytes at {addr:#x} is outside guest RAM (size {size:#x})")]
    OutOfBounds { addr: u64, len: usize, size: u64 },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
