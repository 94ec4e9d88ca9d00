//! One reading of every CPU's run queue, plus sched_ext's global state.

use std::time::Duration;

use serde::Serialize;

use crate::memory::le_uint;
use crate::{GuestMemoryReader, Monitor, ReadError};

/// More tasks than the kernel can have (PID_MAX_LIMIT): a torn read.
const PLAUSIBLE_TASKS: u64 = 4 * 1024 * 1024;

/// How many entries of a CPU's sched_ext runnable list one sample walks
/// looking for the longest-waiting task: tasks are appended as they become
/// runnable, so it is at or near the head.
const RUNNABLE_WALK: usize = 8;

/// A task a CPU was running, or one waiting on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CurrentTask {
    pub pid: i32,
    pub comm: String,
}

/// The sched_ext task that had waited longest on a CPU's runnable list
/// (runnable, not running).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WaitingTask {
    #[serde(flatten)]
    pub task: CurrentTask,
    /// `scx.runnable_at`: the guest's jiffies when it became runnable.
    /// The same value in two samples means it has not run in between.
    pub since_jiffies: u64,
    /// How long it had waited at this sample, in the guest's time (its
    /// jiffies since `since_jiffies`): what sched_ext's watchdog measures.
    /// `None` where the kernel's tick length or jiffies could not be read.
    pub waited_ms: Option<u64>,
}

/// One CPU's run queue at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CpuSample {
    /// `rq.nr_running`: runnable tasks of every class, the running one included.
    pub nr_running: u32,
    /// `rq.scx.nr_running`: of those, sched_ext's (kernels with sched_ext).
    pub scx_nr_running: Option<u32>,
    /// `rq.clock`, ns: advances while the CPU does scheduler work.
    pub clock_ns: u64,
    /// `rq.scx.local_dsq.nr`: the local dispatch queue's depth.
    pub local_dsq_depth: Option<u32>,
    pub curr: CurrentTask,
    /// The longest-waiting runnable sched_ext task, if any (and readable).
    pub waiting: Option<WaitingTask>,
}

/// sched_ext's global state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ScxStatus {
    /// The enable state's enumerator name (e.g. `SCX_OPS_ENABLED`).
    pub state: Option<String>,
    /// The root scheduler's name, while one is loaded.
    pub ops_name: Option<String>,
}

impl ScxStatus {
    /// A BPF scheduler is running.
    pub fn enabled(&self) -> bool {
        self.state
            .as_deref()
            .is_some_and(|s| s.ends_with("_ENABLED"))
    }
}

/// Every CPU at (nearly) one moment: the reads race with the guest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Since the monitor attached.
    #[serde(rename = "at_ms", serialize_with = "crate::serde_ms")]
    pub at: Duration,
    /// The guest's `jiffies` (`None` if it could not be read).
    pub jiffies: Option<u64>,
    /// By CPU number; `None` where the read failed or looked torn.
    pub cpus: Vec<Option<CpuSample>>,
    pub scx: ScxStatus,
    /// CPUs dropped from this sample as unreadable or implausible.
    pub torn: u32,
}

impl Sample {
    /// Drops CPUs whose clock ran backwards since `prev` (a torn read of
    /// one of the two), counting them as torn.
    pub fn drop_backwards_clocks(&mut self, prev: &Sample) {
        for (now, before) in self.cpus.iter_mut().zip(&prev.cpus) {
            if let (Some(n), Some(b)) = (now.as_ref(), before) {
                if n.clock_ns < b.clock_ns {
                    *now = None;
                    self.torn += 1;
                }
            }
        }
    }
}

pub(crate) fn take(m: &Monitor, mem: &dyn GuestMemoryReader) -> Sample {
    let at = m.started.elapsed();
    let sym = &m.vmlinux.symbols;
    let jiffies = m
        .space
        .read_uint(mem, sym.jiffies.wrapping_add(m.shift), 8)
        .ok();
    let mut torn = 0;
    let cpus = (0..m.rqs.len())
        .map(|cpu| match read_cpu(m, mem, cpu) {
            Ok(Some(mut s)) => {
                if let Some(w) = &mut s.waiting {
                    w.waited_ms = waited_ms(m, jiffies, w.since_jiffies);
                }
                Some(s)
            }
            Ok(None) => {
                torn += 1;
                None
            }
            Err(e) => {
                tracing::trace!(cpu, "unreadable run queue: {e}");
                torn += 1;
                None
            }
        })
        .collect();
    Sample {
        at,
        jiffies,
        cpus,
        scx: read_scx(m, mem),
        torn,
    }
}

/// Guest milliseconds from jiffy `since` to jiffy `now`; `None` when
/// either is unknown or `since` is later (a torn read).
fn waited_ms(m: &Monitor, now: Option<u64>, since: u64) -> Option<u64> {
    // Jiffies wrap: the difference as the kernel's time_after() takes it.
    let jiffies = u64::try_from(now?.wrapping_sub(since) as i64).ok()?;
    Some(jiffies.saturating_mul(m.tick_ns?) / 1_000_000)
}

/// `Ok(None)`: read, but implausible.
fn read_cpu(
    m: &Monitor,
    mem: &dyn GuestMemoryReader,
    cpu: usize,
) -> Result<Option<CpuSample>, ReadError> {
    let layout = &m.vmlinux.layout;
    let (start, end) = layout.rq_span();
    let mut rq = vec![0u8; end - start];
    m.space
        .read_virt(mem, m.rqs[cpu].wrapping_add(start as u64), &mut rq)?;
    let field = |f: crate::btf::Field| le_uint(&rq[f.offset - start..f.end() - start]);
    let nr_running = field(layout.rq.nr_running);
    let scx_nr_running = layout.rq.scx.as_ref().map(|s| field(s.nr_running));
    let local_dsq_depth = layout.rq.scx.as_ref().map(|s| field(s.local_dsq_nr));
    let curr_ptr = field(layout.rq.curr);
    let too_many = |n: u64| n > PLAUSIBLE_TASKS;
    if too_many(nr_running)
        || scx_nr_running.is_some_and(too_many)
        || local_dsq_depth.is_some_and(too_many)
        || curr_ptr == 0
    {
        return Ok(None);
    }
    let Some(curr) = read_task(m, mem, curr_ptr)? else {
        return Ok(None);
    };
    let waiting = layout
        .rq
        .scx
        .as_ref()
        .and_then(|s| read_waiting(m, mem, cpu, field(s.runnable_first)).transpose())
        .and_then(|w| {
            // The list changes under us: a torn walk loses this field only.
            w.inspect_err(|e| tracing::trace!(cpu, "unreadable runnable list: {e}"))
                .ok()
        });
    // The plausibility bound above keeps each count within u32.
    Ok(Some(CpuSample {
        nr_running: nr_running as u32,
        scx_nr_running: scx_nr_running.map(|n| n as u32),
        clock_ns: field(layout.rq.clock),
        local_dsq_depth: local_dsq_depth.map(|n| n as u32),
        curr,
        waiting,
    }))
}

/// The task on `cpu`'s sched_ext runnable list (first entry `first`) that
/// became runnable earliest, among the first [`RUNNABLE_WALK`].
fn read_waiting(
    m: &Monitor,
    mem: &dyn GuestMemoryReader,
    cpu: usize,
    first: u64,
) -> Result<Option<WaitingTask>, ReadError> {
    let layout = &m.vmlinux.layout;
    let (Some(rq), Some(t)) = (&layout.rq.scx, &layout.task.scx) else {
        return Ok(None);
    };
    let head = m.rqs[cpu].wrapping_add(rq.runnable_list.offset as u64);
    let next_in_node = (t.runnable_next.offset - t.runnable_node.offset) as u64;
    let mut node = first;
    let mut oldest: Option<(u64, u64)> = None;
    for _ in 0..RUNNABLE_WALK {
        if node == head || node == 0 {
            break;
        }
        let task = node.wrapping_sub(t.runnable_node.offset as u64);
        let at = m.space.read_uint(
            mem,
            task.wrapping_add(t.runnable_at.offset as u64),
            t.runnable_at.size,
        )?;
        // Jiffies wrap: compare as the kernel's time_before() does.
        if oldest.is_none_or(|(_, o)| (at.wrapping_sub(o) as i64) < 0) {
            oldest = Some((task, at));
        }
        node = m
            .space
            .read_uint(mem, node.wrapping_add(next_in_node), t.runnable_next.size)?;
    }
    let Some((task, since_jiffies)) = oldest else {
        return Ok(None);
    };
    Ok(read_task(m, mem, task)?.map(|task| WaitingTask {
        task,
        since_jiffies,
        waited_ms: None,
    }))
}

/// `task` comes from a racy read of `rq.curr`: any value, hence the
/// wrapping arithmetic (a wild pointer is a failed translation, not a panic).
fn read_task(
    m: &Monitor,
    mem: &dyn GuestMemoryReader,
    task: u64,
) -> Result<Option<CurrentTask>, ReadError> {
    let t = &m.vmlinux.layout.task;
    let pid = m
        .space
        .read_uint(mem, task.wrapping_add(t.pid.offset as u64), t.pid.size)? as u32
        as i32;
    let mut comm = vec![0u8; t.comm.size];
    m.space
        .read_virt(mem, task.wrapping_add(t.comm.offset as u64), &mut comm)?;
    if pid < 0 {
        return Ok(None);
    }
    Ok(Some(CurrentTask {
        pid,
        comm: c_string(&comm),
    }))
}

fn read_scx(m: &Monitor, mem: &dyn GuestMemoryReader) -> ScxStatus {
    let sym = &m.vmlinux.symbols;
    let layout = &m.vmlinux.layout;
    let state = sym.scx_enable_state.and_then(|at| {
        // An atomic_t: a 4-byte int.
        let v = m.space.read_uint(mem, at.wrapping_add(m.shift), 4).ok()? as u32 as i32;
        layout
            .enable_states
            .iter()
            .find(|(n, _)| *n == i64::from(v))
            .map(|(_, name)| name.clone())
    });
    let ops_name = sym.scx_ops.zip(layout.ops_name).and_then(|(ops, f)| {
        let mut name = vec![0u8; f.size];
        let at = ops.wrapping_add(m.shift).wrapping_add(f.offset as u64);
        m.space.read_virt(mem, at, &mut name).ok()?;
        Some(c_string(&name)).filter(|s| !s.is_empty())
    });
    ScxStatus { state, ops_name }
}

/// A NUL-terminated C string in a fixed array.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(clock_ns: u64) -> Option<CpuSample> {
        Some(CpuSample {
            nr_running: 1,
            scx_nr_running: None,
            clock_ns,
            local_dsq_depth: None,
            curr: CurrentTask {
                pid: 1,
                comm: "init".into(),
            },
            waiting: None,
        })
    }

    #[test]
    fn a_clock_that_runs_backwards_is_dropped_as_torn() {
        let prev = Sample {
            at: Duration::ZERO,
            jiffies: Some(1),
            cpus: vec![cpu(100), cpu(100)],
            scx: ScxStatus::default(),
            torn: 0,
        };
        let mut now = Sample {
            cpus: vec![cpu(90), cpu(100)],
            ..prev.clone()
        };
        now.drop_backwards_clocks(&prev);
        assert_eq!(now.cpus, vec![None, cpu(100)]);
        assert_eq!(now.torn, 1);
    }

    #[test]
    fn c_strings_stop_at_the_first_nul() {
        assert_eq!(c_string(b"spin\0\0junk"), "spin");
        assert_eq!(c_string(b"full"), "full");
    }

    #[test]
    fn enabled_is_the_enabled_state_only() {
        let s = |n: &str| ScxStatus {
            state: Some(n.into()),
            ops_name: None,
        };
        assert!(s("SCX_OPS_ENABLED").enabled());
        assert!(!s("SCX_OPS_ENABLING").enabled());
        assert!(!s("SCX_OPS_DISABLED").enabled());
        assert!(!ScxStatus::default().enabled());
    }
}
