//! What a test adds to its guest beyond init, busybox and schedulers: host
//! programs, each packed with its loader and shared libraries at
//! [`GUEST_PROGRAM_DIR`]`/<file name>` (on the guest's `PATH`, so a payload
//! names it bare), and plain files at a guest path of the test's choosing.
//!
//! Both are part of the archive's bytes, so the image cache key (the
//! archive's SHA-256, see [`crate::image`]) and with it the snapshot key
//! change when they do.

use std::path::{Path, PathBuf};

use ktstr_guest::init::mounts::MOUNTS;
use ktstr_initramfs::Archive;
pub use ktstr_workload::payload::GUEST_PROGRAM_DIR;

use crate::error::HarnessError;

/// A host file placed at a path in the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestFile {
    /// The file on the host (its permission bits are kept).
    pub host: PathBuf,
    /// Absolute path in the guest.
    pub guest: String,
}

impl GuestFile {
    /// `host` at `guest`; a guest path that is relative, `/init`, or under a
    /// file system the guest init mounts at boot (which would hide it) is
    /// refused.
    pub fn new(host: impl Into<PathBuf>, guest: &str) -> Result<Self, HarnessError> {
        let bad = |reason: String| HarnessError::BadGuestPath {
            guest: guest.to_owned(),
            reason,
        };
        if !guest.starts_with('/') || guest.len() < 2 {
            return Err(bad("it must be an absolute path to a file".into()));
        }
        if guest == "/init" {
            return Err(bad("/init is the guest init".into()));
        }
        if let Some((_, _, mount, _)) = MOUNTS
            .iter()
            .find(|(_, _, m, _)| Path::new(guest).starts_with(m))
        {
            return Err(bad(format!(
                "{mount} is mounted over at boot and would hide it; put it elsewhere, e.g. /opt"
            )));
        }
        Ok(GuestFile {
            host: host.into(),
            guest: guest.to_owned(),
        })
    }
}

/// A program a test declares: a path as is, a bare name on the host's
/// `PATH`; missing, the error says which Debian package installs it.
pub fn find_program(name: &str) -> Result<PathBuf, HarnessError> {
    ktstr_testenv::find_guest_program(name).map_err(HarnessError::NoProgram)
}

/// Where host program `host` lands in the guest.
pub fn program_guest_path(host: &Path) -> String {
    crate::image::in_guest_dir(GUEST_PROGRAM_DIR, host)
}

/// The programs and files a `#[ktstr_test]` declared, resolved on this host.
pub fn declared(
    programs: &[&str],
    files: &[(&str, &str)],
) -> Result<(Vec<PathBuf>, Vec<GuestFile>), HarnessError> {
    let programs = programs
        .iter()
        .map(|p| find_program(p))
        .collect::<Result<_, _>>()?;
    let files = files
        .iter()
        .map(|(host, guest)| GuestFile::new(host, guest))
        .collect::<Result<_, _>>()?;
    Ok((programs, files))
}

/// Each must exist before anything is built or booted.
pub(crate) fn check_exist(programs: &[PathBuf], files: &[GuestFile]) -> Result<(), HarnessError> {
    let hosts = programs.iter().chain(files.iter().map(|f| &f.host));
    match hosts.into_iter().find(|p| !p.is_file()) {
        Some(missing) => Err(HarnessError::GuestFileNotFound(missing.clone())),
        None => Ok(()),
    }
}

/// Add `programs` (with their libraries) and `files` to `archive`.
pub(crate) fn pack(
    archive: &mut Archive,
    programs: &[PathBuf],
    files: &[GuestFile],
) -> Result<(), HarnessError> {
    for p in programs {
        let dest = program_guest_path(p);
        archive.add_elf_with_libs(dest.trim_start_matches('/'), p)?;
    }
    for f in files {
        let mode = std::fs::metadata(&f.host)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
            .map_err(|e| HarnessError::io(format!("read {}", f.host.display()), e))?;
        archive.add_host_file(f.guest.trim_start_matches('/'), mode, &f.host)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_paths_that_would_be_hidden_or_clash_are_refused() {
        assert!(GuestFile::new("/etc/hostname", "/opt/x/hostname").is_ok());
        for (guest, why) in [
            ("opt/x", "absolute"),
            ("/init", "guest init"),
            ("/tmp/x", "/tmp is mounted over"),
            ("/sys/fs/cgroup/x", "/sys is mounted over"),
        ] {
            let e = GuestFile::new("/etc/hostname", guest).expect_err(guest);
            assert!(e.to_string().contains(why), "{guest}: {e}");
        }
    }

    #[test]
    fn a_missing_program_is_a_typed_error_naming_it() {
        match declared(&["ktstr-no-such-program"], &[]) {
            Err(e @ HarnessError::NoProgram(_)) => {
                assert!(e.to_string().contains("ktstr-no-such-program"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        let (programs, _) = declared(&["sh"], &[]).unwrap();
        assert_eq!(program_guest_path(&programs[0]), "/usr/bin/sh");
        assert!(matches!(
            check_exist(&[], &[GuestFile::new("/nonexistent/f", "/opt/f").unwrap()]),
            Err(HarnessError::GuestFileNotFound(_))
        ));
    }
}
