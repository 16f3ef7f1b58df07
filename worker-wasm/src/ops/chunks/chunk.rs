//! A chunk in memory, and the chunk table it travels as (see `shoal_protocol::chunks`).
//!
//! Elements are held in one of three computation types — `bool`, `i64` (every integer type;
//! `uint64` by its bits) or `f64` (both float types) — with the chunk's declared type beside
//! them; [`Chunk::normalize`] rounds values to the declared type after every operation
//! (wrapping integers to their width, rounding to float32), which is what NumPy computes in
//! the narrow type: `+ - * /` and `sqrt` computed in f64 and rounded to f32 are correctly
//! rounded, so they agree with NumPy's float32 bit for bit.

use crate::error::{Error, Result};
use crate::io::Table;
use arrow::array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array,
    UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use ndarray::{ArrayD, IxDyn};
use shoal_protocol::{CHUNK_COLUMN, DType, SHAPE_METADATA};
use std::sync::Arc;

/// Elements in their computation type.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    Bool(ArrayD<bool>),
    Int(ArrayD<i64>),
    Float(ArrayD<f64>),
}

/// A chunk: its elements and their declared type.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub dtype: DType,
    pub data: Data,
}

impl Data {
    pub fn shape(&self) -> &[usize] {
        match self {
            Data::Bool(a) => a.shape(),
            Data::Int(a) => a.shape(),
            Data::Float(a) => a.shape(),
        }
    }

    /// As floats (`uint64` read by its bits as unsigned).
    pub fn to_float(&self, unsigned64: bool) -> ArrayD<f64> {
        match self {
            Data::Bool(a) => a.mapv(|v| f64::from(u8::from(v))),
            Data::Int(a) if unsigned64 => a.mapv(|v| v as u64 as f64),
            Data::Int(a) => a.mapv(|v| v as f64),
            Data::Float(a) => a.clone(),
        }
    }

    /// As integers: floats truncated toward zero (saturating; NaN is 0).
    pub fn to_int(&self) -> ArrayD<i64> {
        match self {
            Data::Bool(a) => a.mapv(i64::from),
            Data::Int(a) => a.clone(),
            Data::Float(a) => a.mapv(|v| v as i64),
        }
    }

    /// As booleans: non-zero is true (NaN too, as in NumPy).
    pub fn to_bool(&self) -> ArrayD<bool> {
        match self {
            Data::Bool(a) => a.clone(),
            Data::Int(a) => a.mapv(|v| v != 0),
            Data::Float(a) => a.mapv(|v| v != 0.0),
        }
    }
}

impl Chunk {
    pub fn new(dtype: DType, data: Data) -> Chunk {
        Chunk { dtype, data }.normalize()
    }

    pub fn shape(&self) -> &[usize] {
        self.data.shape()
    }

    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as floats.
    pub fn floats(&self) -> ArrayD<f64> {
        self.data.to_float(self.dtype == DType::Uint64)
    }

    /// This chunk converted to `dtype` (NumPy's `astype`).
    pub fn cast(&self, dtype: DType) -> Chunk {
        let data = if dtype.is_bool() {
            Data::Bool(self.data.to_bool())
        } else if dtype.is_float() {
            Data::Float(self.floats())
        } else {
            Data::Int(self.data.to_int())
        };
        Chunk::new(dtype, data)
    }

    /// Rounds the values to the declared type: integers wrapped to their width, floats to
    /// float32's precision; the computation type made to agree with the declared one.
    pub fn normalize(self) -> Chunk {
        let dtype = self.dtype;
        let data = match self.data {
            Data::Bool(a) if dtype.is_bool() => Data::Bool(a),
            Data::Float(a) if dtype == DType::Float64 => Data::Float(a),
            Data::Float(a) if dtype == DType::Float32 => Data::Float(a.mapv_into(|v| v as f32 as f64)),
            Data::Int(a) if !dtype.is_bool() && !dtype.is_float() => Data::Int(match dtype {
                DType::Int8 => a.mapv_into(|v| v as i8 as i64),
                DType::Int16 => a.mapv_into(|v| v as i16 as i64),
                DType::Int32 => a.mapv_into(|v| v as i32 as i64),
                DType::Uint8 => a.mapv_into(|v| v as u8 as i64),
                DType::Uint16 => a.mapv_into(|v| v as u16 as i64),
                DType::Uint32 => a.mapv_into(|v| v as u32 as i64),
                _ => a,
            }),
            other => return Chunk { dtype: computation_of(dtype, &other), data: other }.cast(dtype),
        };
        Chunk { dtype, data }
    }
}

/// The declared type matching a computation type (to cast from).
fn computation_of(_target: DType, data: &Data) -> DType {
    match data {
        Data::Bool(_) => DType::Bool,
        Data::Int(_) => DType::Int64,
        Data::Float(_) => DType::Float64,
    }
}

pub use crate::io::zarr::shape_metadata;

/// The shape a chunk table declares.
pub fn table_shape(schema: &Schema) -> Result<Vec<usize>> {
    let text = schema
        .metadata()
        .get(SHAPE_METADATA)
        .ok_or_else(|| Error::Schema(format!("a chunk table without its {SHAPE_METADATA} metadata")))?;
    serde_json::from_str(text).map_err(|e| Error::Schema(format!("a chunk table's shape {text:?}: {e}")))
}

/// The column `name` of a chunk table as a chunk.
pub fn column(table: &Table, name: &str) -> Result<Chunk> {
    let (schema, batches) = table;
    let shape = table_shape(schema)?;
    let index = schema
        .index_of(name)
        .map_err(|_| Error::Schema(format!("a chunk table without its column {name:?}")))?;
    let dtype = super::dtype::from_arrow(schema.field(index).data_type()).ok_or_else(|| {
        Error::Schema(format!(
            "a chunk column of type {} is not an array type",
            schema.field(index).data_type()
        ))
    })?;
    let arrays: Vec<&ArrayRef> = batches.iter().map(|b| b.column(index)).collect();
    let n: usize = arrays.iter().map(|a| a.len()).sum();
    let want: usize = shape.iter().product();
    if n != want {
        return Err(Error::Schema(format!("a chunk of shape {shape:?} holds {n} elements, not {want}")));
    }
    let data = decode(dtype, &arrays)?;
    let data = reshape(data, &shape)?;
    Ok(Chunk { dtype, data })
}

/// The main chunk of a chunk table (its [`CHUNK_COLUMN`]).
pub fn from_table(table: &Table) -> Result<Chunk> {
    column(table, CHUNK_COLUMN)
}

fn decode(dtype: DType, arrays: &[&ArrayRef]) -> Result<Data> {
    macro_rules! ints {
        ($t:ty) => {{
            let mut out = Vec::new();
            for a in arrays {
                let a = a.as_any().downcast_ref::<$t>().ok_or_else(|| mismatch(dtype))?;
                out.extend(a.values().iter().map(|&v| v as i64));
            }
            Data::Int(ArrayD::from_shape_vec(IxDyn(&[out.len()]), out).map_err(shape_error)?)
        }};
    }
    Ok(match dtype {
        DType::Bool => {
            let mut out = Vec::new();
            for a in arrays {
                let a = a.as_any().downcast_ref::<BooleanArray>().ok_or_else(|| mismatch(dtype))?;
                out.extend(a.values().iter());
            }
            Data::Bool(ArrayD::from_shape_vec(IxDyn(&[out.len()]), out).map_err(shape_error)?)
        }
        DType::Int8 => ints!(Int8Array),
        DType::Int16 => ints!(Int16Array),
        DType::Int32 => ints!(Int32Array),
        DType::Int64 => ints!(Int64Array),
        DType::Uint8 => ints!(UInt8Array),
        DType::Uint16 => ints!(UInt16Array),
        DType::Uint32 => ints!(UInt32Array),
        DType::Uint64 => ints!(UInt64Array),
        DType::Float32 => {
            let mut out = Vec::new();
            for a in arrays {
                let a = a.as_any().downcast_ref::<Float32Array>().ok_or_else(|| mismatch(dtype))?;
                out.extend(a.values().iter().map(|&v| f64::from(v)));
            }
            Data::Float(ArrayD::from_shape_vec(IxDyn(&[out.len()]), out).map_err(shape_error)?)
        }
        DType::Float64 => {
            let mut out = Vec::new();
            for a in arrays {
                let a = a.as_any().downcast_ref::<Float64Array>().ok_or_else(|| mismatch(dtype))?;
                out.extend_from_slice(a.values());
            }
            Data::Float(ArrayD::from_shape_vec(IxDyn(&[out.len()]), out).map_err(shape_error)?)
        }
    })
}

fn mismatch(dtype: DType) -> Error {
    Error::Schema(format!("a chunk column is not of its declared type {dtype}"))
}

fn shape_error(e: ndarray::ShapeError) -> Error {
    Error::Schema(format!("a chunk's shape: {e}"))
}

/// `data` (of any shape) in the shape `shape`, elements in C order.
pub fn reshape(data: Data, shape: &[usize]) -> Result<Data> {
    fn go<T: Clone>(a: ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>> {
        let a = if a.is_standard_layout() { a } else { a.as_standard_layout().into_owned() };
        a.into_shape_with_order(IxDyn(shape)).map_err(shape_error)
    }
    Ok(match data {
        Data::Bool(a) => Data::Bool(go(a, shape)?),
        Data::Int(a) => Data::Int(go(a, shape)?),
        Data::Float(a) => Data::Float(go(a, shape)?),
    })
}

/// The Arrow array of a chunk's elements (C order) in its declared type.
pub fn to_arrow(chunk: &Chunk) -> ArrayRef {
    fn elems<T: Clone>(a: &ArrayD<T>) -> Vec<T> {
        a.as_standard_layout().iter().cloned().collect()
    }
    match (&chunk.data, chunk.dtype) {
        (Data::Bool(a), _) => Arc::new(BooleanArray::from(elems(a))),
        (Data::Float(a), DType::Float32) => {
            Arc::new(Float32Array::from(elems(a).into_iter().map(|v| v as f32).collect::<Vec<_>>()))
        }
        (Data::Float(a), _) => Arc::new(Float64Array::from(elems(a))),
        (Data::Int(a), d) => {
            let v = elems(a);
            match d {
                DType::Int8 => Arc::new(Int8Array::from(v.into_iter().map(|x| x as i8).collect::<Vec<_>>())),
                DType::Int16 => {
                    Arc::new(Int16Array::from(v.into_iter().map(|x| x as i16).collect::<Vec<_>>()))
                }
                DType::Int32 => {
                    Arc::new(Int32Array::from(v.into_iter().map(|x| x as i32).collect::<Vec<_>>()))
                }
                DType::Uint8 => {
                    Arc::new(UInt8Array::from(v.into_iter().map(|x| x as u8).collect::<Vec<_>>()))
                }
                DType::Uint16 => {
                    Arc::new(UInt16Array::from(v.into_iter().map(|x| x as u16).collect::<Vec<_>>()))
                }
                DType::Uint32 => {
                    Arc::new(UInt32Array::from(v.into_iter().map(|x| x as u32).collect::<Vec<_>>()))
                }
                DType::Uint64 => {
                    Arc::new(UInt64Array::from(v.into_iter().map(|x| x as u64).collect::<Vec<_>>()))
                }
                _ => Arc::new(Int64Array::from(v)),
            }
        }
    }
}

/// A chunk table of named columns of one shape.
pub fn table_of(columns: &[(&str, &Chunk)]) -> Result<Table> {
    let shape = columns.first().map(|(_, c)| c.shape().to_vec()).unwrap_or_default();
    let fields: Vec<Field> =
        columns.iter().map(|(name, c)| Field::new(*name, super::dtype::arrow_type(c.dtype), false)).collect();
    let schema = Arc::new(Schema::new_with_metadata(fields, shape_metadata(&shape)));
    let arrays: Vec<ArrayRef> = columns.iter().map(|(_, c)| to_arrow(c)).collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(Error::arrow("a chunk table"))?;
    Ok((schema, vec![batch]))
}

/// The chunk table of one chunk.
pub fn to_table(chunk: &Chunk) -> Result<Table> {
    table_of(&[(CHUNK_COLUMN, chunk)])
}

/// The schema of a chunk table of `dtype` (its shape left out: it differs per chunk).
pub fn chunk_schema(dtype: DType) -> arrow::datatypes::SchemaRef {
    Arc::new(Schema::new(vec![Field::new(CHUNK_COLUMN, super::dtype::arrow_type(dtype), false)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_survives_its_table() -> Result<()> {
        let data =
            ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1i64, -2, 300, 4, 5, 6]).map_err(shape_error)?;
        let chunk = Chunk::new(DType::Int16, Data::Int(data));
        let back = from_table(&to_table(&chunk)?)?;
        assert_eq!(back, chunk);
        let wrapped = Chunk::new(DType::Int8, chunk.data.clone());
        assert_eq!(wrapped.data.to_int().iter().copied().collect::<Vec<_>>(), vec![1, -2, 44, 4, 5, 6]);
        Ok(())
    }
}
