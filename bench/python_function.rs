//! Python vs Rust function components (not a test): component size, cold compile (nothing
//! cached), warm load (from the precompiled `.cwasm` cache, what every worker process after the
//! first pays), a call's fixed cost (a fresh store and instance: one item), and an items call on
//! 10 000 numbers, for the same `inc` function of the Python example module and
//! `builtin:examples`.
//!
//! Run: `bash bench/python-function.sh` (builds the Python component with `shoal function build`,
//! then `cargo bench -p shoal-worker --bench python_function -- PYTHON.wasm`).

use serde_json::json;
use shoal_protocol::{FunctionKind, Limits};
use shoal_worker::sandbox::{Module, Sandbox, SandboxConfig};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let path = std::env::args().nth(1).ok_or("usage: python_function PYTHON_COMPONENT.wasm")?;
    let python = std::fs::read(&path)?;
    println!(
        "{:8} {:>9} {:>13} {:>10} {:>12} {:>16}",
        "", "size", "cold compile", "warm load", "1-item call", "10k-item call"
    );
    for (name, bytes) in [("rust", shoal_functions::EXAMPLES), ("python", python.as_slice())] {
        let dir = tempfile::tempdir()?;
        measure(name, bytes, dir.path())?;
    }
    Ok(())
}

fn measure(name: &str, bytes: &[u8], cache: &Path) -> Result<()> {
    let config = || SandboxConfig { cache_dir: Some(cache.to_path_buf()), ..SandboxConfig::default() };
    let sha = shoal_functions::sha256_hex(bytes);
    let started = Instant::now();
    Sandbox::new(config())?.load(&sha, bytes)?;
    let cold = started.elapsed();
    let sandbox = Sandbox::new(config())?;
    let started = Instant::now();
    let module = sandbox.load(&sha, bytes)?;
    let warm = started.elapsed();
    if sandbox.compiled_count() != 0 {
        return Err("the warm load compiled the component".into());
    }
    let limits = Limits::default();
    sandbox.list_functions(&module, &limits)?;
    let one = best(&sandbox, &module, json!([1]), &limits)?;
    let many = best(&sandbox, &module, json!((0..10_000).collect::<Vec<i64>>()), &limits)?;
    println!(
        "{name:8} {:>6.1} MB {:>11.2} s {:>7.1} ms {:>9.2} ms {:>13.2} ms",
        bytes.len() as f64 / 1e6,
        cold.as_secs_f64(),
        ms(warm),
        ms(one),
        ms(many)
    );
    Ok(())
}

/// The best of 5 calls of `inc` on `items` (each call: a fresh store and instance).
fn best(
    sandbox: &Sandbox,
    module: &Arc<Module>,
    items: serde_json::Value,
    limits: &Limits,
) -> Result<Duration> {
    let input = vec![serde_json::to_vec(&items)?];
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let out = sandbox.call_bytes(module, "inc", FunctionKind::Items, &input, &json!({}), limits)?;
        best = best.min(started.elapsed());
        let out: serde_json::Value = serde_json::from_slice(&out.bytes)?;
        if out.as_array().map(Vec::len) != items.as_array().map(Vec::len) {
            return Err("inc returned the wrong number of items".into());
        }
    }
    Ok(best)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
