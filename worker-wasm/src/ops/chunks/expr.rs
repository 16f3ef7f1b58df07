//! Elementwise expressions over one output chunk ([`ChunkExpr`]): ports broadcast NumPy-style,
//! scalars weak, generators (`full`, `arange`, `linspace`, `random`) producing this chunk's part
//! of a created array. Each operation runs in its result type's computation type, then rounds
//! to the result type ([`Chunk::new`]), as NumPy computes in the narrow type.

use super::chunk::{Chunk, Data};
use super::dtype::{self, Operand};
use crate::error::{Error, Result};
use ndarray::{ArrayD, IxDyn, Zip};
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use shoal_protocol::{BinaryOp, ChunkExpr, DType, Scalar, UnaryOp};
use std::collections::BTreeMap;

/// A value while evaluating: a chunk, or a weak scalar.
#[derive(Debug, Clone)]
enum Value {
    Chunk(Chunk),
    Scalar(Scalar),
}

impl Value {
    fn operand(&self) -> Operand {
        match self {
            Value::Chunk(c) => Operand::Array(c.dtype),
            Value::Scalar(s) => Operand::of_scalar(s),
        }
    }

    /// As a chunk of `dtype` (a scalar as a 0-d one).
    fn into_chunk(self, dtype: DType) -> Chunk {
        match self {
            Value::Chunk(c) if c.dtype == dtype => c,
            Value::Chunk(c) => c.cast(dtype),
            Value::Scalar(s) => scalar_chunk(&s, dtype),
        }
    }
}

fn scalar_chunk(s: &Scalar, dtype: DType) -> Chunk {
    let zero_d = IxDyn(&[]);
    let data = match s {
        Scalar::Bool(b) => Data::Bool(ArrayD::from_elem(zero_d, *b)),
        Scalar::Int(i) => Data::Int(ArrayD::from_elem(zero_d, *i)),
        Scalar::Float(_) => Data::Float(ArrayD::from_elem(zero_d, s.as_f64())),
    };
    let natural = match s {
        Scalar::Bool(_) => DType::Bool,
        Scalar::Int(_) => DType::Int64,
        Scalar::Float(_) => DType::Float64,
    };
    Chunk { dtype: natural, data }.cast(dtype)
}

/// Evaluates `expr` into a chunk of `shape` and `dtype`, reading the chunks on `ports`.
pub fn evaluate(
    expr: &ChunkExpr,
    shape: &[usize],
    dtype: DType,
    ports: &BTreeMap<u32, Chunk>,
) -> Result<Chunk> {
    let value = eval(expr, shape, ports)?;
    let chunk = value.into_chunk(dtype);
    if chunk.shape() == shape {
        return Ok(chunk);
    }
    broadcast_to(&chunk, shape)
}

fn eval(expr: &ChunkExpr, shape: &[usize], ports: &BTreeMap<u32, Chunk>) -> Result<Value> {
    Ok(match expr {
        ChunkExpr::Port { port } => Value::Chunk(ports.get(port).cloned().ok_or_else(|| {
            Error::InvalidTask(format!("an expression reads port {port}, which no input feeds"))
        })?),
        ChunkExpr::Scalar { value } => Value::Scalar(value.clone()),
        ChunkExpr::Full { value, dtype } => Value::Chunk(broadcast_to(&scalar_chunk(value, *dtype), shape)?),
        ChunkExpr::Arange { start, step, offset, dtype } => {
            Value::Chunk(arange(start, step, *offset, *dtype, shape)?)
        }
        ChunkExpr::Linspace { start, stop, num, endpoint, offset } => {
            let div = if *endpoint { num.saturating_sub(1) } else { *num };
            let (start, stop) = (start.as_f64(), stop.as_f64());
            let step = if div > 0 { (stop - start) / div as f64 } else { f64::NAN };
            let n = one_d(shape)?;
            let values: Vec<f64> = (0..n as u64)
                .map(|i| {
                    let at = offset + i;
                    if *endpoint && *num > 1 && at == num - 1 { stop } else { at as f64 * step + start }
                })
                .collect();
            Value::Chunk(Chunk::new(DType::Float64, Data::Float(from_vec(shape, values)?)))
        }
        ChunkExpr::Random { seed, chunk } => Value::Chunk(random(*seed, chunk, shape)?),
        ChunkExpr::Unary { op, arg } => Value::Chunk(unary(*op, eval(arg, shape, ports)?)?),
        ChunkExpr::Binary { op, left, right } => {
            binary(*op, eval(left, shape, ports)?, eval(right, shape, ports)?)?
        }
        ChunkExpr::Where { condition, then, otherwise } => {
            let condition = eval(condition, shape, ports)?.into_chunk(DType::Bool);
            let (then, otherwise) = (eval(then, shape, ports)?, eval(otherwise, shape, ports)?);
            let dtype = dtype::promote_operands(then.operand(), otherwise.operand());
            let (t, o) = (then.into_chunk(dtype), otherwise.into_chunk(dtype));
            let Data::Bool(c) = &condition.data else {
                return Err(internal("where: a condition not boolean"));
            };
            let out = co_shape(&[c.shape(), t.shape(), o.shape()])?;
            let data = match (&t.data, &o.data) {
                (Data::Bool(t), Data::Bool(o)) => Data::Bool(select(c, t, o, &out)?),
                (Data::Int(t), Data::Int(o)) => Data::Int(select(c, t, o, &out)?),
                (Data::Float(t), Data::Float(o)) => Data::Float(select(c, t, o, &out)?),
                _ => return Err(internal("where: branches of different computation types")),
            };
            Value::Chunk(Chunk::new(dtype, data))
        }
        ChunkExpr::Cast { dtype, arg } => match eval(arg, shape, ports)? {
            Value::Chunk(c) => Value::Chunk(c.cast(*dtype)),
            Value::Scalar(s) => Value::Chunk(scalar_chunk(&s, *dtype)),
        },
    })
}

fn internal(what: &str) -> Error {
    Error::InvalidTask(format!("array expression: {what}"))
}

fn one_d(shape: &[usize]) -> Result<usize> {
    match shape {
        [n] => Ok(*n),
        _ => Err(Error::InvalidTask(format!("a 1-d generator asked for a chunk of shape {shape:?}"))),
    }
}

fn from_vec<T>(shape: &[usize], values: Vec<T>) -> Result<ArrayD<T>> {
    ArrayD::from_shape_vec(IxDyn(shape), values).map_err(|e| internal(&format!("shape {shape:?}: {e}")))
}

fn arange(start: &Scalar, step: &Scalar, offset: u64, dtype: DType, shape: &[usize]) -> Result<Chunk> {
    let n = one_d(shape)? as u64;
    let data = match (start, step) {
        (Scalar::Int(a), Scalar::Int(s)) if !dtype.is_float() => Data::Int(from_vec(
            shape,
            (0..n).map(|i| a.wrapping_add(((offset + i) as i64).wrapping_mul(*s))).collect(),
        )?),
        _ => {
            let (a, s) = (start.as_f64(), step.as_f64());
            Data::Float(from_vec(shape, (0..n).map(|i| a + (offset + i) as f64 * s).collect())?)
        }
    };
    Ok(Chunk::new(dtype, data))
}

/// Uniform floats in `[0, 1)` from a generator seeded by a hash of `seed` and the chunk index:
/// the same chunk of the same array is the same wherever and however often it is computed.
fn random(seed: u64, chunk: &[u64], shape: &[usize]) -> Result<Chunk> {
    let mut hash = Sha256::new();
    hash.update(b"shoal.random.v1");
    hash.update(seed.to_le_bytes());
    for c in chunk {
        hash.update(c.to_le_bytes());
    }
    let mut rng = rand::rngs::StdRng::from_seed(hash.finalize().into());
    let n: usize = shape.iter().product();
    let values: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
    Ok(Chunk::new(DType::Float64, Data::Float(from_vec(shape, values)?)))
}

/// NumPy's broadcast shape of several shapes.
pub fn co_shape(shapes: &[&[usize]]) -> Result<Vec<usize>> {
    let ndim = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; ndim];
    for s in shapes {
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[ndim - s.len() + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(Error::InvalidTask(format!("chunks of shapes {shapes:?} do not broadcast")));
            }
        }
    }
    Ok(out)
}

/// `chunk` broadcast to `shape`, materialised.
pub fn broadcast_to(chunk: &Chunk, shape: &[usize]) -> Result<Chunk> {
    fn go<T: Clone>(a: &ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>> {
        a.broadcast(IxDyn(shape)).map(|v| v.to_owned()).ok_or_else(|| {
            Error::InvalidTask(format!("a chunk of shape {:?} does not broadcast to {shape:?}", a.shape()))
        })
    }
    let data = match &chunk.data {
        Data::Bool(a) => Data::Bool(go(a, shape)?),
        Data::Int(a) => Data::Int(go(a, shape)?),
        Data::Float(a) => Data::Float(go(a, shape)?),
    };
    Ok(Chunk { dtype: chunk.dtype, data })
}

fn zip<A: Clone, B: Clone, R>(a: &ArrayD<A>, b: &ArrayD<B>, f: impl Fn(A, B) -> R) -> Result<ArrayD<R>> {
    let shape = co_shape(&[a.shape(), b.shape()])?;
    let (av, bv) = (a.broadcast(IxDyn(&shape)), b.broadcast(IxDyn(&shape)));
    let (Some(av), Some(bv)) = (av, bv) else { return Err(internal("operands that do not broadcast")) };
    Ok(Zip::from(&av).and(&bv).map_collect(|x, y| f(x.clone(), y.clone())))
}

fn select<T: Clone>(c: &ArrayD<bool>, t: &ArrayD<T>, o: &ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>> {
    let s = IxDyn(shape);
    let (Some(cv), Some(tv), Some(ov)) = (c.broadcast(s.clone()), t.broadcast(s.clone()), o.broadcast(s))
    else {
        return Err(internal("where: operands that do not broadcast"));
    };
    Ok(Zip::from(&cv).and(&tv).and(&ov).map_collect(|&c, t, o| if c { t.clone() } else { o.clone() }))
}

fn unary(op: UnaryOp, value: Value) -> Result<Chunk> {
    let input = match value {
        Value::Chunk(c) => c,
        Value::Scalar(s) => scalar_chunk(&s, Operand::of_scalar(&s).dtype()),
    };
    let out = dtype::unary(op, input.dtype).map_err(Error::InvalidTask)?;
    use UnaryOp::*;
    let data = match (op, &input.data) {
        (Negative, Data::Int(a)) => Data::Int(a.mapv(i64::wrapping_neg)),
        (Negative, Data::Float(a)) => Data::Float(a.mapv(|v| -v)),
        (Absolute, Data::Int(a)) => Data::Int(a.mapv(i64::wrapping_abs)),
        (Absolute, Data::Float(a)) => Data::Float(a.mapv(f64::abs)),
        (Absolute, Data::Bool(a)) => Data::Bool(a.clone()),
        (Isnan, Data::Float(a)) => Data::Bool(a.mapv(f64::is_nan)),
        (Isnan, data) => Data::Bool(ArrayD::from_elem(IxDyn(data.shape()), false)),
        (Not, Data::Bool(a)) => Data::Bool(a.mapv(|v| !v)),
        (Sqrt | Exp | Log | Sin | Cos | Tan | Floor | Ceil, _) => {
            let f: fn(f64) -> f64 = match op {
                Sqrt => f64::sqrt,
                Exp => f64::exp,
                Log => f64::ln,
                Sin => f64::sin,
                Cos => f64::cos,
                Tan => f64::tan,
                Floor => f64::floor,
                _ => f64::ceil,
            };
            Data::Float(input.floats().mapv_into(f))
        }
        _ => return Err(Error::InvalidTask(format!("{op:?} is not defined for {}", input.dtype))),
    };
    Ok(Chunk::new(out, data))
}

fn binary(op: BinaryOp, left: Value, right: Value) -> Result<Value> {
    let (l, r) = (left.operand(), right.operand());
    let out = dtype::binary(op, l, r).map_err(Error::InvalidTask)?;
    // The type both operands are brought to before the operation.
    let common = match op {
        BinaryOp::Divide => out,
        _ => dtype::promote_operands(l, r),
    };
    let (a, b) = (left.into_chunk(common), right.into_chunk(common));
    let unsigned = common == DType::Uint64;
    use BinaryOp::*;
    let data = match (&a.data, &b.data) {
        (Data::Float(x), Data::Float(y)) => match op {
            Equal | NotEqual | Less | LessEqual | Greater | GreaterEqual => {
                Data::Bool(zip(x, y, |p, q| compare(op, p, q))?)
            }
            _ => Data::Float(zip(x, y, |p, q| float_op(op, p, q))?),
        },
        (Data::Int(x), Data::Int(y)) => match op {
            Equal | NotEqual | Less | LessEqual | Greater | GreaterEqual if unsigned => {
                Data::Bool(zip(x, y, |p, q| compare(op, p as u64, q as u64))?)
            }
            Equal | NotEqual | Less | LessEqual | Greater | GreaterEqual => {
                Data::Bool(zip(x, y, |p, q| compare(op, p, q))?)
            }
            Power if y.iter().any(|&e| e < 0) => {
                return Err(Error::InvalidTask("integers to negative integer powers are not allowed".into()));
            }
            _ => Data::Int(zip(x, y, |p, q| int_op(op, p, q))?),
        },
        (Data::Bool(x), Data::Bool(y)) => Data::Bool(zip(x, y, |p, q| match op {
            And | Multiply | Minimum => p & q,
            Or | Add | Maximum => p | q,
            _ => compare(op, p, q),
        })?),
        _ => return Err(internal("operands of different computation types")),
    };
    Ok(Value::Chunk(Chunk::new(out, data)))
}

fn compare<T: PartialOrd>(op: BinaryOp, p: T, q: T) -> bool {
    match op {
        BinaryOp::Equal => p == q,
        BinaryOp::NotEqual => p != q,
        BinaryOp::Less => p < q,
        BinaryOp::LessEqual => p <= q,
        BinaryOp::Greater => p > q,
        _ => p >= q,
    }
}

fn float_op(op: BinaryOp, p: f64, q: f64) -> f64 {
    match op {
        BinaryOp::Add => p + q,
        BinaryOp::Subtract => p - q,
        BinaryOp::Multiply => p * q,
        BinaryOp::Divide => p / q,
        BinaryOp::FloorDivide => (p / q).floor(),
        BinaryOp::Remainder => {
            // Python's (and NumPy's) modulo: the sign of the divisor.
            let r = p % q;
            if r != 0.0 && (r < 0.0) != (q < 0.0) { r + q } else { r }
        }
        // NumPy's fast paths for these exponents (so `x ** 2` is `x * x`, bit for bit).
        BinaryOp::Power if q == 2.0 => p * p,
        BinaryOp::Power if q == 0.5 => p.sqrt(),
        BinaryOp::Power if q == 1.0 => p,
        BinaryOp::Power if q == -1.0 => 1.0 / p,
        BinaryOp::Power => p.powf(q),
        // NaN propagates, as in np.minimum / np.maximum.
        BinaryOp::Minimum if p.is_nan() || q.is_nan() => f64::NAN,
        BinaryOp::Maximum if p.is_nan() || q.is_nan() => f64::NAN,
        BinaryOp::Minimum => p.min(q),
        BinaryOp::Maximum => p.max(q),
        _ => f64::NAN,
    }
}

fn int_op(op: BinaryOp, p: i64, q: i64) -> i64 {
    match op {
        BinaryOp::Add => p.wrapping_add(q),
        BinaryOp::Subtract => p.wrapping_sub(q),
        BinaryOp::Multiply => p.wrapping_mul(q),
        // NumPy gives 0 (with a warning) for integer division by zero.
        BinaryOp::FloorDivide if q == 0 => 0,
        BinaryOp::FloorDivide => {
            let d = p.wrapping_div(q);
            if p.wrapping_rem(q) != 0 && (p < 0) != (q < 0) { d - 1 } else { d }
        }
        BinaryOp::Remainder if q == 0 => 0,
        BinaryOp::Remainder => {
            let r = p.wrapping_rem(q);
            if r != 0 && (r < 0) != (q < 0) { r + q } else { r }
        }
        BinaryOp::Power => p.wrapping_pow(u32::try_from(q).unwrap_or(u32::MAX)),
        BinaryOp::Minimum => p.min(q),
        BinaryOp::Maximum => p.max(q),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int_chunk(shape: &[usize], v: Vec<i64>) -> Chunk {
        Chunk::new(DType::Int64, Data::Int(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap_or_default()))
    }

    #[test]
    fn integer_division_and_modulo_are_pythons() {
        for (p, q) in [(7i64, 2i64), (-7, 2), (7, -2), (-7, -2), (6, 3), (-6, 3), (0, 5)] {
            let floor = (p as f64 / q as f64).floor() as i64;
            assert_eq!(int_op(BinaryOp::FloorDivide, p, q), floor, "{p} // {q}");
            assert_eq!(int_op(BinaryOp::Remainder, p, q), p - floor * q, "{p} % {q}");
        }
    }

    #[test]
    fn broadcasting_a_row_over_a_chunk() -> Result<()> {
        let ports = BTreeMap::from([
            (0, int_chunk(&[2, 3], vec![1, 2, 3, 4, 5, 6])),
            (1, int_chunk(&[1, 3], vec![10, 20, 30])),
        ]);
        let expr = ChunkExpr::Binary {
            op: BinaryOp::Add,
            left: Box::new(ChunkExpr::Port { port: 0 }),
            right: Box::new(ChunkExpr::Port { port: 1 }),
        };
        let out = evaluate(&expr, &[2, 3], DType::Int64, &ports)?;
        assert_eq!(out.data.to_int().iter().copied().collect::<Vec<_>>(), vec![11, 22, 33, 14, 25, 36]);
        Ok(())
    }
}
