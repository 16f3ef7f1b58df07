//! The event stream of a real run: what a subscriber receives is what the segments under
//! `jobs/<job_id>.events/` hold, and both agree with the run's own totals — every attempt
//! started, every backup, every discarded duplicate, one commit per task — with the job's shape
//! first and its report last. A second run of the same job adds its own segments after them.

use shoal::events::{Event, EventKind, Events, read_events};
use shoal::scheduler::Speculation;
use shoal::{Agg, Client, Config, ExecutorKind};
use shoal_tests::data::write_sales;
use std::collections::{HashMap, HashSet};
use std::path::Path;

fn duplicating(root: &Path) -> Client {
    let config = Config {
        speculation: Some(Speculation { duplicate_all: true, ..Speculation::default() }),
        ..crate::config(root, ExecutorKind::Threads)
    };
    Client::new(config).unwrap()
}

/// The event's tag, as in the file.
fn kind_name(kind: &EventKind) -> String {
    serde_json::to_value(kind).unwrap()["event"].as_str().unwrap().to_string()
}

/// The lines of a job's recorded events: its segments' lines, the segments in name order.
fn recorded_lines(root: &Path, job_id: &str) -> Vec<String> {
    let mut segments: Vec<_> = std::fs::read_dir(root.join(format!("jobs/{job_id}.events")))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    assert!(segments.iter().all(|p| p.extension().is_some_and(|e| e == "jsonl")), "{segments:?}");
    segments
        .iter()
        .flat_map(|p| std::fs::read_to_string(p).unwrap().lines().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

fn count(events: &[Event], f: impl Fn(&EventKind) -> bool) -> usize {
    events.iter().filter(|e| f(&e.kind)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_file_replays_the_run_its_subscriber_saw() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("sales");
    write_sales(&data, 6, 500, 100).unwrap();
    let root = tmp.path().join("root");
    let c = duplicating(&root);
    let df = c
        .read_parquet(&format!("{}/*.parquet", data.display()))
        .await
        .unwrap()
        .groupby(&["region"])
        .split_out(2)
        .agg(&[Agg::new("qty", "qty", "sum").unwrap()])
        .unwrap();

    let mut events = Events::new();
    let mut subscription = events.subscribe();
    let (_, summary) = df.compute_with(events).await.unwrap();
    let mut seen = Vec::new();
    while let Some(e) = subscription.recv().await {
        seen.push((*e).clone());
    }
    let report = summary.report.clone().expect("a report");
    // The file holds exactly what the subscriber received: byte for byte as serialized, and
    // read back to the same events (floats compared as text: serde_json's default parser may
    // land one ulp off).
    let lines = recorded_lines(&root, &report.job_id);
    let expected: Vec<String> = seen.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
    assert_eq!(lines, expected);
    let recorded = read_events(c.storage(), &root.display().to_string(), &report.job_id).await.unwrap();
    assert_eq!(recorded.len(), seen.len());
    for (r, s) in recorded.iter().zip(&seen) {
        assert_eq!((r.time_us, &r.job_id, kind_name(&r.kind)), (s.time_us, &s.job_id, kind_name(&s.kind)));
    }

    // The shape first, the report last.
    let EventKind::JobStarted { graph, already_committed, concurrency, .. } = &seen[0].kind else {
        panic!("first event: {:?}", seen[0]);
    };
    assert_eq!((graph.tasks, *already_committed), (summary.tasks, 0));
    assert_eq!(graph.stages.iter().map(|s| s.tasks).sum::<usize>(), summary.tasks);
    assert!(graph.stages.iter().skip(1).all(|s| !s.upstream.is_empty()), "{graph:?}");
    assert!(
        graph
            .stages
            .iter()
            .any(|s| s.operators.iter().any(|o| o.starts_with("strategy=shuffle split_out=2"))),
        "the stage that finishes the aggregation names its strategy: {graph:?}"
    );
    let Some(EventKind::JobFinished { ok: true, report: Some(last), .. }) = seen.last().map(|e| &e.kind)
    else {
        panic!("last event: {:?}", seen.last());
    };
    assert_eq!(**last, *report);
    assert!(seen.iter().all(|e| e.job_id == report.job_id));
    assert!(seen.windows(2).all(|w| w[0].time_us <= w[1].time_us), "timestamps in order");

    // The events agree with the run's totals.
    let started = count(&seen, |k| matches!(k, EventKind::TaskStarted { .. }));
    let backups = count(&seen, |k| matches!(k, EventKind::BackupLaunched { .. }));
    let discarded = count(&seen, |k| matches!(k, EventKind::AttemptDiscarded { .. }));
    assert_eq!(started as u64, summary.attempts);
    assert_eq!(backups as u64, summary.speculative);
    assert_eq!(backups, summary.tasks, "every task was duplicated");
    assert_eq!(discarded as u64, summary.discarded);
    let mut commits: HashMap<usize, usize> = HashMap::new();
    let mut attempts = HashSet::new();
    for e in &seen {
        match &e.kind {
            EventKind::TaskStarted { task, attempt, slot, speculative } => {
                assert!(
                    attempts.insert((task.id, *attempt)),
                    "attempt {attempt} of {} started twice",
                    task.key
                );
                assert!(*slot < *concurrency, "slot {slot} of {concurrency}");
                assert_eq!(*speculative, *attempt == 2);
            }
            EventKind::TaskCommitted { task, attempt, .. } => {
                assert!(attempts.contains(&(task.id, *attempt)), "committed before it started");
                *commits.entry(task.id).or_default() += 1;
            }
            _ => {}
        }
    }
    assert_eq!(commits.len(), summary.tasks);
    assert!(commits.values().all(|&n| n == 1), "one commit per task: {commits:?}");

    // Running it again appends a second run, which finds everything committed.
    df.compute().await.unwrap();
    let both = read_events(c.storage(), &root.display().to_string(), &report.job_id).await.unwrap();
    let again = recorded_lines(&root, &report.job_id);
    assert!(again.len() > lines.len());
    assert_eq!(again[..lines.len()], lines[..], "a second run adds its events after the first's");
    let runs: Vec<usize> = both
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::JobStarted { already_committed, .. } => Some(*already_committed),
            _ => None,
        })
        .collect();
    assert_eq!(runs, [0, summary.tasks]);
}
