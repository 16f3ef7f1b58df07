//! `merge`: a join of `from` (the left side) with another dataset (`right`).

use super::env::Env;
use crate::JoinHint;
use crate::collections::dataframe::{DataFrame, Merge as MergeOptions};
use crate::error::{Error, Result};
use serde::Deserialize;
use shoal_protocol::JoinHow;

/// `merge = { right = "zones", on = ["zone_id"], how = "left" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Merge {
    pub merge: MergeSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeSpec {
    /// The right side (a dataset name); the left side is `from`.
    pub right: String,
    pub on: Option<Vec<String>>,
    pub left_on: Option<Vec<String>>,
    pub right_on: Option<Vec<String>>,
    /// inner (default), left, right, outer, semi, anti.
    pub how: Option<String>,
    pub suffixes: Option<(String, String)>,
    /// broadcast, partition_wise or hash (default: chosen by the optimizer).
    pub strategy: Option<String>,
    /// Output partitions of a hash join.
    pub npartitions: Option<usize>,
}

impl MergeSpec {
    pub fn options(&self) -> Result<MergeOptions> {
        let bad = |msg: String| Error::Invalid(format!("merge: {msg}"));
        let mut merge = match (&self.on, &self.left_on, &self.right_on) {
            (Some(on), None, None) => MergeOptions::on(on),
            (None, Some(l), Some(r)) => MergeOptions::left_right(l, r),
            _ => return Err(bad("give `on`, or both `left_on` and `right_on`".into())),
        };
        if let Some(how) = &self.how {
            merge = merge.how(JoinHow::parse(how).ok_or_else(|| {
                bad(format!("unknown how '{how}' (inner, left, right, outer, semi, anti)"))
            })?);
        }
        if let Some((l, r)) = &self.suffixes {
            merge = merge.suffixes(l, r);
        }
        if let Some(s) = &self.strategy {
            let hint = match s.as_str() {
                "broadcast" => JoinHint::Broadcast,
                "partition_wise" | "partition-wise" => JoinHint::PartitionWise,
                "hash" | "shuffle" => JoinHint::Hash,
                other => {
                    return Err(bad(format!("unknown strategy '{other}' (broadcast, partition_wise, hash)")));
                }
            };
            merge = merge.strategy(hint);
        }
        if let Some(n) = self.npartitions {
            merge = merge.npartitions(n);
        }
        Ok(merge)
    }
}

impl Merge {
    /// The dataset it reads besides `from`.
    pub fn right(&self) -> &str {
        &self.merge.right
    }

    pub fn apply(&self, input: DataFrame, env: &Env<'_>) -> Result<DataFrame> {
        let right = env.dataset(self.right())?;
        input.merge(&right, &self.merge.options()?)
    }
}
