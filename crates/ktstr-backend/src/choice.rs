//! Which backend runs a guest: explicit, from `KTSTR_BACKEND`, or `auto`,
//! always with the reason so test output can say why.

use std::path::Path;

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

/// Reads `KTSTR_BACKEND` (`kvm|qemu-tcg|qemu-kvm|auto`, default auto).
pub fn choose() -> Result<Choice, BackendError> {
    let value = std::env::var("KTSTR_BACKEND").unwrap_or_default();
    choose_from(&value, Path::new("/dev/kvm"), Path::new("/sys/module"))
}

/// `auto` picks ktstr-vmm only on hardware KVM: software KVM (kvm-pvm)
/// cannot run guest user space, and without KVM there is only QEMU TCG.
pub fn choose_from(value: &str, kvm_dev: &Path, sys_module: &Path) -> Result<Choice, BackendError> {
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
        "" | "auto" => Ok(if !kvm_dev.exists() {
            Choice {
                kind: BackendKind::QemuTcg,
                reason: format!("{} is missing", kvm_dev.display()),
            }
        } else if sys_module.join("kvm_pvm").exists() {
            Choice {
                kind: BackendKind::QemuTcg,
                reason: "software KVM (kvm_pvm) cannot run guest user space".into(),
            }
        } else {
            Choice {
                kind: BackendKind::Vmm,
                reason: "hardware KVM".into(),
            }
        }),
        other => Err(BackendError::UnknownBackend(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_and_explicit_choices() {
        let dir = std::env::temp_dir().join(format!("ktstr-backend-choice-{}", std::process::id()));
        let (kvm, modules) = (dir.join("kvm"), dir.join("module"));
        std::fs::create_dir_all(&modules).expect("mkdir");
        assert_eq!(
            choose_from("auto", &kvm, &modules).expect("auto").kind,
            BackendKind::QemuTcg,
            "no /dev/kvm"
        );
        std::fs::write(&kvm, b"").expect("fake dev");
        assert_eq!(
            choose_from("", &kvm, &modules).expect("auto").kind,
            BackendKind::Vmm,
            "hardware KVM"
        );
        std::fs::create_dir_all(modules.join("kvm_pvm")).expect("mkdir");
        let soft = choose_from("auto", &kvm, &modules).expect("auto");
        assert_eq!(soft.kind, BackendKind::QemuTcg);
        assert!(soft.reason.contains("kvm_pvm"), "{}", soft.reason);
        assert_eq!(
            choose_from("kvm", &kvm, &modules).expect("kvm").kind,
            BackendKind::Vmm
        );
        assert_eq!(
            choose_from("qemu-kvm", &kvm, &modules)
                .expect("qemu-kvm")
                .kind,
            BackendKind::QemuKvm
        );
        assert!(matches!(
            choose_from("xen", &kvm, &modules),
            Err(BackendError::UnknownBackend(_))
        ));
        std::fs::remove_dir_all(&dir).ok();
    }
}
