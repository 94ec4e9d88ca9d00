//! Every offset the monitor reads, resolved once from BTF. Nothing here
//! is a number written by hand: a kernel whose structs differ gets a
//! [`LoadError`] naming the struct and member.

use crate::LoadError;
use crate::btf::{Btf, Field};

/// `struct rq`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RqLayout {
    pub nr_running: Field,
    pub clock: Field,
    pub curr: Field,
    /// `rq.scx`, on kernels with sched_ext.
    pub scx: Option<ScxRqLayout>,
}

/// `struct scx_rq` inside `struct rq`, offsets from the start of the rq.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScxRqLayout {
    pub nr_running: Field,
    /// `scx.local_dsq.nr`: the local dispatch queue's depth.
    pub local_dsq_nr: Field,
    /// `scx.runnable_list.next`: the first of the CPU's runnable, not
    /// running sched_ext tasks (what the kernel's watchdog walks).
    pub runnable_first: Field,
    /// `scx.runnable_list`: the list head itself (an empty list points here).
    pub runnable_list: Field,
}

/// `struct sched_ext_entity` inside `struct task_struct`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScxTaskLayout {
    /// `scx.runnable_node`: the task's link in its rq's runnable list.
    pub runnable_node: Field,
    /// `scx.runnable_node.next`.
    pub runnable_next: Field,
    /// `scx.runnable_at`: jiffies when it last became runnable.
    pub runnable_at: Field,
}

/// `struct task_struct`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskLayout {
    pub pid: Field,
    pub comm: Field,
    /// `task_struct.scx`, on kernels with sched_ext.
    pub scx: Option<ScxTaskLayout>,
}

/// What the monitor reads, located.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KernelLayout {
    pub rq: RqLayout,
    pub task: TaskLayout,
    /// `struct sched_ext_ops.name`, where the kernel has it.
    pub ops_name: Option<Field>,
    /// sched_ext's enable states by value (`enum scx_ops_enable_state` in
    /// 6.12, `enum scx_enable_state` later); empty without sched_ext.
    pub enable_states: Vec<(i64, String)>,
}

impl KernelLayout {
    pub fn resolve(btf: &Btf) -> Result<Self, LoadError> {
        // A kernel without sched_ext has no `rq.scx`; one with it must have
        // every member below, or the error names the one missing.
        let scx = match btf.field("rq", "scx") {
            Ok(_) => Some(ScxRqLayout {
                nr_running: btf.int_field("rq", "scx.nr_running")?,
                local_dsq_nr: btf.int_field("rq", "scx.local_dsq.nr")?,
                runnable_first: btf.int_field("rq", "scx.runnable_list.next")?,
                runnable_list: btf.field("rq", "scx.runnable_list")?,
            }),
            Err(LoadError::MissingMember { .. }) => None,
            Err(e) => return Err(e),
        };
        let task_scx = match &scx {
            Some(_) => Some(ScxTaskLayout {
                runnable_node: btf.field("task_struct", "scx.runnable_node")?,
                runnable_next: btf.int_field("task_struct", "scx.runnable_node.next")?,
                runnable_at: btf.int_field("task_struct", "scx.runnable_at")?,
            }),
            None => None,
        };
        let rq = RqLayout {
            nr_running: btf.int_field("rq", "nr_running")?,
            clock: btf.int_field("rq", "clock")?,
            curr: btf.int_field("rq", "curr")?,
            scx,
        };
        let task = TaskLayout {
            pid: btf.int_field("task_struct", "pid")?,
            comm: btf.field("task_struct", "comm")?,
            scx: task_scx,
        };
        let ops_name = match btf.field("sched_ext_ops", "name") {
            Ok(f) => Some(f),
            Err(LoadError::MissingType { .. } | LoadError::MissingMember { .. }) => None,
            Err(e) => return Err(e),
        };
        let enable_states = btf
            .enum_values("scx_ops_enable_state")
            .or_else(|| btf.enum_values("scx_enable_state"))
            .unwrap_or_default();
        Ok(KernelLayout {
            rq,
            task,
            ops_name,
            enable_states,
        })
    }

    /// The bytes of a `struct rq` the monitor reads: one read per CPU.
    pub fn rq_span(&self) -> (usize, usize) {
        let mut fields = vec![self.rq.nr_running, self.rq.clock, self.rq.curr];
        if let Some(scx) = &self.rq.scx {
            fields.extend([scx.nr_running, scx.local_dsq_nr, scx.runnable_first]);
        }
        let start = fields.iter().map(|f| f.offset).min().unwrap_or(0);
        let end = fields.iter().map(Field::end).max().unwrap_or(0);
        (start, end)
    }
}
