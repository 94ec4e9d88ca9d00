//! Reusing a cached archive without rebuilding it: an archive is named by
//! the hash of its bytes, and finding that name means packing and hashing
//! every input (tens of MiB, plus `objcopy` on a debug test binary) on each
//! session. Instead, the first build records which host files went in (the
//! init, busybox, schedulers and programs, each with its loader and
//! libraries, and the declared files) and
//! their identity (device, inode, size, mtime); a later session whose
//! inputs all still have that identity reuses the archive after a few
//! `stat`s. Any changed, added or vanished input misses and rebuilds.
//!
//! The record lives in `<cache>/inputs/<key>`, `key` hashing the options
//! and the top-level inputs' identities; a process also remembers it.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::{CachedImage, GuestImage};

/// Bumped when the record's meaning changes.
const RECORD_VERSION: u32 = 2;
const RECORD_DIR: &str = "inputs";

/// Records this process has read or written, by record path.
static SEEN: Mutex<Option<HashMap<PathBuf, String>>> = Mutex::new(None);

/// What identifies a file's contents without reading them.
pub(crate) fn identity(path: &Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?;
    Some(format!(
        "{}:{}:{}:{}.{}",
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

/// The ELF inputs packed with their loader and libraries, in archive order.
fn elf_inputs(img: &GuestImage) -> impl Iterator<Item = &PathBuf> {
    std::iter::once(&img.init)
        .chain(img.busybox.iter())
        .chain(img.schedulers.iter())
        .chain(img.programs.iter())
}

/// The record's path for `img` under `cache_dir`; `None` if an input is missing.
fn record_path(img: &GuestImage, cache_dir: &Path) -> Option<PathBuf> {
    let mut h = Sha256::new();
    h.update(format!(
        "v{RECORD_VERSION}|{:?}|{}|",
        img.compression, img.strip_debug
    ));
    for (i, p) in elf_inputs(img).enumerate() {
        h.update(format!("{i}:{}={}|", p.display(), identity(p)?));
    }
    // A file's guest path is part of the archive, not of its host identity.
    for f in &img.files {
        h.update(format!(
            "file:{}={}>{}|",
            f.host.display(),
            identity(&f.host)?,
            f.guest
        ));
    }
    let key: String = h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(cache_dir.join(RECORD_DIR).join(key))
}

/// Parses a record: the archive's file name, then `identity path` per input.
/// `Some` only when every input still has its recorded identity.
fn still_current(text: &str) -> Option<&str> {
    let mut lines = text.lines();
    let archive = lines.next()?;
    for line in lines {
        let (id, path) = line.split_once(' ')?;
        if identity(Path::new(path)).as_deref() != Some(id) {
            return None;
        }
    }
    Some(archive)
}

/// The archive built from `img`'s unchanged inputs, if one is in `cache_dir`.
pub(super) fn lookup(img: &GuestImage, cache_dir: &Path) -> Option<CachedImage> {
    let record = record_path(img, cache_dir)?;
    let remembered = SEEN
        .lock()
        .ok()
        .and_then(|m| m.as_ref()?.get(&record).cloned());
    let text = match remembered {
        Some(t) => t,
        None => std::fs::read_to_string(&record).ok()?,
    };
    let name = still_current(&text)?;
    let path = cache_dir.join(name);
    let size = std::fs::metadata(&path).ok()?.len();
    let hash = name.split('.').next()?.to_owned();
    remember(record, text.clone());
    Some(CachedImage {
        path,
        hash,
        size,
        reused: true,
    })
}

/// Records which inputs `built` came from (best effort: without a record the
/// next session just rebuilds).
pub(super) fn record(img: &GuestImage, cache_dir: &Path, built: &CachedImage) {
    let Some(record) = record_path(img, cache_dir) else {
        return;
    };
    let Some(name) = built.path.file_name().and_then(|n| n.to_str()) else {
        return;
    };
    let mut text = format!("{name}\n");
    for top in elf_inputs(img) {
        let files = match ktstr_initramfs::elf_closure(top) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(input = %top.display(), error = %e, "no input record");
                return;
            }
        };
        for f in files {
            let Some(id) = identity(&f) else { return };
            text.push_str(&format!("{id} {}\n", f.display()));
        }
    }
    for f in &img.files {
        let Some(id) = identity(&f.host) else { return };
        text.push_str(&format!("{id} {}\n", f.host.display()));
    }
    let written = record
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            let tmp = record.with_extension("tmp");
            std::fs::write(&tmp, &text)?;
            std::fs::rename(&tmp, &record)
        });
    if let Err(e) = written {
        tracing::debug!(record = %record.display(), error = %e, "could not record the image's inputs");
        return;
    }
    remember(record, text);
}

fn remember(record: PathBuf, text: String) {
    if let Ok(mut m) = SEEN.lock() {
        m.get_or_insert_with(HashMap::new).insert(record, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temp dir with a copy of `/bin/true` as the only input, and the
    /// image of it (no busybox, not stripped), cached under `cache`.
    fn bare_image() -> (tempfile::TempDir, PathBuf, GuestImage, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let init = dir.path().join("init");
        std::fs::copy("/bin/true", &init).unwrap();
        let mut img = GuestImage::new(&init);
        img.busybox = None;
        img.strip_debug = false;
        let cache = dir.path().join("cache");
        (dir, init, img, cache)
    }

    #[test]
    fn a_changed_input_misses_and_an_unchanged_one_hits() {
        let (_dir, init, img, cache) = bare_image();
        let built = img.build_cached(&cache).unwrap();
        assert!(!built.reused);
        let again = lookup(&img, &cache).expect("unchanged inputs hit");
        assert_eq!((again.path, again.hash), (built.path.clone(), built.hash));
        // The record lists the loader and libc too, not just the binary.
        let text = std::fs::read_to_string(record_path(&img, &cache).unwrap()).unwrap();
        assert!(text.contains("libc.so.6"), "{text}");
        // Same path, new contents (and mtime): rebuilt, not reused.
        std::fs::copy("/bin/false", &init).unwrap();
        assert!(lookup(&img, &cache).is_none());
        let rebuilt = img.build_cached(&cache).unwrap();
        assert_ne!(rebuilt.path, built.path);
        // A library the record lists that changed identity invalidates it.
        assert_eq!(still_current("a.cpio\n1:2:3:4.5 /bin/true\n"), None);
        assert_eq!(still_current("a.cpio\n"), Some("a.cpio"));
    }

    #[test]
    fn declared_programs_and_files_are_part_of_the_key() {
        let (dir, _init, img, cache) = bare_image();
        let bare = img.build_cached(&cache).unwrap();
        // Same init, plus a program: must not reuse the archive without it.
        let mut with_program = img.clone();
        with_program.programs = vec![PathBuf::from("/bin/false")];
        assert!(lookup(&with_program, &cache).is_none());
        let built = with_program.build_cached(&cache).unwrap();
        assert_ne!(built.path, bare.path);
        // A file moved to another guest path is another archive.
        let data = dir.path().join("data");
        std::fs::write(&data, "x").unwrap();
        let mut with_file = img.clone();
        with_file.files = vec![crate::guest_files::GuestFile::new(&data, "/etc/a").unwrap()];
        let a = with_file.build_cached(&cache).unwrap();
        with_file.files = vec![crate::guest_files::GuestFile::new(&data, "/etc/b").unwrap()];
        assert!(lookup(&with_file, &cache).is_none());
        assert_ne!(with_file.build_cached(&cache).unwrap().path, a.path);
    }
}
