//! Types as users write them (`dtype = { zip = "string" }`, pandas, NumPy and SQL names), and
//! how types inferred from different files widen to one (integers → floats → text; for
//! Parquet's schema union, integers and floats to their wider kind).

use crate::error::{Error, Result};
use arrow::datatypes::{DataType, Field, Schema};

/// `schema` with the given columns' types replaced; a column it lacks is an error naming it.
pub(super) fn with_types(schema: Schema, types: &[(String, DataType)]) -> Result<Schema> {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (column, data_type) in types {
        let field = fields.iter_mut().find(|f| f.name() == column).ok_or_else(|| {
            Error::Schema(format!(
                "dtype: no column '{column}' (columns: {})",
                schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?;
        *field = Field::new(column, data_type.clone(), true);
    }
    Ok(Schema::new(fields))
}

/// A type as pandas, NumPy and SQL users write it: `int64`, `float64`/`double`, `string`/`str`,
/// `bool`, `date`, `timestamp`/`datetime64`, …
pub fn parse_dtype(name: &str) -> Result<DataType> {
    use arrow::datatypes::TimeUnit;
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "int8" => DataType::Int8,
        "int16" => DataType::Int16,
        "int32" => DataType::Int32,
        "int64" | "int" | "integer" | "bigint" => DataType::Int64,
        "uint8" => DataType::UInt8,
        "uint16" => DataType::UInt16,
        "uint32" => DataType::UInt32,
        "uint64" => DataType::UInt64,
        "float32" | "float" | "real" => DataType::Float32,
        "float64" | "double" => DataType::Float64,
        "string" | "str" | "utf8" | "text" | "varchar" | "object" => DataType::Utf8,
        "bool" | "boolean" => DataType::Boolean,
        "date" | "date32" => DataType::Date32,
        "timestamp" | "datetime" | "datetime64" | "datetime64[ns]" => {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        }
        other => {
            return Err(Error::Invalid(format!(
                "dtype '{other}' is not a type (int8 … int64, uint8 … uint64, float32, float64, string, bool, date, \
                 timestamp)"
            )));
        }
    })
}

/// `a` (inferred from `a_url`) and `b` (from `b_url`) as one schema: the same columns in the
/// same order, each of the wider of the two types.
pub(super) fn widen_schema(a: &Schema, a_url: &str, b: &Schema, b_url: &str) -> Result<Schema> {
    let names = |s: &Schema| s.fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>();
    if names(a) != names(b) {
        return Err(Error::Schema(format!(
            "CSV files disagree on their columns: {a_url} has [{}], {b_url} has [{}]",
            names(a).join(", "),
            names(b).join(", ")
        )));
    }
    let fields: Vec<Field> = a
        .fields()
        .iter()
        .zip(b.fields())
        .map(|(x, y)| Field::new(x.name(), widen(x.data_type(), y.data_type()), true))
        .collect();
    Ok(Schema::new(fields))
}

/// The narrowest type both values fit: equal types stay, nulls take the other, integers widen
/// to floats, anything else to text.
fn widen(a: &DataType, b: &DataType) -> DataType {
    match (a, b) {
        (x, y) if x == y => x.clone(),
        (DataType::Null, other) | (other, DataType::Null) => other.clone(),
        (DataType::Int64, DataType::Float64) | (DataType::Float64, DataType::Int64) => DataType::Float64,
        _ => DataType::Utf8,
    }
}

/// The type a Parquet column of types `a` and `b` in two files is read as under
/// `schema = "union"`: the wider of two integers or two floats, float64 for an integer and a
/// float, text for two kinds of text; `None` for anything else (not widened silently).
pub(super) fn widen_parquet(a: &DataType, b: &DataType) -> Option<DataType> {
    use DataType::*;
    let int_rank = |t: &DataType| match t {
        Int8 => Some(1),
        Int16 => Some(2),
        Int32 => Some(3),
        Int64 => Some(4),
        _ => None,
    };
    Some(match (a, b) {
        (x, y) if x == y => x.clone(),
        (Null, other) | (other, Null) => other.clone(),
        (x, y) if int_rank(x).is_some() && int_rank(y).is_some() => {
            if int_rank(x) >= int_rank(y) {
                x.clone()
            } else {
                y.clone()
            }
        }
        (Float32, Float64) | (Float64, Float32) => Float64,
        (x, Float32 | Float64) | (Float32 | Float64, x) if int_rank(x).is_some() => Float64,
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) => LargeUtf8,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtypes_parse_as_pandas_and_sql_write_them() {
        assert_eq!(parse_dtype("Int64").unwrap(), DataType::Int64);
        assert_eq!(parse_dtype("double").unwrap(), DataType::Float64);
        assert_eq!(parse_dtype("str").unwrap(), DataType::Utf8);
        let err = parse_dtype("decimal(3)").unwrap_err().to_string();
        assert!(err.contains("decimal(3)") && err.contains("float64"), "{err}");
        let s = Schema::new(vec![Field::new("a", DataType::Int64, true)]);
        let err = with_types(s, &[("b".into(), DataType::Utf8)]).unwrap_err().to_string();
        assert!(err.contains("no column 'b'") && err.contains("columns: a"), "{err}");
    }

    #[test]
    fn csv_types_widen_integers_to_floats_and_anything_else_to_text() {
        use DataType::*;
        assert_eq!(widen(&Int64, &Int64), Int64);
        assert_eq!(widen(&Int64, &Float64), Float64);
        assert_eq!(widen(&Null, &Boolean), Boolean);
        assert_eq!(widen(&Float64, &Utf8), Utf8);
        assert_eq!(widen(&Boolean, &Int64), Utf8);
        let a = Schema::new(vec![Field::new("x", Int64, true)]);
        let b = Schema::new(vec![Field::new("y", Int64, true)]);
        let err = widen_schema(&a, "a.csv", &b, "b.csv").unwrap_err().to_string();
        assert!(err.contains("a.csv has [x]") && err.contains("b.csv has [y]"), "{err}");
    }
}
