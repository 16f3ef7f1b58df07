//! Reductions: `agg` (with `groupby`, `split_out`, `split_every`), `value_counts` and
//! `drop_duplicates`.

use crate::collections::dataframe::{Agg, DataFrame, agg_sql};
use crate::error::{Error, Result};
use serde::Deserialize;

/// `agg = { revenue = ["total", "sum"], p90 = "approx_percentile_cont(0.9) WITHIN GROUP (ORDER BY total)" }`,
/// by the `groupby` columns if given (else the whole table reduces to one row).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aggregate {
    /// Named aggregations: `name = ["column", "func"]` (pandas' named aggregation) or
    /// `name = "SQL aggregate expression"`.
    pub agg: toml::Table,
    /// Grouping columns.
    pub groupby: Option<Vec<String>>,
    /// Output partitions of a group-by (more than 1: hash shuffle; 1: tree reduction).
    pub split_out: Option<usize>,
    /// Inputs per combine task of a tree reduction.
    pub split_every: Option<usize>,
}

impl Aggregate {
    /// The aggregations, in file order.
    pub fn aggs(&self) -> Result<Vec<Agg>> {
        if self.agg.is_empty() {
            return Err(Error::Invalid("agg is empty".into()));
        }
        let shape = |out: &str| {
            Error::Invalid(format!("agg.{out} must be [\"column\", \"function\"] or an SQL string"))
        };
        self.agg
            .iter()
            .map(|(out, v)| match v {
                toml::Value::String(sql) => Ok(Agg::sql(out, sql)),
                toml::Value::Array(pair) => match pair.as_slice() {
                    [toml::Value::String(col), toml::Value::String(func)] => {
                        Ok(Agg { name: out.clone(), sql: agg_sql(col, func)? })
                    }
                    _ => Err(shape(out)),
                },
                _ => Err(shape(out)),
            })
            .collect()
    }

    pub fn apply(&self, input: DataFrame) -> Result<DataFrame> {
        let aggs = self.aggs()?;
        let Some(keys) = &self.groupby else {
            return input.agg(&aggs);
        };
        let mut g = input.groupby(keys);
        if let Some(n) = self.split_out {
            g = g.split_out(n);
        }
        if let Some(n) = self.split_every {
            g = g.split_every(n);
        }
        g.agg(&aggs)
    }
}

/// `value_counts = "vendor"`: the distinct values of a column and how often each occurs, most
/// frequent first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueCounts {
    pub value_counts: String,
}

impl ValueCounts {
    pub fn apply(&self, input: DataFrame) -> Result<DataFrame> {
        input.value_counts(&self.value_counts)
    }
}

/// `drop_duplicates = true` (distinct rows) or `drop_duplicates = ["a", "b"]` (the columns
/// that define a duplicate).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropDuplicates {
    pub drop_duplicates: toml::Value,
}

impl DropDuplicates {
    /// The columns that define a duplicate; `None` for whole rows.
    pub fn subset(&self) -> Result<Option<Vec<&str>>> {
        match &self.drop_duplicates {
            toml::Value::Boolean(true) => Ok(None),
            toml::Value::Array(cols) => cols
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    c.as_str().ok_or_else(|| {
                        Error::Invalid(format!(
                            "drop_duplicates: entry {} ({c}) is not a column name (a string)",
                            i + 1
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            _ => Err(Error::Invalid("drop_duplicates must be `true` or a list of column names".into())),
        }
    }

    pub fn apply(&self, input: DataFrame) -> Result<DataFrame> {
        input.drop_duplicates(self.subset()?.as_deref())
    }
}
