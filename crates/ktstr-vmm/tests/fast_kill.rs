//! Fast tier: the interrupt handle and the deadline. A kill must end a run
//! promptly wherever the vCPUs are, and never leak into a run not killed;
//! however a run ends, the host's console receivers learn it at once.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;
use iced_x86::code_asm::*;
use ktstr_vmm::{ExitKind, PORT_BULK};

fn spinner() -> Vec<u8> {
    assemble(spin_forever)
}

fn kill_while_spinning_ends_the_run_as_killed() {
    for vcpus in [1, 3] {
        let vm = raw_vm(spinner()).vcpus(vcpus).build().expect("build");
        let handle = vm.interrupt_handle();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let t = Instant::now();
            handle.kill();
            t
        });
        let outcome = vm.run().expect("run");
        let killed_at = killer.join().expect("killer thread");
        assert_eq!(outcome.exit, ExitKind::Killed);
        assert!(
            killed_at.elapsed() < Duration::from_secs(2),
            "run returned promptly after kill"
        );
    }
}

fn kill_before_start_is_not_lost() {
    let vm = raw_vm(spinner()).vcpus(2).build().expect("build");
    vm.interrupt_handle().kill();
    let outcome = vm.run().expect("run");
    assert_eq!(outcome.exit, ExitKind::Killed);
    assert!(
        outcome.timings.run < Duration::from_secs(2),
        "{:?}",
        outcome.timings.run
    );
}

fn kill_after_the_run_is_harmless() {
    let vm = raw_vm(assemble(reboot)).build().expect("build");
    let handle = vm.interrupt_handle();
    let outcome = vm.run().expect("run");
    handle.kill();
    handle.kill();
    assert_eq!(outcome.exit, ExitKind::Reboot);
    assert!(handle.is_stopping());
}

fn kill_during_host_side_io_exits() {
    // The guest does nothing but port I/O, so the kill mostly lands while the
    // vCPU is outside KVM_RUN handling an exit: the re-entry check must see it.
    let code = assemble(|a| {
        let mut l = a.create_label();
        a.set_label(&mut l)?;
        a.mov(dx, RECORDER_PORT as u32)?;
        a.out(dx, al)?;
        a.jmp(l)
    });
    for _ in 0..20 {
        let recorder = Recorder::default();
        let vm = raw_vm(code.clone())
            .device(
                ktstr_vmm::IoSpace::Pio,
                RECORDER_PORT,
                1,
                Box::new(recorder.clone()),
            )
            .build()
            .expect("build");
        let handle = vm.interrupt_handle();
        let writes = recorder.writes.clone();
        let killer = std::thread::spawn(move || {
            // Kill only once the guest is busy doing I/O exits.
            let give_up = Instant::now() + Duration::from_secs(10);
            while writes.lock().expect("lock").len() < 100 && Instant::now() < give_up {
                std::thread::sleep(Duration::from_micros(200));
            }
            handle.kill();
        });
        let outcome = vm.run().expect("run");
        killer.join().expect("killer");
        assert_eq!(outcome.exit, ExitKind::Killed);
        assert!(
            recorder.bytes().len() >= 100,
            "the guest was doing I/O when killed"
        );
    }
}

fn kill_racing_a_natural_exit_never_hangs() {
    let code = assemble(|a| {
        out_str(a, COM1, b"r")?;
        reboot(a)
    });
    for i in 0..100u64 {
        let vm = raw_vm(code.clone())
            .vcpus(1 + (i % 2) as usize)
            .build()
            .expect("build");
        let handle = vm.interrupt_handle();
        let barrier = Arc::new(Barrier::new(2));
        let b = barrier.clone();
        let killer = std::thread::spawn(move || {
            b.wait();
            std::thread::sleep(Duration::from_micros(i * 7 % 400));
            handle.kill();
        });
        barrier.wait();
        let outcome = vm.run().expect("run");
        killer.join().expect("killer");
        assert!(
            matches!(outcome.exit, ExitKind::Reboot | ExitKind::Killed),
            "{:?}",
            outcome.exit
        );
    }
}

fn many_vms_many_kills_never_leak_into_unkilled_runs() {
    // Each guest spins ~a few ms then reboots. Odd-numbered VMs are killed at
    // a random point; even ones must always reboot on their own.
    let code = assemble(|a| {
        let mut l = a.create_label();
        a.mov(ecx, 20_000)?;
        a.set_label(&mut l)?;
        a.pause()?;
        a.dec(ecx)?;
        a.jnz(l)?;
        reboot(a)
    });
    const THREADS: usize = 4;
    const PER_THREAD: usize = 25;
    let failed = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let code = code.clone();
            let failed = failed.clone();
            std::thread::spawn(move || {
                for n in 0..PER_THREAD {
                    let vm = raw_vm(code.clone())
                        .vcpus(1 + n % 2)
                        .build()
                        .expect("build");
                    let kill = n % 2 == 1;
                    let handle = vm.interrupt_handle();
                    let killers: Vec<_> = (0..if kill { 3 } else { 0 })
                        .map(|k| {
                            let h = handle.clone();
                            std::thread::spawn(move || {
                                std::thread::sleep(Duration::from_micros(
                                    ((t * 31 + n * 17 + k * 5) % 50 * 100) as u64,
                                ));
                                h.kill();
                            })
                        })
                        .collect();
                    let outcome = vm.run().expect("run");
                    for k in killers {
                        k.join().expect("killer");
                    }
                    let ok = if kill {
                        matches!(outcome.exit, ExitKind::Killed | ExitKind::Reboot)
                    } else {
                        outcome.exit == ExitKind::Reboot
                    };
                    if !ok {
                        eprintln!("thread {t} vm {n} kill={kill}: {:?}", outcome.exit);
                        failed.store(true, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    assert!(
        !failed.load(Ordering::SeqCst),
        "a kill leaked or a run misbehaved"
    );
}

fn deadline_ends_a_spinning_guest() {
    let deadline = Duration::from_millis(300);
    let outcome = run(raw_vm(spinner()).vcpus(2).deadline(deadline));
    assert_eq!(outcome.exit, ExitKind::DeadlineExceeded);
    assert!(outcome.timings.run >= deadline, "{:?}", outcome.timings.run);
    assert!(
        outcome.timings.run < deadline + Duration::from_secs(2),
        "{:?}",
        outcome.timings.run
    );
}

fn deadline_ends_a_halted_guest() {
    // cli; hlt blocks inside KVM (in-kernel LAPIC): only the kick gets it out.
    let outcome = run(raw_vm(assemble(halt_forever)).deadline(Duration::from_millis(200)));
    assert_eq!(outcome.exit, ExitKind::DeadlineExceeded);
}

/// The host keeps a `ConsoleSender` (to write to the guest) for as long as
/// it likes; the receivers must still disconnect when the VM ends, on its
/// own or killed, or a host waiting for guest frames would wait out its
/// timeout after the VM was gone.
fn console_receivers_disconnect_as_soon_as_the_vm_ends() {
    for (code, exit) in [
        (assemble(reboot), ExitKind::Reboot),
        (spinner(), ExitKind::Killed),
    ] {
        let console = ktstr_vmm::virtio_console();
        let vm = raw_vm(code)
            .virtio_console(&console.sender)
            .build()
            .expect("build");
        let handle = vm.interrupt_handle();
        let runner = std::thread::spawn(move || vm.run());
        if exit == ExitKind::Killed {
            std::thread::sleep(Duration::from_millis(50));
            handle.kill();
        }
        let waited = Instant::now();
        assert_eq!(
            console.bulk_output.recv_timeout(Duration::from_secs(10)),
            Err(RecvTimeoutError::Disconnected),
            "{exit:?}"
        );
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "{:?}",
            waited.elapsed()
        );
        let outcome = runner.join().expect("VM thread").expect("run");
        assert_eq!(outcome.exit, exit);
        assert_eq!(
            console.console_output.try_recv(),
            Err(TryRecvError::Disconnected)
        );
        // Writing to a guest that is gone is harmless.
        console.sender.send(PORT_BULK, b"too late");
    }
}

fn main() -> std::process::ExitCode {
    let tests = [
        ktstr_testenv::tests![&[Need::Kvm]; kill_while_spinning_ends_the_run_as_killed, kill_before_start_is_not_lost, kill_after_the_run_is_harmless, kill_during_host_side_io_exits, kill_racing_a_natural_exit_never_hangs, many_vms_many_kills_never_leak_into_unkilled_runs, deadline_ends_a_spinning_guest, deadline_ends_a_halted_guest, console_receivers_disconnect_as_soon_as_the_vm_ends],
    ];
    ktstr_testenv::run(tests.into_iter().flatten().collect())
}
