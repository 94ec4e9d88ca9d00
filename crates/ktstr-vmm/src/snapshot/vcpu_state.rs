//! One vCPU's architectural state: capture from a parked vCPU, apply to a
//! fresh one. The apply order is what KVM needs: CPUID before anything that
//! depends on features; sregs (APIC base) before the LAPIC; the LAPIC before
//! MSRs (TSC-deadline needs the LAPIC mode); events last (they may inject).

use kvm_bindings::{
    CpuId, Msrs, kvm_cpuid_entry2, kvm_debugregs, kvm_lapic_state, kvm_mp_state, kvm_msr_entry,
    kvm_regs, kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave,
};
use kvm_ioctls::{Kvm, VcpuFd};

use super::SnapshotError;
use super::codec::{Reader, Writer};

#[derive(Clone, Debug, PartialEq)]
pub struct VcpuState {
    pub cpuid: Vec<kvm_cpuid_entry2>,
    pub mp_state: kvm_mp_state,
    pub regs: kvm_regs,
    pub sregs: kvm_sregs,
    pub xsave: XsaveBytes,
    pub xcrs: kvm_xcrs,
    pub debugregs: kvm_debugregs,
    pub lapic: LapicBytes,
    pub msrs: Vec<kvm_msr_entry>,
    pub vcpu_events: kvm_vcpu_events,
    pub tsc_khz: u32,
}

/// `kvm_xsave` has neither `Clone` nor `PartialEq`; both go through bytes.
#[derive(Debug)]
pub struct XsaveBytes(pub kvm_xsave);
impl Clone for XsaveBytes {
    fn clone(&self) -> Self {
        let mut copy = kvm_xsave::default();
        zerocopy::IntoBytes::as_mut_bytes(&mut copy)
            .copy_from_slice(zerocopy::IntoBytes::as_bytes(&self.0));
        Self(copy)
    }
}
impl PartialEq for XsaveBytes {
    fn eq(&self, other: &Self) -> bool {
        zerocopy::IntoBytes::as_bytes(&self.0) == zerocopy::IntoBytes::as_bytes(&other.0)
    }
}

/// The LAPIC register page, compared as bytes except the current-count
/// register, which counts down in real time while the timer runs.
#[derive(Clone, Debug)]
pub struct LapicBytes(pub kvm_lapic_state);
const APIC_TMCCT: usize = 0x390;
impl PartialEq for LapicBytes {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (
            zerocopy::IntoBytes::as_bytes(&self.0),
            zerocopy::IntoBytes::as_bytes(&other.0),
        );
        a[..APIC_TMCCT] == b[..APIC_TMCCT] && a[APIC_TMCCT + 4..] == b[APIC_TMCCT + 4..]
    }
}

fn kvm_err(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> SnapshotError {
    move |source| SnapshotError::Kvm { op, source }
}

/// MSRs KVM lists for this host that `KVM_GET_MSRS` actually accepts on
/// `vcpu` (some listed ones are refused, e.g. for features the CPUID hides).
pub(crate) fn readable_msrs(kvm: &Kvm, vcpu: &VcpuFd) -> Result<Vec<u32>, SnapshotError> {
    let list = kvm
        .get_msr_index_list()
        .map_err(kvm_err("KVM_GET_MSR_INDEX_LIST"))?;
    let mut candidates: Vec<u32> = list.as_slice().to_vec();
    let mut accepted = Vec::with_capacity(candidates.len());
    // KVM_GET_MSRS stops at the first refused index and returns how many it
    // read: keep those, drop the refused one, retry with the rest.
    while !candidates.is_empty() {
        let n = read_msrs(vcpu, &candidates)?.len();
        accepted.extend_from_slice(&candidates[..n]);
        candidates.drain(..(n + 1).min(candidates.len()));
    }
    Ok(accepted)
}

pub(crate) fn read_msrs(
    vcpu: &VcpuFd,
    indices: &[u32],
) -> Result<Vec<kvm_msr_entry>, SnapshotError> {
    let entries: Vec<kvm_msr_entry> = indices
        .iter()
        .map(|&index| kvm_msr_entry {
            index,
            ..Default::default()
        })
        .collect();
    let mut msrs = Msrs::from_entries(&entries)
        .map_err(|e| SnapshotError::Malformed(format!("MSR list: {e:?}")))?;
    let n = vcpu.get_msrs(&mut msrs).map_err(kvm_err("KVM_GET_MSRS"))?;
    Ok(msrs.as_slice()[..n.min(entries.len())].to_vec())
}

impl VcpuState {
    /// Captures a vCPU that is outside `KVM_RUN` with no I/O pending.
    /// `cpuid` is what the VMM set on this vCPU (KVM cannot be asked: some
    /// hosts report more than was set).
    pub(crate) fn capture(
        vcpu: &VcpuFd,
        msr_indices: &[u32],
        cpuid: &[kvm_cpuid_entry2],
    ) -> Result<Self, SnapshotError> {
        // MP state first: reading it makes KVM process pending INIT/SIPI.
        let mp_state = vcpu.get_mp_state().map_err(kvm_err("KVM_GET_MP_STATE"))?;
        let regs = vcpu.get_regs().map_err(kvm_err("KVM_GET_REGS"))?;
        let sregs = vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
        let xsave = vcpu.get_xsave().map_err(kvm_err("KVM_GET_XSAVE"))?;
        let xcrs = vcpu.get_xcrs().map_err(kvm_err("KVM_GET_XCRS"))?;
        let debugregs = vcpu
            .get_debug_regs()
            .map_err(kvm_err("KVM_GET_DEBUGREGS"))?;
        let lapic = vcpu.get_lapic().map_err(kvm_err("KVM_GET_LAPIC"))?;
        let msrs = read_msrs(vcpu, msr_indices)?;
        if msrs.len() != msr_indices.len() {
            let refused = msr_indices.get(msrs.len()).copied().unwrap_or_default();
            return Err(SnapshotError::Malformed(format!(
                "KVM_GET_MSRS refused MSR {refused:#x} it accepted before"
            )));
        }
        let vcpu_events = vcpu
            .get_vcpu_events()
            .map_err(kvm_err("KVM_GET_VCPU_EVENTS"))?;
        let cpuid = cpuid.to_vec();
        let tsc_khz = vcpu.get_tsc_khz().map_err(kvm_err("KVM_GET_TSC_KHZ"))?;
        Ok(Self {
            cpuid,
            mp_state,
            regs,
            sregs,
            xsave: XsaveBytes(xsave),
            xcrs,
            debugregs,
            lapic: LapicBytes(lapic),
            msrs,
            vcpu_events,
            tsc_khz,
        })
    }

    /// CPUID must be set before anything else and only once per vCPU.
    pub(crate) fn apply_cpuid(&self, vcpu: &VcpuFd) -> Result<(), SnapshotError> {
        let cpuid = CpuId::from_entries(&self.cpuid)
            .map_err(|e| SnapshotError::Malformed(format!("CPUID entries: {e:?}")))?;
        vcpu.set_cpuid2(&cpuid).map_err(kvm_err("KVM_SET_CPUID2"))
    }

    /// Applies everything but CPUID (see [`Self::apply_cpuid`]).
    pub(crate) fn apply(&self, vcpu: &VcpuFd) -> Result<(), SnapshotError> {
        match vcpu.get_tsc_khz() {
            Ok(khz) if khz != self.tsc_khz => {
                vcpu.set_tsc_khz(self.tsc_khz)
                    .map_err(|_| SnapshotError::IncompatibleHost(format!(
                        "the snapshot's TSC runs at {} kHz, this host's at {khz} kHz and KVM cannot scale it",
                        self.tsc_khz
                    )))?;
            }
            _ => {}
        }
        vcpu.set_mp_state(self.mp_state)
            .map_err(kvm_err("KVM_SET_MP_STATE"))?;
        vcpu.set_regs(&self.regs).map_err(kvm_err("KVM_SET_REGS"))?;
        vcpu.set_sregs(&self.sregs)
            .map_err(kvm_err("KVM_SET_SREGS"))?;
        // SAFETY: the buffer is a full `kvm_xsave` captured from a vCPU whose
        // CPUID (set above) is the same, so KVM reads only its own layout.
        unsafe { vcpu.set_xsave(&self.xsave.0) }.map_err(kvm_err("KVM_SET_XSAVE"))?;
        vcpu.set_xcrs(&self.xcrs).map_err(kvm_err("KVM_SET_XCRS"))?;
        vcpu.set_debug_regs(&self.debugregs)
            .map_err(kvm_err("KVM_SET_DEBUGREGS"))?;
        vcpu.set_lapic(&self.lapic.0)
            .map_err(kvm_err("KVM_SET_LAPIC"))?;
        let msrs = Msrs::from_entries(&self.msrs)
            .map_err(|e| SnapshotError::Malformed(format!("MSR entries: {e:?}")))?;
        let n = vcpu.set_msrs(&msrs).map_err(kvm_err("KVM_SET_MSRS"))?;
        if n != self.msrs.len() {
            let refused = self.msrs.get(n).map(|m| m.index).unwrap_or_default();
            return Err(SnapshotError::IncompatibleHost(format!(
                "this host's KVM refuses MSR {refused:#x} ({} of {} MSRs set)",
                n,
                self.msrs.len()
            )));
        }
        vcpu.set_vcpu_events(&self.vcpu_events)
            .map_err(kvm_err("KVM_SET_VCPU_EVENTS"))?;
        Ok(())
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.pods(&self.cpuid);
        w.pod(&self.mp_state);
        w.pod(&self.regs);
        w.pod(&self.sregs);
        w.pod(&self.xsave.0);
        w.pod(&self.xcrs);
        w.pod(&self.debugregs);
        w.pod(&self.lapic.0);
        w.pods(&self.msrs);
        w.pod(&self.vcpu_events);
        w.u32(self.tsc_khz);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, SnapshotError> {
        Ok(Self {
            cpuid: r.pods()?,
            mp_state: r.pod()?,
            regs: r.pod()?,
            sregs: r.pod()?,
            xsave: XsaveBytes(r.pod()?),
            xcrs: r.pod()?,
            debugregs: r.pod()?,
            lapic: LapicBytes(r.pod()?),
            msrs: r.pods()?,
            vcpu_events: r.pod()?,
            tsc_khz: r.u32()?,
        })
    }
}
