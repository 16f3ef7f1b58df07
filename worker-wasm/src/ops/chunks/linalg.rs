//! `tensordot` of two chunks, as one matrix product: the contracted axes of the left chunk
//! moved last and of the right one first, both reshaped to matrices, multiplied by ndarray's
//! `dot` (matrixmultiply's blocked, vectorised gemm), and the product reshaped to the free
//! axes of both. Integer and boolean chunks are multiplied as f64 (exact while the sums of
//! products stay below 2^53) and cast back.

use super::chunk::{Chunk, Data};
use crate::error::{Error, Result};
use ndarray::{Array2, IxDyn};
use shoal_protocol::DType;

pub fn tensordot(a: &Chunk, b: &Chunk, left: &[usize], right: &[usize], dtype: DType) -> Result<Chunk> {
    let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
    if left.len() != right.len() || left.iter().chain(right).any(|&x| x >= sa.len().max(sb.len())) {
        return Err(Error::InvalidTask(format!(
            "tensordot axes {left:?} and {right:?} for chunks {sa:?} and {sb:?}"
        )));
    }
    for (&l, &r) in left.iter().zip(right) {
        if sa.get(l) != sb.get(r) {
            return Err(Error::InvalidTask(format!(
                "tensordot contracts axis {l} of a chunk {sa:?} with axis {r} of a chunk {sb:?}: sizes differ"
            )));
        }
    }
    let free_a: Vec<usize> = (0..sa.len()).filter(|i| !left.contains(i)).collect();
    let free_b: Vec<usize> = (0..sb.len()).filter(|i| !right.contains(i)).collect();
    let k: usize = left.iter().map(|&i| sa[i]).product();
    let m: usize = free_a.iter().map(|&i| sa[i]).product();
    let n: usize = free_b.iter().map(|&i| sb[i]).product();
    let order_a: Vec<usize> = free_a.iter().chain(left).copied().collect();
    let order_b: Vec<usize> = right.iter().chain(&free_b).copied().collect();
    let matrix = |c: &Chunk, order: &[usize], rows: usize, cols: usize| -> Result<Array2<f64>> {
        let f = c.floats();
        let permuted: Vec<f64> = f.view().permuted_axes(IxDyn(order)).iter().copied().collect();
        Array2::from_shape_vec((rows, cols), permuted)
            .map_err(|e| Error::InvalidTask(format!("tensordot: {e}")))
    };
    let product = matrix(a, &order_a, m, k)?.dot(&matrix(b, &order_b, k, n)?);
    let shape: Vec<usize> = free_a.iter().map(|&i| sa[i]).chain(free_b.iter().map(|&i| sb[i])).collect();
    let data = product
        .into_dyn()
        .into_shape_with_order(IxDyn(&shape))
        .map_err(|e| Error::InvalidTask(format!("tensordot: {e}")))?;
    Ok(Chunk::new(DType::Float64, Data::Float(data)).cast(dtype))
}
