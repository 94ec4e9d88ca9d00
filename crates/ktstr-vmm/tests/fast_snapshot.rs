//! Fast tier: snapshot a tiny guest mid-run, restore it twice, and check what
//! each restore actually did; state round-trips; broken files give typed errors.

mod common;

use std::path::Path;

use common::*;
use iced_x86::code_asm::*;
use ktstr_vmm::devices::control;
use ktstr_vmm::snapshot::cache::{CacheKey, CacheResult, SnapshotCache};
use ktstr_vmm::snapshot::file;
use ktstr_vmm::{
    AfterSnapshot, ExitKind, RestoreOptions, SnapshotError, SnapshotPlan, SnapshotTrigger, Vm,
    VmmError,
};
use vm_memory::{Bytes, GuestAddress};

const COUNTER: u64 = 0x20_0000;
const AT_SNAPSHOT: u32 = 1000;
const LIMIT: u32 = 100_000;

/// Counts to AT_SNAPSHOT, asks for a snapshot, then reads its generation and
/// a per-restore step from the control port and counts on by that step to
/// LIMIT; prints "g<generation>" and reboots. Memory: [COUNTER] = count,
/// [COUNTER+8] = generation, [COUNTER+16] = step.
fn counting_guest() -> Vec<u8> {
    assemble(|a| {
        a.mov(rbx, COUNTER)?;
        a.mov(qword_ptr(rbx), 0)?;
        let mut l1 = a.create_label();
        a.set_label(&mut l1)?;
        a.inc(qword_ptr(rbx))?;
        a.cmp(qword_ptr(rbx), AT_SNAPSHOT as i32)?;
        a.jb(l1)?;
        a.mov(dx, (control::BASE + control::OFFSET_REQUEST) as u32)?;
        a.mov(al, control::REQUEST_SNAPSHOT as u32)?;
        a.out(dx, al)?;
        a.mov(dx, (control::BASE + control::OFFSET_GENERATION) as u32)?;
        a.in_(eax, dx)?;
        a.mov(qword_ptr(rbx + 8), rax)?;
        a.mov(r12, rax)?;
        a.mov(dx, (control::BASE + control::OFFSET_INPUT) as u32)?;
        a.in_(al, dx)?;
        a.movzx(rcx, al)?;
        // A cold boot has no input: step 1.
        let mut have_step = a.create_label();
        a.test(rcx, rcx)?;
        a.jnz(have_step)?;
        a.mov(rcx, 1u64)?;
        a.set_label(&mut have_step)?;
        a.mov(qword_ptr(rbx + 16), rcx)?;
        let mut l2 = a.create_label();
        a.set_label(&mut l2)?;
        a.add(qword_ptr(rbx), rcx)?;
        a.cmp(qword_ptr(rbx), LIMIT as i32)?;
        a.jb(l2)?;
        a.mov(dx, COM1 as u32)?;
        a.mov(al, b'g' as u32)?;
        a.out(dx, al)?;
        a.mov(rax, r12)?;
        a.add(al, b'0' as i32)?;
        a.out(dx, al)?;
        reboot(a)
    })
}

fn plan(path: &Path, trigger: SnapshotTrigger, then: AfterSnapshot) -> SnapshotPlan {
    SnapshotPlan {
        path: path.to_path_buf(),
        trigger,
        then,
        key: "fast-test".into(),
    }
}

fn read_u64(mem: &vm_memory::GuestMemoryMmap, addr: u64) -> u64 {
    mem.read_obj(GuestAddress(addr)).expect("read guest memory")
}

fn restore(path: &Path, generation: u32, step: u8) -> Vm {
    Vm::restore(
        path,
        RestoreOptions {
            generation,
            input: vec![step],
            deadline: std::time::Duration::from_secs(20),
            ..Default::default()
        },
    )
    .expect("restore")
}

/// Takes the counting guest's snapshot; the cold VM continues to the end.
fn snapshot_counting_guest(path: &Path) {
    let vm = raw_vm(counting_guest())
        .snapshot(plan(
            path,
            SnapshotTrigger::GuestRequest,
            AfterSnapshot::Continue,
        ))
        .build()
        .expect("build");
    let mem = vm.memory().clone();
    let outcome = vm.run().expect("run");
    assert_eq!(outcome.exit, ExitKind::Reboot, "{outcome:?}");
    assert_eq!(
        outcome.com1_text(),
        "g0",
        "the cold guest sees generation 0"
    );
    assert_eq!(read_u64(&mem, COUNTER), u64::from(LIMIT));
    let info = outcome.snapshot.expect("snapshot taken");
    assert!(
        info.disk_bytes > 0 && info.disk_bytes < info.file_bytes,
        "{info:?}"
    );
}

fn two_restores_continue_counting_independently_from_the_snapshot() {
    let _slot = vm_slot();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("count.snap");
    snapshot_counting_guest(&path);

    // Each restore starts at the snapshot's count with its own step; the
    // final counts differ and only match if both started at AT_SNAPSHOT.
    for (generation, step) in [(1u32, 3u8), (2, 7)] {
        let vm = restore(&path, generation, step);
        let mem = vm.memory().clone();
        assert_eq!(read_u64(&mem, COUNTER), u64::from(AT_SNAPSHOT));
        let outcome = vm.run().expect("run restored");
        assert_eq!(outcome.exit, ExitKind::Reboot, "{outcome:?}");
        assert_eq!(outcome.com1_text(), format!("g{generation}"));
        let span = u64::from(LIMIT - AT_SNAPSHOT);
        let expected = u64::from(AT_SNAPSHOT) + span.div_ceil(u64::from(step)) * u64::from(step);
        assert_eq!(read_u64(&mem, COUNTER), expected, "step {step}");
        assert_eq!(read_u64(&mem, COUNTER + 8), u64::from(generation));
        assert_eq!(read_u64(&mem, COUNTER + 16), u64::from(step));
    }
    // Restores wrote only their private copies: the file still holds the snapshot value.
    let vm = restore(&path, 3, 1);
    assert_eq!(read_u64(vm.memory(), COUNTER), u64::from(AT_SNAPSHOT));
}

fn register_and_device_state_round_trip_exactly() {
    let _slot = vm_slot();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("count.snap");
    snapshot_counting_guest(&path);
    let saved = file::open(&path, true).expect("open").machine;
    let mut vm = restore(&path, 1, 1);
    let mut again = vm.machine_state("fast-test").expect("capture restored");
    // The TSC keeps running between apply and capture; everything else is exact.
    const MSR_IA32_TSC: u32 = 0x10;
    for (a, b) in again.vcpus.iter_mut().zip(&saved.vcpus) {
        for (ma, mb) in a.msrs.iter_mut().zip(&b.msrs) {
            if ma.index == MSR_IA32_TSC && mb.index == MSR_IA32_TSC {
                assert!(ma.data >= mb.data, "TSC went backwards");
                ma.data = mb.data;
            }
        }
    }
    assert_eq!(again.vcpus.len(), saved.vcpus.len());
    for (i, (a, b)) in again.vcpus.iter().zip(&saved.vcpus).enumerate() {
        assert_eq!(a.regs, b.regs, "vCPU {i} regs");
        assert_eq!(a.sregs, b.sregs, "vCPU {i} sregs");
        assert_eq!(a.xcrs, b.xcrs, "vCPU {i} xcrs");
        assert_eq!(a.debugregs, b.debugregs, "vCPU {i} debugregs");
        assert_eq!(a.mp_state, b.mp_state, "vCPU {i} mp_state");
        assert_eq!(a.vcpu_events, b.vcpu_events, "vCPU {i} events");
        assert!(a.lapic == b.lapic, "vCPU {i} lapic");
        assert!(a.xsave == b.xsave, "vCPU {i} xsave");
        assert_eq!(a.msrs, b.msrs, "vCPU {i} msrs");
        assert_eq!(a.cpuid, b.cpuid, "vCPU {i} cpuid");
    }
    assert_eq!(again.vm, saved.vm, "PIC/IOAPIC/PIT");
    assert_eq!(again.pio, saved.pio, "UARTs, CMOS, control port");
    assert_eq!(again.mmio, saved.mmio);
    assert_eq!(again.meta, saved.meta);
}

fn a_com1_marker_snapshots_and_stops_and_the_restore_prints_the_rest() {
    let _slot = vm_slot();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("marker.snap");
    let code = assemble(|a| {
        out_str(a, COM1, b"booted; ")?;
        out_str(a, COM1, b"after marker\n")?;
        reboot(a)
    });
    let outcome = raw_vm(code)
        .snapshot(plan(
            &path,
            SnapshotTrigger::Com1Marker(b"booted;".to_vec()),
            AfterSnapshot::Stop,
        ))
        .build()
        .expect("build")
        .run()
        .expect("run");
    assert_eq!(outcome.exit, ExitKind::Snapshotted, "{outcome:?}");
    assert_eq!(
        outcome.com1_text(),
        "booted;",
        "stopped right at the marker"
    );
    let outcome = restore(&path, 1, 0).run().expect("run restored");
    assert_eq!(outcome.exit, ExitKind::Reboot, "{outcome:?}");
    assert_eq!(outcome.com1_text(), " after marker\n");
}

fn rewrite(path: &Path, at: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    f.write_all_at(bytes, at).expect("write");
}

fn restore_err(path: &Path) -> SnapshotError {
    match Vm::restore(path, RestoreOptions::default()) {
        Err(VmmError::Snapshot(e)) => e,
        Err(e) => panic!("expected a snapshot error, got {e}"),
        Ok(_) => panic!("a broken snapshot was restored"),
    }
}

fn broken_files_give_typed_errors_before_anything_is_applied() {
    let _slot = vm_slot();
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.snap");
    snapshot_counting_guest(&good);
    let header = file::open(&good, true).expect("open").header;
    let copy = |name: &str| {
        let p = dir.path().join(name);
        std::fs::copy(&good, &p).expect("copy");
        p
    };

    let p = copy("truncated.snap");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .expect("open");
    f.set_len(header.mem_offset + header.mem_len / 2)
        .expect("truncate");
    assert!(matches!(restore_err(&p), SnapshotError::Truncated { .. }));
    f.set_len(10).expect("truncate");
    assert!(matches!(restore_err(&p), SnapshotError::Truncated { .. }));

    let p = copy("version.snap");
    rewrite(&p, 8, &(file::FORMAT_VERSION + 1).to_le_bytes());
    assert!(matches!(
        restore_err(&p),
        SnapshotError::VersionMismatch { found, expected } if found == file::FORMAT_VERSION + 1 && expected == file::FORMAT_VERSION
    ));

    let p = copy("magic.snap");
    rewrite(&p, 0, b"NOTASNAP");
    assert!(matches!(restore_err(&p), SnapshotError::BadMagic { .. }));

    let p = copy("header.snap");
    rewrite(&p, 20, &[0xff]);
    assert!(matches!(
        restore_err(&p),
        SnapshotError::ChecksumMismatch {
            section: "header",
            ..
        }
    ));

    let p = copy("state.snap");
    rewrite(
        &p,
        header.state_offset + header.state_len / 2,
        &[0xa5, 0x5a],
    );
    assert!(matches!(
        restore_err(&p),
        SnapshotError::ChecksumMismatch {
            section: "state",
            ..
        }
    ));

    let p = copy("memory.snap");
    rewrite(&p, header.mem_offset + COUNTER, &[0x42]);
    assert!(matches!(
        restore_err(&p),
        SnapshotError::ChecksumMismatch {
            section: "memory",
            ..
        }
    ));
}

fn a_snapshot_needing_cpu_features_this_host_lacks_is_refused() {
    let _slot = vm_slot();
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.snap");
    snapshot_counting_guest(&good);
    let loaded = file::open(&good, true).expect("open");
    let mut machine = loaded.machine;
    // Claim every leaf-7 feature bit: no host supports them all.
    for entry in machine.vcpus[0].cpuid.iter_mut() {
        if entry.function == 7 && entry.index == 0 {
            entry.ebx = u32::MAX;
        }
    }
    let mut mem = vec![0u8; loaded.header.mem_len as usize];
    use std::os::unix::fs::FileExt;
    loaded
        .file
        .read_exact_at(&mut mem, loaded.header.mem_offset)
        .expect("read memory");
    let foreign = dir.path().join("foreign.snap");
    file::write(&foreign, &machine.encode(), &[&mem]).expect("write");
    assert!(matches!(
        restore_err(&foreign),
        SnapshotError::IncompatibleHost(why) if why.contains("0x7")
    ));
}

fn the_cache_builds_once_then_hits_and_rebuilds_a_corrupt_file() {
    let _slot = vm_slot();
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = SnapshotCache::new(dir.path());
    let builder = raw_vm(counting_guest());
    let key = CacheKey::for_config(builder.config(), "guest-request").expect("key");
    let build = |path: &Path| {
        let outcome = raw_vm(counting_guest())
            .snapshot(SnapshotPlan {
                path: path.to_path_buf(),
                trigger: SnapshotTrigger::GuestRequest,
                then: AfterSnapshot::Stop,
                key: key.material.clone(),
            })
            .build()?
            .run()?;
        assert_eq!(outcome.exit, ExitKind::Snapshotted);
        Ok(())
    };
    let first = cache.get_or_build(&key, build).expect("build");
    assert!(
        matches!(first, CacheResult::Built { replaced: None, .. }),
        "{first:?}"
    );
    let second = cache
        .get_or_build(&key, |_| panic!("must not rebuild"))
        .expect("hit");
    assert_eq!(second, CacheResult::Hit(first.path().to_path_buf()));

    let header = file::open(first.path(), false).expect("open").header;
    rewrite(first.path(), header.mem_offset + COUNTER, &[0x42]);
    let third = cache.get_or_build(&key, build).expect("rebuild");
    match &third {
        CacheResult::Built {
            replaced: Some(why),
            ..
        } => assert!(why.contains("memory checksum"), "{why}"),
        other => panic!("expected a rebuild, got {other:?}"),
    }
    // The rebuilt file restores and runs.
    let outcome = Vm::restore(
        third.path(),
        RestoreOptions {
            expect_key: Some(key.material.clone()),
            input: vec![1],
            ..Default::default()
        },
    )
    .expect("restore")
    .run()
    .expect("run");
    assert_eq!(outcome.com1_text(), "g1");
    let other = CacheKey::for_config(raw_vm(vec![0x90]).config(), "x").expect("key");
    assert_ne!(other.file_name(), key.file_name());
}

/// Prints "s", then counts forever at COUNTER.
fn print_then_count(a: &mut CodeAssembler) -> Result<(), IcedError> {
    out_str(a, COM1, b"s")?;
    a.mov(rbx, COUNTER)?;
    let mut l = a.create_label();
    a.set_label(&mut l)?;
    a.inc(qword_ptr(rbx))?;
    a.jmp(l)
}

/// Counts forever at COUNTER after printing "s"; the host pauses it.
fn endless_counter() -> Vec<u8> {
    assemble(print_then_count)
}

fn a_host_requested_pause_snapshots_a_running_guest_mid_count() {
    let _slot = vm_slot();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("host.snap");
    let vm = raw_vm(endless_counter())
        .vcpus(2)
        .snapshot(plan(&path, SnapshotTrigger::Host, AfterSnapshot::Stop))
        .build()
        .expect("build");
    let handle = vm.interrupt_handle();
    let runner = std::thread::spawn(move || vm.run().expect("run"));
    std::thread::sleep(std::time::Duration::from_millis(100));
    handle.request_snapshot();
    let outcome = runner.join().expect("join");
    assert_eq!(outcome.exit, ExitKind::Snapshotted, "{outcome:?}");
    assert_eq!(outcome.com1_text(), "ss", "both vCPUs ran");

    let snapshot_count = read_u64(restore(&path, 1, 0).memory(), COUNTER);
    assert!(snapshot_count > 0, "the guest was counting");
    for generation in [1, 2] {
        let vm = restore(&path, generation, 0);
        let mem = vm.memory().clone();
        let handle = vm.interrupt_handle();
        let runner = std::thread::spawn(move || vm.run().expect("run"));
        std::thread::sleep(std::time::Duration::from_millis(100));
        handle.kill();
        let outcome = runner.join().expect("join");
        assert_eq!(outcome.exit, ExitKind::Killed);
        assert_eq!(outcome.com1_text(), "", "restored past the print");
        let count = read_u64(&mem, COUNTER);
        assert!(
            count > snapshot_count,
            "restore {generation} counted on from {snapshot_count}: {count}"
        );
    }
}

fn a_vm_with_the_virtio_console_restores_only_with_a_console_attached() {
    let _slot = vm_slot();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("virtio.snap");
    let console = ktstr_vmm::virtio_console();
    let outcome = raw_vm(counting_guest())
        .virtio_console(&console.sender)
        .snapshot(plan(
            &path,
            SnapshotTrigger::GuestRequest,
            AfterSnapshot::Stop,
        ))
        .build()
        .expect("build")
        .run()
        .expect("run");
    assert_eq!(outcome.exit, ExitKind::Snapshotted, "{outcome:?}");
    assert!(matches!(
        restore_err(&path),
        SnapshotError::DeviceMismatch(_)
    ));
    let fresh = ktstr_vmm::virtio_console();
    let outcome = Vm::restore(
        &path,
        RestoreOptions {
            virtio_console: Some(fresh.sender.clone()),
            input: vec![1],
            ..Default::default()
        },
    )
    .expect("restore with a console")
    .run()
    .expect("run");
    assert_eq!(outcome.exit, ExitKind::Reboot, "{outcome:?}");
    assert_eq!(outcome.com1_text(), "g1");
}

/// A caller device that does not implement `save_state`.
struct Opaque;
impl ktstr_vmm::IoDevice for Opaque {
    fn read(&mut self, _: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn write(&mut self, _: u64, _: &[u8]) -> ktstr_vmm::IoAction {
        ktstr_vmm::IoAction::Continue
    }
    fn save_state(&self) -> Option<Vec<u8>> {
        None
    }
}

fn a_device_without_state_support_refuses_the_snapshot_and_leaves_no_file() {
    let _slot = vm_slot();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("opaque.snap");
    let outcome = raw_vm(counting_guest())
        .device(ktstr_vmm::IoSpace::Pio, RECORDER_PORT, 1, Box::new(Opaque))
        .snapshot(plan(
            &path,
            SnapshotTrigger::GuestRequest,
            AfterSnapshot::Continue,
        ))
        .build()
        .expect("build")
        .run()
        .expect("run");
    match &outcome.exit {
        ExitKind::InternalError { detail, .. } => {
            assert!(detail.contains("cannot be snapshotted"), "{detail}")
        }
        other => panic!("expected a refused snapshot, got {other:?}"),
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        0,
        "neither the snapshot nor a temporary file exists"
    );
}

fn a_topology_vm_restores_with_the_same_apic_ids() {
    let _slot = vm_slot();
    const FLAG: u64 = 0x30_0000;
    const IDS: u64 = FLAG + 0x100;
    // Every vCPU waits for vCPU 0 to come back from its snapshot request, then
    // switches its LAPIC to x2APIC mode and stores its x2APIC ID (which KVM
    // derives from the vCPU id, not from saved LAPIC state) at IDS[index].
    let code = assemble(|a| {
        let mut wait = a.create_label();
        let mut go = a.create_label();
        a.mov(rbx, FLAG)?;
        a.test(rdi, rdi)?;
        a.jnz(wait)?;
        a.mov(dx, (control::BASE + control::OFFSET_REQUEST) as u32)?;
        a.mov(al, control::REQUEST_SNAPSHOT as u32)?;
        a.out(dx, al)?;
        a.mov(qword_ptr(rbx), 1)?;
        a.set_label(&mut wait)?;
        a.pause()?;
        a.cmp(qword_ptr(rbx), 1)?;
        a.jne(wait)?;
        a.set_label(&mut go)?;
        a.mov(ecx, 0x1bu32)?; // IA32_APIC_BASE: set EXTD (x2APIC mode)
        a.rdmsr()?;
        a.or(eax, 0x400)?;
        a.wrmsr()?;
        a.mov(ecx, 0x802u32)?; // x2APIC ID
        a.rdmsr()?;
        a.mov(qword_ptr(rbx + rdi * 8 + 0x100), rax)?;
        halt_forever(a)
    });
    let topo = "2n2l3c1t"
        .parse::<ktstr_topology::Topology>()
        .expect("topology")
        .to_numa()
        .expect("numa");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("topo.snap");
    let outcome = raw_vm(code)
        .topology(topo.clone())
        .snapshot(plan(
            &path,
            SnapshotTrigger::GuestRequest,
            AfterSnapshot::Stop,
        ))
        .build()
        .expect("build")
        .run()
        .expect("run");
    assert_eq!(outcome.exit, ExitKind::Snapshotted, "{outcome:?}");
    let vm = Vm::restore(
        &path,
        RestoreOptions {
            generation: 1,
            deadline: std::time::Duration::from_millis(500),
            ..Default::default()
        },
    )
    .expect("restore");
    let mem = vm.memory().clone();
    let outcome = vm.run().expect("run restored");
    assert_eq!(outcome.exit, ExitKind::DeadlineExceeded, "{outcome:?}");
    let seen: Vec<u64> = (0..topo.vcpus() as u64)
        .map(|i| read_u64(&mem, IDS + i * 8))
        .collect();
    assert_eq!(
        seen,
        [0, 1, 2, 4, 5, 6],
        "restored vCPUs keep their APIC IDs"
    );
}

/// `MSR_LSTAR`: the 64-bit syscall entry point (a guest kernel puts its
/// `entry_SYSCALL_64` there).
const MSR_LSTAR: u32 = 0xc000_0082;
/// What the guest writes into it: any canonical address will do.
const SYSCALL_ENTRY: u64 = 0xffff_ffff_8123_4560;

/// Sets `MSR_LSTAR` to [`SYSCALL_ENTRY`], prints "s", counts forever.
fn syscall_entry_then_count() -> Vec<u8> {
    assemble(|a| {
        a.mov(ecx, MSR_LSTAR)?;
        a.mov(eax, SYSCALL_ENTRY as u32)?;
        a.mov(edx, (SYSCALL_ENTRY >> 32) as u32)?;
        a.wrmsr()?;
        print_then_count(a)
    })
}

/// The pause machinery serves a register read too: each vCPU's `MSR_LSTAR`
/// as the guest set it, the guest counting on after each read; typed errors
/// for a vCPU the VM lacks and for a VM that ended.
fn a_running_guests_msr_is_read_at_a_pause_and_the_guest_continues() {
    let _slot = vm_slot();
    let vm = raw_vm(syscall_entry_then_count())
        .vcpus(2)
        .build()
        .expect("build");
    let mem = vm.memory().clone();
    let handle = vm.interrupt_handle();
    let runner = std::thread::spawn(move || vm.run().expect("run"));
    std::thread::sleep(std::time::Duration::from_millis(100));
    for vcpu in 0..2 {
        let before = read_u64(&mem, COUNTER);
        let lstar = handle.read_msr(vcpu, MSR_LSTAR).expect("read MSR_LSTAR");
        assert_eq!(lstar, SYSCALL_ENTRY, "vCPU {vcpu}");
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            read_u64(&mem, COUNTER) > before,
            "the guest went on counting"
        );
    }
    assert!(matches!(
        handle.read_msr(7, MSR_LSTAR),
        Err(ktstr_vmm::VcpuReadError::NoVcpu { vcpu: 7 })
    ));
    handle.kill();
    let outcome = runner.join().expect("join");
    assert_eq!(outcome.exit, ExitKind::Killed, "{outcome:?}");
    assert_eq!(outcome.com1_text(), "ss", "both vCPUs ran");
    assert!(matches!(
        handle.read_msr(0, MSR_LSTAR),
        Err(ktstr_vmm::VcpuReadError::NotRunning { vcpu: 0 })
    ));
}

/// Reads asked back to back, each as soon as the previous one is answered,
/// are all served while the guest runs: a request queued between an answer
/// and the vCPUs' restart used to lose its pause and wait, unserved, until
/// the VM ended (the nested tier's KASLR cross-check hung on its second
/// vCPU that way). Every thread shares one host CPU, as in L1: the woken
/// caller then asks again before the run loop restarts the vCPUs, which
/// lost the request in 3 of 3 runs before the fix.
fn msr_reads_asked_back_to_back_are_all_served() {
    let _slot = vm_slot();
    let _one_cpu = OneCpu::pin();
    let vm = raw_vm(syscall_entry_then_count())
        .vcpus(2)
        .build()
        .expect("build");
    let handle = vm.interrupt_handle();
    // Inherits the one-CPU affinity, and so do the vCPU threads it starts.
    let runner = std::thread::spawn(move || vm.run().expect("run"));
    std::thread::sleep(std::time::Duration::from_millis(100));
    let started = std::time::Instant::now();
    for i in 0..400 {
        let lstar = handle
            .read_msr(i % 2, MSR_LSTAR)
            .unwrap_or_else(|e| panic!("read {i} after {:?}: {e}", started.elapsed()));
        assert_eq!(lstar, SYSCALL_ENTRY, "read {i}");
    }
    handle.kill();
    let outcome = runner.join().expect("join");
    assert_eq!(outcome.exit, ExitKind::Killed, "{outcome:?}");
}

/// This thread on its first allowed CPU until dropped.
struct OneCpu(libc::cpu_set_t);

impl OneCpu {
    fn pin() -> OneCpu {
        // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
        let mut old: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: `old` is a valid cpu_set_t of `size` bytes.
        assert_eq!(unsafe { libc::sched_getaffinity(0, size, &mut old) }, 0);
        // SAFETY: as above; CPU_ISSET/CPU_SET index within the set.
        let first = (0..libc::CPU_SETSIZE as usize)
            .find(|&c| unsafe { libc::CPU_ISSET(c, &old) })
            .expect("an allowed CPU");
        // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
        let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `first` < CPU_SETSIZE.
        unsafe { libc::CPU_SET(first, &mut one) };
        // SAFETY: `one` is a valid cpu_set_t of `size` bytes.
        assert_eq!(unsafe { libc::sched_setaffinity(0, size, &one) }, 0);
        OneCpu(old)
    }
}

impl Drop for OneCpu {
    fn drop(&mut self) {
        // SAFETY: the set read at `pin`, of its own size.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.0) };
    }
}

fn main() -> std::process::ExitCode {
    let tests = [
        ktstr_testenv::tests![&[Need::Kvm]; two_restores_continue_counting_independently_from_the_snapshot, register_and_device_state_round_trip_exactly, a_com1_marker_snapshots_and_stops_and_the_restore_prints_the_rest, broken_files_give_typed_errors_before_anything_is_applied, a_snapshot_needing_cpu_features_this_host_lacks_is_refused, the_cache_builds_once_then_hits_and_rebuilds_a_corrupt_file, a_host_requested_pause_snapshots_a_running_guest_mid_count, a_vm_with_the_virtio_console_restores_only_with_a_console_attached, a_device_without_state_support_refuses_the_snapshot_and_leaves_no_file, a_topology_vm_restores_with_the_same_apic_ids, a_running_guests_msr_is_read_at_a_pause_and_the_guest_continues, msr_reads_asked_back_to_back_are_all_served],
    ];
    ktstr_testenv::run(tests.into_iter().flatten().collect())
}
