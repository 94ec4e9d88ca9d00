//! Fast tier: emulation-failure handling. On software KVM (kvm-pvm) the host
//! fails to emulate `int3` and `fwait`: the shims must give the guest what
//! hardware would (a #BP / a no-op). On hardware KVM the same guests run
//! natively, so the same assertions on guest-visible behaviour hold.

mod common;

use common::*;
use iced_x86::code_asm::*;
use ktstr_vmm::compat::CompatMode;
use ktstr_vmm::{ExitKind, VmBuilder};
use vm_memory::{Bytes, GuestAddress};

const HANDLER_ADDR: u64 = 0x10_1000;
const IDT_BASE: u64 = 0x3000;
const IDTR_ADDR: u64 = 0x2000;

/// A guest with an IDT whose #BP handler prints "B" and returns: the main
/// code prints "<", executes int3, prints ">" and reboots.
fn int3_guest(mode: CompatMode) -> ktstr_vmm::Vm {
    let main = assemble(|a| {
        a.mov(rax, IDTR_ADDR)?;
        a.lidt(ptr(rax))?;
        out_str(a, COM1, b"<")?;
        a.int3()?;
        out_str(a, COM1, b">")?;
        reboot(a)
    });
    let handler = assemble_at(HANDLER_ADDR, |a| {
        out_str(a, COM1, b"B")?;
        a.iretq()
    });
    let vm = raw_vm(main).compat(mode).build().expect("build");
    let mem = vm.memory();
    mem.write_slice(&handler, GuestAddress(HANDLER_ADDR))
        .expect("handler");
    // 64-bit interrupt gate for vector 3: selector 0x10, present, DPL0.
    let h = HANDLER_ADDR;
    let gate: [u32; 4] = [
        (0x10 << 16) | (h as u32 & 0xffff),
        (h as u32 & 0xffff_0000) | 0x8e00,
        (h >> 32) as u32,
        0,
    ];
    for (i, w) in gate.iter().enumerate() {
        mem.write_obj(*w, GuestAddress(IDT_BASE + 3 * 16 + i as u64 * 4))
            .expect("gate");
    }
    mem.write_obj(0xffu16, GuestAddress(IDTR_ADDR))
        .expect("idtr limit");
    mem.write_obj(IDT_BASE, GuestAddress(IDTR_ADDR + 2))
        .expect("idtr base");
    vm
}

fn int3_reaches_the_guest_breakpoint_handler() {
    let outcome = int3_guest(CompatMode::Auto).run().expect("run");
    assert_eq!(outcome.exit, ExitKind::Reboot, "{:?}", outcome.exit);
    assert_eq!(outcome.com1_text(), "<B>");
    if is_software_kvm() {
        assert_eq!(
            outcome.shim_count("int3"),
            1,
            "software KVM needed the int3 shim"
        );
    } else {
        assert_eq!(
            outcome.shim_count("int3"),
            0,
            "hardware KVM ran int3 natively"
        );
    }
}

fn without_the_shim_software_kvm_reports_the_failed_instruction() {
    let outcome = int3_guest(CompatMode::Off).run().expect("run");
    match outcome.exit {
        ExitKind::EmulationFailure {
            vcpu: 0,
            rip,
            bytes,
        } => {
            assert_eq!(bytes.first(), Some(&0xcc), "{bytes:02x?}");
            assert!(rip > LOAD_ADDR && rip < LOAD_ADDR + 0x100, "{rip:#x}");
        }
        other => panic!("expected EmulationFailure, got {other:?}"),
    }
}

fn fwait_is_a_no_op_for_the_guest() {
    let code = assemble(|a| {
        a.wait()?; // fwait
        out_str(a, COM1, b"after fwait")?;
        reboot(a)
    });
    let outcome = run(raw_vm(code));
    assert_eq!(outcome.exit, ExitKind::Reboot, "{:?}", outcome.exit);
    assert_eq!(outcome.com1_text(), "after fwait");
    assert_eq!(
        outcome.shim_count("fwait"),
        u64::from(is_software_kvm()),
        "shim used exactly where the host needs it"
    );
}

fn an_unhandled_emulation_failure_is_classified_with_rip_and_bytes() {
    // popcnt: fine on hardware; the software-KVM emulator cannot do it and no shim covers it.
    let mut popcnt_at = 0u64;
    let code = assemble(|a| {
        a.mov(rbx, 0xffu64)?;
        a.popcnt(rax, rbx)?;
        out_str(a, COM1, b"ok")?;
        reboot(a)
    });
    // mov rbx, imm64 is 10 bytes; popcnt follows.
    popcnt_at += LOAD_ADDR + 10;
    let outcome = run(VmBuilder::new().raw_image(code, LOAD_ADDR).memory_mib(16));
    if is_software_kvm() {
        match outcome.exit {
            ExitKind::EmulationFailure { vcpu, rip, bytes } => {
                assert_eq!((vcpu, rip), (0, popcnt_at));
                assert_eq!(&bytes[..4], &[0xf3, 0x48, 0x0f, 0xb8], "{bytes:02x?}");
            }
            other => panic!("expected EmulationFailure, got {other:?}"),
        }
    } else {
        assert_eq!(outcome.exit, ExitKind::Reboot);
        assert_eq!(outcome.com1_text(), "ok");
    }
}

fn main() -> std::process::ExitCode {
    let tests = [
        ktstr_testenv::tests![&[software_kvm()]; without_the_shim_software_kvm_reports_the_failed_instruction],
        ktstr_testenv::tests![&[Need::Kvm]; int3_reaches_the_guest_breakpoint_handler, fwait_is_a_no_op_for_the_guest, an_unhandled_emulation_failure_is_classified_with_rip_and_bytes],
    ];
    ktstr_testenv::run(tests.into_iter().flatten().collect())
}
