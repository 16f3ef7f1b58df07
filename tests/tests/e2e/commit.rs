//! Commit races: several attempts of one task at once leave exactly one manifest and a
//! complete, readable output; losers clean up after themselves.

use shoal_protocol::{
    FileFormat, FileSlice, Input, Limits, Output, PROTOCOL_VERSION, StorageOptions, TableOp, TaskKey,
    TaskSpec, layout,
};
use shoal_tests::data::{trips_batch, write_trips};
use shoal_worker::{Worker, WorkerConfig};
use std::sync::Arc;

async fn race(root: &str, input: &str, storage: StorageOptions, attempts: u32) {
    let worker = Arc::new(Worker::new(WorkerConfig::default()).unwrap());
    let store = worker.storage(&storage);
    let object = store.head(input).await.unwrap();
    let spec = TaskSpec {
        version: PROTOCOL_VERSION,
        job_id: "race".into(),
        job_root: root.into(),
        task_key: TaskKey::derive("scan-filter", &(input, attempts)),
        attempt: 1,
        inputs: vec![Input::Scan {
            format: FileFormat::Parquet,
            files: vec![FileSlice::whole(object)],
            projection: None,
            predicate: None,
            schema: None,
            port: 0,
        }],
        pipeline: vec![TableOp::Filter { predicate: "passengers >= 2".into() }.into()],
        output: Output::Intermediate,
        limits: Limits::default(),
        storage,
        // Every attempt skips the check for a committed manifest, so all of them run and race
        // on the create-if-absent commit itself.
        uncommitted: true,
    };
    let runs = (1..=attempts).map(|a| {
        let (worker, mut spec) = (worker.clone(), spec.clone());
        spec.attempt = a;
        tokio::spawn(async move { worker.run(&spec).await })
    });
    let results: Vec<_> =
        futures::future::join_all(runs).await.into_iter().map(|r| r.unwrap().unwrap()).collect();

    let winners = results.iter().filter(|r| r.won_commit).count();
    assert_eq!(winners, 1, "exactly one attempt wins the commit");
    let manifest = &results[0].manifest;
    assert!(results.iter().all(|r| &r.manifest == manifest), "every attempt returns the winning manifest");

    // Exactly one manifest, and only the winner's data remains.
    let root_loc = store.resolve(root).unwrap();
    let commits = store.list(&root_loc.join("commits").url).await.unwrap();
    assert_eq!(commits.len(), 1);
    assert!(commits[0].url.ends_with(&layout::manifest(&spec.task_key)));
    let data = store.list(&root_loc.join("data").url).await.unwrap();
    assert_eq!(data.len(), 1, "losing attempts removed their files: {data:?}");
    let winners = layout::attempt_object(&spec.task_key, &manifest.attempt_id, "part-0.arrow");
    assert!(data[0].url.ends_with(&winners), "{} is not {winners}", data[0].url);

    // The committed output is complete: all rows with passengers >= 2.
    let bytes = store.get(&manifest.outputs[0].object).await.unwrap();
    let reader = arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    let source = trips_batch(0, 300, 1000).unwrap();
    let passengers = source.column_by_name("passengers").unwrap();
    let passengers = passengers.as_any().downcast_ref::<arrow::array::Int32Array>().unwrap();
    let expected = passengers.iter().filter(|p| p.is_some_and(|p| p >= 2)).count();
    assert_eq!(rows, expected);
    assert_eq!(manifest.rows as usize, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_attempts_commit_once_on_a_local_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = write_trips(&tmp.path().join("data"), &[300], 100).unwrap();
    let root = tmp.path().join("root").display().to_string();
    race(&root, &paths[0].display().to_string(), StorageOptions::default(), 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_attempts_commit_once_on_s3() {
    shoal_tests::init_test_env();
    let ls = shoal_tests::localstack::LocalStack::start().unwrap();
    ls.create_bucket("race").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let paths = write_trips(&tmp.path().join("data"), &[300], 100).unwrap();
    let storage = ls.storage_options();
    let worker = Worker::new(WorkerConfig::default()).unwrap();
    let store = worker.storage(&storage);
    let input = "s3://race/input/trips.parquet";
    store.put(input, std::fs::read(&paths[0]).unwrap()).await.unwrap();
    race("s3://race/job", input, storage, 8).await;
}
