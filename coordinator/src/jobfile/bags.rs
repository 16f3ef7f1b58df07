//! Bags in a job file: `[bags.NAME]`, each read from storage, made from a dataset's rows, or
//! built from another bag (`from`) by exactly one operation. A reduction to one value (`count`,
//! `sum`, `fold`, …) is a bag of that one item.
//!
//! ```toml
//! [bags.logs]
//! read_json = "logs/*.jsonl"           # or { path = "logs/", blocksize = "16MB", errors = "skip" }; read_text
//!
//! [bags.errors]
//! from = "logs"
//! filter = "status >= 500"             # SQL-like over item fields; or { module, function, args }
//!
//! [bags.countries]
//! from = "errors"
//! pluck = { path = "user.country", default = "unknown" }
//!
//! [bags.top]
//! from = "countries"
//! frequencies = { sort = true }
//!
//! [bags.bytes_by_method]
//! from = "logs"
//! foldby = { key = "method", module = "builtin:examples", binop = "add_field", args = { field = "bytes" }, initial = 0, combine = "add" }
//!
//! [[outputs]]
//! bag = "top"
//! show = true                          # or to_textfiles = "out/top" (gzip = true for .txt.gz)
//! ```

use super::env::resolve;
use crate::client::{Client, FunctionModule};
use crate::collections::bag::{Bag, Binop, Key, TextRead};
use crate::collections::dataframe::DataFrame;
use crate::error::{Error, Result};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// One `[bags.NAME]` table: `from` and its operation.
#[derive(Debug, Clone)]
pub struct BagSpec {
    pub from: Option<String>,
    pub op: BagOp,
}

impl BagSpec {
    /// Parses a bag's table: `from`, then exactly one operation with its keys.
    pub fn parse(name: &str, mut table: toml::Table) -> Result<Self> {
        let bad = |m: String| Error::Bag { name: name.to_string(), source: Box::new(Error::Invalid(m)) };
        let from = match table.remove("from") {
            Some(toml::Value::String(s)) => Some(s),
            Some(other) => return Err(bad(format!("`from` names another bag, not {other}"))),
            None => None,
        };
        if table.len() != 1 {
            let keys: Vec<&String> = table.keys().collect();
            return Err(bad(format!(
                "a bag is made by exactly one operation (one of {}), got {keys:?}",
                BAG_OPERATIONS.join(", ")
            )));
        }
        let op: BagOp = toml::Value::Table(table).try_into().map_err(|e| bad(format!("{e}")))?;
        if op.is_source() == from.is_some() {
            return Err(bad(if from.is_some() {
                "a bag read from storage or made from a dataset takes no `from`".into()
            } else {
                "this operation needs `from = \"<bag>\"`".into()
            }));
        }
        Ok(BagSpec { from, op })
    }
}

const BAG_OPERATIONS: &[&str] = &[
    "read_text",
    "read_json",
    "from_dataset",
    "map",
    "filter",
    "remove",
    "flatten",
    "pluck",
    "map_partitions",
    "take",
    "count",
    "sum",
    "min",
    "max",
    "mean",
    "distinct",
    "frequencies",
    "topk",
    "fold",
    "foldby",
    "groupby",
];

/// A bag's operation, named as in the job file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BagOp {
    ReadText(ReadSpec),
    ReadJson(ReadSpec),
    /// A dataset's rows as JSON objects.
    FromDataset(String),
    Map(FunctionSpec),
    Filter(FilterSpec),
    Remove(FilterSpec),
    Flatten(bool),
    Pluck(PluckSpec),
    MapPartitions(FunctionSpec),
    Take(usize),
    Count(bool),
    Sum(String),
    Min(String),
    Max(String),
    Mean(String),
    Distinct(bool),
    Frequencies(FrequenciesSpec),
    Topk(TopkSpec),
    Fold(FoldSpec),
    Foldby(FoldbySpec),
    Groupby(GroupbySpec),
}

impl BagOp {
    fn is_source(&self) -> bool {
        matches!(self, BagOp::ReadText(_) | BagOp::ReadJson(_) | BagOp::FromDataset(_))
    }
}

/// `"path"` or `{ path, blocksize, encoding, errors = "skip" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ReadSpec {
    Path(String),
    Full { path: String, blocksize: Option<String>, encoding: Option<String>, errors: Option<String> },
}

/// `{ module, function, args }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    pub module: String,
    pub function: String,
    #[serde(default)]
    pub args: Option<Value>,
}

/// An SQL-like predicate over item fields, or a function.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FilterSpec {
    Predicate(String),
    Function(FunctionSpec),
}

/// `"path"` or `{ path, default }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PluckSpec {
    Path(String),
    Full { path: String, default: Value },
}

/// `true` / `false` (sorted) or `{ sort }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FrequenciesSpec {
    Sort(bool),
    Full { sort: bool },
}

/// `{ k, key = "path", largest = true }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopkSpec {
    pub k: usize,
    pub key: Option<String>,
    pub largest: Option<bool>,
}

/// `{ module, binop, args, initial, combine }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FoldSpec {
    pub module: String,
    pub binop: String,
    #[serde(default)]
    pub args: Option<Value>,
    pub initial: Value,
    pub combine: Option<String>,
}

/// `{ key = "path", module, binop, args, initial, combine, combine_initial }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FoldbySpec {
    pub key: String,
    pub module: String,
    pub binop: String,
    #[serde(default)]
    pub args: Option<Value>,
    pub initial: Value,
    pub combine: Option<String>,
    pub combine_initial: Option<Value>,
}

/// `{ key = "path", npartitions }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupbySpec {
    pub key: String,
    pub npartitions: Option<usize>,
}

/// What building bags may use.
#[derive(Debug)]
pub struct BagEnv<'a> {
    pub client: &'a Client,
    pub base_dir: &'a Path,
    pub modules: &'a mut HashMap<String, FunctionModule>,
    pub datasets: &'a HashMap<String, DataFrame>,
}

impl BagEnv<'_> {
    async fn module(&mut self, location: &str) -> Result<FunctionModule> {
        super::env::load_module(self.client, self.base_dir, self.modules, location).await
    }

    fn read_options(spec: &ReadSpec) -> Result<(&str, TextRead)> {
        Ok(match spec {
            ReadSpec::Path(p) => (p.as_str(), TextRead::default()),
            ReadSpec::Full { path, blocksize, encoding, errors } => {
                let skip_errors = match errors.as_deref() {
                    None | Some("raise") => false,
                    Some("skip") => true,
                    Some(other) => {
                        return Err(Error::Invalid(format!(
                            "errors = \"{other}\": use \"raise\" or \"skip\""
                        )));
                    }
                };
                let blocksize = blocksize.as_deref().map(crate::units::parse_size).transpose()?;
                (path.as_str(), TextRead { blocksize, encoding: encoding.clone(), skip_errors })
            }
        })
    }
}

/// Builds a bag by `op` from `input` (`None` for a source).
pub async fn apply(op: &BagOp, input: Option<Bag>, env: &mut BagEnv<'_>) -> Result<Bag> {
    let input = || input.clone().ok_or_else(|| Error::Invalid("this operation needs `from`".into()));
    let args = |a: &Option<Value>| a.clone().unwrap_or_else(|| Value::Object(Default::default()));
    Ok(match op {
        BagOp::ReadText(spec) | BagOp::ReadJson(spec) => {
            let (path, options) = BagEnv::read_options(spec)?;
            let path = resolve(env.base_dir, path);
            match op {
                BagOp::ReadText(_) => env.client.bag().read_text(&path, options).await?,
                _ => env.client.bag().read_json(&path, options).await?,
            }
        }
        BagOp::FromDataset(name) => env
            .datasets
            .get(name)
            .ok_or_else(|| Error::Invalid(format!("from_dataset: unknown dataset '{name}'")))?
            .to_bag()?,
        BagOp::Map(f) => input()?.map(&env.module(&f.module).await?, &f.function, args(&f.args))?,
        BagOp::MapPartitions(f) => {
            input()?.map_partitions(&env.module(&f.module).await?, &f.function, args(&f.args))?
        }
        BagOp::Filter(FilterSpec::Predicate(p)) => input()?.filter_where(p)?,
        BagOp::Remove(FilterSpec::Predicate(p)) => input()?.remove_where(p)?,
        BagOp::Filter(FilterSpec::Function(f)) => {
            input()?.filter(&env.module(&f.module).await?, &f.function, args(&f.args))?
        }
        BagOp::Remove(FilterSpec::Function(f)) => {
            input()?.remove(&env.module(&f.module).await?, &f.function, args(&f.args))?
        }
        BagOp::Flatten(_) => input()?.flatten(),
        BagOp::Pluck(PluckSpec::Path(p)) => input()?.pluck(p)?,
        BagOp::Pluck(PluckSpec::Full { path, default }) => input()?.pluck_or(path, default.clone())?,
        BagOp::Take(n) => input()?.take(*n),
        BagOp::Count(_) => input()?.count().to_bag(),
        BagOp::Sum(p) => input()?.sum(p)?.to_bag(),
        BagOp::Min(p) => input()?.min(p)?.to_bag(),
        BagOp::Max(p) => input()?.max(p)?.to_bag(),
        BagOp::Mean(p) => input()?.mean(p)?.to_bag(),
        BagOp::Distinct(_) => input()?.distinct(),
        BagOp::Frequencies(FrequenciesSpec::Sort(sort) | FrequenciesSpec::Full { sort }) => {
            input()?.frequencies(*sort)
        }
        BagOp::Topk(t) => {
            let key = t.key.as_deref().map_or(Key::Item, Key::Path);
            input()?.topk(t.k, key, t.largest.unwrap_or(true))?
        }
        BagOp::Fold(f) => {
            let m = env.module(&f.module).await?;
            let binop = Binop::new(&m, &f.binop).args(args(&f.args));
            input()?.fold(binop, f.combine.as_deref().map(|c| Binop::new(&m, c)), f.initial.clone())?.to_bag()
        }
        BagOp::Foldby(f) => {
            let m = env.module(&f.module).await?;
            let binop = Binop::new(&m, &f.binop).args(args(&f.args));
            let combine = f.combine.as_deref().map(|c| Binop::new(&m, c));
            input()?.foldby(
                Key::Path(&f.key),
                binop,
                f.initial.clone(),
                combine,
                f.combine_initial.clone(),
            )?
        }
        BagOp::Groupby(g) => {
            let input = input()?;
            let n = g.npartitions.unwrap_or_else(|| input.npartitions());
            input.groupby(Key::Path(&g.key), n)?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BagSpec> {
        let table: toml::Table = toml::from_str(text).unwrap();
        BagSpec::parse("b", table)
    }

    #[test]
    fn bag_tables_parse_and_bad_ones_are_named() {
        assert!(matches!(parse("read_json = 'x'").unwrap().op, BagOp::ReadJson(ReadSpec::Path(_))));
        let f = parse("from = 'a'\nfilter = 'status >= 500'").unwrap();
        assert!(matches!(f.op, BagOp::Filter(FilterSpec::Predicate(_))) && f.from.as_deref() == Some("a"));
        let f = parse("from = 'a'\nfilter = { module = 'm', function = 'f' }").unwrap();
        assert!(matches!(f.op, BagOp::Filter(FilterSpec::Function(_))));
        let p = parse("from = 'a'\npluck = { path = 'u.c', default = 'x' }").unwrap();
        assert!(matches!(p.op, BagOp::Pluck(PluckSpec::Full { .. })));
        let fb = "from = 'a'\nfoldby = { key = 'm', module = 'x', binop = 'add', initial = 0 }";
        assert!(matches!(parse(fb).unwrap().op, BagOp::Foldby(_)));
        let err = parse("from = 'a'\nfilter = 'x'\npluck = 'y'").unwrap_err().to_string();
        assert!(err.contains("bag 'b'") && err.contains("exactly one operation"), "{err}");
        let err = parse("filter = 'x'").unwrap_err().to_string();
        assert!(err.contains("needs `from"), "{err}");
        let err = parse("from = 'a'\nread_text = 'x'").unwrap_err().to_string();
        assert!(err.contains("takes no `from`"), "{err}");
        assert!(parse("from = 'a'\nsquash = 1").unwrap_err().to_string().contains("squash"));
    }
}
