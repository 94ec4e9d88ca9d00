//! Files a run leaves only if its process was killed outright (SIGKILL, a CI
//! timeout), when no destructor runs. Their names carry the owner's pid, so
//! the next run removes those whose owner is gone.

use std::path::{Path, PathBuf};

/// Prefix of the guest RAM files in /dev/shm.
pub(crate) const MEM_PREFIX: &str = "ktstr-qemu-mem";
/// Prefix of the per-run socket directories in the temp dir.
pub(crate) const DIR_PREFIX: &str = "ktstr-qemu-run";

/// `<prefix>-<pid>-`: what this process's files start with.
pub(crate) fn owned_prefix(prefix: &str) -> String {
    format!("{prefix}-{}-", std::process::id())
}

fn owner(name: &str, prefix: &str) -> Option<i32> {
    name.strip_prefix(prefix)?
        .strip_prefix('-')?
        .split('-')
        .next()?
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 || *libc::__errno_location() == libc::EPERM }
}

/// Removes `prefix` entries under `dir` whose owning process no longer exists.
pub(crate) fn sweep(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner(&name, prefix) else {
            continue;
        };
        if alive(pid) {
            continue;
        }
        let path = e.path();
        let ok = if path.is_dir() {
            std::fs::remove_dir_all(&path).is_ok()
        } else {
            std::fs::remove_file(&path).is_ok()
        };
        if ok {
            tracing::info!(path = %path.display(), pid, "removed a file left by a killed run");
            removed.push(path);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_of_dead_owners_go() {
        let dir = tempfile::tempdir().unwrap();
        let mine = dir.path().join(format!("{}x", owned_prefix(MEM_PREFIX)));
        // pid_max is at most 2^22: this pid cannot exist.
        let dead = dir.path().join(format!("{MEM_PREFIX}-99999999-abc"));
        let other = dir.path().join("unrelated-1-2");
        for p in [&mine, &dead, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        assert_eq!(sweep(dir.path(), MEM_PREFIX), vec![dead.clone()]);
        assert!(mine.exists() && other.exists() && !dead.exists());
    }
}
