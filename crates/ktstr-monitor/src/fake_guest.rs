//! A synthetic guest for unit tests: a kernel image at a KASLR shift, one
//! run queue in the direct map and one in vmalloc space (reached through
//! page tables), tasks, and sched_ext's state, in a `Vec`.

use std::sync::Arc;
use std::time::Duration;

use crate::btf::Field;
use crate::layout::{KernelLayout, RqLayout, ScxRqLayout, ScxTaskLayout, TaskLayout};
use crate::memory::fake::VecMemory;
use crate::{AttachError, KernelSymbols, Monitor, Placement, SamplerHandle, Vmlinux};

const LINK_TEXT: u64 = 0xffff_ffff_8100_0000;
const SHIFT: u64 = 0x2e00_0000;
const IMAGE_PHYS: u64 = 0x10_0000;
const PAGE_OFFSET: u64 = 0xffff_8880_0000_0000;
const VMALLOC: u64 = 0xffff_c900_0000_0000;
/// `runqueues`: an offset in each CPU's per-CPU area.
const RUNQUEUES: u64 = 0x2f00;
const SYSCALL_ENTRY: u64 = LINK_TEXT + 0x80;

fn f(offset: usize, size: usize) -> Field {
    Field { offset, size }
}

fn vmlinux() -> Vmlinux {
    let sym = |off: u64| LINK_TEXT + off;
    Vmlinux {
        symbols: KernelSymbols {
            text: LINK_TEXT,
            end: sym(0x10_0000),
            page_offset_base: sym(0x1000),
            vmalloc_base: sym(0x1008),
            pgtable_l5_enabled: Some(sym(0x1010)),
            nr_cpu_ids: sym(0x1018),
            per_cpu_offset: sym(0x1020),
            jiffies: sym(0x1040),
            tick_nsec: Some(sym(0x1050)),
            scx_enable_state: Some(sym(0x1048)),
            scx_ops: Some(sym(0x1100)),
            init_top_pgt: sym(0x2000),
            runqueues: RUNQUEUES,
            entry_syscall_64: Some(SYSCALL_ENTRY),
        },
        layout: KernelLayout {
            rq: RqLayout {
                nr_running: f(4, 4),
                clock: f(16, 8),
                curr: f(24, 8),
                scx: Some(ScxRqLayout {
                    nr_running: f(32, 4),
                    local_dsq_nr: f(40, 4),
                    runnable_first: f(48, 8),
                    runnable_list: f(48, 16),
                }),
            },
            task: TaskLayout {
                pid: f(8, 4),
                comm: f(16, 16),
                scx: Some(ScxTaskLayout {
                    runnable_node: f(64, 16),
                    runnable_next: f(64, 8),
                    runnable_at: f(80, 8),
                }),
            },
            ops_name: Some(f(0, 8)),
            enable_states: vec![
                (1, "SCX_OPS_ENABLING".into()),
                (2, "SCX_OPS_ENABLED".into()),
            ],
        },
    }
}

/// Physical addresses of the two run queues.
const RQ0: u64 = 0x20_0000;
const RQ1: u64 = 0x30_0000;

fn memory() -> VecMemory {
    let mut m = VecMemory::new(0x40_0000);
    let img = |off: u64| IMAGE_PHYS + off;
    m.put_u64(img(0x1000), PAGE_OFFSET);
    m.put_u64(img(0x1008), VMALLOC);
    m.put(img(0x1010), &0u32.to_le_bytes());
    m.put(img(0x1018), &2u32.to_le_bytes());
    // CPU 0's area in the direct map, CPU 1's in vmalloc space.
    m.put_u64(img(0x1020), PAGE_OFFSET + RQ0 - RUNQUEUES);
    let rq1_va = VMALLOC + 0x4_5000;
    m.put_u64(img(0x1028), rq1_va - RUNQUEUES);
    m.put_u64(img(0x1040), 4242);
    // HZ=100.
    m.put_u64(img(0x1050), 10_000_000);
    m.put(img(0x1048), &2u32.to_le_bytes());
    m.put(img(0x1100), b"qmap\0\0\0\0");
    // 4-level tables from init_top_pgt (image + 0x2000) to rq1_va's page.
    let top = img(0x2000);
    let index = |shift: u32| ((rq1_va >> shift) & 0x1ff) * 8;
    m.put_u64(top + index(39), 0x3_1000 | 1);
    m.put_u64(0x3_1000 + index(30), 0x3_2000 | 1);
    m.put_u64(0x3_2000 + index(21), 0x3_3000 | 1);
    m.put_u64(0x3_3000 + index(12), RQ1 | 1);

    let task = |m: &mut VecMemory, at: u64, pid: u32, comm: &[u8]| {
        m.put(at + 8, &pid.to_le_bytes());
        m.put(at + 16, comm);
    };
    task(&mut m, 0x38_0000, 77, b"spin\0");
    task(&mut m, 0x38_1000, 0, b"swapper/1\0");
    let rq = |m: &mut VecMemory, at: u64, nr: u32, clock: u64, curr: u64, depth: u32| {
        m.put(at + 4, &nr.to_le_bytes());
        m.put_u64(at + 16, clock);
        m.put_u64(at + 24, PAGE_OFFSET + curr);
        m.put(at + 32, &nr.to_le_bytes());
        m.put(at + 40, &depth.to_le_bytes());
    };
    rq(&mut m, RQ0, 3, 1_000_000, 0x38_0000, 2);
    // CPU 0's runnable list: head -> "late" (runnable since jiffy 4100)
    // -> "waiter" (since 4000) -> head.
    task(&mut m, 0x38_2000, 90, b"waiter\0");
    task(&mut m, 0x38_3000, 91, b"late\0");
    let (head, waiter, late) = (
        PAGE_OFFSET + RQ0 + 48,
        PAGE_OFFSET + 0x38_2000 + 64,
        PAGE_OFFSET + 0x38_3000 + 64,
    );
    m.put_u64(RQ0 + 48, late);
    m.put_u64(0x38_3000 + 64, waiter);
    m.put_u64(0x38_3000 + 80, 4100);
    m.put_u64(0x38_2000 + 64, head);
    m.put_u64(0x38_2000 + 80, 4000);
    rq(&mut m, RQ1, 0, 2_000_000, 0x38_1000, 0);
    m
}

fn placement() -> Placement {
    Placement {
        text: LINK_TEXT + SHIFT,
        phys_base: IMAGE_PHYS,
    }
}

fn attach(m: &VecMemory) -> Monitor {
    Monitor::attach(Arc::new(vmlinux()), placement(), m).expect("attach")
}

#[test]
fn attach_finds_each_cpus_run_queue_and_a_sample_reads_them() {
    let m = memory();
    let mon = attach(&m);
    assert_eq!(mon.cpus(), 2);
    let s = mon.sample(&m);
    assert_eq!(s.torn, 0);
    assert_eq!(s.jiffies, Some(4242));
    let c0 = s.cpus[0].as_ref().expect("cpu 0");
    assert_eq!(
        (
            c0.nr_running,
            c0.scx_nr_running,
            c0.clock_ns,
            c0.local_dsq_depth
        ),
        (3, Some(3), 1_000_000, Some(2))
    );
    assert_eq!((c0.curr.pid, c0.curr.comm.as_str()), (77, "spin"));
    // The longest-waiting runnable task, not merely the first listed.
    let w = c0.waiting.as_ref().expect("cpu 0 has waiting tasks");
    assert_eq!(
        (w.task.pid, w.task.comm.as_str(), w.since_jiffies),
        (90, "waiter", 4000)
    );
    // 242 jiffies of 10 ms before the sample's 4242.
    assert_eq!(w.waited_ms, Some(2420));
    // CPU 1's rq is only reachable through the page tables.
    let c1 = s.cpus[1].as_ref().expect("cpu 1");
    assert_eq!((c1.nr_running, c1.clock_ns), (0, 2_000_000));
    assert_eq!(c1.curr.comm, "swapper/1");
    assert_eq!(c1.waiting, None);
    assert_eq!(s.scx.state.as_deref(), Some("SCX_OPS_ENABLED"));
    assert!(s.scx.enabled());
    assert_eq!(s.scx.ops_name.as_deref(), Some("qmap"));
}

#[test]
fn an_unreadable_or_implausible_cpu_is_counted_not_fatal() {
    let mut m = memory();
    // CPU 0's curr is NULL (torn); CPU 1's page is no longer mapped.
    m.put_u64(RQ0 + 24, 0);
    let mon = attach(&m);
    let top = IMAGE_PHYS + 0x2000;
    m.0[top as usize..top as usize + 4096].fill(0);
    let s = mon.sample(&m);
    assert_eq!(s.cpus, vec![None, None]);
    assert_eq!(s.torn, 2);
    // A wild curr near the top of the address space: a failed read, not
    // an arithmetic overflow.
    m.put_u64(RQ0 + 24, u64::MAX - 4);
    let s = mon.sample(&m);
    assert_eq!((s.cpus[0].as_ref(), s.torn), (None, 2));
}

#[test]
fn lstar_cross_check_accepts_the_same_shift_and_refuses_another() {
    let m = memory();
    let mon = attach(&m);
    assert!(mon.check_lstar(SYSCALL_ENTRY + SHIFT).is_ok());
    let e = mon.check_lstar(SYSCALL_ENTRY + SHIFT + 0x20_0000);
    assert!(
        matches!(e, Err(AttachError::KaslrMismatch { from_sys_ready, from_lstar })
            if from_sys_ready == SHIFT as i64 && from_lstar == (SHIFT + 0x20_0000) as i64),
        "{e:?}"
    );
}

#[test]
fn attach_refuses_an_implausible_cpu_count() {
    let mut m = memory();
    m.put(IMAGE_PHYS + 0x1018, &0u32.to_le_bytes());
    let e = Monitor::attach(Arc::new(vmlinux()), placement(), &m);
    assert!(matches!(e, Err(AttachError::CpuCount(0))), "{e:?}");
}

#[test]
fn the_sampler_thread_samples_at_its_period_until_stopped() {
    let m = Arc::new(memory());
    let mon = attach(&m);
    let period = Duration::from_millis(20);
    let started = std::time::Instant::now();
    let sampler = SamplerHandle::spawn(mon, Arc::clone(&m), period).expect("spawn");
    std::thread::sleep(Duration::from_millis(200));
    let rec = sampler.stop().expect("stop");
    let elapsed = started.elapsed();
    // One at once, then one per period at most (never a catch-up burst);
    // at least a few even on a loaded machine.
    let most = (elapsed.as_millis() / period.as_millis()) as usize + 1;
    assert!(
        (3..=most).contains(&rec.samples.len()),
        "{} samples in {elapsed:?}",
        rec.samples.len()
    );
    assert_eq!(rec.torn, 0);
    assert!(rec.samples.windows(2).all(|w| w[0].at < w[1].at));
    assert!(
        rec.samples
            .iter()
            .all(|s| s.cpus.iter().all(Option::is_some))
    );
}
