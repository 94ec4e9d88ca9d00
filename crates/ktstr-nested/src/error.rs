//! One error per phase of the tier, so a message says where it failed.

use std::path::PathBuf;

/// Why the nested tier could not run, or what failed inside it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A host command (apt-get, dpkg-deb, xz, cargo) failed.
    #[error("{what}: `{command}` failed: {detail}")]
    Command {
        /// The phase, e.g. `download the L1 kernel package`.
        what: &'static str,
        /// The command line.
        command: String,
        /// Its exit status and stderr tail, or the spawn error.
        detail: String,
    },
    /// A file of the cache or the build could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The unpacked L1 kernel package lacks a file the tier needs.
    #[error("the L1 kernel package {package} has no {what} (looked in {})", dir.display())]
    PackageContent {
        /// The Debian package name.
        package: String,
        /// The missing piece, e.g. `kvm-amd.ko.xz`.
        what: String,
        /// Where it was looked for.
        dir: PathBuf,
    },
    /// L1's QEMU could not be fetched or run (see [`crate::l1_qemu`]).
    #[error("L1's QEMU: {what}; to fix: {fix}")]
    QemuFetch {
        /// What failed.
        what: String,
        /// How to fix it or do without.
        fix: String,
    },
    /// `cargo test --no-run` built no executable for a requested suite.
    #[error("cargo built no test binary for {suite}")]
    NoTestBinary {
        /// The suite, `package/test`.
        suite: String,
    },
    /// A host prerequisite (busybox, QEMU, the L2 kernel) is missing.
    #[error(transparent)]
    Missing(#[from] ktstr_testenv::Missing),
    /// L1's initramfs could not be built.
    #[error("build L1's initramfs: {0}")]
    Initramfs(#[from] ktstr_initramfs::Error),
    /// QEMU could not run L1.
    #[error("boot L1: {0}")]
    Qemu(#[from] ktstr_qemu::Error),
}

impl Error {
    /// [`Error::Io`] for `what` on `path`.
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
