//! QEMU argv from a [`QemuConfig`] and the run's socket/memory paths. Pure: no I/O, so the
//! exact command line is unit-tested without launching anything.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use ktstr_wire::BULK_PORT_NAME;

use crate::config::{Accel, QemuConfig, TcgThreads};
use crate::error::{Error, Result};
use crate::topology::{self, Machine};

/// Host-side paths of one run. QEMU connects to every socket as a client.
#[derive(Clone, Debug)]
pub struct RunPaths {
    pub qmp: PathBuf,
    pub com1: PathBuf,
    pub com2: PathBuf,
    pub console: PathBuf,
    pub bulk: PathBuf,
    /// Guest RAM backing files, one per [`QemuConfig::memory_segments_mib`] entry.
    pub memory: Vec<PathBuf>,
}

/// Default kernel command line; `tsc_khz` of `None` omits `tsc_early_khz`.
pub fn kernel_cmdline(extra: &str, tsc_khz: Option<u64>) -> String {
    // reboot=t: microvm has no i8042, so only a triple fault resets (and, with -no-reboot,
    // exits QEMU). panic=-1: a panic reboots at once so the run ends.
    let mut s = String::from("console=ttyS0 reboot=t panic=-1");
    if let Some(khz) = tsc_khz {
        s.push_str(&format!(" tsc_early_khz={khz}"));
    }
    let extra = extra.trim();
    if !extra.is_empty() {
        s.push(' ');
        s.push_str(extra);
    }
    s
}

/// QEMU option values are comma-separated key=value lists; refuse paths that would split.
fn opt_path(p: &Path) -> Result<String> {
    let s = p
        .to_str()
        .ok_or_else(|| Error::InvalidConfig(format!("path {} is not UTF-8", p.display())))?;
    if s.contains(',') {
        return Err(Error::InvalidConfig(format!("path {s} contains a comma")));
    }
    Ok(s.to_owned())
}

/// Full argv (without the binary). Starts paused (`-S`); the host resumes over QMP once
/// every socket is connected, so no guest output can be lost.
pub fn build_args(
    cfg: &QemuConfig,
    paths: &RunPaths,
    tsc_khz: Option<u64>,
) -> Result<Vec<OsString>> {
    let vcpus = cfg.effective_vcpus()?;
    let mem = cfg.memory_mib;
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    push(&[
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-S",
    ]);
    let machine = cfg.machine();
    let numa = cfg.topology.as_ref().filter(|t| t.nodes.len() > 1);
    // With NUMA each node has its own backend; otherwise the machine uses the one `mem`.
    let machine_arg = match (machine, numa.is_some()) {
        (Machine::Microvm, _) => "microvm,rtc=on,memory-backend=mem",
        (Machine::Q35, false) => "q35,memory-backend=mem",
        (Machine::Q35, true) => "q35",
    };
    push(&["-machine", machine_arg]);
    // LLCs are dies, and QEMU shares L3 per die only for Intel models (see crate::topology).
    let tcg_cpu = if cfg.topology.is_some() {
        "max,vendor=GenuineIntel"
    } else {
        "max"
    };
    match cfg.accel {
        Accel::Tcg => push(&["-accel", cfg.tcg_threads.accel_arg(), "-cpu", tcg_cpu]),
        Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host"]),
    }
    let smp = match &cfg.topology {
        Some(t) => topology::smp_arg(t)?,
        None => vcpus.to_string(),
    };
    push(&["-smp", &smp, "-m", &format!("{mem}M")]);
    let segments = cfg.memory_segments_mib()?;
    if segments.len() != paths.memory.len() {
        return Err(Error::InvalidConfig(format!(
            "{} guest memory files for {} memory segments",
            paths.memory.len(),
            segments.len()
        )));
    }
    let memdev = |i: usize| {
        if numa.is_some() {
            format!("mem{i}")
        } else {
            "mem".to_owned()
        }
    };
    for (i, (mib, path)) in segments.iter().zip(&paths.memory).enumerate() {
        push(&[
            "-object",
            &format!(
                "memory-backend-file,id={},size={mib}M,mem-path={},share=on",
                memdev(i),
                opt_path(path)?
            ),
        ]);
    }
    if let Some(t) = numa {
        for n in topology::numa_args(t, memdev) {
            push(&["-numa", &n]);
        }
    }
    a.push("-kernel".into());
    a.push(cfg.kernel.clone().into_os_string());
    if let Some(initrd) = &cfg.initramfs {
        a.push("-initrd".into());
        a.push(initrd.clone().into_os_string());
    }
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    push(&["-append", &kernel_cmdline(&cfg.cmdline_extra, tsc_khz)]);
    let sock = |id: &str, p: &Path| -> Result<String> {
        Ok(format!("socket,id={id},path={}", opt_path(p)?))
    };
    push(&[
        "-chardev",
        &sock("qmp", &paths.qmp)?,
        "-mon",
        "chardev=qmp,mode=control",
    ]);
    push(&[
        "-chardev",
        &sock("com1", &paths.com1)?,
        "-serial",
        "chardev:com1",
    ]);
    // microvm creates only COM1 itself; COM2 is an explicit ISA UART at the standard port.
    push(&[
        "-chardev",
        &sock("com2", &paths.com2)?,
        "-device",
        "isa-serial,chardev=com2,iobase=0x2f8,irq=3",
    ]);
    let vser = match machine {
        Machine::Microvm => "virtio-serial-device,id=vser0",
        Machine::Q35 => "virtio-serial-pci,id=vser0",
    };
    push(&["-device", vser]);
    push(&[
        "-chardev",
        &sock("vcon", &paths.console)?,
        "-device",
        "virtconsole,chardev=vcon,bus=vser0.0,nr=0",
    ]);
    push(&[
        "-chardev",
        &sock("vbulk", &paths.bulk)?,
        "-device",
        &format!("virtserialport,chardev=vbulk,bus=vser0.0,nr=1,name={BULK_PORT_NAME}"),
    ]);
    if cfg.restore_from.is_some() {
        // The state arrives over QMP (migrate-incoming) once capabilities are set.
        a.extend(["-incoming", "defer"].map(OsString::from));
    }
    a.extend(cfg.extra_qemu_args.iter().map(OsString::from));
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktstr_topology::{DistanceMatrix, NumaTopology, Topology};

    fn shape(text: &str) -> NumaTopology {
        let t: Topology = text.parse().expect(text);
        t.to_numa().expect(text)
    }

    fn paths() -> RunPaths {
        let d = PathBuf::from("/tmp/x");
        RunPaths {
            qmp: d.join("qmp.sock"),
            com1: d.join("com1.sock"),
            com2: d.join("com2.sock"),
            console: d.join("hvc.sock"),
            bulk: d.join("bulk.sock"),
            memory: vec!["/dev/shm/mem".into()],
        }
    }

    fn joined(a: &[OsString]) -> String {
        a.iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn tcg_argv() {
        let mut c = QemuConfig::new("/k/bzImage");
        c.initramfs = Some("/k/initrd".into());
        c.vcpus = 2;
        c.memory_mib = 256;
        c.cmdline_extra = " quiet ".into();
        c.tcg_threads = TcgThreads::Single;
        let a = joined(&build_args(&c, &paths(), Some(2_445_406)).unwrap());
        for want in [
            "-machine microvm,rtc=on,memory-backend=mem",
            "-accel tcg,thread=single -cpu max",
            "-smp 2 -m 256M",
            "-object memory-backend-file,id=mem,size=256M,mem-path=/dev/shm/mem,share=on",
            "-kernel /k/bzImage -initrd /k/initrd",
            "-append console=ttyS0 reboot=t panic=-1 tsc_early_khz=2445406 quiet -chardev",
            "-chardev socket,id=qmp,path=/tmp/x/qmp.sock -mon chardev=qmp,mode=control",
            "-serial chardev:com1",
            "isa-serial,chardev=com2,iobase=0x2f8,irq=3",
            "virtconsole,chardev=vcon,bus=vser0.0,nr=0",
            "virtserialport,chardev=vbulk,bus=vser0.0,nr=1,name=ktstr.bulk",
            "-no-reboot -S",
        ] {
            assert!(a.contains(want), "missing `{want}` in {a}");
        }
    }

    #[test]
    fn multi_threaded_tcg_only_when_asked() {
        let mut c = QemuConfig::new("/k/bzImage");
        c.tcg_threads = TcgThreads::Multi;
        let a = joined(&build_args(&c, &paths(), None).unwrap());
        assert!(a.contains("-accel tcg,thread=multi -cpu max"), "{a}");
        // KVM has no TCG threads: the option does not leak into its -accel.
        c.accel = Accel::Kvm;
        let a = joined(&build_args(&c, &paths(), None).unwrap());
        assert!(a.contains("-accel kvm -cpu host"), "{a}");
        assert!(!a.contains("thread="), "{a}");
    }

    #[test]
    fn kvm_topology_and_no_tsc() {
        let mut c = QemuConfig::new("/k/vmlinux");
        c.accel = Accel::Kvm;
        c.topology = Some(shape("2n2l2c1t"));
        c.extra_qemu_args = vec!["-d".into(), "guest_errors".into()];
        let mut p = paths();
        p.memory = vec!["/dev/shm/m0".into(), "/dev/shm/m1".into()];
        let a = joined(&build_args(&c, &p, None).unwrap());
        assert!(a.contains("-accel kvm -cpu host"), "{a}");
        assert!(a.contains("-smp 4,sockets=2,cores=2,threads=1"), "{a}");
        assert!(!a.contains("tsc_early_khz"), "{a}");
        assert!(!a.contains("-initrd"), "{a}");
        assert!(a.ends_with("-d guest_errors"), "{a}");
    }

    #[test]
    fn numa_topology_uses_q35_with_a_backend_per_node() {
        let mut c = QemuConfig::new("/k/vmlinux");
        let mut t = shape("2n2l1c1t");
        for n in &mut t.nodes {
            n.memory_mib = Some(128);
        }
        t.distances = DistanceMatrix::from_rows(&[vec![10, 21], vec![21, 10]]).unwrap();
        c.topology = Some(t);
        let mut p = paths();
        p.memory = vec!["/dev/shm/m0".into(), "/dev/shm/m1".into()];
        let a = joined(&build_args(&c, &p, None).unwrap());
        for want in [
            "-machine q35 ",
            "-cpu max,vendor=GenuineIntel",
            "-smp 2,sockets=2,cores=1,threads=1",
            "memory-backend-file,id=mem0,size=128M,mem-path=/dev/shm/m0,share=on",
            "memory-backend-file,id=mem1,size=128M,mem-path=/dev/shm/m1,share=on",
            "-numa node,nodeid=0,cpus=0,memdev=mem0 -numa node,nodeid=1,cpus=1,memdev=mem1",
            "-numa dist,src=0,dst=1,val=21 -numa dist,src=1,dst=0,val=21",
            "virtio-serial-pci,id=vser0",
        ] {
            assert!(a.contains(want), "missing `{want}` in {a}");
        }
        // One file for two nodes is a caller bug, reported rather than half-used.
        assert!(matches!(
            build_args(&c, &paths(), None),
            Err(Error::InvalidConfig(_))
        ));
    }

    #[test]
    fn comma_in_path_rejected() {
        let c = QemuConfig::new("/k/bzImage");
        let mut p = paths();
        p.memory = vec!["/dev/shm/a,b".into()];
        assert!(matches!(
            build_args(&c, &p, None),
            Err(Error::InvalidConfig(_))
        ));
    }
}
