//! Bag on JSON lines (not a test): the same generated web-log data (`bench/bag_dask.py gen`)
//! through `read_json → filter → pluck → frequencies` and `foldby(method, add_field bytes)`,
//! with built-in operators, with the Rust example functions (`builtin:examples`) and with the
//! Python ones (a component built from `functions/python/examples/app.py`), on the `threads`
//! executor (2 workers, the real sandbox, a fresh local job root per run beside the data).
//! Every answer is checked against Dask's (`bench/bag_dask.py run` writes its timings and
//! answers as JSON); prints the table of wall times and the ratios against Dask's threaded and
//! processes schedulers, and the Python component's cold compile against its warm load.
//!
//! Run: `bash bench/run-bag.sh` (generates the data, builds the Python component, runs Dask,
//! then `cargo bench -p shoal --bench bag -- DATA_DIR DASK.json PYTHON.wasm`).

use serde_json::{Value, json};
use shoal::{Binop, Client, Config, ExecutorKind, FunctionModule, Key, TextRead};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const WORKERS: usize = 2;

#[derive(Clone, Copy, PartialEq)]
enum Pipeline {
    Frequencies,
    FoldBy,
}

#[derive(Clone, Copy)]
enum Functions {
    Builtin,
    Rust,
    Python,
}

struct Case {
    name: &'static str,
    pipeline: Pipeline,
    functions: Functions,
}

const CASES: &[Case] = &[
    Case {
        name: "frequencies, built-in (filter_where, pluck_or)",
        pipeline: Pipeline::Frequencies,
        functions: Functions::Builtin,
    },
    Case {
        name: "frequencies, filter(is_error) in Rust",
        pipeline: Pipeline::Frequencies,
        functions: Functions::Rust,
    },
    Case {
        name: "frequencies, filter(is_error) in Python",
        pipeline: Pipeline::Frequencies,
        functions: Functions::Python,
    },
    Case {
        name: "foldby(method, add_field bytes, add) in Rust",
        pipeline: Pipeline::FoldBy,
        functions: Functions::Rust,
    },
    Case {
        name: "foldby(method, add_field bytes, add) in Python",
        pipeline: Pipeline::FoldBy,
        functions: Functions::Python,
    },
];

struct Bench {
    rt: tokio::runtime::Runtime,
    data: PathBuf,
    jobs: PathBuf,
    python: PathBuf,
    cache: PathBuf,
}

impl Bench {
    /// A client with a fresh job root (nothing committed by an earlier run is reused).
    fn client(&self) -> Result<(Client, tempfile::TempDir)> {
        let root = tempfile::tempdir_in(&self.jobs)?;
        let config = Config {
            root: root.path().display().to_string(),
            executor: ExecutorKind::Threads,
            workers: WORKERS,
            speculation: None,
            cache_dir: Some(self.cache.clone()),
            ..Config::default()
        };
        Ok((Client::new(config)?, root))
    }

    fn module(&self, client: &Client, functions: Functions) -> Result<Option<FunctionModule>> {
        let location = match functions {
            Functions::Builtin => return Ok(None),
            Functions::Rust => "builtin:examples".to_string(),
            Functions::Python => self.python.display().to_string(),
        };
        Ok(Some(self.rt.block_on(client.load_module(&location))?))
    }

    /// One run of a case: its wall time (listing the files, planning, running, collecting) and
    /// its answer.
    fn run(&self, case: &Case) -> Result<(f64, Vec<Value>)> {
        let (client, _root) = self.client()?;
        let module = self.module(&client, case.functions)?;
        let data = self.data.display().to_string();
        let started = Instant::now();
        let answer = self.rt.block_on(async {
            let bag = client.bag().read_json(&data, TextRead::default()).await?;
            let bag = match (case.pipeline, &module) {
                (Pipeline::Frequencies, None) => bag
                    .filter_where("status >= 500")?
                    .pluck_or("user.country", Value::Null)?
                    .frequencies(true),
                (Pipeline::Frequencies, Some(m)) => bag
                    .filter(m, "is_error", json!({}))?
                    .pluck_or("user.country", Value::Null)?
                    .frequencies(true),
                (Pipeline::FoldBy, Some(m)) => bag.foldby(
                    Key::Path("method"),
                    Binop::new(m, "add_field").args(json!({"field": "bytes"})),
                    json!(0),
                    Some(Binop::new(m, "add")),
                    None,
                )?,
                (Pipeline::FoldBy, None) => unreachable!("foldby needs a binop"),
            };
            bag.compute().await
        })?;
        Ok((started.elapsed().as_secs_f64(), answer))
    }
}

/// `[key, value]` pairs as a map from the key's JSON text.
fn pairs(answer: &[Value]) -> Result<BTreeMap<String, Value>> {
    answer
        .iter()
        .map(|p| match p.as_array().map(Vec::as_slice) {
            Some([k, v]) => Ok((k.to_string(), v.clone())),
            _ => Err(format!("not a [key, value] pair: {p}").into()),
        })
        .collect()
}

/// Whether `got` equals Dask's `want` as a map, and (frequencies) is sorted by count, highest
/// first; the differences otherwise.
fn differences(pipeline: Pipeline, got: &[Value], want: &[Value]) -> Result<Vec<String>> {
    let (g, w) = (pairs(got)?, pairs(want)?);
    let mut out = Vec::new();
    for (k, v) in &w {
        match g.get(k) {
            Some(x) if x.as_f64() == v.as_f64() => {}
            Some(x) => out.push(format!("{k}: shoal {x}, dask {v}")),
            None => out.push(format!("{k}: missing in shoal (dask {v})")),
        }
    }
    for (k, v) in &g {
        if !w.contains_key(k) {
            out.push(format!("{k}: only in shoal ({v})"));
        }
    }
    if pipeline == Pipeline::Frequencies {
        let counts: Vec<f64> = got.iter().filter_map(|p| p[1].as_f64()).collect();
        if counts.windows(2).any(|w| w[0] < w[1]) {
            out.push("frequencies(sort=true) is not sorted by count".into());
        }
    }
    Ok(out)
}

fn best(times: &[f64]) -> f64 {
    times.iter().copied().fold(f64::INFINITY, f64::min)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let [data, dask, python] = args.as_slice() else {
        return Err("usage: bag DATA_DIR DASK_RESULTS.json PYTHON_COMPONENT.wasm".into());
    };
    let repeat: usize = std::env::var("BAG_REPEAT").ok().and_then(|r| r.parse().ok()).unwrap_or(2);
    let only: Option<String> = std::env::var("BAG_ONLY").ok();
    let dask: Value = serde_json::from_slice(&std::fs::read(dask)?)?;
    let data = PathBuf::from(data);
    let parent = data.parent().unwrap_or(Path::new("."));
    let jobs = tempfile::tempdir_in(parent)?;
    let cache = tempfile::tempdir_in(parent)?;
    let bench = Bench {
        rt: tokio::runtime::Builder::new_multi_thread().enable_all().build()?,
        data: data.clone(),
        jobs: jobs.path().to_path_buf(),
        python: PathBuf::from(python),
        cache: cache.path().to_path_buf(),
    };

    // The Python component: cold compile (an empty component cache), then warm load (from
    // the precompiled artifact, what every later worker process pays). The Rust one likewise.
    let mut loads = Vec::new();
    for functions in [Functions::Rust, Functions::Python] {
        let (client, _root) = bench.client()?;
        let started = Instant::now();
        bench.module(&client, functions)?;
        let cold = started.elapsed().as_secs_f64();
        let (client, _root) = bench.client()?;
        let started = Instant::now();
        bench.module(&client, functions)?;
        loads.push((cold, started.elapsed().as_secs_f64()));
    }

    let mut rows = Vec::new();
    let mut agree = true;
    for case in CASES {
        if only.as_deref().is_some_and(|o| !case.name.contains(o)) {
            continue;
        }
        let mut times = Vec::new();
        let mut answer = Vec::new();
        for _ in 0..repeat.max(1) {
            let (t, a) = bench.run(case)?;
            eprintln!("  {}: {t:.2} s", case.name);
            times.push(t);
            answer = a;
        }
        let key = match case.pipeline {
            Pipeline::Frequencies => "frequencies",
            Pipeline::FoldBy => "foldby",
        };
        let want: Vec<Value> = serde_json::from_value(dask["answers"][key].clone())?;
        let diff = differences(case.pipeline, &answer, &want)?;
        if !diff.is_empty() {
            agree = false;
            println!("DIFFERENCE in '{}' against dask: {}", case.name, diff.join("; "));
        }
        rows.push((case, best(&times), times));
    }

    let dask_best = |pipeline: &str, scheduler: &str| -> f64 {
        let times: Vec<f64> =
            serde_json::from_value(dask["times"][pipeline][scheduler].clone()).unwrap_or_default();
        best(&times)
    };
    let bytes: u64 = std::fs::read_dir(&data)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    let files = std::fs::read_dir(&data)?.count();
    println!(
        "data: {files} JSON-lines files, {:.2} GB, {} items ({} with status >= 500)",
        bytes as f64 / 1e9,
        dask["items"],
        dask["errors"]
    );
    println!(
        "shoal: release build, threads executor, {WORKERS} workers, blocksize 64 MB, a fresh local job root per run; \
         best of {repeat}. dask {}: read_text(blocksize=64MB).map(json.loads), plain Python functions, num_workers=2",
        dask["version"].as_str().unwrap_or("?")
    );
    println!();
    println!(
        "{:50} {:>9} {:>9} {:>9} {:>11} {:>11}",
        "case", "shoal s", "dask thr", "dask proc", "vs threads", "vs procs"
    );
    for (case, t, times) in &rows {
        let key = if case.pipeline == Pipeline::Frequencies { "frequencies" } else { "foldby" };
        let (dt, dp) = (dask_best(key, "threads"), dask_best(key, "processes"));
        let all = times.iter().map(|t| format!("{t:.2}")).collect::<Vec<_>>().join(", ");
        println!(
            "{:50} {t:>9.2} {dt:>9.2} {dp:>9.2} {:>10.1}× {:>10.1}×   (runs: {all})",
            case.name,
            dt / t,
            dp / t
        );
    }
    println!();
    for ((cold, warm), name) in loads.iter().zip(["rust (builtin:examples)", "python (app.py)"]) {
        println!("component {name:24} cold compile {cold:6.2} s, warm load {:7.1} ms", warm * 1e3);
    }
    println!();
    println!("{}", if agree { "answers agree" } else { "answers DIFFER (see above)" });
    Ok(())
}
