//! Detectors over a series of samples. Each fires only when its condition
//! holds for a run of consecutive samples, so one torn or unlucky reading
//! raises nothing. A CPU missing from a sample breaks its runs.

use std::time::Duration;

use serde::Serialize;

use crate::{CpuSample, CurrentTask, Sample};

/// When each detector fires. Runs are counted in samples, so at the
/// default 100 ms period `stall_samples: 20` is two seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    /// Consecutive samples with the same rq clock and runnable tasks.
    pub stall_samples: usize,
    /// A sched_ext task seen waiting, never run, in consecutive samples is
    /// a stall once it has waited this long in the guest's own time (as
    /// sched_ext's watchdog measures it), however few samples that took:
    /// when the guest's clock outruns the host's, 20 host samples can come
    /// after the watchdog's kick.
    pub stall_wait_ms: u64,
    /// A local DSQ deeper than this ...
    pub dsq_depth: u32,
    /// ... for this many consecutive samples.
    pub dsq_samples: usize,
    /// The busiest CPU has at least this many times the runnable tasks of
    /// the idlest (counted as at least 1) ...
    pub imbalance_ratio: f64,
    /// ... and at least this many runnable tasks ...
    pub imbalance_min_tasks: u32,
    /// ... for this many consecutive samples.
    pub imbalance_samples: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            stall_samples: 20,
            // 40% of sched_ext's shortest common watchdog timeout (5 s,
            // scx_qmap's): found well before the kick.
            stall_wait_ms: 2_000,
            dsq_depth: 32,
            dsq_samples: 10,
            imbalance_ratio: 4.0,
            imbalance_min_tasks: 4,
            imbalance_samples: 20,
        }
    }
}

/// Something a detector saw.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "detector", rename_all = "snake_case")]
pub enum Finding {
    /// The CPU had runnable tasks but did not run them (see [`StallKind`])
    /// while the guest's jiffies advanced.
    Stall {
        cpu: usize,
        kind: StallKind,
        #[serde(rename = "from_ms", serialize_with = "crate::serde_ms")]
        from: Duration,
        samples: usize,
        nr_running: u32,
        /// The task current when the stall began.
        curr: CurrentTask,
        /// [`StallKind::TaskWaiting`]: the task that waited.
        waiting: Option<CurrentTask>,
    },
    /// The CPU's local dispatch queue stayed deeper than the limit.
    DeepLocalDsq {
        cpu: usize,
        #[serde(rename = "from_ms", serialize_with = "crate::serde_ms")]
        from: Duration,
        samples: usize,
        max_depth: u32,
    },
    /// Runnable tasks stayed unevenly spread across CPUs.
    Imbalance {
        #[serde(rename = "from_ms", serialize_with = "crate::serde_ms")]
        from: Duration,
        samples: usize,
        /// (CPU, nr_running) of the busiest and idlest CPU when it began.
        busiest: (usize, u32),
        idlest: (usize, u32),
    },
}

/// Runs of `true` at least `min` long: (first index, length).
fn runs(cond: impl Iterator<Item = bool>, min: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    let mut push = |s: usize, end: usize| {
        if end - s >= min.max(1) {
            out.push((s, end - s));
        }
    };
    let mut len = 0;
    for (i, c) in cond.enumerate() {
        len = i + 1;
        match (c, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                push(s, i);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        push(s, len);
    }
    out
}

fn cpus(samples: &[Sample]) -> usize {
    samples.iter().map(|s| s.cpus.len()).max().unwrap_or(0)
}

/// Every finding in `samples`, in detector order, then by CPU and time.
pub fn detect(samples: &[Sample], t: &Thresholds) -> Vec<Finding> {
    let mut out = stalls(samples, t);
    out.extend(deep_dsqs(samples, t));
    out.extend(imbalance(samples, t));
    out
}

/// How a CPU with runnable tasks failed to run them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StallKind {
    /// Its rq clock stood still: the CPU does no scheduler work at all
    /// (wedged with interrupts off, or stuck in the scheduler).
    ClockStopped,
    /// It ran its idle task (pid 0) while tasks were queued on it: the
    /// scheduler does not hand them over (what sched_ext's watchdog
    /// calls a runnable task stall).
    IdleWhileRunnable,
    /// The same sched_ext task stayed first in line on its runnable list,
    /// never run, while the CPU ran others (what sched_ext's watchdog
    /// checks, seen from the host before its timeout).
    TaskWaiting,
}

impl StallKind {
    /// Most telling first: where runs of two kinds overlap on one CPU
    /// (an idle CPU whose queued task waits is both), only the first is
    /// reported. A stopped clock says the CPU does nothing at all; a
    /// waiting task names who starves.
    const BY_PRECEDENCE: [StallKind; 3] = [
        StallKind::ClockStopped,
        StallKind::TaskWaiting,
        StallKind::IdleWhileRunnable,
    ];
}

/// Sample `i` continues a stall on `cpu` when it and sample `i - 1` both
/// show runnable tasks stuck as `kind` says, and the guest's jiffies
/// advanced in between. An idle CPU (nr_running 0) stops its tick and its
/// clock legitimately; a guest that is not running at all (paused, or its
/// vCPUs not scheduled by the host) does not advance jiffies. A stall of
/// N samples is N - 1 such continuations after the first.
fn stalls(samples: &[Sample], t: &Thresholds) -> Vec<Finding> {
    let mut out = Vec::new();
    for cpu in 0..cpus(samples) {
        // Sample index ranges already reported on this CPU.
        let mut reported: Vec<std::ops::Range<usize>> = Vec::new();
        for kind in StallKind::BY_PRECEDENCE {
            let stuck = |x: &CpuSample, y: &CpuSample| {
                let runnable = x.nr_running > 0 && y.nr_running > 0;
                runnable
                    && match kind {
                        StallKind::ClockStopped => x.clock_ns == y.clock_ns,
                        StallKind::IdleWhileRunnable => x.curr.pid == 0 && y.curr.pid == 0,
                        // The same task, runnable since the same jiffy: it
                        // has not run in between (how long it waited grows).
                        StallKind::TaskWaiting => match (&x.waiting, &y.waiting) {
                            (Some(a), Some(b)) => {
                                a.task == b.task && a.since_jiffies == b.since_jiffies
                            }
                            _ => false,
                        },
                    }
            };
            let continues = std::iter::once(false).chain(samples.windows(2).map(|w| {
                let (a, b) = (&w[0], &w[1]);
                let (Some(Some(x)), Some(Some(y))) = (a.cpus.get(cpu), b.cpus.get(cpu)) else {
                    return false;
                };
                let guest_ran = matches!((a.jiffies, b.jiffies), (Some(ja), Some(jb)) if jb > ja);
                guest_ran && stuck(x, y)
            }));
            let long_enough = |first: usize, len: usize| {
                len + 1 >= t.stall_samples
                    || kind == StallKind::TaskWaiting
                        && waited_ms(&samples[first + len - 1], cpu) >= t.stall_wait_ms
            };
            for (first, len) in runs(continues, 1) {
                if !long_enough(first, len) {
                    continue;
                }
                let start = first - 1;
                let span = start..first + len;
                if reported
                    .iter()
                    .any(|r| r.start < span.end && span.start < r.end)
                {
                    continue;
                }
                reported.push(span);
                if let Some(Some(c)) = samples[start].cpus.get(cpu) {
                    out.push(Finding::Stall {
                        cpu,
                        kind,
                        from: samples[start].at,
                        samples: len + 1,
                        nr_running: c.nr_running,
                        curr: c.curr.clone(),
                        waiting: match kind {
                            StallKind::TaskWaiting => c.waiting.as_ref().map(|w| w.task.clone()),
                            _ => None,
                        },
                    });
                }
            }
        }
    }
    out
}

/// How long `cpu`'s waiting task had waited at sample `s` (0 if unknown).
fn waited_ms(s: &Sample, cpu: usize) -> u64 {
    s.cpus
        .get(cpu)
        .and_then(|c| c.as_ref()?.waiting.as_ref()?.waited_ms)
        .unwrap_or(0)
}

fn deep_dsqs(samples: &[Sample], t: &Thresholds) -> Vec<Finding> {
    let mut out = Vec::new();
    for cpu in 0..cpus(samples) {
        let depth = |s: &Sample| s.cpus.get(cpu)?.as_ref()?.local_dsq_depth;
        let deep = samples
            .iter()
            .map(|s| depth(s).is_some_and(|d| d > t.dsq_depth));
        for (start, len) in runs(deep, t.dsq_samples) {
            let run = &samples[start..start + len];
            out.push(Finding::DeepLocalDsq {
                cpu,
                from: samples[start].at,
                samples: len,
                max_depth: run.iter().filter_map(depth).max().unwrap_or(0),
            });
        }
    }
    out
}

/// Busiest and idlest readable CPUs of a sample.
fn extremes(s: &Sample) -> Option<((usize, u32), (usize, u32))> {
    let readable = || {
        s.cpus
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((i, c.as_ref()?.nr_running)))
    };
    let busiest = readable().max_by_key(|&(i, n)| (n, std::cmp::Reverse(i)))?;
    let idlest = readable().min_by_key(|&(i, n)| (n, i))?;
    Some((busiest, idlest))
}

fn imbalance(samples: &[Sample], t: &Thresholds) -> Vec<Finding> {
    let uneven = samples.iter().map(|s| {
        extremes(s).is_some_and(|((_, max), (_, min))| {
            max >= t.imbalance_min_tasks
                && f64::from(max) >= t.imbalance_ratio * f64::from(min.max(1))
        })
    });
    runs(uneven, t.imbalance_samples)
        .into_iter()
        .filter_map(|(start, len)| {
            let (busiest, idlest) = extremes(&samples[start])?;
            Some(Finding::Imbalance {
                from: samples[start].at,
                samples: len,
                busiest,
                idlest,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ScxStatus;

    /// (nr_running, clock, local DSQ depth) per CPU; `None`: torn.
    type Cpu = Option<(u32, u64, u32)>;

    fn series<C: AsRef<[Cpu]>>(rows: &[(u64, C)]) -> Vec<Sample> {
        rows.iter()
            .enumerate()
            .map(|(i, (jiffies, cpus))| Sample {
                at: Duration::from_millis(100 * i as u64),
                jiffies: Some(*jiffies),
                cpus: cpus
                    .as_ref()
                    .iter()
                    .map(|c| {
                        c.map(|(nr_running, clock_ns, depth)| CpuSample {
                            nr_running,
                            scx_nr_running: Some(nr_running),
                            clock_ns,
                            local_dsq_depth: Some(depth),
                            curr: CurrentTask {
                                pid: 100,
                                comm: "spin".into(),
                            },
                            waiting: None,
                        })
                    })
                    .collect(),
                scx: ScxStatus::default(),
                torn: 0,
            })
            .collect()
    }

    fn few(stall_samples: usize) -> Thresholds {
        Thresholds {
            stall_samples,
            dsq_samples: 3,
            imbalance_samples: 3,
            ..Thresholds::default()
        }
    }

    #[test]
    fn runs_finds_long_enough_runs_including_one_at_the_end() {
        let c = [true, true, false, true, false, true, true, true];
        assert_eq!(runs(c.into_iter(), 2), vec![(0, 2), (5, 3)]);
        assert_eq!(runs(c.into_iter(), 3), vec![(5, 3)]);
        assert_eq!(runs([false; 3].into_iter(), 1), vec![]);
    }

    #[test]
    fn a_frozen_clock_with_runnable_tasks_is_a_stall_naming_the_cpu_and_start() {
        // CPU 1 freezes at sample 1 with 3 runnable tasks; CPU 0 keeps going.
        let s = series(&[
            (10, &[Some((1, 100, 0)), Some((3, 500, 0))]),
            (20, &[Some((1, 200, 0)), Some((3, 600, 0))]),
            (30, &[Some((1, 300, 0)), Some((3, 600, 0))]),
            (40, &[Some((1, 400, 0)), Some((3, 600, 0))]),
            (50, &[Some((1, 500, 0)), Some((3, 600, 0))]),
        ]);
        let f = detect(&s, &few(4));
        assert_eq!(
            f,
            vec![Finding::Stall {
                cpu: 1,
                kind: StallKind::ClockStopped,
                from: Duration::from_millis(100),
                samples: 4,
                nr_running: 3,
                curr: CurrentTask {
                    pid: 100,
                    comm: "spin".into()
                },
                waiting: None,
            }]
        );
        // One sample short of the threshold: nothing.
        assert_eq!(detect(&s, &few(5)), vec![]);
    }

    #[test]
    fn idle_cpus_paused_guests_and_torn_samples_raise_no_stall() {
        // CPU 0 idle (nr_running 0) with a frozen clock: NO_HZ idle.
        let idle = series(&[(10, &[Some((0, 7, 0))]); 6]);
        assert_eq!(detect(&idle, &few(3)), vec![]);
        // Runnable tasks and a frozen clock, but jiffies frozen too: the
        // whole guest was not running (paused, or not scheduled by the host).
        let paused = series(&[(10, &[Some((2, 7, 0))]); 6]);
        assert_eq!(detect(&paused, &few(3)), vec![]);
        // A torn sample in the middle breaks the run.
        let torn = series(&[
            (10, &[Some((2, 7, 0))]),
            (20, &[Some((2, 7, 0))]),
            (30, &[None]),
            (40, &[Some((2, 7, 0))]),
            (50, &[Some((2, 7, 0))]),
        ]);
        assert_eq!(detect(&torn, &few(3)), vec![]);
    }

    #[test]
    fn runnable_tasks_on_a_cpu_that_keeps_running_idle_are_a_stall() {
        // CPU 0's clock advances (its tick runs) but it runs its idle task
        // with 2 tasks queued.
        let busy: [Cpu; 1] = [Some((2, 0, 0))];
        let mut s = series(&[(10, &busy), (20, &busy), (30, &busy), (40, &busy)]);
        let swapper = CurrentTask {
            pid: 0,
            comm: "swapper/0".into(),
        };
        for (i, sample) in s.iter_mut().enumerate() {
            let c = sample.cpus[0].as_mut().expect("cpu 0");
            c.clock_ns = 100 * i as u64;
            c.curr = swapper.clone();
        }
        assert_eq!(
            detect(&s, &few(4)),
            vec![Finding::Stall {
                cpu: 0,
                kind: StallKind::IdleWhileRunnable,
                from: Duration::ZERO,
                samples: 4,
                nr_running: 2,
                curr: swapper.clone(),
                waiting: None,
            }]
        );
        // A task ran in between: the queued work was served.
        let mut served = s.clone();
        served[2].cpus[0].as_mut().expect("cpu 0").curr.pid = 100;
        assert_eq!(detect(&served, &few(3)), vec![]);
        // Idle with nothing queued is just idle.
        for sample in &mut s {
            sample.cpus[0].as_mut().expect("cpu 0").nr_running = 0;
        }
        assert_eq!(detect(&s, &few(2)), vec![]);
    }

    #[test]
    fn a_task_first_in_line_across_samples_is_a_stall_naming_it() {
        // CPU 0 keeps running "spin" (its clock advances) while the same
        // task waits, never run, since jiffy 5.
        let busy: [Cpu; 1] = [Some((2, 0, 0))];
        let mut s = series(&[(10, &busy), (20, &busy), (30, &busy), (40, &busy)]);
        let waiter = CurrentTask {
            pid: 7,
            comm: "stalled".into(),
        };
        for (i, sample) in s.iter_mut().enumerate() {
            let c = sample.cpus[0].as_mut().expect("cpu 0");
            c.clock_ns = 100 * i as u64;
            c.waiting = Some(crate::WaitingTask {
                task: waiter.clone(),
                since_jiffies: 5,
                waited_ms: None,
            });
        }
        let found = detect(&s, &few(4));
        assert!(
            matches!(&found[..], [Finding::Stall { cpu: 0, kind: StallKind::TaskWaiting, samples: 4, waiting: Some(w), .. }] if *w == waiter),
            "{found:?}"
        );
        // Idle while it waits: one finding, the one naming the task.
        let mut idle = s.clone();
        for sample in &mut idle {
            sample.cpus[0].as_mut().expect("cpu 0").curr.pid = 0;
        }
        let found = detect(&idle, &few(4));
        assert!(
            matches!(
                &found[..],
                [Finding::Stall {
                    kind: StallKind::TaskWaiting,
                    ..
                }]
            ),
            "{found:?}"
        );
        // It ran and became runnable again (a new runnable_at): no stall.
        s[2].cpus[0].as_mut().expect("cpu 0").waiting = Some(crate::WaitingTask {
            task: waiter.clone(),
            since_jiffies: 25,
            waited_ms: None,
        });
        assert_eq!(detect(&s, &few(3)), vec![]);
    }

    #[test]
    fn a_task_waiting_long_in_guest_time_is_a_stall_in_few_samples() {
        // Three samples (far fewer than stall_samples) in which the guest's
        // clock ran fast: the task had waited 0.4, 1.2 and 2.1 guest seconds.
        let busy: [Cpu; 1] = [Some((2, 0, 0))];
        let mut s = series(&[(10, &busy), (90, &busy), (180, &busy)]);
        let waiter = CurrentTask {
            pid: 16,
            comm: "rcu_sched".into(),
        };
        for (sample, waited) in s.iter_mut().zip([400, 1200, 2100]) {
            let c = sample.cpus[0].as_mut().expect("cpu 0");
            c.waiting = Some(crate::WaitingTask {
                task: waiter.clone(),
                since_jiffies: 0,
                waited_ms: Some(waited),
            });
        }
        let t = Thresholds::default();
        let found = detect(&s, &t);
        assert!(
            matches!(&found[..], [Finding::Stall { cpu: 0, kind: StallKind::TaskWaiting, samples: 3, from, .. }] if from.is_zero()),
            "{found:?}"
        );
        // 1.2 s so far: not yet.
        assert_eq!(detect(&s[..2], &t), vec![]);
        // The guest's time unknown: the sample count decides, as before.
        for sample in &mut s {
            let c = sample.cpus[0].as_mut().expect("cpu 0");
            c.waiting.as_mut().expect("waiting").waited_ms = None;
        }
        assert_eq!(detect(&s, &t), vec![]);
    }

    #[test]
    fn a_sustained_deep_local_dsq_is_found_a_brief_one_is_not() {
        let t = few(100);
        let deep = |d: u32| -> [Cpu; 1] { [Some((1, 0, d))] };
        let (a, b, c) = (deep(40), deep(50), deep(5));
        let s = series(&[(1, &a), (2, &b), (3, &a), (4, &c), (5, &b), (6, &b)]);
        assert_eq!(
            detect(&s, &t),
            vec![Finding::DeepLocalDsq {
                cpu: 0,
                from: Duration::ZERO,
                samples: 3,
                max_depth: 50
            }]
        );
    }

    #[test]
    fn imbalance_needs_the_ratio_the_minimum_and_the_duration() {
        let t = few(100);
        let uneven: [Cpu; 2] = [Some((8, 0, 0)), Some((1, 0, 0))];
        let s = series(&[(1, &uneven), (2, &uneven), (3, &uneven)]);
        assert_eq!(
            detect(&s, &t),
            vec![Finding::Imbalance {
                from: Duration::ZERO,
                samples: 3,
                busiest: (0, 8),
                idlest: (1, 1)
            }]
        );
        // 3 vs 0: ratio 3 (< 4), and below the 4-task minimum.
        let mild: [Cpu; 2] = [Some((3, 0, 0)), Some((0, 0, 0))];
        assert_eq!(detect(&series(&[(1, &mild); 5]), &t), vec![]);
        // Two samples only.
        assert_eq!(detect(&s[..2], &t), vec![]);
    }
}
