//! Debian packages in the tier's cache: unpacking `.deb` files into a
//! directory that appears only when complete, and finding files in it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::Error;
use crate::host_command::run;

/// `dpkg-deb -x` of every `debs` into `dest`, through `dest.partial`
/// renamed into place at the end: an interrupted run leaves no `dest`, so
/// the next one unpacks again instead of using half a tree.
pub(crate) fn unpack(debs: &[PathBuf], dest: &Path) -> Result<(), Error> {
    let partial = dest.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| Error::io("remove stale", &partial, e))?;
    }
    for deb in debs {
        run(
            "unpack a Debian package",
            Command::new("dpkg-deb").arg("-x").arg(deb).arg(&partial),
        )?;
    }
    std::fs::rename(&partial, dest).map_err(|e| Error::io("rename", &partial, e))
}

/// The first file under `dir` (recursively, in name order) whose file name
/// satisfies `wanted`.
pub(crate) fn find_file(dir: &Path, wanted: &dyn Fn(&str) -> bool) -> Option<PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(dir).ok()?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    let mut subdirs = Vec::new();
    for e in entries {
        let path = e.path();
        if path.is_dir() {
            subdirs.push(path);
        } else if e.file_name().to_str().is_some_and(wanted) {
            return Some(path);
        }
    }
    subdirs.into_iter().find_map(|d| find_file(&d, wanted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_file_searches_subdirectories_in_name_order() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join("b/c")).expect("mkdir");
        std::fs::create_dir_all(d.path().join("a")).expect("mkdir");
        std::fs::write(d.path().join("b/c/kvm.ko.xz"), b"x").expect("write");
        std::fs::write(d.path().join("a/kvm.ko.xz"), b"y").expect("write");
        let found = find_file(d.path(), &|n| n == "kvm.ko.xz").expect("found");
        assert_eq!(found, d.path().join("a/kvm.ko.xz"));
        assert!(find_file(d.path(), &|n| n == "kvm-amd.ko.xz").is_none());
    }
}
