//! Host compatibility layer for software / nested KVM (e.g. kvm-pvm), where
//! the host's instruction emulator cannot run every guest instruction and
//! the guest sees the host's CPUID. Applied only where the host needs it,
//! and logged when applied; on hardware KVM nothing here changes behaviour.

use std::path::Path;

use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::arch::x86_64::cpuid::{self, FeatureBit};
use crate::error::{Result, kvm_op};

/// Whether to apply the compatibility layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CompatMode {
    /// Apply it only when [`detect_host`] finds software/nested KVM.
    #[default]
    Auto,
    Off,
    On,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostKvm {
    Hardware,
    /// A software KVM implementation, named by its kernel module.
    Software {
        module: &'static str,
    },
}

impl HostKvm {
    /// The software KVM module, or `None` on hardware KVM.
    pub fn software_module(&self) -> Option<&'static str> {
        match self {
            HostKvm::Hardware => None,
            HostKvm::Software { module } => Some(module),
        }
    }
}

/// Kernel modules that provide KVM without hardware virtualization.
const SOFTWARE_KVM_MODULES: &[&str] = &["kvm_pvm"];

/// The one probe for software KVM (kvm-pvm): every crate and test asks it.
pub fn detect_host() -> HostKvm {
    detect_host_in(Path::new("/sys/module"))
}

fn detect_host_in(sys_module: &Path) -> HostKvm {
    SOFTWARE_KVM_MODULES
        .iter()
        .find(|m| sys_module.join(m).exists())
        .map_or(HostKvm::Hardware, |module| HostKvm::Software { module })
}

/// Kernel arguments for a guest on software KVM: keep the guest away from
/// instructions the host emulator fails on (xrstor, cmpxchg16b, popcnt, ...)
/// and skip calibrations that take minutes at emulator speed.
pub const SOFTWARE_KVM_CMDLINE: &[&str] = &[
    "noxsave",
    "nofsgsbase",
    "clearcpuid=cx16,popcnt,smap,invpcid,rdrand,rdseed",
    "no_timer_check",
    "tsc=reliable",
    "lpj=5000000",
];

/// Boot-time cuts for a slow host, from profiling (see README): the RNG
/// self-test and trace eval-map update initcalls, and the W+X page-table
/// walk that `rodata=off` skips. None of them touches scheduling.
pub const SLOW_HOST_BOOT_CMDLINE: &[&str] = &[
    "initcall_blacklist=jent_mod_init,trace_eval_init",
    "rodata=off",
];

/// The resolved layer for one VM.
#[derive(Clone, Debug, Default)]
pub struct CompatProfile {
    pub active: bool,
    pub reason: Option<String>,
    pub masked_features: Vec<FeatureBit>,
    pub cmdline: Vec<&'static str>,
}

impl CompatProfile {
    pub fn resolve(mode: CompatMode, host: &HostKvm, boot_cuts: bool) -> Self {
        let reason = match (mode, host) {
            (CompatMode::Off, _) | (CompatMode::Auto, HostKvm::Hardware) => return Self::default(),
            (CompatMode::On, HostKvm::Hardware) => "forced on".to_string(),
            (_, HostKvm::Software { module }) => format!("software KVM ({module})"),
        };
        Self {
            active: true,
            reason: Some(reason),
            masked_features: vec![cpuid::POPCNT, cpuid::CX16, cpuid::XSAVE, cpuid::RDRAND],
            cmdline: SOFTWARE_KVM_CMDLINE
                .iter()
                .chain(if boot_cuts {
                    SLOW_HOST_BOOT_CMDLINE
                } else {
                    &[]
                })
                .copied()
                .collect(),
        }
    }
}

/// What to do about a `KVM_EXIT_INTERNAL_ERROR`.
#[derive(Debug, PartialEq, Eq)]
pub enum InternalErrorVerdict {
    /// A shim performed the instruction's architectural effect; resume.
    Handled(&'static str),
    /// An emulation failure no shim covers.
    Unhandled { rip: u64, bytes: Vec<u8> },
    /// Not an emulation failure at all.
    Other(String),
}

const KVM_INTERNAL_ERROR_EMULATION: u32 = 1;
const OPCODE_INT3: u8 = 0xcc;
const OPCODE_FWAIT: u8 = 0x9b;
const VECTOR_BP: u8 = 3;
const MAX_INSN_LEN: usize = 15;

pub fn handle_internal_error(
    vcpu: &mut VcpuFd,
    mem: &GuestMemoryMmap,
    shims: bool,
) -> Result<InternalErrorVerdict> {
    // SAFETY: exit_reason is KVM_EXIT_INTERNAL_ERROR, so `internal` is the live union member.
    let internal = unsafe { vcpu.get_kvm_run().__bindgen_anon_1.internal };
    if internal.suberror != KVM_INTERNAL_ERROR_EMULATION {
        return Ok(InternalErrorVerdict::Other(format!(
            "KVM internal error, suberror {} data {:x?}",
            internal.suberror,
            &internal.data[..(internal.ndata as usize).min(16)]
        )));
    }
    let mut regs = vcpu.get_regs().map_err(kvm_op("KVM_GET_REGS"))?;
    let bytes = instruction_bytes(vcpu, mem, regs.rip);
    match (shims, bytes.first()) {
        (true, Some(&OPCODE_INT3)) => {
            // int3 is a trap: #BP is delivered with RIP after the instruction.
            regs.rip += 1;
            vcpu.set_regs(&regs).map_err(kvm_op("KVM_SET_REGS"))?;
            let mut events = vcpu
                .get_vcpu_events()
                .map_err(kvm_op("KVM_GET_VCPU_EVENTS"))?;
            events.exception.injected = 1;
            events.exception.nr = VECTOR_BP;
            events.exception.has_error_code = 0;
            vcpu.set_vcpu_events(&events)
                .map_err(kvm_op("KVM_SET_VCPU_EVENTS"))?;
            Ok(InternalErrorVerdict::Handled("int3"))
        }
        (true, Some(&OPCODE_FWAIT)) => {
            // fwait only raises pending x87 exceptions; a kernel never leaves one pending here.
            regs.rip += 1;
            vcpu.set_regs(&regs).map_err(kvm_op("KVM_SET_REGS"))?;
            Ok(InternalErrorVerdict::Handled("fwait"))
        }
        _ => Ok(InternalErrorVerdict::Unhandled {
            rip: regs.rip,
            bytes,
        }),
    }
}

/// Up to 15 bytes at `rip`, stopping at the first untranslatable page.
fn instruction_bytes(vcpu: &VcpuFd, mem: &GuestMemoryMmap, rip: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_INSN_LEN);
    for va in rip..rip.saturating_add(MAX_INSN_LEN as u64) {
        let Ok(t) = vcpu.translate_gva(va) else { break };
        let mut b = [0u8; 1];
        if t.valid == 0
            || mem
                .read_slice(&mut b, GuestAddress(t.physical_address))
                .is_err()
        {
            break;
        }
        out.push(b[0]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_software_kvm_by_module() {
        let dir = std::env::temp_dir().join(format!("ktstr-compat-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("kvm")).expect("mkdir");
        assert_eq!(detect_host_in(&dir), HostKvm::Hardware);
        std::fs::create_dir_all(dir.join("kvm_pvm")).expect("mkdir");
        assert_eq!(
            detect_host_in(&dir),
            HostKvm::Software { module: "kvm_pvm" }
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn auto_applies_only_on_software_kvm() {
        let pvm = HostKvm::Software { module: "kvm_pvm" };
        assert!(!CompatProfile::resolve(CompatMode::Auto, &HostKvm::Hardware, true).active);
        assert!(CompatProfile::resolve(CompatMode::Auto, &pvm, true).active);
        assert!(!CompatProfile::resolve(CompatMode::Off, &pvm, true).active);
        let forced = CompatProfile::resolve(CompatMode::On, &HostKvm::Hardware, true);
        assert!(
            forced.active
                && forced.cmdline.contains(&"noxsave")
                && forced.cmdline.contains(&"rodata=off")
        );
        let no_cuts = CompatProfile::resolve(CompatMode::Auto, &pvm, false);
        assert!(no_cuts.cmdline.contains(&"noxsave") && !no_cuts.cmdline.contains(&"rodata=off"));
    }
}
