//! Arrays in a job file: `[arrays.NAME]`, each a source (a Zarr array, a created array, a
//! dataset's numeric columns), an elementwise `expr` over other arrays by name, or one
//! operation on another array (`from`).
//!
//! ```toml
//! [arrays.a]
//! random = { shape = [4000, 3000], chunks = [1000, 1000], seed = 1 }
//! # or: from_zarr = "data/a.zarr" · zeros / ones = { shape, chunks, dtype } · full = { shape, chunks, value, dtype }
//! #     arange = { start, stop, step, chunks } · linspace = { start, stop, num, endpoint, chunks }
//! #     from_dataset = { dataset = "trips", columns = ["fare", "tip"], chunks = 100000 }
//!
//! [arrays.d]
//! expr = "(a - b) ** 2"                # NumPy notation: + - * / // % ** < == & | ~, sqrt(), where(), ...
//!
//! [arrays.m]
//! from = "d"
//! mean = { axis = [0, 1] }            # sum, prod, min, max, mean, var, std (ddof), any, all, argmin, argmax; {} is every axis
//!
//! # other operations: rechunk = [4000, 100] (or "auto") · slice = ["10:20", "::-1", "3"] · transpose = [1, 0]
//! #   matmul = "b" · tensordot = { other = "b", axes = [[1], [0]] } · astype = "float32"
//! #   map_blocks = { module = "builtin:examples", function = "shift_block", args = { factor = 2 }, dtype = "float64" }
//!
//! [[outputs]]
//! array = "m"
//! show = true                          # or to_zarr = "out/m.zarr" (codec = "zstd" | "gzip" | "blosc" | "none")
//! ```

use super::array_expr;
use super::env::resolve;
use crate::client::{Client, FunctionModule};
use crate::collections::array::{Array, Axes, Chunks, DType, Index};
use crate::collections::dataframe::DataFrame;
use crate::error::{Error, Result};
use serde::Deserialize;
use shoal_protocol::ArrayReduction;
use std::collections::HashMap;
use std::path::Path;

/// One `[arrays.NAME]` table: `from` and its operation.
#[derive(Debug, Clone)]
pub struct ArraySpec {
    pub from: Option<String>,
    pub op: ArrayOp,
}

/// `chunks = [..]` or `"auto"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ChunksSpec {
    Sizes(Vec<u64>),
    Auto(String),
}

impl ChunksSpec {
    fn chunks(&self) -> Result<Chunks> {
        match self {
            ChunksSpec::Sizes(s) => Ok(Chunks::Sizes(s.clone())),
            ChunksSpec::Auto(a) if a == "auto" => Ok(Chunks::Auto),
            ChunksSpec::Auto(other) => {
                Err(Error::Invalid(format!("chunks are a list of sizes or \"auto\", not {other:?}")))
            }
        }
    }
}

fn auto() -> ChunksSpec {
    ChunksSpec::Auto("auto".into())
}

/// A number as TOML writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Number {
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl From<&Number> for shoal_protocol::Scalar {
    fn from(n: &Number) -> Self {
        match n {
            Number::Int(i) => shoal_protocol::Scalar::Int(*i),
            Number::Float(f) => shoal_protocol::Scalar::float(*f),
            Number::Bool(b) => shoal_protocol::Scalar::Bool(*b),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Created {
    pub shape: Vec<u64>,
    #[serde(default = "auto")]
    pub chunks: ChunksSpec,
    pub dtype: Option<String>,
    /// `full` only.
    pub value: Option<Number>,
    /// `random` only.
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    pub start: Number,
    pub stop: Number,
    pub step: Option<Number>,
    /// `linspace` only.
    pub num: Option<u64>,
    #[serde(default = "yes")]
    pub endpoint: bool,
    #[serde(default = "auto")]
    pub chunks: ChunksSpec,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FromDataset {
    pub dataset: String,
    pub columns: Vec<String>,
    /// Rows per chunk.
    pub chunks: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reduce {
    /// One axis or several; missing: every axis.
    pub axis: Option<AxisSpec>,
    #[serde(default)]
    pub keepdims: bool,
    /// `var` and `std` only.
    #[serde(default)]
    pub ddof: u64,
    pub split_every: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum AxisSpec {
    One(i64),
    Many(Vec<i64>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorDot {
    pub other: String,
    pub axes: [Vec<i64>; 2],
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapBlocks {
    pub module: String,
    pub function: String,
    #[serde(default)]
    pub args: serde_json::Value,
    pub dtype: Option<String>,
}

/// The one operation of an array.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ArrayOp {
    FromZarr(String),
    Zeros(Created),
    Ones(Created),
    Full(Created),
    Random(Created),
    Arange(Range),
    Linspace(Range),
    FromDataset(FromDataset),
    Expr(String),
    Sum(Reduce),
    Prod(Reduce),
    Min(Reduce),
    Max(Reduce),
    Mean(Reduce),
    Var(Reduce),
    Std(Reduce),
    Any(Reduce),
    All(Reduce),
    Argmin(Reduce),
    Argmax(Reduce),
    Rechunk(ChunksSpec),
    Slice(Vec<String>),
    Transpose(Vec<i64>),
    Matmul(String),
    Tensordot(TensorDot),
    Astype(String),
    MapBlocks(MapBlocks),
}

const OPERATIONS: &str = "from_zarr, zeros, ones, full, random, arange, linspace, from_dataset, expr, sum, prod, \
     min, max, mean, var, std, any, all, argmin, argmax, rechunk, slice, transpose, matmul, tensordot, astype, map_blocks";

impl ArrayOp {
    /// Whether the operation makes an array without `from`.
    fn is_source(&self) -> bool {
        use ArrayOp::*;
        matches!(
            self,
            FromZarr(_)
                | Zeros(_)
                | Ones(_)
                | Full(_)
                | Random(_)
                | Arange(_)
                | Linspace(_)
                | FromDataset(_)
                | Expr(_)
        )
    }

    /// The other arrays it reads (besides `from`).
    pub fn reads(&self) -> Result<Vec<String>> {
        Ok(match self {
            ArrayOp::Expr(text) => {
                let mut out = Vec::new();
                array_expr::names(&array_expr::parse(text)?, &mut out);
                out
            }
            ArrayOp::Matmul(other) => vec![other.clone()],
            ArrayOp::Tensordot(t) => vec![t.other.clone()],
            _ => vec![],
        })
    }

    /// The dataset it reads, if any.
    pub fn dataset(&self) -> Option<&str> {
        match self {
            ArrayOp::FromDataset(f) => Some(&f.dataset),
            _ => None,
        }
    }
}

impl ArraySpec {
    /// Parses an array's table: `from`, then exactly one operation with its keys.
    pub fn parse(name: &str, mut table: toml::Table) -> Result<Self> {
        let bad = |m: String| Error::Array { name: name.to_string(), source: Box::new(Error::Invalid(m)) };
        let from = match table.remove("from") {
            Some(toml::Value::String(s)) => Some(s),
            Some(other) => return Err(bad(format!("`from` names another array, not {other}"))),
            None => None,
        };
        if table.len() != 1 {
            let keys: Vec<&String> = table.keys().collect();
            return Err(bad(format!(
                "an array is made by exactly one operation (one of {OPERATIONS}), got {keys:?}"
            )));
        }
        let op: ArrayOp = toml::Value::Table(table).try_into().map_err(|e| bad(format!("{e}")))?;
        if op.is_source() == from.is_some() {
            return Err(bad(if from.is_some() {
                "a created, read or `expr` array takes no `from`".into()
            } else {
                "this operation needs `from = \"<array>\"`".into()
            }));
        }
        if let Err(e) = op.reads() {
            return Err(Error::Array { name: name.to_string(), source: Box::new(e) });
        }
        Ok(ArraySpec { from, op })
    }
}

/// What building an array may use.
#[derive(Debug)]
pub struct ArrayEnv<'a> {
    pub client: &'a Client,
    pub base_dir: &'a Path,
    pub modules: &'a mut HashMap<String, FunctionModule>,
    /// The dataset a `from_dataset` reads, built already.
    pub dataset: Option<DataFrame>,
    /// Arrays built so far, by name.
    pub arrays: &'a HashMap<String, Array>,
}

fn dtype(name: Option<&str>, default: DType) -> Result<DType> {
    match name {
        None => Ok(default),
        Some(n) => DType::parse(n).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown dtype {n:?} (one of {})",
                DType::ALL.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ")
            ))
        }),
    }
}

fn axes(spec: &Reduce) -> Axes {
    match &spec.axis {
        None => Axes::All,
        Some(AxisSpec::One(a)) => Axes::Some(vec![*a]),
        Some(AxisSpec::Many(v)) => Axes::Some(v.clone()),
    }
}

/// A slice in NumPy's notation for one dimension: `3`, `-1`, `:`, `2:10`, `::-2`.
pub fn parse_index(text: &str) -> Result<Index> {
    let bad = || Error::Invalid(format!("slice {text:?}: one dimension is an integer or start:stop:step"));
    let text = text.trim();
    if !text.contains(':') {
        return text.parse().map(Index::At).map_err(|_| bad());
    }
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() > 3 {
        return Err(bad());
    }
    let part = |i: usize| -> Result<Option<i64>> {
        match parts.get(i).map(|p| p.trim()) {
            None | Some("") => Ok(None),
            Some(p) => p.parse().map(Some).map_err(|_| bad()),
        }
    };
    Ok(Index::Slice { start: part(0)?, stop: part(1)?, step: part(2)? })
}

/// The array `op` makes, from `input` (the `from` array) where it takes one.
pub async fn apply(op: &ArrayOp, input: Option<Array>, env: &mut ArrayEnv<'_>) -> Result<Array> {
    let arrays = env.client.array();
    let lookup = |name: &str| -> Result<Array> {
        env.arrays.get(name).cloned().ok_or_else(|| Error::Invalid(format!("unknown array '{name}'")))
    };
    let input = || input.clone().ok_or_else(|| Error::Invalid("this operation needs `from`".into()));
    let reduce = |r: ArrayReduction, spec: &Reduce| -> Result<Array> {
        if spec.ddof != 0 && !matches!(r, ArrayReduction::Var { .. } | ArrayReduction::Std { .. }) {
            return Err(Error::Invalid("ddof applies to var and std only".into()));
        }
        let a = input()?;
        let a = match spec.split_every {
            Some(n) => a.split_every(n),
            None => a,
        };
        a.reduce(r, axes(spec), spec.keepdims)
    };
    Ok(match op {
        ArrayOp::FromZarr(loc) => arrays.from_zarr(&resolve(env.base_dir, loc)).await?,
        ArrayOp::Zeros(c) => {
            arrays.zeros(&c.shape, c.chunks.chunks()?, dtype(c.dtype.as_deref(), DType::Float64)?)?
        }
        ArrayOp::Ones(c) => {
            arrays.ones(&c.shape, c.chunks.chunks()?, dtype(c.dtype.as_deref(), DType::Float64)?)?
        }
        ArrayOp::Full(c) => {
            let value = c.value.as_ref().ok_or_else(|| Error::Invalid("full needs `value`".into()))?;
            let default = match value {
                Number::Int(_) => DType::Int64,
                Number::Float(_) => DType::Float64,
                Number::Bool(_) => DType::Bool,
            };
            arrays.full(
                &c.shape,
                shoal_protocol::Scalar::from(value),
                c.chunks.chunks()?,
                dtype(c.dtype.as_deref(), default)?,
            )?
        }
        ArrayOp::Random(c) => {
            let seed = c.seed.ok_or_else(|| {
                Error::Invalid("random needs `seed` (a retried block reproduces it)".into())
            })?;
            arrays.random(&c.shape, c.chunks.chunks()?, seed)?
        }
        ArrayOp::Arange(r) => {
            let step = r.step.clone().unwrap_or(Number::Int(1));
            arrays.arange(&r.start, &r.stop, &step, r.chunks.chunks()?)?
        }
        ArrayOp::Linspace(r) => {
            let num = r.num.ok_or_else(|| Error::Invalid("linspace needs `num`".into()))?;
            let f = |n: &Number| shoal_protocol::Scalar::from(n).as_f64();
            arrays.linspace(f(&r.start), f(&r.stop), num, r.endpoint, r.chunks.chunks()?)?
        }
        ArrayOp::FromDataset(f) => {
            let df = env
                .dataset
                .clone()
                .ok_or_else(|| Error::Invalid(format!("unknown dataset '{}'", f.dataset)))?;
            let columns: Vec<&str> = f.columns.iter().map(String::as_str).collect();
            df.to_array(&columns, f.chunks).await?
        }
        ArrayOp::Expr(text) => array_expr::evaluate(&array_expr::parse(text)?, &lookup)?,
        ArrayOp::Sum(s) => reduce(ArrayReduction::Sum, s)?,
        ArrayOp::Prod(s) => reduce(ArrayReduction::Prod, s)?,
        ArrayOp::Min(s) => reduce(ArrayReduction::Min, s)?,
        ArrayOp::Max(s) => reduce(ArrayReduction::Max, s)?,
        ArrayOp::Mean(s) => reduce(ArrayReduction::Mean, s)?,
        ArrayOp::Var(s) => reduce(ArrayReduction::Var { ddof: s.ddof }, s)?,
        ArrayOp::Std(s) => reduce(ArrayReduction::Std { ddof: s.ddof }, s)?,
        ArrayOp::Any(s) => reduce(ArrayReduction::Any, s)?,
        ArrayOp::All(s) => reduce(ArrayReduction::All, s)?,
        ArrayOp::Argmin(s) => reduce(ArrayReduction::Argmin, s)?,
        ArrayOp::Argmax(s) => reduce(ArrayReduction::Argmax, s)?,
        ArrayOp::Rechunk(c) => input()?.rechunk(c.chunks()?)?,
        ArrayOp::Slice(dims) => {
            input()?.slice(&dims.iter().map(|d| parse_index(d)).collect::<Result<Vec<_>>>()?)?
        }
        ArrayOp::Transpose(axes) => input()?.transpose(Some(axes))?,
        ArrayOp::Matmul(other) => input()?.matmul(&lookup(other)?)?,
        ArrayOp::Tensordot(t) => input()?.tensordot(&lookup(&t.other)?, &t.axes[0], &t.axes[1])?,
        ArrayOp::Astype(d) => input()?.astype(dtype(Some(d), DType::Float64)?),
        ArrayOp::MapBlocks(m) => {
            let module = super::env::load_module(env.client, env.base_dir, env.modules, &m.module).await?;
            let dtype = m.dtype.as_deref().map(|d| dtype(Some(d), DType::Float64)).transpose()?;
            input()?.map_blocks(&module, &m.function, m.args.clone(), dtype)?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::JobFile;
    use super::*;

    #[test]
    fn array_tables_parse_and_bad_ones_name_the_array() {
        let job = JobFile::parse(
            "[arrays.a]\nrandom = { shape = [10, 4], chunks = [5, 2], seed = 1 }\n\
             [arrays.d]\nexpr = \"sqrt(a) ** 2 - a\"\n\
             [arrays.s]\nfrom = \"d\"\nsum = { axis = [0], keepdims = true }\n\
             [arrays.t]\nfrom = \"a\"\nslice = [\"::-2\", \"1\"]\n\
             [[outputs]]\narray = \"s\"\nto_zarr = \"out/s.zarr\"\ncodec = \"gzip\"\n",
        )
        .unwrap();
        assert_eq!(job.arrays["d"].op.reads().unwrap(), ["a"]);
        assert!(matches!(&job.arrays["s"].op, ArrayOp::Sum(r) if r.keepdims));
        assert_eq!(parse_index("::-2").unwrap(), Index::Slice { start: None, stop: None, step: Some(-2) });
        assert_eq!(parse_index("-1").unwrap(), Index::At(-1));
        let err = |text: &str| JobFile::parse(text).map(|_| ()).unwrap_err().to_string();
        let show = "\n[[outputs]]\narray = \"x\"\nshow = true\n";
        assert!(
            err(&format!("[arrays.x]\nsum = {{}}{show}")).contains("array 'x': this operation needs `from")
        );
        assert!(
            err(&format!("[arrays.x]\nexpr = \"a +\"{show}"))
                .contains("array 'x': expression \"a +\": the expression ends early")
        );
        assert!(
            err(&format!("[arrays.x]\nzeros = {{ shape = [2] }}\nones = {{ shape = [2] }}{show}"))
                .contains("exactly one operation")
        );
        assert!(
            err("[arrays.x]\nzeros = { shape = [2] }\n[[outputs]]\narray = \"x\"\nto_parquet = \"o\"\n")
                .contains("an array is written with `to_zarr")
        );
        assert!(
            err("[arrays.x]\nzeros = { shape = [2] }\n[[outputs]]\narray = \"y\"\nshow = true\n")
                .contains("unknown array 'y'")
        );
    }
}
