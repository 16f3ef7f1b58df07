//! How each aggregation and join is distributed, from estimated sizes and key ranges: local,
//! tree reduction or hash shuffle; broadcast, partition-wise, ranges, divisions-aligned or hash
//! join. Each choice comes with
//! its reason, which `explain` prints.

use super::plan::{AggStrategy, AggregateNode, JoinHint, JoinNode, JoinStrategy, Plan, PlanConfig};
use super::ranges::{self, KeyRanges};
use crate::error::{Error, Result};
use crate::units::human_bytes;
use shoal_protocol::JoinHow;
use std::sync::Arc;

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
    if a.input.partitions() > 1 {
        let local =
            a.keys.iter().find(|k| ranges::key_ranges(&a.input, k).is_some_and(|r| ranges::disjoint(&r)));
        if let Some(k) = local {
            let why = format!(
                "the input's {} partitions hold disjoint ranges of {k} (Parquet statistics): each holds whole groups",
                a.input.partitions()
            );
            return (AggStrategy::Local, why);
        }
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

/// A join's strategy, its reason, and the estimated total work of the strategy when it was
/// chosen by cost (`None` when requested or forced by the sides' partitioning).
pub(super) fn join_strategy(
    j: &JoinNode,
    config: &PlanConfig,
) -> Result<(JoinStrategy, String, Option<u64>)> {
    let (strategy, mut why, cost) = choose_join(j, config)?;
    let note = match strategy {
        JoinStrategy::Hash { npartitions: n } if placed(&j.left, &j.left_on, n) => "left",
        JoinStrategy::Hash { npartitions: n } if placed(&j.right, &j.right_on, n) => "right",
        _ => return Ok((strategy, why, cost)),
    };
    let other = if note == "left" { "right" } else { "left" };
    why.push_str(&format!(
        "; the {note} side is hash-partitioned on its keys already: only the {other} is shuffled"
    ));
    Ok((strategy, why, cost))
}

/// `j` again, when a join below it (one of its sides, under per-partition operators) chose a
/// strategy that gave up the key ranges of its left side, and broadcasting that join's right
/// side instead (which keeps its left side's partitions, and so their ranges) lets `j` pair
/// partitions by ranges for less estimated work of the two joins together. Choosing each join
/// alone, bottom-up, cannot see this: the join below is cheaper shuffled, the one above much
/// dearer for it (TPC-H q5 at SF10: orders ⋈ customer hash-shuffled, then lineitem shuffled to
/// join it).
/// `cost` is `j`'s estimated work as chosen (`None`: not chosen by cost, left alone).
pub(super) fn keep_ranges(j: &JoinNode, cost: Option<u64>, config: &PlanConfig) -> Result<Option<JoinNode>> {
    let Some(cost) = cost else { return Ok(None) };
    if matches!(j.strategy, Some((JoinStrategy::Ranges, _))) {
        return Ok(None);
    }
    for right in [true, false] {
        let side = if right { &j.right } else { &j.left };
        let Some((below, before, after)) = broadcast_below(side, config)? else { continue };
        let mut again = j.clone();
        match right {
            true => again.right = Arc::new(below),
            false => again.left = Arc::new(below),
        }
        let (strategy, why, Some(new)) = join_strategy(&again, config)? else { continue };
        if strategy == JoinStrategy::Ranges && after.saturating_add(new) < before.saturating_add(cost) {
            again.strategy = Some((strategy, why));
            again.cost = Some(new);
            return Ok(Some(again));
        }
    }
    Ok(None)
}

/// `side` with the join under it (below per-partition operators) broadcasting its right side,
/// when that join gave up its left side's partitions by cost and may broadcast: the rebuilt
/// plan and the join's estimated work before and after.
fn broadcast_below(side: &Plan, config: &PlanConfig) -> Result<Option<(Plan, u64, u64)>> {
    match side {
        Plan::Map { input, .. } => Ok(broadcast_below(input, config)?
            .map(|(below, before, after)| {
                side.map_children(|_| Ok::<_, Error>(below.clone())).map(|plan| (plan, before, after))
            })
            .transpose()?),
        Plan::Join(c) => {
            let lost =
                matches!(c.strategy, Some((JoinStrategy::Hash { .. } | JoinStrategy::BroadcastLeft, _)));
            let may = right_may_repeat(c.how) && c.right.estimated_bytes() <= config.broadcast_bytes;
            let Some((_, _, Some(before))) = (lost && may).then(|| join_strategy(c, config)).transpose()?
            else {
                return Ok(None);
            };
            let (lb, rb) = (c.left.estimated_bytes(), c.right.estimated_bytes());
            let lp = c.left.partitions();
            let cost = JoinCost::broadcast(lb, rb, lp, c.right.partitions())
                .run_by(lp, config.min_shuffle_partitions);
            let why = format!(
                "broadcast right {cost} instead of {}: keeps the left side's partitions and key ranges for the join \
                 above, which then pairs partitions by ranges",
                human_bytes(before)
            );
            let mut c = c.clone();
            c.strategy = Some((JoinStrategy::BroadcastRight, why));
            c.cost = Some(cost.total());
            Ok(Some((Plan::Join(c), before, cost.total())))
        }
        _ => Ok(None),
    }
}

/// Whether a join's right rows may be read by several tasks (broadcast, or by every left
/// partition whose key range overlaps them): only when it keeps unmatched rows of the left
/// alone, so a right row never comes out on its own.
fn right_may_repeat(how: JoinHow) -> bool {
    matches!(how, JoinHow::Inner | JoinHow::Left | JoinHow::Semi | JoinHow::Anti)
}

fn choose_join(j: &JoinNode, config: &PlanConfig) -> Result<(JoinStrategy, String, Option<u64>)> {
    let right_ok = right_may_repeat(j.how);
    let left_ok = matches!(j.how, JoinHow::Inner | JoinHow::Right);
    let aligned = match (j.left.hash_partitioning(), j.right.hash_partitioning()) {
        (Some((lk, ln)), Some((rk, rn))) => lk == j.left_on && rk == j.right_on && ln == rn,
        _ => false,
    };
    // The left side is indexed by the (single) join key: align the right to its divisions.
    let indexed = j.left_on.len() == 1
        && matches!(&*j.left, Plan::Sort { keys, index: true, .. } if keys.len() == 1 && keys[0].column == j.left_on[0]);
    // A side already hash-partitioned on its keys (a shuffled aggregation by them) is not
    // shuffled again when the join has as many partitions: only the other side moves.
    let hash = || {
        let placed = || partitions_on(&j.left, &j.left_on).or_else(|| partitions_on(&j.right, &j.right_on));
        let n = j.npartitions.or_else(placed).unwrap_or_else(|| shuffle_partitions(j, config)).max(1);
        JoinStrategy::Hash { npartitions: n }
    };
    // Both sides' partitions hold known ranges of a key: a left partition needs only the
    // right partitions its range overlaps (so a right row may be read by several).
    let ranged =
        right_ok.then(|| ranges::join_key_pair(&j.left, &j.right, &j.left_on, &j.right_on)).flatten();
    let how = j.how.as_str();
    match j.hint {
        Some(JoinHint::Broadcast) if right_ok => Ok((JoinStrategy::BroadcastRight, "requested".into(), None)),
        Some(JoinHint::Broadcast) if left_ok => Ok((JoinStrategy::BroadcastLeft, "requested".into(), None)),
        Some(JoinHint::Broadcast) => Err(Error::Invalid(format!(
            "merge: a broadcast join cannot compute how='{how}' (every row of both sides must be kept); \
             use strategy 'hash'"
        ))),
        Some(JoinHint::PartitionWise) if aligned => {
            Ok((JoinStrategy::PartitionWise, "requested".into(), None))
        }
        Some(JoinHint::PartitionWise) if ranged.is_some() => Ok((
            JoinStrategy::Ranges,
            "requested; the partitions of both sides hold known ranges of the key".into(),
            None,
        )),
        Some(JoinHint::PartitionWise) if indexed => Ok((
            JoinStrategy::Divisions,
            "requested; the left side is indexed by the key, the right is shuffled to its divisions".into(),
            None,
        )),
        Some(JoinHint::PartitionWise) => Err(Error::Invalid(
            "merge: a partition-wise join needs both sides hash-partitioned on the join keys into the \
             same number of partitions (for example both shuffled aggregations by those keys), or \
             the left side indexed by the key (set_index), or both sides' partitions holding known \
             ranges of an integer key (Parquet statistics)"
                .into(),
        )),
        Some(JoinHint::Hash) => Ok((hash(), "requested".into(), None)),
        None if aligned => Ok((
            JoinStrategy::PartitionWise,
            "both sides are hash-partitioned on the keys into the same partitions".into(),
            None,
        )),
        None => Ok(cheapest_join(j, config, right_ok, left_ok, indexed, ranged.as_ref(), hash())),
    }
}

/// Estimated work of one way to run a join, in bytes: what its tasks read and write (`moved`),
/// what they hash (`hashed`: the build side into hash tables, as often as it is built, and the
/// rows that probe them once), and the storage requests they make, each counted as
/// [`REQUEST_BYTES`] (a request's latency is worth that much transfer; a task costs three: its
/// launch, its output and its commit). A broadcast side is read and hashed again by every task
/// of the other side, whose rows all probe it; a shuffle writes and reads its sides once more,
/// hashes each row of each side once, and each of its reducers reads a range of every map
/// task's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct JoinCost {
    pub moved: u64,
    pub hashed: u64,
    pub requests: u64,
}

/// Whether a broadcast side materialized in `small_tasks` partitions is gathered into one
/// object by one task before the `big_tasks` tasks of the other side read it: when that saves
/// more than three times the reads it makes (`b·s > 4(b + s)`: never for 8 and 8, always for
/// 80 and 80). Every task of the other side reads all of the side, which is small; gathered,
/// each makes one read instead of one per piece (TPC-H q17 at SF10: 80 tasks reading 80 pieces
/// of a few kilobytes each). `lower.rs` gathers exactly when this holds.
pub(super) fn gathers(big_tasks: usize, small_tasks: usize) -> bool {
    let (b, s) = (big_tasks as u64, small_tasks as u64);
    b.saturating_mul(s) > b.saturating_add(s).saturating_mul(4)
}

/// The transfer a storage request is worth: a local request costs tens of microseconds, an S3
/// request ten milliseconds or more.
const REQUEST_BYTES: u64 = 256 << 10;

impl JoinCost {
    pub fn total(self) -> u64 {
        self.moved.saturating_add(self.hashed).saturating_add(self.requests.saturating_mul(REQUEST_BYTES))
    }

    /// This cost with the join run by `tasks` tasks where the plan expects `parallel` to run at
    /// once (`min_shuffle_partitions`): when fewer, the rows they hash and probe count
    /// `parallel / tasks` times, for the workers they leave idle. Total work alone would send a
    /// large side to the one task of a one-file table (TPC-H q5 at SF10: 1.8 million
    /// lineitem rows broadcast to the supplier's one partition, where the join and the
    /// aggregation after it ran on one core of two) rather than the small table to every task
    /// of the large side.
    pub fn run_by(self, tasks: usize, parallel: usize) -> Self {
        let (t, p) = (tasks.max(1) as u64, parallel.max(1) as u64);
        match t < p {
            true => Self { hashed: self.hashed.saturating_mul(p) / t, ..self },
            false => self,
        }
    }

    /// The `small` side (of `small_tasks` tasks) materialized (read once, written once), then read
    /// whole and hashed by each of the `big_tasks` tasks of the `big` side, which is read once.
    /// A side that [`gathers`] is gathered into one object first (read and written once more by
    /// one task), so that each reader makes one read.
    pub fn broadcast(big: u64, small: u64, big_tasks: usize, small_tasks: usize) -> Self {
        let (b, s) = (big_tasks.max(1) as u64, small_tasks.max(1) as u64);
        let copies = small.saturating_mul(b);
        let once = big.saturating_add(small.saturating_mul(2)).saturating_add(copies);
        let (moved, requests) = match gathers(big_tasks, small_tasks) {
            true => (once.saturating_add(small.saturating_mul(2)), b + s + 3 * (b + s + 1)),
            false => (once, b * s + 3 * (b + s)),
        };
        Self { moved, hashed: copies.saturating_add(big), requests }
    }

    /// The right side (`right`, in `right_tasks` partitions) materialized, then each of the
    /// `left_tasks` partitions of the left reads and hashes the right partitions its key range
    /// overlaps, `reads` partition reads in all, `partitions_read` partitions' worth of rows (as
    /// many, or fewer where the reads are pruned to the left's ranges); the left is read once. A
    /// right side that only scans files (`from_files`) is not materialized: the joining tasks
    /// read its files.
    pub fn ranges(
        left: u64,
        right: u64,
        (reads, partitions_read): (usize, f64),
        (left_tasks, right_tasks): (usize, usize),
        from_files: bool,
    ) -> Self {
        let (l, r) = (left_tasks.max(1) as u64, right_tasks.max(1) as u64);
        let read = (right as f64 * partitions_read / r as f64).ceil() as u64;
        let (materialized, right_tasks) = match from_files {
            true => (0, 0),
            false => (right.saturating_mul(2), r),
        };
        Self {
            moved: left.saturating_add(materialized).saturating_add(read),
            hashed: read.saturating_add(left),
            requests: reads as u64 + 3 * (l + right_tasks),
        }
    }

    /// The `shuffled` side(s) read, written as buckets by `maps` tasks and read back by
    /// `reducers` (a range of every map output each), the other side read once; each reducer
    /// hashes its bucket of the build side and probes it with its bucket of the other.
    pub fn shuffle(read_once: u64, shuffled: u64, maps: usize, reducers: usize) -> Self {
        let (m, r) = (maps.max(1) as u64, reducers.max(1) as u64);
        Self {
            moved: read_once.saturating_add(shuffled.saturating_mul(3)),
            hashed: read_once.saturating_add(shuffled),
            requests: m * r + 3 * (m + r),
        }
    }
}

impl std::fmt::Display for JoinCost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "~{} (moved {}, hashed {}, {} requests)",
            human_bytes(self.total()),
            human_bytes(self.moved),
            human_bytes(self.hashed),
            self.requests
        )
    }
}

/// Whether `side` is hash-partitioned on exactly `keys` into `n` partitions already, so that a
/// hash join into `n` partitions reads its partition `i` whole instead of shuffling it.
pub(super) fn placed(side: &Plan, keys: &[String], n: usize) -> bool {
    partitions_on(side, keys) == Some(n)
}

/// How many partitions `side` is hash-partitioned into on exactly `keys`, if it is.
fn partitions_on(side: &Plan, keys: &[String]) -> Option<usize> {
    side.hash_partitioning().filter(|(k, _)| k == keys).map(|(_, n)| n)
}

/// Partitions of a hash join whose sides are both shuffled: as many as hold the sides'
/// estimated bytes at `shuffle_partition_bytes` each and the build (right) side at
/// `broadcast_bytes`, at least `min_shuffle_partitions`, at most the larger side's partitions
/// (Dask's choice, kept for large sides). Every reducer reads a range of every map task's
/// output, so a join of small sides in many files (TPC-H q14 at SF10: 24 MB in 80 + 80 files)
/// would otherwise make thousands of reads of a few kilobytes each.
fn shuffle_partitions(j: &JoinNode, config: &PlanConfig) -> usize {
    let (lb, rb) = (j.left.estimated_bytes(), j.right.estimated_bytes());
    let most = j.left.partitions().max(j.right.partitions()).max(1);
    let by_size = lb.saturating_add(rb).div_ceil(config.shuffle_partition_bytes.max(1));
    let by_build = rb.div_ceil(config.broadcast_bytes.max(1));
    let want = usize::try_from(by_size.max(by_build)).unwrap_or(usize::MAX);
    want.max(config.min_shuffle_partitions).min(most)
}

/// The join strategy of least estimated total work among those the join's `how` allows: a
/// broadcast of a side under the broadcast limit (which bounds what each task holds), and the
/// shuffle — of the right side to the left's divisions when the left is indexed by the key, of
/// both sides otherwise. The reason lists every estimate compared. Ties go to the broadcast,
/// which runs fewer tasks.
fn cheapest_join(
    j: &JoinNode,
    config: &PlanConfig,
    right_ok: bool,
    left_ok: bool,
    indexed: bool,
    ranged: Option<&(usize, KeyRanges, KeyRanges)>,
    hash: JoinStrategy,
) -> (JoinStrategy, String, Option<u64>) {
    let (lb, rb) = (j.left.estimated_bytes(), j.right.estimated_bytes());
    let limit = config.broadcast_bytes;
    let mut candidates: Vec<(JoinStrategy, String, JoinCost)> = Vec::new();
    let mut over: Vec<String> = Vec::new();
    let (lp, rp) = (j.left.partitions(), j.right.partitions());
    let parallel = config.min_shuffle_partitions;
    for (ok, strategy, side, small, big, big_tasks, small_tasks) in [
        (right_ok, JoinStrategy::BroadcastRight, "right", rb, lb, lp, rp),
        (left_ok, JoinStrategy::BroadcastLeft, "left", lb, rb, rp, lp),
    ] {
        match ok {
            false => {}
            true if small <= limit => candidates.push((
                strategy,
                format!("broadcast {side}"),
                JoinCost::broadcast(big, small, big_tasks, small_tasks).run_by(big_tasks, parallel),
            )),
            true => over.push(format!("the {side} side is over the broadcast limit {}", human_bytes(limit))),
        }
    }
    if let Some((k, left, right)) = ranged {
        // A right side that is only a scan is read by the joining tasks from its files, pruned
        // to each left partition's range of the key (`lower_ranges_join`, integer keys).
        let from_files = matches!(*j.right, Plan::Scan(_));
        let read = ranges::partitions_read(&j.right, &j.right_on[*k], left, right);
        let cost = JoinCost::ranges(lb, rb, read, (lp, rp), from_files).run_by(lp, parallel);
        candidates.push((JoinStrategy::Ranges, "ranges".into(), cost));
    }
    candidates.push(match indexed {
        true => {
            let cost = JoinCost::shuffle(lb, rb, rp, lp).run_by(lp, parallel);
            (JoinStrategy::Divisions, "divisions".into(), cost)
        }
        false => {
            let n = match hash {
                JoinStrategy::Hash { npartitions } => npartitions,
                _ => lp.max(rp),
            };
            let cost = match (placed(&j.left, &j.left_on, n), placed(&j.right, &j.right_on, n)) {
                (true, _) => JoinCost::shuffle(lb, rb, rp, n),
                (_, true) => JoinCost::shuffle(rb, lb, lp, n),
                _ => JoinCost::shuffle(0, lb.saturating_add(rb), lp + rp, n),
            }
            .run_by(n, parallel);
            (hash, "hash".into(), cost)
        }
    });
    let mut best = candidates.len() - 1;
    for (i, (_, _, cost)) in candidates.iter().enumerate() {
        if cost.total() < candidates[best].2.total()
            || (i < best && cost.total() == candidates[best].2.total())
        {
            best = i;
        }
    }
    let estimates: Vec<String> = candidates.iter().map(|(_, name, cost)| format!("{name} {cost}")).collect();
    let mut why = format!(
        "sides ~{} and ~{}; estimated work: {}",
        human_bytes(lb),
        human_bytes(rb),
        estimates.join(", ")
    );
    for note in over {
        why.push_str(&format!("; {note}"));
    }
    if candidates[best].0 == JoinStrategy::Ranges {
        why.push_str("; the partitions of both sides hold known ranges of the key (Parquet statistics)");
    }
    if candidates[best].0 == JoinStrategy::Divisions {
        why.push_str(&format!("; the left side is indexed by {}", j.left_on[0]));
    }
    (candidates[best].0, why, Some(candidates[best].2.total()))
}

#[cfg(test)]
pub(super) mod tests {
    use super::JoinCost;
    use crate::collections::dataframe::optimize::optimize;
    use crate::collections::dataframe::plan::{FileInfo, JoinStrategy, Plan, PlanConfig, ScanNode};
    use arrow::datatypes::{DataType, Field, Schema};
    use shoal_protocol::{FileFormat, FileSlice, JoinHow, ObjectRef};
    use std::collections::HashMap;
    use std::sync::Arc;

    /// A Parquet table of `files` files of `rows` rows and `bytes` each, in key order: file i
    /// holds values `i * rows ..= (i + 1) * rows - 1` of `key`; `other` is an integer column of
    /// values `0..=other_max` in every file.
    pub(in crate::collections::dataframe) fn ordered(
        name: &str,
        (key, other, other_max): (&str, &str, i64),
        files: u64,
        rows: u64,
        bytes: u64,
    ) -> Plan {
        let schema = Schema::new(vec![
            Field::new(key, DataType::Int64, false),
            Field::new(other, DataType::Int64, false),
        ]);
        let n = files;
        let files: Vec<FileInfo> = (0..files)
            .map(|i| FileInfo {
                object: ObjectRef { url: format!("file:///{name}/{i}.parquet"), size: bytes, e_tag: None },
                row_groups: vec![(bytes, rows)],
                int_bounds: vec![HashMap::from([
                    (key.to_string(), ((i * rows) as i64, ((i + 1) * rows - 1) as i64)),
                    (other.to_string(), (0, other_max)),
                ])],
            })
            .collect();
        Plan::Scan(ScanNode {
            source: format!("{name}/*.parquet"),
            format: FileFormat::Parquet,
            file_schema: Arc::new(schema),
            partitions: files.iter().map(|f| vec![FileSlice::whole(f.object.clone())]).collect(),
            files,
            projection: None,
            predicate: None,
            int_ranges: HashMap::from([
                (key.to_string(), (0, (n * rows) as i64 - 1)),
                (other.to_string(), (0, other_max)),
            ]),
            string_values: Default::default(),
            schema_on_read: false,
        })
    }

    pub(in crate::collections::dataframe) fn join(left: Plan, right: Plan, on: (&str, &str)) -> Plan {
        crate::collections::dataframe::estimate::tests::join(left, right, JoinHow::Inner, on)
    }

    fn why(plan: &Plan) -> String {
        match plan {
            Plan::Join(j) => j.strategy.as_ref().map(|s| s.1.clone()).unwrap_or_default(),
            _ => "not a join".into(),
        }
    }

    fn strategy(plan: &Plan) -> JoinStrategy {
        match plan {
            Plan::Join(j) => j.strategy.as_ref().unwrap().0,
            other => panic!("not a join: {other:?}"),
        }
    }

    #[test]
    fn a_join_below_keeps_its_key_ranges_when_the_join_above_gains_more() {
        // TPC-H q5's shape at SF10: lineitem ⋈ (orders ⋈ customer), lineitem and orders in
        // files of the same order-key ranges, customer in files by customer key.
        let lineitem = ordered("lineitem", ("l_orderkey", "l_suppkey", 100_000), 80, 750_000, 32_000_000);
        let orders = ordered("orders", ("o_orderkey", "o_custkey", 300_000), 80, 750_000, 2_000_000);
        let customer = ordered("customer", ("c_custkey", "c_nationkey", 24), 80, 3_750, 400_000);
        let config = PlanConfig::default();
        let inner = || join(orders.clone(), customer.clone(), ("o_custkey", "c_custkey"));
        // Alone, the join below is cheaper shuffled than with customer broadcast to 80 tasks.
        let alone = optimize(&inner(), &config).unwrap();
        assert!(matches!(strategy(&alone), JoinStrategy::Hash { .. }), "{}", why(&alone));
        let both = join(lineitem, inner(), ("l_orderkey", "o_orderkey"));
        let Plan::Join(top) = optimize(&both, &config).unwrap() else { panic!("not a join") };
        let below = top.right.as_ref();
        let top_why = top.strategy.as_ref().unwrap().1.clone();
        assert_eq!(top.strategy.as_ref().unwrap().0, JoinStrategy::Ranges, "{top_why}\n{}", why(below));
        assert_eq!(strategy(below), JoinStrategy::BroadcastRight);
        assert!(why(below).contains("keeps the left side's partitions"), "{}", why(below));
    }

    const MB: u64 = 1_000_000;

    #[test]
    fn a_hash_join_runs_in_as_many_partitions_as_its_sides_need() {
        let config = PlanConfig::default();
        let partitions = |files: u64, left_file: u64, right_file: u64| {
            let left = ordered("l", ("k", "a", 10), files, 1_000, left_file);
            let right = ordered("r", ("k2", "b", 10), files, 1_000, right_file);
            let Plan::Join(j) = join(left, right, ("a", "b")) else { panic!("not a join") };
            super::shuffle_partitions(&j, &config)
        };
        // TPC-H q14 at SF10: 24 MB in 80 + 80 files joins in the fewest partitions, not 80.
        assert_eq!(partitions(80, 100_000, 200_000), 8);
        // 2.56 GB: 128 MB each.
        assert_eq!(partitions(80, 30 * MB, 2 * MB), 20);
        // A build side of 1.6 GB: at most the broadcast limit (64 MB) each.
        assert_eq!(partitions(80, MB, 20 * MB), 25);
        // Never more than the larger side's partitions, nor fewer when it has fewer than 8.
        assert_eq!(partitions(80, 200 * MB, 200 * MB), 80);
        assert_eq!(partitions(4, 100_000, 100_000), 4);
    }

    #[test]
    fn a_broadcast_side_in_many_pieces_is_read_once_gathered() {
        // TPC-H q17 at SF10: 108 KB of parts in 80 pieces, read by each of 80 lineitem tasks.
        let gathered = JoinCost::broadcast(130 * MB, MB / 10, 80, 80);
        assert_eq!(gathered.requests, 80 + 80 + 3 * (80 + 80 + 1));
        assert_eq!(gathered.moved, 130 * MB + 4 * (MB / 10) + 80 * (MB / 10));
        // Few pieces, or few readers, read the pieces as they are.
        assert_eq!(JoinCost::broadcast(130 * MB, MB / 10, 80, 4).requests, 80 * 4 + 3 * (80 + 4));
        assert_eq!(JoinCost::broadcast(130 * MB, MB / 10, 1, 80).requests, 80 + 3 * (1 + 80));
        assert_eq!(JoinCost::broadcast(130 * MB, MB / 10, 8, 8).requests, 8 * 8 + 3 * (8 + 8));
        // Gathered, the small side is cheaper to broadcast than shuffling the large one.
        assert!(gathered.total() < JoinCost::shuffle(0, 130 * MB + MB / 10, 160, 8).total());
    }

    #[test]
    fn a_broadcast_read_by_many_tasks_costs_more_than_a_shuffle() {
        // The issue's case: a 60 MB side (8 files) under the 64 MB limit, joined to 233 MB in 8 files.
        let broadcast = JoinCost::broadcast(233 * MB, 60 * MB, 8, 8);
        assert_eq!(
            broadcast,
            JoinCost { moved: (233 + 120 + 480) * MB, hashed: (480 + 233) * MB, requests: 64 + 48 }
        );
        let hash = JoinCost::shuffle(0, 293 * MB, 16, 8);
        assert_eq!(hash, JoinCost { moved: 879 * MB, hashed: 293 * MB, requests: 128 + 72 });
        assert!(hash.total() < broadcast.total());
        // A dimension table of 1 MB is cheaper to send to every task than to shuffle the fact table.
        assert!(
            JoinCost::broadcast(233 * MB, MB, 8, 1).total() < JoinCost::shuffle(0, 234 * MB, 9, 8).total()
        );
        // Small data in many files: the requests of a shuffle (every reducer reads every map
        // output) outweigh reading a small side many times.
        let many = JoinCost::broadcast(3 * MB, MB / 5, 200, 4);
        assert!(many.total() < JoinCost::shuffle(0, 3 * MB + MB / 5, 204, 200).total());
    }

    #[test]
    fn a_join_run_by_fewer_tasks_than_run_at_once_counts_the_idle_workers() {
        // TPC-H q5 at SF10: lineitem ⋈ orders (~36 MB in 27 partitions) joins the supplier
        // (~2.6 MB, one file). By total work alone, the large side goes to the one task.
        let to_one = JoinCost::broadcast(26 * MB / 10, 36 * MB, 1, 27);
        let to_each = JoinCost::broadcast(36 * MB, 26 * MB / 10, 27, 1);
        assert!(to_one.total() < to_each.total());
        // Its hashing counted 8 times (one task where 8 run at once), it costs more.
        let one = to_one.run_by(1, 8);
        assert_eq!(one, JoinCost { hashed: to_one.hashed * 8, ..to_one });
        assert!(to_each.run_by(27, 8).total() < one.total());
        // Enough tasks: unchanged; a few: in proportion.
        assert_eq!(to_each.run_by(27, 8), to_each);
        assert_eq!(to_each.run_by(8, 8), to_each);
        assert_eq!(to_one.run_by(4, 8).hashed, to_one.hashed * 2);
    }
}
