//! Fast tier: the RIP profiler samples every vCPU while the guest runs and
//! maps the samples to symbols.

mod common;

use std::time::Duration;

use common::*;
use iced_x86::code_asm::*;
use ktstr_vmm::ExitKind;
use ktstr_vmm::profile::Symbolizer;

fn samples_land_in_the_loop_each_vcpu_spins_in() {
    // vCPU 0 spins at LOAD_ADDR+0x100, vCPU 1 at LOAD_ADDR+0x200.
    let code = assemble(|a| {
        let mut second = a.create_label();
        a.test(rdi, rdi)?;
        a.jnz(second)?;
        a.mov(rax, LOAD_ADDR + 0x100)?;
        a.jmp(rax)?;
        a.set_label(&mut second)?;
        a.mov(rax, LOAD_ADDR + 0x200)?;
        a.jmp(rax)
    });
    let spin = |at: u64| {
        assemble_at(at, |a| {
            let mut l = a.create_label();
            a.set_label(&mut l)?;
            a.pause()?;
            a.jmp(l)
        })
    };
    let mut image = code;
    image.resize(0x100, 0x90);
    image.extend(spin(LOAD_ADDR + 0x100));
    image.resize(0x200, 0x90);
    image.extend(spin(LOAD_ADDR + 0x200));

    let outcome = run(raw_vm(image)
        .vcpus(2)
        .profile(Duration::from_millis(10))
        .deadline(Duration::from_millis(500)));
    assert_eq!(outcome.exit, ExitKind::DeadlineExceeded);
    let profile = outcome.profile.expect("profile requested");
    assert!(
        profile.samples.len() >= 20,
        "{} samples",
        profile.samples.len()
    );
    for vcpu in 0..2 {
        assert!(
            profile.samples.iter().any(|s| s.vcpu == vcpu),
            "vCPU {vcpu} sampled"
        );
    }
    let symbols = Symbolizer::from_symbols(vec![
        (LOAD_ADDR + 0x100, 0x10, "spin_zero".into()),
        (LOAD_ADDR + 0x200, 0x10, "spin_one".into()),
    ]);
    for s in &profile.samples {
        let expected = if s.vcpu == 0 { "spin_zero" } else { "spin_one" };
        assert_eq!(
            symbols.lookup(s.rip),
            Some(expected),
            "vCPU {} at {:#x}",
            s.vcpu,
            s.rip
        );
    }
    let windows = profile.histogram(&symbols, Duration::from_secs(10), 2);
    assert_eq!(windows.len(), 1);
    assert_eq!(windows[0].samples, profile.samples.len());
}

fn main() -> std::process::ExitCode {
    let tests = [ktstr_testenv::tests![&[Need::Kvm]; samples_land_in_the_loop_each_vcpu_spins_in]];
    ktstr_testenv::run(tests.into_iter().flatten().collect())
}
