//! Speculative backups of stragglers: when a running attempt has taken much longer than its
//! stage's finished tasks, a second attempt races it and the first to commit wins.

use super::state::Tasks;
use crate::graph::TaskGraph;
use std::time::Duration;

/// When to launch a backup attempt of a running task.
#[derive(Debug, Clone)]
pub struct Speculation {
    /// A task gets one backup once it has run this many times the median duration of the
    /// tasks of its stage that have finished.
    pub multiple: f64,
    /// ... and at least this long: short tasks are not worth duplicating.
    pub min_runtime: Duration,
    /// Launch two attempts of every task at once (exercises the commit protocol).
    pub duplicate_all: bool,
}

impl Default for Speculation {
    fn default() -> Self {
        Self { multiple: 2.0, min_runtime: Duration::from_secs(2), duplicate_all: false }
    }
}

/// How often running tasks are checked for stragglers.
pub(super) const TICK: Duration = Duration::from_millis(100);

/// A running task that deserves a backup.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Straggler {
    pub task: usize,
    /// How long its attempt has run.
    pub running: Duration,
    /// The median duration of its stage's committed attempts.
    pub median: Duration,
}

/// Durations of committed attempts, per stage: the yardstick for stragglers.
#[derive(Debug)]
pub(super) struct StageDurations(Vec<Vec<Duration>>);

impl StageDurations {
    pub fn new(stages: usize) -> Self {
        Self(vec![Vec::new(); stages.max(1)])
    }

    pub fn record(&mut self, stage: usize, elapsed: Duration) {
        if let Some(d) = self.0.get_mut(stage) {
            d.push(elapsed);
        }
    }

    fn median(&self, stage: usize) -> Option<Duration> {
        let mut d = self.0.get(stage)?.clone();
        d.sort_unstable();
        d.get(d.len() / 2).copied()
    }
}

impl Speculation {
    /// The running tasks that have run over `multiple` × their stage's median (and at least
    /// `min_runtime`), and have no backup yet, in task order.
    pub(super) fn stragglers(
        &self,
        graph: &TaskGraph,
        tasks: &Tasks,
        durations: &StageDurations,
    ) -> Vec<Straggler> {
        tasks
            .backup_candidates()
            .filter_map(|task| {
                let median = durations.median(graph.tasks[task].stage)?;
                let running = tasks.get(task).started.map(|s| s.elapsed()).unwrap_or_default();
                (running >= self.min_runtime && running.as_secs_f64() > self.multiple * median.as_secs_f64())
                    .then_some(Straggler { task, running, median })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_of_the_stage_asked_for() {
        let mut d = StageDurations::new(2);
        for ms in [30, 10, 20] {
            d.record(1, Duration::from_millis(ms));
        }
        assert_eq!(d.median(1), Some(Duration::from_millis(20)));
        assert_eq!(d.median(0), None);
        assert_eq!(d.median(7), None);
    }
}
