//! KASLR facts for `SysReady`: where `_text` runs (from `/proc/kallsyms`)
//! and where the kernel was loaded physically (from `/proc/iomem`).

/// Virtual address of `_text` in kallsyms text, if listed and not hidden.
pub fn text_from_kallsyms(kallsyms: &str) -> Option<u64> {
    kallsyms
        .lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            let addr = f.next()?;
            let _kind = f.next()?;
            (f.next()? == "_text").then(|| u64::from_str_radix(addr, 16).ok())?
        })
        .filter(|&a| a != 0)
}

/// Start of the `Kernel code` resource in iomem text.
pub fn phys_base_from_iomem(iomem: &str) -> Option<u64> {
    iomem
        .lines()
        .find_map(|l| {
            let (range, name) = l.split_once(" : ")?;
            if name.trim() != "Kernel code" {
                return None;
            }
            let start = range.trim().split('-').next()?;
            u64::from_str_radix(start, 16).ok()
        })
        .filter(|&a| a != 0)
}

/// Read both from /proc (0 where unknown).
pub fn read() -> (u64, u64) {
    // kptr_restrict hides addresses from kallsyms unless it is 0.
    let _ = std::fs::write("/proc/sys/kernel/kptr_restrict", "0");
    let text = std::fs::read_to_string("/proc/kallsyms")
        .ok()
        .and_then(|s| text_from_kallsyms(&s));
    let phys = std::fs::read_to_string("/proc/iomem")
        .ok()
        .and_then(|s| phys_base_from_iomem(&s));
    (text.unwrap_or(0), phys.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kallsyms_and_iomem() {
        let ks =
            "ffffffff9a000000 T startup_64\nffffffff9a000000 T _text\nffffffff9a001000 T _stext\n";
        assert_eq!(text_from_kallsyms(ks), Some(0xffff_ffff_9a00_0000));
        assert_eq!(text_from_kallsyms("0000000000000000 T _text\n"), None);
        let io = "00000000-00000fff : Reserved\n00100000-7ffdffff : System RAM\n  1c000000-1d20245f : Kernel code\n  1d400000-1d8fffff : Kernel rodata\n";
        assert_eq!(phys_base_from_iomem(io), Some(0x1c00_0000));
    }
}
