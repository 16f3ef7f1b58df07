//! Writing CSV and JSON lines: `to_csv` / `to_json` (and `[[outputs]] to_csv` / `to_json` in
//! job files) write one part per partition with deterministic names and `_SUCCESS` last, as
//! `to_parquet` does, formatted as pandas writes them. DuckDB, reading the parts with its own
//! format detection, gets exactly the rows DuckDB reads from the Parquet output of the same
//! data; shoal's `read_csv` of its own CSV gives back the input, floats to the bit.

use crate::cli::shoal;
use crate::client;
use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;
use shoal::{DataFrame, ExecutorKind};
use shoal_protocol::{CsvOptions, SuccessManifest};
use shoal_tests::data::{assert_same_table, write_trips};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

const FLOATS: [f64; 14] = [
    0.1,
    1e300,
    -0.0,
    1.0 / 3.0,
    2.5e-310,
    123_456_789.123_456_79,
    -1e-7,
    1.0,
    0.300_000_000_000_000_04,
    5e-324,
    f64::MAX,
    -2.0 / 3.0,
    1e16,
    12_345.678,
];

const STRINGS: [&str; 11] = [
    "plain",
    "comma, inside",
    "quote \" inside",
    "line\nbreak",
    "crlf\r\nbreak",
    "ünïcødé ✓ 日本",
    "  padded  ",
    "trailing,",
    "\"starts quoted",
    "semi;colon|pipe",
    "007",
];

/// `n` rows with ids from `first`: every column has nulls, and every 25th row is null in all
/// columns but `id`.
fn table(first: i64, n: i64) -> RecordBatch {
    let ids: Vec<i64> = (first..first + n).collect();
    let null = |i: i64, every: i64, at: i64| i % 25 == 24 || i % every == at;
    let ints: Int64Array = ids
        .iter()
        .map(|&i| (!null(i, 7, 3)).then(|| if i % 11 == 5 { 9_007_199_254_740_993 } else { i * 37 - 500 }))
        .collect();
    let floats: Float64Array =
        ids.iter().map(|&i| (!null(i, 9, 4)).then(|| FLOATS[i as usize % FLOATS.len()])).collect();
    let strings: StringArray =
        ids.iter().map(|&i| (!null(i, 8, 6)).then(|| STRINGS[i as usize % STRINGS.len()])).collect();
    let bools: BooleanArray = ids.iter().map(|&i| (!null(i, 10, 7)).then_some(i % 3 == 0)).collect();
    let dates: Date32Array = ids
        .iter()
        .map(|&i| (!null(i, 6, 5)).then(|| if i % 13 == 2 { -(i as i32) } else { 19_000 + i as i32 * 13 }))
        .collect();
    let times: TimestampMicrosecondArray = ids
        .iter()
        .map(|&i| {
            let whole = 1_700_000_000_000_000 + i * 86_400_000_000;
            (!null(i, 5, 1)).then(|| if i % 4 == 0 { whole } else { whole + i * 1_234_567_891 })
        })
        .collect();
    let columns: Vec<(&str, ArrayRef, bool)> = vec![
        ("id", Arc::new(Int64Array::from(ids.clone())), false),
        ("n", Arc::new(ints), true),
        ("x", Arc::new(floats), true),
        ("s", Arc::new(strings), true),
        ("b", Arc::new(bools), true),
        ("d", Arc::new(dates), true),
        ("t", Arc::new(times.clone()), true),
        ("tz", Arc::new(times.with_timezone("UTC")), true),
    ];
    RecordBatch::try_from_iter_with_nullable(columns).unwrap()
}

/// Four Parquet files of the table (the second empty): four partitions, one empty.
fn write_input(dir: &Path) -> Vec<RecordBatch> {
    std::fs::create_dir_all(dir).unwrap();
    let mut first = 0;
    let mut all = Vec::new();
    for (f, n) in [40, 0, 33, 27].into_iter().enumerate() {
        let batch = table(first, n);
        first += n;
        let file = std::fs::File::create(dir.join(format!("in-{f}.parquet"))).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        if n > 0 {
            w.write(&batch).unwrap();
        }
        w.close().unwrap();
        all.push(batch);
    }
    all
}

/// Runs `script` (Python with DuckDB, in the test venv) with `args`; its stdout as JSON.
fn duckdb_json(script: &str, args: &[&str]) -> serde_json::Value {
    let python = shoal_tests::python::test_python().unwrap();
    let out = Command::new(python).arg("-c").arg(script).args(args).output().unwrap();
    assert!(out.status.success(), "DuckDB script failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// For the reference query and each query read by DuckDB: its column types, row count,
/// negative zeros in `x` (when asked), and the rows in one but not the other (`EXCEPT ALL`:
/// exact, NULL equal to NULL), with a few of them to show.
const COMPARE: &str = r#"
import sys, json, duckdb
reference, negzero, queries = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
con = duckdb.connect()
con.execute("CREATE VIEW ref AS " + reference)
out = {}
for i, q in enumerate(queries):
    con.execute(f"CREATE VIEW q{i} AS " + q)
    v = f"q{i}"
    diff = lambda a, b: con.execute(f"SELECT * FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}) LIMIT 3").fetchall()
    count = lambda a, b: con.execute(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})").fetchone()[0]
    out[q] = {
        "types": [[r[0], r[1]] for r in con.execute(f"DESCRIBE {v}").fetchall()],
        "ref_types": [[r[0], r[1]] for r in con.execute("DESCRIBE ref").fetchall()],
        "rows": con.execute(f"SELECT count(*) FROM {v}").fetchone()[0],
        "ref_rows": con.execute("SELECT count(*) FROM ref").fetchone()[0],
        "missing": count("ref", v),
        "extra": count(v, "ref"),
        "show": [str(r) for r in diff("ref", v) + diff(v, "ref")],
    }
    if negzero:
        z = "SELECT count(*) FROM {} WHERE x = 0 AND signbit(x)"
        out[q]["negzero"] = [con.execute(z.format(v)).fetchone()[0], con.execute(z.format("ref")).fetchone()[0]]
print(json.dumps(out))
"#;

/// Asserts that DuckDB reads from each of `queries` exactly the rows of `reference`, with the
/// same column types.
fn assert_duckdb_agrees(reference: &str, queries: &[String], negzero: bool) {
    let mut args = vec![reference, if negzero { "1" } else { "0" }];
    args.extend(queries.iter().map(String::as_str));
    let result = duckdb_json(COMPARE, &args);
    for q in queries {
        let r = &result[q.as_str()];
        // DuckDB's read_json types a column of integers of both signs HUGEINT (it reads
        // non-negative ones as UBIGINT): the values are still exact.
        let types = r["types"].to_string().replace("\"HUGEINT\"", "\"BIGINT\"");
        assert_eq!(types, r["ref_types"].to_string(), "{q}: column types differ");
        assert_eq!((&r["missing"], &r["extra"]), (&0.into(), &0.into()), "{q}: rows differ: {}", r["show"]);
        assert_eq!(r["rows"], r["ref_rows"], "{q}");
        if negzero {
            assert_eq!(r["negzero"][0], r["negzero"][1], "{q}: negative zeros");
        }
    }
}

/// The names of the files in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Checks `dir` holds `part-0000{0..n}.<ext>` and `_SUCCESS` listing them in order, with their
/// sizes and `rows` rows in all.
fn assert_parts(dir: &Path, ext: &str, n: usize, rows: u64) -> BTreeMap<String, Vec<u8>> {
    let parts: Vec<String> = (0..n).map(|i| format!("part-{i:05}.{ext}")).collect();
    let mut expected = parts.clone();
    expected.insert(0, "_SUCCESS".into());
    assert_eq!(names(dir), expected, "{}", dir.display());
    let success: SuccessManifest =
        serde_json::from_slice(&std::fs::read(dir.join("_SUCCESS")).unwrap()).unwrap();
    assert_eq!(success.rows, rows);
    assert_eq!(success.parts.len(), n);
    for (listed, name) in success.parts.iter().zip(&parts) {
        assert!(listed.object.url.ends_with(&format!("/{name}")), "{}", listed.object.url);
        assert_eq!(std::fs::metadata(dir.join(name)).unwrap().len(), listed.object.size, "{name}");
    }
    parts.into_iter().map(|p| (p.clone(), std::fs::read(dir.join(&p)).unwrap())).collect()
}

/// The rows `_SUCCESS` in `dir` counts.
fn rows(dir: &Path) -> u64 {
    let success: SuccessManifest =
        serde_json::from_slice(&std::fs::read(dir.join("_SUCCESS")).unwrap()).unwrap();
    success.rows
}

/// Floats of column `x` by `id`, as bits (so `-0.0` differs from `0.0`).
fn float_bits(batches: &[RecordBatch]) -> BTreeMap<i64, Option<u64>> {
    let mut out = BTreeMap::new();
    for b in batches {
        let ids = b.column_by_name("id").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
        let xs = b.column_by_name("x").unwrap().as_any().downcast_ref::<Float64Array>().unwrap();
        for i in 0..b.num_rows() {
            out.insert(ids.value(i), (!xs.is_null(i)).then(|| xs.value(i).to_bits()));
        }
    }
    out
}

/// Writes `df` as Parquet, CSV and JSON lines under `out`; checks the parts and `_SUCCESS`.
async fn write_all(df: &DataFrame, out: &Path) -> [BTreeMap<String, Vec<u8>>; 2] {
    let loc = |name: &str| out.join(name).display().to_string();
    let pq = df.to_parquet(&loc("pq")).await.unwrap();
    let csv = df.to_csv(&loc("csv")).await.unwrap();
    let json = df.to_json(&loc("json")).await.unwrap();
    assert_eq!((pq.rows, csv.rows, json.rows), (100, 100, 100));
    assert_parts(&out.join("pq"), "parquet", 4, 100);
    let csv_parts = assert_parts(&out.join("csv"), "csv", 4, 100);
    let json_parts = assert_parts(&out.join("json"), "jsonl", 4, 100);
    // The empty partition's parts exist: a header line, and no lines.
    assert_eq!(String::from_utf8_lossy(&csv_parts["part-00001.csv"]), "id,n,x,s,b,d,t,tz\n");
    assert!(json_parts["part-00001.jsonl"].is_empty());
    [csv_parts, json_parts]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_json_parts_read_back_by_duckdb_and_shoal_equal_the_source() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_input(&tmp.path().join("in"));
    let c = client(&tmp.path().join("root"), ExecutorKind::Threads);
    let df = c.read_parquet(&format!("{}/in/*.parquet", tmp.path().display())).await.unwrap();
    assert_eq!(df.npartitions(), 4);
    let out = tmp.path().join("out");
    let [csv_parts, json_parts] = write_all(&df, &out).await;
    let csv_text = String::from_utf8_lossy(&csv_parts["part-00000.csv"]).into_owned();
    assert!(
        csv_text.contains(",True,")
            && csv_text.contains(",-0.0,")
            && csv_text.contains(",1e300,")
            && csv_text.contains("+00:00\n"),
        "{csv_text}"
    );

    // DuckDB detects the formats by itself and reads the rows of the Parquet output.
    let o = out.display();
    assert_duckdb_agrees(
        &format!("SELECT * FROM read_parquet('{o}/pq/*.parquet')"),
        &[
            format!("SELECT * FROM read_csv('{o}/csv/*.csv', header = true, delim = ',')"),
            format!("SELECT * FROM read_json('{o}/json/*.jsonl', format = 'newline_delimited')"),
        ],
        true,
    );

    // shoal reads its own CSV back as the input: the same types, every float to the bit.
    let back =
        c.read_csv(&format!("{o}/csv/*.csv"), CsvOptions::default()).await.unwrap().compute().await.unwrap();
    let schema = back[0].schema();
    let types: Vec<String> = schema.fields().iter().map(|f| f.data_type().to_string()).collect();
    assert_eq!(&types[..6], ["Int64", "Int64", "Float64", "Utf8", "Boolean", "Date32"], "{schema:?}");
    assert!(types[6].starts_with("Timestamp") && types[7].starts_with("Timestamp"), "{schema:?}");
    // Zoned timestamps read back as UTC instants without a zone: compare them as instants.
    let instants = |batches: &[RecordBatch]| -> Vec<RecordBatch> {
        batches
            .iter()
            .map(|b| {
                let mut columns = b.columns().to_vec();
                columns[7] =
                    arrow::compute::cast(&columns[7], &DataType::Timestamp(TimeUnit::Microsecond, None))
                        .unwrap();
                RecordBatch::try_from_iter(b.schema().fields().iter().map(|f| f.name().clone()).zip(columns))
                    .unwrap()
            })
            .collect()
    };
    assert_same_table(&instants(&back), &instants(&input), "id").unwrap();
    assert_eq!(float_bits(&back), float_bits(&input));

    // A rerun reuses every task and keeps the parts; a deleted part is rewritten, identical.
    let again = df.to_csv(&out.join("csv").display().to_string()).await.unwrap();
    assert_eq!(again.run.executed, 0, "{:?}", again.run);
    std::fs::remove_file(out.join("csv/part-00002.csv")).unwrap();
    std::fs::remove_file(out.join("json/part-00001.jsonl")).unwrap();
    let rerun = df.to_csv(&out.join("csv").display().to_string()).await.unwrap();
    assert_eq!(rerun.run.executed, 1, "{:?}", rerun.run);
    let rerun = df.to_json(&out.join("json").display().to_string()).await.unwrap();
    assert_eq!(rerun.run.executed, 1, "{:?}", rerun.run);
    assert_eq!(assert_parts(&out.join("csv"), "csv", 4, 100), csv_parts);
    assert_eq!(assert_parts(&out.join("json"), "jsonl", 4, 100), json_parts);
}

#[test]
fn job_file_outputs_write_csv_and_json_that_duckdb_reads() {
    let tmp = tempfile::tempdir().unwrap();
    write_trips(&tmp.path().join("data"), &[300, 0, 200], 128).unwrap();
    std::fs::write(
        tmp.path().join("job.toml"),
        "[datasets.trips]\nread_parquet = \"data/*.parquet\"\n\
         [datasets.far]\nfrom = \"trips\"\nfilter = \"distance > 5000 OR vendor IS NULL\"\n\
         [[outputs]]\ndataset = \"far\"\nto_csv = \"out/csv\"\n\
         [[outputs]]\ndataset = \"far\"\nto_json = \"out/json\"\n",
    )
    .unwrap();
    let out = shoal(&["run", "job.toml", "--root", "root", "--executor", "sync"], tmp.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("parts to") && stderr.contains("out/csv") && stderr.contains("out/json"),
        "{stderr}"
    );
    assert_eq!(names(&tmp.path().join("out/csv"))[..2], ["_SUCCESS", "part-00000.csv"]);
    assert_eq!(names(&tmp.path().join("out/json")).len(), 4);

    // As pandas, an empty string is written as an empty field, which reads back as missing.
    let d = tmp.path().display();
    let reference = format!(
        "SELECT id, vendor, fare::DOUBLE AS fare, distance, passengers::BIGINT AS passengers, pickup_date, \
         pickup_at, nullif(note, '') AS note FROM read_parquet('{d}/data/*.parquet') \
         WHERE distance > 5000 OR vendor IS NULL"
    );
    assert_duckdb_agrees(
        &reference,
        &[format!("SELECT * FROM read_csv('{d}/out/csv/*.csv', header = true, delim = ',')")],
        false,
    );
    let json_reference = reference.replace("nullif(note, '')", "note");
    assert_duckdb_agrees(
        &json_reference,
        &[format!("SELECT * FROM read_json('{d}/out/json/*.jsonl', format = 'newline_delimited')")],
        false,
    );

    // Run again: every task is reused, the parts are the same bytes.
    let before = [assert_parts(&tmp.path().join("out/csv"), "csv", 3, rows(&tmp.path().join("out/csv")))];
    let again = shoal(&["run", "job.toml", "--root", "root", "--executor", "sync"], tmp.path());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success() && stderr.matches("(0 tasks run").count() == 2, "{stderr}");
    assert_eq!(
        [assert_parts(&tmp.path().join("out/csv"), "csv", 3, rows(&tmp.path().join("out/csv")))],
        before
    );

    // `shoal explain` names the writer.
    let explain = shoal(&["explain", "job.toml", "--root", "root"], tmp.path());
    assert!(String::from_utf8_lossy(&explain.stdout).contains("(to_csv out/csv)"));
}

#[test]
fn an_output_with_two_destinations_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    write_trips(&tmp.path().join("data"), &[50], 128).unwrap();
    let job = |outputs: &str| {
        std::fs::write(
            tmp.path().join("job.toml"),
            format!("[datasets.trips]\nread_parquet = \"data/*.parquet\"\n{outputs}"),
        )
        .unwrap();
        shoal(&["run", "job.toml", "--root", "root"], tmp.path())
    };
    let out = job("[[outputs]]\ndataset = \"trips\"\nto_parquet = \"out/a\"\nto_csv = \"out/b\"\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("output of 'trips' names to_parquet and to_csv"), "{stderr}");
    let out = job("[[outputs]]\ndataset = \"trips\"\nto_json = \"out/a\"\nshow = true\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("names to_json and show"), "{stderr}");
    let out = job("[[outputs]]\ndataset = \"trips\"\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("needs one of `to_parquet"), "{stderr}");
    assert!(!tmp.path().join("root/commits").exists() && !tmp.path().join("out").exists());
}
