//! A job with a shuffle, run by workers whose S3 is a fault-injecting proxy in front of
//! LocalStack: 5% of requests answered 500/503 SlowDown, 2% of responses cut off mid-body, 5%
//! delayed. The Parquet it writes is byte-identical to a fault-free run's.

use bytes::Bytes;
use shoal::{Agg, Client, Config, ExecutorKind};
use shoal_protocol::{StorageOptions, SuccessManifest};
use shoal_tests::data::write_sales;
use shoal_tests::faults::{FaultProxy, FaultRates};
use shoal_tests::localstack::LocalStack;
use shoal_worker::io::storage::Storage;

fn s3_client(root: &str, storage: StorageOptions) -> Client {
    let config = Config {
        root: root.to_string(),
        storage,
        executor: ExecutorKind::Threads,
        workers: 2,
        max_attempts: 6,
        cache_dir: Some(shoal_tests::shoal_cache().join("components")),
        ..Config::default()
    };
    Client::new(config).unwrap()
}

/// Runs the job and returns its `_SUCCESS` manifest and every part's bytes.
async fn run(c: &Client, out: &str, direct: &Storage) -> (SuccessManifest, Vec<Bytes>) {
    let sales = c.read_parquet("s3://faults/sales/*.parquet").await.unwrap();
    let df = sales
        .filter("qty > 0")
        .unwrap()
        .groupby(&["region", "sku"])
        .split_out(4)
        .agg(&[Agg::new("qty", "qty", "sum").unwrap(), Agg::new("n", "id", "size").unwrap()])
        .unwrap()
        .sort_values_into(&[shoal_protocol::SortKey::asc("region"), shoal_protocol::SortKey::asc("sku")], 3)
        .unwrap();
    df.to_parquet(out).await.unwrap();
    let success: SuccessManifest =
        serde_json::from_slice(&direct.get_url(&format!("{out}/_SUCCESS")).await.unwrap()).unwrap();
    let mut parts = Vec::new();
    for p in &success.parts {
        parts.push(direct.get(&p.object).await.unwrap());
    }
    (success, parts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_a_shuffle_survives_a_faulty_s3() {
    shoal_tests::init_test_env();
    let ls = LocalStack::start().unwrap();
    ls.create_bucket("faults").unwrap();
    let direct = Storage::new(ls.storage_options());
    let tmp = tempfile::tempdir().unwrap();
    write_sales(&tmp.path().join("sales"), 10, 1_000, 200).unwrap();
    for entry in std::fs::read_dir(tmp.path().join("sales")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        direct
            .put(&format!("s3://faults/sales/{name}"), Bytes::from(std::fs::read(&path).unwrap()))
            .await
            .unwrap();
    }

    let clean = s3_client("s3://faults/root-clean", ls.storage_options());
    let (expected, expected_parts) = run(&clean, "s3://faults/out-clean", &direct).await;

    let proxy =
        FaultProxy::start(ls.port, FaultRates { error: 0.05, drop_mid_body: 0.02, delay: 0.05 }, 7).unwrap();
    let faulty_storage = proxy.storage_options();
    let faulty = s3_client("s3://faults/root-faulty", faulty_storage);
    let (got, got_parts) = run(&faulty, "s3://faults/out-faulty", &direct).await;

    eprintln!(
        "fault proxy: {} requests, {} answered 500/503, {} cut mid-body, {} delayed",
        proxy.requests(),
        proxy.errors(),
        proxy.drops(),
        proxy.delays()
    );
    assert!(proxy.requests() > 100, "{} requests", proxy.requests());
    assert!(
        proxy.errors() > 0 && proxy.drops() > 0 && proxy.delays() > 0,
        "faults: {} errors, {} drops, {} delays",
        proxy.errors(),
        proxy.drops(),
        proxy.delays()
    );
    assert_eq!(got.rows, expected.rows);
    assert_eq!(got.parts.len(), expected.parts.len());
    assert_eq!(got_parts, expected_parts, "the Parquet parts differ from the fault-free run's");
}

/// A GET whose body breaks off after the headers is read again: `object_store` retries failed
/// requests but not a body cut short, and the coordinator (unlike a task) has no retry of its
/// own around reads such as the event log's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_whose_body_breaks_off_is_read_again() {
    shoal_tests::init_test_env();
    let ls = LocalStack::start().unwrap();
    ls.create_bucket("cut").unwrap();
    let direct = Storage::new(ls.storage_options());
    let content: Bytes = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect::<Vec<u8>>().into();
    let object = direct.put("s3://cut/object.bin", content.clone()).await.unwrap();

    let proxy =
        FaultProxy::start(ls.port, FaultRates { error: 0.0, drop_mid_body: 0.2, delay: 0.0 }, 11).unwrap();
    let through_proxy = Storage::new(proxy.storage_options());
    for i in 0..16 {
        let whole = through_proxy.get_url("s3://cut/object.bin").await.unwrap();
        assert!(
            whole == content,
            "read {i} returned {} bytes, not the object's {}",
            whole.len(),
            content.len()
        );
        let part = through_proxy.get_range(&object, 1_000..501_000).await.unwrap();
        assert!(part == content.slice(1_000..501_000), "range read {i} differs");
    }
    assert!(proxy.drops() > 0, "the proxy cut no body off in {} requests", proxy.requests());
    eprintln!("{} requests, {} bodies cut off, every read whole", proxy.requests(), proxy.drops());
}

/// A listing and a delete whose responses break off are sent again, a bounded number of times.
/// `object_store` retries a request answered 5xx, but not a response cut short after its status
/// arrived; a delete on S3 is a `DeleteObjects` POST with an XML answer, and a cut answer to
/// the delete of `_SUCCESS` once failed a whole job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_or_delete_whose_answer_breaks_off_is_sent_again() {
    shoal_tests::init_test_env();
    let ls = LocalStack::start().unwrap();
    ls.create_bucket("cutlist").unwrap();
    let direct = Storage::new(ls.storage_options());
    let names: Vec<String> = (0..5).map(|i| format!("s3://cutlist/dir/part-{i}.bin")).collect();
    for name in &names {
        direct.put(name, Bytes::from_static(b"data")).await.unwrap();
    }
    let proxy =
        FaultProxy::start(ls.port, FaultRates { error: 0.0, drop_mid_body: 0.0, delay: 0.0 }, 3).unwrap();
    let through_proxy = Storage::new(proxy.storage_options());

    // Two cut listings, then a whole one.
    proxy.cut_next(2);
    let listed: Vec<String> =
        through_proxy.list("s3://cutlist/dir/").await.unwrap().into_iter().map(|o| o.url).collect();
    assert_eq!(listed, names);
    assert_eq!(proxy.drops(), 2);

    // A delete whose answer is cut twice still deletes, and says so.
    proxy.cut_next(2);
    through_proxy.delete(&names[0]).await.unwrap();
    assert_eq!(proxy.drops(), 4);
    assert!(matches!(direct.head(&names[0]).await, Err(shoal_worker::Error::NotFound { .. })));

    // The retries are bounded: a listing cut three times in a row is an error naming it.
    proxy.cut_next(3);
    let err = through_proxy.list("s3://cutlist/dir/").await.unwrap_err();
    assert!(err.to_string().contains("s3://cutlist/dir"), "{err}");
    assert_eq!(err.kind(), shoal_protocol::FailureKind::Retryable, "{err}");
}
