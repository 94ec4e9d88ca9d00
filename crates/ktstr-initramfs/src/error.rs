//! Typed errors for archive building and ELF packing.

use std::path::PathBuf;

/// Everything that can go wrong building an initramfs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A guest path was added twice (implicit parent directories excepted).
    #[error("duplicate archive path {0:?}")]
    Duplicate(String),
    /// A guest path is empty, contains `..`/`.` or NUL, or is otherwise unusable.
    #[error("invalid archive path {path:?}: {why}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A parent of a new entry already exists and is not a directory.
    #[error("parent {parent:?} of {path:?} is not a directory")]
    ParentNotDir {
        /// The new entry.
        path: String,
        /// The offending ancestor.
        parent: String,
    },
    /// An entry is too large for newc's 32-bit size field.
    #[error("{path:?} is {len} bytes; newc caps entries at 4 GiB")]
    TooLarge {
        /// The entry.
        path: String,
        /// Its size.
        len: usize,
    },
    /// A host file does not exist.
    #[error("host file {0} not found")]
    Missing(PathBuf),
    /// Reading a host file failed for another reason.
    #[error("read {path}: {source}")]
    Io {
        /// The host file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A host file is not an ELF object this crate can pack.
    #[error("{path} is not a packable ELF file: {why}")]
    NotElf {
        /// The host file.
        path: PathBuf,
        /// Parser detail.
        why: String,
    },
    /// A `DT_NEEDED` library was found nowhere on the search path.
    #[error("library {name} needed by {needed_by} not found (searched: {searched})")]
    LibraryNotFound {
        /// The `DT_NEEDED` name.
        name: String,
        /// The object that needs it.
        needed_by: PathBuf,
        /// Directories tried, comma-separated.
        searched: String,
    },
}

impl Error {
    /// Map an I/O error on `path`, keeping "not found" as its own variant.
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::Missing(path.to_owned())
        } else {
            Error::Io {
                path: path.to_owned(),
                source,
            }
        }
    }
}
