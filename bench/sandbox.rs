//! Sandbox costs (not a test): compiling the example component, loading it from the precompiled
//! cache, and a call on 1M rows against the same computation done natively with Arrow kernels.
//!
//! Run: `cargo bench -p shoal-worker --bench sandbox`

use arrow::array::{Array, Float64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use shoal_protocol::Limits;
use shoal_worker::sandbox::{Sandbox, SandboxConfig};
use std::sync::Arc;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let config = || SandboxConfig { cache_dir: Some(dir.path().to_path_buf()), ..SandboxConfig::default() };
    let bytes = shoal_functions::EXAMPLES;
    let sha = shoal_functions::sha256_hex(bytes);

    let started = Instant::now();
    Sandbox::new(config())?.load(&sha, bytes)?;
    let compile = started.elapsed();
    let sandbox = Sandbox::new(config())?;
    let started = Instant::now();
    let module = sandbox.load(&sha, bytes)?;
    let cached = started.elapsed();
    assert_eq!(sandbox.compiled_count(), 0, "loaded from the precompiled cache");
    println!("examples component: {} bytes, compile {compile:.2?}, cached load {cached:.2?}", bytes.len());

    let n = 1_000_000;
    let values: Float64Array = (0..n).map(|i| if i % 1000 == 0 { None } else { Some(i as f64) }).collect();
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, true)]));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(values.clone())])?;
    let args = serde_json::json!({"column": "x", "factor": 1.5, "output": "y"});
    let limits = Limits::default();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let out = sandbox.call(&module, "scale", std::slice::from_ref(&batch), &args, &limits)?;
        best = best.min(started.elapsed().as_secs_f64());
        assert_eq!(out.batch.num_rows(), n);
    }
    let mut native = f64::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let y = arrow::compute::kernels::numeric::mul(&values, &Float64Array::new_scalar(1.5))?;
        native = native.min(started.elapsed().as_secs_f64());
        assert_eq!(y.len(), n);
    }
    println!(
        "scale on {n} rows: sandbox call (IPC in and out) {:.1} ms, native Arrow kernel {:.1} ms",
        best * 1e3,
        native * 1e3
    );
    Ok(())
}
