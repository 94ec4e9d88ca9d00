//! The kernel's own account of sched_ext transitions, from `/dev/kmsg`.
//!
//! Opened once, non-blocking: each [`Kmsg::drain`] returns the records
//! logged since the previous call, so a caller can scope lines to one
//! scheduler run. sched_ext logs e.g.
//! `sched_ext: BPF scheduler "qmap" disabled (runnable task stall)`.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ktstr_workload::scx::ScxExit;

/// A non-blocking reader of kernel log records.
pub struct Kmsg {
    file: File,
}

impl Kmsg {
    /// Open `path` (normally `/dev/kmsg`).
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        Ok(Kmsg { file })
    }

    /// Message texts of all records available now.
    pub fn drain(&mut self) -> Vec<String> {
        // One read returns one record; EAGAIN means no more. EPIPE means
        // records were overwritten: the next read continues after the gap.
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.push(record_text(buf.get(..n).unwrap_or_default())),
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        out
    }
}

/// `"6,123,456,-;text\n key=value"` → `"text"`.
pub fn record_text(record: &[u8]) -> String {
    let s = String::from_utf8_lossy(record);
    let body = s.split_once(';').map_or(&*s, |(_, b)| b);
    body.lines().next().unwrap_or_default().to_owned()
}

/// Lines about sched_ext.
pub fn sched_ext_lines(lines: impl IntoIterator<Item = String>) -> Vec<String> {
    lines
        .into_iter()
        .filter(|l| l.starts_with("sched_ext:"))
        .collect()
}

pub use ktstr_workload::scx::{disable_reason, is_clean_unregister, is_restart_request};

/// Whether `lines` hold an error disable (`disabled (reason)`) whose
/// message record (`sched_ext: name: message`, logged right after it by
/// the same kernel function) has not been read yet.
pub fn error_message_pending(lines: &[String]) -> bool {
    let Some(reason) = disable_reason(lines) else {
        return false;
    };
    if is_clean_unregister(reason) || is_restart_request(reason) {
        return false;
    }
    ScxExit::parse(lines, "").is_none_or(|e| e.message.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_and_disable_reasons() {
        assert_eq!(
            record_text(b"3,812,5127311,-;sched_ext: BPF scheduler \"qmap\" disabled (runnable task stall)\n SUBSYSTEM=x\n"),
            "sched_ext: BPF scheduler \"qmap\" disabled (runnable task stall)"
        );
        let lines = sched_ext_lines([
            "random: crng init done".to_owned(),
            "sched_ext: BPF scheduler \"qmap\" disabled (runnable task stall)".to_owned(),
            "sched_ext: qmap: kworker/1:1[42] failed to run for 5.1s".to_owned(),
        ]);
        assert_eq!(lines.len(), 2);
        let reason = disable_reason(&lines).unwrap();
        assert_eq!(reason, "runnable task stall");
        assert!(!is_clean_unregister(reason));
        assert!(is_clean_unregister("unregistered from user space"));
        assert!(!error_message_pending(&lines));
        assert!(error_message_pending(&lines[..1]));
        let clean = [
            "sched_ext: BPF scheduler \"qmap\" disabled (unregistered from user space)".to_owned(),
        ];
        assert!(!error_message_pending(&clean));
    }
}
