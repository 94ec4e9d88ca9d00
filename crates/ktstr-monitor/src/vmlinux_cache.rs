//! What the monitor learned from a vmlinux, kept on disk: parsing the
//! symbol table and ~100k BTF types costs a test process 0.2–1 s, and
//! every test process of a suite parses the same kernel. The result is a
//! few dozen numbers.
//!
//! A cache file is named by the vmlinux's identity: its canonical path,
//! device, inode, size and modification time, and this crate's version
//! (which changes what is parsed). A rebuilt or replaced vmlinux gets a new
//! inode or mtime and so a new entry. The cache is only ever an
//! optimisation: any failure to read or write it falls back to parsing.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::LoadError;
use crate::vmlinux::Vmlinux;

impl Vmlinux {
    /// Like [`Vmlinux::load`], through the cache in `dir` (created when missing).
    pub fn load_cached(vmlinux: &Path, dir: &Path) -> Result<Vmlinux, LoadError> {
        let Some(entry) = entry_for(vmlinux, dir) else {
            return Vmlinux::load(vmlinux);
        };
        if let Some(cached) = read(&entry) {
            return Ok(cached);
        }
        let parsed = Vmlinux::load(vmlinux)?;
        if let Err(e) = write(&entry, &parsed) {
            tracing::debug!("vmlinux cache: could not write {}: {e}", entry.display());
        }
        Ok(parsed)
    }
}

/// The cache file for `vmlinux`'s current identity; `None` if it cannot be
/// stat'ed (the parse then reports the real error).
fn entry_for(vmlinux: &Path, dir: &Path) -> Option<PathBuf> {
    let path = vmlinux.canonicalize().ok()?;
    let m = std::fs::metadata(&path).ok()?;
    let identity = format!(
        "{}|{}|{}|{}|{}.{}|{}",
        path.display(),
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        env!("CARGO_PKG_VERSION"),
    );
    let digest = Sha256::digest(identity.as_bytes());
    let name: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    Some(dir.join(format!("{name}.json")))
}

fn read(entry: &Path) -> Option<Vmlinux> {
    let bytes = std::fs::read(entry).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::debug!("vmlinux cache: ignoring {}: {e}", entry.display());
            None
        }
    }
}

/// Writes through a temporary file and a rename, so a concurrent reader
/// sees the whole entry or none.
fn write(entry: &Path, v: &Vmlinux) -> std::io::Result<()> {
    let dir = entry.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer(&mut tmp, v)?;
    tmp.persist(entry).map_err(|e| e.error)?;
    Ok(())
}
