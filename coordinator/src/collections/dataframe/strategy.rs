//! How each aggregation and join is distributed, from estimated sizes: tree reduction or hash
//! shuffle; broadcast, partition-wise, divisions-aligned or hash join. Each choice comes with
//! its reason, which `explain` prints.

use super::plan::{AggStrategy, AggregateNode, JoinHint, JoinNode, JoinStrategy, Plan, PlanConfig};
use crate::error::{Error, Result};
use crate::units::human_bytes;
use shoal_protocol::JoinHow;

pub(super) fn aggregate_strategy(a: &AggregateNode, config: &PlanConfig) -> (AggStrategy, String) {
    let tree = AggStrategy::Tree { split_every: a.split_every.unwrap_or(config.split_every).max(2) };
    if let Some(n) = a.split_out {
        if n > 1 && !a.keys.is_empty() {
            return (AggStrategy::Shuffle { split_out: n }, format!("split_out={n} requested"));
        }
        return (tree, "split_out=1 requested".into());
    }
    if a.keys.is_empty() {
        return (tree, "whole-table reduction".into());
    }
    match a.input.estimated_groups(&a.keys) {
        Some(groups) if groups > config.tree_max_groups => {
            let want = groups.div_ceil(config.tree_max_groups.max(1)) as usize;
            let split_out = want.clamp(2, a.input.partitions().max(2));
            let why = format!(
                "up to {groups} groups (from column statistics), more than the tree limit of {}",
                config.tree_max_groups
            );
            (AggStrategy::Shuffle { split_out }, why)
        }
        Some(groups) => (tree, format!("at most {groups} groups (from column statistics)")),
        None => (tree, "group count unknown; set split_out for many groups".into()),
    }
}

pub(super) fn join_strategy(j: &JoinNode, config: &PlanConfig) -> Result<(JoinStrategy, String)> {
    let (lb, rb) = (j.left.estimated_bytes(), j.right.estimated_bytes());
    let right_ok = matches!(j.how, JoinHow::Inner | JoinHow::Left | JoinHow::Semi | JoinHow::Anti);
    let left_ok = matches!(j.how, JoinHow::Inner | JoinHow::Right);
    let aligned = match (j.left.hash_partitioning(), j.right.hash_partitioning()) {
        (Some((lk, ln)), Some((rk, rn))) => lk == j.left_on && rk == j.right_on && ln == rn,
        _ => false,
    };
    // The left side is indexed by the (single) join key: align the right to its divisions.
    let indexed = j.left_on.len() == 1
        && matches!(&*j.left, Plan::Sort { keys, index: true, .. } if keys.len() == 1 && keys[0].column == j.left_on[0]);
    let hash = || {
        let n = j.npartitions.unwrap_or_else(|| j.left.partitions().max(j.right.partitions())).max(1);
        JoinStrategy::Hash { npartitions: n }
    };
    let how = j.how.as_str();
    match j.hint {
        Some(JoinHint::Broadcast) if right_ok => Ok((JoinStrategy::BroadcastRight, "requested".into())),
        Some(JoinHint::Broadcast) if left_ok => Ok((JoinStrategy::BroadcastLeft, "requested".into())),
        Some(JoinHint::Broadcast) => Err(Error::Invalid(format!(
            "merge: a broadcast join cannot compute how='{how}' (every row of both sides must be kept); \
             use strategy 'hash'"
        ))),
        Some(JoinHint::PartitionWise) if aligned => Ok((JoinStrategy::PartitionWise, "requested".into())),
        Some(JoinHint::PartitionWise) if indexed => Ok((
            JoinStrategy::Divisions,
            "requested; the left side is indexed by the key, the right is shuffled to its divisions".into(),
        )),
        Some(JoinHint::PartitionWise) => Err(Error::Invalid(
            "merge: a partition-wise join needs both sides hash-partitioned on the join keys into the \
             same number of partitions (for example both shuffled aggregations by those keys), or \
             the left side indexed by the key (set_index)"
                .into(),
        )),
        Some(JoinHint::Hash) => Ok((hash(), "requested".into())),
        None if aligned => Ok((
            JoinStrategy::PartitionWise,
            "both sides are hash-partitioned on the keys into the same partitions".into(),
        )),
        None if right_ok && rb <= config.broadcast_bytes => Ok((
            JoinStrategy::BroadcastRight,
            format!(
                "right side ~{} ≤ broadcast limit {}",
                human_bytes(rb),
                human_bytes(config.broadcast_bytes)
            ),
        )),
        None if indexed => Ok((
            JoinStrategy::Divisions,
            format!(
                "the left side is indexed by {}: the right side is range-shuffled to its divisions",
                j.left_on[0]
            ),
        )),
        None if left_ok && lb <= config.broadcast_bytes => Ok((
            JoinStrategy::BroadcastLeft,
            format!(
                "left side ~{} ≤ broadcast limit {}",
                human_bytes(lb),
                human_bytes(config.broadcast_bytes)
            ),
        )),
        None => Ok((
            hash(),
            format!("sides ~{} and ~{}, too large to broadcast", human_bytes(lb), human_bytes(rb)),
        )),
    }
}
