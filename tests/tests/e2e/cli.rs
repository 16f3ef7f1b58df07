//! The `shoal` command line: the quickstart job runs and agrees with DuckDB; bad input gives one
//! clear error naming it, a non-zero exit code, and commits nothing.

use shoal_tests::python::duckdb_query;
use shoal_tests::read_parquet_dir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `shoal` binary built next to this test binary (`target/debug/shoal`).
pub fn shoal_bin() -> PathBuf {
    // A copy elsewhere (SHOAL_BIN), when several checkouts share one target directory.
    if let Some(bin) = std::env::var_os("SHOAL_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("shoal");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --bins` first (scripts/test.sh does)",
        bin.display()
    );
    bin
}

pub fn shoal(args: &[&str], cwd: &Path) -> Output {
    Command::new(shoal_bin()).args(args).current_dir(cwd).output().unwrap()
}

/// Copies the quickstart job and its CSV files into `dir`.
pub fn quickstart_copy(dir: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
    std::fs::create_dir_all(dir.join("trips")).unwrap();
    std::fs::copy(src.join("job.toml"), dir.join("job.toml")).unwrap();
    for part in 0..4 {
        let name = format!("trips/part-{part}.csv");
        std::fs::copy(src.join(&name), dir.join(&name)).unwrap();
    }
}

#[test]
fn the_quickstart_job_runs_and_agrees_with_duckdb() {
    let tmp = tempfile::tempdir().unwrap();
    quickstart_copy(tmp.path());
    let out = shoal(&["run", "job.toml", "--root", "root"], tmp.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "shoal run failed:\n{stderr}");
    assert!(
        stdout.contains("| trip_id |") && stdout.contains("total_eur"),
        "prints the preview table:\n{stdout}"
    );
    assert_eq!(stdout.lines().filter(|l| l.starts_with("| ") && !l.contains("trip_id")).count(), 8);

    let written = read_parquet_dir(tmp.path().join("out/trips_priced")).unwrap();
    assert!(tmp.path().join("out/trips_priced/_SUCCESS").is_file());
    let reference = tmp.path().join("ref.parquet");
    duckdb_query(
        &format!(
            "SELECT trip_id, lower(trim(note)) AS note FROM read_csv('{}/trips/*.csv', header = true) \
             WHERE distance_km >= 2 AND passengers > 0",
            tmp.path().display()
        ),
        &reference,
    )
    .unwrap();
    let expected = read_parquet_dir(&reference).unwrap();
    let project = |batches: &[arrow::record_batch::RecordBatch]| -> Vec<arrow::record_batch::RecordBatch> {
        batches
            .iter()
            .map(|b| {
                let s = b.schema();
                b.project(&[s.index_of("trip_id").unwrap(), s.index_of("note").unwrap()]).unwrap()
            })
            .collect()
    };
    shoal_tests::data::assert_same_table(&project(&written), &expected, "trip_id").unwrap();

    // A second run reuses every committed task.
    let again = shoal(&["run", "job.toml", "--root", "root"], tmp.path());
    assert!(again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("0 tasks run, 4 reused"), "{stderr}");

    let explain = shoal(&["explain", "job.toml", "--root", "root"], tmp.path());
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(explain.status.success());
    assert!(text.contains("== task graph: 4 tasks in 1 stages =="), "{text}");
    assert!(text.contains("stage 0: scan-filter-assign-map-assign-map-select (4 tasks"), "{text}");
}

#[test]
fn bad_input_fails_with_one_clear_error_and_commits_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    quickstart_copy(tmp.path());
    std::fs::write(tmp.path().join("corrupt.parquet"), b"PAR1 this is not a parquet file at all PAR1")
        .unwrap();
    std::fs::write(tmp.path().join("bad.wasm"), b"\0asm garbage").unwrap();
    let read = "[datasets.t]\nread_csv = \"trips/*.csv\"\n";
    let show = "[[outputs]]\ndataset = \"x\"\nto_parquet = \"out\"\n";
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown column",
            format!("{read}[datasets.x]\nfrom = \"t\"\nfilter = \"fare_usd > 2\"\n{show}"),
            "fare_usd",
        ),
        (
            "malformed expression",
            format!("{read}[datasets.x]\nfrom = \"t\"\nassign = {{ y = \"fare +* 2\" }}\n{show}"),
            "fare +* 2",
        ),
        (
            "missing file",
            format!("[datasets.x]\nread_parquet = \"nope/*.parquet\"\n{show}"),
            "nope/*.parquet",
        ),
        (
            "corrupt parquet",
            format!("[datasets.x]\nread_parquet = \"corrupt.parquet\"\n{show}"),
            "corrupt.parquet",
        ),
        (
            "bad module",
            format!(
                "{read}[datasets.x]\nfrom = \"t\"\nmap_partitions = {{ module = \"bad.wasm\", function = \"f\" }}\n{show}"
            ),
            "bad.wasm",
        ),
        (
            "unknown function",
            format!(
                "{read}[datasets.x]\nfrom = \"t\"\nmap_partitions = {{ module = \"builtin:examples\", function = \"nope\" }}\n{show}"
            ),
            "no function 'nope'",
        ),
        (
            "unknown dataset",
            format!("[datasets.y]\nread_csv = \"trips/*.csv\"\n{show}"),
            "unknown dataset 'x'",
        ),
        (
            "typo in a key",
            format!("{read}[datasets.x]\nfrom = \"t\"\nfliter = \"fare > 1\"\n{show}"),
            "fliter",
        ),
    ];
    for (name, job, needle) in cases {
        let file = format!("{}.toml", name.replace(' ', "_"));
        std::fs::write(tmp.path().join(&file), job).unwrap();
        let out = shoal(&["run", &file, "--root", "root"], tmp.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: should fail");
        assert!(stderr.contains(needle), "{name}: error should name '{needle}':\n{stderr}");
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "{name}: one error:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name}: no panic:\n{stderr}");
        let commits = tmp.path().join("root/commits");
        assert!(
            !commits.exists() || std::fs::read_dir(&commits).unwrap().count() == 0,
            "{name}: nothing committed"
        );
        assert!(!tmp.path().join("out").exists(), "{name}: no output written");
    }
}

#[test]
fn the_relational_example_agrees_with_duckdb() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    quickstart_copy(&root.join("quickstart"));
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/relational");
    std::fs::create_dir_all(root.join("relational")).unwrap();
    for f in ["job.toml", "vendors.csv"] {
        std::fs::copy(src.join(f), root.join("relational").join(f)).unwrap();
    }
    let out = shoal(&["run", "relational/job.toml", "--root", "jobroot"], root);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "shoal run failed:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Alpha Cabs") && stdout.contains("| distance_km |"), "{stdout}");

    let written = read_parquet_dir(root.join("relational/out/vendor_revenue")).unwrap();
    let reference = root.join("ref.parquet");
    duckdb_query(
        &format!(
            "SELECT g.*, v.name, v.fleet FROM (SELECT vendor, count(*) AS trips, sum(fare) AS revenue, \
             avg(distance_km) AS mean_km, sum(passengers) AS riders \
             FROM read_csv('{d}/quickstart/trips/*.csv', header = true) GROUP BY vendor) g \
             LEFT JOIN read_csv('{d}/relational/vendors.csv', header = true) v ON g.vendor = v.vendor \
             ORDER BY revenue DESC",
            d = root.display()
        ),
        &reference,
    )
    .unwrap();
    let expected = read_parquet_dir(&reference).unwrap();
    shoal_tests::data::assert_same_rows_ordered(&written, &expected).unwrap();

    let explain = shoal(&["explain", "relational/job.toml", "--root", "jobroot"], root);
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(text.contains("strategy=broadcast side=right") && text.contains("strategy=tree"), "{text}");
}

#[test]
fn the_run_report_uses_the_given_memory_and_prices() {
    let tmp = tempfile::tempdir().unwrap();
    quickstart_copy(tmp.path());
    let out = shoal(
        &[
            "run",
            "job.toml",
            "--root",
            "root",
            "--function-memory",
            "4096",
            "--prices",
            "gb_second=1,thousand_puts=0",
        ],
        tmp.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("GB-s at 4096 MB") && stderr.contains("estimated cost"), "{stderr}");
    let reports: Vec<serde_json::Value> = std::fs::read_dir(tmp.path().join("root/jobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".report.json"))
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect();
    assert_eq!(reports.len(), 2, "one report per output's job");
    for r in &reports {
        assert_eq!(r["prices"]["per_gb_second"], 1.0);
        assert_eq!(r["prices"]["per_thousand_put"], 0.0);
        assert_eq!(r["prices"]["per_million_invocations"], 0.2, "unnamed prices keep their defaults");
        assert_eq!(r["function_memory_mb"], 4096);
        // Compute cost is GB-seconds at 1 USD each.
        let (gbs, compute) = (
            r["function_gb_seconds"].as_f64().unwrap(),
            r["estimated_cost_usd"]["compute"].as_f64().unwrap(),
        );
        assert!(gbs > 0.0 && (gbs - compute).abs() < 1e-12, "{r}");
    }
    let bad = shoal(&["run", "job.toml", "--prices", "gb_second=cheap"], tmp.path());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && stderr.contains("gb_second: 'cheap' is not a price"), "{stderr}");
}

#[test]
fn help_explains_commands_and_executors() {
    let out = shoal(&["run", "--help"], Path::new("."));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for word in ["--executor", "sync", "threads", "processes", "--workers", "--root", "--endpoint"] {
        assert!(text.contains(word), "run --help mentions {word}:\n{text}");
    }
    let out = shoal(&["--help"], Path::new("."));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("run") && text.contains("explain"), "{text}");
}
