//! Reading a run's results back, and publishing a user-visible output: the same for every
//! collection, since results travel as committed manifests.

use crate::error::{Error, Result};
use crate::graph::{Collect, TaskGraph};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures::StreamExt;
use shoal_protocol::{Manifest, ObjectRef, OutputObject, PROTOCOL_VERSION, SortKey, SuccessManifest, layout};
use shoal_worker::io::storage::Storage;

/// The result of a run of `graph`, in partition order: the batches of its output tasks (Arrow
/// IPC), or, for a sort whose last merge is left to the reader, each range's buckets merged.
/// Several objects (or ranges) are read and decoded at once, as many as the machine has cores:
/// the results of a sort are as large as its input.
pub async fn collect(
    storage: &Storage,
    graph: &TaskGraph,
    manifests: &[Manifest],
) -> Result<Vec<RecordBatch>> {
    match &graph.collect {
        Collect::Concat => {
            let objects =
                graph.outputs.iter().flat_map(|&t| &manifests[t].outputs).map(|out| out.object.clone());
            read_objects(storage, objects.collect()).await
        }
        Collect::MergeBuckets { keys, buckets } => {
            let maps: Vec<&Manifest> = graph.outputs.iter().map(|&t| &manifests[t]).collect();
            let mut ranges = futures::stream::iter(0..*buckets)
                .map(|b| merge_bucket(storage, &maps, b, keys))
                .buffered(at_once());
            let mut batches = Vec::new();
            while let Some(range) = ranges.next().await {
                batches.extend(range?);
            }
            Ok(batches)
        }
    }
}

/// Bucket `bucket` of every map task of `maps` (each sorted), merged into sorted batches.
async fn merge_bucket(
    storage: &Storage,
    maps: &[&Manifest],
    bucket: u32,
    keys: &[SortKey],
) -> Result<Vec<RecordBatch>> {
    let mut runs = Vec::with_capacity(maps.len());
    for map in maps {
        // A map task skipped as empty wrote nothing; an empty bucket is not read.
        let (Some(out), Some(range)) = (map.outputs.first(), map.buckets.get(bucket as usize)) else {
            continue;
        };
        if range.rows == 0 {
            continue;
        }
        let bytes =
            storage.get_intermediate(&out.object, Some(range.offset..range.offset + range.len)).await?;
        runs.push((out.object.url.clone(), bytes));
    }
    let keys = keys.to_vec();
    let merge = move || -> Result<Vec<RecordBatch>> {
        let mut schema = None;
        let mut decoded = Vec::with_capacity(runs.len());
        for (url, bytes) in runs {
            let (s, batches) = shoal_worker::io::ipc::decode_stream(&url, bytes)?;
            schema.get_or_insert(s);
            decoded.push(batches);
        }
        let Some(schema) = schema else { return Ok(vec![]) };
        Ok(shoal_worker::ops::table::merge::merge(&schema, decoded, &keys)?)
    };
    tokio::task::spawn_blocking(merge)
        .await
        .map_err(|e| Error::Executor(format!("merging a sorted range: {e}")))?
}

/// How many objects are read and decoded at once: one per core.
fn at_once() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The batches one committed task wrote (Arrow IPC files).
pub async fn read(storage: &Storage, manifest: &Manifest) -> Result<Vec<RecordBatch>> {
    read_objects(storage, manifest.outputs.iter().map(|out| out.object.clone()).collect()).await
}

/// The batches of `objects`, in order, read and decoded a few at a time.
async fn read_objects(storage: &Storage, objects: Vec<ObjectRef>) -> Result<Vec<RecordBatch>> {
    let mut reads =
        futures::stream::iter(objects).map(|object| read_object(storage, object)).buffered(at_once());
    let mut batches = Vec::new();
    while let Some(read) = reads.next().await {
        batches.extend(read?);
    }
    Ok(batches)
}

/// The batches of one IPC file, decoded off the async threads.
async fn read_object(storage: &Storage, object: ObjectRef) -> Result<Vec<RecordBatch>> {
    let bytes = storage.get_intermediate(&object, None).await?;
    let url = object.url;
    let decode = move || shoal_worker::io::ipc::decode_file(&url, bytes, None);
    let (_, batches) = tokio::task::spawn_blocking(decode)
        .await
        .map_err(|e| Error::Executor(format!("decoding results: {e}")))??;
    Ok(batches)
}

/// What a write (`to_parquet`, `to_csv`, `to_json`, `to_textfiles`) wrote.
#[derive(Debug, Clone)]
pub struct WriteSummary {
    pub parts: Vec<OutputObject>,
    pub rows: u64,
    pub run: crate::run::report::RunSummary,
}

/// Runs `graph`, whose outputs are user-visible parts under the directory `dir` (a URL), the
/// way every collection writes: an earlier `_SUCCESS` removed first, the tasks run, then the
/// `_SUCCESS` manifest listing the parts written last.
pub async fn write_parts(
    client: &crate::client::Client,
    graph: std::sync::Arc<TaskGraph>,
    modules: &[crate::client::FunctionModule],
    dir: &str,
    events: crate::events::Events,
) -> Result<WriteSummary> {
    let storage = client.storage();
    storage.delete(&storage.resolve(dir)?.join(layout::SUCCESS).url).await?;
    let run = client.run_graph(graph.clone(), modules, events).await?;
    let parts = parts(&graph, &run.manifests);
    let job_id = graph.outputs.first().map(|&t| graph.tasks[t].key.to_string()).unwrap_or_default();
    let rows = write_success(storage, dir, job_id, &parts).await?;
    Ok(WriteSummary { parts, rows, run: run.summary })
}

/// The parts the graph's output tasks wrote, in partition order.
pub fn parts(graph: &TaskGraph, manifests: &[Manifest]) -> Vec<OutputObject> {
    graph.outputs.iter().flat_map(|&t| manifests[t].outputs.iter().cloned()).collect()
}

/// Writes the `_SUCCESS` manifest listing `parts` in the output directory `dir`: written last,
/// it is what makes the output visible to a reader that trusts it.
pub async fn write_success(
    storage: &Storage,
    dir: &str,
    job_id: String,
    parts: &[OutputObject],
) -> Result<u64> {
    let rows = parts.iter().map(|p| p.rows).sum();
    let success = SuccessManifest {
        version: PROTOCOL_VERSION,
        job_id,
        parts: parts.to_vec(),
        rows,
        extra: Default::default(),
    };
    let body = serde_json::to_vec_pretty(&success)
        .map_err(|source| Error::Json { what: format!("{dir}/{}", layout::SUCCESS), source })?;
    let url = storage.resolve(dir)?.join(layout::SUCCESS).url;
    storage.put(&url, Bytes::from(body)).await?;
    Ok(rows)
}
