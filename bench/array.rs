//! Array (not a test): the four cases of `bench/array_peers.py` on shoal's Array — quadratic
//! means `mean((a - b) ** 2)`, `sum(x, axis=0)`, a rechunk of row chunks to column chunks
//! written to Zarr, and `sum(a @ b)` — on the `threads` executor (2 workers, a fresh local job
//! root per run under the work directory), with the per-task memory limit given. One case per
//! process, so the process's peak is that case's alone; prints one JSON line per run in the
//! shape of the peers' records (`peer: "shoal"`, `wall_s`, `baseline_rss_bytes`,
//! `peak_rss_bytes` (sampled every 20 ms), `peak_delta_bytes`, `hwm_bytes` (VmHWM, reset
//! before the timed part: catches spikes between samples), `result`, `expect`, …) and appends
//! it to `--out`. The plan (`explain`) goes to stderr and into the record.
//!
//! shoal's random numbers are its own (a pure function of the seed and the block index), so
//! the answers are checked statistically against what they tend to for uniform [0, 1) data
//! (`z` is the deviation in standard deviations of the estimate); the rechunk's checksum (the
//! written Zarr array read back and summed by shoal) is also checked exactly against the sum of
//! the source array.
//!
//! Run: `bash bench/run-array.sh` (peers too), or
//! `cargo bench -p shoal --bench array -- --case qmeans --n 20000 --chunk 2000 \
//!    --mem-limit 536870912 --work /tmp/shoal-array-bench [--out FILE] [--repeat R]`.

#[path = "proc_status.rs"]
mod proc_status;
use proc_status::status_bytes;
use serde_json::{Value, json};
use shoal::events::Events;
use shoal::{Axes, Client, Config, ExecutorKind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const CASES: &[&str] = &["qmeans", "sum", "rechunk", "matmul"];
const SAMPLE: Duration = Duration::from_millis(20);

#[derive(Debug, Clone)]
struct Params {
    case: String,
    n: u64,
    chunk: u64,
    row_chunk: u64,
    m: u64,
    mem_limit: u64,
    workers: usize,
    seed: u64,
    repeat: usize,
    work: PathBuf,
    out: Option<PathBuf>,
}

impl Params {
    fn parse() -> Result<Params> {
        let mut p = Params {
            case: "qmeans".into(),
            n: 6000,
            chunk: 1000,
            row_chunk: 0,
            m: 3000,
            mem_limit: 2 << 30,
            workers: 2,
            seed: 20261201,
            repeat: 1,
            work: std::env::temp_dir().join("shoal-array-bench"),
            out: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            if flag == "--bench" {
                continue; // what `cargo bench` passes to a harness = false target
            }
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--case" => p.case = value()?,
                "--n" => p.n = value()?.parse()?,
                "--chunk" => p.chunk = value()?.parse()?,
                "--row-chunk" => p.row_chunk = value()?.parse()?,
                "--m" => p.m = value()?.parse()?,
                "--mem-limit" => p.mem_limit = value()?.parse()?,
                "--workers" => p.workers = value()?.parse()?,
                "--seed" => p.seed = value()?.parse()?,
                "--repeat" => p.repeat = value()?.parse()?,
                "--work" => p.work = PathBuf::from(value()?),
                "--out" => p.out = Some(PathBuf::from(value()?)),
                _ => {
                    return Err(format!(
                        "unknown argument {flag}; usage: array --case qmeans|sum|rechunk|matmul [--n N] \
                         [--chunk C] [--row-chunk CR] [--m M] [--mem-limit BYTES] [--workers W] [--seed S] \
                         [--repeat R] [--work DIR] [--out FILE]"
                    )
                    .into());
                }
            }
        }
        if !CASES.contains(&p.case.as_str()) {
            return Err(format!("--case: one of {CASES:?}, not {}", p.case).into());
        }
        if p.row_chunk == 0 {
            p.row_chunk = p.chunk;
        }
        if [p.n, p.chunk, p.m, p.mem_limit].contains(&0) || p.workers == 0 {
            return Err("--n, --chunk, --m, --mem-limit and --workers must be positive".into());
        }
        Ok(p)
    }

    fn json(&self) -> Value {
        json!({
            "n": self.n, "chunk": self.chunk, "row_chunk": self.row_chunk, "m": self.m,
            "mem_limit": self.mem_limit, "workers": self.workers, "data": "native", "seed": self.seed,
        })
    }
}

/// Samples this process's RSS every [`SAMPLE`] in a thread; keeps the highest.
struct RssSampler {
    peak: Arc<AtomicU64>,
    samples: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start() -> RssSampler {
        let peak = Arc::new(AtomicU64::new(status_bytes("VmRSS:")));
        let samples = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s, st) = (peak.clone(), samples.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    p.fetch_max(status_bytes("VmRSS:"), Ordering::Relaxed);
                    s.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(SAMPLE);
                }
            })
            .ok();
        RssSampler { peak, samples, stop, thread }
    }

    /// (peak, samples)
    fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.fetch_max(status_bytes("VmRSS:"), Ordering::Relaxed);
        (self.peak.load(Ordering::Relaxed), self.samples.load(Ordering::Relaxed))
    }
}

/// What the result tends to for independent uniform [0, 1) elements, and the standard
/// deviation of the estimate.
fn expectation(p: &Params) -> (f64, f64) {
    let (n, m) = (p.n as f64, p.m as f64);
    match p.case.as_str() {
        // (a - b)^2: mean 1/6, variance E[(a-b)^4] - 1/36 = 1/15 - 1/36; n² of them.
        "qmeans" => (1.0 / 6.0, (1.0 / 15.0 - 1.0 / 36.0_f64).sqrt() / n),
        // n² uniforms summed: variance n² / 12.
        "sum" | "rechunk" => (n * n / 2.0, n / 12.0_f64.sqrt()),
        // Σ_k A_k B_k with A_k, B_k column / row sums of m uniforms (mean m/2, variance m/12):
        // variance per k (m²/4 + m/12)² - m⁴/16, m of them.
        _ => {
            let per_k = (m * m / 4.0 + m / 12.0).powi(2) - m.powi(4) / 16.0;
            (m.powi(3) / 4.0, (m * per_k).sqrt())
        }
    }
}

/// The case's `explain`.
fn plan_text(c: &Client, p: &Params) -> Result<String> {
    let (n, ch, cr, m) = (p.n, p.chunk, p.row_chunk, p.m);
    let (s1, s2) = (p.seed, p.seed + 1);
    Ok(match p.case.as_str() {
        "qmeans" => {
            let (a, b) = (c.array().random(&[n, n], [ch, ch], s1)?, c.array().random(&[n, n], [ch, ch], s2)?);
            a.sub(&b)?.pow(2)?.mean(Axes::All)?.explain()?
        }
        "sum" => c.array().random(&[n, n], [ch, ch], s1)?.sum(0)?.explain()?,
        "rechunk" => c.array().random(&[n, n], [cr, n], s1)?.rechunk([n, cr])?.explain()?,
        _ => {
            let (a, b) = (c.array().random(&[m, m], [ch, ch], s1)?, c.array().random(&[m, m], [ch, ch], s2)?);
            a.matmul(&b)?.sum(Axes::All)?.explain()?
        }
    })
}

/// One run of the case: the record (timings, memory, answer, plan).
async fn run(p: &Params, first: bool) -> Result<Value> {
    std::fs::create_dir_all(&p.work)?;
    let job = tempfile::Builder::new().prefix("shoal-array-").tempdir_in(&p.work)?;
    let mut config = Config {
        root: job.path().join("root").display().to_string(),
        executor: ExecutorKind::Threads,
        workers: p.workers,
        speculation: None,
        ..Config::default()
    };
    config.limits.task_memory_bytes = p.mem_limit;
    // The untimed checks (the rechunk's checksums) plan with a limit of their own: they are not
    // what is measured.
    let mut check_config = config.clone();
    check_config.root = job.path().join("check").display().to_string();
    check_config.limits.task_memory_bytes = p.mem_limit.max(16 << 30);
    let c = Client::new(config)?;
    let zarr = job.path().join("rechunked.zarr").display().to_string();
    let (n, ch, cr, m) = (p.n, p.chunk, p.row_chunk, p.m);
    let (s1, s2) = (p.seed, p.seed + 1);

    // The plan, untimed (it is built again inside the timed part).
    let plan = plan_text(&c, p)?;
    if first {
        eprintln!("-- {}\n{plan}", p.case);
    }

    // The timed part: building the arrays and the plan, and computing (or writing) the result.
    // The kernel's high-water mark is reset first, so VmHWM is the timed part's.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let baseline = status_bytes("VmRSS:");
    let sampler = RssSampler::start();
    let start = Instant::now();
    let (result, summary) = match p.case.as_str() {
        "qmeans" => {
            let (a, b) = (c.array().random(&[n, n], [ch, ch], s1)?, c.array().random(&[n, n], [ch, ch], s2)?);
            let (v, s) = a.sub(&b)?.pow(2)?.mean(Axes::All)?.compute_with(Events::new()).await?;
            (Some(v.floats().sum()), s)
        }
        "sum" => {
            let x = c.array().random(&[n, n], [ch, ch], s1)?;
            let (v, s) = x.sum(0)?.compute_with(Events::new()).await?;
            (Some(v.floats().sum()), s)
        }
        "rechunk" => {
            let x = c.array().random(&[n, n], [cr, n], s1)?;
            (None, x.rechunk([n, cr])?.to_zarr(&zarr, "zstd").await?)
        }
        _ => {
            let (a, b) = (c.array().random(&[m, m], [ch, ch], s1)?, c.array().random(&[m, m], [ch, ch], s2)?);
            let (v, s) = a.matmul(&b)?.sum(Axes::All)?.compute_with(Events::new()).await?;
            (Some(v.floats().sum()), s)
        }
    };
    let wall = start.elapsed().as_secs_f64();
    let (peak, samples) = sampler.stop();
    let hwm = status_bytes("VmHWM:");

    // Untimed: the rechunk's checksum, the written array read back (its chunks checked) and
    // summed, against the sum of the source array.
    let (result, extra) = match result {
        Some(r) => (r, json!({})),
        None => rechunk_checksum(check_config, &zarr, p).await?,
    };
    let (expect, sd) = expectation(p);
    let z = (result - expect) / sd;
    let workers = p.workers as u64;
    let record = json!({
        "peer": "shoal",
        "case": p.case,
        "params": p.json(),
        "wall_s": (wall * 1e4).round() / 1e4,
        "baseline_rss_bytes": baseline,
        "peak_rss_bytes": peak,
        "peak_delta_bytes": peak.saturating_sub(baseline),
        "hwm_bytes": hwm,
        "samples": samples,
        "result": result,
        "expect": expect,
        "z": z,
        "statistically_ok": z.abs() < 6.0,
        // The limit is per task and `workers` tasks run at once.
        "within_workers_x_limit": peak.max(hwm).saturating_sub(baseline) <= workers * p.mem_limit,
        "extra": extra,
        "summary": {
            "tasks": summary.tasks, "executed": summary.executed, "attempts": summary.attempts,
            "retries": summary.retries, "bytes_read": summary.bytes_read, "bytes_written": summary.bytes_written,
            "objects_written": summary.objects_written, "worker_ms": summary.worker_ms,
        },
        "executor": format!("shoal threads executor, workers={}", p.workers),
        "versions": {"shoal": env!("CARGO_PKG_VERSION"), "git": std::env::var("SHOAL_GIT").unwrap_or_default()},
        "plan": plan,
    });
    drop(c);
    job.close()?;
    Ok(record)
}

/// The rechunked array read back (its shape and chunks checked) and summed, with the source
/// array's sum and the Zarr's size beside it.
async fn rechunk_checksum(config: Config, zarr: &str, p: &Params) -> Result<(f64, Value)> {
    let (n, cr) = (p.n, p.row_chunk);
    let check = Client::new(config)?;
    let back = check.array().from_zarr(zarr).await?;
    if back.chunks() != [n, cr] || back.shape() != [n, n] {
        return Err(format!(
            "{zarr}: shape {:?} chunks {:?}, want chunks [{n}, {cr}]",
            back.shape(),
            back.chunks()
        )
        .into());
    }
    let written = back.sum(Axes::All)?.compute().await?.floats().sum();
    let source =
        check.array().random(&[n, n], [cr, n], p.seed)?.sum(Axes::All)?.compute().await?.floats().sum();
    let extra = json!({"source_sum": source, "checksum_rel_diff": (written - source).abs() / source.abs(),
                       "zarr_bytes": dir_bytes(Path::new(zarr))});
    Ok((written, extra))
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn main() -> Result<()> {
    let p = Params::parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    for i in 0..p.repeat.max(1) {
        let record = match rt.block_on(run(&p, i == 0)) {
            Ok(r) => r,
            Err(e) => json!({"peer": "shoal", "case": p.case, "params": p.json(), "error": e.to_string()}),
        };
        let line = serde_json::to_string(&record)?;
        println!("{line}");
        if let Some(out) = &p.out {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(out)?;
            writeln!(f, "{line}")?;
        }
        if let Some(e) = record.get("error") {
            return Err(format!("shoal {}: {}", p.case, e.as_str().unwrap_or("?")).into());
        }
    }
    Ok(())
}
