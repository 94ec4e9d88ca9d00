//! Typed errors; `main` prints them and exits non-zero.

use std::path::PathBuf;

/// Everything the agent can fail on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad command line.
    #[error("usage: {0}\n{USAGE}")]
    Usage(String),
    /// No virtio port carries the wanted name.
    #[error("no virtio port named {name:?} under {searched}")]
    PortNotFound {
        /// The port name looked for.
        name: String,
        /// The sysfs directory scanned.
        searched: PathBuf,
    },
    /// An I/O operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A frame could not be encoded.
    #[error("encode frame: {0}")]
    Encode(#[from] ktstr_wire::EncodeError),
    /// The host closed the channel before saying `Shutdown`.
    #[error("channel closed by host before Shutdown")]
    Closed,
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// Printed after a usage error.
pub const USAGE: &str = "\
ktstr-guest wire-selftest --mib N [--garbage-every K]
ktstr-guest uart-selftest --kib N [--dev /dev/ttyS1] [--garbage-every K]";
