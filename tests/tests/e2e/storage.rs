//! Storage conformance (module of the e2e binary): the same cases on a local folder (plain path and `file://` URL),
//! `memory://` and S3 (a private LocalStack on loopback).

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use shoal_protocol::{ObjectRef, StorageOptions};
use shoal_tests::localstack::LocalStack;
use shoal_worker::Error;
use shoal_worker::io::storage::{Created, Storage};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Runs every case against `root` (a location ending in `/`), each below its own prefix.
async fn conformance(storage: Arc<Storage>, root: &str) -> Result<()> {
    assert!(root.ends_with('/'), "root must end with '/': {root}");
    put_then_get(&storage, &format!("{root}put_get/")).await.context("put_then_get")?;
    head_identity(&storage, &format!("{root}head/")).await.context("head_identity")?;
    stale_ref_is_changed(&storage, &format!("{root}stale/")).await.context("stale_ref_is_changed")?;
    list_directory(&storage, &format!("{root}list/")).await.context("list_directory")?;
    glob(&storage, &format!("{root}glob/")).await.context("glob")?;
    list_missing(&storage, &format!("{root}missing/")).await.context("list_missing")?;
    create_if_absent(&storage, &format!("{root}create/")).await.context("create_if_absent")?;
    create_race(storage.clone(), &format!("{root}race/")).await.context("create_race")?;
    delete(&storage, &format!("{root}delete/")).await.context("delete")?;
    get_missing(&storage, &format!("{root}get_missing/")).await.context("get_missing")?;
    Ok(())
}

fn payload(text: &str) -> Bytes {
    Bytes::from(text.as_bytes().to_vec())
}

/// Puts `names` below `dir` (contents = name); returns name → canonical URL from `put`.
async fn put_all(storage: &Storage, dir: &str, names: &[&str]) -> Result<BTreeMap<String, String>> {
    let mut urls = BTreeMap::new();
    for name in names {
        let put = storage.put(&format!("{dir}{name}"), payload(name)).await?;
        urls.insert(name.to_string(), put.url);
    }
    Ok(urls)
}

fn urls(refs: &[ObjectRef]) -> Vec<String> {
    refs.iter().map(|r| r.url.clone()).collect()
}

fn expect_urls(all: &BTreeMap<String, String>, names: &[&str]) -> Vec<String> {
    let mut want: Vec<String> = names.iter().map(|n| all[*n].clone()).collect();
    want.sort();
    want
}

async fn put_then_get(storage: &Storage, dir: &str) -> Result<()> {
    let data = Bytes::from((0..=255u8).cycle().take(100_000).collect::<Vec<u8>>());
    let url = format!("{dir}object.bin");
    let put = storage.put(&url, data.clone()).await?;
    ensure!(put.size == data.len() as u64, "put reported size {}", put.size);
    ensure!(storage.get_url(&url).await? == data, "get_url returned other bytes");
    ensure!(storage.get(&put).await? == data, "get(put ref) returned other bytes");
    ensure!(storage.get_url(&put.url).await? == data, "get_url(canonical URL) returned other bytes");
    // Overwrite with shorter content: the new object replaces the old one entirely.
    let put2 = storage.put(&url, payload("short")).await?;
    ensure!(storage.get(&put2).await? == payload("short"), "overwrite not visible");
    // Empty objects are objects too.
    let empty = storage.put(&format!("{dir}empty"), Bytes::new()).await?;
    ensure!(empty.size == 0 && storage.get(&empty).await?.is_empty(), "empty object");
    Ok(())
}

async fn head_identity(storage: &Storage, dir: &str) -> Result<()> {
    let url = format!("{dir}a.parquet");
    let put = storage.put(&url, payload("hello head")).await?;
    let head = storage.head(&url).await?;
    ensure!(head.size == 10, "head size {}", head.size);
    ensure!(head.url == put.url, "head url {} != put url {}", head.url, put.url);
    if let (Some(a), Some(b)) = (&put.e_tag, &head.e_tag) {
        ensure!(a == b, "put ETag {a} != head ETag {b}");
    }
    ensure!(storage.get(&head).await? == payload("hello head"), "get(head ref)");
    Ok(())
}

async fn stale_ref_is_changed(storage: &Storage, dir: &str) -> Result<()> {
    let url = format!("{dir}a.parquet");
    let put = storage.put(&url, payload("0123456789")).await?;
    let wrong_size = ObjectRef { size: put.size + 1, ..put.clone() };
    match storage.get(&wrong_size).await {
        Err(Error::Changed { url: u, .. }) => ensure!(u == put.url, "Changed names {u}"),
        other => anyhow::bail!("wrong size: expected Error::Changed, got {other:?}"),
    }
    if put.e_tag.is_some() {
        let wrong_tag = ObjectRef { e_tag: Some("\"not-the-etag\"".into()), ..put.clone() };
        match storage.get(&wrong_tag).await {
            Err(Error::Changed { .. }) => {}
            other => anyhow::bail!("wrong ETag: expected Error::Changed, got {other:?}"),
        }
    }
    // Replaced by an object of the same size: the ETag (where known) still tells them apart.
    let before = storage.head(&url).await?;
    let after_put = storage.put(&url, payload("abcdefghij")).await?;
    if before.e_tag.is_some() && after_put.e_tag.is_some() && before.e_tag != after_put.e_tag {
        match storage.get(&before).await {
            Err(Error::Changed { .. }) => {}
            other => anyhow::bail!("replaced object: expected Error::Changed, got {other:?}"),
        }
    }
    Ok(())
}

async fn list_directory(storage: &Storage, dir: &str) -> Result<()> {
    let names = [
        "d/b.parquet",
        "d/a.parquet",
        "d/a.csv",
        "d/sub/c.parquet",
        "d/_SUCCESS",
        "d/.hidden",
        "d/_temporary/x.parquet",
        "d2/sibling.parquet",
    ];
    let all = put_all(storage, dir, &names).await?;
    let want = expect_urls(&all, &["d/a.csv", "d/a.parquet", "d/b.parquet", "d/sub/c.parquet"]);
    for location in [format!("{dir}d"), format!("{dir}d/")] {
        let got = urls(&storage.list(&location).await?);
        ensure!(got == want, "list({location}):\n got  {got:?}\n want {want:?}");
    }
    // A location naming one object lists exactly that object.
    let one = storage.list(&format!("{dir}d/a.parquet")).await?;
    ensure!(urls(&one) == vec![all["d/a.parquet"].clone()], "list(single object) = {one:?}");
    ensure!(one[0].size == "d/a.parquet".len() as u64, "listed size {}", one[0].size);
    Ok(())
}

async fn glob(storage: &Storage, dir: &str) -> Result<()> {
    let names = [
        "g/b.parquet",
        "g/a.parquet",
        "g/a.csv",
        "g/_SUCCESS",
        "g/.a.parquet",
        "g/sub/c.parquet",
        "g/sub/deeper/d.parquet",
        "g/sub/e.json",
        "g/_tmp/f.parquet",
        "gx/x.parquet",
    ];
    let all = put_all(storage, dir, &names).await?;
    let cases: [(&str, &[&str]); 3] = [
        ("g/*.parquet", &["g/a.parquet", "g/b.parquet"]),
        ("g/**/*.parquet", &["g/a.parquet", "g/b.parquet", "g/sub/c.parquet", "g/sub/deeper/d.parquet"]),
        ("g/sub/*", &["g/sub/c.parquet", "g/sub/e.json"]),
    ];
    for (pattern, expected) in cases {
        let pattern = format!("{dir}{pattern}");
        let got = urls(&storage.list(&pattern).await?);
        let want = expect_urls(&all, expected);
        ensure!(got == want, "list({pattern}):\n got  {got:?}\n want {want:?}");
    }
    Ok(())
}

async fn list_missing(storage: &Storage, dir: &str) -> Result<()> {
    // Something exists next to the missing names, so the store itself is there.
    storage.put(&format!("{dir}present/a.csv"), payload("x")).await?;
    for pattern in [
        format!("{dir}nothing"),
        format!("{dir}nothing/"),
        format!("{dir}nothing/*.parquet"),
        format!("{dir}present/*.parquet"),
        format!("{dir}present/**/*.json"),
    ] {
        match storage.list(&pattern).await {
            Err(e @ Error::NotFound { .. }) => {
                ensure!(e.to_string().contains(&pattern), "error does not name {pattern}: {e}")
            }
            other => anyhow::bail!("list({pattern}): expected Error::NotFound, got {other:?}"),
        }
    }
    Ok(())
}

async fn create_if_absent(storage: &Storage, dir: &str) -> Result<()> {
    let url = format!("{dir}_marker");
    let first = storage.create_if_absent(&url, payload("first")).await?;
    ensure!(first == Created::Created, "first create: {first:?}");
    let second = storage.create_if_absent(&url, payload("second, longer")).await?;
    ensure!(second == Created::AlreadyExists, "second create: {second:?}");
    let content = storage.get_url(&url).await?;
    ensure!(content == payload("first"), "content changed to {content:?}");
    Ok(())
}

async fn create_race(storage: Arc<Storage>, dir: &str) -> Result<()> {
    const WRITERS: usize = 16;
    let url = format!("{dir}_COMMIT");
    let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let (storage, url, barrier) = (storage.clone(), url.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            (i, storage.create_if_absent(&url, payload(&format!("writer {i}"))).await)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (i, outcome) = task.await?;
        match outcome.with_context(|| format!("writer {i}"))? {
            Created::Created => winners.push(i),
            Created::AlreadyExists => {}
        }
    }
    ensure!(winners.len() == 1, "expected exactly one winner, got {winners:?}");
    let content = storage.get_url(&url).await?;
    ensure!(
        content == payload(&format!("writer {}", winners[0])),
        "content {content:?} is not the winner's (writer {})",
        winners[0]
    );
    Ok(())
}

async fn delete(storage: &Storage, dir: &str) -> Result<()> {
    let names = ["x/1", "x/2.parquet", "x1", "keep"];
    let all = put_all(storage, dir, &names).await?;
    for name in ["x/1", "x1"] {
        storage.delete(&all[name]).await?;
    }
    let left = urls(&storage.list(dir).await?);
    let want = expect_urls(&all, &["keep", "x/2.parquet"]);
    ensure!(left == want, "after delete:\n got  {left:?}\n want {want:?}");
    match storage.get_url(&all["x/1"]).await {
        Err(Error::NotFound { .. }) => {}
        other => anyhow::bail!("x/1 after delete: expected NotFound, got {other:?}"),
    }
    // An object already gone counts as deleted.
    storage.delete(&all["x/1"]).await.context("deleting an object already gone")?;
    Ok(())
}

async fn get_missing(storage: &Storage, dir: &str) -> Result<()> {
    let url = format!("{dir}nope.parquet");
    match storage.get_url(&url).await {
        Err(e @ Error::NotFound { .. }) => ensure!(e.to_string().contains("nope.parquet"), "{e}"),
        other => anyhow::bail!("get_url(missing): expected NotFound, got {other:?}"),
    }
    let canonical = storage.resolve(&url)?.url;
    match storage.get(&ObjectRef { url: canonical, size: 3, e_tag: None }).await {
        Err(Error::NotFound { .. }) => {}
        other => anyhow::bail!("get(missing): expected NotFound, got {other:?}"),
    }
    match storage.head(&url).await {
        Err(Error::NotFound { .. }) => {}
        other => anyhow::bail!("head(missing): expected NotFound, got {other:?}"),
    }
    Ok(())
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_folder_by_path() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = format!("{}/", dir.path().display());
    conformance(Arc::new(Storage::new(StorageOptions::default())), &root).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_folder_by_file_url() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = format!("file://{}/", dir.path().display());
    conformance(Arc::new(Storage::new(StorageOptions::default())), &root).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory() -> Result<()> {
    let root = format!("memory://{}/", unique("storage-conformance"));
    conformance(Arc::new(Storage::new(StorageOptions::default())), &root).await
}

#[test]
fn s3_localstack() -> Result<()> {
    // Environment first, before any runtime thread exists.
    shoal_tests::init_test_env();
    let localstack = LocalStack::start()?;
    localstack.create_bucket("shoal-conformance")?;
    let storage = Arc::new(Storage::new(localstack.storage_options()));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build()?;
    let result = runtime.block_on(conformance(storage, "s3://shoal-conformance/root/"));
    drop(runtime);
    result.with_context(|| format!("LocalStack log tail:\n{}", localstack.log_tail(20)))
}
