//! The dashboard: a subscriber of the event stream that folds a run's events into a view
//! ([`model`]) and draws it as one page of sections ([`render`]: progress per stage, the task
//! stream, concurrency, durations and stragglers, failures, data per stage, storage and cost,
//! the stage graph). Served live while a job runs and from the job root's history
//! ([`server`]), and saved after every run as `jobs/<job_id>.report.html`, a self-contained
//! file with no script and no network request.

pub mod model;
pub mod render;
pub mod server;

pub use model::RunView;

/// The saved report of a finished (or interrupted) run: the page without its live script.
pub fn report_html(view: &RunView) -> String {
    let body = format!("<main id=\"run\">{}</main>", render::sections(view));
    render::page(&format!("shoal job {}", view.job_id), &body, None)
}
