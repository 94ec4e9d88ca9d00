//! Open enums: named codes that preserve values this version does not know.
//!
//! A newer peer may send a code we have no name for; it must survive a
//! parse/encode round trip unchanged, hence the `Unknown(raw)` variant.
//! Conversions from the raw value are canonical: a known value never becomes
//! `Unknown`.

macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident : $repr:ty {
            $( $(#[$vmeta:meta])* $variant:ident = $value:expr, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value this version has no name for, preserved as sent.
            Unknown($repr),
        }

        impl From<$repr> for $name {
            fn from(raw: $repr) -> Self {
                match raw {
                    $( $value => $name::$variant, )*
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for $repr {
            fn from(v: $name) -> $repr {
                match v {
                    $( $name::$variant => $value, )*
                    $name::Unknown(raw) => raw,
                }
            }
        }
    };
}

open_enum! {
    /// Guest lifecycle phase carried by [`Lifecycle`](crate::Lifecycle).
    pub enum Phase: u32 {
        /// Kernel handed control to the guest agent (PID 1).
        InitStarted = 1,
        /// Filesystems, cgroups and devices are set up.
        SystemReady = 2,
        /// The scheduler under test is being loaded.
        SchedulerLoading = 3,
        /// A scenario started running.
        ScenarioStarted = 4,
        /// A scenario finished running.
        ScenarioFinished = 5,
        /// The agent is tearing down before power-off.
        ShuttingDown = 6,
    }
}

open_enum! {
    /// Syslog/kernel log level (0 = emergency … 7 = debug).
    pub enum LogLevel: u8 {
        /// System is unusable.
        Emergency = 0,
        /// Action must be taken immediately.
        Alert = 1,
        /// Critical condition.
        Critical = 2,
        /// Error.
        Error = 3,
        /// Warning.
        Warning = 4,
        /// Normal but significant.
        Notice = 5,
        /// Informational.
        Info = 6,
        /// Debug.
        Debug = 7,
    }
}

open_enum! {
    /// State of the sched_ext scheduler under test.
    pub enum SchedState: u16 {
        /// The scheduler is attached and running. Sent again, with the
        /// kernel's disable line as reason, when sched_ext asked it to
        /// restart (CPU hotplug) and it attached again.
        Attached = 1,
        /// The scheduler exited (see `exit_kind`/`exit_code`/reason).
        Exited = 2,
        /// The scheduler was detached cleanly.
        Detached = 3,
    }
}

open_enum! {
    /// Outcome of one scenario step.
    pub enum ScenarioStatus: u16 {
        /// Step passed.
        Pass = 1,
        /// Step's checks failed.
        Fail = 2,
        /// Step was skipped.
        Skip = 3,
        /// Step could not run (setup or harness error).
        Error = 4,
        /// Step exceeded its time budget.
        Timeout = 5,
    }
}

open_enum! {
    /// How the scheduler under test ended, as ktstr's guest agent classifies
    /// it in [`SchedulerState`](crate::SchedulerState). These are ktstr's own
    /// codes, not the kernel's `scx_exit_kind`: the agent derives them from
    /// the scheduler process's exit and the `sched_ext` lines in the kernel
    /// log (a kernel disable other than a clean unregistration means
    /// [`Kernel`](Self::Kernel)).
    pub enum SchedExitKind: u32 {
        /// Not an exit: sent with [`SchedState::Attached`].
        NotExited = 0,
        /// The scheduler process ended on its own, or was stopped, while the
        /// kernel reported a clean unregistration (or nothing at all).
        Process = 1,
        /// The kernel disabled the scheduler with an error (watchdog stall,
        /// `scx_bpf_error()`, a verifier or runtime error): it was kicked out.
        Kernel = 2,
        /// The scheduler process exited before it attached.
        BeforeAttach = 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_are_canonical_and_unknown_preserved() {
        assert_eq!(Phase::from(4), Phase::ScenarioStarted);
        assert_eq!(u32::from(Phase::from(999)), 999);
        assert_eq!(Phase::from(999), Phase::Unknown(999));
        assert_eq!(LogLevel::from(6), LogLevel::Info);
        assert_eq!(u8::from(LogLevel::Unknown(42)), 42);
        assert_eq!(SchedState::from(2), SchedState::Exited);
        assert_eq!(ScenarioStatus::from(0), ScenarioStatus::Unknown(0));
        assert_eq!(SchedExitKind::from(0), SchedExitKind::NotExited);
        assert_eq!(SchedExitKind::from(2), SchedExitKind::Kernel);
        assert_eq!(SchedExitKind::from(1025), SchedExitKind::Unknown(1025));
        assert_eq!(u32::from(SchedExitKind::BeforeAttach), 3);
    }
}
