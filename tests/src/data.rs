//! Generated test data and whole-table comparison.
//!
//! [`write_trips`] writes deterministic Parquet files with nulls, decimals, dates, timestamps,
//! strings, several row groups and an empty file. [`assert_same_table`] compares two results
//! as whole tables: same column names, same rows (after sorting by a key), same values cell by
//! cell (floats to 1e-9 relative).

use anyhow::{Context, Result, bail, ensure};
use arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A small deterministic generator (SplitMix64): the same seed gives the same data everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }
}

pub fn trips_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("vendor", DataType::Utf8, true),
        Field::new("fare", DataType::Decimal128(10, 2), true),
        Field::new("distance", DataType::Float64, true),
        Field::new("passengers", DataType::Int32, true),
        Field::new("pickup_date", DataType::Date32, true),
        Field::new("pickup_at", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("note", DataType::Utf8, true),
    ]))
}

/// `n` rows with ids from `first_id`; about 10% nulls in every nullable column.
pub fn trips_batch(first_id: i64, n: usize, seed: u64) -> Result<RecordBatch> {
    let mut rng = Rng::new(seed);
    let vendors = ["A", "B", "C", "Dee", "ünï"];
    let notes = ["  Airport ", "CITY centre", "airport", " Suburbs", "STATION  ", ""];
    let mut ids = Vec::with_capacity(n);
    let mut vendor = Vec::with_capacity(n);
    let mut fare = Vec::with_capacity(n);
    let mut distance = Vec::with_capacity(n);
    let mut passengers = Vec::with_capacity(n);
    let mut date = Vec::with_capacity(n);
    let mut ts = Vec::with_capacity(n);
    let mut note = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(first_id + i as i64);
        vendor.push((!rng.chance(0.1)).then(|| vendors[rng.below(5) as usize]));
        fare.push((!rng.chance(0.1)).then(|| (rng.below(20_000) as i128) - 500));
        distance.push((!rng.chance(0.1)).then(|| rng.below(1_000_000) as f64 / 37.0));
        passengers.push((!rng.chance(0.1)).then(|| rng.below(7) as i32));
        // 2020-01-01 is day 18262.
        date.push((!rng.chance(0.1)).then(|| 18_262 + rng.below(2_000) as i32));
        ts.push(
            (!rng.chance(0.1)).then(|| 1_577_836_800_000_000 + rng.below(200_000_000) as i64 * 1_000_000),
        );
        note.push((!rng.chance(0.1)).then(|| notes[rng.below(6) as usize]));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(StringArray::from(vendor)),
        Arc::new(Decimal128Array::from(fare).with_precision_and_scale(10, 2)?),
        Arc::new(Float64Array::from(distance)),
        Arc::new(Int32Array::from(passengers)),
        Arc::new(Date32Array::from(date)),
        Arc::new(TimestampMicrosecondArray::from(ts)),
        Arc::new(StringArray::from(note)),
    ];
    Ok(RecordBatch::try_new(trips_schema(), columns)?)
}

/// Writes one Parquet file per entry of `rows_per_file` (0 gives an empty file) into `dir`,
/// with row groups of at most `row_group_rows` rows. Returns the paths.
pub fn write_trips(dir: &Path, rows_per_file: &[usize], row_group_rows: usize) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut paths = Vec::new();
    let mut next_id = 0i64;
    for (i, &rows) in rows_per_file.iter().enumerate() {
        let path = dir.join(format!("trips-{i:03}.parquet"));
        let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(row_group_rows.max(1)))
            .build();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, trips_schema(), Some(props))?;
        if rows > 0 {
            writer.write(&trips_batch(next_id, rows, 1000 + i as u64)?)?;
        }
        writer.close()?;
        next_id += rows as i64;
        paths.push(path);
    }
    Ok(paths)
}

/// Same rows as a CSV file with a header (for the CSV scan cases).
pub fn write_csv(path: &Path, batch: &RecordBatch) -> Result<()> {
    let file = std::fs::File::create(path)?;
    let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(file);
    w.write(batch)?;
    Ok(())
}

fn concat_sorted(batches: &[RecordBatch], key: &str) -> Result<Option<RecordBatch>> {
    let Some(first) = batches.first() else { return Ok(None) };
    let all = arrow::compute::concat_batches(&first.schema(), batches)?;
    let col = all.column_by_name(key).with_context(|| format!("no key column '{key}'"))?;
    let idx = arrow::compute::sort_to_indices(col, None, None)?;
    let cols =
        all.columns().iter().map(|c| arrow::compute::take(c, &idx, None)).collect::<Result<Vec<_>, _>>()?;
    Ok(Some(RecordBatch::try_new(all.schema(), cols)?))
}

fn cell(f: &ArrayFormatter<'_>, arr: &ArrayRef, row: usize) -> Option<String> {
    if arr.is_null(row) { None } else { Some(f.value(row).to_string()) }
}

fn same_value(a: &Option<String>, b: &Option<String>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) if a == b => true,
        (Some(a), Some(b)) => match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => false,
        },
        _ => false,
    }
}

/// Asserts two results hold the same table: same column names in order, same number of rows,
/// and, after sorting both by `key`, equal cells (NULL equals NULL; numbers compared by value,
/// so `12.50` (decimal) equals `12.5` (double); floats to 1e-9 relative).
pub fn assert_same_table(actual: &[RecordBatch], expected: &[RecordBatch], key: &str) -> Result<()> {
    let rows = |b: &[RecordBatch]| b.iter().map(|b| b.num_rows()).sum::<usize>();
    ensure!(
        rows(actual) == rows(expected),
        "row counts differ: shoal {} vs reference {}",
        rows(actual),
        rows(expected)
    );
    let (Some(a), Some(e)) = (concat_sorted(actual, key)?, concat_sorted(expected, key)?) else {
        return Ok(());
    };
    let names = |b: &RecordBatch| b.schema().fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>();
    ensure!(names(&a) == names(&e), "columns differ: shoal {:?} vs reference {:?}", names(&a), names(&e));
    let opts = FormatOptions::default();
    for (i, name) in names(&a).iter().enumerate() {
        let (ac, ec) = (a.column(i), e.column(i));
        let af = ArrayFormatter::try_new(ac.as_ref(), &opts)?;
        let ef = ArrayFormatter::try_new(ec.as_ref(), &opts)?;
        for row in 0..a.num_rows() {
            let (x, y) = (cell(&af, ac, row), cell(&ef, ec, row));
            if !same_value(&x, &y) {
                bail!(
                    "column '{name}' differs at sorted row {row} (key {:?}): shoal {x:?} ({}) vs reference {y:?} ({})",
                    cell(
                        &ArrayFormatter::try_new(a.column_by_name(key).context("key")?.as_ref(), &opts)?,
                        a.column_by_name(key).context("key")?,
                        row
                    ),
                    ac.data_type(),
                    ec.data_type()
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_deterministic_and_has_nulls() {
        let a = trips_batch(0, 500, 7).unwrap();
        let b = trips_batch(0, 500, 7).unwrap();
        assert_eq!(a, b);
        for c in a.columns().iter().skip(1) {
            assert!(c.null_count() > 10 && c.null_count() < 100, "{}", c.null_count());
        }
    }

    #[test]
    fn comparison_finds_differences() {
        let a = trips_batch(0, 50, 1).unwrap();
        let mut shuffled = a.slice(25, 25);
        shuffled = arrow::compute::concat_batches(&a.schema(), &[shuffled, a.slice(0, 25)]).unwrap();
        assert_same_table(std::slice::from_ref(&a), &[shuffled], "id").unwrap();
        let other = trips_batch(0, 50, 2).unwrap();
        let err = assert_same_table(std::slice::from_ref(&a), &[other], "id").unwrap_err().to_string();
        assert!(err.contains("differs"), "{err}");
        assert!(assert_same_table(std::slice::from_ref(&a), &[a.slice(0, 49)], "id").is_err());
    }
}
