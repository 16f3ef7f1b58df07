//! The `items` family: Bag partitions, items as JSON text in one column.

use super::Functions;
use super::table::Sides;
use crate::error::{Error, Result};
use crate::io::Table;
use shoal_protocol::Operator;

/// Runs a run of `items` operators.
pub async fn run(
    pipeline: &[Operator],
    _input: Table,
    _sides: &Sides,
    _functions: &mut impl Functions,
) -> Result<Table> {
    Err(Error::InvalidTask(format!("{} items operators: not built yet", pipeline.len())))
}
