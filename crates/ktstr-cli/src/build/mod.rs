//! Building what tests need, owned by the project: the test kernel
//! ([`kernel`]) and the example sched_ext schedulers ([`sched`]), into the
//! cache whose layout and lookup are `ktstr_testenv::cache`'s (tests find
//! them there; this module only writes). Build tools come from apt
//! ([`apt`]); commands run with their output in a log ([`tool`]).
//!
//! Why here and not in ktstr-testenv: building needs apt, make and a
//! progress display, which tests never do; the layout both sides must agree
//! on lives once, in ktstr-testenv.

pub mod apt;
pub mod kernel;
pub mod sched;
pub mod tool;

use std::path::PathBuf;

/// Why a build failed; each message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Neither `KTSTR_CACHE_DIR`, `XDG_CACHE_HOME` nor `HOME` is set.
    #[error("no cache directory: set KTSTR_CACHE_DIR (or HOME)")]
    NoCacheDir,
    /// `--source` is not a kernel tree.
    #[error(
        "{0} is not a Linux source tree (no Makefile and Kconfig): pass --source DIR of a Linux >= 6.12 tree"
    )]
    NotKernelTree(PathBuf),
    /// The tree predates sched_ext.
    #[error(
        "{path} is Linux {version}; sched_ext needs >= 6.12: pass --source of a newer tree, or omit --source for Debian's linux-source-6.12"
    )]
    TooOld {
        /// The tree.
        path: PathBuf,
        /// Its `make kernelversion`.
        version: String,
    },
    /// Configuring did not enable sched_ext.
    #[error(
        "the configured kernel in {0} lacks CONFIG_SCHED_CLASS_EXT=y (its .config kept it off): use a Linux >= 6.12 tree with sched_ext"
    )]
    NoSchedExt(PathBuf),
    /// A file operation failed.
    #[error("{what}")]
    Io {
        /// What was being done, naming the path.
        what: String,
        /// The error (e.g. no space left on device).
        #[source]
        source: std::io::Error,
    },
    /// A program could not be started.
    #[error("cannot run {program} (is it installed?)")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// A program failed.
    #[error("{what} failed ({status}); its output: {log}")]
    Command {
        /// What it was doing.
        what: String,
        /// How it exited.
        status: std::process::ExitStatus,
        /// The log holding its output.
        log: PathBuf,
    },
    /// Packages are missing and this is not root.
    #[error("missing {packages}: run `apt-get install {packages}` as root (or run this as root)")]
    NeedPackages {
        /// Space-separated Debian packages.
        packages: String,
    },
    /// No cached kernel to build schedulers against.
    #[error("no cached kernel to build schedulers against: run `ktstr kernel build` first")]
    NoKernel,
    /// The cached kernel's source tree is gone.
    #[error("the source tree {0} of the cached kernel is gone: run `ktstr kernel build` again")]
    SourceGone(PathBuf),
    /// A scheduler name tools/sched_ext does not build.
    #[error("unknown scheduler {name}: tools/sched_ext builds {known}")]
    UnknownScheduler {
        /// The name asked for.
        name: String,
        /// What it builds.
        known: String,
    },
}

impl BuildError {
    /// An [`BuildError::Io`] error for `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
        let what = what.into();
        move |source| BuildError::Io { what, source }
    }
}

/// The cache root, or why there is none.
pub fn cache_root() -> Result<PathBuf, BuildError> {
    ktstr_testenv::cache_root().ok_or(BuildError::NoCacheDir)
}

/// Seconds since the epoch (0 if the clock is before it).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
