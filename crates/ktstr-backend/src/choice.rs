//! Which backend runs a guest: explicit, from `KTSTR_BACKEND`, or `auto`,
//! always with the reason so test output can say why.

use std::path::Path;

use ktstr_qemu::KvmKind;
use ktstr_vmm::compat::{HostKvm, detect_host};

use crate::BackendError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// ktstr-vmm on `/dev/kvm`.
    Vmm,
    QemuTcg,
    QemuKvm,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub kind: BackendKind,
    pub reason: String,
}

/// What this host's `/dev/kvm` is: its presence, and the one software-KVM
/// probe ([`ktstr_vmm::compat::detect_host`]). ktstr-qemu takes this as input.
pub fn host_kvm() -> KvmKind {
    if !Path::new("/dev/kvm").exists() {
        return KvmKind::Absent;
    }
    match detect_host() {
        HostKvm::Hardware => KvmKind::Hardware,
        HostKvm::Software { module } => KvmKind::Software { module },
    }
}

/// Reads `KTSTR_BACKEND` (`kvm|qemu-tcg|qemu-kvm|auto`, default auto).
pub fn choose() -> Result<Choice, BackendError> {
    let value = std::env::var("KTSTR_BACKEND").unwrap_or_default();
    choose_from(&value, host_kvm())
}

/// `auto` picks ktstr-vmm only on hardware KVM: software KVM (kvm-pvm)
/// cannot run guest user space, and without KVM there is only QEMU TCG.
pub fn choose_from(value: &str, kvm: KvmKind) -> Result<Choice, BackendError> {
    let explicit = |kind, what: &str| {
        Ok(Choice {
            kind,
            reason: format!("KTSTR_BACKEND={what}"),
        })
    };
    match value {
        "kvm" => explicit(BackendKind::Vmm, value),
        "qemu-tcg" => explicit(BackendKind::QemuTcg, value),
        "qemu-kvm" => explicit(BackendKind::QemuKvm, value),
        "" | "auto" => Ok(match kvm {
            KvmKind::Absent => Choice {
                kind: BackendKind::QemuTcg,
                reason: "/dev/kvm is missing".into(),
            },
            KvmKind::Software { module } => Choice {
                kind: BackendKind::QemuTcg,
                reason: format!("software KVM ({module}) cannot run guest user space"),
            },
            KvmKind::Hardware => Choice {
                kind: BackendKind::Vmm,
                reason: "hardware KVM".into(),
            },
        }),
        other => Err(BackendError::UnknownBackend(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_and_explicit_choices() {
        let pvm = KvmKind::Software { module: "kvm_pvm" };
        assert_eq!(
            choose_from("auto", KvmKind::Absent).expect("auto").kind,
            BackendKind::QemuTcg,
            "no /dev/kvm"
        );
        assert_eq!(
            choose_from("", KvmKind::Hardware).expect("auto").kind,
            BackendKind::Vmm,
            "hardware KVM"
        );
        let soft = choose_from("auto", pvm).expect("auto");
        assert_eq!(soft.kind, BackendKind::QemuTcg);
        assert!(soft.reason.contains("kvm_pvm"), "{}", soft.reason);
        assert_eq!(choose_from("kvm", pvm).expect("kvm").kind, BackendKind::Vmm);
        assert_eq!(
            choose_from("qemu-kvm", pvm).expect("qemu-kvm").kind,
            BackendKind::QemuKvm
        );
        assert!(matches!(
            choose_from("xen", pvm),
            Err(BackendError::UnknownBackend(_))
        ));
    }
}
