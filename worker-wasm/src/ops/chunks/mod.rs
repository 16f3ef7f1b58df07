//! The `chunks` family: Array chunks (see `shoal_protocol::chunks` for how a chunk travels).
//! The only code that names `ChunkOp` variants.
//!
//! - [`dtype`]: NumPy's type promotion and each operation's result type (shared with the
//!   coordinator, which types expressions at plan time).
//! - [`chunk`]: chunks in memory (`ndarray` arrays in a computation type) and as tables.
//! - [`expr`]: fused elementwise expressions with broadcasting, and the generators.
//! - [`reduce`]: tree reductions over axes.
//! - [`layout`]: gathering pieces (rechunk, slicing) and transposing.
//! - [`linalg`]: `tensordot` / `matmul` on a gemm.
//! - [`blocks`]: `map_blocks` through a user function, and DataFrame rows as a chunk.

pub mod blocks;
pub mod chunk;
pub mod dtype;
pub mod expr;
pub mod layout;
pub mod linalg;
pub mod reduce;

use super::Functions;
use super::table::Sides;
use crate::error::{Error, Result};
use crate::io::Table;
use chunk::Chunk;
use shoal_protocol::{ChunkOp, Operator};
use std::collections::BTreeMap;

/// Runs a run of `chunks` operators over the task's main table and side tables.
pub async fn run(
    pipeline: &[Operator],
    input: Table,
    sides: &Sides,
    functions: &mut impl Functions,
) -> Result<Table> {
    let mut table = input;
    for (i, op) in pipeline.iter().enumerate() {
        let Operator::Chunks(op) = op else {
            return Err(Error::InvalidTask(format!("a {} operator in a run of chunks", op.family())));
        };
        // Side tables feed the first operator only: later ones work on what it made.
        let sides = if i == 0 { sides } else { &BTreeMap::new() };
        table = apply(op, table, sides, functions).await?;
    }
    Ok(table)
}

async fn apply(op: &ChunkOp, main: Table, sides: &Sides, functions: &mut impl Functions) -> Result<Table> {
    let chunk = match op {
        ChunkOp::Map { expr, shape, dtype } => {
            expr::evaluate(expr, &usizes(shape), *dtype, &ports(&main, sides)?)?
        }
        ChunkOp::Reduce { reduction, step, axes, keepdims, dtype, offset, shape } => {
            let inputs: Vec<&Table> = std::iter::once(&main).chain(sides.values()).collect();
            return reduce::step(reduction, *step, axes, *keepdims, *dtype, offset, shape, &inputs);
        }
        ChunkOp::Gather { shape, pieces, squeeze, dtype } => {
            layout::gather(&usizes(shape), pieces, squeeze, *dtype, &ports(&main, sides)?)?
        }
        ChunkOp::Transpose { axes } => layout::transpose(chunk::from_table(&main)?, axes)?,
        ChunkOp::TensorDot { left, right, dtype } => {
            let ports = ports(&main, sides)?;
            let (Some(a), Some(b)) = (ports.get(&0), ports.get(&1)) else {
                return Err(Error::InvalidTask("tensordot reads ports 0 and 1".into()));
            };
            linalg::tensordot(a, b, left, right, *dtype)?
        }
        ChunkOp::MapBlocks { function, block_index, shape, dtype, json: false } => {
            blocks::map_blocks(&main, function, block_index, shape, *dtype, functions).await?
        }
        ChunkOp::MapBlocks { function, block_index, shape, dtype, json: true } => {
            blocks::map_blocks_json(
                &chunk::from_table(&main)?,
                function,
                block_index,
                shape,
                *dtype,
                functions,
            )
            .await?
        }
        ChunkOp::FromRows { columns, dtype } => blocks::from_rows(&main, columns, *dtype)?,
    };
    chunk::to_table(&chunk)
}

fn usizes(v: &[u64]) -> Vec<usize> {
    v.iter().map(|&d| d as usize).collect()
}

/// The chunks on the task's ports: the main table (when it is one) on 0, side tables on theirs.
fn ports(main: &Table, sides: &Sides) -> Result<BTreeMap<u32, Chunk>> {
    let mut out = BTreeMap::new();
    if !main.0.fields().is_empty() {
        out.insert(0, chunk::from_table(main)?);
    }
    for (&port, table) in sides {
        out.insert(port, chunk::from_table(table)?);
    }
    Ok(out)
}

/// Whether a task running `pipeline` needs a main input: an expression of generators reads
/// nothing.
pub fn needs_main_input(pipeline: &[Operator]) -> bool {
    match pipeline.first() {
        Some(Operator::Chunks(ChunkOp::Map { expr, .. })) => reads_port(expr, 0),
        Some(Operator::Chunks(ChunkOp::Gather { pieces, .. })) => pieces.iter().any(|p| p.port == 0),
        _ => true,
    }
}

fn reads_port(expr: &shoal_protocol::ChunkExpr, port: u32) -> bool {
    use shoal_protocol::ChunkExpr::*;
    match expr {
        Port { port: p } => *p == port,
        Unary { arg, .. } | Cast { arg, .. } => reads_port(arg, port),
        Binary { left, right, .. } => reads_port(left, port) || reads_port(right, port),
        Where { condition, then, otherwise } => {
            reads_port(condition, port) || reads_port(then, port) || reads_port(otherwise, port)
        }
        _ => false,
    }
}
