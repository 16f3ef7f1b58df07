//! Reshaping kernels: `melt` turns one row of statistics into one row per statistic (the
//! shape of `describe`).

use super::partition::column;
use crate::error::{Error, Result};
use crate::io::Table;
use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef};
use std::sync::Arc;

/// The `Melt` kernel (see [`TableOp::Melt`](shoal_protocol::TableOp::Melt)).
pub fn melt(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    id: &str,
    rows: &[String],
    columns: &[(String, Vec<String>)],
) -> Result<Table> {
    use arrow::array::{Array, Float64Array, StringArray};
    use arrow::datatypes::Field;
    let all = arrow::compute::concat_batches(schema, batches).map_err(Error::arrow("melt: concatenating"))?;
    if all.num_rows() > 1 {
        return Err(Error::InvalidTask(format!(
            "melt expects one row of statistics, got {}",
            all.num_rows()
        )));
    }
    let mut fields = vec![Field::new(id, DataType::Utf8, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(rows))];
    for (name, sources) in columns {
        if sources.len() != rows.len() {
            return Err(Error::InvalidTask(format!("melt: column '{name}' has {} sources", sources.len())));
        }
        let mut values = Vec::with_capacity(sources.len());
        for source in sources {
            let col = column(&all, source)?;
            let col = cast(&col, &DataType::Float64).map_err(Error::arrow("melt: casting to Float64"))?;
            let col = col
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or_else(|| Error::Execution(format!("melt: '{source}' is not numeric")))?;
            values.push((col.len() == 1 && col.is_valid(0)).then(|| col.value(0)));
        }
        fields.push(Field::new(name, DataType::Float64, true));
        arrays.push(Arc::new(Float64Array::from(values)));
    }
    let schema = Arc::new(arrow::datatypes::Schema::new(fields));
    let batch =
        RecordBatch::try_new(schema.clone(), arrays).map_err(Error::arrow("melt: assembling the result"))?;
    Ok((schema, vec![batch]))
}
