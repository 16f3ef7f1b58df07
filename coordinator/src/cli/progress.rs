//! The progress bar: a subscriber of one run's events, drawn on a thread of its own.

use indicatif::{ProgressBar, ProgressStyle};
use shoal::events::{EventKind, Events};

/// A progress bar fed by one run's events on a thread of its own, so drawing it never slows
/// the scheduler. [`Progress::finish`] waits until it has shown the last event.
pub(super) struct Progress(std::thread::JoinHandle<()>);

impl Progress {
    /// A bar subscribed to `events`.
    pub(super) fn start(label: &str, events: &mut Events) -> Progress {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} tasks {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        let mut subscription = events.subscribe();
        let thread = std::thread::spawn(move || {
            while let Some(batch) = subscription.blocking_recv_batch() {
                for event in batch {
                    show(&bar, &event.kind);
                }
            }
            bar.finish_and_clear();
        });
        Progress(thread)
    }

    pub(super) fn finish(self) {
        // A panic in the bar's thread has already printed itself; the run's result stands.
        let _ = self.0.join();
    }
}

/// `suspend` + eprintln rather than `println`: these lines must show up even when stderr is
/// not a terminal and the bar itself is hidden.
fn show(b: &ProgressBar, event: &EventKind) {
    match event {
        EventKind::JobStarted { graph, already_committed, .. } => {
            let tasks = graph.tasks;
            b.set_length(tasks as u64);
            b.set_position(*already_committed as u64);
            if *already_committed > 0 {
                b.suspend(|| eprintln!("resuming: {already_committed} of {tasks} tasks already committed"));
            }
            if let Some(warning) = shoal::graph::many_tasks_warning(tasks) {
                b.suspend(|| eprintln!("warning: {warning}"));
            }
        }
        EventKind::TaskCommitted { .. } => b.inc(1),
        EventKind::TaskRetrying { failure, delay_ms, attempt, .. } => {
            b.suspend(|| eprintln!("retrying after attempt {attempt} in {delay_ms}ms: {failure}"));
        }
        EventKind::TaskFailed { failure, .. } => b.suspend(|| eprintln!("failed: {failure}")),
        EventKind::BackupLaunched { attempt, .. } => {
            b.suspend(|| eprintln!("straggler: launched backup attempt {attempt}"));
        }
        _ => {}
    }
}
