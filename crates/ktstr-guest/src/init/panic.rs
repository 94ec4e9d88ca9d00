//! Last words: a panic or a fatal signal in init writes `PANIC: <message>`
//! to COM2 synchronously (waiting for the UART to drain), then reboots, so
//! the host sees why the guest died instead of a bare kernel "Attempted to
//! kill init". Signal handlers only use async-signal-safe calls on an fd
//! opened beforehand.

use std::io::Write;
use std::os::fd::IntoRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

/// COM2 as seen by the guest.
pub const COM2: &str = "/dev/ttyS1";
/// What the host looks for at the start of a COM2 line.
pub const PANIC_PREFIX: &str = ktstr_wire::INIT_PANIC_PREFIX;

static COM2_FD: AtomicI32 = AtomicI32::new(-1);

/// Open COM2 raw for the hooks; without it they fall back to stderr.
pub fn open_com2() {
    if let Ok(f) = crate::uart::open_raw(Path::new(COM2)) {
        COM2_FD.store(f.into_raw_fd(), Ordering::Relaxed);
    }
}

fn fd() -> i32 {
    match COM2_FD.load(Ordering::Relaxed) {
        -1 => 2,
        fd => fd,
    }
}

fn write_all(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid readable buffer of the given length.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        let Ok(n) = usize::try_from(n) else { return };
        if n == 0 {
            return;
        }
        bytes = bytes.get(n..).unwrap_or_default();
    }
}

/// Write the line, wait for it to leave the UART, reboot.
fn last_words_and_reboot(line: &[u8]) -> ! {
    let fd = fd();
    write_all(fd, line);
    // SAFETY: tcdrain/sync/reboot take no pointers; all are async-signal-safe.
    unsafe {
        libc::tcdrain(fd);
        libc::sync();
        libc::reboot(libc::RB_AUTOBOOT);
    }
    // reboot only returns on failure (not PID 1 / no CAP_SYS_BOOT).
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(101) }
}

/// The text sent for a panic: one line, newlines flattened.
pub fn panic_line(message: &str) -> String {
    format!("{PANIC_PREFIX}{}\n", message.replace(['\n', '\r'], " | "))
}

/// Install the panic hook and the fatal-signal handlers.
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let line = panic_line(&format!("{payload}{at}"));
        let _ = std::io::stderr().write_all(line.as_bytes());
        last_words_and_reboot(line.as_bytes());
    }));
    install_signal_handlers();
}

/// The signals whose handlers report and reboot.
pub const FATAL_SIGNALS: [i32; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
];

/// Size of the alternate signal stack.
const ALT_STACK_LEN: usize = 64 * 1024;

fn install_signal_handlers() {
    // An alternate stack so a stack overflow (SIGSEGV) can still report.
    // Writable heap memory leaked for the process lifetime: an immutable
    // static would land in read-only memory, where the kernel cannot build
    // the signal frame and kills init instead.
    let stack: &'static mut [u8] = Box::leak(vec![0u8; ALT_STACK_LEN].into_boxed_slice());
    let ss = libc::stack_t {
        ss_sp: stack.as_mut_ptr().cast(),
        ss_flags: 0,
        ss_size: stack.len(),
    };
    // SAFETY: `stack` is writable and never freed; only the kernel uses it,
    // while delivering a signal.
    unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) };
    for sig in [
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGABRT,
    ] {
        // SAFETY: sigaction is plain data; zeroed is a valid empty mask.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_fatal_signal as extern "C" fn(i32) as usize;
        sa.sa_flags = libc::SA_ONSTACK | libc::SA_RESETHAND;
        // SAFETY: `sa` is fully initialised; the handler is async-signal-safe.
        unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) };
    }
}

extern "C" fn on_fatal_signal(sig: i32) {
    let line: &[u8] = match sig {
        libc::SIGSEGV => b"PANIC: init killed by SIGSEGV\n",
        libc::SIGBUS => b"PANIC: init killed by SIGBUS\n",
        libc::SIGILL => b"PANIC: init killed by SIGILL\n",
        libc::SIGFPE => b"PANIC: init killed by SIGFPE\n",
        libc::SIGABRT => b"PANIC: init killed by SIGABRT\n",
        _ => b"PANIC: init killed by a fatal signal\n",
    };
    last_words_and_reboot(line);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_line_is_one_line() {
        assert_eq!(panic_line("a\nb"), "PANIC: a | b\n");
    }
}
