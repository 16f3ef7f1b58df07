//! The sort of one range-shuffle bucket, in memory: shoal's sort of a held table
//! (`ops::table::sort`) against a DataFusion plan's sort of the same batches, in one process.
//!
//!   cargo bench -p shoal --bench sort_kernel -- FILE.parquet [KEY] [ROUNDS]
//!
//! The file is read into batches of 1,000 rows with buffers of their own, as a bucket arrives
//! (one small batch per input batch of every map task), and sorted ascending by `KEY`
//! (`l_extendedprice` by default) `ROUNDS` times (7) by each; prints each round and the medians.
//! No storage and no other task: the two sorts alone.

use arrow::record_batch::RecordBatch;
use datafusion::prelude::{SessionContext, col};
use shoal_protocol::SortKey;
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let usage = "usage: sort_kernel FILE.parquet [KEY] [ROUNDS]";
    let path = args.first().ok_or(usage)?;
    let key = args.get(1).map_or("l_extendedprice", String::as_str);
    let rounds: usize = args.get(2).map_or(Ok(7), |r| r.parse())?;
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?
        .with_batch_size(1000)
        .build()?;
    let batches = reader
        .map(|b| {
            let b = b?;
            Ok(arrow::compute::concat_batches(&b.schema(), [&b])?)
        })
        .collect::<Result<Vec<RecordBatch>, BoxError>>()?;
    let schema = batches.first().ok_or("the file has no rows")?.schema();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    println!(
        "{path}: {rows} rows in {} batches, {} columns, sorted by {key}",
        batches.len(),
        schema.fields().len()
    );
    let keys = vec![SortKey::asc(key)];
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let (mut native, mut plan) = (vec![], vec![]);
    for round in 1..=rounds {
        let started = Instant::now();
        let (_, sorted) = shoal_worker::ops::table::sort::sort((schema.clone(), batches.clone()), &keys)?;
        native.push(started.elapsed());
        let started = Instant::now();
        let df =
            SessionContext::new().read_batches(batches.clone())?.sort(vec![col(key).sort(true, false)])?;
        let planned = rt.block_on(df.collect())?;
        plan.push(started.elapsed());
        let count = |b: &[RecordBatch]| b.iter().map(RecordBatch::num_rows).sum::<usize>();
        if count(&sorted) != rows || count(&planned) != rows {
            return Err(format!("round {round}: a sort lost rows").into());
        }
        println!("round {round}: shoal {:?}, datafusion {:?}", native[round - 1], plan[round - 1]);
    }
    let (n, p) = (median(native), median(plan));
    println!("median: shoal {n:?}, datafusion {p:?} ({:.2}x)", n.as_secs_f64() / p.as_secs_f64());
    Ok(())
}
