//! The guest initramfs: the init (by default the running executable, whose
//! `.init_array` hook from `ktstr-guest` makes it PID 1), busybox for
//! `exec`, the schedulers, and a test's own programs and files, cached by
//! content.
//!
//! The cache key is the SHA-256 of the uncompressed archive bytes (the
//! archive is deterministic: sorted entries, mtime 0), so identical inputs
//! map to one file under `target/ktstr/initramfs/` and are written (and
//! compressed) once. Later sessions whose inputs are unchanged find it
//! without packing or hashing anything (see [`inputs`]).

mod inputs;

pub(crate) use inputs::identity as file_identity;

use std::path::{Path, PathBuf};

use ktstr_initramfs::Archive;
use sha2::{Digest, Sha256};

use crate::compress::Compression;
use crate::error::HarnessError;
use crate::guest_files::GuestFile;

/// Where schedulers live in the guest.
pub const SCHED_DIR: &str = "sched";
/// Archives kept in a cache directory; older ones (by last use) are
/// removed when a new one is written, so rebuilt test binaries do not
/// fill the disk.
pub const CACHE_KEEP: usize = 32;
/// Static busybox, as Debian's busybox-static installs it.
pub const DEFAULT_BUSYBOX: &str = "/bin/busybox";

/// What goes into the initramfs.
#[derive(Clone, Debug)]
pub struct GuestImage {
    /// Packed as `/init` with its shared libraries.
    pub init: PathBuf,
    /// Packed as `/bin/busybox`; init links its applets into `/bin`.
    pub busybox: Option<PathBuf>,
    /// Packed as `/sched/<file name>`.
    pub schedulers: Vec<PathBuf>,
    /// Packed with their libraries as `/usr/bin/<file name>` (see [`crate::guest_files`]).
    pub programs: Vec<PathBuf>,
    /// Packed at their guest paths.
    pub files: Vec<GuestFile>,
    /// Storage format of the cached file.
    pub compression: Compression,
    /// Pack `init` without its DWARF (`objcopy --strip-debug`, symbols
    /// kept): a debug test binary's archive shrinks 33 → 9.6 MiB, so the
    /// cache (one file per test-binary build) stays small, and hashing it
    /// per session is cheaper (47 vs 69 ms). Boot time did not measurably
    /// change (see [`crate::compress`]). Falls back to the original if
    /// objcopy fails.
    pub strip_debug: bool,
}

/// A built (or reused) archive on disk.
#[derive(Clone, Debug)]
pub struct CachedImage {
    /// The archive file, handed to the kernel.
    pub path: PathBuf,
    /// Hex SHA-256 of the uncompressed archive.
    pub hash: String,
    /// Size of the file.
    pub size: u64,
    /// True if the file already existed (nothing was written).
    pub reused: bool,
}

impl GuestImage {
    /// `init` as `/init`, the default busybox if present, no schedulers.
    pub fn new(init: impl Into<PathBuf>) -> Self {
        let bb = Path::new(DEFAULT_BUSYBOX);
        GuestImage {
            init: init.into(),
            busybox: bb.is_file().then(|| bb.to_owned()),
            schedulers: Vec::new(),
            programs: Vec::new(),
            files: Vec::new(),
            compression: Compression::None,
            strip_debug: true,
        }
    }

    /// Guest path of scheduler `host`.
    pub fn guest_path(host: &Path) -> String {
        in_guest_dir(&format!("/{SCHED_DIR}"), host)
    }

    /// The archive bytes (uncompressed).
    pub fn archive(&self) -> Result<Vec<u8>, HarnessError> {
        let mut a = Archive::new();
        for dir in ["proc", "sys", "dev", "tmp", "run", "bin", SCHED_DIR] {
            a.add_dir(dir, 0o755)?;
        }
        a.add_char_dev("dev/console", 0o600, 5, 1)?;
        a.add_char_dev("dev/null", 0o666, 1, 3)?;
        let stripped = if self.strip_debug {
            strip_debug(&self.init)
        } else {
            None
        };
        let init = stripped.as_ref().map_or(self.init.as_path(), |t| t.path());
        a.add_elf_with_libs("init", init)?;
        if let Some(bb) = &self.busybox {
            a.add_elf_with_libs("bin/busybox", bb)?;
            a.add_symlink("bin/sh", "busybox")?;
        }
        for s in &self.schedulers {
            let dest = Self::guest_path(s);
            a.add_elf_with_libs(dest.trim_start_matches('/'), s)?;
        }
        crate::guest_files::pack(&mut a, &self.programs, &self.files)?;
        Ok(a.to_bytes()?)
    }

    /// Build into `cache_dir`, or reuse the file already there.
    pub fn build_cached(&self, cache_dir: &Path) -> Result<CachedImage, HarnessError> {
        if let Some(hit) = inputs::lookup(self, cache_dir) {
            touch(&hit.path);
            return Ok(hit);
        }
        let built = self.pack_cached(cache_dir)?;
        inputs::record(self, cache_dir, &built);
        Ok(built)
    }

    /// Pack and hash the archive; write it unless a file of that hash is there.
    fn pack_cached(&self, cache_dir: &Path) -> Result<CachedImage, HarnessError> {
        let bytes = self.archive()?;
        let hash = hex(&Sha256::digest(&bytes));
        let path = cache_dir.join(format!("{hash}.{}", self.compression.suffix()));
        if let Ok(meta) = std::fs::metadata(&path) {
            touch(&path);
            return Ok(CachedImage {
                path,
                hash,
                size: meta.len(),
                reused: true,
            });
        }
        std::fs::create_dir_all(cache_dir)
            .map_err(|e| HarnessError::io(format!("create {}", cache_dir.display()), e))?;
        let data = self.compression.apply(bytes)?;
        // Write beside the final name and rename: concurrent builders of the
        // same image never see a partial file.
        let tmp = tempfile::NamedTempFile::new_in(cache_dir)
            .map_err(|e| HarnessError::io("create temp file in cache", e))?;
        std::fs::write(tmp.path(), &data)
            .map_err(|e| HarnessError::io(format!("write {}", tmp.path().display()), e))?;
        tmp.persist(&path)
            .map_err(|e| HarnessError::io(format!("rename to {}", path.display()), e.error))?;
        prune(cache_dir, CACHE_KEEP);
        Ok(CachedImage {
            path,
            hash,
            size: data.len() as u64,
            reused: false,
        })
    }
}

/// `host`'s file name under guest directory `dir` (where a packed binary lands).
pub(crate) fn in_guest_dir(dir: &str, host: &Path) -> String {
    let name = host
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{dir}/{name}")
}

/// Marks an archive as used for the pruning order (best effort).
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// Remove all but the `keep` most recently used archives in `dir`.
pub fn prune(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".cpio"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    for (_, old) in files.into_iter().skip(keep) {
        if let Err(e) = std::fs::remove_file(&old) {
            tracing::warn!(path = %old.display(), "prune initramfs cache: {e}");
        }
    }
}

/// A copy of `elf` without debug sections, or None (with a warning) if
/// objcopy is missing or fails.
fn strip_debug(elf: &Path) -> Option<tempfile::NamedTempFile> {
    let out = tempfile::Builder::new()
        .prefix("ktstr-init-")
        .tempfile()
        .ok()?;
    let status = std::process::Command::new("objcopy")
        .arg("--strip-debug")
        .arg(elf)
        .arg(out.path())
        .stderr(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => Some(out),
        other => {
            tracing::warn!(elf = %elf.display(), ?other, "objcopy --strip-debug failed; packing as is");
            None
        }
    }
}

/// `$KTSTR_CACHE_DIR/initramfs` (the root all ktstr caches share, kernels
/// included), else `<target>/ktstr/initramfs` for the `target` directory
/// holding the running executable, else the temp dir. Snapshots go beside it.
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KTSTR_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("initramfs");
    }
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .map(|t| t.join("ktstr/initramfs"))
        .unwrap_or_else(|| std::env::temp_dir().join("ktstr-initramfs"))
}

/// The cache named `name` beside the initramfs cache `images` (all share one root).
pub fn beside_images(images: &Path, name: &str) -> PathBuf {
    images
        .parent()
        .map_or_else(|| images.join(name), |p| p.join(name))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/bin/true` as init, nothing else, as is; and a cache directory.
    fn bare_image() -> (tempfile::TempDir, GuestImage) {
        let mut img = GuestImage::new("/bin/true");
        img.busybox = None;
        img.strip_debug = false;
        (tempfile::tempdir().unwrap(), img)
    }

    #[test]
    fn same_inputs_reuse_one_file_and_different_inputs_do_not() {
        let (dir, mut img) = bare_image();
        let a = img.build_cached(dir.path()).unwrap();
        assert!(!a.reused);
        let b = img.build_cached(dir.path()).unwrap();
        assert!(b.reused);
        assert_eq!(a.path, b.path);
        img.schedulers.push("/bin/false".into());
        let c = img.build_cached(dir.path()).unwrap();
        assert_ne!(c.hash, a.hash);
        let archive = std::fs::read(&c.path).unwrap();
        let needle = b"sched/false";
        assert!(archive.windows(needle.len()).any(|w| w == needle));
        assert_eq!(
            GuestImage::guest_path(Path::new("/x/scx_simple")),
            "/sched/scx_simple"
        );
    }

    #[test]
    fn programs_come_with_their_libraries_and_programs_and_files_change_the_key() {
        let (dir, mut img) = bare_image();
        let bare = img.build_cached(dir.path()).unwrap();
        // ls links libselinux (which links libpcre2): the closure comes along.
        img.programs.push("/bin/ls".into());
        let with_program = img.build_cached(dir.path()).unwrap();
        img.files
            .push(GuestFile::new("/etc/hostname", "/opt/t/hostname").unwrap());
        let with_file = img.build_cached(dir.path()).unwrap();
        let hashes = [&bare.hash, &with_program.hash, &with_file.hash];
        assert!(
            hashes[0] != hashes[1] && hashes[1] != hashes[2],
            "{hashes:?}"
        );
        let archive = std::fs::read(&with_file.path).unwrap();
        let has = |n: &[u8]| archive.windows(n.len()).any(|w| w == n);
        for needle in [
            &b"usr/bin/ls"[..],
            b"libselinux.so.1",
            b"libpcre2-8.so.0",
            b"opt/t/hostname",
        ] {
            assert!(has(needle), "{} missing", String::from_utf8_lossy(needle));
        }
    }

    #[test]
    fn prune_keeps_the_most_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        for (i, name) in ["a.cpio", "b.cpio", "c.cpio.zst", "notes.txt"]
            .iter()
            .enumerate()
        {
            let p = dir.path().join(name);
            std::fs::write(&p, b"x").unwrap();
            let f = std::fs::File::options().append(true).open(&p).unwrap();
            f.set_modified(t0 + std::time::Duration::from_secs(i as u64))
                .unwrap();
        }
        prune(dir.path(), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["b.cpio", "c.cpio.zst", "notes.txt"]);
    }

    #[test]
    fn stripping_shrinks_a_debug_binary_and_keeps_its_libraries() {
        // This test binary has DWARF (dev profile).
        let exe = std::env::current_exe().unwrap();
        let stripped = strip_debug(&exe).expect("objcopy");
        let (before, after) = (
            std::fs::metadata(&exe).unwrap().len(),
            std::fs::metadata(stripped.path()).unwrap().len(),
        );
        assert!(after < before / 2, "{before} -> {after}");
        let mut img = GuestImage::new(&exe);
        img.busybox = None;
        let small = img.archive().unwrap();
        img.strip_debug = false;
        let big = img.archive().unwrap();
        assert!(small.len() < big.len(), "{} vs {}", small.len(), big.len());
        // The loader and libc still come along (DT_NEEDED survives).
        let has = |a: &[u8], n: &[u8]| a.windows(n.len()).any(|w| w == n);
        assert!(has(&small, b"libc.so.6"));
    }
}
