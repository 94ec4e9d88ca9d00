//! Helpers shared by the fast-tier tests: tiny guests assembled in the test
//! with iced-x86, and what the tests need (checked by `ktstr_testenv`).
#![allow(dead_code)]

pub mod tiny_init;

use std::sync::{Arc, Mutex};

use iced_x86::code_asm::*;
use ktstr_vmm::{IoAction, IoDevice, Outcome, VmBuilder};

pub const LOAD_ADDR: u64 = 0x10_0000;
pub const COM1: u16 = 0x3f8;
pub const COM2: u16 = 0x2f8;
/// Port of the [`Recorder`] device the tests plug in.
pub const RECORDER_PORT: u64 = 0x510;

#[allow(unused_imports)]
pub use ktstr_testenv::{Need, test_env, vm_slot};

/// The software KVM module this host's `/dev/kvm` comes from, if any: the
/// one probe, `ktstr_vmm::compat::detect_host`.
pub fn software_kvm_module() -> Option<&'static str> {
    ktstr_vmm::compat::detect_host().software_module()
}

pub fn is_software_kvm() -> bool {
    software_kvm_module().is_some()
}

/// KVM that runs guest user space (ignored on software KVM, even in CI).
pub fn hardware_kvm() -> Need {
    Need::HardwareKvm {
        software_module: software_kvm_module(),
    }
}

/// Software KVM, for the tests of its compatibility layer (ignored on
/// hardware KVM, even in CI).
pub fn software_kvm() -> Need {
    Need::SoftwareKvm {
        software_module: software_kvm_module(),
    }
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

/// Debian's static busybox ([`Need::Busybox`]).
pub fn busybox() -> std::path::PathBuf {
    ktstr_testenv::find_busybox().unwrap_or_else(|m| panic!("{m}"))
}

/// A newc initramfs at `path`: `/dev/console`, the usual mount points, and
/// either busybox (`/bin/busybox`, `/bin/sh`) with `script` as `/init`, or
/// the static `tiny` binary as `/init`.
pub fn initramfs(path: &std::path::Path, init: Init<'_>) -> std::path::PathBuf {
    let mut a = ktstr_initramfs::Archive::new();
    for d in ["bin", "proc", "sys", "dev"] {
        a.add_dir(d, 0o755).expect("initramfs dir");
    }
    a.add_char_dev("dev/console", 0o600, 5, 1)
        .expect("initramfs console");
    match init {
        Init::Busybox { busybox, script } => a
            .add_host_file("bin/busybox", 0o755, busybox)
            .and_then(|a| a.add_symlink("bin/sh", "busybox"))
            .and_then(|a| a.add_file("init", 0o755, script.as_bytes())),
        Init::Tiny(code) => a.add_file("init", 0o755, code),
    }
    .expect("initramfs init");
    a.write_to(path).expect("write initramfs");
    path.to_owned()
}

/// What an [`initramfs`] runs as `/init`.
pub enum Init<'a> {
    /// A busybox shell script.
    Busybox {
        busybox: &'a std::path::Path,
        script: &'a str,
    },
    /// A static binary (see [`tiny_init`]).
    Tiny(Vec<u8>),
}
