//! vCPU panic shim: a panic on a vCPU thread stops its VM and marks the
//! vCPU exited *before* the process aborts (release) or unwinds (tests). It
//! classifies the crash; it never recovers from it.

use std::cell::RefCell;
use std::panic::PanicHookInfo;
use std::sync::{Arc, Once};

use super::state::RunState;

thread_local! {
    static CURRENT: RefCell<Option<(Arc<RunState>, usize)>> = const { RefCell::new(None) };
}

/// Installs the process-wide hook once; it chains to the hook it replaced.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            on_panic(info);
            previous(info);
        }));
    });
}

fn on_panic(info: &PanicHookInfo<'_>) {
    let current = CURRENT
        .try_with(|c| c.try_borrow().ok().and_then(|c| c.clone()))
        .ok()
        .flatten();
    if let Some((state, index)) = current {
        state.vcpu_panicked(index, panic_message(info));
    }
}

fn panic_message(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload");
    match info.location() {
        Some(l) => format!("{text} at {}:{}", l.file(), l.line()),
        None => text.to_string(),
    }
}

/// While alive, panics on this thread are attributed to vCPU `index`.
/// Dropping it (on return or during unwind) clears the attribution.
pub(crate) struct VcpuPanicScope(());

impl VcpuPanicScope {
    pub fn enter(state: Arc<RunState>, index: usize) -> Self {
        install();
        CURRENT.with(|c| *c.borrow_mut() = Some((state, index)));
        Self(())
    }
}

impl Drop for VcpuPanicScope {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.borrow_mut().take());
    }
}

/// The vCPU index the current thread runs, if it is a vCPU thread.
pub fn current_vcpu() -> Option<usize> {
    CURRENT
        .try_with(|c| c.borrow().as_ref().map(|(_, i)| *i))
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::ExitKind;

    #[test]
    fn scope_is_cleared_on_return_and_on_unwind() {
        let state = Arc::new(RunState::new(2));
        {
            let _scope = VcpuPanicScope::enter(state.clone(), 1);
            assert_eq!(current_vcpu(), Some(1));
        }
        assert_eq!(current_vcpu(), None);

        let s = state.clone();
        let result = std::panic::catch_unwind(move || {
            let _scope = VcpuPanicScope::enter(s, 0);
            panic!("boom in a device");
        });
        assert!(result.is_err());
        assert_eq!(current_vcpu(), None, "cleared by unwinding");
        assert!(state.is_stopping());
        assert!(state.has_exited(0));
        match state.take_reason() {
            Some(ExitKind::VcpuPanicked { vcpu: 0, message }) => {
                assert!(message.contains("boom in a device"), "{message}")
            }
            other => panic!("unexpected reason {other:?}"),
        }
    }
}
