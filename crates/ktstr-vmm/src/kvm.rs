//! Opening `/dev/kvm` with errors that say what is wrong with the host.

use std::ffi::CString;
use std::io;
use std::os::fd::FromRawFd;
use std::path::Path;

use kvm_ioctls::{Cap, Kvm};

use crate::error::{HostError, Result};

const KVM_API_VERSION: i32 = 12;

/// Capabilities this VMM relies on, with the names users will search for.
const REQUIRED: &[(Cap, &str)] = &[
    (Cap::Irqchip, "KVM_CAP_IRQCHIP"),
    (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
    (Cap::SetTssAddr, "KVM_CAP_SET_TSS_ADDR"),
    (Cap::Pit2, "KVM_CAP_PIT2"),
    (Cap::Irqfd, "KVM_CAP_IRQFD"),
    (Cap::ImmediateExit, "KVM_CAP_IMMEDIATE_EXIT"),
    (Cap::ExtCpuid, "KVM_CAP_EXT_CPUID"),
    (Cap::VcpuEvents, "KVM_CAP_VCPU_EVENTS"),
];

pub(crate) fn classify_open_error(path: &Path, err: io::Error) -> HostError {
    let path = path.to_path_buf();
    match err.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
            HostError::KvmMissing { path }
        }
        Some(libc::EACCES) | Some(libc::EPERM) => HostError::KvmPermission { path },
        _ => HostError::KvmOpen { path, source: err },
    }
}

pub(crate) fn open(path: &Path) -> Result<Kvm> {
    if !path.exists() {
        return Err(HostError::KvmMissing {
            path: path.to_path_buf(),
        }
        .into());
    }
    let c_path =
        CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| HostError::KvmOpen {
            path: path.to_path_buf(),
            source: io::Error::other(e),
        })?;
    let fd = Kvm::open_with_cloexec_at(&c_path, true)
        .map_err(|e| classify_open_error(path, io::Error::from_raw_os_error(e.errno())))?;
    // SAFETY: `fd` was just opened by us and is owned by nothing else.
    let kvm = unsafe { Kvm::from_raw_fd(fd) };
    if kvm.get_api_version() != KVM_API_VERSION {
        return Err(HostError::KvmOpen {
            path: path.to_path_buf(),
            source: io::Error::other(
                "not a KVM device (KVM_GET_API_VERSION failed or returned an unknown version)",
            ),
        }
        .into());
    }
    for (cap, name) in REQUIRED {
        if !kvm.check_extension(*cap) {
            return Err(HostError::MissingCapability(name).into());
        }
    }
    Ok(kvm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::VmmError;

    #[test]
    fn open_errors_are_classified() {
        let p = Path::new("/dev/kvm");
        assert!(matches!(
            classify_open_error(p, io::Error::from_raw_os_error(libc::EACCES)),
            HostError::KvmPermission { .. }
        ));
        assert!(matches!(
            classify_open_error(p, io::Error::from_raw_os_error(libc::ENOENT)),
            HostError::KvmMissing { .. }
        ));
        assert!(matches!(
            classify_open_error(p, io::Error::from_raw_os_error(libc::EIO)),
            HostError::KvmOpen { .. }
        ));
    }

    #[test]
    fn a_missing_device_and_a_non_kvm_device_are_named() {
        assert!(matches!(
            open(Path::new("/nonexistent/kvm")),
            Err(VmmError::Host(HostError::KvmMissing { .. }))
        ));
        assert!(matches!(
            open(Path::new("/dev/null")),
            Err(VmmError::Host(HostError::KvmOpen { .. }))
        ));
    }
}
