//! The file systems PID 1 mounts before anything else runs.

use std::ffi::CString;

/// Mounts in order: `(source, fstype, target, required)`.
pub const MOUNTS: &[(&str, &str, &str, bool)] = &[
    ("proc", "proc", "/proc", true),
    ("sysfs", "sysfs", "/sys", true),
    ("devtmpfs", "devtmpfs", "/dev", true),
    ("devpts", "devpts", "/dev/pts", false),
    ("tmpfs", "tmpfs", "/tmp", true),
    ("tmpfs", "tmpfs", "/run", false),
    ("cgroup2", "cgroup2", "/sys/fs/cgroup", false),
    ("debugfs", "debugfs", "/sys/kernel/debug", false),
    ("tracefs", "tracefs", "/sys/kernel/tracing", false),
    ("bpf", "bpf", "/sys/fs/bpf", false),
];

/// A mount that failed.
#[derive(Debug, thiserror::Error)]
#[error("mount {fstype} on {target}: {source}")]
pub struct MountError {
    /// File system type.
    pub fstype: String,
    /// Mount point.
    pub target: String,
    /// errno.
    pub source: std::io::Error,
}

/// Mount everything in [`MOUNTS`]. A required one failing is an error;
/// optional ones (absent from a lean kernel) come back as warnings.
pub fn mount_all() -> Result<Vec<MountError>, MountError> {
    let mut warnings = Vec::new();
    for &(source, fstype, target, required) in MOUNTS {
        match mount(source, fstype, target) {
            Ok(()) => {}
            Err(e) if required => return Err(e),
            Err(e) => warnings.push(e),
        }
    }
    Ok(warnings)
}

fn mount(source: &str, fstype: &str, target: &str) -> Result<(), MountError> {
    let err = |source| MountError {
        fstype: fstype.to_owned(),
        target: target.to_owned(),
        source,
    };
    std::fs::create_dir_all(target).map_err(err)?;
    let c = |s: &str| CString::new(s).map_err(|e| err(std::io::Error::other(e)));
    let (src, dst, fs) = (c(source)?, c(target)?, c(fstype)?);
    // SAFETY: all pointers are valid NUL-terminated strings for the call;
    // a null `data` is allowed.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            fs.as_ptr(),
            libc::MS_NOSUID,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        let e = std::io::Error::last_os_error();
        // Already mounted (e.g. devtmpfs automount) is fine.
        if e.raw_os_error() == Some(libc::EBUSY) {
            Ok(())
        } else {
            Err(err(e))
        }
    }
}
