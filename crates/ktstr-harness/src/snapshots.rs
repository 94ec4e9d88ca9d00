//! Boot once per machine shape, then restore: the first session for a given
//! (kernel, initramfs, command line, CPUs, topology, memory, backend) boots,
//! waits for the guest init's `SysReady` and snapshots the guest there, where
//! it idles waiting for requests; later sessions resume that snapshot. A
//! lock file serialises building, so concurrent tests wait for one snapshot
//! instead of each booting. The backend checks the snapshot's own key and
//! checksums; a snapshot that fails them is deleted and rebuilt.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use ktstr_backend::{BackendKind, BootSpec};
use sha2::{Digest, Sha256};

use crate::error::HarnessError;
use crate::events::SysInfo;

const SYS_FILE: &str = "sysready";

/// Where the snapshot for `spec` on `backend` lives under `root`.
pub fn dir_for(root: &Path, spec: &BootSpec, backend: BackendKind) -> PathBuf {
    // The kernel by size and mtime (hashing ~50 MiB per session would cost more than a
    // restore); the backend's own key hashes its contents before anything is loaded.
    let kernel = std::fs::metadata(&spec.kernel)
        .map(|m| format!("{}:{:?}", m.len(), m.modified().ok()))
        .unwrap_or_default();
    // The initramfs by file name: the image cache names files by their content hash.
    let initramfs = spec
        .initramfs
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    let material = format!(
        "{backend:?}|{}|{kernel}|{initramfs:?}|{}|{}|{:?}|{}",
        spec.kernel.display(),
        spec.cmdline,
        spec.vcpus,
        spec.topology,
        spec.memory_mib
    );
    let digest = Sha256::digest(material.as_bytes());
    let name: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    root.join(name)
}

/// The default root: `snapshots/` beside the initramfs cache.
pub fn default_root(initramfs_cache: &Path) -> PathBuf {
    crate::image::beside_images(initramfs_cache, "snapshots")
}

/// Machine snapshots kept under a root; each holds a copy of guest RAM
/// (sparse, but ~100 MiB once a guest has run), so the least recently used go.
pub const KEEP: usize = 8;

/// Attach snapshots (names ending in [`ATTACHED_SUFFIX`]) kept under a root,
/// counted apart from machine snapshots so that they never push out the
/// machines every test resumes. More than [`KEEP`]: a suite visits its points
/// in turn, and least-recently-used eviction of a cycle longer than the
/// budget misses every time (`tests/schedulers.rs` has 9 scheduler, argument
/// and shape points on the CI presets, `tests/verdicts.rs` 3 more).
pub const KEEP_ATTACHED: usize = 16;

/// How an attach snapshot's directory name ends (see `session::AttachPoint`).
pub const ATTACHED_SUFFIX: &str = "-attached";

fn is_attached(dir: &Path) -> bool {
    dir.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(ATTACHED_SUFFIX))
}

/// Marks `dir` as just used and removes all but the [`KEEP`] (or
/// [`KEEP_ATTACHED`]) most recently used snapshots of its kind under its parent.
pub fn touch_and_prune(dir: &Path) {
    let now = std::time::SystemTime::now();
    if let Ok(f) = File::open(dir.join(SYS_FILE)) {
        let _ = f.set_modified(now);
    }
    let Some(root) = dir.parent() else { return };
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| exists(p) && is_attached(p) == is_attached(dir))
        .map(|p| {
            let used = std::fs::metadata(p.join(SYS_FILE))
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (used, p)
        })
        .collect();
    found.sort_by_key(|(used, _)| std::cmp::Reverse(*used));
    let keep = if is_attached(dir) {
        KEEP_ATTACHED
    } else {
        KEEP
    };
    for (_, old) in found.into_iter().skip(keep) {
        discard(&old);
        let _ = std::fs::remove_file(old.with_extension("lock"));
    }
}

/// Whether `dir` holds a finished snapshot. A snapshot is built in a
/// side directory and published by renaming it, after the backend's files
/// and then [`SYS_FILE`] were written, so that file marks a whole one on
/// every backend (the backend checks its own files when it restores).
pub fn exists(dir: &Path) -> bool {
    dir.join(SYS_FILE).is_file()
}

/// An exclusive `flock` on `<dir>.lock`, released on drop.
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Blocks until this process holds the lock for `dir`.
    pub fn acquire(dir: &Path) -> Result<Self, HarnessError> {
        let lock = dir.with_extension("lock");
        if let Some(parent) = lock.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| HarnessError::io(format!("create {}", parent.display()), e))?;
        }
        let file = File::create(&lock)
            .map_err(|e| HarnessError::io(format!("open {}", lock.display()), e))?;
        // SAFETY: flock on an fd we own; blocks until the lock is ours.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(HarnessError::io(
                format!("lock {}", lock.display()),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(DirLock { _file: file })
    }
}

/// Stores the `SysReady` facts beside the snapshot (a restore sees no new `SysReady`).
pub fn save_sys(dir: &Path, sys: &SysInfo) -> Result<(), HarnessError> {
    let text = format!(
        "{} {} {}\n",
        sys.online_cpus, sys.kernel_text, sys.kernel_phys_base
    );
    std::fs::write(dir.join(SYS_FILE), text)
        .map_err(|e| HarnessError::io("write snapshot sysready", e))
}

/// The facts [`save_sys`] stored, if the file is whole.
pub fn load_sys(dir: &Path) -> Option<SysInfo> {
    let text = std::fs::read_to_string(dir.join(SYS_FILE)).ok()?;
    let mut f = text.split_whitespace().map(str::parse::<u64>);
    let (Some(Ok(cpus)), Some(Ok(text)), Some(Ok(base))) = (f.next(), f.next(), f.next()) else {
        return None;
    };
    Some(SysInfo {
        online_cpus: u32::try_from(cpus).ok()?,
        kernel_text: text,
        kernel_phys_base: base,
    })
}

/// Removes a snapshot that failed to restore, so the next session rebuilds it.
pub fn discard(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove a bad snapshot");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_facts_round_trip_and_dirs_differ_by_shape() {
        let tmp = tempfile::tempdir().unwrap();
        let sys = SysInfo {
            online_cpus: 4,
            kernel_text: 0xffff_ffff_8100_0000,
            kernel_phys_base: 0x100_0000,
        };
        save_sys(tmp.path(), &sys).unwrap();
        assert_eq!(load_sys(tmp.path()), Some(sys));
        let spec = |vcpus| BootSpec {
            kernel: "/nonexistent".into(),
            initramfs: None,
            cmdline: "x".into(),
            vcpus,
            memory_mib: 256,
            deadline: std::time::Duration::from_secs(1),
            topology: None,
            restore_from: None,
        };
        let a = dir_for(tmp.path(), &spec(1), BackendKind::QemuTcg);
        assert_eq!(a, dir_for(tmp.path(), &spec(1), BackendKind::QemuTcg));
        assert_ne!(a, dir_for(tmp.path(), &spec(2), BackendKind::QemuTcg));
        assert_ne!(a, dir_for(tmp.path(), &spec(1), BackendKind::QemuKvm));
        let _l = DirLock::acquire(&a).unwrap();
    }

    #[test]
    fn pruning_keeps_the_newest_of_each_kind() {
        let tmp = tempfile::tempdir().unwrap();
        let sys = SysInfo::default();
        let make = |name: &str| {
            let d = tmp.path().join(name);
            std::fs::create_dir_all(&d).unwrap();
            save_sys(&d, &sys).unwrap();
            d
        };
        let machines: Vec<_> = (0..KEEP).map(|i| make(&format!("m{i}"))).collect();
        for d in &machines {
            touch_and_prune(d);
        }
        // More attach snapshots than KEEP_ATTACHED push out only older attach snapshots.
        let attached: Vec<_> = (0..KEEP_ATTACHED + 2)
            .map(|i| {
                std::thread::sleep(std::time::Duration::from_millis(5));
                let d = make(&format!("a{i}{ATTACHED_SUFFIX}"));
                touch_and_prune(&d);
                d
            })
            .collect();
        assert!(machines.iter().all(|d| exists(d)));
        assert!(!exists(&attached[0]) && !exists(&attached[1]));
        assert!(attached[2..].iter().all(|d| exists(d)));
    }
}
