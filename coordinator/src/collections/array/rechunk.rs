//! Planning a rechunk within the task memory limit, after Rechunker: when assembling each
//! target block from whole source blocks would hold too much (rows to columns reads the whole
//! array for every block), go through an intermediate chunking — the elementwise minimum of
//! the two, grown while both stages still fit — so the first stage splits source blocks and
//! the second assembles target blocks, each reading only about a chunk's worth.

use super::grid;
use super::lower::held;
use crate::error::{Error, Result};
use shoal_protocol::DType;
use shoal_worker::error::human_bytes;

/// The most a task of a one-stage rechunk from `from` to `to` chunks holds.
pub fn stage_bytes(shape: &[u64], from: &[u64], to: &[u64], dtype: DType) -> u64 {
    let read: u64 = (0..shape.len()).map(|d| grid::max_read(shape[d], from[d], to[d])).product();
    let write: u64 = (0..shape.len()).map(|d| to[d].min(shape[d])).product();
    held(read, dtype) + held(write, dtype)
}

/// The chunkings to go through, in order, ending with `target`: `[target]` when one stage fits
/// in `limit`, otherwise an intermediate first.
pub fn plan(
    shape: &[u64],
    source: &[u64],
    target: &[u64],
    dtype: DType,
    limit: u64,
) -> Result<Vec<Vec<u64>>> {
    if stage_bytes(shape, source, target, dtype) <= limit {
        return Ok(vec![target.to_vec()]);
    }
    let fits = |mid: &[u64]| {
        stage_bytes(shape, source, mid, dtype) <= limit && stage_bytes(shape, mid, target, dtype) <= limit
    };
    let mut mid: Vec<u64> = source.iter().zip(target).map(|(&s, &t)| s.min(t)).collect();
    if !fits(&mid) {
        return Err(Error::TaskMemory(format!(
            "rechunk {source:?} → {target:?} of {dtype}: even through chunks {mid:?} a task would hold {}, over the \
             task memory limit of {}; the source or target chunks alone are too large for it",
            human_bytes(stage_bytes(shape, source, &mid, dtype).max(stage_bytes(shape, &mid, target, dtype))),
            human_bytes(limit)
        )));
    }
    // Fewer, larger intermediate blocks while both stages fit: double one dimension at a time.
    let upper: Vec<u64> =
        source.iter().zip(target).zip(shape).map(|((&s, &t), &n)| s.max(t).min(n.max(1))).collect();
    loop {
        let mut grown = false;
        for d in 0..mid.len() {
            if mid[d] >= upper[d] {
                continue;
            }
            let mut next = mid.clone();
            next[d] = (mid[d] * 2).min(upper[d]);
            if fits(&next) {
                mid = next;
                grown = true;
            }
        }
        if !grown {
            break;
        }
    }
    Ok(vec![mid, target.to_vec()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_to_columns_goes_through_squares() -> Result<()> {
        // 1000 x 1000 float64, rows of 100 to columns of 100: one stage would hold the whole
        // array (16 MB held) per task; a 4 MiB limit forces an intermediate.
        let (shape, rows, cols) = ([1000, 1000], [100, 1000], [1000, 100]);
        let limit = 4 << 20;
        assert!(stage_bytes(&shape, &rows, &cols, DType::Float64) > limit);
        let stages = plan(&shape, &rows, &cols, DType::Float64, limit)?;
        assert_eq!(stages.len(), 2);
        let mid = &stages[0];
        assert!(stage_bytes(&shape, &rows, mid, DType::Float64) <= limit);
        assert!(stage_bytes(&shape, mid, &cols, DType::Float64) <= limit);
        // Too small a limit for even one chunk is one clear error.
        let err = plan(&shape, &rows, &cols, DType::Float64, 1 << 20).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("task memory limit"), "{err}");
        Ok(())
    }
}
