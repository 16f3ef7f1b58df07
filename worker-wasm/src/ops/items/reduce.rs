//! Tree reductions over items. Every reduction has a state that is itself a list of items, so
//! partial results travel between tasks like any Bag partition: `Partial` turns a partition's
//! items into a state, `Combine` merges states into one, `Final` merges them and turns the
//! result into the reduction's items.
//!
//! `fold` and `foldby` follow `dask.bag`: `fold`'s combine starts from `combine_initial`, else
//! from `initial`; `foldby`'s combine starts from `combine_initial`, else from the group's
//! first accumulator.

use super::super::Functions;
use super::user;
use super::value::{self, Sum, excerpt};
use crate::error::{Error, Result};
use serde_json::{Map, Value, json};
use shoal_protocol::{FunctionRef, ItemKey, ItemReduction, NumericStat, ReduceStep};
use std::collections::HashMap;

/// One step of `reduction` over `items` (a partition's items for `Partial`, states otherwise).
pub async fn step(
    reduction: &ItemReduction,
    step: ReduceStep,
    items: Vec<Value>,
    functions: &mut impl Functions,
) -> Result<Vec<Value>> {
    let partial = step == ReduceStep::Partial;
    let last = step == ReduceStep::Final;
    match reduction {
        ItemReduction::Count => {
            let n = if partial { items.len() as i64 } else { sum_states(&items)? };
            Ok(vec![Value::from(n)])
        }
        ItemReduction::Numeric { stat, path } => {
            let state = if partial { numeric_partial(&items, path)? } else { numeric_merge(&items)? };
            Ok(vec![if last { numeric_final(&state, *stat) } else { state.to_value() }])
        }
        ItemReduction::Distinct => Ok(distinct(items)),
        ItemReduction::Frequencies { sort } => {
            let pairs = if partial { items.into_iter().map(|i| (i, 1)).collect() } else { pairs_of(items)? };
            let mut counted = count(pairs);
            if last && *sort {
                // Stable: equal counts keep first-seen order.
                counted.sort_by_key(|b| std::cmp::Reverse(b.1));
            }
            Ok(counted.into_iter().map(|(item, n)| json!([item, n])).collect())
        }
        ItemReduction::TopK { k, key, largest } => {
            let keys = keys(functions, key, &items).await?;
            let mut ranked: Vec<(Value, Value)> = keys.into_iter().zip(items).collect();
            ranked.sort_by(|a, b| {
                let o = value::compare(&a.0, &b.0);
                if *largest { o.reverse() } else { o }
            });
            Ok(ranked.into_iter().take(*k).map(|(_, item)| item).collect())
        }
        ItemReduction::Fold { binop, combine, initial, combine_initial } => {
            let (f, start) = if partial {
                (binop, initial)
            } else {
                (combine.as_ref().unwrap_or(binop), combine_initial.as_ref().unwrap_or(initial))
            };
            user::fold(functions, f, vec![(start.clone(), items)]).await
        }
        ItemReduction::FoldBy { key, binop, combine, initial, combine_initial } => {
            if partial {
                let keys = keys(functions, key, &items).await?;
                let groups = group(keys.into_iter().zip(items));
                fold_groups(functions, binop, groups, Some(initial)).await
            } else {
                let groups = group(pairs_of_values(items)?);
                let f = combine.as_ref().unwrap_or(binop);
                fold_groups(functions, f, groups, combine_initial.as_ref()).await
            }
        }
        ItemReduction::Custom { per_partition, aggregate } => {
            let f = if partial { per_partition } else { aggregate };
            user::map(functions, f, &[Value::Array(items)]).await
        }
    }
}

/// Folds each group from `initial`, or from its first value when there is none; `[key, acc]`.
async fn fold_groups(
    functions: &mut impl Functions,
    f: &FunctionRef,
    groups: Vec<(Value, Vec<Value>)>,
    initial: Option<&Value>,
) -> Result<Vec<Value>> {
    let mut keys = Vec::with_capacity(groups.len());
    let mut folds = Vec::with_capacity(groups.len());
    for (key, mut values) in groups {
        let start = match initial {
            Some(v) => v.clone(),
            None if values.is_empty() => continue,
            None => values.remove(0),
        };
        keys.push(key);
        folds.push((start, values));
    }
    let accs = user::fold(functions, f, folds).await?;
    Ok(keys.into_iter().zip(accs).map(|(k, acc)| Value::Array(vec![k, acc])).collect())
}

/// Items grouped by `key`: `[key, [item, ...]]`, groups in first-seen order.
pub async fn group_by(
    functions: &mut impl Functions,
    key: &ItemKey,
    items: Vec<Value>,
) -> Result<Vec<Value>> {
    let keys = keys(functions, key, &items).await?;
    Ok(group(keys.into_iter().zip(items)).into_iter().map(|(k, vs)| json!([k, vs])).collect())
}

/// The key of each item: the item, the value at a path, or a user function's value.
pub async fn keys(functions: &mut impl Functions, key: &ItemKey, items: &[Value]) -> Result<Vec<Value>> {
    match key {
        ItemKey::Item => Ok(items.to_vec()),
        ItemKey::Path { path } => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                value::lookup(item, path).cloned().ok_or_else(|| {
                    Error::BadItem(format!(
                        "item {i} has no {} to group or rank by: {}",
                        value::describe_path(path),
                        excerpt(item)
                    ))
                })
            })
            .collect(),
        ItemKey::Function { function } => user::map(functions, function, items).await,
    }
}

/// Values grouped by key, groups in first-seen order.
fn group(keyed: impl IntoIterator<Item = (Value, Value)>) -> Vec<(Value, Vec<Value>)> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<(Value, Vec<Value>)> = Vec::new();
    for (key, v) in keyed {
        let id = value::identity(&key);
        match index.get(&id) {
            Some(&g) => groups[g].1.push(v),
            None => {
                index.insert(id, groups.len());
                groups.push((key, vec![v]));
            }
        }
    }
    groups
}

fn distinct(items: Vec<Value>) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    items.into_iter().filter(|i| seen.insert(value::identity(i))).collect()
}

/// Counts per distinct item, in first-seen order.
fn count(pairs: Vec<(Value, i64)>) -> Vec<(Value, i64)> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<(Value, i64)> = Vec::new();
    for (item, n) in pairs {
        let id = value::identity(&item);
        match index.get(&id) {
            Some(&i) => out[i].1 += n,
            None => {
                index.insert(id, out.len());
                out.push((item, n));
            }
        }
    }
    out
}

/// `[value, count]` states.
fn pairs_of(states: Vec<Value>) -> Result<Vec<(Value, i64)>> {
    pairs_of_values(states)?
        .into_iter()
        .map(|(v, n)| n.as_i64().map(|n| (v, n)).ok_or_else(|| bad_state("a count that is not an integer")))
        .collect()
}

/// `[key, value]` states.
fn pairs_of_values(states: Vec<Value>) -> Result<Vec<(Value, Value)>> {
    states
        .into_iter()
        .map(|s| match s {
            Value::Array(mut pair) if pair.len() == 2 => {
                let v = pair.pop().unwrap_or(Value::Null);
                Ok((pair.pop().unwrap_or(Value::Null), v))
            }
            other => Err(bad_state(&format!("not a [key, value] pair: {}", excerpt(&other)))),
        })
        .collect()
}

fn sum_states(states: &[Value]) -> Result<i64> {
    states.iter().map(|s| s.as_i64().ok_or_else(|| bad_state("a count that is not an integer"))).sum()
}

fn bad_state(what: &str) -> Error {
    Error::InvalidTask(format!("a reduction state is {what}"))
}

/// Sum, count, min and max of the numbers at a path.
#[derive(Debug, Clone, Default)]
struct Numeric {
    sum: Sum,
    count: i64,
    min: Option<Value>,
    max: Option<Value>,
}

impl Numeric {
    fn add(&mut self, n: &serde_json::Number) {
        self.sum = self.sum.add(n);
        self.count += 1;
        self.extremes(&Value::Number(n.clone()), &Value::Number(n.clone()));
    }

    fn extremes(&mut self, lo: &Value, hi: &Value) {
        if self.min.as_ref().is_none_or(|m| value::compare(lo, m).is_lt()) {
            self.min = Some(lo.clone());
        }
        if self.max.as_ref().is_none_or(|m| value::compare(hi, m).is_gt()) {
            self.max = Some(hi.clone());
        }
    }

    fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("sum".into(), self.sum.to_value());
        m.insert("count".into(), Value::from(self.count));
        m.insert("min".into(), self.min.clone().unwrap_or(Value::Null));
        m.insert("max".into(), self.max.clone().unwrap_or(Value::Null));
        Value::Object(m)
    }
}

fn numeric_partial(items: &[Value], path: &[shoal_protocol::PathStep]) -> Result<Numeric> {
    let mut state = Numeric::default();
    for (i, item) in items.iter().enumerate() {
        match value::lookup(item, path) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) => state.add(n),
            Some(other) => {
                return Err(Error::BadItem(format!(
                    "item {i}: the {} is not a number: {}",
                    value::describe_path(path),
                    excerpt(other)
                )));
            }
        }
    }
    Ok(state)
}

fn numeric_merge(states: &[Value]) -> Result<Numeric> {
    let mut out = Numeric::default();
    for s in states {
        let count = s.get("count").and_then(Value::as_i64).ok_or_else(|| bad_state("not a numeric state"))?;
        if count == 0 {
            continue;
        }
        out.sum = out.sum.merge(Sum::from_value(s.get("sum").unwrap_or(&Value::Null))?);
        out.count += count;
        out.extremes(s.get("min").unwrap_or(&Value::Null), s.get("max").unwrap_or(&Value::Null));
    }
    Ok(out)
}

fn numeric_final(state: &Numeric, stat: NumericStat) -> Value {
    match stat {
        NumericStat::Sum => state.sum.to_value(),
        NumericStat::Min => state.min.clone().unwrap_or(Value::Null),
        NumericStat::Max => state.max.clone().unwrap_or(Value::Null),
        NumericStat::Mean if state.count == 0 => Value::Null,
        NumericStat::Mean => value::float(state.sum.as_f64() / state.count as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_states_merge_like_one_pass() {
        let items: Vec<Value> =
            (1..=10).map(|i| json!({"a": i})).chain([json!({"a": null}), json!({})]).collect();
        let one = numeric_partial(&items, &[shoal_protocol::PathStep::Key("a".into())]).unwrap();
        let (left, right) = items.split_at(4);
        let path = [shoal_protocol::PathStep::Key("a".into())];
        let parts = [numeric_partial(left, &path).unwrap(), numeric_partial(right, &path).unwrap()];
        let merged = numeric_merge(&parts.iter().map(Numeric::to_value).collect::<Vec<_>>()).unwrap();
        for stat in [NumericStat::Sum, NumericStat::Min, NumericStat::Max, NumericStat::Mean] {
            assert_eq!(numeric_final(&one, stat), numeric_final(&merged, stat), "{stat:?}");
        }
        assert_eq!(numeric_final(&merged, NumericStat::Sum), json!(55));
        assert_eq!(numeric_final(&merged, NumericStat::Mean), json!(5.5));
        assert_eq!(numeric_final(&Numeric::default(), NumericStat::Max), Value::Null);
    }

    #[test]
    fn frequencies_count_and_groups_keep_first_seen_order() {
        let items = vec![json!("b"), json!("a"), json!("b"), json!({"x": 1}), json!({"x": 1})];
        let counted = count(items.into_iter().map(|i| (i, 1)).collect());
        assert_eq!(counted, vec![(json!("b"), 2), (json!("a"), 1), (json!({"x": 1}), 2)]);
        let g = group(vec![(json!(1), json!("p")), (json!(2), json!("q")), (json!(1), json!("r"))]);
        assert_eq!(g, vec![(json!(1), vec![json!("p"), json!("r")]), (json!(2), vec![json!("q")])]);
    }
}
