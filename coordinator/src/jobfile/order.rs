//! Ordering and partitioning: `sort_values`, `set_index`, `nlargest`, `nsmallest` and
//! `repartition`.

use crate::collections::dataframe::DataFrame;
use crate::error::{Error, Result};
use serde::Deserialize;
use shoal_protocol::SortKey;

/// `sort_values = { by = ["a", "b"], ascending = [true, false], na_position = "last" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SortValues {
    pub sort_values: SortSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SortSpec {
    pub by: Vec<String>,
    /// One flag for all keys, or one per key (default true).
    pub ascending: Option<toml::Value>,
    /// `first` or `last` (default).
    pub na_position: Option<String>,
    pub npartitions: Option<usize>,
}

impl SortSpec {
    pub fn keys(&self) -> Result<Vec<SortKey>> {
        let bad = |msg: String| Error::Invalid(format!("sort_values: {msg}"));
        let ascending: Vec<bool> = match &self.ascending {
            None => vec![true; self.by.len()],
            Some(toml::Value::Boolean(b)) => vec![*b; self.by.len()],
            Some(toml::Value::Array(v)) if v.len() == self.by.len() => v
                .iter()
                .map(|x| x.as_bool().ok_or_else(|| bad("ascending must hold booleans".into())))
                .collect::<Result<_>>()?,
            Some(_) => return Err(bad("ascending must be a boolean or one boolean per `by` column".into())),
        };
        let nulls_first = match self.na_position.as_deref() {
            None | Some("last") => false,
            Some("first") => true,
            Some(other) => return Err(bad(format!("na_position must be 'first' or 'last', not '{other}'"))),
        };
        Ok(self
            .by
            .iter()
            .zip(ascending)
            .map(|(c, ascending)| SortKey { column: c.clone(), ascending, nulls_first })
            .collect())
    }
}

impl SortValues {
    pub fn apply(&self, input: DataFrame) -> Result<DataFrame> {
        let keys = self.sort_values.keys()?;
        match self.sort_values.npartitions {
            Some(n) => input.sort_values_into(&keys, n),
            None => input.sort_values(&keys),
        }
    }
}

/// `set_index = "ts"`: sorted by this column, which becomes the index (range partitions with
/// recorded divisions).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetIndex {
    pub set_index: String,
}

impl SetIndex {
    pub fn apply(&self, input: DataFrame) -> Result<DataFrame> {
        input.set_index(&self.set_index)
    }
}

/// `nlargest = { n = 5, columns = ["fare"] }` (and `nsmallest`, the same keys).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopSpec {
    pub n: usize,
    pub columns: Vec<String>,
}

/// `nlargest = { n = 5, columns = ["fare"] }`: the rows with the largest values.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nlargest {
    pub nlargest: TopSpec,
}

impl Nlargest {
    pub fn apply(&self, input: DataFrame) -> Result<DataFrame> {
        input.nlargest(self.nlargest.n, &self.nlargest.columns)
    }
}

/// `nsmallest = { n = 5, columns = ["fare"] }`: the rows with the smallest values.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nsmallest {
    pub nsmallest: TopSpec,
}

impl Nsmallest {
    pub fn apply(&self, input: DataFrame) -> Result<DataFrame> {
        input.nsmallest(self.nsmallest.n, &self.nsmallest.columns)
    }
}

/// `repartition = { npartitions = 8 }` or `repartition = { partition_size = "100MB" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repartition {
    pub repartition: RepartitionSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepartitionSpec {
    pub npartitions: Option<usize>,
    pub partition_size: Option<String>,
}

impl Repartition {
    pub fn apply(&self, input: DataFrame) -> Result<DataFrame> {
        match (self.repartition.npartitions, &self.repartition.partition_size) {
            (Some(n), None) => Ok(input.repartition(n)),
            (None, Some(size)) => Ok(input.repartition_size(crate::units::parse_size(size)?)),
            _ => Err(Error::Invalid(
                "repartition needs exactly one of `npartitions` or `partition_size`".into(),
            )),
        }
    }
}
