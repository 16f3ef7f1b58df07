//! The operations a dataset can be built by: one variant per operation, named as in the job
//! file, each holding its family's struct (the operation's key and its modifiers). The enum only
//! dispatches; parsing and application live with each family.

use super::aggregate::{Aggregate, DropDuplicates, ValueCounts};
use super::env::Env;
use super::join::Merge;
use super::names;
use super::order::{Nlargest, Nsmallest, Repartition, SetIndex, SortValues};
use super::read::{ReadCsv, ReadJson, ReadParquet};
use super::rows::{Apply, Assign, Filter, Head, MapPartitions, Select};
use crate::collections::dataframe::DataFrame;
use crate::error::Result;
use serde::Deserialize;
use std::sync::LazyLock;

/// One operation with its keys. Deserialized from `{ "<operation>": { <the dataset's keys> } }`:
/// serde picks the variant by the operation's name and each variant's struct rejects keys that
/// are not its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    ReadParquet(ReadParquet),
    ReadCsv(ReadCsv),
    ReadJson(ReadJson),
    Filter(Filter),
    Select(Select),
    Assign(Assign),
    MapPartitions(MapPartitions),
    Apply(Apply),
    Head(Head),
    Agg(Aggregate),
    Merge(Merge),
    SortValues(SortValues),
    SetIndex(SetIndex),
    Repartition(Repartition),
    Nlargest(Nlargest),
    Nsmallest(Nsmallest),
    ValueCounts(ValueCounts),
    DropDuplicates(DropDuplicates),
}

/// An operation's name and every key its struct takes (its own name among them).
#[derive(Debug)]
pub struct Keys {
    pub name: &'static str,
    pub keys: &'static [&'static str],
}

impl Keys {
    /// The keys besides the operation's own (`groupby` for `agg`).
    pub fn modifiers(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.keys.iter().copied().filter(|k| *k != self.name)
    }
}

/// Every operation's keys, in declaration order, read from the enum's serde names.
pub static OPERATIONS: LazyLock<Vec<Keys>> = LazyLock::new(|| {
    names::variants::<Operation>()
        .iter()
        .zip(0u32..)
        .map(|(name, i)| Keys { name, keys: names::variant_fields::<Operation>(i) })
        .collect()
});

impl Operation {
    /// Whether it reads storage (and so takes no `from`).
    pub fn is_read(&self) -> bool {
        matches!(self, Operation::ReadParquet(_) | Operation::ReadCsv(_) | Operation::ReadJson(_))
    }

    /// The datasets it reads besides `from`.
    pub fn other_inputs(&self) -> Option<&str> {
        match self {
            Operation::Merge(m) => Some(m.right()),
            _ => None,
        }
    }

    /// Builds the dataset: `env` holds its input and everything else the operation may use.
    pub async fn apply(&self, env: &mut Env<'_>) -> Result<DataFrame> {
        match self {
            Operation::ReadParquet(op) => op.apply(env).await,
            Operation::ReadCsv(op) => op.apply(env).await,
            Operation::ReadJson(op) => op.apply(env).await,
            Operation::Filter(op) => op.apply(env.input()?),
            Operation::Select(op) => op.apply(env.input()?),
            Operation::Assign(op) => op.apply(env.input()?),
            Operation::MapPartitions(op) => op.apply(env.input()?, env).await,
            Operation::Apply(op) => op.apply(env.input()?, env).await,
            Operation::Head(op) => Ok(op.apply(env.input()?)),
            Operation::Agg(op) => op.apply(env.input()?),
            Operation::Merge(op) => op.apply(env.input()?, env),
            Operation::SortValues(op) => op.apply(env.input()?),
            Operation::SetIndex(op) => op.apply(env.input()?),
            Operation::Repartition(op) => op.apply(env.input()?),
            Operation::Nlargest(op) => op.apply(env.input()?),
            Operation::Nsmallest(op) => op.apply(env.input()?),
            Operation::ValueCounts(op) => op.apply(env.input()?),
            Operation::DropDuplicates(op) => op.apply(env.input()?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_keyed_by_its_name() {
        let names: Vec<_> = OPERATIONS.iter().map(|o| o.name).collect();
        assert_eq!(names.len(), 18, "{names:?}");
        assert_eq!(names[..3], ["read_parquet", "read_csv", "read_json"]);
        for op in OPERATIONS.iter() {
            assert!(op.keys.contains(&op.name), "{}: its struct has no field `{}`", op.name, op.name);
        }
        let agg = OPERATIONS.iter().find(|o| o.name == "agg").unwrap();
        assert_eq!(agg.modifiers().collect::<Vec<_>>(), ["groupby", "split_out", "split_every"]);
    }
}
