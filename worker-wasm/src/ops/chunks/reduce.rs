//! Reductions over axes of a chunk, as trees: `Partial` reduces a chunk to a state whose
//! reduced axes have size 1, `Combine` merges states of neighbouring chunks, `Final` merges and
//! finishes. A state is a chunk table of several columns of one shape (`acc`; `sum` and
//! `count`; `count`, `mean` and `m2`; `value` and `index`).
//!
//! The chunk is first viewed as a 2-d table of lanes (the kept axes' elements × the reduced
//! axes' elements, via a transpose and a reshape, [`lanes`]), so every reduction is a loop over
//! rows of one matrix whatever the axes. The loops are written here because ndarray reduces one
//! axis at a time and has neither NaN-propagating min/max nor arg-reductions with global
//! indices. Variance merges with Chan et al.'s pairwise update, so the tree gives the same
//! answer as one pass up to rounding.

use super::chunk::{self, Chunk, Data};
use crate::error::{Error, Result};
use crate::io::Table;
use ndarray::{Array2, ArrayD, IxDyn};
use shoal_protocol::{ArrayReduction, DType, ReduceStep};

/// A reduction's state: its columns, named.
type State = Vec<(&'static str, Chunk)>;

/// The type a reduction's value has, for an input of type `input` (NumPy's rules: sums and
/// products of small integers widen to 64 bits; means and variances are floats).
pub fn result_type(reduction: &ArrayReduction, input: DType) -> DType {
    use ArrayReduction::*;
    match reduction {
        Sum | Prod if input.is_bool() || input.is_signed() => DType::Int64,
        Sum | Prod if input.is_unsigned() => DType::Uint64,
        Sum | Prod | Min | Max => input,
        Mean | Var { .. } | Std { .. } if input == DType::Float32 => DType::Float32,
        Mean | Var { .. } | Std { .. } => DType::Float64,
        Any | All => DType::Bool,
        Argmin | Argmax => DType::Int64,
    }
}

/// One step of a reduction (see `ChunkOp::Reduce`); `inputs` are the main table then the
/// side tables in port order.
#[allow(clippy::too_many_arguments)]
pub fn step(
    reduction: &ArrayReduction,
    step: ReduceStep,
    axes: &[usize],
    keepdims: bool,
    dtype: DType,
    offset: &[u64],
    shape: &[u64],
    inputs: &[&Table],
) -> Result<Table> {
    let state = match step {
        ReduceStep::Partial => {
            let main = inputs
                .first()
                .ok_or_else(|| Error::InvalidTask("a partial reduction without input".into()))?;
            partial(reduction, &chunk::from_table(main)?, axes, offset, shape)?
        }
        ReduceStep::Combine | ReduceStep::Final => {
            let mut states = inputs.iter().map(|t| read_state(reduction, t));
            let mut acc =
                states.next().ok_or_else(|| Error::InvalidTask("a combine without states".into()))??;
            for s in states {
                acc = merge(reduction, acc, s?)?;
            }
            acc
        }
    };
    if step != ReduceStep::Final {
        let columns: Vec<(&str, &Chunk)> = state.iter().map(|(n, c)| (*n, c)).collect();
        return chunk::table_of(&columns);
    }
    let value = finish(reduction, state)?.cast(dtype);
    let value = if keepdims {
        value
    } else {
        let kept: Vec<usize> =
            value.shape().iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect();
        Chunk { dtype: value.dtype, data: chunk::reshape(value.data, &kept)? }
    };
    chunk::to_table(&value)
}

fn names(reduction: &ArrayReduction) -> &'static [&'static str] {
    use ArrayReduction::*;
    match reduction {
        Sum | Prod | Min | Max | Any | All => &["acc"],
        Mean => &["sum", "count"],
        Var { .. } | Std { .. } => &["count", "mean", "m2"],
        Argmin | Argmax => &["value", "index"],
    }
}

fn read_state(reduction: &ArrayReduction, table: &Table) -> Result<State> {
    names(reduction).iter().map(|&n| Ok((n, chunk::column(table, n)?))).collect()
}

/// The chunk as lanes: a (kept elements × reduced elements) matrix, and the shape of the state
/// (the chunk's, with the reduced axes of size 1).
fn lanes<T: Clone>(a: &ArrayD<T>, axes: &[usize]) -> Result<(Array2<T>, Vec<usize>)> {
    let ndim = a.ndim();
    if let Some(bad) = axes.iter().find(|&&x| x >= ndim) {
        return Err(Error::InvalidTask(format!("axis {bad} is out of range for a {ndim}-d chunk")));
    }
    let kept: Vec<usize> = (0..ndim).filter(|i| !axes.contains(i)).collect();
    let order: Vec<usize> = kept.iter().chain(axes.iter()).copied().collect();
    let k: usize = kept.iter().map(|&i| a.shape()[i]).product();
    let r: usize = axes.iter().map(|&i| a.shape()[i]).product();
    let permuted = a.view().permuted_axes(IxDyn(&order));
    let flat: Vec<T> = permuted.iter().cloned().collect();
    let matrix =
        Array2::from_shape_vec((k, r), flat).map_err(|e| Error::InvalidTask(format!("lanes: {e}")))?;
    let state_shape =
        a.shape().iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect();
    Ok((matrix, state_shape))
}

fn collect<T>(shape: &[usize], values: Vec<T>) -> Result<ArrayD<T>> {
    ArrayD::from_shape_vec(IxDyn(shape), values)
        .map_err(|e| Error::InvalidTask(format!("a reduction's state: {e}")))
}

fn floats(shape: &[usize], values: Vec<f64>) -> Result<Chunk> {
    Ok(Chunk::new(DType::Float64, Data::Float(collect(shape, values)?)))
}

fn partial(
    reduction: &ArrayReduction,
    input: &Chunk,
    axes: &[usize],
    offset: &[u64],
    shape: &[u64],
) -> Result<State> {
    use ArrayReduction::*;
    let acc_type = match reduction {
        Sum | Prod => result_type(reduction, input.dtype),
        _ => input.dtype,
    };
    Ok(match reduction {
        Sum | Prod | Min | Max if !acc_type.is_float() && !acc_type.is_bool() => {
            let (m, s) = lanes(&input.data.to_int(), axes)?;
            let unsigned = acc_type == DType::Uint64;
            let v: Vec<i64> = m
                .rows()
                .into_iter()
                .map(|row| {
                    row.iter()
                        .copied()
                        .reduce(|x, y| int_merge(reduction, x, y, unsigned))
                        .unwrap_or(identity_int(reduction))
                })
                .collect();
            vec![("acc", Chunk::new(acc_type, Data::Int(collect(&s, v)?)))]
        }
        Sum | Prod | Min | Max if acc_type.is_bool() => {
            let (m, s) = lanes(&input.data.to_bool(), axes)?;
            let v: Vec<bool> = m
                .rows()
                .into_iter()
                .map(|row| match reduction {
                    Min => row.iter().all(|&b| b),
                    _ => row.iter().any(|&b| b),
                })
                .collect();
            vec![("acc", Chunk::new(DType::Bool, Data::Bool(collect(&s, v)?)))]
        }
        Sum | Prod | Min | Max => {
            let (m, s) = lanes(&input.floats(), axes)?;
            let v: Vec<f64> = m
                .rows()
                .into_iter()
                .map(|row| {
                    row.iter()
                        .copied()
                        .reduce(|x, y| float_merge(reduction, x, y))
                        .unwrap_or(identity_float(reduction))
                })
                .collect();
            vec![("acc", Chunk::new(acc_type, Data::Float(collect(&s, v)?)))]
        }
        Any | All => {
            let (m, s) = lanes(&input.data.to_bool(), axes)?;
            let all = matches!(reduction, All);
            let v: Vec<bool> = m
                .rows()
                .into_iter()
                .map(|row| if all { row.iter().all(|&b| b) } else { row.iter().any(|&b| b) })
                .collect();
            vec![("acc", Chunk::new(DType::Bool, Data::Bool(collect(&s, v)?)))]
        }
        Mean => {
            let (m, s) = lanes(&input.floats(), axes)?;
            let sums = m.rows().into_iter().map(|r| r.sum()).collect();
            let counts = vec![m.ncols() as f64; m.nrows()];
            vec![("sum", floats(&s, sums)?), ("count", floats(&s, counts)?)]
        }
        Var { .. } | Std { .. } => {
            let (m, s) = lanes(&input.floats(), axes)?;
            let n = m.ncols() as f64;
            let means: Vec<f64> = m.rows().into_iter().map(|r| r.sum() / n).collect();
            let m2: Vec<f64> = m
                .rows()
                .into_iter()
                .zip(&means)
                .map(|(r, &mu)| r.iter().map(|&x| (x - mu) * (x - mu)).sum())
                .collect();
            vec![
                ("count", floats(&s, vec![n; m.nrows()])?),
                ("mean", floats(&s, means)?),
                ("m2", floats(&s, m2)?),
            ]
        }
        Argmin | Argmax => arg_partial(matches!(reduction, Argmin), input, axes, offset, shape)?,
    })
}

/// The state of an arg-reduction of `input`: each lane's extreme value and its global index.
fn arg_partial(min: bool, input: &Chunk, axes: &[usize], offset: &[u64], shape: &[u64]) -> Result<State> {
    let (m, s) = lanes(&input.floats(), axes)?;
    let mut values = Vec::with_capacity(m.nrows());
    let mut indices = Vec::with_capacity(m.nrows());
    for row in m.rows() {
        let (j, v) = arg(row.iter().copied(), min);
        values.push(v);
        indices.push(global_index(j, input.shape(), axes, offset, shape)?);
    }
    Ok(vec![
        ("value", floats(&s, values)?),
        ("index", Chunk::new(DType::Int64, Data::Int(collect(&s, indices)?))),
    ])
}

/// The position and value of the first minimum (maximum) of `values`; a NaN wins, as in NumPy.
fn arg(values: impl Iterator<Item = f64>, min: bool) -> (usize, f64) {
    let mut best = (0usize, f64::NAN);
    for (j, v) in values.enumerate() {
        if v.is_nan() {
            return (j, v);
        }
        if j == 0 || (min && v < best.1) || (!min && v > best.1) {
            best = (j, v);
        }
    }
    best
}

/// The index an arg-reduction reports for lane element `j` of a chunk at `offset`: along the
/// one reduced axis, or into the flattened array when every axis is reduced.
fn global_index(
    j: usize,
    chunk_shape: &[usize],
    axes: &[usize],
    offset: &[u64],
    shape: &[u64],
) -> Result<i64> {
    let offset_of = |axis: usize| offset.get(axis).copied().unwrap_or(0);
    if let [axis] = axes
        && chunk_shape.len() > 1
    {
        return Ok((offset_of(*axis) + j as u64) as i64);
    }
    // Every axis: unravel j in the chunk, shift by the offset, ravel in the array.
    let mut rest = j as u64;
    let mut coords = vec![0u64; chunk_shape.len()];
    for (i, &d) in chunk_shape.iter().enumerate().rev() {
        coords[i] = rest % d.max(1) as u64 + offset_of(i);
        rest /= d.max(1) as u64;
    }
    let mut flat = 0u64;
    for (i, c) in coords.iter().enumerate() {
        let d = shape.get(i).copied().unwrap_or(chunk_shape[i] as u64);
        flat = flat * d + c;
    }
    Ok(flat as i64)
}

fn identity_int(reduction: &ArrayReduction) -> i64 {
    if matches!(reduction, ArrayReduction::Prod) { 1 } else { 0 }
}

fn identity_float(reduction: &ArrayReduction) -> f64 {
    match reduction {
        ArrayReduction::Prod => 1.0,
        ArrayReduction::Min => f64::INFINITY,
        ArrayReduction::Max => f64::NEG_INFINITY,
        _ => 0.0,
    }
}

fn int_merge(reduction: &ArrayReduction, x: i64, y: i64, unsigned: bool) -> i64 {
    match reduction {
        ArrayReduction::Prod => x.wrapping_mul(y),
        ArrayReduction::Min if unsigned => (x as u64).min(y as u64) as i64,
        ArrayReduction::Max if unsigned => (x as u64).max(y as u64) as i64,
        ArrayReduction::Min => x.min(y),
        ArrayReduction::Max => x.max(y),
        _ => x.wrapping_add(y),
    }
}

fn float_merge(reduction: &ArrayReduction, x: f64, y: f64) -> f64 {
    match reduction {
        ArrayReduction::Prod => x * y,
        ArrayReduction::Min | ArrayReduction::Max if x.is_nan() || y.is_nan() => f64::NAN,
        ArrayReduction::Min => x.min(y),
        ArrayReduction::Max => x.max(y),
        _ => x + y,
    }
}

/// Two states of neighbouring chunks as one.
fn merge(reduction: &ArrayReduction, a: State, b: State) -> Result<State> {
    use ArrayReduction::*;
    let pair = |i: usize| -> Result<(&Chunk, &Chunk)> {
        match (a.get(i), b.get(i)) {
            (Some((_, x)), Some((_, y))) if x.shape() == y.shape() => Ok((x, y)),
            _ => Err(Error::InvalidTask("reduction states of different shapes or columns".into())),
        }
    };
    let shape = pair(0)?.0.shape().to_vec();
    let f = |c: &Chunk| c.floats().iter().copied().collect::<Vec<f64>>();
    Ok(match reduction {
        Sum | Prod | Min | Max | Any | All => {
            let (x, y) = pair(0)?;
            let data = match (&x.data, &y.data) {
                (Data::Int(p), Data::Int(q)) => {
                    let unsigned = x.dtype == DType::Uint64;
                    Data::Int(
                        ndarray::Zip::from(p)
                            .and(q)
                            .map_collect(|&p, &q| int_merge(reduction, p, q, unsigned)),
                    )
                }
                (Data::Float(p), Data::Float(q)) => Data::Float(
                    ndarray::Zip::from(p).and(q).map_collect(|&p, &q| float_merge(reduction, p, q)),
                ),
                (Data::Bool(p), Data::Bool(q)) => Data::Bool(ndarray::Zip::from(p).and(q).map_collect(
                    |&p, &q| {
                        if matches!(reduction, All | Min) { p && q } else { p || q }
                    },
                )),
                _ => return Err(Error::InvalidTask("reduction states of different types".into())),
            };
            vec![("acc", Chunk::new(x.dtype, data))]
        }
        Mean => {
            let ((s1, s2), (c1, c2)) = (pair(0)?, pair(1)?);
            let sums = f(s1).iter().zip(f(s2)).map(|(p, q)| p + q).collect();
            let counts = f(c1).iter().zip(f(c2)).map(|(p, q)| p + q).collect();
            vec![("sum", floats(&shape, sums)?), ("count", floats(&shape, counts)?)]
        }
        Var { .. } | Std { .. } => {
            let (n1, n2) = pair(0)?;
            let (m1, m2) = pair(1)?;
            let (q1, q2) = pair(2)?;
            let (n1, n2, m1, m2, q1, q2) = (f(n1), f(n2), f(m1), f(m2), f(q1), f(q2));
            let (mut n, mut mean, mut m2s) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..n1.len() {
                let total = n1[i] + n2[i];
                let delta = m2[i] - m1[i];
                let merged_mean = if total > 0.0 { m1[i] + delta * n2[i] / total } else { 0.0 };
                let merged_m2 =
                    if total > 0.0 { q1[i] + q2[i] + delta * delta * n1[i] * n2[i] / total } else { 0.0 };
                n.push(total);
                mean.push(merged_mean);
                m2s.push(merged_m2);
            }
            vec![("count", floats(&shape, n)?), ("mean", floats(&shape, mean)?), ("m2", floats(&shape, m2s)?)]
        }
        Argmin | Argmax => {
            let ((v1, v2), (i1, i2)) = (pair(0)?, pair(1)?);
            let (v1, v2) = (f(v1), f(v2));
            let (i1, i2) = (i1.data.to_int(), i2.data.to_int());
            let (i1, i2): (Vec<i64>, Vec<i64>) = (i1.iter().copied().collect(), i2.iter().copied().collect());
            let min = matches!(reduction, Argmin);
            let (mut values, mut indices) = (Vec::new(), Vec::new());
            for k in 0..v1.len() {
                // The earlier index wins ties; a NaN wins everything (its first occurrence).
                let first = if i1[k] <= i2[k] { 0 } else { 1 };
                let (a, b) = if first == 0 {
                    ((v1[k], i1[k]), (v2[k], i2[k]))
                } else {
                    ((v2[k], i2[k]), (v1[k], i1[k]))
                };
                let pick_b = !a.0.is_nan() && (b.0.is_nan() || (min && b.0 < a.0) || (!min && b.0 > a.0));
                let (v, i) = if pick_b { b } else { a };
                values.push(v);
                indices.push(i);
            }
            vec![
                ("value", floats(&shape, values)?),
                ("index", Chunk::new(DType::Int64, Data::Int(collect(&shape, indices)?))),
            ]
        }
    })
}

/// The value of a merged state.
fn finish(reduction: &ArrayReduction, state: State) -> Result<Chunk> {
    use ArrayReduction::*;
    let get = |i: usize| {
        state
            .get(i)
            .map(|(_, c)| c.clone())
            .ok_or_else(|| Error::InvalidTask("a reduction state without its columns".into()))
    };
    Ok(match reduction {
        Sum | Prod | Min | Max | Any | All => get(0)?,
        Mean => {
            let (s, c) = (get(0)?.floats(), get(1)?.floats());
            Chunk::new(DType::Float64, Data::Float(s / c))
        }
        Var { ddof } | Std { ddof } => {
            let (n, m2) = (get(0)?.floats(), get(2)?.floats());
            let ddof = *ddof as f64;
            let var = ndarray::Zip::from(&m2).and(&n).map_collect(|&q, &n| q / (n - ddof).max(0.0));
            let out = if matches!(reduction, Std { .. }) { var.mapv_into(f64::sqrt) } else { var };
            Chunk::new(DType::Float64, Data::Float(out))
        }
        Argmin | Argmax => get(1)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(shape: &[usize], v: Vec<f64>) -> Table {
        let c = Chunk::new(
            DType::Float64,
            Data::Float(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap_or_default()),
        );
        chunk::to_table(&c)
            .unwrap_or_else(|_| (std::sync::Arc::new(arrow::datatypes::Schema::empty()), vec![]))
    }

    fn values(t: &Table) -> Vec<f64> {
        chunk::from_table(t).map(|c| c.floats().iter().copied().collect()).unwrap_or_default()
    }

    #[test]
    fn a_tree_of_variances_is_one_pass() -> Result<()> {
        let (a, b) = (chunk(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]), chunk(&[1, 2], vec![10.0, -5.0]));
        let var = ArrayReduction::Var { ddof: 1 };
        let step_of = |t: &Table, off: u64| {
            step(&var, ReduceStep::Partial, &[0], true, DType::Float64, &[off, 0], &[3, 2], &[t])
        };
        let (pa, pb) = (step_of(&a, 0)?, step_of(&b, 2)?);
        let out = step(&var, ReduceStep::Final, &[0], false, DType::Float64, &[], &[], &[&pa, &pb])?;
        // Columns [1, 3, 10] and [2, 4, -5]: squared deviations sum to 134/3 in both, so the
        // sample variances are both 67/3.
        let got = values(&out);
        assert!((got[0] - 67.0 / 3.0).abs() < 1e-12 && (got[1] - 67.0 / 3.0).abs() < 1e-12, "{got:?}");
        Ok(())
    }

    #[test]
    fn argmin_over_everything_is_a_flat_index() -> Result<()> {
        // A 3x2 array [[5, 4], [3, 9], [0, 7]] in chunks of one row: the minimum 0 is at flat 4.
        let rows = [vec![5.0, 4.0], vec![3.0, 9.0], vec![0.0, 7.0]];
        let mut states = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            let t = chunk(&[1, 2], r.clone());
            states.push(step(
                &ArrayReduction::Argmin,
                ReduceStep::Partial,
                &[0, 1],
                false,
                DType::Int64,
                &[i as u64, 0],
                &[3, 2],
                &[&t],
            )?);
        }
        let refs: Vec<&Table> = states.iter().collect();
        let out =
            step(&ArrayReduction::Argmin, ReduceStep::Final, &[0, 1], false, DType::Int64, &[], &[], &refs)?;
        assert_eq!(values(&out), vec![4.0]);
        Ok(())
    }
}
