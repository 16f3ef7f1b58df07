//! Conversions between Arrow schemas and the wire's [`Field`] lists.

use crate::error::{Error, Result};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use shoal_protocol::Field;
use std::str::FromStr;
use std::sync::Arc;

/// Arrow schema → wire fields (data types in Arrow's `Display` form).
pub fn to_fields(schema: &Schema) -> Vec<Field> {
    schema
        .fields()
        .iter()
        .map(|f| Field {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            nullable: f.is_nullable(),
        })
        .collect()
}

/// Wire fields → Arrow schema.
pub fn from_fields(fields: &[Field]) -> Result<SchemaRef> {
    let fields = fields
        .iter()
        .map(|f| {
            let dt = DataType::from_str(&f.data_type).map_err(|e| {
                Error::InvalidTask(format!("column '{}': bad type '{}': {e}", f.name, f.data_type))
            })?;
            Ok(arrow::datatypes::Field::new(&f.name, dt, f.nullable))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::TimeUnit;

    #[test]
    fn types_round_trip() {
        let schema = Schema::new(vec![
            arrow::datatypes::Field::new("a", DataType::Int64, true),
            arrow::datatypes::Field::new("b", DataType::Decimal128(12, 2), false),
            arrow::datatypes::Field::new(
                "c",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            arrow::datatypes::Field::new("d", DataType::Date32, true),
            arrow::datatypes::Field::new("e", DataType::Utf8View, true),
        ]);
        let back = from_fields(&to_fields(&schema)).unwrap();
        assert_eq!(back.as_ref(), &schema);
    }
}
