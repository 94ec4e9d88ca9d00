//! Everything in a snapshot except guest memory, as one encoded section.

use super::SnapshotError;
use super::codec::{Reader, Writer};
use super::vcpu_state::VcpuState;
use super::vm_state::VmState;

/// What the restoring side needs to rebuild the VM around the state.
#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    /// Identifies the boot this snapshot belongs to (see `cache`).
    pub key: String,
    pub memory_mib: u64,
    /// Guest RAM ranges `(start, len)`, stored in this order in the file.
    pub regions: Vec<(u64, u64)>,
    /// Whether the software-KVM compat shims were active.
    pub compat_active: bool,
    pub cmdline: String,
    /// KVM id (initial APIC ID) of each vCPU, in vCPU order: a topology
    /// leaves gaps, and a restore must recreate the same ids.
    pub vcpu_ids: Vec<u64>,
}

/// The machine at the pause: VM, vCPUs, devices (by bus base address).
#[derive(Clone, Debug, PartialEq)]
pub struct MachineState {
    pub meta: Meta,
    pub vm: VmState,
    pub vcpus: Vec<VcpuState>,
    pub pio: Vec<(u64, Vec<u8>)>,
    pub mmio: Vec<(u64, Vec<u8>)>,
}

fn encode_devices(w: &mut Writer, devices: &[(u64, Vec<u8>)]) {
    w.u64(devices.len() as u64);
    for (base, state) in devices {
        w.u64(*base);
        w.bytes(state);
    }
}

fn decode_devices(r: &mut Reader<'_>) -> Result<Vec<(u64, Vec<u8>)>, SnapshotError> {
    let n = r.len()?;
    (0..n)
        .map(|_| Ok((r.u64()?, r.bytes()?.to_vec())))
        .collect()
}

impl MachineState {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.str(&self.meta.key);
        w.u64(self.meta.memory_mib);
        w.u64(self.meta.regions.len() as u64);
        for (start, len) in &self.meta.regions {
            w.u64(*start);
            w.u64(*len);
        }
        w.u8(u8::from(self.meta.compat_active));
        w.str(&self.meta.cmdline);
        w.u64(self.meta.vcpu_ids.len() as u64);
        for id in &self.meta.vcpu_ids {
            w.u64(*id);
        }
        self.vm.encode(&mut w);
        w.u64(self.vcpus.len() as u64);
        for v in &self.vcpus {
            v.encode(&mut w);
        }
        encode_devices(&mut w, &self.pio);
        encode_devices(&mut w, &self.mmio);
        w.buf
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let mut r = Reader::new(bytes, "machine state");
        let key = r.string()?;
        let memory_mib = r.u64()?;
        let n = r.len()?;
        let regions = (0..n)
            .map(|_| Ok((r.u64()?, r.u64()?)))
            .collect::<Result<Vec<_>, SnapshotError>>()?;
        let compat_active = r.u8()? != 0;
        let cmdline = r.string()?;
        let n = r.len()?;
        let vcpu_ids = (0..n).map(|_| r.u64()).collect::<Result<Vec<_>, _>>()?;
        let vm = VmState::decode(&mut r)?;
        let n = r.len()?;
        let vcpus = (0..n)
            .map(|_| VcpuState::decode(&mut r))
            .collect::<Result<Vec<_>, _>>()?;
        let pio = decode_devices(&mut r)?;
        let mmio = decode_devices(&mut r)?;
        r.finish()?;
        if vcpus.is_empty() {
            return Err(SnapshotError::Malformed("no vCPUs".into()));
        }
        if vcpu_ids.len() != vcpus.len() {
            return Err(SnapshotError::Malformed(format!(
                "{} vCPU ids for {} vCPUs",
                vcpu_ids.len(),
                vcpus.len()
            )));
        }
        Ok(Self {
            meta: Meta {
                key,
                memory_mib,
                regions,
                compat_active,
                cmdline,
                vcpu_ids,
            },
            vm,
            vcpus,
            pio,
            mmio,
        })
    }

    pub fn memory_bytes(&self) -> u64 {
        self.meta.regions.iter().map(|(_, len)| len).sum()
    }
}
