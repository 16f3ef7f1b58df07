//! The `calls` family: Delayed values, each a call of a `Value` user function whose positional
//! arguments are JSON literals and the values on input ports.

use super::Functions;
use super::table::Sides;
use crate::error::{Error, Result};
use crate::io::Table;
use shoal_protocol::Operator;

/// Runs a run of `calls` operators.
pub async fn run(
    pipeline: &[Operator],
    _input: Table,
    _sides: &Sides,
    _functions: &mut impl Functions,
) -> Result<Table> {
    Err(Error::InvalidTask(format!("{} calls operators: not built yet", pipeline.len())))
}
