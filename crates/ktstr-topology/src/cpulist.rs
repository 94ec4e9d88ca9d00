//! The kernel's CPU list text (`0-3,8,10-11`): sysfs writes it, `cpuset.cpus`
//! takes it. One parser and one formatter for every crate.

use std::collections::BTreeSet;

use crate::TopologyError;

/// Linux's largest `NR_CPUS`; no CPU id reaches it. The cap keeps a hostile
/// `0-4294967295` from allocating 16 GiB.
pub const MAX_CPUS: u32 = 8192;

/// What is wrong with one comma-separated part of a CPU list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CpuListFault {
    #[error("a part is not a CPU id or an `a-b` range")]
    NotANumber,
    #[error("a range ends before it starts")]
    Reversed,
    #[error("a CPU id is {MAX_CPUS} or more (Linux's largest NR_CPUS)")]
    TooLarge,
}

/// Parses a CPU list into sorted, distinct ids; empty text is no CPUs.
pub fn parse_cpu_list(text: &str) -> Result<Vec<u32>, TopologyError> {
    cpu_ids(text).map_err(|reason| TopologyError::CpuList {
        text: text.to_string(),
        reason,
    })
}

/// [`parse_cpu_list`] with only the fault, for callers that add context.
pub(crate) fn cpu_ids(text: &str) -> Result<Vec<u32>, CpuListFault> {
    let text = text.trim();
    let mut out = BTreeSet::new();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let id = |s: &str| -> Result<u32, CpuListFault> {
        let id: u32 = s.parse().map_err(|_| CpuListFault::NotANumber)?;
        if id >= MAX_CPUS {
            return Err(CpuListFault::TooLarge);
        }
        Ok(id)
    };
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (id(a)?, id(b)?);
                if a > b {
                    return Err(CpuListFault::Reversed);
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(id(part)?);
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// Formats ascending CPU ids as the kernel does (`0-3,8`); consecutive ids
/// fold into a range.
pub fn format_cpu_list(cpus: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && Some(cpus[i + 1]) == end.checked_add(1) {
            i += 1;
            end = cpus[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(text: &str) -> CpuListFault {
        match parse_cpu_list(text) {
            Err(TopologyError::CpuList { reason, .. }) => reason,
            other => panic!("{text:?}: expected a CPU list error, got {other:?}"),
        }
    }

    #[test]
    fn cpulists_round_trip() {
        for s in ["0", "0-3", "0-1,4,6-7", ""] {
            assert_eq!(format_cpu_list(&parse_cpu_list(s).expect(s)), s);
        }
        assert_eq!(parse_cpu_list("0-2\n").expect("newline"), [0, 1, 2]);
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n").expect("kernel list"),
            [0, 1, 2, 3, 8, 10, 11]
        );
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpu_list(&[5]), "5");
        assert_eq!(
            format_cpu_list(&[u32::MAX - 1, u32::MAX]),
            "4294967294-4294967295"
        );
    }

    #[test]
    fn malformed_lists_are_rejected() {
        assert_eq!(fault("3-1"), CpuListFault::Reversed);
        assert_eq!(fault("x"), CpuListFault::NotANumber);
        assert_eq!(fault("0,,1"), CpuListFault::NotANumber);
        let msg = parse_cpu_list("3-1").unwrap_err().to_string();
        assert!(msg.contains("\"3-1\""), "{msg}");
    }

    #[test]
    fn ids_are_bounded_by_nr_cpus() {
        assert_eq!(fault("0-4294967295"), CpuListFault::TooLarge);
        assert_eq!(fault("8192"), CpuListFault::TooLarge);
        assert_eq!(parse_cpu_list("8191").expect("last id"), [8191]);
    }
}
