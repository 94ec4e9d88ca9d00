//! Symbols and BTF layouts of the test kernel's vmlinux, checked against
//! the image's own structure and against pahole's independent reading of
//! the same BTF.

mod common;

use std::process::Command;

use ktstr_monitor::{Btf, Field, LoadError, Vmlinux};
use ktstr_testenv::Need;

const OBJCOPY: Need = Need::Program {
    name: "objcopy",
    package: "binutils",
};

const PAHOLE: Need = Need::Program {
    name: "pahole",
    package: "pahole",
};

fn load() -> Vmlinux {
    Vmlinux::load(&common::vmlinux_path()).expect("load vmlinux")
}

fn symbols_and_layouts_of_the_test_kernel() {
    let v = load();
    let s = &v.symbols;
    // Kernel-image symbols sit in the top 2 GiB, inside [_text, _end).
    assert_eq!(s.text >> 31, 0x1_ffff_ffff, "{:#x}", s.text);
    for (name, at) in [
        ("page_offset_base", s.page_offset_base),
        ("vmalloc_base", s.vmalloc_base),
        ("init_top_pgt", s.init_top_pgt),
        ("__per_cpu_offset", s.per_cpu_offset),
        ("nr_cpu_ids", s.nr_cpu_ids),
        ("jiffies", s.jiffies),
    ] {
        assert!((s.text..s.end).contains(&at), "{name} at {at:#x}");
    }
    // `runqueues` is per-CPU: an offset into each CPU's area, not an address.
    assert!(s.runqueues < s.text, "runqueues at {:#x}", s.runqueues);
    assert!(s.pgtable_l5_enabled.is_some(), "CONFIG_X86_5LEVEL=y");
    assert!(s.scx_enable_state.is_some() && s.scx_ops.is_some());

    let l = &v.layout;
    assert_eq!(l.rq.nr_running.size, 4);
    assert_eq!(l.rq.clock.size, 8);
    assert_eq!(l.rq.curr.size, 8);
    assert_eq!(l.task.pid.size, 4);
    assert_eq!(l.task.comm.size, 16);
    let scx = l.rq.scx.as_ref().expect("a sched_ext kernel has rq.scx");
    assert_eq!((scx.nr_running.size, scx.local_dsq_nr.size), (4, 4));
    assert_eq!(l.ops_name.map(|f| f.size), Some(128));
    let states: Vec<&str> = l.enable_states.iter().map(|(_, n)| n.as_str()).collect();
    assert!(states.contains(&"SCX_OPS_ENABLED"), "{states:?}");
    assert!(states.contains(&"SCX_OPS_DISABLED"), "{states:?}");
}

/// The on-disk cache serves a second load, and a replaced vmlinux (a new
/// inode at the same path) is parsed again rather than served stale.
fn the_cache_serves_a_second_load_and_not_a_replaced_kernel() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kernel = dir.path().join("vmlinux");
    std::fs::copy(common::vmlinux_path(), &kernel).expect("copy vmlinux");
    let cache = dir.path().join("cache");
    let parsed = load();

    assert_eq!(
        Vmlinux::load_cached(&kernel, &cache).expect("first"),
        parsed
    );
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .expect("cache")
        .flatten()
        .collect();
    assert_eq!(entries.len(), 1, "one entry written");
    // What a second load returns is the entry: prove it by altering it.
    let mut altered = parsed.clone();
    altered.symbols.jiffies += 8;
    std::fs::write(
        entries[0].path(),
        serde_json::to_vec(&altered).expect("json"),
    )
    .expect("write");
    assert_eq!(
        Vmlinux::load_cached(&kernel, &cache).expect("second"),
        altered
    );

    std::fs::remove_file(&kernel).expect("remove");
    std::fs::copy(common::vmlinux_path(), &kernel).expect("copy again");
    assert_eq!(
        Vmlinux::load_cached(&kernel, &cache).expect("replaced"),
        parsed
    );
    // A corrupt entry is parsed around, not an error.
    for e in std::fs::read_dir(&cache).expect("cache").flatten() {
        std::fs::write(e.path(), b"{").expect("corrupt");
    }
    assert_eq!(
        Vmlinux::load_cached(&kernel, &cache).expect("corrupt"),
        parsed
    );
}

fn a_missing_struct_or_member_is_an_error_naming_it() {
    let bytes = std::fs::read(common::vmlinux_path()).expect("read vmlinux");
    let elf = object::File::parse(&*bytes).expect("ELF");
    let btf = Btf::from_vmlinux(&elf).expect("BTF");
    let e = btf.field("rq", "no_such_member").unwrap_err();
    assert!(
        matches!(
            e,
            LoadError::MissingMember {
                ty: "rq",
                member: "no_such_member"
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "BTF `rq` has no member `no_such_member`");
    let e = btf.field("no_such_struct", "x").unwrap_err();
    assert!(
        matches!(
            e,
            LoadError::MissingType {
                kind: "struct",
                name: "no_such_struct"
            }
        ),
        "{e:?}"
    );
    // A byte array is not an integer the monitor reads as one.
    let e = btf.int_field("task_struct", "comm").unwrap_err();
    assert!(
        matches!(e, LoadError::UnreadableMember { size: 16, .. }),
        "{e:?}"
    );
}

/// Offset and size of `member` in pahole's listing of `ty` (pahole
/// prints offsets from the start of `ty`, through anonymous unions).
fn pahole(vmlinux: &str, ty: &str, member: &str) -> Field {
    let out = Command::new("pahole")
        .args(["-C", ty, vmlinux])
        .output()
        .expect("run pahole");
    let text = String::from_utf8_lossy(&out.stdout);
    let found = text.lines().find_map(|line| {
        let (decl, comment) = line.split_once("/*")?;
        let name = decl
            .trim_end()
            .strip_suffix(';')?
            .rsplit([' ', '\t', '*'])
            .next()?;
        let name = name.split('[').next()?;
        if name != member {
            return None;
        }
        let mut nums = comment.split_whitespace().filter_map(|w| w.parse().ok());
        Some(Field {
            offset: nums.next()?,
            size: nums.next()?,
        })
    });
    found.unwrap_or_else(|| panic!("pahole lists no {ty}.{member}:\n{text}"))
}

fn btf_offsets_agree_with_pahole() {
    let path = common::vmlinux_path();
    let path = path.to_str().expect("UTF-8 path");
    let l = load().layout;
    let scx = l.rq.scx.expect("rq.scx");
    let in_rq = |inner: &str, outer: &str, member: &str| {
        let base = pahole(path, "rq", outer).offset;
        let f = pahole(path, inner, member);
        Field {
            offset: base + f.offset,
            size: f.size,
        }
    };
    let dsq_in_scx = pahole(path, "scx_rq", "local_dsq").offset;
    let nr_in_dsq = pahole(path, "scx_dispatch_q", "nr");
    let checks = [
        (
            "rq.nr_running",
            l.rq.nr_running,
            pahole(path, "rq", "nr_running"),
        ),
        ("rq.clock", l.rq.clock, pahole(path, "rq", "clock")),
        ("rq.curr", l.rq.curr, pahole(path, "rq", "curr")),
        (
            "rq.scx.nr_running",
            scx.nr_running,
            in_rq("scx_rq", "scx", "nr_running"),
        ),
        (
            "rq.scx.local_dsq.nr",
            scx.local_dsq_nr,
            Field {
                offset: pahole(path, "rq", "scx").offset + dsq_in_scx + nr_in_dsq.offset,
                size: nr_in_dsq.size,
            },
        ),
        (
            "task_struct.pid",
            l.task.pid,
            pahole(path, "task_struct", "pid"),
        ),
        (
            "task_struct.comm",
            l.task.comm,
            pahole(path, "task_struct", "comm"),
        ),
        (
            "sched_ext_ops.name",
            l.ops_name.expect("ops name"),
            pahole(path, "sched_ext_ops", "name"),
        ),
    ];
    for (what, ours, theirs) in checks {
        assert_eq!(ours, theirs, "{what}");
    }
}

/// The test vmlinux with `objcopy` `args` applied, loaded.
fn load_altered(args: &[&str]) -> Result<Vmlinux, LoadError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("vmlinux");
    let status = Command::new("objcopy")
        .args(args)
        .arg(common::vmlinux_path())
        .arg(&out)
        .status()
        .expect("run objcopy");
    assert!(status.success(), "objcopy {args:?}");
    Vmlinux::load(&out)
}

fn a_kernel_without_btf_or_a_needed_symbol_is_refused_by_name() {
    let e = load_altered(&["--remove-section=.BTF"]).unwrap_err();
    assert!(matches!(e, LoadError::NoBtf), "{e:?}");
    let e = load_altered(&["--strip-symbol=page_offset_base"]).unwrap_err();
    assert!(
        matches!(e, LoadError::MissingSymbol("page_offset_base")),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "vmlinux has no symbol `page_offset_base`");
}

fn main() -> std::process::ExitCode {
    let mut tests = ktstr_testenv::tests![&[Need::Kernel];
        symbols_and_layouts_of_the_test_kernel,
        the_cache_serves_a_second_load_and_not_a_replaced_kernel,
        a_missing_struct_or_member_is_an_error_naming_it];
    tests.extend(ktstr_testenv::tests![&[Need::Kernel, PAHOLE]; btf_offsets_agree_with_pahole]);
    tests.extend(ktstr_testenv::tests![&[Need::Kernel, OBJCOPY];
        a_kernel_without_btf_or_a_needed_symbol_is_refused_by_name]);
    ktstr_testenv::run(tests)
}
