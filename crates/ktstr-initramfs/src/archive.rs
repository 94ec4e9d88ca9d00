//! The in-memory archive: a sorted map from guest path to entry.
//!
//! Invariant: every ancestor of an entry is present and is a directory, so
//! the sorted write order (a parent sorts before its children) always
//! creates parents first.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::Error;
use crate::newc::{self, S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG};
use crate::path::{ancestors, normalize};

/// Mode for directories created implicitly as parents.
const IMPLICIT_DIR_MODE: u32 = 0o755;

/// One archive member. Modes are permission bits only (`0o7777`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A directory.
    Dir {
        /// Permission bits.
        mode: u32,
    },
    /// A regular file.
    File {
        /// Permission bits.
        mode: u32,
        /// Contents.
        data: Vec<u8>,
    },
    /// A symbolic link.
    Symlink {
        /// Link target, stored verbatim.
        target: String,
    },
    /// A character device node.
    CharDev {
        /// Permission bits.
        mode: u32,
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
}

impl Entry {
    /// `c_mode`: type bits plus permissions.
    fn c_mode(&self) -> u32 {
        match self {
            Entry::Dir { mode } => S_IFDIR | (mode & 0o7777),
            Entry::File { mode, .. } => S_IFREG | (mode & 0o7777),
            Entry::Symlink { .. } => S_IFLNK | 0o777,
            Entry::CharDev { mode, .. } => S_IFCHR | (mode & 0o7777),
        }
    }

    fn data(&self) -> &[u8] {
        match self {
            Entry::File { data, .. } => data,
            Entry::Symlink { target } => target.as_bytes(),
            Entry::Dir { .. } | Entry::CharDev { .. } => &[],
        }
    }
}

#[derive(Clone, Debug)]
struct Node {
    entry: Entry,
    /// Created as a parent, not by the caller; the caller may still add it.
    implicit: bool,
}

/// A deterministic newc archive under construction.
#[derive(Clone, Debug, Default)]
pub struct Archive {
    nodes: BTreeMap<String, Node>,
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a directory. Re-adding a directory that exists only as an implicit
    /// parent sets its mode instead of failing.
    pub fn add_dir(&mut self, path: &str, mode: u32) -> Result<&mut Self, Error> {
        self.insert(path, Entry::Dir { mode })
    }

    /// Add a regular file.
    pub fn add_file(
        &mut self,
        path: &str,
        mode: u32,
        data: impl Into<Vec<u8>>,
    ) -> Result<&mut Self, Error> {
        let data = data.into();
        self.insert(path, Entry::File { mode, data })
    }

    /// Add a regular file with the contents of a host file (symlinks followed).
    pub fn add_host_file(
        &mut self,
        path: &str,
        mode: u32,
        host: impl AsRef<Path>,
    ) -> Result<&mut Self, Error> {
        let host = host.as_ref();
        let data = std::fs::read(host).map_err(|e| Error::io(host, e))?;
        self.add_file(path, mode, data)
    }

    /// Add a symlink at `path` pointing to `target` (relative or absolute).
    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<&mut Self, Error> {
        self.insert(
            path,
            Entry::Symlink {
                target: target.to_owned(),
            },
        )
    }

    /// Add a character device node, e.g. `dev/console` 5:1.
    pub fn add_char_dev(
        &mut self,
        path: &str,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> Result<&mut Self, Error> {
        self.insert(path, Entry::CharDev { mode, major, minor })
    }

    /// The entry at `path`, if any (implicit parents included).
    pub fn get(&self, path: &str) -> Option<&Entry> {
        let path = normalize(path).ok()?;
        self.nodes.get(&path).map(|n| &n.entry)
    }

    /// Entries in archive order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.nodes.iter().map(|(p, n)| (p.as_str(), &n.entry))
    }

    /// Number of entries (implicit parents included, trailer excluded).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if nothing has been added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Add a file unless an identical one is already there; `Ok(false)` if it
    /// was. Lets several binaries share a library without a duplicate error.
    pub(crate) fn add_file_once(
        &mut self,
        path: &str,
        mode: u32,
        data: Vec<u8>,
    ) -> Result<bool, Error> {
        let entry = Entry::File { mode, data };
        if let Some(n) = normalize(path).ok().and_then(|p| self.nodes.get(&p))
            && n.entry == entry
        {
            return Ok(false);
        }
        self.insert(path, entry)?;
        Ok(true)
    }

    fn insert(&mut self, path: &str, entry: Entry) -> Result<&mut Self, Error> {
        let path = normalize(path)?;
        for parent in ancestors(&path) {
            match self.nodes.get(parent) {
                None => {
                    let dir = Node {
                        entry: Entry::Dir {
                            mode: IMPLICIT_DIR_MODE,
                        },
                        implicit: true,
                    };
                    self.nodes.insert(parent.to_owned(), dir);
                }
                Some(Node {
                    entry: Entry::Dir { .. },
                    ..
                }) => {}
                Some(_) => {
                    return Err(Error::ParentNotDir {
                        parent: parent.to_owned(),
                        path: path.clone(),
                    });
                }
            }
        }
        match self.nodes.get(&path) {
            None => {}
            // Claiming an implicit parent as an explicit directory is fine.
            Some(n) if n.implicit && matches!(entry, Entry::Dir { .. }) => {}
            Some(_) => return Err(Error::Duplicate(path)),
        }
        self.nodes.insert(
            path,
            Node {
                entry,
                implicit: false,
            },
        );
        Ok(self)
    }

    /// Serialise as a newc archive. Same content in, same bytes out.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        for (ino, (path, node)) in (1u32..).zip(&self.nodes) {
            let data = node.entry.data();
            let too_large = || Error::TooLarge {
                path: path.clone(),
                len: data.len(),
            };
            let data_len = u32::try_from(data.len()).map_err(|_| too_large())?;
            let name_len = u32::try_from(path.len() + 1).map_err(|_| too_large())?;
            let (nlink, rdev) = match node.entry {
                Entry::Dir { .. } => (2, (0, 0)),
                Entry::CharDev { major, minor, .. } => (1, (major, minor)),
                _ => (1, (0, 0)),
            };
            let h = newc::Header {
                ino,
                mode: node.entry.c_mode(),
                nlink,
                rdev,
                name: path,
                data,
            };
            newc::write_entry(&mut out, &h, data_len, name_len);
        }
        newc::write_trailer(&mut out);
        Ok(out)
    }

    /// Serialise to a host file.
    pub fn write_to(&self, host: impl AsRef<Path>) -> Result<(), Error> {
        let host = host.as_ref();
        let bytes = self.to_bytes()?;
        std::fs::write(host, bytes).map_err(|e| Error::io(host, e))
    }
}
