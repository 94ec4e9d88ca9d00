//! A tiny static `/init`, assembled here into an ELF64 executable with no
//! libc: it mounts sysfs, prints a token and the online-CPU list to the
//! console, then reboots, using the x86_64 `syscall` ABI directly.
//!
//! On kvm-pvm (this project's CI host) no guest user-space system call
//! works: `syscall` arrives at `entry_SYSCALL_64` still at CPL 3 and
//! page-faults, `int $0x80` raises #UD. So there the init dies on its first
//! system call and the kernel tier checks what the kernel reports instead.

use iced_x86::code_asm::*;

const BASE: u64 = 0x40_0000;
const EHDR_LEN: u64 = 64;
const PHDR_LEN: u64 = 56;
const CODE_ADDR: u64 = BASE + EHDR_LEN + PHDR_LEN;

const SYS_READ: u32 = 0;
const SYS_WRITE: u32 = 1;
const SYS_OPEN: u32 = 2;
const SYS_MOUNT: u32 = 165;
const SYS_REBOOT: u32 = 169;
const LINUX_REBOOT_MAGIC1: u32 = 0xfee1_dead;
const LINUX_REBOOT_MAGIC2: u32 = 0x2812_1969;
const LINUX_REBOOT_CMD_RESTART: u32 = 0x0123_4567;
const STDOUT: u32 = 1;
const BUF_LEN: u32 = 64;

fn syscall(a: &mut CodeAssembler, nr: u32) -> Result<(), IcedError> {
    a.mov(eax, nr)?;
    a.syscall()
}

/// Virtual address of the first instruction (the kernel reports faults there).
pub const ENTRY: u64 = CODE_ADDR;

/// `token` is printed, then the contents of /sys/devices/system/cpu/online.
pub fn build(token: &str) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).expect("assembler");
    let code = (|| -> Result<(), IcedError> {
        let mut sysfs = a.create_label();
        let mut sys = a.create_label();
        let mut online = a.create_label();
        let mut token_l = a.create_label();
        let mut buf = a.create_label();
        // mount("sysfs", "/sys", "sysfs", 0, NULL)
        a.lea(rdi, ptr(sysfs))?;
        a.lea(rsi, ptr(sys))?;
        a.lea(rdx, ptr(sysfs))?;
        a.xor(r10d, r10d)?;
        a.xor(r8d, r8d)?;
        syscall(&mut a, SYS_MOUNT)?;
        // write(1, token, len)
        a.mov(edi, STDOUT)?;
        a.lea(rsi, ptr(token_l))?;
        a.mov(edx, token.len() as u32)?;
        syscall(&mut a, SYS_WRITE)?;
        // fd = open(".../online", O_RDONLY); n = read(fd, buf, 64); write(1, buf, n)
        a.lea(rdi, ptr(online))?;
        a.xor(esi, esi)?;
        syscall(&mut a, SYS_OPEN)?;
        a.mov(edi, eax)?;
        a.lea(rsi, ptr(buf))?;
        a.mov(edx, BUF_LEN)?;
        syscall(&mut a, SYS_READ)?;
        a.mov(edx, eax)?;
        a.mov(edi, STDOUT)?;
        a.lea(rsi, ptr(buf))?;
        syscall(&mut a, SYS_WRITE)?;
        // reboot(MAGIC1, MAGIC2, RESTART, NULL)
        a.mov(edi, LINUX_REBOOT_MAGIC1)?;
        a.mov(esi, LINUX_REBOOT_MAGIC2)?;
        a.mov(edx, LINUX_REBOOT_CMD_RESTART)?;
        a.xor(r10d, r10d)?;
        syscall(&mut a, SYS_REBOOT)?;
        let mut hang = a.create_label();
        a.set_label(&mut hang)?;
        a.jmp(hang)?;
        for (label, bytes) in [
            (&mut sysfs, &b"sysfs\0"[..]),
            (&mut sys, &b"/sys\0"[..]),
            (&mut online, &b"/sys/devices/system/cpu/online\0"[..]),
            (&mut token_l, token.as_bytes()),
        ] {
            a.set_label(label)?;
            a.db(bytes)?;
        }
        a.set_label(&mut buf)?;
        a.db(&[0u8; BUF_LEN as usize])
    })();
    code.expect("assemble init");
    let text = a.assemble(CODE_ADDR).expect("encode init");
    elf64_exec(&text)
}

/// One RWX PT_LOAD segment holding headers and code, entry at the code.
fn elf64_exec(text: &[u8]) -> Vec<u8> {
    let total = EHDR_LEN + PHDR_LEN + text.len() as u64;
    let mut e = Vec::with_capacity(total as usize);
    e.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    e.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e.extend_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&CODE_ADDR.to_le_bytes()); // e_entry
    e.extend_from_slice(&EHDR_LEN.to_le_bytes()); // e_phoff
    e.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    e.extend_from_slice(&0u32.to_le_bytes());
    for v in [EHDR_LEN as u16, PHDR_LEN as u16, 1, 64, 0, 0] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    e.extend_from_slice(&7u32.to_le_bytes()); // RWX
    for v in [0, BASE, BASE, total, total, 0x1000] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(text);
    e
}
