//! TPC-H on shoal: Q1, Q3, Q6, a group-by on `l_orderkey` and a full sort of `lineitem`, with
//! the `threads` executor over a local folder, timed per run. Peers run the same queries in
//! `bench/tpch_peers.py`; `bench/run-tpch.sh` runs both and `bench/tpch_compare.py` checks that
//! the answers agree and writes the table.
//!
//!   cargo bench -p shoal --bench tpch -- --data DIR --out RESULTS_DIR [--runs 3] [--queries q1,q6]
//!
//! Every run plans from the Parquet footers and executes into a fresh, empty job root, so no
//! committed task of an earlier run is reused. Writes `RESULTS_DIR/shoal/<query>.parquet` (the
//! last run's result; for `sort_price` only the sorted `l_extendedprice`) and
//! `RESULTS_DIR/shoal/timings.json`.

use arrow::record_batch::RecordBatch;
use shoal::{Agg, Client, Config, DataFrame, ExecutorKind, Merge};
use shoal_protocol::{JoinHow, SortKey};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const QUERIES: [&str; 5] = ["q1", "q3", "q6", "groupby_orderkey", "sort_price"];

fn aggs(list: &[(&str, &str, &str)]) -> Result<Vec<Agg>, BoxError> {
    list.iter().map(|(n, c, f)| Agg::new(n, c, f).map_err(Into::into)).collect()
}

fn desc(column: &str) -> SortKey {
    SortKey { column: column.into(), ascending: false, nulls_first: false }
}

async fn query(c: &Client, data: &Path, name: &str) -> Result<DataFrame, BoxError> {
    let table = |t: &str| format!("{}/{t}/*.parquet", data.display());
    let lineitem = c.read_parquet(&table("lineitem")).await?;
    Ok(match name {
        "q1" => lineitem
            .filter("l_shipdate <= DATE '1998-09-02'")?
            .assign("disc_price", "l_extendedprice * (1 - l_discount)")?
            .assign("charge", "l_extendedprice * (1 - l_discount) * (1 + l_tax)")?
            .groupby(&["l_returnflag", "l_linestatus"])
            .agg(&aggs(&[
                ("sum_qty", "l_quantity", "sum"),
                ("sum_base_price", "l_extendedprice", "sum"),
                ("sum_disc_price", "disc_price", "sum"),
                ("sum_charge", "charge", "sum"),
                ("avg_qty", "l_quantity", "mean"),
                ("avg_price", "l_extendedprice", "mean"),
                ("avg_disc", "l_discount", "mean"),
                ("count_order", "l_orderkey", "size"),
            ])?)?
            .sort_values_into(&[SortKey::asc("l_returnflag"), SortKey::asc("l_linestatus")], 1)?,
        "q3" => {
            let customer = c.read_parquet(&table("customer")).await?.filter("c_mktsegment = 'BUILDING'")?;
            let orders = c
                .read_parquet(&table("orders"))
                .await?
                .filter("o_orderdate < DATE '1995-03-15'")?
                .merge(&customer, &Merge::left_right(&["o_custkey"], &["c_custkey"]).how(JoinHow::Semi))?
                .select(&["o_orderkey", "o_orderdate", "o_shippriority"])?;
            lineitem
                .filter("l_shipdate > DATE '1995-03-15'")?
                .assign("volume", "l_extendedprice * (1 - l_discount)")?
                .select(&["l_orderkey", "volume"])?
                .merge(&orders, &Merge::left_right(&["l_orderkey"], &["o_orderkey"]))?
                .groupby(&["l_orderkey", "o_orderdate", "o_shippriority"])
                .agg(&aggs(&[("revenue", "volume", "sum")])?)?
                .sort_values_into(&[desc("revenue"), SortKey::asc("o_orderdate")], 1)?
                .head(10)
                .select(&["l_orderkey", "revenue", "o_orderdate", "o_shippriority"])?
        }
        "q6" => lineitem
            .filter(
                "l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1995-01-01' \
                 AND l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24",
            )?
            .agg(&[Agg::sql("revenue", "sum(l_extendedprice * l_discount)")])?,
        "groupby_orderkey" => lineitem.groupby(&["l_orderkey"]).agg(&aggs(&[
            ("qty", "l_quantity", "sum"),
            ("price", "l_extendedprice", "sum"),
            ("n", "l_orderkey", "size"),
        ])?)?,
        "sort_price" => lineitem.sort_values(&[SortKey::asc("l_extendedprice")])?,
        other => return Err(format!("unknown query '{other}' (known: {})", QUERIES.join(", ")).into()),
    })
}

fn write_parquet(path: &Path, batches: &[RecordBatch]) -> Result<(), BoxError> {
    let Some(first) = batches.first() else {
        return Err(format!("{}: empty result", path.display()).into());
    };
    let file = std::fs::File::create(path)?;
    let mut w = parquet::arrow::ArrowWriter::try_new(file, first.schema(), None)?;
    for b in batches {
        w.write(b)?;
    }
    w.close()?;
    Ok(())
}

struct Args {
    data: PathBuf,
    out: PathBuf,
    runs: usize,
    queries: Vec<String>,
}

fn args() -> Result<Args, BoxError> {
    let mut a = Args { data: PathBuf::new(), out: PathBuf::new(), runs: 3, queries: vec![] };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => a.data = value()?.into(),
            "--out" => a.out = value()?.into(),
            "--runs" => a.runs = value()?.parse()?,
            "--queries" => a.queries = value()?.split(',').map(str::to_string).collect(),
            // cargo bench passes --bench to harness=false targets.
            "--bench" => {}
            other => return Err(format!("unknown argument '{other}'").into()),
        }
    }
    if a.data.as_os_str().is_empty() || a.out.as_os_str().is_empty() {
        return Err("usage: tpch --data DIR --out RESULTS_DIR [--runs N] [--queries q1,q3,...]".into());
    }
    if a.queries.is_empty() {
        a.queries = QUERIES.iter().map(|q| q.to_string()).collect();
    }
    Ok(a)
}

fn main() -> Result<(), BoxError> {
    let args = args()?;
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let out = args.out.join("shoal");
    std::fs::create_dir_all(&out)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut timings: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for q in &args.queries {
        let mut seconds = Vec::new();
        let mut last = Vec::new();
        for run in 0..args.runs {
            let root = out.join(format!("root-{q}-{run}"));
            let _ = std::fs::remove_dir_all(&root);
            let config = Config {
                root: root.display().to_string(),
                executor: ExecutorKind::Threads,
                workers,
                ..Config::default()
            };
            let client = Client::new(config)?;
            let started = Instant::now();
            let batches = rt.block_on(async {
                let df = query(&client, &args.data, q).await?;
                df.compute().await.map_err(BoxError::from)
            })?;
            let secs = started.elapsed().as_secs_f64();
            eprintln!("shoal {q} run {}: {secs:.3} s", run + 1);
            seconds.push(secs);
            last = batches;
            std::fs::remove_dir_all(&root)?;
        }
        if q == "sort_price" {
            last = last
                .iter()
                .map(|b| {
                    let i = b.schema().index_of("l_extendedprice")?;
                    b.project(&[i])
                })
                .collect::<Result<_, _>>()?;
        }
        write_parquet(&out.join(format!("{q}.parquet")), &last)?;
        timings.insert(q.clone(), serde_json::json!(seconds));
    }
    timings.insert("engine".into(), serde_json::json!("shoal"));
    timings.insert("version".into(), serde_json::json!(env!("CARGO_PKG_VERSION")));
    timings.insert("threads".into(), serde_json::json!(workers));
    timings.insert(
        "notes".into(),
        serde_json::json!(format!(
            "threads executor, {workers} workers, local folder; each run plans from the footers and \
             executes into a fresh job root; results collected into memory"
        )),
    );
    std::fs::write(out.join("timings.json"), serde_json::to_vec_pretty(&timings)?)?;
    Ok(())
}
