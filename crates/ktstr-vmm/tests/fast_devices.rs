//! Fast tier: port I/O and MMIO dispatch, both UARTs, i8042 reset, triple
//! fault, multi-vCPU start. Tiny guests, no Linux.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use iced_x86::code_asm::*;
use ktstr_vmm::{ExitKind, IoSpace};

#[test]
fn both_uarts_are_captured_and_streamed_then_reboot() {
    if !kvm_available() {
        return;
    }
    let code = assemble(|a| {
        out_str(a, COM1, b"hello com1\n")?;
        out_str(a, COM2, b"hello com2\n")?;
        reboot(a)
    });
    let live = Arc::new(Mutex::new(Vec::new()));
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let outcome = run(raw_vm(code).com2_sink(Box::new(Sink(live.clone()))));
    assert_eq!(outcome.exit, ExitKind::Reboot);
    assert_eq!(outcome.com1_text(), "hello com1\n");
    assert_eq!(outcome.com2_text(), "hello com2\n");
    assert_eq!(
        &*live.lock().expect("lock"),
        b"hello com2\n",
        "COM2 streamed live"
    );
}

#[test]
fn triple_fault_is_a_shutdown() {
    if !kvm_available() {
        return;
    }
    // ud2 with the VMM's empty IDT: #UD -> #DF -> triple fault.
    let code = assemble(|a| {
        out_str(a, COM1, b"x")?;
        a.ud2()
    });
    let outcome = run(raw_vm(code));
    assert_eq!(outcome.exit, ExitKind::Shutdown);
    assert_eq!(outcome.com1_text(), "x");
}

#[test]
fn pio_and_mmio_reach_their_devices_and_unknown_addresses_are_harmless() {
    if !kvm_available() {
        return;
    }
    const MMIO_BASE: u64 = 0xd000_0000;
    let pio_dev = Recorder {
        read_value: 0x41,
        ..Default::default()
    };
    let mmio_dev = Recorder {
        read_value: 0x5a,
        ..Default::default()
    };
    let code = assemble(|a| {
        // Read the PIO device, echo value+1 back to it (offset 1).
        a.mov(dx, RECORDER_PORT as u32)?;
        a.in_(al, dx)?;
        a.inc(al)?;
        a.mov(dx, (RECORDER_PORT + 1) as u32)?;
        a.out(dx, al)?;
        // MMIO write and read-back through the MMIO device.
        a.mov(rbx, MMIO_BASE)?;
        a.mov(byte_ptr(rbx + 2), 0x77)?;
        a.mov(al, byte_ptr(rbx))?;
        a.mov(dx, RECORDER_PORT as u32)?;
        a.out(dx, al)?;
        // Unknown port and unknown MMIO: reads must give all-ones.
        a.mov(dx, 0x1234u32)?;
        a.out(dx, al)?;
        a.in_(al, dx)?;
        a.mov(dx, RECORDER_PORT as u32)?;
        a.out(dx, al)?;
        a.mov(rbx, 0xe000_0000u64)?;
        a.mov(dword_ptr(rbx), 0x1234_5678)?;
        a.mov(eax, dword_ptr(rbx))?;
        a.mov(dx, RECORDER_PORT as u32)?;
        a.out(dx, al)?;
        reboot(a)
    });
    let vm = raw_vm(code)
        .device(IoSpace::Pio, RECORDER_PORT, 2, Box::new(pio_dev.clone()))
        .device(IoSpace::Mmio, MMIO_BASE, 0x1000, Box::new(mmio_dev.clone()));
    let outcome = run(vm);
    assert_eq!(outcome.exit, ExitKind::Reboot);
    assert_eq!(
        *pio_dev.writes.lock().expect("lock"),
        vec![(1, 0x42), (0, 0x5a), (0, 0xff), (0, 0xff)]
    );
    assert_eq!(*mmio_dev.writes.lock().expect("lock"), vec![(2, 0x77)]);
    assert!(
        outcome.unhandled_io >= 4,
        "unknown accesses counted: {}",
        outcome.unhandled_io
    );
}

#[test]
fn guest_garbage_to_every_legacy_port_does_not_panic() {
    if !kvm_available() {
        return;
    }
    // Writes 0xa5 to every port 0..0x400 except the i8042 command port, then reads them all.
    let code = assemble(|a| {
        let mut write_loop = a.create_label();
        let mut skip = a.create_label();
        let mut read_loop = a.create_label();
        a.xor(ecx, ecx)?;
        a.set_label(&mut write_loop)?;
        a.cmp(ecx, 0x64)?;
        a.je(skip)?;
        a.mov(edx, ecx)?;
        a.mov(al, 0xa5)?;
        a.out(dx, al)?;
        a.set_label(&mut skip)?;
        a.inc(ecx)?;
        a.cmp(ecx, 0x400)?;
        a.jb(write_loop)?;
        a.xor(ecx, ecx)?;
        a.set_label(&mut read_loop)?;
        a.mov(edx, ecx)?;
        a.in_(eax, dx)?;
        a.inc(ecx)?;
        a.cmp(ecx, 0x400)?;
        a.jb(read_loop)?;
        // The garbage set COM1's DLAB and loopback bits: restore 8N1, no loopback.
        a.mov(dx, (COM1 + 3) as u32)?;
        a.mov(al, 0x03)?;
        a.out(dx, al)?;
        a.mov(dx, (COM1 + 4) as u32)?;
        a.mov(al, 0x00)?;
        a.out(dx, al)?;
        out_str(a, COM1, b"survived")?;
        reboot(a)
    });
    let outcome = run(raw_vm(code));
    assert_eq!(outcome.exit, ExitKind::Reboot, "{}", outcome.com1_text());
    assert!(outcome.com1_text().ends_with("survived"));
}

#[test]
fn every_vcpu_starts_with_its_own_index() {
    if !kvm_available() {
        return;
    }
    const VCPUS: usize = 4;
    let recorder = Recorder {
        reboot_after: Some(VCPUS),
        ..Default::default()
    };
    let code = assemble(|a| {
        // rdi = vCPU index, rsp = own stack: push/pop proves the stack works.
        a.push(rdi)?;
        a.pop(rax)?;
        a.mov(dx, RECORDER_PORT as u32)?;
        a.out(dx, al)?;
        halt_forever(a)
    });
    let outcome = run(raw_vm(code).vcpus(VCPUS).device(
        IoSpace::Pio,
        RECORDER_PORT,
        1,
        Box::new(recorder.clone()),
    ));
    assert_eq!(outcome.exit, ExitKind::Reboot);
    let mut seen = recorder.bytes();
    seen.sort();
    assert_eq!(seen, vec![0, 1, 2, 3]);
    assert_eq!(outcome.vcpus, VCPUS);
}

#[test]
fn topology_vcpus_get_their_apic_ids() {
    if !kvm_available() {
        return;
    }
    // Three cores per LLC leave a gap in the APIC IDs (core field is 2 bits).
    let topo: ktstr_topology::Topology = "2n2l3c1t".parse().expect("topology");
    let topo = topo.to_numa().expect("numa");
    let vcpus = topo.vcpus() as usize;
    let recorder = Recorder {
        reboot_after: Some(vcpus),
        ..Default::default()
    };
    let code = assemble(|a| {
        // xAPIC ID register (0xfee00020), bits 31:24: what KVM gave this vCPU.
        a.mov(rbx, 0xfee0_0020u64)?;
        a.mov(eax, dword_ptr(rbx))?;
        a.shr(eax, 24)?;
        a.mov(dx, RECORDER_PORT as u32)?;
        a.out(dx, al)?;
        halt_forever(a)
    });
    let outcome = run(raw_vm(code).topology(topo.clone()).device(
        IoSpace::Pio,
        RECORDER_PORT,
        1,
        Box::new(recorder.clone()),
    ));
    assert_eq!(outcome.exit, ExitKind::Reboot, "{}", outcome.com1_text());
    let mut seen = recorder.bytes();
    seen.sort();
    let want: Vec<u8> = (0..vcpus as u32)
        .map(|i| topo.apic_id(i).expect("apic id") as u8)
        .collect();
    assert_eq!(seen, want);
    assert_eq!(want, [0, 1, 2, 4, 5, 6], "the layout leaves a gap");
}
