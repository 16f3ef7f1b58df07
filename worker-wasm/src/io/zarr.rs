//! Zarr arrays (v3, and v2 for reading) through `zarrs`' async API on the same object stores
//! as every other input: a region read as one chunk table, one chunk of a user-visible array
//! encoded with the array's codecs and stored at its key, and the metadata the coordinator
//! plans from. Knows chunk tables only as Arrow columns with shape metadata
//! (`shoal_protocol::chunks`); the operators on them are in `ops::chunks`.

use super::storage::{Location, Storage};
use crate::error::{Error, Result};
use crate::io::Table;
use arrow::array::{
    Array as _, ArrayRef, BooleanArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array,
    Int64Array, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use object_store::prefix::PrefixStore;
use shoal_protocol::{CHUNK_COLUMN, DType, ObjectRef, SHAPE_METADATA};
use std::collections::HashMap;
use std::sync::Arc;
use zarrs::array::{Array, ArrayMetadata, ArraySubset};
use zarrs_object_store::AsyncObjectStore;

type Store = AsyncObjectStore<PrefixStore<Arc<dyn object_store::ObjectStore>>>;

/// The Arrow type a chunk of `d` travels as.
pub fn arrow_type(d: DType) -> DataType {
    match d {
        DType::Bool => DataType::Boolean,
        DType::Int8 => DataType::Int8,
        DType::Int16 => DataType::Int16,
        DType::Int32 => DataType::Int32,
        DType::Int64 => DataType::Int64,
        DType::Uint8 => DataType::UInt8,
        DType::Uint16 => DataType::UInt16,
        DType::Uint32 => DataType::UInt32,
        DType::Uint64 => DataType::UInt64,
        DType::Float32 => DataType::Float32,
        DType::Float64 => DataType::Float64,
    }
}

/// The array type of an Arrow type, if it has one (numeric and boolean types).
pub fn from_arrow(t: &DataType) -> Option<DType> {
    DType::ALL.into_iter().find(|d| &arrow_type(*d) == t)
}

/// A chunk's shape as schema metadata.
pub fn shape_metadata(shape: &[usize]) -> HashMap<String, String> {
    let text = serde_json::to_string(shape).unwrap_or_else(|_| "[]".into());
    HashMap::from([(SHAPE_METADATA.to_string(), text)])
}

/// What the coordinator plans an array from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayInfo {
    pub shape: Vec<u64>,
    /// The regular chunk shape (of a sharded array: its inner chunks' shard, the unit a
    /// reader fetches).
    pub chunks: Vec<u64>,
    pub dtype: DType,
    /// 2 or 3.
    pub zarr_format: u8,
}

fn store_of(location: &Location) -> Arc<Store> {
    Arc::new(AsyncObjectStore::new(PrefixStore::new(location.store.clone(), location.path.clone())))
}

fn zarr_error(url: &str, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Zarr { url: url.to_string(), message: format!("{what}: {e}"), transient: false }
}

/// An error of reading or writing chunks: the store's failures are transient.
fn array_error(url: &str, what: &str, e: zarrs::array::ArrayError) -> Error {
    let transient = matches!(e, zarrs::array::ArrayError::StorageError(_));
    Error::Zarr { url: url.to_string(), message: format!("{what}: {e}"), transient }
}

/// Opens the array at `url` (the directory of its `zarr.json` or `.zarray`).
async fn open(storage: &Storage, url: &str) -> Result<Array<Store>> {
    let location = storage.resolve(url)?;
    Array::async_open(store_of(&location), "/").await.map_err(|e| {
        let transient = matches!(e, zarrs::array::ArrayCreateError::StorageError(_));
        Error::Zarr { url: url.to_string(), message: format!("opening a Zarr array: {e}"), transient }
    })
}

/// The shape, chunks and type of the array at `url`; an array whose type or codecs this build
/// cannot read is refused here, naming them.
pub async fn info(storage: &Storage, url: &str) -> Result<ArrayInfo> {
    info_of(&open(storage, url).await?, url)
}

fn info_of(array: &Array<Store>, url: &str) -> Result<ArrayInfo> {
    let metadata =
        serde_json::to_value(array.metadata()).map_err(|e| zarr_error(url, "reading Zarr metadata", e))?;
    let (dtype_name, chunks, zarr_format) = if metadata.get("zarr_format").and_then(|v| v.as_u64()) == Some(2)
    {
        let name = metadata.get("dtype").map(|d| d.to_string()).unwrap_or_default();
        let chunks = metadata.get("chunks").cloned();
        (v2_dtype(name.trim_matches('"')), chunks, 2)
    } else {
        let name = metadata.get("data_type").and_then(|d| d.as_str()).unwrap_or_default().to_string();
        let mut chunks = metadata.pointer("/chunk_grid/configuration/chunk_shape").cloned();
        // A sharded array's unit of reading is its shard (the outer chunk grid).
        if chunks.is_none() {
            chunks = metadata.pointer("/chunk_grid/chunk_shape").cloned();
        }
        (name, chunks, 3)
    };
    let dtype = DType::parse(&dtype_name).ok_or_else(|| {
        zarr_error(
            url,
            "reading a Zarr array",
            format!(
                "its data type {dtype_name} is not supported (supported: bool, integers, float32, float64)"
            ),
        )
    })?;
    let chunks: Vec<u64> = chunks
        .and_then(|c| serde_json::from_value(c).ok())
        .ok_or_else(|| zarr_error(url, "reading a Zarr array", "it has no regular chunk grid"))?;
    Ok(ArrayInfo { shape: array.shape().to_vec(), chunks, dtype, zarr_format })
}

/// NumPy's type strings of Zarr v2 (`<f8`, `|b1`) as type names.
fn v2_dtype(typestr: &str) -> String {
    let code = typestr.trim_start_matches(['<', '>', '|', '=']);
    match code {
        "b1" => "bool".into(),
        "f4" => "float32".into(),
        "f8" => "float64".into(),
        other => match other.split_at(1) {
            ("i", n) => format!("int{}", n.parse::<u32>().unwrap_or(0) * 8),
            ("u", n) => format!("uint{}", n.parse::<u32>().unwrap_or(0) * 8),
            _ => other.to_string(),
        },
    }
}

/// The region `start..end` per dimension of the array at `url`, as a chunk table.
pub async fn read_region(storage: &Storage, url: &str, region: &[[u64; 2]]) -> Result<(Table, u64)> {
    let array = open(storage, url).await?;
    let info = info_of(&array, url)?;
    if region.len() != array.shape().len() {
        return Err(zarr_error(
            url,
            "reading a Zarr array",
            format!("a region of {} dimensions for an array of {}", region.len(), array.shape().len()),
        ));
    }
    let subset = ArraySubset::new_with_ranges(&region.iter().map(|[a, b]| *a..*b).collect::<Vec<_>>());
    let shape: Vec<usize> = region.iter().map(|[a, b]| (b - a) as usize).collect();
    let what = format!("reading region {region:?}");
    let read = |e: zarrs::array::ArrayError| array_error(url, &what, e);
    macro_rules! get {
        ($t:ty, $arrow:ty) => {{
            let values: Vec<$t> = array.async_retrieve_array_subset(&subset).await.map_err(read)?;
            Arc::new(<$arrow>::from(values)) as ArrayRef
        }};
    }
    let column: ArrayRef = match info.dtype {
        DType::Bool => get!(bool, BooleanArray),
        DType::Int8 => get!(i8, Int8Array),
        DType::Int16 => get!(i16, Int16Array),
        DType::Int32 => get!(i32, Int32Array),
        DType::Int64 => get!(i64, Int64Array),
        DType::Uint8 => get!(u8, UInt8Array),
        DType::Uint16 => get!(u16, UInt16Array),
        DType::Uint32 => get!(u32, UInt32Array),
        DType::Uint64 => get!(u64, UInt64Array),
        DType::Float32 => get!(f32, Float32Array),
        DType::Float64 => get!(f64, Float64Array),
    };
    let bytes = column.get_array_memory_size() as u64;
    let schema = Arc::new(Schema::new_with_metadata(
        vec![Field::new(CHUNK_COLUMN, arrow_type(info.dtype), false)],
        shape_metadata(&shape),
    ));
    let batch = RecordBatch::try_new(schema.clone(), vec![column])
        .map_err(Error::arrow("a Zarr region as a chunk table"))?;
    Ok(((schema, vec![batch]), bytes))
}

/// Encodes the chunk table `table` with the codecs of `metadata` (the array's `zarr.json`) and
/// stores it as chunk `chunk` of the array at `url`. A chunk of only the fill value is not
/// stored (readers see the fill value), as zarr-python does; its reference then has size 0.
pub async fn write_chunk(
    storage: &Storage,
    url: &str,
    metadata: &str,
    chunk: &[u64],
    table: &Table,
) -> Result<ObjectRef> {
    let location = storage.resolve(url)?;
    let parsed: ArrayMetadata = serde_json::from_str(metadata)
        .map_err(|e| Error::InvalidTask(format!("the Zarr metadata of {url}: {e}")))?;
    let array = Array::new_with_metadata(store_of(&location), "/", parsed)
        .map_err(|e| Error::InvalidTask(format!("the Zarr metadata of {url}: {e}")))?;
    let (schema, batches) = table;
    let column = schema
        .index_of(CHUNK_COLUMN)
        .map_err(|_| Error::Schema("a Zarr chunk written from a table without a chunk column".into()))?;
    let arrays: Vec<&ArrayRef> = batches.iter().map(|b| b.column(column)).collect();
    let what = format!("writing chunk {chunk:?}");
    let write = |e: zarrs::array::ArrayError| array_error(url, &what, e);
    // Zarr chunks are whole: an edge block is padded with the fill value (0) to the chunk shape.
    let block: Vec<usize> = schema
        .metadata()
        .get(SHAPE_METADATA)
        .and_then(|t| serde_json::from_str(t).ok())
        .ok_or_else(|| Error::Schema("a Zarr chunk written from a table without its shape".into()))?;
    let full: Vec<usize> =
        array.chunk_shape(chunk).map_err(write)?.iter().map(|d| d.get() as usize).collect();
    macro_rules! put {
        ($t:ty, $arrow:ty, $values:expr) => {{
            let mut values: Vec<$t> = Vec::new();
            for a in &arrays {
                let a = a.as_any().downcast_ref::<$arrow>().ok_or_else(|| {
                    Error::Schema(format!("a chunk of {} written to an array of another type", a.data_type()))
                })?;
                values.extend($values(a));
            }
            let values = pad(values, &block, &full)?;
            array.async_store_chunk(chunk, values).await.map_err(write)?;
        }};
    }
    match from_arrow(schema.field(column).data_type()) {
        Some(DType::Bool) => {
            put!(bool, BooleanArray, |a: &BooleanArray| a.values().iter().collect::<Vec<_>>())
        }
        Some(DType::Int8) => put!(i8, Int8Array, |a: &Int8Array| a.values().to_vec()),
        Some(DType::Int16) => put!(i16, Int16Array, |a: &Int16Array| a.values().to_vec()),
        Some(DType::Int32) => put!(i32, Int32Array, |a: &Int32Array| a.values().to_vec()),
        Some(DType::Int64) => put!(i64, Int64Array, |a: &Int64Array| a.values().to_vec()),
        Some(DType::Uint8) => put!(u8, UInt8Array, |a: &UInt8Array| a.values().to_vec()),
        Some(DType::Uint16) => put!(u16, UInt16Array, |a: &UInt16Array| a.values().to_vec()),
        Some(DType::Uint32) => put!(u32, UInt32Array, |a: &UInt32Array| a.values().to_vec()),
        Some(DType::Uint64) => put!(u64, UInt64Array, |a: &UInt64Array| a.values().to_vec()),
        Some(DType::Float32) => put!(f32, Float32Array, |a: &Float32Array| a.values().to_vec()),
        Some(DType::Float64) => put!(f64, Float64Array, |a: &Float64Array| a.values().to_vec()),
        None => return Err(Error::Schema("a Zarr chunk of a type arrays do not have".into())),
    }
    let key = array.chunk_key(chunk);
    let object_url = location.join(key.as_str()).url;
    Ok(match storage.head(&object_url).await {
        Ok(object) => object,
        Err(_) => ObjectRef { url: object_url, size: 0, e_tag: None },
    })
}

/// `values` of a block of shape `block` placed at the origin of a chunk of shape `full`, the
/// rest the default (Zarr's fill value 0 / false).
fn pad<T: Clone + Default>(values: Vec<T>, block: &[usize], full: &[usize]) -> Result<Vec<T>> {
    if block == full {
        return Ok(values);
    }
    let shape_error = |e: ndarray::ShapeError| Error::Schema(format!("a Zarr chunk of shape {block:?}: {e}"));
    let source = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(block), values).map_err(shape_error)?;
    let mut out = ndarray::ArrayD::from_elem(ndarray::IxDyn(full), T::default());
    let region: Vec<ndarray::SliceInfoElem> = block
        .iter()
        .map(|&b| ndarray::SliceInfoElem::Slice { start: 0, end: Some(b as isize), step: 1 })
        .collect();
    out.slice_mut(region.as_slice()).assign(&source);
    Ok(out.into_iter().collect())
}

/// The `zarr.json` of a v3 array of `shape`, `chunks` and `dtype`, compressed with `codec`
/// (`zstd`, `gzip`, `blosc` or `none`), as zarr-python writes it: little-endian bytes, fill
/// value 0, `/`-separated chunk keys.
pub fn v3_metadata(shape: &[u64], chunks: &[u64], dtype: DType, codec: &str) -> Result<String> {
    let fill = if dtype.is_bool() {
        serde_json::json!(false)
    } else if dtype.is_float() {
        serde_json::json!(0.0)
    } else {
        serde_json::json!(0)
    };
    let mut codecs = vec![serde_json::json!({"name": "bytes", "configuration": {"endian": "little"}})];
    match codec {
        "none" => {}
        "zstd" => {
            codecs.push(serde_json::json!({"name": "zstd", "configuration": {"level": 0, "checksum": false}}))
        }
        "gzip" => codecs.push(serde_json::json!({"name": "gzip", "configuration": {"level": 5}})),
        "blosc" => codecs.push(serde_json::json!({"name": "blosc", "configuration": {
            "cname": "lz4", "clevel": 5, "shuffle": if dtype.size() > 1 { "shuffle" } else { "bitshuffle" },
            "typesize": dtype.size(), "blocksize": 0}})),
        other => {
            return Err(Error::InvalidTask(format!(
                "unknown Zarr codec {other:?} (zstd, gzip, blosc or none)"
            )));
        }
    }
    let metadata = serde_json::json!({
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": dtype.name(),
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill,
        "codecs": codecs,
        "attributes": {},
    });
    let text = serde_json::to_string_pretty(&metadata)
        .map_err(|source| Error::Json { context: "encoding Zarr metadata", source })?;
    // Check it the way a worker will read it.
    let _: ArrayMetadata =
        serde_json::from_str(&text).map_err(|e| Error::InvalidTask(format!("Zarr metadata: {e}")))?;
    Ok(text)
}

/// Where an array's `zarr.json` lives.
pub fn metadata_url(storage: &Storage, url: &str) -> Result<String> {
    Ok(storage.resolve(url)?.join("zarr.json").url)
}
