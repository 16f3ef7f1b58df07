//! Guest SDK for shoal functions.
//!
//! A shoal function is plain Rust. Its kind (`functions/wit/shoal.wit`) fixes what it works on:
//!
//! - **table** (DataFrame `map_partitions`): one Arrow [`RecordBatch`] in, one out —
//!   [`TableFn`], `fn(RecordBatch, &Args) -> Result<RecordBatch, String>`;
//! - **items** (Bag `map`, `filter`, DataFrame row-wise `apply`): one JSON item in, one value
//!   out — [`ItemFn`], `fn(Value, &Args) -> Result<Value, String>`, called by the SDK for each
//!   item of the batch a call carries;
//! - **binop** (Bag `fold`, `foldby`): `(accumulator, item) -> accumulator` — [`BinopFn`],
//!   `fn(Value, Value, &Args) -> Result<Value, String>`, folded by the SDK over each pair's items;
//! - **value** (Delayed): the positional inputs in, one value out — [`ValueFn`],
//!   `fn(Vec<Value>, &Args) -> Result<Value, String>`.
//!
//! ```ignore
//! use shoal_guest::{Args, RecordBatch, Value};
//!
//! fn double(batch: RecordBatch, args: &Args) -> Result<RecordBatch, String> {
//!     let column = args.str("column")?;
//!     // ... Arrow kernels ...
//!     Ok(batch)
//! }
//! fn inc(item: Value, args: &Args) -> Result<Value, String> { /* ... */ Ok(item) }
//! fn add(acc: Value, item: Value, args: &Args) -> Result<Value, String> { /* ... */ Ok(acc) }
//! fn add_values(inputs: Vec<Value>, args: &Args) -> Result<Value, String> { /* ... */ Ok(Value::Null) }
//!
//! shoal_guest::register! {
//!     "double" => ("doubles a column", double),               // table (the default)
//!     items "inc" => ("adds `by` to a number", inc),
//!     binop "add" => ("sums numbers", add),
//!     value "add_values" => ("sums its inputs", add_values),
//! }
//! ```
//!
//! [`register!`] generates the component export of the `shoal:function/functions@0.2.0`
//! interface (`functions/wit/shoal.wit`). The SDK hides the encoding: a table function's input
//! arrives as an Arrow IPC stream, is decoded and its batches concatenated into one batch (a
//! stream without batches becomes an empty batch with the stream's schema); the result is
//! encoded back as an IPC stream. Items, binop and value functions get and return
//! `serde_json::Value`s; the SDK decodes the JSON batch shapes of the WIT (see [`json`]) and
//! names the function — and for items and binops the index of the failing item — in an error.
//! The crate must be built as a `cdylib` for `wasm32-wasip2`, which makes rustc emit a
//! component directly.
//!
//! Guest panics abort the instance (a trap on the host side); return `Err` for user errors.

pub mod json;

use std::io::Cursor;
use std::sync::Arc;

pub use arrow_array::RecordBatch;
pub use serde_json::Value;

/// Bindings generated from `functions/wit/shoal.wit`. Public only so that [`register!`] can
/// reach them from the function crate.
#[doc(hidden)]
#[allow(unsafe_code, missing_debug_implementations, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "shoal-function",
        pub_export_macro: true,
        export_macro_name: "__shoal_export",
        default_bindings_module: "::shoal_guest::bindings",
    });
}

/// The exported interface's types and trait, re-exported for [`register!`].
#[doc(hidden)]
pub use bindings::exports::shoal::function::functions as wit;

/// A table function: one record batch and the arguments in, one record batch out.
pub type TableFn = fn(RecordBatch, &Args) -> Result<RecordBatch, String>;

/// The signature of a table function (its name before kinds existed).
pub type Function = TableFn;

/// An items function: one item in, its value out (the SDK maps it over a call's items).
pub type ItemFn = fn(Value, &Args) -> Result<Value, String>;

/// A binop function: `(accumulator, item) -> accumulator` (the SDK folds it over each pair).
pub type BinopFn = fn(Value, Value, &Args) -> Result<Value, String>;

/// A value function: the positional inputs in, one value out.
pub type ValueFn = fn(Vec<Value>, &Args) -> Result<Value, String>;

/// A registered function of any kind.
#[derive(Debug, Clone, Copy)]
pub enum Handler {
    Table(TableFn),
    Items(ItemFn),
    Binop(BinopFn),
    Value(ValueFn),
}

impl Handler {
    /// The kind the component declares for this function.
    pub fn kind(&self) -> wit::Kind {
        match self {
            Handler::Table(_) => wit::Kind::Table,
            Handler::Items(_) => wit::Kind::Items,
            Handler::Binop(_) => wit::Kind::Binop,
            Handler::Value(_) => wit::Kind::Value,
        }
    }
}

/// One registered function. Built by [`register!`].
#[derive(Debug, Clone, Copy)]
pub struct Registration {
    pub name: &'static str,
    pub description: &'static str,
    pub handler: Handler,
}

/// Registers functions and generates the component export.
///
/// Each entry is `[kind] "name" => ("description", function)`, where `kind` is one of
/// `table` (the default when left out), `items`, `binop` or `value`, and `function` has the
/// matching signature ([`TableFn`], [`ItemFn`], [`BinopFn`], [`ValueFn`]):
///
/// ```ignore
/// shoal_guest::register! {
///     "scale" => ("multiply a numeric column", scale),
///     items "inc" => ("adds `by` to a number", inc),
///     binop "add" => ("sums numbers", add),
///     value "mul" => ("multiplies its two inputs", mul),
/// }
/// ```
/// Use it once per crate.
#[macro_export]
macro_rules! register {
    ($($($kind:ident)? $name:literal => ($description:expr, $function:path)),* $(,)?) => {
        #[allow(unsafe_code)]
        const _: () = {
            static REGISTRY: &[$crate::Registration] = &[
                $($crate::Registration {
                    name: $name,
                    description: $description,
                    handler: $crate::__handler!($($kind)? $function),
                }),*
            ];

            struct ShoalComponent;

            impl $crate::wit::Guest for ShoalComponent {
                fn list_functions() -> ::std::vec::Vec<$crate::wit::FunctionInfo> {
                    $crate::list_functions(REGISTRY)
                }

                fn call(
                    name: ::std::string::String,
                    inputs: ::std::vec::Vec<::std::vec::Vec<u8>>,
                    args: ::std::string::String,
                ) -> ::std::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                    $crate::dispatch(REGISTRY, &name, &inputs, &args)
                }
            }

            $crate::bindings::__shoal_export!(ShoalComponent with_types_in $crate::bindings);
        };
    };
}

/// The [`Handler`] of one [`register!`] entry. Not for direct use.
#[doc(hidden)]
#[macro_export]
macro_rules! __handler {
    (table $function:path) => {
        $crate::Handler::Table($function)
    };
    (items $function:path) => {
        $crate::Handler::Items($function)
    };
    (binop $function:path) => {
        $crate::Handler::Binop($function)
    };
    (value $function:path) => {
        $crate::Handler::Value($function)
    };
    ($function:path) => {
        $crate::Handler::Table($function)
    };
}

/// Lists a registry in the WIT representation. Used by [`register!`].
#[doc(hidden)]
pub fn list_functions(registry: &[Registration]) -> Vec<wit::FunctionInfo> {
    registry
        .iter()
        .map(|r| wit::FunctionInfo {
            name: r.name.to_string(),
            kind: r.handler.kind(),
            description: r.description.to_string(),
        })
        .collect()
}

/// Decodes the inputs, runs the named function and encodes its result. Used by [`register!`].
pub fn dispatch(
    registry: &[Registration],
    name: &str,
    inputs: &[Vec<u8>],
    args: &str,
) -> Result<Vec<u8>, String> {
    let Some(registration) = registry.iter().find(|r| r.name == name) else {
        let names: Vec<&str> = registry.iter().map(|r| r.name).collect();
        return Err(format!("unknown function '{name}'; available: {}", names.join(", ")));
    };
    let args = Args::parse(args)?;
    match registration.handler {
        Handler::Table(function) => call_table(name, function, inputs, &args),
        Handler::Items(function) => json::call_items(name, function, inputs, &args),
        Handler::Binop(function) => json::call_binop(name, function, inputs, &args),
        Handler::Value(function) => json::call_value(name, function, inputs, &args),
    }
}

fn call_table(name: &str, function: TableFn, inputs: &[Vec<u8>], args: &Args) -> Result<Vec<u8>, String> {
    let batch = match inputs {
        [one] => decode_ipc_stream(one).map_err(|e| format!("input of '{name}': {e}"))?,
        _ => {
            return Err(format!("function '{name}' takes exactly one input, got {}", inputs.len()));
        }
    };
    let out = function(batch, args)?;
    encode_ipc_stream(&out).map_err(|e| format!("encoding the result of '{name}': {e}"))
}

/// Decodes an Arrow IPC stream into one batch (concatenating all its batches; a stream
/// without batches gives an empty batch with the stream's schema).
pub fn decode_ipc_stream(bytes: &[u8]) -> Result<RecordBatch, String> {
    let reader = arrow_ipc::reader::StreamReader::try_new(Cursor::new(bytes), None)
        .map_err(|e| format!("invalid Arrow IPC stream: {e}"))?;
    let schema = reader.schema();
    let mut batches =
        reader.collect::<Result<Vec<_>, _>>().map_err(|e| format!("invalid Arrow IPC stream: {e}"))?;
    match batches.len() {
        0 => Ok(RecordBatch::new_empty(schema)),
        1 => Ok(batches.swap_remove(0)),
        _ => arrow_select::concat::concat_batches(&schema, &batches)
            .map_err(|e| format!("concatenating input batches: {e}")),
    }
}

/// Encodes one batch as an Arrow IPC stream.
pub fn encode_ipc_stream(batch: &RecordBatch) -> Result<Vec<u8>, String> {
    let mut writer =
        arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema()).map_err(|e| e.to_string())?;
    writer.write(batch).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    writer.into_inner().map_err(|e| e.to_string())
}

/// A function's JSON arguments, with typed getters that give clear errors.
#[derive(Debug, Clone, Default)]
pub struct Args {
    value: Value,
}

impl Args {
    /// Parses JSON argument text; empty text means no arguments (`{}`).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::new(Value::Object(Default::default())));
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("arguments are not valid JSON: {e}"))?;
        Ok(Self::new(value))
    }

    pub fn new(value: Value) -> Self {
        Self { value }
    }

    /// The raw JSON value.
    pub fn json(&self) -> &Value {
        &self.value
    }

    /// An argument, or `None` when it is missing or `null`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.value.get(name).filter(|v| !v.is_null())
    }

    fn required(&self, name: &str) -> Result<&Value, String> {
        self.get(name).ok_or_else(|| format!("argument '{name}' is missing"))
    }

    /// A required string argument.
    pub fn str(&self, name: &str) -> Result<&str, String> {
        let v = self.required(name)?;
        v.as_str().ok_or_else(|| format!("argument '{name}' must be a string, got {v}"))
    }

    /// An optional string argument.
    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, String> {
        self.get(name).map(|_| self.str(name)).transpose()
    }

    /// A required number argument.
    pub fn f64(&self, name: &str) -> Result<f64, String> {
        let v = self.required(name)?;
        v.as_f64().ok_or_else(|| format!("argument '{name}' must be a number, got {v}"))
    }

    /// An optional number argument.
    pub fn opt_f64(&self, name: &str) -> Result<Option<f64>, String> {
        self.get(name).map(|_| self.f64(name)).transpose()
    }

    /// A required integer argument.
    pub fn i64(&self, name: &str) -> Result<i64, String> {
        let v = self.required(name)?;
        v.as_i64().ok_or_else(|| format!("argument '{name}' must be an integer, got {v}"))
    }

    /// An optional integer argument.
    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>, String> {
        self.get(name).map(|_| self.i64(name)).transpose()
    }

    /// A required boolean argument.
    pub fn bool(&self, name: &str) -> Result<bool, String> {
        let v = self.required(name)?;
        v.as_bool().ok_or_else(|| format!("argument '{name}' must be a boolean, got {v}"))
    }
}

/// Replaces the column called `name` in `batch`, or appends it when there is none.
pub fn with_column(
    batch: &RecordBatch,
    name: &str,
    array: arrow_array::ArrayRef,
) -> Result<RecordBatch, String> {
    let schema = batch.schema();
    let mut fields: Vec<arrow_schema::FieldRef> = schema.fields().iter().cloned().collect();
    let mut columns = batch.columns().to_vec();
    let field = Arc::new(arrow_schema::Field::new(
        name,
        array.data_type().clone(),
        array.null_count() > 0 || array.is_nullable(),
    ));
    match schema.index_of(name) {
        Ok(i) => {
            fields[i] = field;
            columns[i] = array;
        }
        Err(_) => {
            fields.push(field);
            columns.push(array);
        }
    }
    let schema = Arc::new(arrow_schema::Schema::new_with_metadata(fields, schema.metadata().clone()));
    RecordBatch::try_new(schema, columns).map_err(|e| format!("building the result batch: {e}"))
}

/// The column called `name`, or an error listing the batch's columns.
pub fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a arrow_array::ArrayRef, String> {
    batch.column_by_name(name).ok_or_else(|| {
        let names: Vec<&str> = batch.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
        format!("column '{name}' not found; columns: {}", names.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Int32Array};

    fn batch() -> RecordBatch {
        let a: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), None, Some(3)]));
        RecordBatch::try_from_iter([("a", a)]).unwrap()
    }

    fn echo(batch: RecordBatch, _args: &Args) -> Result<RecordBatch, String> {
        Ok(batch)
    }

    #[test]
    fn ipc_round_trip_and_dispatch() {
        let registry = [Registration { name: "echo", description: "", handler: Handler::Table(echo) }];
        let input = encode_ipc_stream(&batch()).unwrap();
        let out = dispatch(&registry, "echo", &[input], "{}").unwrap();
        assert_eq!(decode_ipc_stream(&out).unwrap(), batch());
        let err = dispatch(&registry, "nope", &[], "{}").unwrap_err();
        assert!(err.contains("available: echo"), "{err}");
    }

    #[test]
    fn args_errors_are_clear() {
        let args = Args::parse(r#"{"factor": "x"}"#).unwrap();
        assert_eq!(args.str("column").unwrap_err(), "argument 'column' is missing");
        assert!(args.f64("factor").unwrap_err().contains("must be a number"));
        assert_eq!(args.opt_f64("min").unwrap(), None);
    }
}
