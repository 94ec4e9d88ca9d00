//! Fast tier: snapshot and restore on ktstr-vmm through the backend's
//! [`Guest`] interface, with a tiny hand-assembled guest that drives the
//! virtio-console itself (no kernel, so it runs on any KVM, kvm-pvm too).
//!
//! The guest sets the device up, then echoes every buffer the host fills on
//! the `ktstr.bulk` receive queue back on its transmit queue. So a byte string
//! sent with [`Guest::send_bulk`] that comes back on the bulk receiver proves
//! the port works both ways: before the snapshot, in the original after it
//! (it resumed), and in a restore that has a fresh console wired to the
//! restored queues.

use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use iced_x86::code_asm::*;
use ktstr_backend::{BackendError, BackendKind, BootSpec, Exit, Guest, VmmGuest};
use ktstr_testenv::Need;
use ktstr_vmm::VmBuilder;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const LOAD_ADDR: u64 = 0x10_0000;
const MMIO: u64 = ktstr_vmm::layout::VIRTIO_MMIO_BASE;
const QUEUES: u64 = 6;
const QSIZE: u16 = 16;
/// Each queue's descriptor table; its avail ring is 0x1000 and its used ring 0x2000 above.
const RINGS: u64 = 0x30_0000;
const BUFFERS: u64 = 0x40_0000;
const BUF_LEN: u32 = 64;
/// Port 1 (`ktstr.bulk`) queues with MULTIPORT: receive 4, transmit 5.
const BULK_RX: u64 = 4;
const BULK_TX: u64 = 5;
const F_MULTIPORT: u32 = 1 << 1;
/// Write-only descriptor (the device writes into it).
const DESC_WRITE: u16 = 2;

fn desc(q: u64) -> u64 {
    RINGS + q * 0x1_0000
}
fn avail(q: u64) -> u64 {
    desc(q) + 0x1000
}
fn used(q: u64) -> u64 {
    desc(q) + 0x2000
}

/// Probes the device (VIRTIO 1.2 §4.2.3.1), then echoes each used receive
/// buffer (`r12` counts those seen) through the transmit queue's slot of the
/// same index, with the length the device wrote.
fn echo_guest() -> Vec<u8> {
    let mut a = CodeAssembler::new(64).expect("assembler");
    let build = |a: &mut CodeAssembler| -> Result<(), IcedError> {
        a.mov(rbx, MMIO)?;
        let reg = |a: &mut CodeAssembler, off: u64, v: u32| a.mov(dword_ptr(rbx + off), v);
        reg(a, 0x70, 0)?;
        reg(a, 0x70, 1)?; // ACKNOWLEDGE
        reg(a, 0x70, 3)?; // DRIVER
        reg(a, 0x24, 0)?;
        reg(a, 0x20, F_MULTIPORT)?;
        reg(a, 0x24, 1)?;
        reg(a, 0x20, 1)?; // VERSION_1 (bit 32)
        reg(a, 0x70, 11)?; // FEATURES_OK
        for q in 0..QUEUES {
            reg(a, 0x30, q as u32)?;
            reg(a, 0x38, u32::from(QSIZE))?;
            reg(a, 0x80, desc(q) as u32)?;
            reg(a, 0x84, 0)?;
            reg(a, 0x90, avail(q) as u32)?;
            reg(a, 0x94, 0)?;
            reg(a, 0xa0, used(q) as u32)?;
            reg(a, 0xa4, 0)?;
            reg(a, 0x44, 1)?;
        }
        reg(a, 0x70, 15)?; // DRIVER_OK: the device goes live
        // As a driver does after posting buffers: host bytes sent earlier flow now.
        reg(a, 0x50, BULK_RX as u32)?;
        a.xor(r12, r12)?;
        let mut top = a.create_label();
        let mut idle = a.create_label();
        a.set_label(&mut top)?;
        a.mov(rax, used(BULK_RX) + 2)?;
        a.movzx(eax, word_ptr(rax))?;
        a.cmp(eax, r12d)?;
        a.je(idle)?;
        // The used element: descriptor id and length written.
        a.mov(rsi, r12)?;
        a.shl(rsi, 3)?;
        a.mov(rax, used(BULK_RX) + 4)?;
        a.add(rsi, rax)?;
        a.mov(ecx, dword_ptr(rsi))?;
        a.mov(edx, dword_ptr(rsi + 4))?;
        // That receive descriptor's buffer address.
        a.shl(rcx, 4)?;
        a.mov(rax, desc(BULK_RX))?;
        a.add(rcx, rax)?;
        a.mov(rax, qword_ptr(rcx))?;
        // Transmit descriptor r12 sends it.
        a.mov(rdi, r12)?;
        a.shl(rdi, 4)?;
        a.mov(rcx, desc(BULK_TX))?;
        a.add(rdi, rcx)?;
        a.mov(qword_ptr(rdi), rax)?;
        a.mov(dword_ptr(rdi + 8), edx)?;
        a.mov(word_ptr(rdi + 12), 0u32)?;
        a.mov(rdi, r12)?;
        a.shl(rdi, 1)?;
        a.mov(rcx, avail(BULK_TX) + 4)?;
        a.add(rdi, rcx)?;
        a.mov(word_ptr(rdi), r12w)?;
        a.inc(r12)?;
        // x86 keeps stores in order: the ring entry is visible before the index.
        a.mov(rcx, avail(BULK_TX) + 2)?;
        a.mov(word_ptr(rcx), r12w)?;
        a.mov(dword_ptr(rbx + 0x50u64), BULK_TX as u32)?; // QueueNotify
        a.jmp(top)?;
        a.set_label(&mut idle)?;
        a.pause()?;
        a.jmp(top)
    };
    build(&mut a).expect("assemble");
    a.assemble(LOAD_ADDR).expect("encode")
}

/// Posts `QSIZE` write-only receive buffers on the bulk port (the driver's job).
fn post_receive_buffers(mem: &GuestMemoryMmap) {
    for i in 0..u64::from(QSIZE) {
        let d = desc(BULK_RX) + i * 16;
        mem.write_obj(BUFFERS + i * u64::from(BUF_LEN), GuestAddress(d))
            .expect("desc addr");
        mem.write_obj(BUF_LEN, GuestAddress(d + 8))
            .expect("desc len");
        mem.write_obj(DESC_WRITE, GuestAddress(d + 12))
            .expect("desc flags");
        mem.write_obj(i as u16, GuestAddress(avail(BULK_RX) + 4 + 2 * i))
            .expect("avail entry");
    }
    mem.write_obj(QSIZE, GuestAddress(avail(BULK_RX) + 2))
        .expect("avail idx");
}

/// A spec to key the snapshots by: the "kernel" is a stand-in file (the
/// tiny guest is not loaded from it; its bytes only enter the key).
fn spec(kernel: &Path, memory_mib: u64) -> BootSpec {
    BootSpec {
        kernel: kernel.to_path_buf(),
        initramfs: None,
        cmdline: "tiny".into(),
        vcpus: 1,
        memory_mib,
        deadline: Duration::from_secs(30),
        topology: None,
        restore_from: None,
    }
}

/// Boots the echo guest behind the backend interface.
fn boot_echo_guest(spec: &BootSpec) -> VmmGuest {
    let console = ktstr_vmm::virtio_console();
    let vm = VmBuilder::new()
        .raw_image(echo_guest(), LOAD_ADDR)
        .memory_mib(spec.memory_mib)
        .deadline(spec.deadline)
        .virtio_console(&console.sender)
        .build()
        .expect("build");
    post_receive_buffers(vm.memory());
    VmmGuest::start(vm, console, spec).expect("start")
}

/// Sends `text` on the bulk port and waits for the guest's echo.
fn echoes(guest: &dyn Guest, rx: &Receiver<Vec<u8>>, text: &[u8], what: &str) {
    guest.send_bulk(text);
    let give_up = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < text.len() && Instant::now() < give_up {
        if let Ok(bytes) = rx.recv_timeout(Duration::from_millis(100)) {
            got.extend(bytes);
        }
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(text),
        "{what}: the guest's echo"
    );
}

fn kill_and_check(guest: Box<dyn Guest>, what: &str) {
    let t = Instant::now();
    guest.kill();
    let outcome = guest.wait().expect("outcome");
    assert_eq!(outcome.exit, Exit::Killed, "{what}: {outcome:?}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "{what}: kill took {:?}",
        t.elapsed()
    );
}

/// A stand-in kernel file for the key.
fn stand_in_kernel(dir: &Path) -> std::path::PathBuf {
    let kernel = dir.join("stand-in-kernel");
    std::fs::write(&kernel, b"not a kernel: only hashed into the snapshot key").expect("write");
    kernel
}

fn a_snapshot_resumes_the_guest_and_a_restore_has_a_working_bulk_port() {
    let _slot = ktstr_testenv::vm_slot();
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = spec(&stand_in_kernel(tmp.path()), 16);
    let mut original: Box<dyn Guest> = Box::new(boot_echo_guest(&spec));
    let rx = original.take_bulk_receiver().expect("bulk receiver");
    echoes(&*original, &rx, b"before", "cold guest");

    let dir = tmp.path().join("snap");
    original.snapshot(&dir).expect("snapshot");
    assert!(VmmGuest::snapshot_file(&dir).is_file());
    echoes(
        &*original,
        &rx,
        b"after",
        "the original, resumed after its snapshot",
    );

    for round in 0..2 {
        let restore = BootSpec {
            restore_from: Some(dir.clone()),
            ..spec.clone()
        };
        let mut restored = ktstr_backend::boot(BackendKind::Vmm, &restore).expect("restore");
        let rx = restored.take_bulk_receiver().expect("fresh bulk receiver");
        let text = format!("restore-{round}");
        echoes(&*restored, &rx, text.as_bytes(), &text);
        // The restore continues from the snapshot: its guest echoed "before"
        // into buffer 0, so this echo went through buffer 1.
        let mut buf = vec![0u8; text.len()];
        restored
            .read_memory(BUFFERS + u64::from(BUF_LEN), &mut buf)
            .expect("read guest memory");
        assert_eq!(buf, text.as_bytes(), "{text}: the second receive buffer");
        kill_and_check(restored, &text);
    }
    kill_and_check(original, "the original");
}

fn a_snapshot_restored_with_another_spec_is_refused_by_its_key() {
    let _slot = ktstr_testenv::vm_slot();
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = spec(&stand_in_kernel(tmp.path()), 16);
    let original = boot_echo_guest(&spec);
    let dir = tmp.path().join("snap");
    original.snapshot(&dir).expect("snapshot");
    drop(original);
    let other = BootSpec {
        restore_from: Some(dir.clone()),
        memory_mib: 32,
        ..spec
    };
    match ktstr_backend::boot(BackendKind::Vmm, &other) {
        Err(BackendError::SnapshotKeyMismatch { dir: refused }) => {
            assert_eq!(refused, dir, "the error names the snapshot")
        }
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("a snapshot of another spec was restored"),
    }
}

fn main() -> std::process::ExitCode {
    ktstr_testenv::run(ktstr_testenv::tests![&[Need::Kvm];
        a_snapshot_resumes_the_guest_and_a_restore_has_a_working_bulk_port,
        a_snapshot_restored_with_another_spec_is_refused_by_its_key])
}
