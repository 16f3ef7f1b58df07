//! Reading the files people really have. CSV missing values as pandas reads them: a numeric
//! column whose gaps are written `NA`, `N/A`, `null`, `nan` or left empty is numeric with
//! nulls (not a run-time cast error), checked against DuckDB told pandas' list of missing
//! strings; `na_values` adds strings and `keep_default_na = false` keeps only those.

use crate::cli::shoal;
use shoal_tests::python::duckdb_query;
use shoal_tests::read_parquet_dir;

/// Values of a numeric column with pandas' usual gaps; every file has a gap, and the first
/// rows of the first file are plain numbers (so inference sees numbers before `NA`).
fn write_gappy(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let gaps = ["NA", "N/A", "", "null", "nan", "NULL", "#N/A", "<NA>", "None", "-999"];
    for f in 0..3 {
        let mut text = String::from("id,x,label\n");
        for i in 0..40 {
            let id = f * 100 + i;
            let x = if i > 5 && i % 4 == 0 {
                gaps[(id as usize / 4) % gaps.len()].to_string()
            } else {
                format!("{}.5", id)
            };
            let label = if i % 7 == 0 { "NA".to_string() } else { format!("l{}", i % 3) };
            text.push_str(&format!("{id},{x},{label}\n"));
        }
        std::fs::write(dir.join(format!("in/part-{f}.csv")), text).unwrap();
    }
}

fn run_job(dir: &std::path::Path, extra: &str) -> Vec<arrow::record_batch::RecordBatch> {
    std::fs::write(
        dir.join("job.toml"),
        format!(
            "[datasets.raw]\nread_csv = \"in/*.csv\"\n{extra}\n\
             [datasets.sums]\nfrom = \"raw\"\ngroupby = [\"label\"]\n\
             agg = {{ n = \"count(*)\", xs = \"count(x)\", total = \"sum(x)\" }}\n\
             [[outputs]]\ndataset = \"sums\"\nto_parquet = \"out\"\n"
        ),
    )
    .unwrap();
    let out = shoal(&["run", "job.toml", "--root", "root", "--executor", "sync"], dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    read_parquet_dir(dir.join("out")).unwrap()
}

fn reference(dir: &std::path::Path, nullstr: &[&str]) -> Vec<arrow::record_batch::RecordBatch> {
    let list: Vec<String> = nullstr.iter().map(|s| format!("'{s}'")).collect();
    let path = dir.join("ref.parquet");
    duckdb_query(
        &format!(
            "SELECT label, count(*) AS n, count(x) AS xs, sum(x) AS total FROM read_csv('{}/in/*.csv', \
             header = true, nullstr = [{}], types = {{'x': 'DOUBLE', 'label': 'VARCHAR'}}) GROUP BY label",
            dir.display(),
            list.join(", ")
        ),
        &path,
    )
    .unwrap();
    read_parquet_dir(&path).unwrap()
}

#[test]
fn csv_missing_values_read_as_pandas_reads_them() {
    let tmp = tempfile::tempdir().unwrap();
    write_gappy(tmp.path());
    let got = run_job(tmp.path(), "");
    let expected = reference(tmp.path(), &shoal_protocol::PANDAS_NA);
    shoal_tests::data::assert_same_table(&got, &expected, "label").unwrap();
    // The `NA` labels are missing too: they group as one null label, as in pandas.
    let labels: usize =
        got.iter().map(|b| b.column(b.schema().index_of("label").unwrap()).null_count()).sum();
    assert_eq!(labels, 1);
}

#[test]
fn na_values_add_strings_and_keep_default_na_false_drops_the_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    write_gappy(tmp.path());
    // -999 joins the defaults.
    let got = run_job(tmp.path(), "na_values = [\"-999\"]");
    let mut with_sentinel: Vec<&str> = shoal_protocol::PANDAS_NA.to_vec();
    with_sentinel.push("-999");
    shoal_tests::data::assert_same_table(&got, &reference(tmp.path(), &with_sentinel), "label").unwrap();

    // Only the listed strings: `NA` is a label again.
    std::fs::write(
        tmp.path().join("job.toml"),
        "[datasets.raw]\nread_csv = \"in/*.csv\"\nkeep_default_na = false\nna_values = [\"\"]\n\
         [datasets.labels]\nfrom = \"raw\"\nvalue_counts = \"label\"\n\
         [[outputs]]\ndataset = \"labels\"\nto_parquet = \"labels\"\n",
    )
    .unwrap();
    let out = shoal(&["run", "job.toml", "--root", "root2", "--executor", "sync"], tmp.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let counts = read_parquet_dir(tmp.path().join("labels")).unwrap();
    let labels: Vec<String> = counts
        .iter()
        .flat_map(|b| {
            let col = b.column(b.schema().index_of("label").unwrap()).clone();
            let strings = arrow::compute::cast(&col, &arrow::datatypes::DataType::Utf8).unwrap();
            let strings = strings.as_any().downcast_ref::<arrow::array::StringArray>().unwrap().clone();
            strings.iter().map(|v| v.unwrap_or("<null>").to_string()).collect::<Vec<_>>()
        })
        .collect();
    assert!(labels.contains(&"NA".to_string()), "{labels:?}");
}

#[test]
fn csv_schema_is_inferred_from_first_middle_and_last_files_widened() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("in")).unwrap();
    // The first files hold integers only; the last one decimals: x must be read as floats.
    for f in 0..5 {
        let mut text = String::from("id,x,label\n");
        for i in 0..30 {
            let x = if f == 4 && i % 3 == 0 { format!("{i}.25") } else { format!("{}", f * 10 + i) };
            text.push_str(&format!("{},{x},l{}\n", f * 100 + i, i % 4));
        }
        std::fs::write(dir.join(format!("in/part-{f}.csv")), text).unwrap();
    }
    let got = run_job(dir, "");
    let expected = reference(dir, &shoal_protocol::PANDAS_NA);
    shoal_tests::data::assert_same_table(&got, &expected, "label").unwrap();

    // Files that disagree on their columns are one clear error naming both.
    std::fs::write(dir.join("in/part-9.csv"), "id,y\n1,2\n").unwrap();
    let out = shoal(&["run", "job.toml", "--root", "root3", "--executor", "sync"], dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("part-9.csv has [id, y]") && err.contains("part-0.csv has [id, x, label]"), "{err}");
}

#[test]
fn dtype_overrides_inference_so_zero_padded_codes_stay_text() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let mut text = String::from("zip,x,label\n");
    for i in 0..50 {
        text.push_str(&format!("{:05},{i},l{}\n", i * 37 % 1000, i % 3));
    }
    std::fs::write(dir.join("in/part-0.csv"), text).unwrap();
    std::fs::write(
        dir.join("job.toml"),
        "[datasets.raw]\nread_csv = \"in/*.csv\"\ndtype = { zip = \"string\", x = \"float64\" }\n\
         [datasets.picked]\nfrom = \"raw\"\nselect = [\"zip\", \"x\"]\n\
         [[outputs]]\ndataset = \"picked\"\nto_parquet = \"out\"\n",
    )
    .unwrap();
    let out = shoal(&["run", "job.toml", "--root", "root", "--executor", "sync"], dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = read_parquet_dir(dir.join("out")).unwrap();
    let path = dir.join("ref.parquet");
    duckdb_query(
        &format!(
            "SELECT zip, x FROM read_csv('{}/in/*.csv', header = true, types = {{'zip': 'VARCHAR', 'x': 'DOUBLE'}})",
            dir.display()
        ),
        &path,
    )
    .unwrap();
    shoal_tests::data::assert_same_table(&got, &read_parquet_dir(&path).unwrap(), "zip").unwrap();
    let zips = got[0].column(got[0].schema().index_of("zip").unwrap()).clone();
    let zips = arrow::compute::cast(&zips, &arrow::datatypes::DataType::Utf8).unwrap();
    let zips = zips.as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
    assert_eq!(zips.value(0), "00000", "leading zeros kept");

    // A dtype for a column that is not there names it.
    std::fs::write(dir.join("bad.toml"), "[datasets.raw]\nread_csv = \"in/*.csv\"\ndtype = { zipcode = \"string\" }\n[[outputs]]\ndataset = \"raw\"\nshow = true\n").unwrap();
    let bad = shoal(&["run", "bad.toml", "--root", "root2"], dir);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("no column 'zipcode'"), "{err}");
}
