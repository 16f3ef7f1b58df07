//! The operations of an Array. Each checks what NumPy checks (shapes that broadcast, axes in
//! range, types an operation accepts) when it is called, and records one node.

use super::grid::{self, Chunks};
use super::node::{Expr, Meta, Node, Op, Sel};
use super::{Array, rechunk};
use crate::client::FunctionModule;
use crate::error::{Error, Result};
use shoal_protocol::{ArrayReduction, BinaryOp, DType, FunctionKind, Scalar, UnaryOp};
use shoal_worker::ops::chunks::{dtype as types, reduce};
use std::sync::Arc;

/// The other operand of an elementwise operation: an array or a Python-like scalar.
#[derive(Debug, Clone)]
pub enum Operand<'a> {
    Array(&'a Array),
    Scalar(Scalar),
}

impl<'a> From<&'a Array> for Operand<'a> {
    fn from(a: &'a Array) -> Self {
        Operand::Array(a)
    }
}

impl From<f64> for Operand<'_> {
    fn from(v: f64) -> Self {
        Operand::Scalar(Scalar::float(v))
    }
}

impl From<i64> for Operand<'_> {
    fn from(v: i64) -> Self {
        Operand::Scalar(Scalar::Int(v))
    }
}

impl From<i32> for Operand<'_> {
    fn from(v: i32) -> Self {
        Operand::Scalar(Scalar::Int(i64::from(v)))
    }
}

impl From<bool> for Operand<'_> {
    fn from(v: bool) -> Self {
        Operand::Scalar(Scalar::Bool(v))
    }
}

/// Axes of a reduction: all of them (`None` in NumPy) or some, negative ones counted from the
/// end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Axes {
    All,
    Some(Vec<i64>),
}

impl From<i64> for Axes {
    fn from(a: i64) -> Self {
        Axes::Some(vec![a])
    }
}

impl From<&[i64]> for Axes {
    fn from(a: &[i64]) -> Self {
        Axes::Some(a.to_vec())
    }
}

impl<const N: usize> From<[i64; N]> for Axes {
    fn from(a: [i64; N]) -> Self {
        Axes::Some(a.to_vec())
    }
}

/// One dimension of a basic index (`x[3]`, `x[1:10:2]`, `x[::-1]`, `x[:]`), with Python's
/// meaning of negative and missing bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    At(i64),
    Slice { start: Option<i64>, stop: Option<i64>, step: Option<i64> },
}

impl Index {
    /// `:` — the whole dimension.
    pub const ALL: Index = Index::Slice { start: None, stop: None, step: None };

    pub fn range(start: i64, stop: i64) -> Index {
        Index::Slice { start: Some(start), stop: Some(stop), step: None }
    }
}

/// NumPy's normalisation of an axis against `ndim`.
fn axis(a: i64, ndim: usize) -> Result<usize> {
    let n = ndim as i64;
    if a < -n || a >= n {
        return Err(Error::Invalid(format!("axis {a} is out of bounds for array of dimension {ndim}")));
    }
    Ok(if a < 0 { (a + n) as usize } else { a as usize })
}

fn shape_text(s: &[u64]) -> String {
    super::lower::chunks_text(s)
}

impl Array {
    /// This array as a leaf of a new expression: its own expression inlined when it is one of
    /// the same shape (so chains of elementwise operations fuse into one task per block).
    fn as_expr(&self, shape: &[u64]) -> Expr {
        match &self.node.op {
            Op::Map { expr } if self.node.meta.shape == shape => expr.clone(),
            _ => Expr::Array(self.node.clone()),
        }
    }

    fn elementwise(&self, expr: Expr, meta: Meta, others: &[&Array]) -> Array {
        self.derive(meta, Op::Map { expr }, others)
    }

    /// The broadcast shape and chunks of `arrays`, rechunking an array whose chunks along a
    /// shared dimension differ from the first one's.
    fn broadcast(arrays: &[&Array]) -> Result<(Vec<u64>, Vec<u64>, Vec<Array>)> {
        let ndim = arrays.iter().map(|a| a.ndim()).max().unwrap_or(0);
        let mut shape = vec![1u64; ndim];
        for a in arrays {
            for (i, &d) in a.shape().iter().enumerate() {
                let o = &mut shape[ndim - a.ndim() + i];
                if *o == 1 {
                    *o = d;
                } else if d != 1 && d != *o {
                    let shapes: Vec<String> = arrays.iter().map(|a| shape_text(a.shape())).collect();
                    return Err(Error::Invalid(format!(
                        "operands could not be broadcast together with shapes {}",
                        shapes.join(" ")
                    )));
                }
            }
        }
        let mut chunks = vec![1u64; ndim];
        let mut fixed = vec![false; ndim];
        for a in arrays {
            for (i, (&d, &c)) in a.shape().iter().zip(a.chunks()).enumerate() {
                let o = ndim - a.ndim() + i;
                if d == shape[o] && d != 1 && !fixed[o] {
                    chunks[o] = c;
                    fixed[o] = true;
                }
            }
        }
        let mut aligned = Vec::with_capacity(arrays.len());
        for a in arrays {
            let skip = ndim - a.ndim();
            let want: Vec<u64> =
                (0..a.ndim()).map(|i| if a.shape()[i] == 1 { 1 } else { chunks[skip + i] }).collect();
            aligned.push(if want == a.chunks() { (*a).clone() } else { a.rechunk(want)? });
        }
        Ok((shape, chunks, aligned))
    }

    fn binary(&self, op: BinaryOp, other: Operand<'_>) -> Result<Array> {
        match other {
            Operand::Scalar(s) => {
                let dtype =
                    types::binary(op, types::Operand::Array(self.dtype()), types::Operand::of_scalar(&s))
                        .map_err(Error::Invalid)?;
                let m = &self.node.meta;
                let expr = Expr::Binary(op, Box::new(self.as_expr(&m.shape)), Box::new(Expr::Scalar(s)));
                Ok(self.elementwise(expr, Meta { dtype, ..m.clone() }, &[]))
            }
            Operand::Array(other) => {
                let dtype = types::binary(
                    op,
                    types::Operand::Array(self.dtype()),
                    types::Operand::Array(other.dtype()),
                )
                .map_err(Error::Invalid)?;
                let (shape, chunks, aligned) = Array::broadcast(&[self, other])?;
                let expr = Expr::Binary(
                    op,
                    Box::new(aligned[0].as_expr(&shape)),
                    Box::new(aligned[1].as_expr(&shape)),
                );
                Ok(aligned[0].elementwise(expr, Meta { shape, chunks, dtype }, &[&aligned[1]]))
            }
        }
    }

    /// A scalar on the left: `2 - x`, `1 / x`.
    fn binary_left(&self, op: BinaryOp, scalar: Scalar) -> Result<Array> {
        let dtype =
            types::binary(op, types::Operand::of_scalar(&scalar), types::Operand::Array(self.dtype()))
                .map_err(Error::Invalid)?;
        let m = &self.node.meta;
        let expr = Expr::Binary(op, Box::new(Expr::Scalar(scalar)), Box::new(self.as_expr(&m.shape)));
        Ok(self.elementwise(expr, Meta { dtype, ..m.clone() }, &[]))
    }

    /// `self op other`, any binary operation.
    pub fn binary_op(&self, op: BinaryOp, other: Operand<'_>) -> Result<Array> {
        self.binary(op, other)
    }

    /// `scalar op self`.
    pub fn rbinary(&self, op: BinaryOp, scalar: Scalar) -> Result<Array> {
        use BinaryOp::*;
        let swapped = match op {
            Less => Greater,
            LessEqual => GreaterEqual,
            Greater => Less,
            GreaterEqual => LessEqual,
            Add | Multiply | Minimum | Maximum | Equal | NotEqual | And | Or => op,
            _ => return self.binary_left(op, scalar),
        };
        self.binary(swapped, Operand::Scalar(scalar))
    }

    pub fn add<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Add, other.into())
    }
    pub fn sub<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Subtract, other.into())
    }
    pub fn mul<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Multiply, other.into())
    }
    /// `/`: true division, always floats.
    pub fn div<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Divide, other.into())
    }
    pub fn floordiv<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::FloorDivide, other.into())
    }
    pub fn rem<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Remainder, other.into())
    }
    pub fn pow<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Power, other.into())
    }
    pub fn minimum<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Minimum, other.into())
    }
    pub fn maximum<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Maximum, other.into())
    }
    pub fn eq<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Equal, other.into())
    }
    pub fn ne<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::NotEqual, other.into())
    }
    pub fn lt<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Less, other.into())
    }
    pub fn le<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::LessEqual, other.into())
    }
    pub fn gt<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Greater, other.into())
    }
    pub fn ge<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::GreaterEqual, other.into())
    }
    /// `&` of boolean arrays.
    pub fn and<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::And, other.into())
    }
    /// `|` of boolean arrays.
    pub fn or<'a>(&self, other: impl Into<Operand<'a>>) -> Result<Array> {
        self.binary(BinaryOp::Or, other.into())
    }
    /// `scalar - self`.
    pub fn rsub(&self, scalar: impl Into<Scalar>) -> Result<Array> {
        self.binary_left(BinaryOp::Subtract, scalar.into())
    }
    /// `scalar / self`.
    pub fn rdiv(&self, scalar: impl Into<Scalar>) -> Result<Array> {
        self.binary_left(BinaryOp::Divide, scalar.into())
    }
    /// `scalar ** self`.
    pub fn rpow(&self, scalar: impl Into<Scalar>) -> Result<Array> {
        self.binary_left(BinaryOp::Power, scalar.into())
    }

    /// A NumPy ufunc of one argument.
    pub fn unary(&self, op: UnaryOp) -> Result<Array> {
        let dtype = types::unary(op, self.dtype()).map_err(Error::Invalid)?;
        let m = &self.node.meta;
        let expr = Expr::Unary(op, Box::new(self.as_expr(&m.shape)));
        Ok(self.elementwise(expr, Meta { dtype, ..m.clone() }, &[]))
    }
    pub fn neg(&self) -> Result<Array> {
        self.unary(UnaryOp::Negative)
    }
    pub fn abs(&self) -> Result<Array> {
        self.unary(UnaryOp::Absolute)
    }
    pub fn sqrt(&self) -> Result<Array> {
        self.unary(UnaryOp::Sqrt)
    }
    pub fn exp(&self) -> Result<Array> {
        self.unary(UnaryOp::Exp)
    }
    pub fn log(&self) -> Result<Array> {
        self.unary(UnaryOp::Log)
    }
    pub fn sin(&self) -> Result<Array> {
        self.unary(UnaryOp::Sin)
    }
    pub fn cos(&self) -> Result<Array> {
        self.unary(UnaryOp::Cos)
    }
    pub fn isnan(&self) -> Result<Array> {
        self.unary(UnaryOp::Isnan)
    }
    /// `~` of a boolean array.
    pub fn not(&self) -> Result<Array> {
        self.unary(UnaryOp::Not)
    }

    /// `where(self, then, otherwise)`: `self` is the condition (any type; non-zero is true).
    pub fn where_<'a, 'b>(
        &self,
        then: impl Into<Operand<'a>>,
        otherwise: impl Into<Operand<'b>>,
    ) -> Result<Array> {
        let (then, otherwise) = (then.into(), otherwise.into());
        let mut arrays: Vec<&Array> = vec![self];
        for o in [&then, &otherwise] {
            if let Operand::Array(a) = o {
                arrays.push(a);
            }
        }
        let (shape, chunks, aligned) = Array::broadcast(&arrays)?;
        let mut next = aligned.iter().skip(1);
        let mut leaf = |o: &Operand<'_>| -> (Expr, types::Operand) {
            match o {
                Operand::Scalar(s) => (Expr::Scalar(s.clone()), types::Operand::of_scalar(s)),
                Operand::Array(a) => {
                    let aligned = next.next().unwrap_or(a);
                    (aligned.as_expr(&shape), types::Operand::Array(a.dtype()))
                }
            }
        };
        let ((t, tt), (o, ot)) = (leaf(&then), leaf(&otherwise));
        let dtype = types::promote_operands(tt, ot);
        let condition = Box::new(aligned[0].as_expr(&shape));
        let expr = Expr::Where(condition, Box::new(t), Box::new(o));
        let extra: Vec<&Array> = aligned.iter().skip(1).collect();
        Ok(aligned[0].elementwise(expr, Meta { shape, chunks, dtype }, &extra))
    }

    /// The array converted to `dtype` (NumPy's `astype`: floats to integers truncate).
    pub fn astype(&self, dtype: DType) -> Array {
        let m = &self.node.meta;
        let expr = Expr::Cast(dtype, Box::new(self.as_expr(&m.shape)));
        self.elementwise(expr, Meta { dtype, ..m.clone() }, &[])
    }

    /// A reduction over `axes` (all of them, or some), as a tree of `split_every` states.
    pub fn reduce(&self, reduction: ArrayReduction, axes: impl Into<Axes>, keepdims: bool) -> Result<Array> {
        let m = &self.node.meta;
        let mut axes = match axes.into() {
            Axes::All => (0..m.ndim()).collect::<Vec<_>>(),
            Axes::Some(list) => list.iter().map(|&a| axis(a, m.ndim())).collect::<Result<Vec<_>>>()?,
        };
        axes.sort_unstable();
        if axes.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::Invalid(format!("duplicate value in 'axis': {axes:?}")));
        }
        if matches!(reduction, ArrayReduction::Argmin | ArrayReduction::Argmax)
            && axes.len() != 1
            && axes.len() != m.ndim()
        {
            return Err(Error::Invalid("argmin / argmax reduce one axis or all of them".into()));
        }
        let dtype = reduce::result_type(&reduction, m.dtype);
        let mut shape = Vec::new();
        let mut chunks = Vec::new();
        for d in 0..m.ndim() {
            if !axes.contains(&d) {
                shape.push(m.shape[d]);
                chunks.push(m.chunks[d]);
            } else if keepdims {
                shape.push(1);
                chunks.push(1);
            }
        }
        let op =
            Op::Reduce { input: self.node.clone(), reduction, axes, keepdims, split_every: self.split_every };
        Ok(self.derive(Meta { shape, chunks, dtype }, op, &[]))
    }

    pub fn sum(&self, axes: impl Into<Axes>) -> Result<Array> {
        self.reduce(ArrayReduction::Sum, axes, false)
    }
    pub fn prod(&self, axes: impl Into<Axes>) -> Result<Array> {
        self.reduce(ArrayReduction::Prod, axes, false)
    }
    pub fn min(&self, axes: impl Into<Axes>) -> Result<Array> {
        self.reduce(ArrayReduction::Min, axes, false)
    }
    pub fn max(&self, axes: impl Into<Axes>) -> Result<Array> {
        self.reduce(ArrayReduction::Max, axes, false)
    }
    pub fn mean(&self, axes: impl Into<Axes>) -> Result<Array> {
        self.reduce(ArrayReduction::Mean, axes, false)
    }
    pub fn var(&self, axes: impl Into<Axes>, ddof: u64) -> Result<Array> {
        self.reduce(ArrayReduction::Var { ddof }, axes, false)
    }
    pub fn std(&self, axes: impl Into<Axes>, ddof: u64) -> Result<Array> {
        self.reduce(ArrayReduction::Std { ddof }, axes, false)
    }
    pub fn any(&self, axes: impl Into<Axes>) -> Result<Array> {
        self.reduce(ArrayReduction::Any, axes, false)
    }
    pub fn all(&self, axes: impl Into<Axes>) -> Result<Array> {
        self.reduce(ArrayReduction::All, axes, false)
    }
    /// The index of the first minimum along `axis`, or in the flattened array (`Axes::All`).
    pub fn argmin(&self, axis: impl Into<Axes>) -> Result<Array> {
        self.reduce(ArrayReduction::Argmin, axis, false)
    }
    pub fn argmax(&self, axis: impl Into<Axes>) -> Result<Array> {
        self.reduce(ArrayReduction::Argmax, axis, false)
    }

    /// The array in `chunks`; through an intermediate chunking when one stage would hold more
    /// than the task memory limit (Rechunker's algorithm).
    pub fn rechunk(&self, chunks: impl Into<Chunks>) -> Result<Array> {
        let m = &self.node.meta;
        let target = grid::resolve(&m.shape, &chunks.into(), m.dtype)?;
        if target == m.chunks {
            return Ok(self.clone());
        }
        let mut current = self.clone();
        for stage in rechunk::plan(&m.shape, &m.chunks, &target, m.dtype, self.memory_limit())? {
            let meta = Meta { chunks: stage, ..m.clone() };
            current = current.derive(meta, Op::Rechunk { input: current.node.clone() }, &[]);
        }
        Ok(current)
    }

    /// Basic indexing: one [`Index`] per leading dimension (the rest taken whole). Integer
    /// indices drop their dimension. The result's chunks keep about the input's chunk size in
    /// elements read per block.
    pub fn slice(&self, index: &[Index]) -> Result<Array> {
        let m = &self.node.meta;
        if index.len() > m.ndim() {
            return Err(Error::Invalid(format!(
                "too many indices for array: array is {}-dimensional, but {} were indexed",
                m.ndim(),
                index.len()
            )));
        }
        let mut sel = Vec::with_capacity(m.ndim());
        let (mut shape, mut chunks) = (Vec::new(), Vec::new());
        for d in 0..m.ndim() {
            let n = m.shape[d] as i64;
            match index.get(d).copied().unwrap_or(Index::ALL) {
                Index::At(i) => {
                    let at = if i < 0 { i + n } else { i };
                    if at < 0 || at >= n {
                        return Err(Error::Invalid(format!(
                            "index {i} is out of bounds for axis {d} with size {n}"
                        )));
                    }
                    sel.push(Sel::Index(at as u64));
                }
                Index::Slice { start, stop, step } => {
                    let step = step.unwrap_or(1);
                    if step == 0 {
                        return Err(Error::Invalid("slice step cannot be zero".into()));
                    }
                    let (start, count) = slice_indices(start, stop, step, n);
                    sel.push(Sel::Range { start, step, count });
                    shape.push(count);
                    let c = (m.chunks[d] / step.unsigned_abs()).max(1);
                    chunks.push(c.min(count.max(1)));
                }
            }
        }
        Ok(self.derive(
            Meta { shape, chunks, dtype: m.dtype },
            Op::Slice { input: self.node.clone(), sel },
            &[],
        ))
    }

    /// Axes permuted (`None`: reversed, as `.T`).
    pub fn transpose(&self, axes: Option<&[i64]>) -> Result<Array> {
        let m = &self.node.meta;
        let axes: Vec<usize> = match axes {
            None => (0..m.ndim()).rev().collect(),
            Some(a) => a.iter().map(|&x| axis(x, m.ndim())).collect::<Result<_>>()?,
        };
        let mut sorted = axes.clone();
        sorted.sort_unstable();
        if sorted != (0..m.ndim()).collect::<Vec<_>>() {
            return Err(Error::Invalid(format!("axes {axes:?} don't match array of dimension {}", m.ndim())));
        }
        let meta = Meta {
            shape: axes.iter().map(|&a| m.shape[a]).collect(),
            chunks: axes.iter().map(|&a| m.chunks[a]).collect(),
            dtype: m.dtype,
        };
        Ok(self.derive(meta, Op::Transpose { input: self.node.clone(), axes }, &[]))
    }

    /// `tensordot(self, other, axes=(left, right))`; `other` is rechunked along the contracted
    /// axes to this array's chunks where they differ.
    pub fn tensordot(&self, other: &Array, left: &[i64], right: &[i64]) -> Result<Array> {
        let (lm, rm) = (&self.node.meta, &other.node.meta);
        if left.len() != right.len() {
            return Err(Error::Invalid("tensordot: the two lists of axes differ in length".into()));
        }
        let left: Vec<usize> = left.iter().map(|&a| axis(a, lm.ndim())).collect::<Result<_>>()?;
        let right: Vec<usize> = right.iter().map(|&a| axis(a, rm.ndim())).collect::<Result<_>>()?;
        let mut want = rm.chunks.clone();
        for (&l, &r) in left.iter().zip(&right) {
            if lm.shape[l] != rm.shape[r] {
                return Err(Error::Invalid(format!(
                    "shape-mismatch for sum: axis {l} of {} and axis {r} of {}",
                    shape_text(&lm.shape),
                    shape_text(&rm.shape)
                )));
            }
            want[r] = lm.chunks[l];
        }
        let other = if want == rm.chunks { other.clone() } else { other.rechunk(want)? };
        let rm = &other.node.meta;
        let free_l: Vec<usize> = (0..lm.ndim()).filter(|d| !left.contains(d)).collect();
        let free_r: Vec<usize> = (0..rm.ndim()).filter(|d| !right.contains(d)).collect();
        let meta = Meta {
            shape: free_l.iter().map(|&d| lm.shape[d]).chain(free_r.iter().map(|&d| rm.shape[d])).collect(),
            chunks: free_l
                .iter()
                .map(|&d| lm.chunks[d])
                .chain(free_r.iter().map(|&d| rm.chunks[d]))
                .collect(),
            dtype: types::promote(lm.dtype, rm.dtype),
        };
        let op = Op::TensorDot {
            left: self.node.clone(),
            right: other.node.clone(),
            left_axes: left,
            right_axes: right,
            split_every: self.split_every,
        };
        Ok(self.derive(meta, op, &[&other]))
    }

    /// `self @ other` for 1-d and 2-d arrays.
    pub fn matmul(&self, other: &Array) -> Result<Array> {
        if self.ndim() == 0 || other.ndim() == 0 || self.ndim() > 2 || other.ndim() > 2 {
            return Err(Error::Invalid(format!(
                "matmul takes 1-d or 2-d arrays, not {}-d and {}-d (use tensordot)",
                self.ndim(),
                other.ndim()
            )));
        }
        let r = if other.ndim() == 1 { 0 } else { other.ndim() as i64 - 2 };
        if self.shape()[self.ndim() - 1] != other.shape()[r as usize] {
            return Err(Error::Invalid(format!(
                "matmul: Input operand 1 has a mismatch in its core dimension 0 (size {} is different from {})",
                other.shape()[r as usize],
                self.shape()[self.ndim() - 1]
            )));
        }
        self.tensordot(other, &[self.ndim() as i64 - 1], &[r])
    }

    /// Calls `function` of `module` on every block, with `{"block_index": [...], "block_shape":
    /// [...]}` merged into `args`; it returns a block of the same shape, of `dtype` (this
    /// array's when `None`). A `table` function (Rust) gets the block as Arrow: one column of
    /// its elements in C order, its shape in the schema metadata; an `items` function (Python:
    /// `@items def f(block, block_index, block_shape, **args)`) gets it as nested lists.
    pub fn map_blocks(
        &self,
        module: &FunctionModule,
        function: &str,
        args: serde_json::Value,
        dtype: Option<DType>,
    ) -> Result<Array> {
        let json = module.functions.iter().any(|f| f.name == function && f.kind == FunctionKind::Items);
        let kind = if json { FunctionKind::Items } else { FunctionKind::Table };
        let function = module.function(function, kind, args, "map_blocks")?;
        let meta = Meta { dtype: dtype.unwrap_or(self.dtype()), ..self.node.meta.clone() };
        let mut out = self.derive(meta, Op::MapBlocks { input: self.node.clone(), function, json }, &[]);
        if !out.modules.iter().any(|m| m.reference.sha256 == module.reference.sha256) {
            out.modules.push(module.clone());
        }
        Ok(out)
    }
}

/// Python's `slice.indices` for a dimension of `n`: the first index and the count.
fn slice_indices(start: Option<i64>, stop: Option<i64>, step: i64, n: i64) -> (u64, u64) {
    let clamp = |v: Option<i64>, default: i64, low: i64, high: i64| match v {
        None => default,
        Some(v) if v < 0 => (v + n).max(low),
        Some(v) => v.min(high),
    };
    if step > 0 {
        let (a, b) = (clamp(start, 0, 0, n), clamp(stop, n, 0, n));
        (a as u64, if b > a { ((b - a + step - 1) / step) as u64 } else { 0 })
    } else {
        let (a, b) = (clamp(start, n - 1, -1, n - 1), clamp(stop, -1, -1, n - 1));
        let count = if a > b { ((a - b + (-step) - 1) / (-step)) as u64 } else { 0 };
        (a.max(0) as u64, count)
    }
}

impl crate::collections::dataframe::DataFrame {
    /// The numeric `columns` as a 2-d array (rows × columns) in row chunks of `chunk_rows`,
    /// of the columns' common type. Like `dask`'s `to_dask_array(lengths=True)` it runs the
    /// DataFrame first to learn each partition's length (its outputs are committed, so the
    /// array's own run reads them instead of computing them again).
    pub async fn to_array(&self, columns: &[&str], chunk_rows: u64) -> Result<Array> {
        let (graph, modules, schema) = self.lowered()?;
        let mut dtype: Option<DType> = None;
        for c in columns {
            let field = schema.field_with_name(c).map_err(|_| {
                Error::Schema(format!("to_array: no column {c:?} (columns: {})", column_names(&schema)))
            })?;
            let d = types::from_arrow(field.data_type()).ok_or_else(|| {
                Error::Schema(format!(
                    "to_array: column {c:?} is {}, not a number or boolean",
                    field.data_type()
                ))
            })?;
            dtype = Some(dtype.map_or(d, |acc| types::promote(acc, d)));
        }
        let dtype = dtype.ok_or_else(|| Error::Invalid("to_array: no columns".into()))?;
        let client = self.client().clone();
        let graph = Arc::new(graph);
        let run = client.run_graph(graph.clone(), &modules, crate::events::Events::new()).await?;
        let rows: Vec<u64> =
            graph.outputs.iter().map(|&t| run.manifests[t].outputs.iter().map(|o| o.rows).sum()).collect();
        let total: u64 = rows.iter().sum();
        let ncols = columns.len() as u64;
        let meta = Meta {
            shape: vec![total, ncols],
            chunks: vec![chunk_rows.max(1).min(total.max(1)), ncols.max(1)],
            dtype,
        };
        let op = Op::FromFrame { graph, rows, columns: columns.iter().map(|c| c.to_string()).collect() };
        Ok(Array::from_node(client, Arc::new(Node { meta, op }), modules))
    }
}

fn column_names(schema: &arrow::datatypes::Schema) -> String {
    schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_mean_what_python_means() {
        // (start, count) against list(range(n))[slice]
        assert_eq!(slice_indices(None, None, 1, 10), (0, 10));
        assert_eq!(slice_indices(Some(-3), None, 1, 10), (7, 3));
        assert_eq!(slice_indices(None, None, -1, 10), (9, 10));
        assert_eq!(slice_indices(Some(8), Some(2), -3, 10), (8, 2)); // [8, 5]
        assert_eq!(slice_indices(Some(1), Some(100), 4, 10), (1, 3)); // [1, 5, 9]
        assert_eq!(slice_indices(Some(5), Some(2), 1, 10), (5, 0));
        assert_eq!(slice_indices(Some(-100), Some(-8), 1, 10), (0, 2));
    }
}
