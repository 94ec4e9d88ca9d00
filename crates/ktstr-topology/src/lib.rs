//! Machine shapes for ktstr guests, with no KVM or QEMU in sight: the shape
//! and its text form (`1n2l4c2t`), NUMA nodes with their distances and
//! memory, where each vCPU sits and its APIC ID, what Linux inside the guest
//! should report ([`LinuxView`], [`GuestTopology`]), and the kernel's CPU
//! list text, and the catalogue of named preset shapes ([`PRESETS`]). Backends *express* a shape (CPUID and ACPI in ktstr-vmm, QEMU
//! arguments in ktstr-qemu); the facts live here.

mod apic;
mod cpulist;
mod distance;
mod error;
mod guest;
mod linux_view;
mod numa;
mod presets;
mod text;
mod uniform;

pub use apic::{ApicLayout, MAX_XAPIC_ID, count_order};
pub use cpulist::{CpuListFault, MAX_CPUS, format_cpu_list, parse_cpu_list};
pub use distance::{DistanceMatrix, LOCAL_DISTANCE, REMOTE_DISTANCE};
pub use error::TopologyError;
pub use guest::GuestTopology;
pub use linux_view::{CpuView, LinuxView, NodeView};
pub use numa::{NodeSpec, NumaTopology};
pub use presets::{PRESETS, Preset, PresetShape, PresetTier, Shape, preset, resolve};
pub use uniform::{CpuLoc, Topology};
