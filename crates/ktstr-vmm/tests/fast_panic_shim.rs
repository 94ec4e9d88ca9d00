//! Fast tier: the vCPU panic shim. One test in its own binary because the
//! panic hook is process-wide and the order of installs matters.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use ktstr_vmm::{ExitKind, IoAction, IoDevice, IoSpace};

/// A device that panics on write: stands in for any VMM bug hit on a vCPU thread.
struct Faulty;

impl IoDevice for Faulty {
    fn read(&mut self, _: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn write(&mut self, _: u64, _: &[u8]) -> IoAction {
        assert_eq!(
            ktstr_vmm::current_vcpu(),
            Some(1),
            "the shim knows which vCPU this thread runs"
        );
        panic!("device bug on a vCPU thread");
    }
}

fn vcpu_panic_stops_the_vm_chains_hooks_and_installs_once() {
    // A hook installed before the shim must still run (chaining).
    let earlier_hook_calls = Arc::new(AtomicUsize::new(0));
    let calls = earlier_hook_calls.clone();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("earlier hook: {info}");
        calls.fetch_add(1, Ordering::SeqCst);
    }));
    ktstr_vmm::install_panic_shim();
    ktstr_vmm::install_panic_shim(); // idempotent: a second install must not chain twice

    // vCPU 1 writes to the faulty device; vCPU 0 spins and must be stopped.
    let code = assemble(|a| {
        use iced_x86::code_asm::*;
        let mut spin = a.create_label();
        a.cmp(rdi, 1)?;
        a.jne(spin)?;
        a.mov(dx, RECORDER_PORT as u32)?;
        a.out(dx, al)?;
        a.set_label(&mut spin)?;
        a.pause()?;
        a.jmp(spin)
    });
    for round in 1..=2 {
        let outcome = run(raw_vm(code.clone()).vcpus(2).device(
            IoSpace::Pio,
            RECORDER_PORT,
            1,
            Box::new(Faulty),
        ));
        match &outcome.exit {
            ExitKind::VcpuPanicked { vcpu, message } => {
                assert_eq!(*vcpu, 1);
                assert!(message.contains("device bug on a vCPU thread"), "{message}");
            }
            other => panic!("expected VcpuPanicked, got {other:?}"),
        }
        assert_eq!(
            earlier_hook_calls.load(Ordering::SeqCst),
            round,
            "previous hook called exactly once per panic"
        );
    }
    assert_eq!(
        ktstr_vmm::current_vcpu(),
        None,
        "the test thread is not a vCPU thread"
    );

    // A panic outside any vCPU thread is left alone by the shim.
    let r = std::panic::catch_unwind(|| panic!("not a vCPU"));
    assert!(r.is_err());
    assert_eq!(earlier_hook_calls.load(Ordering::SeqCst), 3);
}

fn main() -> std::process::ExitCode {
    let tests = [
        ktstr_testenv::tests![&[Need::Kvm]; vcpu_panic_stops_the_vm_chains_hooks_and_installs_once],
    ];
    ktstr_testenv::run(tests.into_iter().flatten().collect())
}
