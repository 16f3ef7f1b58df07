//! At-least-once execution, exactly-once output: every task of a job with a shuffle runs twice
//! at once (forced speculation), on threads and on worker processes. Each task commits exactly
//! one manifest, every manifest points at its winning attempt's files, and the rows are those of
//! a run without duplicates — none lost, none doubled. The run report counts the duplicates.

use crate::client;
use arrow::record_batch::RecordBatch;
use shoal::scheduler::Speculation;
use shoal::{Agg, Client, Config, ExecutorKind};
use shoal_protocol::Manifest;
use shoal_tests::data::{assert_same_rows, write_sales};
use std::path::Path;

fn duplicating(root: &Path, executor: ExecutorKind) -> Client {
    let config = Config {
        root: root.display().to_string(),
        executor,
        workers: 2,
        cache_dir: Some(shoal_tests::shoal_cache().join("components")),
        speculation: Some(Speculation { duplicate_all: true, ..Speculation::default() }),
        // One partition per file: the assertions count the tasks of each file.
        coalesce_small_files: false,
        ..Config::default()
    };
    Client::new(config).unwrap()
}

async fn job(c: &Client, data: &Path) -> Vec<RecordBatch> {
    let sales = c.read_parquet(&format!("{}/*.parquet", data.display())).await.unwrap();
    let df = sales
        .filter("qty > 0")
        .unwrap()
        .groupby(&["region", "sku"])
        .split_out(3)
        .agg(&[Agg::new("qty", "qty", "sum").unwrap(), Agg::new("n", "id", "size").unwrap()])
        .unwrap();
    let (batches, summary) = df.compute_with(shoal::events::Events::new()).await.unwrap();
    let report = summary.report.as_ref().expect("a report");
    assert_eq!(report.tasks_run, summary.tasks);
    batches
}

/// The committed manifests. A duplicate attempt that lost its race may still be running in a
/// worker process when the job returns; its create-if-absent stages `<key>.json#<n>` beside the
/// manifest (object_store's local staging) and removes it on losing, so only `.json` counts.
fn manifests(root: &Path) -> Vec<Manifest> {
    std::fs::read_dir(root.join("commits"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_attempts_of_every_task_commit_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("sales");
    write_sales(&data, 12, 2_000, 500).unwrap();
    let reference = job(&client(&tmp.path().join("plain"), ExecutorKind::Threads), &data).await;

    for kind in [ExecutorKind::Threads, ExecutorKind::Processes] {
        let root = tmp.path().join(format!("dup-{kind}"));
        let c = duplicating(&root, kind);
        let got = job(&c, &data).await;
        assert_same_rows(&got, &reference).unwrap_or_else(|e| panic!("{kind}: {e:#}"));

        // The report of the run, next to its manifests: two attempts of every task.
        let reports: Vec<serde_json::Value> = std::fs::read_dir(root.join("jobs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".report.json"))
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect();
        assert_eq!(reports.len(), 1, "{kind}");
        let r = &reports[0];
        let tasks = r["tasks"].as_u64().unwrap();
        assert_eq!(tasks, 12 + 3, "{kind}: 12 partial-aggregate maps and 3 reducers");
        assert_eq!(r["speculative_attempts"].as_u64(), Some(tasks), "{kind}: {r}");
        assert_eq!(r["attempts"].as_u64(), Some(2 * tasks), "{kind}: {r}");
        assert!(r["estimated_cost_usd"]["total"].as_f64().unwrap() > 0.0, "{kind}: {r}");

        // Exactly one manifest per task, each naming files of its own winning attempt, all
        // present: the other attempt lost its commit and removed its files, or was cancelled.
        let ms = manifests(&root);
        assert_eq!(ms.len() as u64, tasks, "{kind}");
        for m in &ms {
            for out in &m.outputs {
                let dir = format!("/data/{}.{}.", m.task_key, m.attempt_id);
                assert!(out.object.url.contains(&dir), "{kind}: {} not under {dir}", out.object.url);
                let path = out.object.url.trim_start_matches("file://");
                assert_eq!(std::fs::metadata(path).unwrap().len(), out.object.size, "{kind}: {path}");
            }
        }
    }
}
