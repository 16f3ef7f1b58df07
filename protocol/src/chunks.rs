//! The `chunks` operator family: chunks of n-dimensional arrays (Array).
//!
//! A chunk travels as an Arrow table of one column, [`CHUNK_COLUMN`], holding its elements in C
//! (row-major) order, with the chunk's shape as a JSON list in the schema metadata under
//! [`SHAPE_METADATA`]. A reduction's intermediate state is a table of several such columns of
//! one shape (see [`ArrayReduction`]). User-visible arrays are Zarr ([`crate::Input::Zarr`],
//! [`crate::Output::Zarr`]).
//!
//! Shapes, offsets and chunk indices are per dimension, outermost first.

use crate::FunctionRef;
use serde::{Deserialize, Serialize};

/// The one column of a chunk table.
pub const CHUNK_COLUMN: &str = "chunk";

/// The schema metadata key holding a chunk's shape, as a JSON list of sizes.
pub const SHAPE_METADATA: &str = "shoal.shape";

/// Element types of arrays, named as NumPy names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DType {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Float32,
    Float64,
}

impl DType {
    /// Every type, for messages and parsing.
    pub const ALL: [DType; 11] = [
        DType::Bool,
        DType::Int8,
        DType::Int16,
        DType::Int32,
        DType::Int64,
        DType::Uint8,
        DType::Uint16,
        DType::Uint32,
        DType::Uint64,
        DType::Float32,
        DType::Float64,
    ];

    /// NumPy's name (`float64`, `int32`, `bool`).
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::Int8 => "int8",
            DType::Int16 => "int16",
            DType::Int32 => "int32",
            DType::Int64 => "int64",
            DType::Uint8 => "uint8",
            DType::Uint16 => "uint16",
            DType::Uint32 => "uint32",
            DType::Uint64 => "uint64",
            DType::Float32 => "float32",
            DType::Float64 => "float64",
        }
    }

    /// The type NumPy names `name` (also `f8`, `i4`, `float`, `int`, `bool_`-style aliases).
    pub fn parse(name: &str) -> Option<DType> {
        let name = name.trim().to_ascii_lowercase();
        let alias = match name.as_str() {
            "float" | "f8" | "double" => "float64",
            "f4" | "single" => "float32",
            "int" | "i8" => "int64",
            "i4" => "int32",
            "i2" => "int16",
            "i1" => "int8",
            "u1" => "uint8",
            "u2" => "uint16",
            "u4" => "uint32",
            "u8" => "uint64",
            "bool_" | "b1" => "bool",
            other => other,
        };
        DType::ALL.into_iter().find(|d| d.name() == alias)
    }

    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            DType::Bool | DType::Int8 | DType::Uint8 => 1,
            DType::Int16 | DType::Uint16 => 2,
            DType::Int32 | DType::Uint32 | DType::Float32 => 4,
            DType::Int64 | DType::Uint64 | DType::Float64 => 8,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::Float32 | DType::Float64)
    }

    pub fn is_bool(self) -> bool {
        self == DType::Bool
    }

    pub fn is_signed(self) -> bool {
        matches!(self, DType::Int8 | DType::Int16 | DType::Int32 | DType::Int64)
    }

    pub fn is_unsigned(self) -> bool {
        matches!(self, DType::Uint8 | DType::Uint16 | DType::Uint32 | DType::Uint64)
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A scalar in an expression. Floats travel as text (`"0.5"`, `"NaN"`, `"inf"`) so that every
/// value, NaN included, survives JSON and the operator stays hashable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(String),
}

impl Scalar {
    pub fn float(value: f64) -> Scalar {
        Scalar::Float(format!("{value:?}"))
    }

    /// The value as a float (a float's text that does not parse is NaN).
    pub fn as_f64(&self) -> f64 {
        match self {
            Scalar::Bool(b) => f64::from(u8::from(*b)),
            Scalar::Int(i) => *i as f64,
            Scalar::Float(s) => s.parse().unwrap_or(f64::NAN),
        }
    }
}

/// Unary elementwise operations (NumPy ufuncs of one argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnaryOp {
    Negative,
    Absolute,
    Sqrt,
    Exp,
    Log,
    Sin,
    Cos,
    Tan,
    Floor,
    Ceil,
    Isnan,
    /// `~` / `logical_not` on booleans.
    Not,
}

/// Binary elementwise operations (NumPy ufuncs of two arguments), broadcasting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryOp {
    Add,
    Subtract,
    Multiply,
    /// `/`: always a float result.
    Divide,
    /// `//`
    FloorDivide,
    /// `%`, with the sign of the divisor (Python's).
    Remainder,
    /// `**`
    Power,
    Minimum,
    Maximum,
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    /// `&` on booleans.
    And,
    /// `|` on booleans.
    Or,
}

/// An elementwise expression evaluated over one output chunk: inputs are chunks on ports,
/// broadcast NumPy-style to the chunk's shape; generators produce this chunk's part of a
/// created array.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "expr", rename_all = "snake_case")]
pub enum ChunkExpr {
    /// The chunk on input port `port` (of the shape it has; broadcast where it is smaller).
    Port {
        port: u32,
    },
    /// A scalar, broadcast ("weak" in NumPy's promotion: it takes the other operand's type
    /// where it fits its kind).
    Scalar {
        value: Scalar,
    },
    /// `full`: every element `value`, of `dtype`.
    Full {
        value: Scalar,
        dtype: DType,
    },
    /// Part of `arange(start, stop, step)` (1-d): element `i` of the chunk is
    /// `start + (offset + i) * step`.
    Arange {
        start: Scalar,
        step: Scalar,
        offset: u64,
        dtype: DType,
    },
    /// Part of `linspace(start, stop, num, endpoint)` (1-d), from element `offset`.
    Linspace {
        start: Scalar,
        stop: Scalar,
        num: u64,
        endpoint: bool,
        offset: u64,
    },
    /// Uniform floats in `[0, 1)`, a pure function of `seed` and the chunk's index in its
    /// array's grid, so a retried task reproduces it exactly.
    Random {
        seed: u64,
        chunk: Vec<u64>,
    },
    Unary {
        op: UnaryOp,
        arg: Box<ChunkExpr>,
    },
    Binary {
        op: BinaryOp,
        left: Box<ChunkExpr>,
        right: Box<ChunkExpr>,
    },
    /// `where(condition, then, otherwise)`.
    Where {
        condition: Box<ChunkExpr>,
        then: Box<ChunkExpr>,
        otherwise: Box<ChunkExpr>,
    },
    /// `astype(dtype)`, with NumPy's casting (floats to integers truncate toward zero).
    Cast {
        dtype: DType,
        arg: Box<ChunkExpr>,
    },
}

/// Reductions over axes of an array, each a tree of `Partial`, `Combine` and `Final` steps
/// (`crate::ReduceStep`) whose states are chunk tables of several columns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "reduction", rename_all = "snake_case")]
pub enum ArrayReduction {
    Sum,
    Prod,
    Min,
    Max,
    Mean,
    /// Variance with `ddof` delta degrees of freedom (Chan's parallel algorithm over
    /// count, mean and the sum of squared deviations).
    Var {
        ddof: u64,
    },
    Std {
        ddof: u64,
    },
    Any,
    All,
    /// Index of the first minimum: along the one reduced axis, or into the flattened array
    /// when every axis is reduced.
    Argmin,
    Argmax,
}

/// One piece of an output chunk copied from an input chunk: `src` (per dimension
/// `start..stop` by `step`, in the input chunk's own coordinates; a negative step walks
/// backwards from `start`) lands on `dst` (`start..end` in the output chunk).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Piece {
    pub port: u32,
    pub src: Vec<SliceDim>,
    pub dst: Vec<[u64; 2]>,
}

/// A strided range along one dimension: `count` elements from `start`, `step` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SliceDim {
    pub start: u64,
    pub step: i64,
    pub count: u64,
}

/// Per-chunk operators of Arrays.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ChunkOp {
    /// Evaluates `expr` into a chunk of `shape` and `dtype`.
    Map { expr: ChunkExpr, shape: Vec<u64>, dtype: DType },
    /// One step of a reduction over `axes`. `Partial` reduces the main chunk (at `offset` in
    /// an array of `shape`, which arg-reductions need for global indices) to a state with
    /// those axes of size 1; `Combine` merges the states on ports `0..n`; `Final` merges them
    /// and finishes the value (dropping the reduced axes unless `keepdims`) as `dtype`.
    Reduce {
        reduction: ArrayReduction,
        step: crate::ReduceStep,
        axes: Vec<usize>,
        keepdims: bool,
        dtype: DType,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        offset: Vec<u64>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        shape: Vec<u64>,
    },
    /// Assembles a chunk of `shape` from pieces of the input chunks (rechunk, slicing), then
    /// drops the axes `squeeze` (those an integer index selected).
    Gather {
        shape: Vec<u64>,
        pieces: Vec<Piece>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        squeeze: Vec<usize>,
        dtype: DType,
    },
    /// Permutes the main chunk's axes (`transpose(axes)`).
    Transpose { axes: Vec<usize> },
    /// `tensordot` of the chunks on ports 0 and 1, contracting `left` axes of the first with
    /// `right` axes of the second; the result's type is `dtype`.
    TensorDot { left: Vec<usize>, right: Vec<usize>, dtype: DType },
    /// Calls a user function on the main chunk, with `{"block_index": [...], "block_shape":
    /// [...]}` merged into its arguments: a `table` function gets the chunk's table (shape
    /// metadata included) and returns a table of one column of `dtype` holding `shape`'s
    /// elements; an `items` function (`json`, a Python guest's) gets a batch of one item, the
    /// block as nested JSON lists, and returns one item of nested lists of `shape`.
    MapBlocks {
        function: FunctionRef,
        block_index: Vec<u64>,
        shape: Vec<u64>,
        dtype: DType,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        json: bool,
    },
    /// A DataFrame partition's `columns`, in order, as a 2-d chunk (rows × columns) of `dtype`.
    FromRows { columns: Vec<String>, dtype: DType },
}

impl From<f64> for Scalar {
    fn from(v: f64) -> Self {
        Scalar::float(v)
    }
}

impl From<i64> for Scalar {
    fn from(v: i64) -> Self {
        Scalar::Int(v)
    }
}

impl From<i32> for Scalar {
    fn from(v: i32) -> Self {
        Scalar::Int(i64::from(v))
    }
}

impl From<bool> for Scalar {
    fn from(v: bool) -> Self {
        Scalar::Bool(v)
    }
}
