//! Raw mode for the user's terminal during an interactive shell, restored
//! on every exit path: dropping the guard (normal return, `?` errors,
//! unwinding panics) and termination signals (SIGTERM, SIGHUP, SIGINT,
//! SIGQUIT sent from elsewhere; in raw mode Ctrl-C is just a byte for the
//! guest). Under `panic = "abort"` a panic hook restores it as well.

use std::os::fd::RawFd;
use std::sync::OnceLock;

/// The terminal's settings before the first raw switch: (fd, termios).
static SAVED: OnceLock<(RawFd, libc::termios)> = OnceLock::new();

const SIGNALS: [i32; 4] = [libc::SIGTERM, libc::SIGHUP, libc::SIGINT, libc::SIGQUIT];

/// Puts a terminal in raw mode until dropped.
pub struct RawMode {
    fd: RawFd,
    saved: libc::termios,
    old_actions: Vec<(i32, libc::sigaction)>,
}

fn restore_saved() {
    if let Some((fd, t)) = SAVED.get() {
        // SAFETY: `t` is a valid termios; tcsetattr is async-signal-safe.
        unsafe { libc::tcsetattr(*fd, libc::TCSANOW, t) };
    }
}

extern "C" fn on_signal(sig: i32) {
    restore_saved();
    // SAFETY: signal/raise are async-signal-safe; the default action then
    // terminates the process as the signal intended.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

impl RawMode {
    /// Switch `fd` to raw mode; `Ok(None)` if it is not a terminal.
    pub fn enable(fd: RawFd) -> std::io::Result<Option<RawMode>> {
        // SAFETY: isatty only inspects the fd.
        if unsafe { libc::isatty(fd) } != 1 {
            return Ok(None);
        }
        // SAFETY: termios is plain data; tcgetattr fills it on success.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd and out-pointer.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let _ = SAVED.set((fd, saved));
        let mut old_actions = Vec::new();
        for sig in SIGNALS {
            // SAFETY: zeroed sigaction is a valid empty mask.
            let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
            sa.sa_sigaction = on_signal as extern "C" fn(i32) as usize;
            // SAFETY: as above; `old` receives the previous action.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: both pointers are valid for the call.
            if unsafe { libc::sigaction(sig, &sa, &mut old) } == 0 {
                old_actions.push((sig, old));
            }
        }
        let std_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_saved();
            std_hook(info);
        }));
        let mut raw = saved;
        // SAFETY: `raw` is a valid termios.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: valid fd and termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Some(RawMode {
            fd,
            saved,
            old_actions,
        }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: `saved` came from tcgetattr on this fd.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
        for (sig, old) in &self.old_actions {
            // SAFETY: `old` is the action sigaction returned earlier.
            unsafe { libc::sigaction(*sig, old, std::ptr::null_mut()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lflag(fd: RawFd) -> libc::tcflag_t {
        // SAFETY: termios is plain data; all-zero is a valid value.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is open (the caller's pty end) and `t` a valid out-pointer.
        let rc = unsafe { libc::tcgetattr(fd, &mut t) };
        assert_eq!(rc, 0);
        t.c_lflag
    }

    #[test]
    fn raw_mode_is_restored_on_drop_and_pipes_are_left_alone() {
        let (mut master, mut slave) = (0, 0);
        // SAFETY: out-pointers are valid; name/termios/winsize may be null.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0);
        let before = lflag(slave);
        assert_ne!(before & libc::ICANON, 0);
        {
            let _g = RawMode::enable(slave)
                .unwrap()
                .expect("a pty is a terminal");
            assert_eq!(lflag(slave) & (libc::ICANON | libc::ECHO | libc::ISIG), 0);
        }
        assert_eq!(lflag(slave), before);
        let file = tempfile::tempfile().unwrap();
        use std::os::fd::AsRawFd;
        assert!(RawMode::enable(file.as_raw_fd()).unwrap().is_none());
        // SAFETY: both fds came from openpty and are closed once.
        unsafe {
            libc::close(master);
            libc::close(slave);
        }
    }
}
