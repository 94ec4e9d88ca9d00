//! Helpers shared by the fast-tier tests: tiny guests assembled in the test
//! with iced-x86, and the KVM presence policy.
#![allow(dead_code)]

pub mod cpio;
pub mod tiny_init;

use std::sync::{Arc, Mutex};

use iced_x86::code_asm::*;
use ktstr_vmm::{IoAction, IoDevice, Outcome, VmBuilder};

pub const LOAD_ADDR: u64 = 0x10_0000;
pub const COM1: u16 = 0x3f8;
pub const COM2: u16 = 0x2f8;
/// Port of the [`Recorder`] device the tests plug in.
pub const RECORDER_PORT: u64 = 0x510;

/// True when KVM is usable. Without it: fail under CI=true, skip loudly otherwise.
pub fn kvm_available() -> bool {
    if std::path::Path::new("/dev/kvm").exists() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("/dev/kvm is missing: the fast tier needs KVM (CI=true makes this a failure)");
    }
    eprintln!("SKIP: /dev/kvm is missing; this test needs KVM");
    false
}

pub fn is_software_kvm() -> bool {
    matches!(
        ktstr_vmm::compat::detect_host(),
        ktstr_vmm::compat::HostKvm::Software { .. }
    )
}

/// Assembles 64-bit code placed at [`LOAD_ADDR`].
pub fn assemble(build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    assemble_at(LOAD_ADDR, build)
}

pub fn assemble_at(
    addr: u64,
    build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).expect("assembler");
    build(&mut a).expect("assemble");
    a.assemble(addr).expect("encode")
}

pub fn out_str(a: &mut CodeAssembler, port: u16, text: &[u8]) -> Result<(), IcedError> {
    a.mov(dx, port as u32)?;
    for &b in text {
        a.mov(al, b as u32)?;
        a.out(dx, al)?;
    }
    Ok(())
}

/// The i8042 CPU reset, then a halt loop in case it is ignored.
pub fn reboot(a: &mut CodeAssembler) -> Result<(), IcedError> {
    a.mov(al, 0xfe)?;
    a.out(0x64, al)?;
    halt_forever(a)
}

pub fn halt_forever(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut l = a.create_label();
    a.set_label(&mut l)?;
    a.cli()?;
    a.hlt()?;
    a.jmp(l)
}

pub fn spin_forever(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut l = a.create_label();
    a.set_label(&mut l)?;
    a.pause()?;
    a.jmp(l)
}

/// A builder for a raw guest with sensible test defaults.
pub fn raw_vm(code: Vec<u8>) -> VmBuilder {
    VmBuilder::new()
        .raw_image(code, LOAD_ADDR)
        .memory_mib(16)
        .deadline(std::time::Duration::from_secs(20))
}

pub fn run(builder: VmBuilder) -> Outcome {
    builder.build().expect("build VM").run().expect("run VM")
}

/// A test device: records every byte written, answers reads with `read_value`,
/// and asks for a reboot once `reboot_after` bytes arrived.
#[derive(Clone, Default)]
pub struct Recorder {
    pub writes: Arc<Mutex<Vec<(u64, u8)>>>,
    pub read_value: u8,
    pub reboot_after: Option<usize>,
}

impl IoDevice for Recorder {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(self.read_value);
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> IoAction {
        let mut w = self.writes.lock().expect("lock");
        w.extend(data.iter().map(|b| (offset, *b)));
        match self.reboot_after {
            Some(n) if w.len() >= n => IoAction::Reboot,
            _ => IoAction::Continue,
        }
    }
}

impl Recorder {
    pub fn bytes(&self) -> Vec<u8> {
        self.writes
            .lock()
            .expect("lock")
            .iter()
            .map(|w| w.1)
            .collect()
    }
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `found`, or: a failure under CI=true, a SKIP line otherwise.
fn require(what: &str, found: Option<std::path::PathBuf>, how: &str) -> Option<std::path::PathBuf> {
    if found.is_none() {
        assert!(
            !in_ci(),
            "{what} is missing: {how} (CI=true makes this a failure)"
        );
        eprintln!("SKIP: {what} is missing: {how}");
    }
    found
}

/// The kernel tier's kernel: `KTSTR_KERNEL`.
pub fn kernel() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("KTSTR_KERNEL")
        .map(std::path::PathBuf::from)
        .filter(|p| p.exists());
    require(
        "the test kernel",
        found,
        "set KTSTR_KERNEL to a vmlinux or bzImage (see README)",
    )
}

/// Debian's static busybox.
pub fn busybox() -> Option<std::path::PathBuf> {
    let found = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists());
    require("a static busybox", found, "apt-get install busybox-static")
}
