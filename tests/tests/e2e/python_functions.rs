//! Python functions end to end: `shoal function build` (componentize-py from the test venv)
//! turns `tests/python/under_test.py` — the Python example module plus a few misbehaving
//! functions — into a component, which the worker's sandbox loads like a Rust one.
//!
//! - Differential: every JSON-kind function of the Rust examples (`builtin:examples`) has a
//!   Python twin of the same kind whose output equals the Rust one on the same generated inputs
//!   (Unicode strings, nulls, nested objects, integer overflow into floats); invalid inputs fail
//!   in both.
//! - A raised exception is the call's error, with the traceback; an infinite loop stops at the
//!   deadline; a memory bomb stops at the memory limit; the default memory limit fits CPython.
//! - The build's error without componentize-py names the install command; the SDK's own unit
//!   tests pass in ordinary CPython.
//!
//! The built component is cached under `shoal_cache()/python-components/`, keyed by a hash of
//! its sources (the SDK, the example and test modules, the WIT); the compiled artifact by the
//! sandbox's component cache.

use serde_json::{Value, json};
use shoal_protocol::{FunctionKind, Limits};
use shoal_tests::data::Rng;
use shoal_worker::sandbox::{Module, Sandbox, SandboxConfig, SandboxError};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The sources the Python component is built from, relative to the repository root.
const SOURCES: &[&str] = &[
    "functions/wit/shoal.wit",
    "functions/python/shoal/__init__.py",
    "functions/python/shoal/_component.py",
    "functions/python/examples/app.py",
    "tests/python/under_test.py",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// componentize-py of the test venv: beside `SHOAL_TEST_PYTHON`.
fn componentize_py() -> PathBuf {
    let python = shoal_tests::python::test_python().unwrap();
    let tool = python.parent().unwrap().join("componentize-py");
    assert!(tool.is_file(), "{} is missing: run `bash scripts/test-venv.sh`", tool.display());
    tool
}

/// Builds the Python component with `shoal function build`, or takes it from the cache.
pub(crate) fn python_component() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let mut key = String::from("componentize-py==0.25.1\n");
        for source in SOURCES {
            let text = std::fs::read_to_string(repo().join(source)).unwrap();
            key.push_str(&format!("{source}\n{}\n", shoal_functions::sha256_hex(text.as_bytes())));
        }
        let hash = shoal_functions::sha256_hex(key.as_bytes());
        let dir = shoal_tests::shoal_cache().join("python-components");
        let cached = dir.join(format!("{hash}.wasm"));
        if let Ok(bytes) = std::fs::read(&cached) {
            return bytes;
        }
        std::fs::create_dir_all(&dir).unwrap();
        let partial = dir.join(format!("{hash}.{}.partial", std::process::id()));
        let started = Instant::now();
        let output = Command::new(crate::cli::shoal_bin())
            .current_dir(repo())
            .args([
                "function",
                "build",
                "tests/python/under_test.py",
                "-p",
                "functions/python/examples",
                "-o",
            ])
            .arg(&partial)
            .arg("--componentize-py")
            .arg(componentize_py())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "shoal function build failed:\n{stderr}");
        assert!(stderr.contains("built "), "{stderr}");
        println!("built the Python component in {:?}", started.elapsed());
        std::fs::rename(&partial, &cached).unwrap();
        std::fs::read(&cached).unwrap()
    })
}

fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        let cache_dir = Some(shoal_tests::shoal_cache().join("components"));
        Sandbox::new(SandboxConfig { cache_dir, ..SandboxConfig::default() }).unwrap()
    })
}

fn python() -> Arc<Module> {
    let bytes = python_component();
    sandbox().load(&shoal_functions::sha256_hex(bytes), bytes).unwrap()
}

fn rust() -> Arc<Module> {
    let bytes = shoal_functions::builtin("examples").unwrap();
    sandbox().load(&shoal_functions::sha256_hex(bytes), bytes).unwrap()
}

fn call(
    module: &Module,
    function: &str,
    kind: FunctionKind,
    inputs: &[Value],
    args: &Value,
    limits: &Limits,
) -> Result<Value, SandboxError> {
    let inputs: Vec<Vec<u8>> = inputs.iter().map(|v| serde_json::to_vec(v).unwrap()).collect();
    let out = sandbox().call_bytes(module, function, kind, &inputs, args, limits)?;
    Ok(serde_json::from_slice(&out.bytes).unwrap())
}

/// Calls `function` in both components and asserts the same output (or both failing).
fn same(function: &str, kind: FunctionKind, inputs: &[Value], args: Value) -> Value {
    let limits = Limits::default();
    let expected = call(&rust(), function, kind, inputs, &args, &limits);
    let actual = call(&python(), function, kind, inputs, &args, &limits);
    match (expected, actual) {
        (Ok(expected), Ok(actual)) => {
            assert_eq!(actual, expected, "{function} on {inputs:?} with {args}");
            actual
        }
        (Err(SandboxError::Guest { .. }), Err(SandboxError::Guest { .. })) => Value::Null,
        (expected, actual) => panic!("{function} on {inputs:?}: Rust gave {expected:?}, Python {actual:?}"),
    }
}

const WORDS: &[&str] = &[
    "Ça",
    "VA",
    "bien",
    "ΟΔΟΣ",
    "Σίσυφος",
    "日本語",
    "テキスト",
    "🎉",
    "Party",
    "ß",
    "STRASSE",
    "İstanbul",
    "ǅemal",
    "x\u{1c}y",
    "naïve",
    "ÅNGSTRÖM",
    "",
    "-",
    "42",
    "ﬁre",
];
const SPACES: &[&str] = &[" ", "  ", "\t", "\n", "\u{a0}", "\u{2003}", "\u{3000}", "\u{85}", "\r\n"];

fn pick<'a>(rng: &mut Rng, from: &[&'a str]) -> &'a str {
    from[rng.below(from.len() as u64) as usize]
}

fn text(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..rng.below(6) {
        s.push_str(pick(rng, SPACES));
        s.push_str(pick(rng, WORDS));
    }
    if rng.chance(0.3) {
        s.push_str(pick(rng, SPACES));
    }
    s
}

fn number(rng: &mut Rng) -> Value {
    match rng.below(8) {
        0 => json!(i64::MAX - rng.below(3) as i64),
        1 => json!(i64::MIN + rng.below(3) as i64),
        2 => json!((rng.below(2000) as f64 - 1000.0) / 8.0),
        3 => json!(0),
        4 => json!(1e300),
        _ => json!(rng.below(1000) as i64 - 500),
    }
}

fn maybe_number(rng: &mut Rng) -> Value {
    if rng.chance(0.2) { Value::Null } else { number(rng) }
}

fn nested(rng: &mut Rng) -> Value {
    json!({"tags": [text(rng), {"deep": [1, null, {"x": text(rng)}]}], "note": text(rng), "ok": rng.chance(0.5)})
}

fn list_of(rng: &mut Rng, max: u64, mut f: impl FnMut(&mut Rng) -> Value) -> Vec<Value> {
    (0..rng.below(max + 1)).map(|_| f(rng)).collect()
}

#[test]
fn python_functions_declare_the_kinds_of_the_rust_examples() {
    let limits = Limits::default();
    let rust_functions = sandbox().list_functions(&rust(), &limits).unwrap();
    let python_functions = sandbox().list_functions(&python(), &limits).unwrap();
    assert_eq!(python().interface_version(), "0.2.0");
    let json_kinds: Vec<_> = rust_functions.iter().filter(|f| f.kind != FunctionKind::Table).collect();
    assert_eq!(json_kinds.len(), 11, "{rust_functions:?}");
    for f in json_kinds {
        let twin = python_functions.iter().find(|p| p.name == f.name);
        assert_eq!(twin.map(|p| p.kind), Some(f.kind), "Python twin of {}: {python_functions:?}", f.name);
        assert_eq!(twin.map(|p| &p.description), Some(&f.description), "{}", f.name);
    }
}

#[test]
fn python_items_functions_equal_the_rust_ones() {
    let mut rng = Rng::new(7);
    let items = FunctionKind::Items;
    for _ in 0..4 {
        let ints: Vec<Value> = list_of(&mut rng, 40, |r| json!(r.below(2000) as i64 - 1000));
        same("is_even", items, &[json!(ints)], json!({}));
        let numbers = list_of(&mut rng, 40, number);
        same("inc", items, &[json!(numbers)], json!({}));
        same("inc", items, &[json!(numbers)], json!({"by": 2.5}));
        same("inc", items, &[json!(numbers)], json!({"by": i64::MAX}));
        let objects = list_of(&mut rng, 30, |r| {
            let mut o = nested(r);
            match r.below(4) {
                0 => {}
                1 => o["status"] = Value::Null,
                2 => o["status"] = json!(r.below(600)),
                _ => o["status"] = json!(r.below(6000) as f64 / 10.0),
            }
            o
        });
        let flags = same("is_error", items, &[json!(objects)], json!({}));
        assert_eq!(flags.as_array().map(Vec::len), Some(objects.len()));
        let texts = list_of(&mut rng, 30, |r| json!(text(r)));
        let words = same("split_words", items, &[json!(texts)], json!({}));
        assert!(words.as_array().is_some_and(|w| w.len() == texts.len()), "{words}");
        let lists = list_of(&mut rng, 10, |r| json!(list_of(r, 8, number)));
        same("sum_list", items, &[json!(lists)], json!({}));
        let rows = list_of(
            &mut rng,
            20,
            |r| json!({"a": maybe_number(r), "b": maybe_number(r), "c": nested(r), "s": text(r)}),
        );
        let totals = same("row_total", items, &[json!(rows)], json!({"columns": ["a", "b"]}));
        assert!(totals.as_array().is_some_and(|t| t.iter().all(|t| t.get("total").is_some())), "{totals}");
    }
    // Invalid items fail in both (the error texts are each language's own).
    same("inc", items, &[json!([1, "x"])], json!({}));
    same("is_even", items, &[json!([2, 2.5])], json!({}));
    same("row_total", items, &[json!([{"a": 1}])], json!({"columns": ["a", "b"]}));
    same("split_words", items, &[json!([null])], json!({}));
}

#[test]
fn python_binop_and_value_functions_equal_the_rust_ones() {
    let mut rng = Rng::new(11);
    for _ in 0..4 {
        let pairs: Vec<Value> = list_of(&mut rng, 6, |r| json!([number(r), list_of(r, 10, number)]));
        same("add", FunctionKind::Binop, &[json!(pairs)], json!({}));
        let pairs: Vec<Value> = list_of(&mut rng, 6, |r| {
            let items = list_of(r, 10, |r| match r.below(3) {
                0 => json!({"n": maybe_number(r), "other": nested(r)}),
                1 => json!({"other": text(r)}),
                _ => json!({"n": number(r)}),
            });
            json!([number(r), items])
        });
        same("add_field", FunctionKind::Binop, &[json!(pairs)], json!({"field": "n"}));

        let inputs = list_of(&mut rng, 6, number);
        same("add_values", FunctionKind::Value, &inputs, json!({}));
        same("mul", FunctionKind::Value, &[number(&mut rng), number(&mut rng)], json!({}));
        let lists = list_of(&mut rng, 5, |r| json!(list_of(r, 12, nested)));
        let total = same("total_len", FunctionKind::Value, &lists, json!({}));
        assert!(total.is_u64(), "{total}");
    }
    same("add", FunctionKind::Binop, &[json!([[0, [1, "two"]]])], json!({}));
    same("mul", FunctionKind::Value, &[json!(2)], json!({}));
    same("total_len", FunctionKind::Value, &[json!([1]), json!("no list")], json!({}));
}

#[test]
fn python_value_functions_get_positional_inputs_and_keyword_args() {
    let args = json!({"k": "ü", "nested": {"n": [1, null]}});
    let out =
        call(&python(), "echo_args", FunctionKind::Value, &[json!(1), json!("a")], &args, &Limits::default())
            .unwrap();
    assert_eq!(out, json!([[1, "a"], args]));
    let err = call(&python(), "inc", FunctionKind::Binop, &[json!([])], &json!({}), &Limits::default())
        .unwrap_err();
    assert!(matches!(err, SandboxError::WrongKind { declared: FunctionKind::Items, .. }), "{err:?}");
}

#[test]
fn a_python_exception_is_an_error_with_its_traceback() {
    let err = call(&python(), "boom", FunctionKind::Items, &[json!([7, 8])], &json!({}), &Limits::default())
        .unwrap_err();
    let SandboxError::Guest { message, .. } = &err else { panic!("expected a guest error, got {err:?}") };
    assert!(message.starts_with("function 'boom', item 0 failed:"), "{message}");
    assert!(message.contains("Traceback (most recent call last):"), "{message}");
    assert!(message.contains("in boom"), "{message}");
    assert!(message.contains("ValueError: boom on 7"), "{message}");
}

#[test]
fn a_python_infinite_loop_stops_at_the_deadline() {
    let module = python();
    let limits = Limits { guest_timeout_ms: 1_500, ..Limits::default() };
    // Listing (cached per module) is not part of the measured call.
    sandbox().list_functions(&module, &limits).unwrap();
    let started = Instant::now();
    let err = call(&module, "spin", FunctionKind::Items, &[json!([1])], &json!({}), &limits).unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, SandboxError::Timeout { limit_ms: 1_500, .. }), "{err:?}");
    assert!(elapsed >= Duration::from_millis(1_400) && elapsed < Duration::from_secs(6), "took {elapsed:?}");
}

#[test]
fn a_python_memory_bomb_stops_at_the_memory_limit() {
    let limits = Limits::default();
    let started = Instant::now();
    let err =
        call(&python(), "alloc_bomb", FunctionKind::Items, &[json!([1])], &json!({}), &limits).unwrap_err();
    assert!(
        matches!(err, SandboxError::MemoryLimit { limit_bytes, .. } if limit_bytes == limits.guest_memory_bytes),
        "{err:?}"
    );
    println!("memory bomb stopped at {} MiB in {:?}", limits.guest_memory_bytes >> 20, started.elapsed());
    // The sandbox is still usable afterwards (every call has its own store).
    let out = call(&python(), "inc", FunctionKind::Items, &[json!([1])], &json!({}), &limits).unwrap();
    assert_eq!(out, json!([2]));
}

/// The smallest memory limit (in MiB steps) with which the CPython component instantiates and
/// runs a call on a small batch, measured; the default limit must leave ample room above it.
#[test]
fn the_default_memory_limit_fits_cpython() {
    let module = python();
    let batch = json!((0..1000).collect::<Vec<i64>>());
    let fits = |mib: u64| {
        let limits = Limits { guest_memory_bytes: mib << 20, ..Limits::default() };
        call(&module, "inc", FunctionKind::Items, std::slice::from_ref(&batch), &json!({}), &limits).is_ok()
    };
    let (mut low, mut high) = (1u64, 512u64);
    assert!(fits(high), "the CPython component does not run within 512 MiB");
    while high - low > 1 {
        let mid = (low + high) / 2;
        if fits(mid) { high = mid } else { low = mid }
    }
    let default_mib = Limits::default().guest_memory_bytes >> 20;
    println!(
        "the CPython component needs {high} MiB of linear memory for a 1000-item call (default limit {default_mib} MiB)"
    );
    assert!(default_mib >= 4 * high, "default guest memory {default_mib} MiB, CPython needs {high} MiB");
    let rust_fits = {
        let limits = Limits { guest_memory_bytes: high << 20, ..Limits::default() };
        call(&rust(), "inc", FunctionKind::Items, std::slice::from_ref(&batch), &json!({}), &limits).is_ok()
    };
    assert!(rust_fits, "the Rust examples fit wherever CPython does");
}

#[test]
fn building_without_componentize_py_names_the_install_command() {
    let output = Command::new(crate::cli::shoal_bin())
        .current_dir(repo())
        .args(["function", "build", "functions/python/examples/app.py", "-o", "/nonexistent/app.wasm"])
        .env("PATH", "/nonexistent")
        .env_remove("SHOAL_COMPONENTIZE_PY")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("componentize-py is not installed"), "{stderr}");
    assert!(stderr.contains("pip install componentize-py==0.25.1"), "{stderr}");
}

/// The SDK's own unit tests (`functions/python/tests/test_shoal.py`), in the test venv's
/// ordinary CPython.
#[test]
fn python_sdk_unit_tests_pass() {
    let python = shoal_tests::python::test_python().unwrap();
    let output = Command::new(python)
        .current_dir(repo())
        .args(["-B", "functions/python/tests/test_shoal.py", "-v"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("Ran 5 tests") && stderr.contains("OK"), "{stderr}");
}

/// `shoal function list` prints each function with its kind (the compiled component comes from
/// the cache the other tests filled).
#[test]
fn shoal_function_list_prints_names_kinds_and_descriptions() {
    let dir = shoal_tests::shoal_cache().join("python-components");
    let bytes = python_component();
    let path = dir.join(format!("list-{}.wasm", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    let output = Command::new(crate::cli::shoal_bin())
        .args(["function", "list"])
        .arg(&path)
        .env("SHOAL_CACHE_DIR", shoal_tests::shoal_cache().join("components"))
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let line =
        |name: &str| stdout.lines().find(|l| l.split_whitespace().next() == Some(name)).map(str::to_string);
    let kind = |name: &str| line(name).and_then(|l| l.split_whitespace().nth(1).map(str::to_string));
    assert_eq!(kind("inc").as_deref(), Some("items"), "{stdout}");
    assert_eq!(kind("add_field").as_deref(), Some("binop"), "{stdout}");
    assert_eq!(kind("mul").as_deref(), Some("value"), "{stdout}");
    assert!(line("mul").is_some_and(|l| l.ends_with("a * b")), "{stdout}");
}
