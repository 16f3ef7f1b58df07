//! The Array against NumPy and zarr-python (from the test venv): inputs written by
//! zarr-python in several codecs and both formats, every operation's answer compared with
//! NumPy's (its type too — NumPy's promotion rules), shoal's Zarr output read back by
//! zarr-python, a rechunk of an array many times the task memory limit, and plans refused
//! before they run.
//!
//! Tolerances: integers and booleans exactly; float64 to a relative 1e-9 (shoal and NumPy sum
//! in different orders), float32 to 1e-5.

use crate::client;
use serde_json::Value;
use shoal::{Array, Axes, Client, DType, ExecutorKind, Index, NdArray};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

type Inputs = HashMap<String, Array>;
type Build = fn(&Inputs) -> shoal::Result<Array>;

fn x<'a>(inputs: &'a Inputs, name: &str) -> &'a Array {
    &inputs[name]
}

/// (name, NumPy expression, the same in shoal).
fn cases() -> Vec<(&'static str, &'static str, Build)> {
    vec![
        ("add", "a + b", |i| x(i, "a").add(x(i, "b"))),
        ("sub_scalar", "a - 2.5", |i| x(i, "a").sub(2.5)),
        ("rsub_int", "3 - i", |i| x(i, "i").rsub(3)),
        ("mul_broadcast", "a * v", |i| x(i, "a").mul(x(i, "v"))),
        ("col_broadcast", "a + col", |i| x(i, "a").add(x(i, "col"))),
        ("div_int", "i / 7", |i| x(i, "i").div(7)),
        ("floordiv_int", "i // 7", |i| x(i, "i").floordiv(7)),
        ("mod_int", "i % 7", |i| x(i, "i").rem(7)),
        ("mod_float", "a % 0.7", |i| x(i, "a").rem(0.7)),
        ("pow", "a ** 2", |i| x(i, "a").pow(2)),
        ("ipow", "i ** 2", |i| x(i, "i").pow(2)),
        ("minimum", "np.minimum(a, b)", |i| x(i, "a").minimum(x(i, "b"))),
        ("greater", "a > b", |i| x(i, "a").gt(x(i, "b"))),
        ("where", "np.where(a > 0, a, b * 2)", |i| x(i, "a").gt(0)?.where_(x(i, "a"), &x(i, "b").mul(2)?)),
        ("astype", "a.astype(np.int32)", |i| Ok(x(i, "a").astype(DType::Int32))),
        ("sqrt_abs", "np.sqrt(np.abs(a))", |i| x(i, "a").abs()?.sqrt()),
        ("exp", "np.exp(v)", |i| x(i, "v").exp()),
        ("log", "np.log(np.abs(a) + 1)", |i| x(i, "a").abs()?.add(1)?.log()),
        ("sin_cos", "np.sin(a) * np.cos(b)", |i| x(i, "a").sin()?.mul(&x(i, "b").cos()?)),
        ("neg", "-a", |i| x(i, "a").neg()),
        ("f32_scalar", "f * 2.0", |i| x(i, "f").mul(2.0)),
        ("f32_div", "f / 3", |i| x(i, "f").div(3)),
        ("f32_int32", "f + i", |i| x(i, "f").add(x(i, "i"))),
        ("u8_wraps", "u * 3", |i| x(i, "u").mul(3)),
        ("u8_int32", "u + i", |i| x(i, "u").add(x(i, "i"))),
        ("int_float", "i * 1.5", |i| x(i, "i").mul(1.5)),
        ("bool_and", "(a > 0) & (b < 0)", |i| x(i, "a").gt(0)?.and(&x(i, "b").lt(0)?)),
        ("bool_not", "~bo", |i| x(i, "bo").not()),
        ("sum_all", "np.sum(a)", |i| x(i, "a").sum(Axes::All)),
        ("sum0", "np.sum(a, axis=0)", |i| x(i, "a").sum(0)),
        ("mean1", "np.mean(a, axis=1)", |i| x(i, "a").mean(1)),
        ("std_all", "np.std(a, ddof=1)", |i| x(i, "a").std(Axes::All, 1)),
        ("var0", "np.var(a, axis=0)", |i| x(i, "a").var(0, 0)),
        ("min1", "np.min(a, axis=1)", |i| x(i, "a").min(1)),
        ("max_all", "np.max(a)", |i| x(i, "a").max(Axes::All)),
        ("prod0", "np.prod(1 + a / 100, axis=0)", |i| x(i, "a").div(100)?.add(1)?.prod(0)),
        ("argmin0", "np.argmin(a, axis=0)", |i| x(i, "a").argmin(0)),
        ("argmax_all", "np.argmax(a)", |i| x(i, "a").argmax(Axes::All)),
        ("argmax_ties", "np.argmax(i, axis=1)", |i| x(i, "i").argmax(1)),
        ("any0", "np.any(a > 2, axis=0)", |i| x(i, "a").gt(2)?.any(0)),
        ("all_all", "np.all(a > -5)", |i| x(i, "a").gt(-5)?.all(Axes::All)),
        ("sum_keepdims", "np.sum(a, axis=1, keepdims=True)", |i| {
            x(i, "a").reduce(shoal_protocol::ArrayReduction::Sum, 1, true)
        }),
        ("int_sum", "np.sum(i, axis=0)", |i| x(i, "i").sum(0)),
        ("int_mean", "np.mean(i)", |i| x(i, "i").mean(Axes::All)),
        ("f32_sum", "np.sum(f, axis=0)", |i| x(i, "f").sum(0)),
        ("u8_sum", "np.sum(u)", |i| x(i, "u").sum(Axes::All)),
        ("c_sum02", "np.sum(c, axis=(0, 2))", |i| x(i, "c").sum([0, 2])),
        ("c_mean_last", "np.mean(c, axis=-1)", |i| x(i, "c").mean(-1)),
        ("qmeans", "np.mean((a - b) ** 2)", |i| x(i, "a").sub(x(i, "b"))?.pow(2)?.mean(Axes::All)),
        ("fused", "np.sum(np.where(a > b, a - b, 0) * v, axis=1)", |i| {
            let (a, b) = (x(i, "a"), x(i, "b"));
            a.gt(b)?.where_(&a.sub(b)?, 0)?.mul(x(i, "v"))?.sum(1)
        }),
        ("slice_steps", "a[3:30:4, ::-2]", |i| {
            x(i, "a").slice(&[
                Index::Slice { start: Some(3), stop: Some(30), step: Some(4) },
                Index::Slice { start: None, stop: None, step: Some(-2) },
            ])
        }),
        ("slice_row", "a[5]", |i| x(i, "a").slice(&[Index::At(5)])),
        ("slice_mixed", "a[-1, 2:9]", |i| x(i, "a").slice(&[Index::At(-1), Index::range(2, 9)])),
        ("slice_reverse", "a[::-1]", |i| {
            x(i, "a").slice(&[Index::Slice { start: None, stop: None, step: Some(-1) }])
        }),
        ("slice_3d", "c[1:, 3, ::2]", |i| {
            x(i, "c").slice(&[
                Index::Slice { start: Some(1), stop: None, step: None },
                Index::At(3),
                Index::Slice { start: None, stop: None, step: Some(2) },
            ])
        }),
        ("slice_past_end", "a[30:100]", |i| x(i, "a").slice(&[Index::range(30, 100)])),
        ("transpose", "a.T", |i| x(i, "a").transpose(None)),
        ("transpose_3d", "np.transpose(c, (2, 0, 1))", |i| x(i, "c").transpose(Some(&[2, 0, 1]))),
        ("rechunk", "a", |i| x(i, "a").rechunk([37, 4])),
        ("matmul", "a @ m", |i| x(i, "a").matmul(x(i, "m"))),
        ("matmul_rechunks", "a @ m2", |i| x(i, "a").matmul(x(i, "m2"))),
        ("matmul_int", "i @ i.T", |i| x(i, "i").matmul(&x(i, "i").transpose(None)?)),
        ("matvec", "a @ v", |i| x(i, "a").matmul(x(i, "v"))),
        ("tensordot", "np.tensordot(c, m3, axes=([1, 2], [0, 1]))", |i| {
            x(i, "c").tensordot(x(i, "m3"), &[1, 2], &[0, 1])
        }),
        ("matmul_tree", "a.T @ a", |i| x(i, "a").transpose(None)?.split_every(2).matmul(x(i, "a"))),
    ]
}

/// Generated arrays: (name, NumPy, shoal).
fn generated(c: &Client) -> shoal::Result<Vec<(&'static str, &'static str, Array)>> {
    let arrays = c.array();
    Ok(vec![
        ("zeros", "np.zeros((7, 5))", arrays.zeros(&[7, 5], [3, 2], DType::Float64)?),
        ("ones_int", "np.ones((7,), dtype=np.int32)", arrays.ones(&[7], [4], DType::Int32)?),
        ("full", "np.full((4, 6), 2.5)", arrays.full(&[4, 6], 2.5, [3, 4], DType::Float64)?),
        ("arange", "np.arange(3, 50, 4)", arrays.arange(3, 50, 4, [5])?),
        ("arange_float", "np.arange(0.5, 10, 0.25)", arrays.arange(0.5, 10, 0.25, [7])?),
        ("linspace", "np.linspace(0, 1, 23)", arrays.linspace(0.0, 1.0, 23, true, [5])?),
        (
            "linspace_open",
            "np.linspace(-2, 3, 17, endpoint=False)",
            arrays.linspace(-2.0, 3.0, 17, false, [4])?,
        ),
        (
            "arange_sq_sum",
            "np.sum(np.arange(0, 1000, 1) ** 2)",
            arrays.arange(0, 1000, 1, [64])?.pow(2)?.sum(Axes::All)?,
        ),
    ])
}

pub fn python_arrays(mode: &str, dir: &Path, cases: &[(&str, &str)]) -> String {
    let python = shoal_tests::python::test_python().unwrap();
    let list = dir.join(format!("cases-{mode}.json"));
    std::fs::write(&list, serde_json::to_vec(&cases).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/arrays.py");
    let out = Command::new(python).arg(script).arg(mode).arg(dir).arg(&list).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() || mode == "check", "arrays.py {mode}: {text}");
    if mode == "check" && !out.status.success() {
        panic!("zarr-python disagrees with shoal's arrays:\n{text}");
    }
    text
}

fn flat_f64(a: &NdArray) -> Vec<f64> {
    a.floats().iter().copied().collect()
}

/// Compares shoal's answer with NumPy's (shape, type name, values).
pub fn assert_matches(name: &str, got: &NdArray, want: &Value) {
    let shape: Vec<usize> = serde_json::from_value(want["shape"].clone()).unwrap();
    assert_eq!(got.shape(), shape.as_slice(), "{name}: shape");
    let dtype = want["dtype"].as_str().unwrap();
    assert_eq!(got.dtype.name(), dtype, "{name}: type (NumPy's promotion)");
    let expected = want["data"].as_array().unwrap();
    let values = flat_f64(got);
    assert_eq!(values.len(), expected.len(), "{name}: element count");
    let rtol = if got.dtype == DType::Float32 { 1e-5 } else { 1e-9 };
    for (k, (g, w)) in values.iter().zip(expected).enumerate() {
        let w = match w {
            Value::Bool(b) => f64::from(u8::from(*b)),
            other => other.as_f64().unwrap(),
        };
        let ok = if got.dtype.is_float() { (g - w).abs() <= rtol * w.abs().max(1e-3) } else { *g == w };
        assert!(ok, "{name}: element {k} is {g}, NumPy says {w}");
    }
}

pub(crate) async fn load_inputs(c: &Client, dir: &Path) -> Inputs {
    let mut inputs = HashMap::new();
    for name in ["a", "b", "v", "col", "i", "u", "f", "c", "m", "m2", "m3", "bo"] {
        let url = dir.join("in").join(name).display().to_string();
        inputs.insert(name.to_string(), c.array().from_zarr(&url).await.unwrap());
    }
    inputs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn array_operations_match_numpy() {
    let tmp = tempfile::tempdir().unwrap();
    let c = client(&tmp.path().join("root"), ExecutorKind::Threads);
    let cases = cases();
    let generated = generated(&c).unwrap();
    let pairs: Vec<(&str, &str)> =
        cases.iter().map(|(n, p, _)| (*n, *p)).chain(generated.iter().map(|(n, p, _)| (*n, *p))).collect();
    python_arrays("make", tmp.path(), &pairs);
    let expected: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("expected.json")).unwrap()).unwrap();
    let inputs = load_inputs(&c, tmp.path()).await;
    // Codecs and formats as zarr-python wrote them: zstd, gzip, blosc, none, v2, sharded.
    assert_eq!(inputs["u"].chunks(), &[9, 9]);
    assert_eq!(inputs["f"].dtype(), DType::Float32);
    for (name, _, build) in &cases {
        let array = build(&inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = array.compute().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_matches(name, &got, &expected[name]);
    }
    for (name, _, array) in &generated {
        let got = array.compute().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_matches(name, &got, &expected[name]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fused_expression_is_one_task_per_block_and_its_reduction_writes_no_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let c = client(tmp.path(), ExecutorKind::Threads);
    let a = c.array().random(&[400, 300], [100, 100], 1).unwrap();
    let b = c.array().random(&[400, 300], [100, 100], 2).unwrap();
    let q = a.sub(&b).unwrap().pow(2).unwrap().mean(Axes::All).unwrap();
    let explain = q.explain().unwrap();
    // 12 partial tasks (the random blocks, the difference and the square fused into them), one
    // combine of 8, one final.
    assert!(explain.contains("== task graph: 15 tasks in 3 stages =="), "{explain}");
    assert!(
        explain.contains("mean over axes [0, 1] of (((random(seed=1) - random(seed=2))) ** 2)")
            || explain.contains("mean over axes [0, 1] of ((random(seed=1) - random(seed=2)) ** 2)"),
        "{explain}"
    );
    assert!(explain.contains("projected ≤"), "{explain}");
    let (value, summary) = q.compute_with(Default::default()).await.unwrap();
    assert_eq!(summary.executed, 15);
    // E[(U1 - U2)^2] = 1/6 for independent uniforms; 120,000 samples put it within 0.005.
    let v = value.floats().iter().copied().next().unwrap();
    assert!((v - 1.0 / 6.0).abs() < 0.005, "{v}");
    // The same seed gives the same values; another gives others; every value is in [0, 1).
    let again = c.array().random(&[400, 300], [100, 100], 1).unwrap().compute().await.unwrap();
    let first = a.compute().await.unwrap();
    assert_eq!(again, first);
    assert_ne!(b.compute().await.unwrap(), first);
    assert!(first.floats().iter().all(|&x| (0.0..1.0).contains(&x)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_blocks_gives_each_block_its_index() {
    let tmp = tempfile::tempdir().unwrap();
    let c = client(tmp.path(), ExecutorKind::Threads);
    let m = c.load_module("builtin:examples").await.unwrap();
    let x = c.array().arange(0, 20, 1, [6]).unwrap();
    let y = x.map_blocks(&m, "shift_block", serde_json::json!({"factor": 2}), None).unwrap();
    assert_eq!(y.dtype(), DType::Int64);
    let got = y.compute().await.unwrap();
    // Element k is in block k / 6: 2k + k / 6.
    let want: Vec<f64> = (0..20).map(|k| (2 * k + k / 6) as f64).collect();
    assert_eq!(flat_f64(&got), want);
    // A function of another kind is refused when the plan is built.
    let err = x.map_blocks(&m, "add", Value::Null, None).unwrap_err().to_string();
    assert!(err.contains("'add' is a binop function, but map_blocks needs a table function"), "{err}");

    // The same function in Python (an `items` function: the block as nested lists) on a 2-d
    // array of uneven blocks gives what the Rust one gives.
    let path = tmp.path().join("python.wasm");
    std::fs::write(&path, crate::python_functions::python_component()).unwrap();
    let py = c.load_module(&path.display().to_string()).await.unwrap();
    let grid = c.array().random(&[7, 5], [3, 2], 4).unwrap().mul(10).unwrap();
    let args = serde_json::json!({"factor": 3});
    let rust = grid.map_blocks(&m, "shift_block", args.clone(), None).unwrap().compute().await.unwrap();
    let python = grid.map_blocks(&py, "shift_block", args, None).unwrap();
    assert!(python.explain().unwrap().contains("map_blocks shift_block"));
    assert_eq!(python.compute().await.unwrap(), rust);
    let ints = c.array().arange(0, 35, 1, [8]).unwrap();
    let py_ints =
        ints.map_blocks(&py, "shift_block", serde_json::json!({}), None).unwrap().compute().await.unwrap();
    let want: Vec<f64> = (0..35).map(|k| (k + k / 8) as f64).collect();
    assert_eq!(flat_f64(&py_ints), want);
    assert_eq!(py_ints.dtype, DType::Int64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zarr_written_by_shoal_opens_in_zarr_python() {
    let tmp = tempfile::tempdir().unwrap();
    let c = client(&tmp.path().join("root"), ExecutorKind::Threads);
    let written: Vec<(&str, &str, &str, Build)> = vec![
        ("a_zstd", "a", "zstd", |i| Ok(x(i, "a").clone())),
        ("u_gzip", "u", "gzip", |i| Ok(x(i, "u").clone())),
        ("i_blosc", "i * 2", "blosc", |i| x(i, "i").mul(2)),
        ("bo_none", "bo", "none", |i| Ok(x(i, "bo").clone())),
        ("sum_rechunked", "a + b", "zstd", |i| x(i, "a").add(x(i, "b"))?.rechunk([20, 20])),
        ("f32_slice", "f[3:30:4]", "zstd", |i| {
            x(i, "f").slice(&[Index::Slice { start: Some(3), stop: Some(30), step: Some(4) }])
        }),
        ("scalar", "np.sum(i)", "zstd", |i| x(i, "i").sum(Axes::All)),
    ];
    let pairs: Vec<(&str, &str)> = written.iter().map(|(n, p, _, _)| (*n, *p)).collect();
    python_arrays("make", tmp.path(), &pairs);
    let inputs = load_inputs(&c, tmp.path()).await;
    for (name, _, codec, build) in &written {
        let out = tmp.path().join("out").join(name).display().to_string();
        build(&inputs).unwrap().to_zarr(&out, codec).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        // Read back by shoal too: the same chunks, the same values.
        let back = c.array().from_zarr(&out).await.unwrap();
        assert_eq!(back.chunks(), build(&inputs).unwrap().chunks(), "{name}");
    }
    python_arrays("check", tmp.path(), &pairs);
    // Written again over itself: the metadata is replaced last, the answer the same.
    let out = tmp.path().join("out").join("a_zstd").display().to_string();
    inputs["a"].add(0.0).unwrap().to_zarr(&out, "zstd").await.unwrap();
    python_arrays("check", tmp.path(), &pairs[..1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rechunk_of_many_times_the_memory_limit_goes_through_an_intermediate() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = crate::config(tmp.path(), ExecutorKind::Threads);
    // 2000 x 2000 float64 is 32 MB, almost 8 times the 4 MiB limit (64 MB held as tables and
    // decoded); each block of a column would read every row block.
    config.limits.task_memory_bytes = 4 << 20;
    let c = Client::new(config).unwrap();
    let rows = c.array().random(&[2000, 2000], [50, 2000], 9).unwrap();
    let cols = rows.rechunk([2000, 50]).unwrap();
    assert_eq!(cols.chunks(), &[2000, 50]);
    let explain = cols.explain().unwrap();
    let stages = explain.lines().filter(|l| l.starts_with("stage ") && l.contains("array-rechunk")).count();
    assert_eq!(stages, 2, "{explain}");
    // Every stage's projected task is within the limit, and the answer is the array itself.
    for line in explain.lines().filter(|l| l.contains("projected ≤")) {
        let mib: f64 =
            line.rsplit("projected ≤ ").next().unwrap().split(' ').next().unwrap().parse().unwrap();
        assert!(mib <= 4.0, "{line}");
    }
    let (got, summary) = cols.compute_with(Default::default()).await.unwrap();
    assert_eq!(got, rows.compute().await.unwrap());
    assert!(summary.executed > 15, "{summary:?}");
    // Assembling each column block from whole row blocks directly would hold the whole array:
    // refused before anything runs, naming the operation and the chunks.
    let commits = || std::fs::read_dir(tmp.path().join("commits")).map(|d| d.count()).unwrap_or(0);
    let before = commits();
    let direct = c.array().random(&[2000, 2000], [1000, 1000], 9).unwrap();
    let err = direct.add(1).unwrap().compute().await.unwrap_err();
    assert!(matches!(err, shoal::Error::TaskMemory(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("elementwise") && text.contains("chunks (1000, 1000) of float64"), "{text}");
    assert_eq!(commits(), before, "a refused plan committed something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_array_input_is_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let c = client(&tmp.path().join("root"), ExecutorKind::Threads);
    python_arrays("make", tmp.path(), &[]);
    let inputs = load_inputs(&c, tmp.path()).await;
    let (a, v, i, m) = (&inputs["a"], &inputs["v"], &inputs["i"], &inputs["m"]);
    let err = |r: shoal::Result<Array>| r.map(|_| ()).unwrap_err().to_string();
    assert_eq!(err(a.add(m)), "operands could not be broadcast together with shapes (37, 23) (23, 11)");
    assert!(err(a.and(i)).contains("& needs boolean operands, not float64 and int32"));
    assert_eq!(err(a.sum(2)), "axis 2 is out of bounds for array of dimension 2");
    assert_eq!(err(v.slice(&[Index::At(23)])), "index 23 is out of bounds for axis 0 with size 23");
    assert!(err(a.matmul(a)).contains("mismatch in its core dimension"));
    assert!(err(a.rechunk([10])).contains("chunks [10] have 1 dimensions but the shape [37, 23] has 2"));
    assert!(err(a.rechunk([0, 5])).contains("dimension 0 has a chunk size of 0"));
    assert!(
        err(i.neg().and_then(|n| n.not())).contains("~ (logical not) needs a boolean operand, not int32")
    );
    // A codec this build does not have.
    let odd = tmp.path().join("in").join("odd");
    std::fs::create_dir_all(&odd).unwrap();
    let mut meta: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("in/a/zarr.json")).unwrap()).unwrap();
    meta["codecs"] = serde_json::json!([{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "zfp", "configuration": {"mode": "reversible"}}]);
    std::fs::write(odd.join("zarr.json"), serde_json::to_vec(&meta).unwrap()).unwrap();
    let text = c.array().from_zarr(&odd.display().to_string()).await.map(|_| ()).unwrap_err().to_string();
    assert!(text.contains("odd") && text.contains("zfp"), "{text}");
    // A corrupt chunk: the task fails naming the array and the region; nothing is committed.
    let chunk = tmp.path().join("in/a/c/1/2");
    std::fs::write(&chunk, b"not zstd at all").unwrap();
    let out = tmp.path().join("out").join("corrupt");
    let text = a.mul(2).unwrap().to_zarr(&out.display().to_string(), "zstd").await.unwrap_err().to_string();
    assert!(text.contains("in/a") && text.contains("[[10, 20], [14, 21]]"), "{text}");
    assert!(!out.join("zarr.json").exists(), "a failed write left metadata behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataframes_columns_become_a_2d_array_in_regular_row_chunks() {
    use arrow::array::{Array as _, AsArray};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    shoal_tests::data::write_trips(&data, &[300, 0, 200, 150], 100).unwrap();
    let c = client(&tmp.path().join("root"), ExecutorKind::Threads);
    let trips = c.read_parquet(&format!("{}/*.parquet", data.display())).await.unwrap();
    let frame = trips
        .assign("dist", "COALESCE(distance, 0.0)")
        .unwrap()
        .assign("pax", "COALESCE(passengers, -1)")
        .unwrap();
    let array = frame.to_array(&["id", "dist", "pax"], 128).await.unwrap();
    // int64, float64 and int32 columns: float64, as np.result_type says.
    assert_eq!(
        (array.shape(), array.chunks(), array.dtype()),
        (&[650, 3][..], &[128, 3][..], DType::Float64)
    );
    let got = array.compute().await.unwrap();
    // The rows as the files hold them, in file order, read by the tests' own Parquet reader.
    let mut want = Vec::new();
    for batch in shoal_tests::read_parquet_dir(&data).unwrap() {
        let id = batch.column_by_name("id").unwrap().as_primitive::<arrow::datatypes::Int64Type>();
        let dist = batch.column_by_name("distance").unwrap().as_primitive::<arrow::datatypes::Float64Type>();
        let pax = batch.column_by_name("passengers").unwrap().as_primitive::<arrow::datatypes::Int32Type>();
        for r in 0..batch.num_rows() {
            want.push(id.value(r) as f64);
            want.push(if dist.is_null(r) { 0.0 } else { dist.value(r) });
            want.push(if pax.is_null(r) { -1.0 } else { f64::from(pax.value(r)) });
        }
    }
    assert_eq!(flat_f64(&got), want);
    // Its column sums agree with the DataFrame's own.
    let sums = array.sum(0).unwrap().compute().await.unwrap();
    let ids: f64 = (0..650).map(f64::from).sum();
    assert_eq!(flat_f64(&sums)[0], ids);
    // A column with nulls cannot be an array column; a string column is not a number.
    let err = trips.to_array(&["distance"], 100).await.unwrap().compute().await.unwrap_err().to_string();
    assert!(err.contains("column \"distance\" holds nulls"), "{err}");
    let err = trips.to_array(&["vendor"], 100).await.map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("column \"vendor\" is Utf8, not a number or boolean"), "{err}");
}
