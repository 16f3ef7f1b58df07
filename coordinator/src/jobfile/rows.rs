//! Row-wise operations, one partition at a time: `filter`, `select`, `assign`, `head` and
//! `map_partitions`.

use super::env::Env;
use crate::collections::dataframe::DataFrame;
use crate::error::{Error, Result};
use serde::Deserialize;

/// `filter = "distance_km > 2"`: the rows where an SQL predicate holds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub filter: String,
}

impl Filter {
    pub fn apply(&self, input: DataFrame) -> Result<DataFrame> {
        input.filter(self.filter.as_str())
    }
}

/// `select = ["vendor", "fare"]`: these columns, in this order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Select {
    pub select: Vec<String>,
}

impl Select {
    pub fn apply(&self, input: DataFrame) -> Result<DataFrame> {
        input.select(&self.select)
    }
}

/// `assign = { tip = "fare * 0.15", total = "fare + tip" }`: columns added in file order, so
/// one may use the ones before it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assign {
    pub assign: toml::Table,
}

impl Assign {
    pub fn apply(&self, input: DataFrame) -> Result<DataFrame> {
        let mut df = input;
        for (col, expr) in &self.assign {
            let sql = expr
                .as_str()
                .ok_or_else(|| Error::Invalid(format!("assign.{col} must be an SQL expression string")))?;
            df = df.assign(col, sql)?;
        }
        Ok(df)
    }
}

/// `head = 10`: the first rows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    pub head: usize,
}

impl Head {
    pub fn apply(&self, input: DataFrame) -> DataFrame {
        input.head(self.head)
    }
}

/// `map_partitions = { module = "builtin:examples", function = "f", args = { ... } }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapPartitions {
    pub map_partitions: MapPartitionsSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapPartitionsSpec {
    /// `builtin:examples`, or a path/URL of a `.wasm` component.
    pub module: String,
    pub function: String,
    /// The function's JSON arguments (default `{}`), read as JSON while the file is parsed.
    #[serde(default)]
    pub args: Option<serde_json::Value>,
}

impl MapPartitions {
    pub async fn apply(&self, input: DataFrame, env: &mut Env<'_>) -> Result<DataFrame> {
        let spec = &self.map_partitions;
        let module = env.module(&spec.module).await?;
        let args = spec.args.clone().unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        input.map_partitions(&module, &spec.function, args)
    }
}

/// `apply = { module = "builtin:examples", function = "row_total", args = { ... }, output = {
/// total = "float64" } }`: row-wise apply; the output columns are added in name order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Apply {
    pub apply: ApplySpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplySpec {
    /// `builtin:examples`, or a path/URL of a `.wasm` component.
    pub module: String,
    pub function: String,
    /// The function's JSON keyword arguments (default `{}`).
    #[serde(default)]
    pub args: Option<serde_json::Value>,
    /// The columns the function returns and their types, as `dtype` names them.
    pub output: std::collections::BTreeMap<String, String>,
}

impl Apply {
    pub async fn apply(&self, input: DataFrame, env: &mut Env<'_>) -> Result<DataFrame> {
        let spec = &self.apply;
        let module = env.module(&spec.module).await?;
        let args = spec.args.clone().unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        let output: Vec<(&str, &str)> = spec.output.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        input.apply(&module, &spec.function, args, &output)
    }
}
