//! Job files (TOML): named datasets, each read from storage or built from another dataset by
//! exactly one operation, and the outputs to produce.
//!
//! ```toml
//! [datasets.trips]
//! read_csv = "trips.csv"              # or read_parquet = "data/*.parquet"
//!
//! [datasets.long]
//! from = "trips"
//! filter = "distance_km > 2"
//!
//! [datasets.priced]
//! from = "long"
//! assign = { tip = "fare * 0.15", total = "fare + tip" }
//!
//! [datasets.by_vendor]
//! from = "priced"
//! groupby = ["vendor"]
//! agg = { revenue = ["total", "sum"], trips = ["total", "size"], p90 = "approx_percentile_cont(0.9) WITHIN GROUP (ORDER BY total)" }
//!
//! [datasets.with_zone]
//! from = "priced"
//! merge = { right = "zones", on = ["zone_id"], how = "left" }
//!
//! [values.rows]                        # a Delayed value: one call of a `value` function
//! call = { module = "builtin:examples", function = "total_len", inputs = ["priced"] }
//!
//! [[outputs]]
//! dataset = "priced"
//! to_parquet = "out/priced"            # or: to_csv = "…", to_json = "…", show = true
//!
//! [[outputs]]
//! value = "rows"                       # every value is printed; this also writes it
//! to_json = "out/rows.json"
//! ```
//! Relative paths are relative to the job file's directory.
//!
//! Layout: this file holds the job file, its outputs and the [`Builder`];
//! [`dataset`] checks a dataset's table (exactly one operation, its modifiers, `from`);
//! [`operation`] is the [`Operation`] enum, which only dispatches; each family of operations
//! has a module with its keys and its application to a [`DataFrame`] — [`read`], [`rows`]
//! (filter, select, assign, head, map_partitions), [`aggregate`] (agg, value_counts,
//! drop_duplicates), [`join`] (merge), [`order`] (sort_values, set_index, nlargest, nsmallest,
//! repartition); [`env`] is what an operation may use (client, locations, modules, inputs);
//! [`values`] holds the `[values.NAME]` calls (Delayed values); [`bags`] the `[bags.NAME]`
//! tables (Bags; written with `to_textfiles` or shown); [`arrays`] the `[arrays.NAME]` tables
//! (Arrays; written with `to_zarr` or shown), whose `expr` is parsed by [`array_expr`].

use crate::client::{Client, FunctionModule};
use crate::collections::dataframe::DataFrame;
use crate::error::{Error, Result};
use serde::Deserialize;
use shoal_protocol::PartFormat;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub mod aggregate;
pub mod array_expr;
pub mod arrays;
pub mod bags;
pub mod dataset;
pub mod env;
pub mod join;
mod names;
pub mod operation;
pub mod order;
pub mod read;
pub mod rows;
pub mod values;

pub use dataset::Dataset;
pub use operation::Operation;
pub use values::ValueSpec;

/// A parsed job file.
#[derive(Debug, Clone)]
pub struct JobFile {
    pub datasets: BTreeMap<String, Dataset>,
    /// Delayed values, `[values.NAME]`.
    pub values: BTreeMap<String, ValueSpec>,
    /// Bags, `[bags.NAME]`.
    pub bags: BTreeMap<String, bags::BagSpec>,
    /// Arrays, `[arrays.NAME]`.
    pub arrays: BTreeMap<String, arrays::ArraySpec>,
    pub outputs: Vec<OutputSpec>,
    /// Directory relative paths are resolved against (the job file's).
    pub base_dir: PathBuf,
}

/// The file as TOML gives it: each dataset a table, checked by [`Dataset::parse`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJobFile {
    #[serde(default)]
    datasets: BTreeMap<String, toml::Table>,
    #[serde(default)]
    values: BTreeMap<String, ValueSpec>,
    #[serde(default)]
    bags: BTreeMap<String, toml::Table>,
    #[serde(default)]
    arrays: BTreeMap<String, toml::Table>,
    #[serde(default)]
    outputs: Vec<OutputSpec>,
}

/// What to do with a dataset, or with a value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// The dataset written or shown (exactly one of `dataset` and `value`).
    pub dataset: Option<String>,
    /// The value written (`to_json`: one JSON document at that path) or shown.
    pub value: Option<String>,
    /// The bag written (`to_textfiles`) or shown (its items, one JSON per line).
    pub bag: Option<String>,
    /// Write one text file per partition of the bag, and a `_SUCCESS` manifest, under this
    /// location.
    pub to_textfiles: Option<String>,
    /// With `to_textfiles`: gzip-compressed parts (`part-00000.txt.gz`).
    #[serde(default)]
    pub gzip: bool,
    /// The array written (`to_zarr`) or shown.
    pub array: Option<String>,
    /// Write the array as a Zarr v3 array at this location.
    pub to_zarr: Option<String>,
    /// With `to_zarr`: the compressor, `zstd` (default), `gzip`, `blosc` or `none`.
    pub codec: Option<String>,
    /// Write Parquet parts and a `_SUCCESS` manifest under this location.
    pub to_parquet: Option<String>,
    /// Write CSV parts (as pandas' `to_csv`) and a `_SUCCESS` manifest under this location.
    pub to_csv: Option<String>,
    /// Write JSON lines parts (as pandas' `to_json(orient="records", lines=True)`) and a
    /// `_SUCCESS` manifest under this location.
    pub to_json: Option<String>,
    /// Print the dataset as a table.
    #[serde(default)]
    pub show: bool,
    /// Rows to print with `show` (default 20).
    pub rows: Option<usize>,
}

impl OutputSpec {
    /// The dataset's or the value's name.
    pub fn name(&self) -> &str {
        self.dataset
            .as_deref()
            .or(self.value.as_deref())
            .or(self.bag.as_deref())
            .or(self.array.as_deref())
            .unwrap_or_default()
    }

    /// Where the output is written, if it is written: its format and location as the job file
    /// gives it.
    pub fn destination(&self) -> Option<(PartFormat, &str)> {
        self.destinations().into_iter().next()
    }

    /// Every destination the output names (a valid output names at most one).
    fn destinations(&self) -> Vec<(PartFormat, &str)> {
        [
            (PartFormat::Parquet, &self.to_parquet),
            (PartFormat::Csv, &self.to_csv),
            (PartFormat::JsonLines, &self.to_json),
        ]
        .into_iter()
        .filter_map(|(format, loc)| loc.as_deref().map(|l| (format, l)))
        .collect()
    }

    /// Exactly one of `dataset` and `value`; exactly one of `to_parquet`, `to_csv`, `to_json`
    /// and `show = true` (a value: `to_json` or `show`).
    fn check(&self) -> Result<()> {
        let subjects =
            [&self.dataset, &self.value, &self.bag, &self.array].iter().filter(|s| s.is_some()).count();
        if subjects != 1 {
            return Err(Error::Invalid(
                "an output names exactly one of `dataset = \"...\"`, `value = \"...\"`, `bag = \"...\"` and `array = \"...\"`"
                    .into(),
            ));
        }
        if self.array.is_some() {
            if !self.destinations().is_empty()
                || self.to_textfiles.is_some()
                || self.to_zarr.is_some() == self.show
            {
                return Err(Error::Invalid(format!(
                    "output of array '{}': an array is written with `to_zarr = \"...\"` or shown with `show = true` (one of them)",
                    self.name()
                )));
            }
            return Ok(());
        }
        if self.to_zarr.is_some() || self.codec.is_some() {
            return Err(Error::Invalid(format!("output of '{}': to_zarr writes an array", self.name())));
        }
        if self.bag.is_some() {
            if !self.destinations().is_empty() || self.to_textfiles.is_some() == self.show {
                return Err(Error::Invalid(format!(
                    "output of bag '{}': a bag is written with `to_textfiles = \"...\"` or shown with `show = true` (one of them)",
                    self.name()
                )));
            }
            return Ok(());
        }
        if self.to_textfiles.is_some() {
            return Err(Error::Invalid(format!("output of '{}': to_textfiles writes a bag", self.name())));
        }
        if self.value.is_some() && (self.to_parquet.is_some() || self.to_csv.is_some()) {
            return Err(Error::Invalid(format!(
                "output of value '{}': a value is written with `to_json = \"...\"` (one JSON document) or shown",
                self.name()
            )));
        }
        let mut named: Vec<String> =
            self.destinations().iter().map(|(format, _)| format!("to_{}", format.name())).collect();
        if self.show {
            named.push("show".into());
        }
        match named.len() {
            1 => Ok(()),
            0 => Err(Error::Invalid(format!(
                "output of '{}' needs one of `to_parquet = \"...\"`, `to_csv = \"...\"`, \
                 `to_json = \"...\"` or `show = true`",
                self.name()
            ))),
            _ => Err(Error::Invalid(format!(
                "output of '{}' names {}: an output does exactly one of to_parquet, to_csv, \
                 to_json and show (write another [[outputs]] for each)",
                self.name(),
                named.join(" and ")
            ))),
        }
    }
}

impl JobFile {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Invalid(format!("cannot read job file {}: {e}", path.display())))?;
        let mut job = Self::parse(&text).map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(format!("{}: {m}", path.display())),
            other => other,
        })?;
        job.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(job)
    }

    pub fn parse(text: &str) -> Result<Self> {
        let raw: RawJobFile =
            toml::from_str(text).map_err(|e| Error::Invalid(format!("invalid job file: {e}")))?;
        let datasets = raw
            .datasets
            .into_iter()
            .map(|(name, table)| Ok((name.clone(), Dataset::parse(&name, table)?)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        let bags = raw
            .bags
            .into_iter()
            .map(|(name, table)| Ok((name.clone(), bags::BagSpec::parse(&name, table)?)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        let arrays = raw
            .arrays
            .into_iter()
            .map(|(name, table)| Ok((name.clone(), arrays::ArraySpec::parse(&name, table)?)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        let job = JobFile {
            datasets,
            values: raw.values,
            bags,
            arrays,
            outputs: raw.outputs,
            base_dir: PathBuf::new(),
        };
        for name in job.values.keys().chain(job.bags.keys()).chain(job.arrays.keys()) {
            let kinds: Vec<&str> = [
                ("dataset", job.datasets.contains_key(name)),
                ("value", job.values.contains_key(name)),
                ("bag", job.bags.contains_key(name)),
                ("array", job.arrays.contains_key(name)),
            ]
            .into_iter()
            .filter_map(|(k, has)| has.then_some(k))
            .collect();
            if kinds.len() > 1 {
                return Err(Error::Invalid(format!(
                    "'{name}' names both a {}: datasets, values, bags and arrays share one namespace",
                    kinds.join(" and a ")
                )));
            }
        }
        if job.outputs.is_empty() && job.values.is_empty() {
            return Err(Error::Invalid("the job has no [[outputs]] and no [values]: nothing to do".into()));
        }
        for o in &job.outputs {
            o.check()?;
            if let Some(d) = o.dataset.as_deref().filter(|d| !job.datasets.contains_key(*d)) {
                return Err(Error::Invalid(format!(
                    "output refers to unknown dataset '{d}' (defined: {})",
                    job.dataset_names()
                )));
            }
            if let Some(v) = o.value.as_deref().filter(|v| !job.values.contains_key(*v)) {
                return Err(Error::Invalid(format!("output refers to unknown value '{v}'")));
            }
            if let Some(a) = o.array.as_deref().filter(|a| !job.arrays.contains_key(*a)) {
                return Err(Error::Invalid(format!(
                    "output refers to unknown array '{a}' (defined: {})",
                    job.arrays.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            if let Some(b) = o.bag.as_deref().filter(|b| !job.bags.contains_key(*b)) {
                return Err(Error::Invalid(format!(
                    "output refers to unknown bag '{b}' (defined: {})",
                    job.bags.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        for (name, spec) in &job.values {
            let known = |i: &String| job.values.contains_key(i) || job.datasets.contains_key(i);
            if let Some(i) = spec.call.inputs.iter().find(|i| !known(i)) {
                return Err(Error::Value {
                    name: name.clone(),
                    source: Box::new(Error::Invalid(format!(
                        "input '{i}' is neither a value nor a dataset (datasets: {})",
                        job.dataset_names()
                    ))),
                });
            }
        }
        Ok(job)
    }

    /// Resolves a location written in the job file: URLs as they are, paths against the job
    /// file's directory.
    pub fn location(&self, loc: &str) -> String {
        env::resolve(&self.base_dir, loc)
    }

    fn dataset_names(&self) -> String {
        self.datasets.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// Builds the job's datasets as DataFrames (reading only metadata).
#[derive(Debug)]
pub struct Builder<'a> {
    job: &'a JobFile,
    client: &'a Client,
    built: HashMap<String, DataFrame>,
    bags: HashMap<String, crate::collections::bag::Bag>,
    arrays: HashMap<String, crate::collections::array::Array>,
    modules: HashMap<String, FunctionModule>,
}

impl<'a> Builder<'a> {
    pub fn new(job: &'a JobFile, client: &'a Client) -> Self {
        Self {
            job,
            client,
            built: HashMap::new(),
            bags: HashMap::new(),
            arrays: HashMap::new(),
            modules: HashMap::new(),
        }
    }

    /// The DataFrame of a named dataset.
    pub async fn dataset(&mut self, name: &str) -> Result<DataFrame> {
        let mut visiting = Vec::new();
        self.build(name, &mut visiting).await
    }

    /// The job's values as Delayed values (planned, not run), after the datasets they read.
    pub async fn values(&mut self) -> Result<BTreeMap<String, crate::collections::delayed::Delayed>> {
        for name in values::datasets_read(&self.job.values) {
            self.dataset(name).await?;
        }
        let env = values::ValueEnv {
            client: self.client,
            base_dir: &self.job.base_dir,
            modules: &mut self.modules,
            datasets: &self.built,
        };
        values::build(&self.job.values, env).await
    }

    /// The Array of a named `[arrays.NAME]`, after the arrays (and dataset) it reads.
    pub async fn array(&mut self, name: &str) -> Result<crate::collections::array::Array> {
        // Depth-first over `from` and the arrays an operation reads, with an explicit stack.
        let mut stack = vec![(name.to_string(), false)];
        let mut visiting: Vec<String> = Vec::new();
        while let Some((at, ready)) = stack.pop() {
            if self.arrays.contains_key(&at) {
                continue;
            }
            let spec = self.job.arrays.get(&at).ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown array '{at}' (defined: {})",
                    self.job.arrays.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })?;
            let wrap = |e: Error| Error::Array { name: at.clone(), source: Box::new(e) };
            let mut needs: Vec<String> = spec.from.iter().cloned().collect();
            needs.extend(spec.op.reads().map_err(wrap)?);
            if !ready {
                if visiting.contains(&at) {
                    visiting.push(at.clone());
                    return Err(Error::Invalid(format!("arrays form a cycle: {}", visiting.join(" -> "))));
                }
                visiting.push(at.clone());
                stack.push((at.clone(), true));
                stack.extend(needs.into_iter().filter(|n| !self.arrays.contains_key(n)).map(|n| (n, false)));
                continue;
            }
            visiting.retain(|v| v != &at);
            let dataset = match spec.op.dataset() {
                Some(d) => Some(self.dataset(d).await.map_err(wrap)?),
                None => None,
            };
            let input = spec.from.as_ref().and_then(|f| self.arrays.get(f).cloned());
            let mut env = arrays::ArrayEnv {
                client: self.client,
                base_dir: &self.job.base_dir,
                modules: &mut self.modules,
                dataset,
                arrays: &self.arrays,
            };
            let array = arrays::apply(&spec.op, input, &mut env).await.map_err(wrap)?;
            self.arrays.insert(at, array);
        }
        self.arrays.get(name).cloned().ok_or_else(|| Error::Invalid(format!("array '{name}' was not built")))
    }

    /// The Bag of a named `[bags.NAME]`, after the bags (and dataset) it reads.
    pub async fn bag(&mut self, name: &str) -> Result<crate::collections::bag::Bag> {
        let mut chain: Vec<String> = Vec::new();
        let mut at = name.to_string();
        // Walk `from` down to something built (or a source), then build back up.
        loop {
            if self.bags.contains_key(&at) {
                break;
            }
            if chain.contains(&at) {
                chain.push(at);
                return Err(Error::Invalid(format!("bags form a cycle: {}", chain.join(" <- "))));
            }
            let spec = self.job.bags.get(&at).ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown bag '{at}' (defined: {})",
                    self.job.bags.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })?;
            chain.push(at.clone());
            match &spec.from {
                Some(from) => at = from.clone(),
                None => break,
            }
        }
        while let Some(next) = chain.pop() {
            let spec = &self.job.bags[&next];
            if let bags::BagOp::FromDataset(d) = &spec.op {
                self.dataset(d).await.map_err(|e| Error::Bag { name: next.clone(), source: Box::new(e) })?;
            }
            let input = spec.from.as_ref().and_then(|f| self.bags.get(f).cloned());
            let mut env = bags::BagEnv {
                client: self.client,
                base_dir: &self.job.base_dir,
                modules: &mut self.modules,
                datasets: &self.built,
            };
            let bag = bags::apply(&spec.op, input, &mut env)
                .await
                .map_err(|e| Error::Bag { name: next.clone(), source: Box::new(e) })?;
            self.bags.insert(next, bag);
        }
        self.bags.get(name).cloned().ok_or_else(|| Error::Invalid(format!("bag '{name}' was not built")))
    }

    /// Builds `name` after the datasets it reads; `visiting` is the chain of datasets waiting
    /// for it, to report a cycle.
    async fn build(&mut self, name: &str, visiting: &mut Vec<String>) -> Result<DataFrame> {
        if let Some(df) = self.built.get(name) {
            return Ok(df.clone());
        }
        if visiting.iter().any(|v| v == name) {
            visiting.push(name.to_string());
            return Err(Error::Invalid(format!("datasets form a cycle: {}", visiting.join(" -> "))));
        }
        let job = self.job;
        let dataset = job.datasets.get(name).ok_or_else(|| {
            Error::Invalid(format!("unknown dataset '{name}' (defined: {})", job.dataset_names()))
        })?;
        visiting.push(name.to_string());
        for input in dataset.inputs() {
            Box::pin(self.build(input, visiting)).await?;
        }
        visiting.pop();
        let df = self
            .apply(dataset)
            .await
            .map_err(|e| Error::Dataset { name: name.to_string(), source: Box::new(e) })?;
        self.built.insert(name.to_string(), df.clone());
        Ok(df)
    }

    /// Applies the dataset's operation to its inputs, all built already.
    async fn apply(&mut self, dataset: &Dataset) -> Result<DataFrame> {
        let mut env = env::Env::new(
            self.client,
            &self.job.base_dir,
            &self.built,
            &mut self.modules,
            dataset.from.as_deref(),
        );
        let df = dataset.operation.apply(&mut env).await?;
        // The plan that will run, checked now: an error names this dataset, not a task.
        df.validate()?;
        Ok(df)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JoinHint;
    use crate::collections::dataframe::Agg;
    use shoal_protocol::{JoinHow, SortKey};

    #[test]
    fn values_and_their_outputs_parse() {
        let job = JobFile::parse(
            "[datasets.t]\nread_csv='f'\n\
             [values.n]\ncall = { module = 'builtin:examples', function = 'total_len', inputs = ['t'] }\n\
             [values.s]\ncall = { module = 'builtin:examples', function = 'add_values', args = [1], inputs = ['n'] }\n\
             [[outputs]]\nvalue = 's'\nto_json = 'out/s.json'",
        )
        .unwrap();
        assert_eq!(job.values["s"].call.inputs, ["n"]);
        assert_eq!(job.outputs[0].name(), "s");
        assert!(JobFile::parse("[values.v]\ncall = { module = 'm', function = 'f' }").is_ok());
        let err = JobFile::parse("[values.v]\ncall = { module = 'm', function = 'f', inputs = ['x'] }")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("value 'v': input 'x' is neither a value nor a dataset"), "{err}");
        let err = JobFile::parse(
            "[values.v]\ncall = { module = 'm', function = 'f' }\n[[outputs]]\nvalue='v'\nto_csv='o'",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("a value is written with `to_json"), "{err}");
    }

    #[test]
    fn an_output_names_exactly_one_destination() {
        let job = |outputs: &str| JobFile::parse(&format!("[datasets.a]\nread_parquet='x'\n{outputs}"));
        let ok =
            job("[[outputs]]\ndataset='a'\nto_csv='o/c'\n[[outputs]]\ndataset='a'\nto_json='o/j'").unwrap();
        assert_eq!(ok.outputs[0].destination(), Some((PartFormat::Csv, "o/c")));
        assert_eq!(ok.outputs[1].destination(), Some((PartFormat::JsonLines, "o/j")));
        let two = job("[[outputs]]\ndataset='a'\nto_json='o'\nto_parquet='p'").unwrap_err().to_string();
        assert!(two.contains("output of 'a' names to_parquet and to_json"), "{two}");
        let none = job("[[outputs]]\ndataset='a'\nrows=3").unwrap_err().to_string();
        assert!(none.contains("output of 'a' needs one of"), "{none}");
    }

    #[test]
    fn relational_operations_parse() {
        let job = JobFile::parse(
            "[datasets.a]\nread_parquet='x'\n\
             [datasets.g]\nfrom='a'\ngroupby=['k']\nsplit_out=4\nagg={ total = ['v', 'sum'], n = 'count(*)' }\n\
             [datasets.m]\nfrom='a'\nmerge={ right = 'g', on = ['k'], how = 'left', strategy = 'hash' }\n\
             [datasets.s]\nfrom='a'\nsort_values={ by = ['k', 'v'], ascending = [true, false], na_position = 'first' }\n\
             [[outputs]]\ndataset='m'\nshow=true",
        )
        .unwrap();
        let Operation::Agg(g) = &job.datasets["g"].operation else { panic!("{:?}", job.datasets["g"]) };
        let aggs = g.aggs().unwrap();
        assert_eq!(aggs, [Agg::sql("total", "sum(\"v\")"), Agg::sql("n", "count(*)")]);
        assert_eq!((g.groupby.as_deref(), g.split_out), (Some(&["k".to_string()][..]), Some(4)));
        let Operation::SortValues(s) = &job.datasets["s"].operation else { panic!() };
        let keys = s.sort_values.keys().unwrap();
        assert_eq!(keys[1], SortKey { column: "v".into(), ascending: false, nulls_first: true });
        let Operation::Merge(m) = &job.datasets["m"].operation else { panic!() };
        let options = m.merge.options().unwrap();
        assert_eq!((options.how, options.strategy), (JoinHow::Left, Some(JoinHint::Hash)));
        assert_eq!(job.datasets["m"].inputs().collect::<Vec<_>>(), ["a", "g"]);
        let bad = join::MergeSpec { on: None, ..m.merge.clone() };
        assert!(bad.options().unwrap_err().to_string().contains("left_on"));
    }

    #[test]
    fn rejects_unknown_keys_and_missing_outputs() {
        let err = JobFile::parse(
            "[datasets.a]\nread_parquet = 'x'\nfliter = 'a'\n[[outputs]]\ndataset='a'\nshow=true",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("fliter"), "{err}");
        let err = JobFile::parse("[datasets.a]\nread_parquet = 'x'\n").unwrap_err().to_string();
        assert!(err.contains("no [[outputs]]"), "{err}");
        let err = JobFile::parse("[datasets.a]\nread_parquet = 'x'\n[[outputs]]\ndataset='b'\nshow=true")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown dataset 'b'"), "{err}");
    }

    #[test]
    fn assign_keeps_file_order() {
        let job = JobFile::parse(
            "[datasets.a]\nfrom='x'\nassign = { z = '1', a = 'z + 1' }\n[datasets.x]\nread_csv='f'\n[[outputs]]\ndataset='a'\nshow=true",
        )
        .unwrap();
        let Operation::Assign(assign) = &job.datasets["a"].operation else { panic!() };
        let keys: Vec<_> = assign.assign.keys().cloned().collect();
        assert_eq!(keys, ["z", "a"]);
    }

    #[test]
    fn dataset_errors_name_the_dataset_and_keep_their_kind() {
        let err = JobFile::parse(
            "[datasets.a]\nfrom = 'b'\nfilter = 'x'\nhead = 2\n[[outputs]]\ndataset='a'\nshow=true",
        )
        .unwrap_err();
        assert!(matches!(&err, Error::Dataset { name, .. } if name == "a"), "{err:?}");
        assert!(matches!(err.root(), Error::Invalid(_)), "{err:?}");
        assert!(err.to_string().ends_with("it has 2: filter, head"), "{err}");
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert!(source.is_some_and(|s| s.starts_with("must have exactly one operation")));
    }

    #[test]
    fn drop_duplicates_rejects_entries_that_are_not_column_names() {
        let job = JobFile::parse(
            "[datasets.a]\nread_csv = 'f'\n[datasets.d]\nfrom = 'a'\ndrop_duplicates = ['k', 3]\n\
             [datasets.e]\nfrom = 'a'\ndrop_duplicates = ['k', 'v']\n[[outputs]]\ndataset='d'\nshow=true",
        )
        .unwrap();
        let Operation::DropDuplicates(d) = &job.datasets["d"].operation else { panic!() };
        let err = Error::Dataset { name: "d".into(), source: Box::new(d.subset().unwrap_err()) };
        assert_eq!(
            err.to_string(),
            "dataset 'd': drop_duplicates: entry 2 (3) is not a column name (a string)"
        );
        let Operation::DropDuplicates(e) = &job.datasets["e"].operation else { panic!() };
        assert_eq!(e.subset().unwrap(), Some(vec!["k", "v"]));
    }

    #[test]
    fn map_partitions_args_are_json() {
        let job = JobFile::parse(
            "[datasets.a]\nread_csv = 'f'\n[datasets.m]\nfrom = 'a'\n\
             map_partitions = { module = 'builtin:examples', function = 'f', args = { factor = 2.5, tags = ['x'] } }\n\
             [[outputs]]\ndataset='m'\nshow=true",
        )
        .unwrap();
        let Operation::MapPartitions(mp) = &job.datasets["m"].operation else { panic!() };
        assert_eq!(mp.map_partitions.args, Some(serde_json::json!({ "factor": 2.5, "tags": ["x"] })));
    }
}
