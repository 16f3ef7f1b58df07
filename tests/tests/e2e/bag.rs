//! The Bag, against the same computations in plain Python on the same generated JSON lines
//! (nested objects, missing keys, nulls, unicode, blank lines, an empty file, a gzip file, a
//! file split into blocks): built-in operators and reductions, `groupby`, `to_textfiles`,
//! `to_dataframe` / `to_bag`, and malformed lines named by file and line or skipped and counted.

use serde_json::{Value, json};
use shoal::{ExecutorKind, Key, TextRead};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Writes the logs and prints the reference results as one JSON object.
const REFERENCE: &str = r#"
import gzip, json, random, sys, collections, os
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = random.Random(7)
countries = ["NL", "BE", "Zoë-land", None, "日本"]
words = ["ok", "slow", "cache", "naïve", "ünïcode", "retry"]
files = {}
i = 0
for f in range(4):
    lines = []
    for _ in range(300 + 100 * f):
        item = {"id": i, "status": rng.choice([200, 200, 200, 404, 500, 503]),
                "method": rng.choice(["GET", "POST", "PUT"]), "ms": round(rng.random() * 100, 3),
                "tags": rng.sample(words, rng.randint(0, 3))}
        r = rng.random()
        if r < 0.8:
            item["bytes"] = rng.randint(0, 10**6)
        elif r < 0.9:
            item["bytes"] = None
        r = rng.random()
        if r < 0.85:
            user = {"name": "u%d" % rng.randint(0, 50)}
            if rng.random() < 0.9:
                user["country"] = rng.choice(countries)
            item["user"] = user
        elif r < 0.95:
            item["user"] = None
        lines.append(json.dumps(item, ensure_ascii=(f % 2 == 0)))
        i += 1
    files["logs-%d.jsonl" % f] = lines
items = []
for name in sorted(files):
    text = "\n".join(files[name]) + "\n"
    if name == "logs-1.jsonl":
        text = text.replace("\n", "\n\n", 5)
    if name == "logs-3.jsonl":
        with gzip.open(os.path.join(out, name + ".gz"), "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        with open(os.path.join(out, name), "w", encoding="utf-8") as fh:
            fh.write(text)
open(os.path.join(out, "logs-4-empty.jsonl"), "w").close()
for name in sorted(files):
    items.extend(json.loads(l) for l in files[name])
# Listing order is by object name: logs-0, logs-1, logs-2, logs-3.jsonl.gz, logs-4-empty.

def country(x):
    u = x.get("user")
    return u.get("country") if isinstance(u, dict) else None

errors = [x for x in items if x["status"] >= 500]
freq = collections.Counter(country(x) for x in errors).most_common()
nums = [x["bytes"] for x in items if x.get("bytes") is not None]
methods = list(dict.fromkeys(x["method"] for x in items))
top = sorted(items, key=lambda x: x["ms"], reverse=True)[:5]
tags = collections.Counter(t for x in items for t in x["tags"])
groups = collections.defaultdict(list)
for x in items:
    groups[x["method"]].append(x["id"])
where = [x["id"] for x in items if x["method"] in ("GET", "PUT") and x["ms"] > 50 and x["id"] % 7 != 3]
print(json.dumps({
    "count": len(items),
    "error_countries": [[k, v] for k, v in freq],
    "sum": sum(nums), "min": min(nums), "max": max(nums), "mean": sum(nums) / len(nums),
    "methods": methods,
    "top_ms": [x["ms"] for x in top],
    "tag_freq": [[k, v] for k, v in tags.items()],
    "groups": {k: sorted(v) for k, v in groups.items()},
    "where": where,
    "not_200": sum(1 for x in items if x["status"] != 200),
    "first": items[:7],
    "ms_sum": sum(x["ms"] for x in items),
}))
"#;

fn reference(dir: &Path) -> Value {
    let python = shoal_tests::python::test_python().unwrap();
    let out = Command::new(python).args(["-c", REFERENCE, dir.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bag_operations_equal_plain_python() {
    shoal_tests::init_test_env();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    let want = reference(&logs);
    let client = shoal::Client::new(crate::config(&tmp.path().join("root"), ExecutorKind::Threads)).unwrap();
    // Small blocks, so the uncompressed files are split and the gzip one is read whole.
    let read = TextRead { blocksize: Some(20_000), ..Default::default() };
    let bag = client.bag().read_json(logs.to_str().unwrap(), read).await.unwrap();
    assert!(bag.npartitions() > 5, "{} partitions", bag.npartitions());

    assert_eq!(bag.count().compute().await.unwrap(), want["count"]);
    let errors = bag.filter_where("status >= 500").unwrap();
    let countries = errors.pluck_or("user.country", Value::Null).unwrap().frequencies(true);
    assert_eq!(Value::Array(countries.compute().await.unwrap()), want["error_countries"]);

    assert_eq!(bag.sum("bytes").unwrap().compute().await.unwrap(), want["sum"]);
    assert_eq!(bag.min("bytes").unwrap().compute().await.unwrap(), want["min"]);
    assert_eq!(bag.max("bytes").unwrap().compute().await.unwrap(), want["max"]);
    let mean = bag.mean("bytes").unwrap().compute().await.unwrap();
    assert!(close(mean.as_f64().unwrap(), want["mean"].as_f64().unwrap()), "{mean} vs {}", want["mean"]);

    let methods = bag.pluck("method").unwrap().distinct();
    assert_eq!(Value::Array(methods.compute().await.unwrap()), want["methods"]);

    let top = bag.topk(5, Key::Path("ms"), true).unwrap().pluck("ms").unwrap();
    assert_eq!(Value::Array(top.compute().await.unwrap()), want["top_ms"]);

    let tags = bag.pluck("tags").unwrap().flatten().frequencies(false);
    assert_eq!(Value::Array(tags.compute().await.unwrap()), want["tag_freq"]);

    let first = bag.take(7).compute().await.unwrap();
    assert_eq!(Value::Array(first), want["first"]);

    let kept =
        bag.filter_where("method IN ('GET', 'PUT') AND ms > 50").unwrap().remove_where("id % 7 = 3").unwrap();
    assert_eq!(Value::Array(kept.pluck("id").unwrap().compute().await.unwrap()), want["where"]);
    assert_eq!(bag.remove_where("status = 200").unwrap().count().compute().await.unwrap(), want["not_200"]);

    let groups = bag.groupby(Key::Path("method"), 3).unwrap();
    assert!(groups.explain().unwrap().contains("foldby"), "explain should point to foldby");
    let mut got: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for g in groups.compute().await.unwrap() {
        let ids: Vec<i64> = g[1].as_array().unwrap().iter().map(|x| x["id"].as_i64().unwrap()).collect();
        let mut ids = ids;
        ids.sort();
        assert!(got.insert(g[0].as_str().unwrap().to_string(), ids).is_none(), "a key in two groups");
    }
    let want_groups: BTreeMap<String, Vec<i64>> = serde_json::from_value(want["groups"].clone()).unwrap();
    assert_eq!(got, want_groups);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn textfiles_and_dataframes_round_trip() {
    shoal_tests::init_test_env();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    let want = reference(&logs);
    let client =
        shoal::Client::new(crate::config(&tmp.path().join("root"), ExecutorKind::Processes)).unwrap();
    let bag = client.bag().read_json(logs.to_str().unwrap(), TextRead::default()).await.unwrap();

    // Text parts, plain and gzip: strings as their text, one per line; read back as text.
    for gzip in [false, true] {
        let out = tmp.path().join(format!("methods-{gzip}"));
        let written = bag.pluck("method").unwrap().to_textfiles(out.to_str().unwrap(), gzip).await.unwrap();
        assert_eq!(written.parts.len(), bag.npartitions());
        assert!(out.join("_SUCCESS").exists());
        let back = client.bag().read_text(out.to_str().unwrap(), TextRead::default()).await.unwrap();
        let back = back.frequencies(true).compute().await.unwrap();
        let n: i64 = back.iter().map(|p| p[1].as_i64().unwrap()).sum();
        assert_eq!(json!(n), want["count"]);
        let mut names: Vec<&str> = back.iter().map(|p| p[0].as_str().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["GET", "POST", "PUT"]);
    }

    // Items to a DataFrame (given schema, then inferred) and its rows back to items.
    let typed =
        bag.to_dataframe(Some(&[("id", "int64"), ("ms", "float64"), ("method", "string")])).await.unwrap();
    let sums = typed
        .agg(&[shoal::Agg::new("ms", "ms", "sum").unwrap(), shoal::Agg::new("n", "id", "count").unwrap()])
        .unwrap();
    let batches = sums.compute().await.unwrap();
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    writer.write_batches(&batches.iter().collect::<Vec<_>>()).unwrap();
    writer.finish().unwrap();
    let row: Vec<Value> = serde_json::from_slice(&writer.into_inner()).unwrap();
    assert_eq!(row[0]["n"], want["count"]);
    assert!(close(row[0]["ms"].as_f64().unwrap(), want["ms_sum"].as_f64().unwrap()));
    let inferred = bag.to_dataframe(None).await.unwrap();
    let back = inferred.select(&["id", "status"]).unwrap().to_bag().unwrap();
    let ids = back.pluck("id").unwrap().sum("").unwrap().compute().await.unwrap();
    let n = want["count"].as_i64().unwrap();
    assert_eq!(ids, json!(n * (n - 1) / 2));
    assert_eq!(
        back.take(1).compute().await.unwrap()[0],
        json!({"id": 0, "status": want["first"][0]["status"]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_lines_are_named_or_skipped_and_counted() {
    shoal_tests::init_test_env();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bad");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.jsonl"), "{\"a\": 1}\n{\"a\": 2}\n").unwrap();
    std::fs::write(dir.join("b.jsonl"), "{\"a\": 3}\n{\"a\": 4\n{\"a\": 5}\nnot json\n").unwrap();
    let client = shoal::Client::new(crate::config(&tmp.path().join("root"), ExecutorKind::Threads)).unwrap();
    let strict = client.bag().read_json(dir.to_str().unwrap(), TextRead::default()).await.unwrap();
    let err = strict.sum("a").unwrap().compute().await.unwrap_err().to_string();
    assert!(err.contains("b.jsonl") && err.contains("line 2") && err.contains("skip"), "{err}");

    let lenient = TextRead { skip_errors: true, ..Default::default() };
    let bag = client.bag().read_json(dir.to_str().unwrap(), lenient).await.unwrap();
    let sum = bag.sum("a").unwrap();
    let (items, summary) = sum.to_bag().compute_with(shoal::events::Events::new()).await.unwrap();
    assert_eq!(items, vec![json!(11)]);
    assert_eq!(summary.records_skipped, 2);

    // A path that is not there, and a pluck of a missing key: one clear error each.
    let none =
        client.bag().read_json(tmp.path().join("nothing").to_str().unwrap(), TextRead::default()).await;
    assert!(none.unwrap_err().to_string().contains("nothing"));
    let err = bag.pluck("b").unwrap().compute().await.unwrap_err().to_string();
    assert!(err.contains("no key 'b'") && err.contains("default"), "{err}");
    assert!(bag.filter_where("a >>> 1").is_err());
}

#[test]
fn a_bag_job_file_runs_through_the_cli() {
    shoal_tests::init_test_env();
    let tmp = tempfile::tempdir().unwrap();
    let want = reference(&tmp.path().join("logs"));
    let job = r#"
[bags.logs]
read_json = { path = "logs/", blocksize = "30KB" }

[bags.errors]
from = "logs"
filter = "status >= 500"

[bags.countries]
from = "errors"
pluck = { path = "user.country", default = null }

[bags.by_country]
from = "countries"
frequencies = { sort = true }

[bags.n]
from = "logs"
count = true

[bags.bytes_by_method]
from = "logs"
foldby = { key = "method", module = "builtin:examples", binop = "add_field", args = { field = "bytes" }, initial = 0, combine = "add" }

[[outputs]]
bag = "by_country"
show = true
rows = 100

[[outputs]]
bag = "n"
show = true

[[outputs]]
bag = "errors"
to_textfiles = "out/errors"
"#
    .replace("default = null", "default = \"?\"");
    std::fs::write(tmp.path().join("job.toml"), &job).unwrap();
    let out = crate::cli::shoal(&["run", "job.toml"], tmp.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let printed: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // TOML has no null: a missing country is "?" here, where the reference has None for it and
    // for an explicit null.
    let mut got: BTreeMap<String, i64> = BTreeMap::new();
    for pair in &printed[..printed.len() - 1] {
        let name = if pair[0] == json!("?") { Value::Null } else { pair[0].clone() };
        *got.entry(name.to_string()).or_default() += pair[1].as_i64().unwrap();
    }
    let want_countries: BTreeMap<String, i64> = want["error_countries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].to_string(), p[1].as_i64().unwrap()))
        .collect();
    assert_eq!(got, want_countries);
    assert_eq!(printed.last().unwrap(), &want["count"]);
    assert!(tmp.path().join("out/errors/_SUCCESS").exists(), "{stderr}");

    // A bag with two operations, or named like a dataset, is one clear error.
    std::fs::write(
        tmp.path().join("bad.toml"),
        "[bags.a]\nread_json = 'logs'\ncount = true\n[[outputs]]\nbag = 'a'\nshow = true\n",
    )
    .unwrap();
    let out = crate::cli::shoal(&["run", "bad.toml"], tmp.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("bag 'a'") && stderr.contains("exactly one operation"),
        "{stderr}"
    );
}
