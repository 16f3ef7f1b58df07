//! The lazy `Bag` (like `dask.bag`): a collection of JSON items — lines of text, JSON logs,
//! anything — in partitions. Per-item operators (`map`, `filter`, `flatten`, `pluck`, …) fuse
//! into one task per partition; reductions (`count`, `sum`, `frequencies`, `foldby`, …) run as
//! trees; `groupby` shuffles. User functions are components of the `items` or `binop` kind.
//!
//! Items travel between tasks as Arrow (one JSON text column), through the same commit
//! protocol as DataFrame partitions, so retries, resume, speculation and the run report work
//! unchanged.
//!
//! Rooms: `plan` (the logical plan), `lower` (to the task graph), `read` (sources: text and
//! JSON-lines files, items given in the program, a DataFrame's rows), `write`
//! (`to_textfiles`).

pub mod lower;
pub mod plan;
mod read;
mod write;

pub use read::{Bags, TextRead};

use crate::client::{Client, FunctionModule};
use crate::collections::dataframe::DataFrame;
use crate::collections::dataframe::plan::GraphSource;
use crate::error::{Error, Result};
use crate::events::Events;
use crate::run::report::RunSummary;
use crate::run::results;
use arrow::array::{Array, AsArray};
use arrow::datatypes::SchemaRef;
use lower::{Target, lower};
use plan::BagPlan;
use serde_json::Value;
use shoal_protocol::{FunctionKind, ITEM_COLUMN, ItemKey, ItemOp, ItemReduction, NumericStat};
use std::sync::Arc;

/// Dask's default `split_every` for Bag reductions.
const SPLIT_EVERY: usize = 8;

/// A lazy collection of JSON items.
#[derive(Debug, Clone)]
pub struct Bag {
    client: Client,
    plan: Arc<BagPlan>,
    modules: Vec<FunctionModule>,
    split_every: usize,
}

/// What a Bag groups or ranks by.
#[derive(Debug, Clone)]
pub enum Key<'a> {
    /// The whole item.
    Item,
    /// The value at a path (`user.country`, `tags.0`).
    Path(&'a str),
    /// An `items` function of the item.
    Function(&'a FunctionModule, &'a str),
}

/// A `binop` function of a module and its keyword arguments, for `fold` and `foldby`:
/// `Binop::new(&module, "add_field").args(json!({"field": "bytes"}))`.
#[derive(Debug, Clone)]
pub struct Binop<'a> {
    module: &'a FunctionModule,
    function: &'a str,
    args: Value,
}

impl<'a> Binop<'a> {
    pub fn new(module: &'a FunctionModule, function: &'a str) -> Self {
        Binop { module, function, args: Value::Null }
    }

    pub fn args(self, args: Value) -> Self {
        Binop { args, ..self }
    }
}

/// The single result of a reduction over a whole Bag (`count`, `sum`, `fold`, …), computed
/// with [`compute`](Item::compute).
#[derive(Debug, Clone)]
pub struct Item {
    bag: Bag,
}

impl Item {
    pub async fn compute(&self) -> Result<Value> {
        let mut items = self.bag.compute().await?;
        match (items.pop(), items.is_empty()) {
            (Some(v), true) => Ok(v),
            _ => Err(Error::Invalid("a reduction produced other than one value".into())),
        }
    }

    /// The plan and its task graph.
    pub fn explain(&self) -> Result<String> {
        self.bag.explain()
    }

    /// The reduction as a one-item Bag.
    pub fn to_bag(&self) -> Bag {
        self.bag.clone()
    }
}

impl Bag {
    fn new(client: Client, plan: BagPlan, modules: Vec<FunctionModule>) -> Self {
        Bag { client, plan: Arc::new(plan), modules, split_every: SPLIT_EVERY }
    }

    fn with(&self, plan: BagPlan) -> Bag {
        Bag { plan: Arc::new(plan), ..self.clone() }
    }

    fn with_module(&self, plan: BagPlan, module: &FunctionModule) -> Bag {
        let mut bag = self.with(plan);
        if !bag.modules.iter().any(|m| m.reference.sha256 == module.reference.sha256) {
            bag.modules.push(module.clone());
        }
        bag
    }

    fn map_op(&self, op: ItemOp) -> Bag {
        self.with(BagPlan::Map { input: self.plan.clone(), op })
    }

    pub fn npartitions(&self) -> usize {
        self.plan.partitions()
    }

    /// Inputs per combine task of the reductions that follow (Dask's `split_every`; 8).
    pub fn split_every(&self, n: usize) -> Bag {
        Bag { split_every: n.max(2), ..self.clone() }
    }

    /// Each item replaced by `function(item, **args)`, an `items` function.
    pub fn map(&self, module: &FunctionModule, function: &str, args: Value) -> Result<Bag> {
        let function = module.function(function, FunctionKind::Items, args, "map")?;
        Ok(self.with_module(BagPlan::Map { input: self.plan.clone(), op: ItemOp::Map { function } }, module))
    }

    /// The items for which `function(item, **args)` (an `items` function) is truthy.
    pub fn filter(&self, module: &FunctionModule, function: &str, args: Value) -> Result<Bag> {
        let function = module.function(function, FunctionKind::Items, args, "filter")?;
        let op = ItemOp::Filter { function, keep: true };
        Ok(self.with_module(BagPlan::Map { input: self.plan.clone(), op }, module))
    }

    /// The items for which `function` is falsy (Dask's `remove`).
    pub fn remove(&self, module: &FunctionModule, function: &str, args: Value) -> Result<Bag> {
        let function = module.function(function, FunctionKind::Items, args, "remove")?;
        let op = ItemOp::Filter { function, keep: false };
        Ok(self.with_module(BagPlan::Map { input: self.plan.clone(), op }, module))
    }

    /// The items for which an SQL-like predicate over their fields is true, without user code:
    /// `filter_where("status >= 500 AND user.country = 'NL'")`.
    pub fn filter_where(&self, predicate: &str) -> Result<Bag> {
        shoal_worker::ops::items::check_predicate(predicate).map_err(Error::Invalid)?;
        Ok(self.map_op(ItemOp::Where { predicate: predicate.to_string(), keep: true }))
    }

    /// The items for which the predicate is not true (Dask's `remove`, without user code).
    pub fn remove_where(&self, predicate: &str) -> Result<Bag> {
        shoal_worker::ops::items::check_predicate(predicate).map_err(Error::Invalid)?;
        Ok(self.map_op(ItemOp::Where { predicate: predicate.to_string(), keep: false }))
    }

    /// Each item, a list, replaced by its elements.
    pub fn flatten(&self) -> Bag {
        self.map_op(ItemOp::Flatten)
    }

    /// Each item replaced by the value at `path` (`a.b.0`); an item without one is an error.
    pub fn pluck(&self, path: &str) -> Result<Bag> {
        let path = parse_path(path)?;
        Ok(self.map_op(ItemOp::Pluck { path, default: None }))
    }

    /// As [`pluck`](Self::pluck), with `default` for items without a value at `path`.
    pub fn pluck_or(&self, path: &str, default: Value) -> Result<Bag> {
        let path = parse_path(path)?;
        Ok(self.map_op(ItemOp::Pluck { path, default: Some(default) }))
    }

    /// Each partition's items given as one list to an `items` function that returns the new
    /// items of the partition.
    pub fn map_partitions(&self, module: &FunctionModule, function: &str, args: Value) -> Result<Bag> {
        let function = module.function(function, FunctionKind::Items, args, "map_partitions")?;
        let op = ItemOp::MapPartitions { function };
        Ok(self.with_module(BagPlan::Map { input: self.plan.clone(), op }, module))
    }

    /// The first `n` items (of the partitions in order).
    pub fn take(&self, n: usize) -> Bag {
        self.with(BagPlan::Take { input: self.plan.clone(), n })
    }

    fn reduce(&self, reduction: ItemReduction) -> Bag {
        self.with(BagPlan::Reduce {
            input: self.plan.clone(),
            reduction: Box::new(reduction),
            split_every: self.split_every,
        })
    }

    pub fn count(&self) -> Item {
        Item { bag: self.reduce(ItemReduction::Count) }
    }

    fn numeric(&self, stat: NumericStat, path: &str) -> Result<Item> {
        Ok(Item { bag: self.reduce(ItemReduction::Numeric { stat, path: parse_path(path)? }) })
    }

    /// The sum of the numbers at `path` (`""`: the items themselves); nulls and missing
    /// values are skipped.
    pub fn sum(&self, path: &str) -> Result<Item> {
        self.numeric(NumericStat::Sum, path)
    }

    pub fn min(&self, path: &str) -> Result<Item> {
        self.numeric(NumericStat::Min, path)
    }

    pub fn max(&self, path: &str) -> Result<Item> {
        self.numeric(NumericStat::Max, path)
    }

    pub fn mean(&self, path: &str) -> Result<Item> {
        self.numeric(NumericStat::Mean, path)
    }

    /// The distinct items, in first-seen order.
    pub fn distinct(&self) -> Bag {
        self.reduce(ItemReduction::Distinct)
    }

    /// `[item, count]` items; by count, highest first, when `sort`.
    pub fn frequencies(&self, sort: bool) -> Bag {
        self.reduce(ItemReduction::Frequencies { sort })
    }

    fn key(&mut self, key: Key<'_>, what: &str) -> Result<ItemKey> {
        Ok(match key {
            Key::Item => ItemKey::Item,
            Key::Path(p) => ItemKey::Path { path: parse_path(p)? },
            Key::Function(module, name) => {
                let function = module.function(name, FunctionKind::Items, Value::Null, what)?;
                if !self.modules.iter().any(|m| m.reference.sha256 == module.reference.sha256) {
                    self.modules.push(module.clone());
                }
                ItemKey::Function { function }
            }
        })
    }

    /// The `k` largest items by `key`, largest first (`largest = false`: the smallest).
    pub fn topk(&self, k: usize, key: Key<'_>, largest: bool) -> Result<Bag> {
        let mut bag = self.clone();
        let key = bag.key(key, "topk")?;
        Ok(bag.reduce(ItemReduction::TopK { k, key, largest }))
    }

    /// Folds every partition with `binop` from `initial`, then the partitions' results with
    /// `combine` (`binop` when `None`) from `initial`.
    pub fn fold(&self, binop: Binop<'_>, combine: Option<Binop<'_>>, initial: Value) -> Result<Item> {
        let mut bag = self.clone();
        let binop = bag.binop(binop, "fold")?;
        let combine = combine.map(|c| bag.binop(c, "fold")).transpose()?;
        let reduction = ItemReduction::Fold { binop, combine, initial, combine_initial: None };
        Ok(Item { bag: bag.reduce(reduction) })
    }

    /// Dask's `foldby`: per group of `key`, folds the items with `binop` from `initial` in each
    /// partition, then the partitions' accumulators with `combine` (`binop` when `None`) from
    /// `combine_initial` (else from the first accumulator). `[key, value]` items. Far cheaper
    /// than `groupby`: only one accumulator per key and partition moves.
    pub fn foldby(
        &self,
        key: Key<'_>,
        binop: Binop<'_>,
        initial: Value,
        combine: Option<Binop<'_>>,
        combine_initial: Option<Value>,
    ) -> Result<Bag> {
        let mut bag = self.clone();
        let key = bag.key(key, "foldby")?;
        let binop = bag.binop(binop, "foldby")?;
        let combine = combine.map(|c| bag.binop(c, "foldby")).transpose()?;
        Ok(bag.reduce(ItemReduction::FoldBy { key, binop, combine, initial, combine_initial }))
    }

    fn binop(&mut self, binop: Binop<'_>, what: &str) -> Result<shoal_protocol::FunctionRef> {
        let function = binop.module.function(binop.function, FunctionKind::Binop, binop.args, what)?;
        if !self.modules.iter().any(|m| m.reference.sha256 == binop.module.reference.sha256) {
            self.modules.push(binop.module.clone());
        }
        Ok(function)
    }

    /// Dask's `reduction`: `per_partition` (an `items` function given a partition's items as
    /// one list, returning one value), then `aggregate` (given the list of those values).
    pub fn reduction(&self, module: &FunctionModule, per_partition: &str, aggregate: &str) -> Result<Item> {
        let bag = self.with_module(self.plan.as_ref().clone(), module);
        let per_partition = module.function(per_partition, FunctionKind::Items, Value::Null, "reduction")?;
        let aggregate = module.function(aggregate, FunctionKind::Items, Value::Null, "reduction")?;
        Ok(Item { bag: bag.reduce(ItemReduction::Custom { per_partition, aggregate }) })
    }

    /// `[key, [item, ...]]` items: every item moved to the partition of its key (a hash
    /// shuffle into `npartitions`). Use [`foldby`](Self::foldby) when the groups are reduced.
    pub fn groupby(&self, key: Key<'_>, npartitions: usize) -> Result<Bag> {
        let mut bag = self.clone();
        let key = bag.key(key, "groupby")?;
        let npartitions = npartitions.max(1);
        Ok(bag.with(BagPlan::GroupBy { input: self.plan.clone(), key, npartitions }))
    }

    /// Items (JSON objects) as the rows of a DataFrame with `schema` (`(name, type)` pairs in
    /// the names `dtype` takes), or, when `None`, the schema inferred from the first 1,000
    /// items (which runs the Bag that far). An item that does not fit fails its task with one
    /// error naming the item and the field.
    pub async fn to_dataframe(&self, schema: Option<&[(&str, &str)]>) -> Result<DataFrame> {
        let schema: SchemaRef = match schema {
            Some(fields) => {
                let mut out = Vec::with_capacity(fields.len());
                for (name, ty) in fields {
                    let dt = crate::collections::dataframe::read::parse_dtype(ty)
                        .map_err(|e| Error::Invalid(format!("to_dataframe: column '{name}': {e}")))?;
                    out.push(arrow::datatypes::Field::new(*name, dt, true));
                }
                Arc::new(arrow::datatypes::Schema::new(out))
            }
            None => {
                let sample = self.take(1000).compute().await?;
                let objects: Vec<&Value> = sample.iter().filter(|v| v.is_object()).collect();
                if objects.is_empty() {
                    return Err(Error::Invalid(
                        "to_dataframe: the first items are not JSON objects; give a schema".into(),
                    ));
                }
                let inferred =
                    arrow::json::reader::infer_json_schema_from_iterator(objects.into_iter().map(Ok))
                        .map_err(|e| Error::Invalid(format!("to_dataframe: inferring a schema: {e}")))?;
                Arc::new(inferred)
            }
        };
        let fields = shoal_worker::io::schema::to_fields(&schema);
        let graph =
            lower(&self.plan, &Target::Collect, Some(ItemOp::ToRows { schema: fields }), schema.clone())?;
        let source = GraphSource {
            name: "bag to_dataframe".into(),
            graph,
            schema,
            estimated_bytes: self.plan.estimated_bytes(),
        };
        Ok(DataFrame::from_graph(&self.client, source, self.modules.clone()))
    }

    /// The task graph computing this Bag into intermediates and the modules its tasks call:
    /// how another collection (a Delayed argument) reads its items.
    pub(crate) fn lowered(&self) -> Result<(crate::graph::TaskGraph, Vec<FunctionModule>)> {
        Ok((self.graph()?, self.modules.clone()))
    }

    /// The identity of this Bag's plan (shared by clones), so one collection used twice is
    /// computed once.
    pub(crate) fn identity(&self) -> usize {
        Arc::as_ptr(&self.plan).addr()
    }

    fn graph(&self) -> Result<crate::graph::TaskGraph> {
        lower(&self.plan, &Target::Collect, None, lower_items_schema())
    }

    /// The plan and its task graph, per stage.
    pub fn explain(&self) -> Result<String> {
        let graph = self.graph()?;
        let mut out = String::from("== bag plan ==\n");
        out.push_str(&self.plan.display());
        out.push_str(&crate::collections::dataframe::explain_graph(&graph));
        Ok(out)
    }

    /// Runs the plan and returns the items, in partition order.
    pub async fn compute(&self) -> Result<Vec<Value>> {
        Ok(self.compute_with(Events::new()).await?.0)
    }

    /// [`compute`](Self::compute), publishing the run's events; also returns the run's totals.
    pub async fn compute_with(&self, events: Events) -> Result<(Vec<Value>, RunSummary)> {
        let graph = std::sync::Arc::new(self.graph()?);
        let run = self.client.run_graph(graph.clone(), &self.modules, events).await?;
        let batches = results::collect(self.client.storage(), &graph, &run.manifests).await?;
        let mut items = Vec::new();
        for batch in &batches {
            let column = batch
                .column_by_name(ITEM_COLUMN)
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| Error::Invalid("a Bag result without its item column".into()))?;
            for i in 0..column.len() {
                items.push(
                    serde_json::from_str(column.value(i))
                        .map_err(|e| Error::Invalid(format!("a Bag result item is not JSON: {e}")))?,
                );
            }
        }
        Ok((items, run.summary))
    }
}

fn lower_items_schema() -> SchemaRef {
    shoal_worker::ops::items::item_schema()
}

fn parse_path(path: &str) -> Result<shoal_protocol::ItemPath> {
    shoal_worker::ops::items::parse_path(path).map_err(Error::Invalid)
}

impl DataFrame {
    /// The rows as a Bag of JSON objects (Dask's `to_bag(format="dict")`).
    pub fn to_bag(&self) -> Result<Bag> {
        let (graph, modules, _) = self.lowered()?;
        let bytes = 0;
        let plan = BagPlan::Graph {
            name: "dataframe rows".into(),
            graph: Arc::new(graph),
            first: ItemOp::FromRows,
            bytes,
        };
        Ok(Bag::new(self.client().clone(), plan, modules))
    }
}
