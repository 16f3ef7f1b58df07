//! Delayed at scale (not a test): a fan-in tree of tiny `value` functions — `LEAVES` leaves
//! `add_values(i)`, then pairwise `add_values(a, b)` up to the root (2 × LEAVES − 1 calls) —
//! built, planned and run on the `threads` executor with the real sandbox and a local job
//! root. Prints the wall time of each step and checks the root against n(n−1)/2.
//!
//! Run: `cargo bench -p shoal --bench delayed -- [LEAVES]` (default 65536);
//! `bench/run-delayed.sh` also runs `dask.delayed` on the same shape in the same run.

use shoal::collections::delayed::{Delayed, DelayedFunction};
use shoal::{Client, Config, ExecutorKind};
use std::time::Instant;

fn fan_in(add: &DelayedFunction, n: i64) -> Delayed {
    let mut level: Vec<Delayed> = (0..n).map(|i| add.call([i.into()])).collect();
    while level.len() > 1 {
        level =
            level.chunks(2).map(|pair| add.call(pair.iter().map(Into::into).collect::<Vec<_>>())).collect();
    }
    level.remove(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let leaves: i64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(65_536);
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let root = tempfile::tempdir()?;
    let config = Config {
        root: root.path().display().to_string(),
        executor: ExecutorKind::Threads,
        workers,
        speculation: None,
        ..Config::default()
    };
    let client = Client::new(config)?;
    let module = rt.block_on(client.load_module("builtin:examples"))?;
    let add = client.delayed(&module, "add_values")?;

    let started = Instant::now();
    let total = fan_in(&add, leaves);
    let build = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let explain = total.explain()?;
    let plan = started.elapsed().as_secs_f64();
    let calls = explain.lines().next().unwrap_or_default().to_string();

    let started = Instant::now();
    let (value, summary) = rt.block_on(total.compute_with(Default::default()))?;
    let run = started.elapsed().as_secs_f64();
    let expected = leaves * (leaves - 1) / 2;
    assert_eq!(value, serde_json::json!(expected), "the root is the sum of 0..n");

    let started = Instant::now();
    let (_, again) = rt.block_on(fan_in(&add, leaves).compute_with(Default::default()))?;
    let rerun = started.elapsed().as_secs_f64();

    let n = summary.tasks as f64;
    println!("shoal Delayed, threads executor ({workers} threads), {leaves} leaves: {calls}");
    println!(
        "  build {build:.3} s, plan (lower + key hashes) {plan:.3} s, run {run:.3} s = {:.1} µs/call; total {:.3} s",
        run * 1e6 / n,
        build + plan + run
    );
    println!("  root = {value} (expected {expected}); {} tasks run", summary.executed);
    println!(
        "  rerun (all committed): build + plan + resume {rerun:.3} s, {} tasks run, {} reused",
        again.executed, again.already_committed
    );
    Ok(())
}
