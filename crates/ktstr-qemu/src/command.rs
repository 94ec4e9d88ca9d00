//! QEMU argv from a [`QemuConfig`] and the descriptors QEMU inherits. Pure: no I/O, so the
//! exact command line is unit-tested without launching anything.

use std::ffi::OsString;
use std::os::fd::RawFd;

use ktstr_wire::BULK_PORT_NAME;

use crate::config::{Accel, QemuConfig};
use crate::error::{Error, Result};
use crate::topology::{self, Machine};

/// Descriptor numbers QEMU inherits for one run: its ends of connected socket pairs for
/// QMP and every chardev, and one guest RAM memfd per memory segment. Nothing has a path,
/// so a run leaves nothing in any file system however it ends.
#[derive(Clone, Debug)]
pub struct RunFds {
    pub qmp: RawFd,
    pub com1: RawFd,
    pub com2: RawFd,
    pub console: RawFd,
    pub bulk: RawFd,
    /// One per [`QemuConfig::memory_segments_mib`] entry.
    pub memory: Vec<RawFd>,
}

impl RunFds {
    /// Every descriptor, for the child to keep across exec.
    pub fn all(&self) -> Vec<RawFd> {
        let mut v = vec![self.qmp, self.com1, self.com2, self.console, self.bulk];
        v.extend(&self.memory);
        v
    }
}

/// Default kernel command line; `tsc_khz` of `None` omits `tsc_early_khz`.
pub fn kernel_cmdline(extra: &str, tsc_khz: Option<u64>, accel: Accel) -> String {
    // reboot=t: microvm has no i8042, so only a triple fault resets (and, with -no-reboot,
    // exits QEMU). panic=-1: a panic reboots at once so the run ends.
    let mut s = String::from("console=ttyS0 reboot=t panic=-1");
    if let Some(khz) = tsc_khz {
        s.push_str(&format!(" tsc_early_khz={khz}"));
    }
    // TCG's TSC is the host's: one counter every vCPU reads, so synchronised and at a
    // constant rate. The kernel's clocksource watchdog checks it against refined-jiffies,
    // whose ticks lag while TCG is slow, and in some boots marked the TSC unstable and
    // switched to refined-jiffies; guest time then ran at half the host's rate whenever
    // both vCPUs were busy, and every verdict measured in guest time with it.
    if accel == Accel::Tcg {
        s.push_str(" tsc=reliable");
    }
    let extra = extra.trim();
    if !extra.is_empty() {
        s.push(' ');
        s.push_str(extra);
    }
    s
}

/// Full argv (without the binary). Starts paused (`-S`); the host resumes over QMP once
/// every socket is connected, so no guest output can be lost.
pub fn build_args(cfg: &QemuConfig, fds: &RunFds, tsc_khz: Option<u64>) -> Result<Vec<OsString>> {
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
    if let Some(t) = &cfg.topology {
        let cpu_type = match cfg.accel {
            Accel::Tcg => "max-x86_64-cpu",
            Accel::Kvm => "host-x86_64-cpu",
        };
        for device in topology::cpu_devices(t, cpu_type) {
            push(&["-device", &device]);
        }
    }
    let segments = cfg.memory_segments_mib()?;
    if segments.len() != fds.memory.len() {
        return Err(Error::InvalidConfig(format!(
            "{} guest memory files for {} memory segments",
            fds.memory.len(),
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
    // QEMU opens its inherited memfd again through /proc: the same shared file.
    for (i, (mib, fd)) in segments.iter().zip(&fds.memory).enumerate() {
        push(&[
            "-object",
            &format!(
                "memory-backend-file,id={},size={mib}M,mem-path=/proc/self/fd/{fd},share=on",
                memdev(i),
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
    push(&[
        "-append",
        &kernel_cmdline(&cfg.cmdline_extra, tsc_khz, cfg.accel),
    ]);
    // A socket chardev given `fd=` uses it as an already connected client socket.
    let sock = |id: &str, fd: RawFd| format!("socket,id={id},fd={fd}");
    push(&[
        "-chardev",
        &sock("qmp", fds.qmp),
        "-mon",
        "chardev=qmp,mode=control",
    ]);
    push(&[
        "-chardev",
        &sock("com1", fds.com1),
        "-serial",
        "chardev:com1",
    ]);
    // microvm creates only COM1 itself; COM2 is an explicit ISA UART at the standard port.
    push(&[
        "-chardev",
        &sock("com2", fds.com2),
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
        &sock("vcon", fds.console),
        "-device",
        "virtconsole,chardev=vcon,bus=vser0.0,nr=0",
    ]);
    push(&[
        "-chardev",
        &sock("vbulk", fds.bulk),
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
    use crate::config::TcgThreads;
    use ktstr_topology::{DistanceMatrix, NumaTopology, Topology};

    fn shape(text: &str) -> NumaTopology {
        let t: Topology = text.parse().expect(text);
        t.to_numa().expect(text)
    }

    fn fds() -> RunFds {
        RunFds {
            qmp: 10,
            com1: 11,
            com2: 12,
            console: 13,
            bulk: 14,
            memory: vec![20],
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
        let a = joined(&build_args(&c, &fds(), Some(2_445_406)).unwrap());
        for want in [
            "-machine microvm,rtc=on,memory-backend=mem",
            "-accel tcg,thread=single -cpu max",
            "-smp 2 -m 256M",
            "-object memory-backend-file,id=mem,size=256M,mem-path=/proc/self/fd/20,share=on",
            "-kernel /k/bzImage -initrd /k/initrd",
            "-append console=ttyS0 reboot=t panic=-1 tsc_early_khz=2445406 tsc=reliable quiet -chardev",
            "-chardev socket,id=qmp,fd=10 -mon chardev=qmp,mode=control",
            "-chardev socket,id=com1,fd=11 -serial chardev:com1",
            "-chardev socket,id=com2,fd=12 -device isa-serial,chardev=com2,iobase=0x2f8,irq=3",
            "-chardev socket,id=vcon,fd=13 -device virtconsole,chardev=vcon,bus=vser0.0,nr=0",
            "-chardev socket,id=vbulk,fd=14 -device virtserialport,chardev=vbulk,bus=vser0.0,nr=1,name=ktstr.bulk",
            "-no-reboot -S",
        ] {
            assert!(a.contains(want), "missing `{want}` in {a}");
        }
    }

    #[test]
    fn multi_threaded_tcg_only_when_asked() {
        let mut c = QemuConfig::new("/k/bzImage");
        c.tcg_threads = TcgThreads::Multi;
        let a = joined(&build_args(&c, &fds(), None).unwrap());
        assert!(a.contains("-accel tcg,thread=multi -cpu max"), "{a}");
        // KVM has no TCG threads: the option does not leak into its -accel.
        c.accel = Accel::Kvm;
        let a = joined(&build_args(&c, &fds(), None).unwrap());
        assert!(a.contains("-accel kvm -cpu host"), "{a}");
        assert!(!a.contains("thread="), "{a}");
    }

    #[test]
    fn kvm_topology_and_no_tsc() {
        let mut c = QemuConfig::new("/k/vmlinux");
        c.accel = Accel::Kvm;
        c.topology = Some(shape("2n2l2c1t"));
        c.extra_qemu_args = vec!["-d".into(), "guest_errors".into()];
        let mut p = fds();
        p.memory = vec![20, 21];
        let a = joined(&build_args(&c, &p, None).unwrap());
        assert!(a.contains("-accel kvm -cpu host"), "{a}");
        assert!(a.contains("-smp 4,sockets=2,cores=2,threads=1"), "{a}");
        assert!(!a.contains("tsc_early_khz"), "{a}");
        assert!(!a.contains("tsc=reliable"), "{a}");
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
        let mut p = fds();
        p.memory = vec![20, 21];
        let a = joined(&build_args(&c, &p, None).unwrap());
        for want in [
            "-machine q35 ",
            "-cpu max,vendor=GenuineIntel",
            "-smp 2,sockets=2,cores=1,threads=1",
            "memory-backend-file,id=mem0,size=128M,mem-path=/proc/self/fd/20,share=on",
            "memory-backend-file,id=mem1,size=128M,mem-path=/proc/self/fd/21,share=on",
            "-numa node,nodeid=0,cpus=0,memdev=mem0 -numa node,nodeid=1,cpus=1,memdev=mem1",
            "-numa dist,src=0,dst=1,val=21 -numa dist,src=1,dst=0,val=21",
            "virtio-serial-pci,id=vser0",
        ] {
            assert!(a.contains(want), "missing `{want}` in {a}");
        }
        // One file for two nodes is a caller bug, reported rather than half-used.
        assert!(matches!(
            build_args(&c, &fds(), None),
            Err(Error::InvalidConfig(_))
        ));
    }

    #[test]
    fn every_inherited_fd_is_named_and_no_path_is() {
        let c = QemuConfig::new("/k/bzImage");
        let f = fds();
        let a = joined(&build_args(&c, &f, None).unwrap());
        for fd in f.all() {
            assert!(
                a.contains(&format!("fd={fd} ")) || a.contains(&format!("/proc/self/fd/{fd},")),
                "fd {fd} unused in {a}"
            );
        }
        // Nothing QEMU creates or opens by name: no socket paths, no RAM file.
        assert!(!a.contains("path=/tmp") && !a.contains("/dev/shm"), "{a}");
        assert_eq!(f.all(), [10, 11, 12, 13, 14, 20]);
    }
}
