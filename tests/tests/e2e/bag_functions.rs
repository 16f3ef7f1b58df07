//! Bag operators that call user functions, with the same functions written in Rust
//! (`builtin:examples`) and in Python (built with `shoal function build`): both give the
//! answer computed directly here; a function of the wrong kind or returning the wrong type is
//! one clear error.

use serde_json::{Value, json};
use shoal::{Binop, Client, ExecutorKind, FunctionModule, Key};

async fn modules(client: &Client, dir: &std::path::Path) -> Vec<(&'static str, FunctionModule)> {
    let path = dir.join("python-examples.wasm");
    std::fs::write(&path, crate::python_functions::python_component()).unwrap();
    vec![
        ("rust", client.load_module("builtin:examples").await.unwrap()),
        ("python", client.load_module(path.to_str().unwrap()).await.unwrap()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bag_functions_in_rust_and_python_give_the_direct_answer() {
    shoal_tests::init_test_env();
    let tmp = tempfile::tempdir().unwrap();
    let client = Client::new(crate::config(&tmp.path().join("root"), ExecutorKind::Threads)).unwrap();
    let numbers: Vec<Value> = (0..3000).map(|i| json!(i)).collect();
    let logs: Vec<Value> = (0..2000)
        .map(|i| match i % 5 {
            0 => json!({"method": "GET", "bytes": i, "status": 200}),
            1 => json!({"method": "PUT", "bytes": null, "status": 503}),
            2 => json!({"method": "Zoë", "status": 500}),
            3 => json!({"method": "GET", "bytes": 2 * i, "status": 404}),
            _ => json!({"method": "PUT", "bytes": 1, "status": 501, "note": "ünï"}),
        })
        .collect();
    let sentences = vec![json!("The quick  brown fox"), json!("the LAZY dog"), json!(""), json!("Fox ünï")];
    // Direct answers.
    let even_sum: i64 = (0..3000).map(|i| i + 2).filter(|x| x % 2 == 0).sum();
    let mut by_method: Vec<(String, i64)> = Vec::new();
    for l in &logs {
        let m = l["method"].as_str().unwrap().to_string();
        let b = l["bytes"].as_i64().unwrap_or(0);
        match by_method.iter_mut().find(|(k, _)| *k == m) {
            Some(e) => e.1 += b,
            None => by_method.push((m, b)),
        }
    }
    let errors = logs.iter().filter(|l| l["status"].as_i64().unwrap() >= 500).count();

    let nums = client.bag().from_sequence(&numbers, 7).await.unwrap();
    let log_bag = client.bag().from_sequence(&logs, 5).await.unwrap();
    let text = client.bag().from_sequence(&sentences, 2).await.unwrap();
    for (lang, m) in modules(&client, tmp.path()).await {
        let mapped = nums.map(&m, "inc", json!({"by": 2})).unwrap().filter(&m, "is_even", json!({})).unwrap();
        assert_eq!(
            mapped.sum("").unwrap().compute().await.unwrap(),
            json!(even_sum),
            "{lang}: map, filter, sum"
        );
        let folded = nums.fold(Binop::new(&m, "add"), None, json!(0)).unwrap().compute().await.unwrap();
        assert_eq!(folded, json!(2999 * 3000 / 2), "{lang}: fold");
        let odd = nums.remove(&m, "is_even", json!({})).unwrap().count().compute().await.unwrap();
        assert_eq!(odd, json!(1500), "{lang}: remove");
        let custom = nums.reduction(&m, "sum_list", "sum_list").unwrap().compute().await.unwrap();
        assert_eq!(custom, json!(2999 * 3000 / 2), "{lang}: reduction");

        let totals = log_bag
            .split_every(2)
            .foldby(
                Key::Path("method"),
                Binop::new(&m, "add_field").args(json!({"field": "bytes"})),
                json!(0),
                Some(Binop::new(&m, "add")),
                None,
            )
            .unwrap()
            .compute()
            .await
            .unwrap();
        let mut got: Vec<(String, i64)> =
            totals.iter().map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_i64().unwrap())).collect();
        let mut want = by_method.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{lang}: foldby");
        let n = log_bag.filter(&m, "is_error", json!({})).unwrap().count().compute().await.unwrap();
        assert_eq!(n, json!(errors), "{lang}: filter on objects");
        let add_bytes = Binop::new(&m, "add_field").args(json!({"field": "bytes"}));
        let add = Some(Binop::new(&m, "add"));
        let by_fn = log_bag.foldby(Key::Function(&m, "is_error"), add_bytes, json!(0), add, None).unwrap();
        assert_eq!(by_fn.compute().await.unwrap().len(), 2, "{lang}: foldby a function's key");

        let words = text.map(&m, "split_words", json!({})).unwrap().flatten().frequencies(true);
        let words = words.compute().await.unwrap();
        assert_eq!(words[0], json!(["the", 2]), "{lang}: {words:?}");
        assert!(
            words.contains(&json!(["ünï", 1])) && words.contains(&json!(["fox", 2])),
            "{lang}: {words:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_of_the_wrong_kind_or_result_are_one_clear_error() {
    shoal_tests::init_test_env();
    let tmp = tempfile::tempdir().unwrap();
    let client = Client::new(crate::config(&tmp.path().join("root"), ExecutorKind::Threads)).unwrap();
    let m = client.load_module("builtin:examples").await.unwrap();
    let bag = client.bag().from_sequence(&[json!(1), json!("two"), json!(3)], 2).await.unwrap();
    // A binop where an items function is needed, and a table function: refused before running.
    let err = bag.map(&m, "add", json!({})).unwrap_err().to_string();
    assert!(err.contains("'add' is a binop function") && err.contains("items function"), "{err}");
    let err = bag.fold(Binop::new(&m, "scale"), None, json!(0)).unwrap_err().to_string();
    assert!(err.contains("'scale' is a table function"), "{err}");
    let err = bag.map(&m, "no_such", json!({})).unwrap_err().to_string();
    assert!(err.contains("no function 'no_such'"), "{err}");
    // A binop given an item it cannot add: the task fails once, naming the function; nothing
    // is committed for it.
    let err =
        bag.fold(Binop::new(&m, "add"), None, json!(0)).unwrap().compute().await.unwrap_err().to_string();
    assert!(err.contains("add") && err.contains("two"), "{err}");
}

/// Writes rides with nulls as Parquet and prints pandas' row-wise `apply` of the same function.
const PANDAS_APPLY: &str = r#"
import sys, json, random
import pandas as pd
rng = random.Random(3)
n = 2500
df = pd.DataFrame({
    "id": list(range(n)),
    "fare": [None if rng.random() < 0.1 else round(rng.random() * 50, 2) for _ in range(n)],
    "tip": [None if rng.random() < 0.2 else rng.randint(0, 9) for _ in range(n)],
    "zone": [rng.choice(["Zoë", "日本", "N"]) for _ in range(n)],
})
df["tip"] = df["tip"].astype("Int64")
for i in range(3):
    df.iloc[i * n // 3:(i + 1) * n // 3].to_parquet(sys.argv[1] + "/rides-%d.parquet" % i, index=False)
def row_total(row, columns):
    return {"total": sum(0 if pd.isna(row[c]) else row[c] for c in columns)}
out = df.apply(lambda r: row_total(r, ["fare", "tip"])["total"], axis=1)
print(json.dumps([[int(i), float(t)] for i, t in zip(df["id"], out)]))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_wise_apply_equals_pandas() {
    shoal_tests::init_test_env();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("rides");
    std::fs::create_dir_all(&data).unwrap();
    let python = shoal_tests::python::test_python().unwrap();
    let out = std::process::Command::new(python)
        .args(["-c", PANDAS_APPLY, data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let want: Vec<(i64, f64)> = serde_json::from_slice(&out.stdout).unwrap();
    let client = Client::new(crate::config(&tmp.path().join("root"), ExecutorKind::Threads)).unwrap();
    let rides = client.read_parquet(data.to_str().unwrap()).await.unwrap();
    for (lang, m) in modules(&client, tmp.path()).await {
        let args = json!({"columns": ["fare", "tip"]});
        let applied = rides.apply(&m, "row_total", args, &[("total", "float64")]).unwrap();
        assert!(applied.explain().unwrap().contains("Apply row_total"), "{lang}");
        let batches = applied.select(&["id", "total", "zone"]).unwrap().compute().await.unwrap();
        let mut got: Vec<(i64, f64)> = Vec::new();
        for b in &batches {
            let ids = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(b.column(0));
            let totals = arrow::array::AsArray::as_primitive::<arrow::datatypes::Float64Type>(b.column(1));
            got.extend(ids.values().iter().copied().zip(totals.values().iter().copied()));
        }
        got.sort_by_key(|r| r.0);
        assert_eq!(got.len(), want.len(), "{lang}");
        for (g, w) in got.iter().zip(&want) {
            assert!(g.0 == w.0 && (g.1 - w.1).abs() < 1e-9, "{lang}: {g:?} vs pandas {w:?}");
        }
        // The wrong output type for what the function returns is one error naming the function.
        let bad = rides.apply(&m, "row_total", json!({"columns": ["fare"]}), &[("total", "bool")]).unwrap();
        let err = bad.compute().await.unwrap_err().to_string();
        assert!(err.contains("row_total"), "{lang}: {err}");
    }
}
