//! Differential correctness: every operation's whole result equals DuckDB's on the same files.

use crate::client;
use serde_json::json;
use shoal::{DataFrame, ExecutorKind};
use shoal_tests::data::{assert_same_table, write_trips};
use shoal_tests::python::duckdb_query;
use shoal_tests::read_parquet_dir;
use std::path::Path;

/// Runs `df` with shoal and `sql` (over view `t`) with DuckDB and compares whole tables.
async fn check(name: &str, df: &DataFrame, data: &Path, sql: &str, tmp: &Path) {
    let actual = df.compute().await.unwrap_or_else(|e| panic!("{name}: shoal failed: {e}"));
    let out = tmp.join(format!("duckdb-{name}.parquet"));
    let glob = data.join("*.parquet");
    let full = format!("WITH t AS (SELECT * FROM read_parquet('{}')) {sql}", glob.display());
    duckdb_query(&full, &out).unwrap_or_else(|e| panic!("{name}: duckdb failed: {e:#}"));
    let expected = read_parquet_dir(&out).unwrap();
    if let Err(e) = assert_same_table(&actual, &expected, "id") {
        panic!("{name}: shoal and DuckDB disagree: {e:#}\nshoal plan:\n{}", df.explain().unwrap_or_default());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relational_operators_match_duckdb() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Five files, one empty, several row groups each.
    write_trips(&data, &[700, 0, 1300, 45, 900], 256).unwrap();
    let c = client(&tmp.path().join("root"), ExecutorKind::Threads);
    let trips = c.read_parquet(&format!("{}/*.parquet", data.display())).await.unwrap();
    assert_eq!(trips.npartitions(), 5);

    let cases: Vec<(&str, DataFrame, &str)> = vec![
        (
            "filter_decimal_string",
            trips.filter("fare > 20.5 AND vendor <> 'B'").unwrap(),
            "SELECT * FROM t WHERE fare > 20.5 AND vendor <> 'B'",
        ),
        (
            "filter_nulls_dates_timestamps",
            trips
                .filter("(distance IS NULL OR passengers >= 3) AND pickup_date >= DATE '2021-01-01' AND pickup_at < TIMESTAMP '2021-06-01 00:00:00'")
                .unwrap(),
            "SELECT * FROM t WHERE (distance IS NULL OR passengers >= 3) AND pickup_date >= DATE '2021-01-01' AND pickup_at < TIMESTAMP '2021-06-01 00:00:00'",
        ),
        (
            "filter_removes_everything",
            trips.filter("id < 0").unwrap(),
            "SELECT * FROM t WHERE id < 0",
        ),
        (
            "select",
            trips.select(&["note", "id", "pickup_at"]).unwrap(),
            "SELECT note, id, pickup_at FROM t",
        ),
        (
            "assign",
            trips
                .assign("fare_x2", "fare * 2")
                .unwrap()
                .assign("per_pax", "distance / (passengers + 1)")
                .unwrap()
                .assign("label", "upper(vendor) || '-' || CAST(passengers AS VARCHAR)")
                .unwrap()
                .assign("size", "CASE WHEN fare > 100 THEN 'big' ELSE 'small' END")
                .unwrap()
                .assign("fare_x4", "fare_x2 * 2")
                .unwrap(),
            "SELECT *, fare * 2 AS fare_x2, distance / (passengers + 1) AS per_pax, \
             upper(vendor) || '-' || CAST(passengers AS VARCHAR) AS label, \
             CASE WHEN fare > 100 THEN 'big' ELSE 'small' END AS size, fare * 4 AS fare_x4 FROM t",
        ),
        (
            "fused_chain",
            trips
                .filter("vendor IS NOT NULL")
                .unwrap()
                .assign("total", "fare + 1.25")
                .unwrap()
                .select(&["id", "vendor", "total"])
                .unwrap()
                .filter("total < 120")
                .unwrap(),
            "SELECT id, vendor, fare + 1.25 AS total FROM t WHERE vendor IS NOT NULL AND fare + 1.25 < 120",
        ),
        ("head", trips.head(10), "SELECT * FROM t ORDER BY id LIMIT 10"),
    ];
    for (name, df, sql) in &cases {
        check(name, df, &data, sql, tmp.path()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_partitions_matches_duckdb() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_trips(&data, &[600, 0, 1100], 300).unwrap();
    let c = client(&tmp.path().join("root"), ExecutorKind::Threads);
    let trips = c.read_parquet(&format!("{}/*.parquet", data.display())).await.unwrap();
    let examples = c.load_module("builtin:examples").await.unwrap();

    let scaled = trips
        .map_partitions(&examples, "scale", json!({"column": "distance", "factor": 2.5, "output": "d2"}))
        .unwrap();
    check("scale", &scaled, &data, "SELECT *, CAST(distance AS DOUBLE) * 2.5 AS d2 FROM t", tmp.path()).await;

    let ranged = trips
        .map_partitions(&examples, "filter_range", json!({"column": "fare", "min": 10, "max": 50}))
        .unwrap();
    check("filter_range", &ranged, &data, "SELECT * FROM t WHERE fare BETWEEN 10 AND 50", tmp.path()).await;

    let normalized = trips.map_partitions(&examples, "normalize_text", json!({"column": "note"})).unwrap();
    check(
        "normalize_text",
        &normalized,
        &data,
        "SELECT * REPLACE (lower(trim(note)) AS note) FROM t",
        tmp.path(),
    )
    .await;

    // SQL operators and a user function fused into one task per partition.
    let chain = trips
        .filter("passengers > 1")
        .unwrap()
        .map_partitions(&examples, "scale", json!({"column": "fare", "factor": 0.5, "output": "half"}))
        .unwrap()
        .assign("half_plus", "half + 1")
        .unwrap()
        .select(&["id", "half", "half_plus"])
        .unwrap();
    let plan = chain.explain().unwrap();
    assert!(plan.contains("3 tasks in 1 stages"), "filter, map and select fuse into one stage:\n{plan}");
    check(
        "chain",
        &chain,
        &data,
        "SELECT id, CAST(fare AS DOUBLE) * 0.5 AS half, CAST(fare AS DOUBLE) * 0.5 + 1 AS half_plus FROM t WHERE passengers > 1",
        tmp.path(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_output_matches_duckdb_and_lists_parts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_trips(&data, &[400, 0, 350], 100).unwrap();
    let c = client(&tmp.path().join("root"), ExecutorKind::Threads);
    let df = c
        .read_parquet(&data.display().to_string())
        .await
        .unwrap()
        .filter("vendor = 'A' OR vendor IS NULL")
        .unwrap();
    let out = tmp.path().join("out");
    let written = df.to_parquet(&out.display().to_string()).await.unwrap();
    assert_eq!(written.parts.len(), 3);
    let success: shoal_protocol::SuccessManifest =
        serde_json::from_slice(&std::fs::read(out.join("_SUCCESS")).unwrap()).unwrap();
    assert_eq!(success.parts.len(), 3);
    assert!(success.parts[0].object.url.ends_with("/part-00000.parquet"));
    assert_eq!(success.rows, written.rows);

    let ref_out = tmp.path().join("duckdb.parquet");
    duckdb_query(
        &format!(
            "SELECT * FROM read_parquet('{}/*.parquet') WHERE vendor = 'A' OR vendor IS NULL",
            data.display()
        ),
        &ref_out,
    )
    .unwrap();
    assert_same_table(&read_parquet_dir(&out).unwrap(), &read_parquet_dir(&ref_out).unwrap(), "id").unwrap();

    // Running again reuses every committed task and rewrites nothing.
    let again = df.to_parquet(&out.display().to_string()).await.unwrap();
    assert_eq!(again.run.executed, 0);
    assert_eq!(again.run.already_committed, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projection_and_predicate_pushdown_read_less_and_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // ids ascend through the file, so row-group statistics on id are selective.
    write_trips(&data, &[40_000], 5_000).unwrap();
    let c = client(&tmp.path().join("root"), ExecutorKind::Sync);
    let df = c
        .read_parquet(&data.display().to_string())
        .await
        .unwrap()
        .filter("id >= 36000")
        .unwrap()
        .select(&["id", "fare"])
        .unwrap();
    let plan = df.explain().unwrap();
    assert!(plan.contains("columns=[id, fare]"), "projection pushed into the scan:\n{plan}");
    assert!(plan.contains("prune_by=((id >= 36000))"), "predicate pushed into the scan:\n{plan}");
    let (batches, summary) = df.compute_with(shoal::events::Events::new()).await.unwrap();
    let all_bytes = std::fs::metadata(data.join("trips-000.parquet")).unwrap().len();
    assert!(
        summary.bytes_read * 4 < all_bytes,
        "pruning and projection read {} of {all_bytes} bytes",
        summary.bytes_read
    );
    let ref_out = tmp.path().join("ref.parquet");
    duckdb_query(
        &format!("SELECT id, fare FROM read_parquet('{}/*.parquet') WHERE id >= 36000", data.display()),
        &ref_out,
    )
    .unwrap();
    assert_same_table(&batches, &read_parquet_dir(&ref_out).unwrap(), "id").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_index_skips_pages_inside_a_row_group() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // One row group of 40,000 rows in pages of 1,000: row-group statistics cannot prune, the
    // page index can. (No dictionaries: a dictionary page is read whole whichever pages are.)
    let path = data.join("one-group.parquet");
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(40_000))
        .set_data_page_row_count_limit(1_000)
        .set_write_batch_size(1_000)
        .set_dictionary_enabled(false)
        .build();
    let file = std::fs::File::create(&path).unwrap();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(file, shoal_tests::data::trips_schema(), Some(props)).unwrap();
    w.write(&shoal_tests::data::trips_batch(0, 40_000, 5).unwrap()).unwrap();
    w.close().unwrap();

    let c = client(&tmp.path().join("root"), ExecutorKind::Sync);
    let trips = c.read_parquet(&data.display().to_string()).await.unwrap();
    let narrow = trips.filter("id >= 39000 AND id < 39500").unwrap().select(&["id", "fare", "note"]).unwrap();
    let (batches, summary) = narrow.compute_with(shoal::events::Events::new()).await.unwrap();
    let all_bytes = std::fs::metadata(&path).unwrap().len();
    assert!(
        summary.bytes_read * 10 < all_bytes,
        "page pruning read {} of {all_bytes} bytes",
        summary.bytes_read
    );
    let ref_out = tmp.path().join("ref.parquet");
    duckdb_query(
        &format!(
            "SELECT id, fare, note FROM read_parquet('{}') WHERE id >= 39000 AND id < 39500",
            path.display()
        ),
        &ref_out,
    )
    .unwrap();
    assert_same_table(&batches, &read_parquet_dir(&ref_out).unwrap(), "id").unwrap();
    // A predicate on an unsorted column prunes little but must not change the answer.
    check(
        "pages_unsorted",
        &trips.filter("passengers = 3 AND fare < 10").unwrap(),
        &data,
        "SELECT * FROM t WHERE passengers = 3 AND fare < 10",
        tmp.path(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_split_by_row_groups_give_the_same_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Two files of 8 and 3 row groups.
    write_trips(&data, &[4000, 1500], 500).unwrap();
    let config = shoal::Config {
        root: tmp.path().join("root").display().to_string(),
        // About two row groups per partition.
        partition_bytes: 40_000,
        ..shoal::Config::default()
    };
    let c = shoal::Client::new(config).unwrap();
    let df = c.read_parquet(&data.display().to_string()).await.unwrap();
    assert!(df.npartitions() > 4, "split into {} partitions", df.npartitions());
    let filtered = df.filter("passengers > 2 OR fare IS NULL").unwrap();
    check("split", &filtered, &data, "SELECT * FROM t WHERE passengers > 2 OR fare IS NULL", tmp.path())
        .await;
    // Head reads partitions in order across the split.
    check("split_head", &df.head(1200), &data, "SELECT * FROM t ORDER BY id LIMIT 1200", tmp.path()).await;
}
