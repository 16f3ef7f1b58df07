//! Chunk grids: regular chunks per dimension (the last one smaller), the blocks of a grid, and
//! where blocks of one grid overlap blocks of another.

use crate::error::{Error, Result};
use shoal_protocol::DType;

/// Bytes a chunk should come near under `chunks = "auto"`, as the seed of the design fixes.
pub const AUTO_CHUNK_BYTES: u64 = 100_000_000;

/// How the user asks for chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunks {
    /// About [`AUTO_CHUNK_BYTES`] per chunk, as square as the shape allows.
    Auto,
    /// One size per dimension; the last chunk of a dimension may be smaller.
    Sizes(Vec<u64>),
}

impl From<Vec<u64>> for Chunks {
    fn from(v: Vec<u64>) -> Self {
        Chunks::Sizes(v)
    }
}

impl From<&[u64]> for Chunks {
    fn from(v: &[u64]) -> Self {
        Chunks::Sizes(v.to_vec())
    }
}

impl<const N: usize> From<[u64; N]> for Chunks {
    fn from(v: [u64; N]) -> Self {
        Chunks::Sizes(v.to_vec())
    }
}

/// The chunk sizes `chunks` means for an array of `shape` and `dtype`.
pub fn resolve(shape: &[u64], chunks: &Chunks, dtype: DType) -> Result<Vec<u64>> {
    match chunks {
        Chunks::Sizes(sizes) => {
            if sizes.len() != shape.len() {
                return Err(Error::Invalid(format!(
                    "chunks {sizes:?} have {} dimensions but the shape {shape:?} has {}",
                    sizes.len(),
                    shape.len()
                )));
            }
            if let Some((i, _)) = sizes.iter().enumerate().find(|&(i, &c)| c == 0 && shape[i] > 0) {
                return Err(Error::Invalid(format!("chunks {sizes:?}: dimension {i} has a chunk size of 0")));
            }
            // A chunk larger than its dimension is the whole dimension.
            Ok(sizes.iter().zip(shape).map(|(&c, &s)| c.min(s.max(1))).collect())
        }
        Chunks::Auto => Ok(auto(shape, dtype.size())),
    }
}

/// Chunks of about [`AUTO_CHUNK_BYTES`]: every dimension the same size where the shape allows,
/// dimensions smaller than that whole.
fn auto(shape: &[u64], itemsize: u64) -> Vec<u64> {
    let target = (AUTO_CHUNK_BYTES / itemsize.max(1)).max(1) as f64;
    let mut out: Vec<Option<u64>> = vec![None; shape.len()];
    loop {
        let fixed: f64 = out.iter().flatten().map(|&c| c.max(1) as f64).product();
        let free: Vec<usize> = (0..shape.len()).filter(|&i| out[i].is_none()).collect();
        if free.is_empty() {
            break;
        }
        let side = (target / fixed).powf(1.0 / free.len() as f64).floor().max(1.0) as u64;
        let small: Vec<usize> = free.iter().copied().filter(|&i| shape[i] <= side).collect();
        if small.is_empty() {
            for i in free {
                out[i] = Some(side);
            }
            break;
        }
        for i in small {
            out[i] = Some(shape[i].max(1));
        }
    }
    out.into_iter().map(|c| c.unwrap_or(1)).collect()
}

/// Number of blocks along a dimension of `size` in chunks of `chunk`.
pub fn blocks(size: u64, chunk: u64) -> u64 {
    if size == 0 { 1 } else { size.div_ceil(chunk.max(1)) }
}

/// The grid shape (blocks per dimension).
pub fn grid(shape: &[u64], chunks: &[u64]) -> Vec<u64> {
    shape.iter().zip(chunks).map(|(&s, &c)| blocks(s, c)).collect()
}

/// Every block index of a grid, in C order.
pub fn indices(grid: &[u64]) -> Vec<Vec<u64>> {
    let total: u64 = grid.iter().product();
    let mut out = Vec::with_capacity(total as usize);
    for mut flat in 0..total {
        let mut index = vec![0; grid.len()];
        for d in (0..grid.len()).rev() {
            index[d] = flat % grid[d];
            flat /= grid[d];
        }
        out.push(index);
    }
    out
}

/// The position of a block index in C order.
pub fn flat(index: &[u64], grid: &[u64]) -> usize {
    index.iter().zip(grid).fold(0u64, |acc, (&i, &g)| acc * g + i) as usize
}

/// The `start..end` of block `i` along a dimension.
pub fn range(size: u64, chunk: u64, i: u64) -> [u64; 2] {
    let start = (i * chunk).min(size);
    [start, (start + chunk).min(size)]
}

/// The region of block `index`.
pub fn region(shape: &[u64], chunks: &[u64], index: &[u64]) -> Vec<[u64; 2]> {
    (0..shape.len()).map(|d| range(shape[d], chunks[d], index[d])).collect()
}

/// The shape of block `index`.
pub fn block_shape(shape: &[u64], chunks: &[u64], index: &[u64]) -> Vec<u64> {
    region(shape, chunks, index).iter().map(|[a, b]| b - a).collect()
}

/// The blocks along a dimension (of chunks `chunk`) that `start..end` overlaps.
pub fn overlapping(chunk: u64, start: u64, end: u64) -> std::ops::Range<u64> {
    if end <= start {
        return 0..0;
    }
    let chunk = chunk.max(1);
    (start / chunk)..end.div_ceil(chunk)
}

/// The largest number of elements of a dimension that one block of `to` chunks reads when it
/// is assembled from whole blocks of `from` chunks (over every block of the dimension).
pub fn max_read(size: u64, from: u64, to: u64) -> u64 {
    (0..blocks(size, to))
        .map(|i| {
            let [a, b] = range(size, to, i);
            let r = overlapping(from, a, b);
            let [first, _] = range(size, from, r.start);
            let [_, last] = range(size, from, r.end.saturating_sub(1).max(r.start));
            last - first
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_chunks_are_near_100_mb_and_square() {
        let c = auto(&[100_000, 100_000], 8);
        assert_eq!(c, vec![3535, 3535]);
        assert!(c[0] * c[1] * 8 <= AUTO_CHUNK_BYTES);
        // A small dimension is whole; the other takes the rest.
        assert_eq!(auto(&[10, 100_000_000], 8), vec![10, 1_250_000]);
        assert_eq!(auto(&[5, 7], 8), vec![5, 7]);
    }

    #[test]
    fn reading_across_grids() {
        // Blocks of 4 assembled from blocks of 3 over 10 elements: [0,4) reads [0,6).
        assert_eq!(max_read(10, 3, 4), 6);
        assert_eq!(max_read(12, 4, 4), 4);
        assert_eq!(overlapping(3, 4, 8), 1..3);
        assert_eq!(indices(&[2, 2]), vec![vec![0, 0], vec![0, 1], vec![1, 0], vec![1, 1]]);
        assert_eq!(flat(&[1, 0], &[2, 2]), 2);
    }
}
