//! The limits of one call: linear memory (a [`ResourceLimiter`]) and wall-clock time (epoch
//! interruption, driven by one ticker thread per engine).

use super::SandboxError;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::{Engine, ResourceLimiter};

/// How often the epoch advances; timeouts are rounded up to a multiple of this.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The epoch deadline, in ticks, of a call allowed `timeout_ms` of wall-clock time.
pub(super) fn deadline_ticks(timeout_ms: u64) -> u64 {
    timeout_ms.div_ceil(EPOCH_TICK.as_millis() as u64).max(1)
}

/// A thread that advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub(super) struct EpochTicker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(super) fn start(engine: &Engine) -> Result<Self, SandboxError> {
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let engine = engine.clone();
        let thread = std::thread::Builder::new()
            .name("shoal-epoch".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(EPOCH_TICK) {
                    engine.increment_epoch();
                }
            })
            .map_err(|e| SandboxError::Io(format!("starting the epoch ticker: {e}")))?;
        Ok(Self { stop: Some(stop_tx), thread: Some(thread) })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        // Disconnecting the channel wakes the ticker, which then exits.
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Enforces the per-call memory limit and remembers whether it had to deny a growth.
pub(super) struct GuestLimiter {
    memory_limit: u64,
    memory_denied: bool,
}

impl GuestLimiter {
    pub(super) fn new(memory_limit: u64) -> Self {
        Self { memory_limit, memory_denied: false }
    }

    /// Whether a memory growth was denied: the guest's failure is then its memory limit's.
    pub(super) fn memory_denied(&self) -> bool {
        self.memory_denied
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let desired = desired as u64;
        if desired > self.memory_limit || maximum.is_some_and(|max| desired > max as u64) {
            self.memory_denied = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|max| desired <= max) && desired <= 1_000_000)
    }
}
