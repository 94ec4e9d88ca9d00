//! The `ktstr` command as a user runs it: subcommands, `--json` shapes,
//! exit statuses (0 success/pass, 1 fail, 2 inconclusive, 3 error), every
//! bad input as a one-line error without a panic, the kernel build's cache
//! rules on fake source trees (fast: their Makefile only pretends), and a
//! guest shell and a scenario run on a real kernel (QEMU tier).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ktstr_testenv::{Need, Test, tests};
use serde_json::Value;

const KTSTR: &str = env!("CARGO_BIN_EXE_ktstr");

/// `ktstr args` with `cache` as its whole cache: no `KTSTR_KERNEL`, no
/// `KTSTR_SCHEDULERS`.
fn ktstr_in(cache: &Path, args: &[&str]) -> Output {
    Command::new(KTSTR)
        .args(args)
        .env("KTSTR_CACHE_DIR", cache)
        .env_remove("KTSTR_KERNEL")
        .env_remove("KTSTR_SCHEDULERS")
        .output()
        .expect("run ktstr")
}

/// `ktstr args` in this environment.
fn ktstr(args: &[&str]) -> Output {
    Command::new(KTSTR).args(args).output().expect("run ktstr")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

/// The string `name` of every element of the array `v`.
fn field<'a>(v: &'a Value, name: &str) -> Vec<&'a str> {
    let items = v.as_array().unwrap_or_else(|| panic!("not an array: {v}"));
    items
        .iter()
        .map(|e| e[name].as_str().unwrap_or_else(|| panic!("no {name}: {e}")))
        .collect()
}

/// `o` exited with `code` (its stderr shown otherwise); its stdout.
fn expect_status(o: &Output, code: i32) -> String {
    assert_eq!(o.status.code(), Some(code), "stderr: {}", stderr(o));
    stdout(o)
}

/// `needle` is in `text` (shown otherwise).
fn assert_has(text: &str, needle: &str) {
    assert!(text.contains(needle), "{needle:?} not in:\n{text}");
}

/// Exit status 3 with one `ktstr: ...` line containing `needle`, no panic.
fn assert_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(3), "status; stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("ktstr: ")).collect();
    assert_eq!(lines.len(), 1, "one error line: {err}");
    assert!(lines[0].contains(needle), "{needle:?} not in {err}");
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

// ---- subcommands and their JSON ----

fn help_names_every_subcommand() {
    let o = ktstr(&["--help"]);
    expect_status(&o, 0);
    let text = stdout(&o);
    for sub in [
        "doctor",
        "topo",
        "scenarios",
        "kernel",
        "sched",
        "shell",
        "run",
        "fuzz",
        "completions",
    ] {
        assert!(text.contains(sub), "{sub} missing from --help:\n{text}");
    }
}

fn unknown_subcommand_is_an_error() {
    let o = ktstr(&["frobnicate"]);
    expect_status(&o, 3);
    assert_has(&stderr(&o), "unrecognized subcommand 'frobnicate'");
    assert!(!stderr(&o).contains("panicked"));
}

fn topo_json_is_the_linux_view() {
    let o = ktstr(&["topo", "2n2l2c2t", "--json"]);
    expect_status(&o, 0);
    let v = json(&o);
    let cpus = v["cpus"].as_array().expect("cpus");
    assert_eq!(cpus.len(), 8);
    assert_eq!(cpus[0]["thread_siblings"], serde_json::json!([0, 1]));
    assert_eq!(cpus[0]["llc_cpus"], serde_json::json!([0, 1, 2, 3]));
    assert_eq!(cpus[5]["node"], 1);
    assert_eq!(cpus[0]["domains"], serde_json::json!(["SMT", "MC", "NUMA"]));
    let nodes = v["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[1]["distances"], serde_json::json!([20, 10]));
    assert_eq!(nodes[0]["memory_mib"], 256);
    let text = ktstr(&["topo", "2n2l2c2t"]);
    expect_status(&text, 0);
    assert!(
        stdout(&text).starts_with("2n2l2c2t: 8 CPUs, 2 node(s)"),
        "{}",
        stdout(&text)
    );
}

fn topo_lists_the_presets_and_takes_their_names() {
    let o = ktstr(&["topo"]);
    expect_status(&o, 0);
    let list = stdout(&o);
    assert!(list.lines().count() > 16, "{list}");
    assert_has(&list, "numa_asym_2n");
    assert_has(&list, "4n8l4c2t");
    let o = ktstr(&["topo", "numa_asym_2n", "--json"]);
    expect_status(&o, 0);
    let v = json(&o);
    let nodes = v["nodes"].as_array().expect("nodes");
    assert_eq!(nodes[0]["cpus"], serde_json::json!([0, 1]));
    assert_eq!(nodes[1]["memory_mib"], 384);
    assert_error(
        &ktstr(&["topo", "numa_asym_2n", "--memory-mib", "256"]),
        "per-node memory adds up to 512 MiB",
    );
    assert_error(&ktstr(&["topo", "numa_nope"]), "no topology preset");
}

fn fuzz_rejects_bad_input_before_any_vm() {
    let cache = temp();
    let o = ktstr_in(cache.path(), &["fuzz", "--scheduler", "scx_no_such"]);
    assert_error(&o, "unknown scheduler scx_no_such");
    let o = ktstr_in(
        cache.path(),
        &["fuzz", "--scheduler", "eevdf", "--topology", "2x"],
    );
    assert_error(&o, "expected e.g.");
}

fn bad_topology_is_an_error() {
    assert_error(&ktstr(&["topo", "2x"]), "expected e.g.");
    assert_error(&ktstr(&["topo", "0n1l1c1t"]), "topology");
}

fn scenarios_json_is_the_catalogue() {
    let o = ktstr(&["scenarios", "--json"]);
    expect_status(&o, 0);
    let v = json(&o);
    let names = field(&v, "name");
    let catalogue: Vec<String> = ktstr_workload::catalogue::all()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, catalogue);
    for s in v.as_array().expect("array") {
        assert!(s["duration_ms"].as_u64().is_some_and(|d| d > 0), "{s}");
        assert_eq!(s["spec"]["name"], s["name"]);
    }
    let text = stdout(&ktstr(&["scenarios"]));
    assert!(text.lines().any(|l| l.starts_with("steady ")), "{text}");
}

fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let o = ktstr(&["completions", shell]);
        expect_status(&o, 0);
        assert!(stdout(&o).contains("ktstr"), "{shell}");
    }
    let o = ktstr(&["completions", "tcsh"]);
    expect_status(&o, 3);
    assert_has(&stderr(&o), "invalid value 'tcsh'");
}

fn doctor_on_an_empty_cache_names_the_fix() {
    let cache = temp();
    let o = ktstr_in(cache.path(), &["doctor"]);
    let text = stdout(&o);
    expect_status(&o, 1);
    for line in ["kvm", "backend", "qemu", "busybox", "kernel", "cache"] {
        assert!(text.lines().any(|l| l.starts_with(line)), "{line}: {text}");
    }
    assert_has(&text, "MISSING the test kernel");
    assert_has(&text, "`ktstr kernel build`");
    assert_has(&text, &cache.path().display().to_string());
}

// ---- the kernel cache ----

/// A complete-looking cache entry (what `kernel build` stages).
fn fake_entry(cache: &Path, key: &str, built_unix: u64) -> PathBuf {
    let dir = cache.join("kernels").join(key);
    std::fs::create_dir_all(dir.join("schedulers")).expect("mkdir");
    std::fs::write(dir.join("vmlinux"), b"elf").expect("vmlinux");
    std::fs::write(dir.join("schedulers/scx_simple"), b"bin").expect("scheduler");
    let info = format!(
        "release=6.12.0\nsource=/src\nconfig_sha256=00\nslow_kvm=false\nbuilt_unix={built_unix}\n"
    );
    std::fs::write(dir.join("info"), info).expect("info");
    dir
}

fn kernel_list_and_clean() {
    let cache = temp();
    let empty = ktstr_in(cache.path(), &["kernel", "list", "--json"]);
    expect_status(&empty, 0);
    assert_eq!(json(&empty), serde_json::json!([]));
    fake_entry(cache.path(), "6.12.0-old", 1);
    let newest = fake_entry(cache.path(), "6.12.0-new", 2);
    // A build that was interrupted while staging: never an entry.
    std::fs::create_dir_all(cache.path().join("kernels/.tmp-6.12.0-x-1")).expect("mkdir");
    std::fs::write(
        cache.path().join("kernels/.tmp-6.12.0-x-1/vmlinux"),
        b"half",
    )
    .expect("write");
    let v = json(&ktstr_in(cache.path(), &["kernel", "list", "--json"]));
    let keys = field(&v, "key");
    assert_eq!(
        keys,
        ["6.12.0-new", "6.12.0-old"],
        "newest first, staging skipped"
    );
    assert_eq!(v[0]["default"], true);
    assert_eq!(v[1]["default"], false);
    assert_eq!(
        v[0]["vmlinux"],
        newest.join("vmlinux").display().to_string()
    );
    assert_eq!(v[0]["schedulers"], serde_json::json!(["scx_simple"]));
    assert_eq!(v[0]["release"], "6.12.0");
    // What tests find: the newest entry's kernel and its schedulers.
    let doctor = stdout(&ktstr_in(cache.path(), &["doctor"]));
    assert_has(&doctor, &newest.join("vmlinux").display().to_string());
    assert_has(
        &doctor,
        &newest.join("schedulers/scx_simple").display().to_string(),
    );
    let text = stdout(&ktstr_in(cache.path(), &["kernel", "list"]));
    assert!(text.starts_with("* 6.12.0-new"), "{text}");
    std::fs::create_dir_all(cache.path().join("src/linux-source-6.12")).expect("mkdir");
    let clean = ktstr_in(cache.path(), &["kernel", "clean"]);
    expect_status(&clean, 0);
    assert_has(&stdout(&clean), "removed 3");
    assert!(
        cache.path().join("src").is_dir(),
        "sources stay without --all"
    );
    let all = ktstr_in(cache.path(), &["kernel", "clean", "--all"]);
    expect_status(&all, 0);
    assert!(
        !cache.path().join("src").exists(),
        "--all removes the sources"
    );
    assert_eq!(
        json(&ktstr_in(cache.path(), &["kernel", "list", "--json"])),
        serde_json::json!([])
    );
}

/// A source tree whose Makefile pretends to be Linux `version`: it answers
/// kernelversion/kernelrelease, writes `config` as `.config` when
/// configured, and builds by running `build` (a shell snippet).
fn fake_tree(version: &str, config: &str, build: &str) -> tempfile::TempDir {
    let dir = temp();
    let p = dir.path();
    let makefile = format!(
        "kernelversion kernelrelease:\n\t@echo {version}\n\
         x86_64_defconfig kvm_guest.config olddefconfig:\n\t@printf '{config}\\n' > .config\n\
         bzImage:\n\t{build}\n"
    );
    std::fs::write(p.join("Makefile"), makefile).expect("Makefile");
    std::fs::write(p.join("Kconfig"), "").expect("Kconfig");
    std::fs::create_dir_all(p.join("scripts/kconfig")).expect("mkdir");
    let merge = p.join("scripts/kconfig/merge_config.sh");
    std::fs::write(&merge, "#!/bin/sh\nexit 0\n").expect("merge_config.sh");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&merge)
        .status()
        .expect("chmod");
    dir
}

/// Makes what a real build leaves: bzImage, System.map, and an ELF vmlinux.
const FAKE_BUILD: &str = "mkdir -p arch/x86/boot && echo bz > arch/x86/boot/bzImage && \
                          echo map > System.map && cp /bin/true vmlinux && echo '  CC      kernel/fork.o'";
const SCHED_EXT: &str = "CONFIG_SCHED_CLASS_EXT=y";

fn build_args(src: &Path) -> Vec<String> {
    vec![
        "kernel".into(),
        "build".into(),
        "--source".into(),
        src.display().to_string(),
    ]
}

fn kernel_build(cache: &Path, src: &Path) -> Output {
    let args = build_args(src);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ktstr_in(cache, &args)
}

fn entries(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cache.join("kernels"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.retain(|n| !n.starts_with(".full-build-steps"));
    names.sort();
    names
}

/// Neither a directory under `kernels/` nor a listed kernel.
fn assert_nothing_cached(cache: &Path) {
    assert!(entries(cache).is_empty(), "{:?}", entries(cache));
    let listed = ktstr_in(cache, &["kernel", "list", "--json"]);
    assert_eq!(json(&listed), serde_json::json!([]));
}

fn kernel_build_caches_once_and_finds_it_again() {
    let cache = temp();
    let tree = fake_tree("6.12.0", SCHED_EXT, FAKE_BUILD);
    let first = kernel_build(cache.path(), tree.path());
    expect_status(&first, 0);
    assert_has(&stderr(&first), "cached:");
    let listed = json(&ktstr_in(cache.path(), &["kernel", "list", "--json"]));
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(
        listed[0]["source"],
        tree.path()
            .canonicalize()
            .expect("path")
            .display()
            .to_string()
    );
    let key = listed[0]["key"].as_str().expect("key").to_owned();
    assert!(key.starts_with("6.12.0-"), "{key}");
    for f in ["vmlinux", "bzImage", "System.map", "config", "info"] {
        assert!(
            cache.path().join("kernels").join(&key).join(f).is_file(),
            "{f}"
        );
    }
    let again = kernel_build(cache.path(), tree.path());
    expect_status(&again, 0);
    assert_has(&stderr(&again), "already cached");
    assert_eq!(entries(cache.path()), [key]);
}

fn kernel_build_rejects_a_bad_source() {
    let cache = temp();
    let o = ktstr_in(
        cache.path(),
        &["kernel", "build", "--source", "/nonexistent/linux"],
    );
    assert_error(&o, "not a Linux source tree");
    let old = fake_tree("6.6.30", SCHED_EXT, FAKE_BUILD);
    assert_error(
        &kernel_build(cache.path(), old.path()),
        "sched_ext needs >= 6.12",
    );
    let no_scx = fake_tree("6.12.0", "# CONFIG_SCHED_CLASS_EXT is not set", FAKE_BUILD);
    assert_error(
        &kernel_build(cache.path(), no_scx.path()),
        "lacks CONFIG_SCHED_CLASS_EXT=y",
    );
    assert_nothing_cached(cache.path());
}

fn a_failed_build_leaves_no_kernel_in_the_cache() {
    let cache = temp();
    let tree = fake_tree(
        "6.12.0",
        SCHED_EXT,
        "echo '  CC      kernel/fork.o' && false",
    );
    let o = kernel_build(cache.path(), tree.path());
    assert_error(&o, "make bzImage failed");
    assert_has(&stderr(&o), "kernel-build.log");
    assert_nothing_cached(cache.path());
}

fn a_dirty_git_tree_is_built_but_not_cached() {
    let cache = temp();
    let tree = fake_tree("6.12.0", SCHED_EXT, FAKE_BUILD);
    let git = |args: &[&str]| {
        let s = Command::new("git")
            .arg("-C")
            .arg(tree.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .output()
            .expect("git");
        assert!(
            s.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&s.stderr)
        );
    };
    std::fs::write(
        tree.path().join(".gitignore"),
        ".config\nvmlinux\nSystem.map\narch/\n",
    )
    .expect("gitignore");
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "base"]);
    std::fs::write(tree.path().join("Kconfig"), "# changed\n").expect("edit");
    let o = kernel_build(cache.path(), tree.path());
    expect_status(&o, 0);
    assert_has(&stderr(&o), "not cached (the tree has uncommitted changes)");
    assert_nothing_cached(cache.path());
    git(&["commit", "-qam", "change"]);
    let clean = kernel_build(cache.path(), tree.path());
    expect_status(&clean, 0);
    assert_eq!(entries(cache.path()).len(), 1, "committed: cached");
}

/// A cache on a 1 MiB tmpfs: the vmlinux copy hits ENOSPC.
fn a_full_disk_leaves_no_kernel_in_the_cache() {
    let cache = temp();
    let mount = |args: &[&str]| {
        Command::new(args[0])
            .args(&args[1..])
            .status()
            .expect("mount")
    };
    let dir = cache.path().display().to_string();
    assert!(mount(&["mount", "-t", "tmpfs", "-o", "size=1m", "none", &dir]).success());
    let tree = fake_tree(
        "6.12.0",
        SCHED_EXT,
        &format!("{FAKE_BUILD} && head -c 4194304 /dev/zero >> System.map"),
    );
    let o = kernel_build(cache.path(), tree.path());
    let listed = ktstr_in(cache.path(), &["kernel", "list", "--json"]);
    let left = entries(cache.path());
    assert!(mount(&["umount", &dir]).success());
    assert_error(&o, "No space left on device");
    assert_eq!(json(&listed), serde_json::json!([]));
    assert!(left.is_empty(), "{left:?}");
}

// ---- run, sched and shell: bad input ----

fn run_rejects_unknown_names() {
    let cache = temp();
    let o = ktstr_in(
        cache.path(),
        &["run", "--scheduler", "scx_simple", "--scenario", "no_such"],
    );
    assert_error(&o, "unknown scenario \"no_such\"");
    assert!(stderr(&o).contains("steady"), "lists the catalogue");
    let o = ktstr_in(
        cache.path(),
        &["run", "--scheduler", "scx_no_such", "--scenario", "steady"],
    );
    assert_error(&o, "unknown scheduler scx_no_such");
    let o = ktstr_in(
        cache.path(),
        &["run", "--scheduler", "/no/such/scx", "--scenario", "steady"],
    );
    assert_error(&o, "/no/such/scx");
    let o = ktstr_in(
        cache.path(),
        &[
            "run",
            "--scheduler",
            "eevdf",
            "--scenario",
            "steady",
            "--topology",
            "1n",
        ],
    );
    assert_error(&o, "topology");
    let o = ktstr_in(cache.path(), &["run", "--scheduler", "eevdf"]);
    expect_status(&o, 3);
    assert_has(&stderr(&o), "--scenario");
}

/// A run that must fail before it could build or boot anything.
const RUN_WITHOUT_BUILDING: &[&str] = &[
    "run",
    "--no-build",
    "--scheduler",
    "eevdf",
    "--scenario",
    "steady",
];

fn run_without_a_kernel_names_the_build_command() {
    let cache = temp();
    let o = ktstr_in(cache.path(), RUN_WITHOUT_BUILDING);
    assert_error(&o, "run `ktstr kernel build`");
    let o = ktstr_in(cache.path(), &["shell", "--no-build", "--exec", "true"]);
    assert_error(&o, "run `ktstr kernel build`");
}

fn sched_build_rejects_unknown_names_and_needs_a_kernel() {
    let cache = temp();
    let o = ktstr_in(
        cache.path(),
        &["sched", "build", "scx_simple", "scx_no_such"],
    );
    assert_error(
        &o,
        "unknown scheduler scx_no_such: tools/sched_ext builds scx_simple",
    );
    let o = ktstr_in(cache.path(), &["sched", "build", "scx_simple"]);
    assert_error(&o, "run `ktstr kernel build` first");
}

/// Hides /dev/kvm in a private mount namespace.
fn no_dev_kvm_names_the_fix() {
    let o = Command::new("unshare")
        .args([
            "--mount",
            "sh",
            "-c",
            "mount -t tmpfs none /dev && exec \"$0\" \"$@\"",
        ])
        .arg(KTSTR)
        .args(RUN_WITHOUT_BUILDING)
        .env("KTSTR_BACKEND", "kvm")
        .output()
        .expect("unshare");
    assert_error(&o, "no /dev/kvm");
    assert_has(&stderr(&o), "KTSTR_BACKEND=qemu-tcg");
}

// ---- on a real kernel (QEMU tier) ----

fn shell_exec_prints_and_exits_with_the_command_status() {
    let o = ktstr(&["shell", "--exec", "uname", "-r"]);
    expect_status(&o, 0);
    let release = stdout(&o);
    assert!(release.trim().starts_with("6."), "{release}");
    let o = ktstr(&["shell", "--exec", "echo out; echo err >&2; exit 7"]);
    expect_status(&o, 7);
    assert_eq!(stdout(&o), "out\n");
    assert!(stderr(&o).ends_with("err\n"), "{}", stderr(&o));
}

fn run_steady_under_scx_simple_passes_with_a_json_verdict() {
    let o = ktstr(&[
        "run",
        "--scheduler",
        "scx_simple",
        "--scenario",
        "steady",
        "--json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "pass expected; stderr: {}\nstdout: {}",
        stderr(&o),
        stdout(&o)
    );
    let v = json(&o);
    assert_eq!(v["test"], "ktstr-run/steady");
    assert_eq!(v["verdict"]["passed"], true, "{v}");
    assert!(
        v["context"]
            .as_str()
            .is_some_and(|c| c.contains("scx_simple")),
        "{v}"
    );
    assert!(
        v["cgroups"].as_array().is_some_and(|c| !c.is_empty()),
        "{v}"
    );
}

fn main() -> std::process::ExitCode {
    let guest = &[
        Need::Kernel,
        Need::Qemu,
        Need::Busybox,
        Need::Scheduler("scx_simple"),
    ];
    let root = &[
        Need::Root,
        Need::Program {
            name: "unshare",
            package: "util-linux",
        },
        Need::Program {
            name: "mount",
            package: "mount",
        },
    ];
    let git = &[Need::Program {
        name: "git",
        package: "git",
    }];
    let make = &[
        Need::Program {
            name: "make",
            package: "make",
        },
        Need::Program {
            name: "objcopy",
            package: "binutils",
        },
    ];
    let all: Vec<Vec<Test>> = vec![
        tests![&[]; help_names_every_subcommand, unknown_subcommand_is_an_error,
            topo_json_is_the_linux_view, topo_lists_the_presets_and_takes_their_names,
            fuzz_rejects_bad_input_before_any_vm, bad_topology_is_an_error, scenarios_json_is_the_catalogue,
            completions_for_each_shell, doctor_on_an_empty_cache_names_the_fix, kernel_list_and_clean,
            run_rejects_unknown_names, run_without_a_kernel_names_the_build_command,
            sched_build_rejects_unknown_names_and_needs_a_kernel],
        tests![make; kernel_build_caches_once_and_finds_it_again, kernel_build_rejects_a_bad_source,
            a_failed_build_leaves_no_kernel_in_the_cache],
        tests![&[git.as_slice(), make].concat(); a_dirty_git_tree_is_built_but_not_cached],
        tests![&[root.as_slice(), make].concat(); a_full_disk_leaves_no_kernel_in_the_cache],
        tests![root; no_dev_kvm_names_the_fix],
        tests![guest; shell_exec_prints_and_exits_with_the_command_status,
            run_steady_under_scx_simple_passes_with_a_json_verdict],
    ];
    ktstr_testenv::run(all.into_iter().flatten().collect())
}
