//! Serial device setup: raw mode, so the tty layer passes frame bytes
//! untouched (the default termios turns `\n` into `\r\n`).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::Error;

/// Open `dev` read-write and switch it to raw 8N1 at 115200 baud.
pub fn open_raw(dev: &Path) -> Result<File, Error> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(dev)
        .map_err(|e| Error::io(format!("open {}", dev.display()), e))?;
    let fd = file.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fully initialises it on success.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open for the lifetime of `file`; `t` is a valid out-pointer.
    if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
        return Err(Error::io("tcgetattr", std::io::Error::last_os_error()));
    }
    // SAFETY: `t` is a valid, initialised termios.
    unsafe {
        libc::cfmakeraw(&mut t);
        libc::cfsetspeed(&mut t, libc::B115200);
    }
    // SAFETY: as for tcgetattr; `t` is valid.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) } != 0 {
        return Err(Error::io("tcsetattr", std::io::Error::last_os_error()));
    }
    Ok(file)
}

/// Block until everything written to `file` has left the UART.
pub fn drain(file: &File) -> Result<(), Error> {
    // SAFETY: fd is open for the lifetime of `file`.
    if unsafe { libc::tcdrain(file.as_raw_fd()) } != 0 {
        return Err(Error::io("tcdrain", std::io::Error::last_os_error()));
    }
    Ok(())
}
