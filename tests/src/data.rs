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

/// Schema of the generated `sales` table (see [`write_sales`]).
pub fn sales_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("cust", DataType::Int64, true),
        Field::new("sku", DataType::Utf8, true),
        Field::new("region", DataType::Utf8, true),
        Field::new("qty", DataType::Int32, true),
        Field::new("price", DataType::Decimal128(12, 2), true),
        Field::new("day", DataType::Date32, true),
        Field::new("score", DataType::Float64, true),
    ]))
}

/// Writes `files` Parquet files of sales into `dir`, for the relational tests: every 17th file
/// is empty; `cust` is high-cardinality (0..`customers`); `sku` is skewed (half the rows are
/// `hot`); about 5% nulls in every nullable column; ids increase with the file index. Returns
/// the total row count.
pub fn write_sales(dir: &Path, files: usize, rows_per_file: usize, customers: u64) -> Result<usize> {
    std::fs::create_dir_all(dir)?;
    let regions = ["north", "south", "east", "west", "zürich"];
    let mut id = 0i64;
    for f in 0..files {
        let mut rng = Rng::new(7_000 + f as u64);
        let n = if f % 17 == 3 { 0 } else { rows_per_file / 2 + rng.below(rows_per_file as u64) as usize };
        let (mut ids, mut cust, mut skus, mut region) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut qty, mut price, mut day, mut score) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            ids.push(id);
            id += 1;
            cust.push((!rng.chance(0.05)).then(|| rng.below(customers) as i64));
            let sku = if rng.chance(0.5) { "hot".to_string() } else { format!("sku-{:04}", rng.below(1000)) };
            skus.push((!rng.chance(0.05)).then_some(sku));
            region.push((!rng.chance(0.05)).then(|| regions[rng.below(5) as usize]));
            qty.push((!rng.chance(0.05)).then(|| rng.below(50) as i32 - 5));
            price.push((!rng.chance(0.05)).then(|| rng.below(100_000) as i128));
            day.push((!rng.chance(0.05)).then(|| 18_262 + rng.below(1_500) as i32));
            score.push((!rng.chance(0.05)).then(|| rng.below(1 << 40) as f64 / 1e6 - 300_000.0));
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(Int64Array::from(cust)),
            Arc::new(StringArray::from(skus)),
            Arc::new(StringArray::from(region)),
            Arc::new(Int32Array::from(qty)),
            Arc::new(Decimal128Array::from(price).with_precision_and_scale(12, 2)?),
            Arc::new(Date32Array::from(day)),
            Arc::new(Float64Array::from(score)),
        ];
        let batch = RecordBatch::try_new(sales_schema(), columns)?;
        write_parquet(&dir.join(format!("sales-{f:04}.parquet")), &batch, 1024)?;
    }
    Ok(id as usize)
}

/// Writes the `customers` table: one row per even customer id below `customers` plus some ids
/// no sale has, in `files` files; columns `cust`, `segment` (nullable), `credit` (decimal) and
/// `region` (clashes with the sales column, for suffixes).
pub fn write_customers(dir: &Path, files: usize, customers: u64) -> Result<usize> {
    std::fs::create_dir_all(dir)?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("cust", DataType::Int64, false),
        Field::new("segment", DataType::Utf8, true),
        Field::new("credit", DataType::Decimal128(10, 2), true),
        Field::new("region", DataType::Utf8, true),
    ]));
    let ids: Vec<i64> = (0..customers as i64 + 500).filter(|c| c % 2 == 0).collect();
    let per = ids.len().div_ceil(files.max(1));
    let mut rng = Rng::new(99);
    for (f, chunk) in ids.chunks(per).enumerate() {
        let segment: StringArray = chunk
            .iter()
            .map(|_| (!rng.chance(0.1)).then(|| ["retail", "b2b", "gov"][rng.below(3) as usize]))
            .collect();
        let credit: Decimal128Array = chunk.iter().map(|_| Some(rng.below(1_000_000) as i128)).collect();
        let region: StringArray = chunk.iter().map(|c| Some(format!("r{}", c % 3))).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(chunk.to_vec())),
                Arc::new(segment),
                Arc::new(credit.with_precision_and_scale(10, 2)?),
                Arc::new(region),
            ],
        )?;
        write_parquet(&dir.join(format!("customers-{f:03}.parquet")), &batch, 4096)?;
    }
    Ok(ids.len())
}

fn write_parquet(path: &Path, batch: &RecordBatch, row_group_rows: usize) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group_rows))
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    if batch.num_rows() > 0 {
        writer.write(batch)?;
    }
    writer.close()?;
    Ok(())
}

/// A cell as a sort key: nulls first, then numbers by value (so a decimal `12.50` and a double
/// `12.5` sort alike), then strings.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum SortCell {
    Null,
    Num(f64),
    Str(String),
}

/// A row as formatted cells (`None` for null).
type Row = Vec<Option<String>>;

fn rows_of(batches: &[RecordBatch]) -> Result<(Vec<String>, Vec<Row>)> {
    let Some(first) = batches.first() else { return Ok((vec![], vec![])) };
    let names = first.schema().fields().iter().map(|f| f.name().clone()).collect();
    let opts = FormatOptions::default();
    let mut rows = Vec::new();
    for b in batches {
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()?;
        for r in 0..b.num_rows() {
            rows.push(b.columns().iter().zip(&fmts).map(|(c, f)| cell(f, c, r)).collect());
        }
    }
    Ok((names, rows))
}

fn sort_key(row: &[Option<String>]) -> Vec<SortCell> {
    row.iter()
        .map(|c| match c {
            None => SortCell::Null,
            Some(s) => s.parse::<f64>().map(SortCell::Num).unwrap_or_else(|_| SortCell::Str(s.clone())),
        })
        .collect()
}

/// Asserts two results hold the same rows, in any order: same column names, and the same
/// multiset of rows (sorted by every column; cells compared as in [`assert_same_table`]).
/// For results without a unique key (group-bys, joins).
pub fn assert_same_rows(actual: &[RecordBatch], expected: &[RecordBatch]) -> Result<()> {
    compare_rows(actual, expected, true)
}

/// Asserts two results hold the same rows in the same order (sorts, repartitions).
pub fn assert_same_rows_ordered(actual: &[RecordBatch], expected: &[RecordBatch]) -> Result<()> {
    compare_rows(actual, expected, false)
}

fn compare_rows(actual: &[RecordBatch], expected: &[RecordBatch], sort: bool) -> Result<()> {
    let (an, mut a) = rows_of(actual)?;
    let (en, mut e) = rows_of(expected)?;
    ensure!(a.len() == e.len(), "row counts differ: shoal {} vs reference {}", a.len(), e.len());
    if a.is_empty() {
        return Ok(());
    }
    ensure!(an == en, "columns differ: shoal {an:?} vs reference {en:?}");
    if sort {
        let by =
            |x: &Row, y: &Row| sort_key(x).partial_cmp(&sort_key(y)).unwrap_or(std::cmp::Ordering::Equal);
        a.sort_by(by);
        e.sort_by(by);
    }
    for (i, (x, y)) in a.iter().zip(&e).enumerate() {
        for (c, (p, q)) in x.iter().zip(y).enumerate() {
            if !same_value(p, q) {
                bail!(
                    "column '{}' differs at row {i}: shoal {p:?} vs reference {q:?}\n  shoal row:     {x:?}\n  reference row: {y:?}",
                    an[c]
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

    #[test]
    fn row_comparison_ignores_order_unless_asked() {
        let a = trips_batch(0, 40, 3).unwrap();
        let reversed = a.slice(20, 20);
        let swapped = arrow::compute::concat_batches(&a.schema(), &[reversed, a.slice(0, 20)]).unwrap();
        assert_same_rows(std::slice::from_ref(&a), std::slice::from_ref(&swapped)).unwrap();
        assert!(assert_same_rows_ordered(std::slice::from_ref(&a), std::slice::from_ref(&swapped)).is_err());
        assert_same_rows_ordered(std::slice::from_ref(&a), std::slice::from_ref(&a)).unwrap();
        let other = trips_batch(0, 40, 4).unwrap();
        assert!(assert_same_rows(&[a], &[other]).is_err());
    }
}
