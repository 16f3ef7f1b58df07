//! Operators that move elements without computing on them: assembling a chunk from pieces of
//! others (rechunk, slicing) and permuting axes.

use super::chunk::{self, Chunk, Data};
use crate::error::{Error, Result};
use ndarray::{ArrayD, IxDyn, SliceInfoElem};
use shoal_protocol::{DType, Piece, SliceDim};
use std::collections::BTreeMap;

/// A chunk of `shape` and `dtype` assembled from `pieces` of the chunks on their ports, then
/// with the axes `squeeze` (of size 1) dropped.
pub fn gather(
    shape: &[usize],
    pieces: &[Piece],
    squeeze: &[usize],
    dtype: DType,
    ports: &BTreeMap<u32, Chunk>,
) -> Result<Chunk> {
    let template = Chunk::new(dtype, Data::Float(ArrayD::zeros(IxDyn(&[])))).cast(dtype);
    let mut out = match template.data {
        Data::Bool(_) => Data::Bool(ArrayD::from_elem(IxDyn(shape), false)),
        Data::Int(_) => Data::Int(ArrayD::zeros(IxDyn(shape))),
        Data::Float(_) => Data::Float(ArrayD::zeros(IxDyn(shape))),
    };
    for piece in pieces {
        let source = ports.get(&piece.port).ok_or_else(|| {
            Error::InvalidTask(format!("a gather reads port {}, which no input feeds", piece.port))
        })?;
        if source.dtype != dtype {
            return Err(Error::InvalidTask(format!(
                "a gather of {dtype} got a chunk of {} on port {}",
                source.dtype, piece.port
            )));
        }
        if piece.src.len() != source.shape().len() || piece.dst.len() != shape.len() {
            return Err(Error::InvalidTask("a gather piece of the wrong number of dimensions".into()));
        }
        let src = src_slices(&piece.src, source.shape())?;
        let dst: Vec<SliceInfoElem> = piece
            .dst
            .iter()
            .map(|[a, b]| SliceInfoElem::Slice { start: *a as isize, end: Some(*b as isize), step: 1 })
            .collect();
        match (&mut out, &source.data) {
            (Data::Bool(o), Data::Bool(s)) => copy(o, s, &src, &dst)?,
            (Data::Int(o), Data::Int(s)) => copy(o, s, &src, &dst)?,
            (Data::Float(o), Data::Float(s)) => copy(o, s, &src, &dst)?,
            _ => return Err(Error::InvalidTask("a gather piece of another computation type".into())),
        }
    }
    let kept: Vec<usize> =
        shape.iter().enumerate().filter(|(i, _)| !squeeze.contains(i)).map(|(_, &d)| d).collect();
    let data = if squeeze.is_empty() { out } else { chunk::reshape(out, &kept)? };
    Ok(Chunk { dtype, data })
}

/// ndarray slices for strided ranges; a negative step is the forward range from the last
/// element walked in reverse, which is how ndarray reads a negative step.
fn src_slices(src: &[SliceDim], shape: &[usize]) -> Result<Vec<SliceInfoElem>> {
    src.iter()
        .zip(shape)
        .map(|(d, &len)| {
            if d.count == 0 {
                return Ok(SliceInfoElem::Slice { start: 0, end: Some(0), step: 1 });
            }
            let span = d.step.unsigned_abs() * (d.count - 1);
            let (low, high) =
                if d.step >= 0 { (d.start, d.start + span) } else { (d.start.saturating_sub(span), d.start) };
            if high >= len as u64 || (d.step < 0 && span > d.start) || d.step == 0 {
                return Err(Error::InvalidTask(format!(
                    "a gather slice {d:?} outside a chunk dimension of {len}"
                )));
            }
            let step = if d.step >= 0 { d.step.max(1) as isize } else { d.step as isize };
            Ok(SliceInfoElem::Slice { start: low as isize, end: Some(high as isize + 1), step })
        })
        .collect()
}

fn copy<T: Clone>(
    out: &mut ArrayD<T>,
    src: &ArrayD<T>,
    from: &[SliceInfoElem],
    to: &[SliceInfoElem],
) -> Result<()> {
    let from = src.slice(from);
    let mut to = out.slice_mut(to);
    if from.shape() != to.shape() {
        return Err(Error::InvalidTask(format!(
            "a gather piece of shape {:?} does not fit its place of shape {:?}",
            from.shape(),
            to.shape()
        )));
    }
    to.assign(&from);
    Ok(())
}

/// `chunk` with its axes permuted.
pub fn transpose(chunk: Chunk, axes: &[usize]) -> Result<Chunk> {
    let ndim = chunk.shape().len();
    let mut sorted = axes.to_vec();
    sorted.sort_unstable();
    if sorted != (0..ndim).collect::<Vec<_>>() {
        return Err(Error::InvalidTask(format!(
            "transpose axes {axes:?} are not a permutation of {ndim} axes"
        )));
    }
    fn go<T: Clone>(a: ArrayD<T>, axes: &[usize]) -> ArrayD<T> {
        a.permuted_axes(IxDyn(axes)).as_standard_layout().into_owned()
    }
    let data = match chunk.data {
        Data::Bool(a) => Data::Bool(go(a, axes)),
        Data::Int(a) => Data::Int(go(a, axes)),
        Data::Float(a) => Data::Float(go(a, axes)),
    };
    Ok(Chunk { dtype: chunk.dtype, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reversed_strided_piece() -> Result<()> {
        let source = Chunk::new(
            DType::Int64,
            Data::Int(
                ArrayD::from_shape_vec(IxDyn(&[6]), (0..6).collect())
                    .map_err(|e| Error::InvalidTask(e.to_string()))?,
            ),
        );
        let ports = BTreeMap::from([(0, source)]);
        // x[5:0:-2] = [5, 3, 1], placed at 1..4 of a chunk of 4.
        let piece =
            Piece { port: 0, src: vec![SliceDim { start: 5, step: -2, count: 3 }], dst: vec![[1, 4]] };
        let out = gather(&[4], &[piece], &[], DType::Int64, &ports)?;
        assert_eq!(out.data.to_int().iter().copied().collect::<Vec<_>>(), vec![0, 5, 3, 1]);
        Ok(())
    }
}
