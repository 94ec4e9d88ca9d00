//! A hardware-reduced FADT (no PM blocks, no SCI, no legacy devices to
//! probe); the DSDT it points to is [`super::dsdt`].

use zerocopy::{Immutable, IntoBytes, KnownLayout};

use super::sdt;

const HW_REDUCED_ACPI: u32 = 1 << 20;
/// IAPC_BOOT_ARCH "8042 present": without it Linux skips the i8042 the VMM
/// emulates.
const BOOT_ARCH_8042: u16 = 1 << 1;
/// ACPI 6.3: FADT revision 6, minor 3.
const FADT_REVISION: u8 = 6;
const FADT_MINOR: u8 = 3;

/// The FADT after the common header (ACPI 6.3 table 5-34, 276 bytes total).
/// Generic address structures are opaque 12-byte fields, all zero here.
#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C, packed)]
struct FadtBody {
    firmware_ctrl: u32,
    dsdt: u32,
    reserved0: u8,
    preferred_pm_profile: u8,
    sci_int: u16,
    smi_cmd: u32,
    acpi_enable: u8,
    acpi_disable: u8,
    s4bios_req: u8,
    pstate_cnt: u8,
    pm_blocks: [u32; 8],
    block_lens: [u8; 6],
    gpe1_base: u8,
    cst_cnt: u8,
    p_lvl2_lat: u16,
    p_lvl3_lat: u16,
    flush_size: u16,
    flush_stride: u16,
    duty_offset: u8,
    duty_width: u8,
    day_alrm: u8,
    mon_alrm: u8,
    century: u8,
    iapc_boot_arch: u16,
    reserved1: u8,
    flags: u32,
    reset_reg: [u8; 12],
    reset_value: u8,
    arm_boot_arch: u16,
    minor_version: u8,
    x_firmware_ctrl: u64,
    x_dsdt: u64,
    x_pm_blocks: [[u8; 12]; 8],
    sleep_control: [u8; 12],
    sleep_status: [u8; 12],
    hypervisor_vendor: u64,
}

const _: () = assert!(sdt::HEADER_LEN + size_of::<FadtBody>() == 276);

pub fn fadt(dsdt_addr: u64) -> Vec<u8> {
    let body = FadtBody {
        // Both DSDT fields are set; the tables live below 1 MiB.
        dsdt: dsdt_addr as u32,
        x_dsdt: dsdt_addr,
        flags: HW_REDUCED_ACPI,
        iapc_boot_arch: BOOT_ARCH_8042,
        minor_version: FADT_MINOR,
        hypervisor_vendor: u64::from_le_bytes(*b"KTSTRVMM"),
        ..Default::default()
    };
    sdt::table(b"FACP", FADT_REVISION, body.as_bytes())
}
