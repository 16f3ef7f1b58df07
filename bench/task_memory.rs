//! Peak memory of one task (not a test): TPC-H `lineitem` scans run one task at a time in this
//! process, the kernel's high-water mark of resident memory reset before each task
//! (`/proc/self/clear_refs`) and read after it, so each figure is what that task alone added.
//!
//!   cargo bench -p shoal --bench task_memory -- --data DIR
//!
//! Cases (over `DIR/lineitem/*.parquet`, one task per file):
//! - `q1`: TPC-H Q1's scan tasks (filter, two price expressions, the partial aggregation);
//! - `copy`: every column read and written back as a Parquet part (`to_parquet`).
//!
//! Prints, per case, the largest and the median per-task peak over the process's resident
//! memory before the task, and the decoded size of one file for scale.

#[path = "proc_status.rs"]
mod proc_status;
use async_trait::async_trait;
use proc_status::status_bytes;
use shoal::executor::{Executor, InProcess};
use shoal::{Agg, Client, Config, ExecutorKind};
use shoal_protocol::{TaskOutcome, TaskSpec};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One task at a time on an in-process worker, each task's peak resident memory recorded.
#[derive(Debug)]
struct Measured {
    inner: InProcess,
    peaks: Mutex<Vec<u64>>,
}

#[async_trait]
impl Executor for Measured {
    fn name(&self) -> &str {
        "measured"
    }
    fn concurrency(&self) -> usize {
        1
    }
    async fn execute(&self, spec: TaskSpec) -> TaskOutcome {
        // "5" resets the high-water mark to the current resident size (Linux 4.0+).
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = status_bytes("VmRSS:");
        let outcome = self.inner.execute(spec).await;
        let peak = status_bytes("VmHWM:");
        if let Ok(mut peaks) = self.peaks.lock() {
            peaks.push(peak.saturating_sub(before));
        }
        outcome
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn main() -> Result<(), BoxError> {
    let mut data = PathBuf::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--data" => data = it.next().ok_or("--data needs a value")?.into(),
            "--bench" => {}
            other => return Err(format!("unknown argument '{other}'").into()),
        }
    }
    if data.as_os_str().is_empty() {
        return Err("usage: task_memory --data DIR (a TPC-H folder with lineitem/*.parquet)".into());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let work = tempfile::tempdir()?;
    let lineitem = format!("{}/lineitem/*.parquet", data.display());
    let files = std::fs::read_dir(data.join("lineitem"))?.count();
    println!("# per-task peak resident memory, {files} lineitem files, {}", data.display());
    for case in ["q1", "copy"] {
        let config = Config {
            root: work.path().join(format!("root-{case}")).display().to_string(),
            executor: ExecutorKind::Sync,
            ..Config::default()
        };
        let client = Client::new(config)?;
        let worker = Arc::new(shoal_worker::Worker::new(shoal_worker::WorkerConfig::default())?);
        let measured = Arc::new(Measured { inner: InProcess::sync(worker), peaks: Mutex::new(Vec::new()) });
        let client = client.with_executor(measured.clone());
        rt.block_on(async {
            let df = client.read_parquet(&lineitem).await?;
            match case {
                "q1" => {
                    df.filter("l_shipdate <= DATE '1998-09-02'")?
                        .assign("disc_price", "l_extendedprice * (1 - l_discount)")?
                        .assign("charge", "l_extendedprice * (1 - l_discount) * (1 + l_tax)")?
                        .groupby(&["l_returnflag", "l_linestatus"])
                        .agg(&[
                            Agg::new("sum_qty", "l_quantity", "sum")?,
                            Agg::new("sum_disc_price", "disc_price", "sum")?,
                            Agg::new("sum_charge", "charge", "sum")?,
                            Agg::new("avg_disc", "l_discount", "mean")?,
                            Agg::new("count_order", "l_orderkey", "size")?,
                        ])?
                        .compute()
                        .await?;
                }
                _ => {
                    df.to_parquet(&work.path().join("copy").display().to_string()).await?;
                }
            }
            Ok::<_, BoxError>(())
        })?;
        let mut peaks = measured.peaks.lock().map_err(|_| "poisoned")?.clone();
        // The scan tasks are the first `files`; the rest (combines of small states) are tiny.
        peaks.truncate(files);
        peaks.sort_unstable();
        let (max, median) =
            (peaks.last().copied().unwrap_or(0), peaks.get(peaks.len() / 2).copied().unwrap_or(0));
        println!("{case}: {} scan tasks, peak per task max {} median {}", peaks.len(), mib(max), mib(median));
    }
    Ok(())
}
