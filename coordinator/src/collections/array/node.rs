//! The logical plan of an Array: a DAG of nodes, each knowing its shape, chunks and type, so
//! every error of shape, type or axis is found when the operation is recorded and every
//! task's memory is known before anything runs.

use crate::graph::TaskGraph;
use shoal_protocol::{ArrayReduction, BinaryOp, DType, FunctionRef, Scalar, UnaryOp};
use std::sync::Arc;

/// What an array is, beside how it is computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub shape: Vec<u64>,
    /// Regular chunk sizes, one per dimension (the last chunk of a dimension may be smaller).
    pub chunks: Vec<u64>,
    pub dtype: DType,
}

impl Meta {
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    pub fn grid(&self) -> Vec<u64> {
        super::grid::grid(&self.shape, &self.chunks)
    }

    pub fn nblocks(&self) -> u64 {
        self.grid().iter().product()
    }

    /// Elements of the largest block.
    pub fn chunk_elements(&self) -> u64 {
        self.chunks.iter().zip(&self.shape).map(|(&c, &s)| c.min(s)).product()
    }

    pub fn chunk_bytes(&self) -> u64 {
        self.chunk_elements() * self.dtype.size()
    }
}

#[derive(Debug)]
pub struct Node {
    pub meta: Meta,
    pub op: Op,
}

/// One dimension of a basic index, normalised against the shape: an integer (the dimension is
/// dropped) or `count` elements from `start`, `step` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sel {
    Index(u64),
    Range { start: u64, step: i64, count: u64 },
}

#[derive(Debug)]
pub enum Op {
    /// A Zarr array; `identity` (its metadata object's size and ETag) goes into task keys, so
    /// a rewritten array is not mistaken for the one already computed from.
    Zarr {
        url: String,
        identity: String,
    },
    /// A fused elementwise expression, evaluated per block.
    Map {
        expr: Expr,
    },
    Reduce {
        input: Arc<Node>,
        reduction: ArrayReduction,
        axes: Vec<usize>,
        keepdims: bool,
        split_every: usize,
    },
    /// The input in this node's chunks (one stage of a possibly multi-stage rechunk).
    Rechunk {
        input: Arc<Node>,
    },
    Slice {
        input: Arc<Node>,
        sel: Vec<Sel>,
    },
    Transpose {
        input: Arc<Node>,
        axes: Vec<usize>,
    },
    TensorDot {
        left: Arc<Node>,
        right: Arc<Node>,
        left_axes: Vec<usize>,
        right_axes: Vec<usize>,
        split_every: usize,
    },
    /// `json`: the function is an `items` one, given the block as nested lists.
    MapBlocks {
        input: Arc<Node>,
        function: FunctionRef,
        json: bool,
    },
    /// A DataFrame's `columns` (its graph lowered, with the row count of each partition).
    FromFrame {
        graph: Arc<TaskGraph>,
        rows: Vec<u64>,
        columns: Vec<String>,
    },
}

/// An elementwise expression: arrays (of the expression's shape, or broadcast to it), scalars
/// and generators.
#[derive(Debug, Clone)]
pub enum Expr {
    Array(Arc<Node>),
    Scalar(Scalar),
    Full { value: Scalar, dtype: DType },
    Arange { start: Scalar, step: Scalar, dtype: DType },
    Linspace { start: Scalar, stop: Scalar, num: u64, endpoint: bool },
    Random { seed: u64 },
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Where(Box<Expr>, Box<Expr>, Box<Expr>),
    Cast(DType, Box<Expr>),
}

impl Expr {
    /// The distinct arrays the expression reads, in order of first appearance.
    pub fn arrays(&self) -> Vec<Arc<Node>> {
        let mut out: Vec<Arc<Node>> = Vec::new();
        self.visit(&mut |n| {
            if !out.iter().any(|o| Arc::ptr_eq(o, n)) {
                out.push(n.clone());
            }
        });
        out
    }

    fn visit(&self, f: &mut impl FnMut(&Arc<Node>)) {
        match self {
            Expr::Array(n) => f(n),
            Expr::Unary(_, a) | Expr::Cast(_, a) => a.visit(f),
            Expr::Binary(_, a, b) => {
                a.visit(f);
                b.visit(f);
            }
            Expr::Where(c, a, b) => {
                c.visit(f);
                a.visit(f);
                b.visit(f);
            }
            _ => {}
        }
    }

    /// Operations in the expression (its working space is about one block per operation).
    pub fn operations(&self) -> u64 {
        match self {
            Expr::Unary(_, a) | Expr::Cast(_, a) => 1 + a.operations(),
            Expr::Binary(_, a, b) => 1 + a.operations() + b.operations(),
            Expr::Where(c, a, b) => 1 + c.operations() + a.operations() + b.operations(),
            _ => 1,
        }
    }

    /// The expression as text, for `explain`.
    pub fn display(&self, names: &mut dyn FnMut(&Arc<Node>) -> String) -> String {
        match self {
            Expr::Array(n) => names(n),
            Expr::Scalar(s) => scalar_text(s),
            Expr::Full { value, dtype } => format!("full({}, {dtype})", scalar_text(value)),
            Expr::Arange { start, step, dtype } => {
                format!("arange(start={}, step={}, {dtype})", scalar_text(start), scalar_text(step))
            }
            Expr::Linspace { start, stop, num, endpoint } => format!(
                "linspace({}, {}, {num}{})",
                scalar_text(start),
                scalar_text(stop),
                if *endpoint { "" } else { ", endpoint=False" }
            ),
            Expr::Random { seed } => format!("random(seed={seed})"),
            Expr::Unary(op, a) => format!("{}({})", format!("{op:?}").to_lowercase(), a.display(names)),
            Expr::Binary(op, a, b) => {
                let symbol = shoal_worker::ops::chunks::dtype::binary_symbol(*op);
                if symbol.chars().all(|c| c.is_alphabetic()) {
                    format!("{symbol}({}, {})", a.display(names), b.display(names))
                } else {
                    format!("({} {symbol} {})", a.display(names), b.display(names))
                }
            }
            Expr::Where(c, a, b) => {
                format!("where({}, {}, {})", c.display(names), a.display(names), b.display(names))
            }
            Expr::Cast(d, a) => format!("{}.astype({d})", a.display(names)),
        }
    }
}

fn scalar_text(s: &Scalar) -> String {
    match s {
        Scalar::Bool(b) => if *b { "True" } else { "False" }.into(),
        Scalar::Int(i) => i.to_string(),
        Scalar::Float(f) => f.clone(),
    }
}
