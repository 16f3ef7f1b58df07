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
//! [[outputs]]
//! dataset = "priced"
//! to_parquet = "out/priced"            # or: show = true
//! ```
//! Relative paths are relative to the job file's directory.

use crate::client::{Client, FunctionModule};
use crate::collections::dataframe::plan::JoinHint;
use crate::collections::dataframe::{Agg, DataFrame, Merge, agg_sql};
use crate::error::{Error, Result};
use serde::Deserialize;
use shoal_protocol::{CsvOptions, JoinHow, SortKey};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// A parsed job file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    #[serde(default)]
    pub datasets: BTreeMap<String, DatasetSpec>,
    #[serde(default)]
    pub outputs: Vec<OutputSpec>,
    /// Directory relative paths are resolved against (the job file's).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// One dataset: a read, or one operation on another dataset.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    pub read_parquet: Option<String>,
    pub read_csv: Option<String>,
    /// CSV: whether the first line is a header (default true).
    pub header: Option<bool>,
    /// CSV: field delimiter (default `,`).
    pub delimiter: Option<char>,
    /// The dataset this one is built from.
    pub from: Option<String>,
    pub filter: Option<String>,
    pub select: Option<Vec<String>>,
    /// Columns to add, in order: `{ name = "sql expression", ... }`.
    pub assign: Option<toml::Table>,
    pub map_partitions: Option<MapPartitionsSpec>,
    pub head: Option<usize>,
    /// Grouping columns for `agg` (without it, `agg` reduces the whole table to one row).
    pub groupby: Option<Vec<String>>,
    /// Named aggregations: `name = ["column", "func"]` (pandas' named aggregation) or
    /// `name = "SQL aggregate expression"`.
    pub agg: Option<toml::Table>,
    /// Output partitions of a group-by (more than 1: hash shuffle; 1: tree reduction).
    pub split_out: Option<usize>,
    /// Inputs per combine task of a tree reduction.
    pub split_every: Option<usize>,
    pub merge: Option<MergeSpec>,
    pub sort_values: Option<SortSpec>,
    /// Column to sort by and make the index (range partitions with recorded divisions).
    pub set_index: Option<String>,
    pub repartition: Option<RepartitionSpec>,
    pub nlargest: Option<TopSpec>,
    pub nsmallest: Option<TopSpec>,
    /// Column whose distinct values are counted (most frequent first).
    pub value_counts: Option<String>,
    /// `true` for distinct rows, or the columns that define a duplicate.
    pub drop_duplicates: Option<toml::Value>,
}

/// `merge = { right = "zones", on = ["zone_id"], how = "left" }`; the left side is `from`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeSpec {
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

/// `sort_values = { by = ["a", "b"], ascending = [true, false], na_position = "last" }`.
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

/// `repartition = { npartitions = 8 }` or `repartition = { partition_size = "100MB" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepartitionSpec {
    pub npartitions: Option<usize>,
    pub partition_size: Option<String>,
}

/// `nlargest = { n = 5, columns = ["fare"] }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopSpec {
    pub n: usize,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapPartitionsSpec {
    /// `builtin:examples`, or a path/URL of a `.wasm` component.
    pub module: String,
    pub function: String,
    #[serde(default)]
    pub args: Option<toml::Value>,
}

/// What to do with a dataset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub dataset: String,
    /// Write Parquet parts and a `_SUCCESS` manifest under this location.
    pub to_parquet: Option<String>,
    /// Print the dataset as a table.
    #[serde(default)]
    pub show: bool,
    /// Rows to print with `show` (default 20).
    pub rows: Option<usize>,
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
        let job: JobFile =
            toml::from_str(text).map_err(|e| Error::Invalid(format!("invalid job file: {e}")))?;
        if job.outputs.is_empty() {
            return Err(Error::Invalid("the job has no [[outputs]]: nothing to do".into()));
        }
        for o in &job.outputs {
            if !job.datasets.contains_key(&o.dataset) {
                return Err(Error::Invalid(format!(
                    "output refers to unknown dataset '{}' (defined: {})",
                    o.dataset,
                    job.datasets.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            if o.to_parquet.is_none() && !o.show {
                return Err(Error::Invalid(format!(
                    "output of '{}' needs `to_parquet = \"...\"` or `show = true`",
                    o.dataset
                )));
            }
        }
        Ok(job)
    }

    /// Resolves a location written in the job file: URLs as they are, paths against the job
    /// file's directory.
    pub fn location(&self, loc: &str) -> String {
        if loc.contains("://") || loc.starts_with("builtin:") || Path::new(loc).is_absolute() {
            loc.to_string()
        } else {
            self.base_dir.join(loc).display().to_string()
        }
    }
}

/// Builds the job's datasets as DataFrames (reading only metadata).
#[derive(Debug)]
pub struct Builder<'a> {
    job: &'a JobFile,
    client: &'a Client,
    built: HashMap<String, DataFrame>,
    modules: HashMap<String, FunctionModule>,
}

impl<'a> Builder<'a> {
    pub fn new(job: &'a JobFile, client: &'a Client) -> Self {
        Self { job, client, built: HashMap::new(), modules: HashMap::new() }
    }

    /// The DataFrame of a named dataset.
    pub async fn dataset(&mut self, name: &str) -> Result<DataFrame> {
        let mut visiting = Vec::new();
        self.build(name, &mut visiting).await
    }

    async fn build(&mut self, name: &str, visiting: &mut Vec<String>) -> Result<DataFrame> {
        if let Some(df) = self.built.get(name) {
            return Ok(df.clone());
        }
        if visiting.iter().any(|v| v == name) {
            visiting.push(name.to_string());
            return Err(Error::Invalid(format!("datasets form a cycle: {}", visiting.join(" -> "))));
        }
        let spec = self.job.datasets.get(name).cloned().ok_or_else(|| {
            Error::Invalid(format!(
                "unknown dataset '{name}' (defined: {})",
                self.job.datasets.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let ctx = |e: Error| match e {
            Error::Schema(m) => Error::Schema(format!("dataset '{name}': {m}")),
            Error::Invalid(m) => Error::Invalid(format!("dataset '{name}': {m}")),
            other => other,
        };
        let ops = [
            ("read_parquet", spec.read_parquet.is_some()),
            ("read_csv", spec.read_csv.is_some()),
            ("filter", spec.filter.is_some()),
            ("select", spec.select.is_some()),
            ("assign", spec.assign.is_some()),
            ("map_partitions", spec.map_partitions.is_some()),
            ("head", spec.head.is_some()),
            ("agg", spec.agg.is_some()),
            ("merge", spec.merge.is_some()),
            ("sort_values", spec.sort_values.is_some()),
            ("set_index", spec.set_index.is_some()),
            ("repartition", spec.repartition.is_some()),
            ("nlargest", spec.nlargest.is_some()),
            ("nsmallest", spec.nsmallest.is_some()),
            ("value_counts", spec.value_counts.is_some()),
            ("drop_duplicates", spec.drop_duplicates.is_some()),
        ];
        let present: Vec<&str> = ops.iter().filter(|(_, p)| *p).map(|(n, _)| *n).collect();
        if present.len() != 1 {
            let all: Vec<&str> = ops.iter().map(|(n, _)| *n).collect();
            return Err(Error::Invalid(format!(
                "dataset '{name}' must have exactly one operation ({}); it has {}{}",
                all.join(", "),
                present.len(),
                if present.is_empty() { String::new() } else { format!(": {}", present.join(", ")) }
            )));
        }
        let only_with_agg = [
            ("groupby", spec.groupby.is_some()),
            ("split_out", spec.split_out.is_some()),
            ("split_every", spec.split_every.is_some()),
        ];
        if spec.agg.is_none()
            && let Some((key, _)) = only_with_agg.iter().find(|(_, p)| *p)
        {
            return Err(Error::Invalid(format!("dataset '{name}': `{key}` needs `agg = {{ ... }}`")));
        }
        let df = if let Some(loc) = &spec.read_parquet {
            self.client.read_parquet(&self.job.location(loc)).await.map_err(ctx)?
        } else if let Some(loc) = &spec.read_csv {
            let opts = CsvOptions {
                has_header: spec.header.unwrap_or(true),
                delimiter: spec.delimiter.map(|c| c as u8).unwrap_or(b','),
            };
            self.client.read_csv(&self.job.location(loc), opts).await.map_err(ctx)?
        } else {
            let from = spec.from.as_deref().ok_or_else(|| {
                Error::Invalid(format!("dataset '{name}' needs `from = \"<dataset>\"` for its operation"))
            })?;
            visiting.push(name.to_string());
            let input = Box::pin(self.build(from, visiting)).await?;
            visiting.pop();
            if let Some(p) = &spec.filter {
                input.filter(p.as_str()).map_err(ctx)?
            } else if let Some(cols) = &spec.select {
                input.select(cols).map_err(ctx)?
            } else if let Some(assign) = &spec.assign {
                let mut df = input;
                for (col, expr) in assign {
                    let sql = expr.as_str().ok_or_else(|| {
                        Error::Invalid(format!(
                            "dataset '{name}': assign.{col} must be an SQL expression string"
                        ))
                    })?;
                    df = df.assign(col, sql).map_err(ctx)?;
                }
                df
            } else if let Some(mp) = &spec.map_partitions {
                let module = self.module(&mp.module).await.map_err(ctx)?;
                let args = match &mp.args {
                    Some(v) => serde_json::to_value(v).map_err(|e| Error::Invalid(e.to_string()))?,
                    None => serde_json::Value::Object(Default::default()),
                };
                input.map_partitions(&module, &mp.function, args).map_err(ctx)?
            } else if let Some(n) = spec.head {
                input.head(n)
            } else if let Some(table) = &spec.agg {
                let aggs = parse_aggs(name, table)?;
                match &spec.groupby {
                    Some(keys) => {
                        let mut g = input.groupby(keys);
                        if let Some(n) = spec.split_out {
                            g = g.split_out(n);
                        }
                        if let Some(n) = spec.split_every {
                            g = g.split_every(n);
                        }
                        g.agg(&aggs).map_err(ctx)?
                    }
                    None => input.agg(&aggs).map_err(ctx)?,
                }
            } else if let Some(m) = &spec.merge {
                visiting.push(name.to_string());
                let right = Box::pin(self.build(&m.right, visiting)).await?;
                visiting.pop();
                input.merge(&right, &merge_options(name, m)?).map_err(ctx)?
            } else if let Some(sort) = &spec.sort_values {
                let keys = sort_keys(name, sort)?;
                match sort.npartitions {
                    Some(n) => input.sort_values_into(&keys, n),
                    None => input.sort_values(&keys),
                }
                .map_err(ctx)?
            } else if let Some(col) = &spec.set_index {
                input.set_index(col).map_err(ctx)?
            } else if let Some(r) = &spec.repartition {
                match (r.npartitions, &r.partition_size) {
                    (Some(n), None) => input.repartition(n),
                    (None, Some(size)) => input.repartition_size(parse_size(size).map_err(ctx)?),
                    _ => {
                        return Err(Error::Invalid(format!(
                            "dataset '{name}': repartition needs exactly one of `npartitions` or `partition_size`"
                        )));
                    }
                }
            } else if let Some(t) = &spec.nlargest {
                input.nlargest(t.n, &t.columns).map_err(ctx)?
            } else if let Some(t) = &spec.nsmallest {
                input.nsmallest(t.n, &t.columns).map_err(ctx)?
            } else if let Some(col) = &spec.value_counts {
                input.value_counts(col).map_err(ctx)?
            } else if let Some(d) = &spec.drop_duplicates {
                match d {
                    toml::Value::Boolean(true) => input.drop_duplicates(None).map_err(ctx)?,
                    toml::Value::Array(cols) => {
                        let cols: Vec<&str> = cols.iter().filter_map(toml::Value::as_str).collect();
                        input.drop_duplicates(Some(&cols)).map_err(ctx)?
                    }
                    _ => {
                        return Err(Error::Invalid(format!(
                            "dataset '{name}': drop_duplicates must be `true` or a list of column names"
                        )));
                    }
                }
            } else {
                return Err(Error::Invalid(format!("dataset '{name}' has no operation")));
            }
        };
        // The plan that will run, checked now: an error names this dataset, not a task.
        df.validate().map_err(ctx)?;
        self.built.insert(name.to_string(), df.clone());
        Ok(df)
    }

    async fn module(&mut self, location: &str) -> Result<FunctionModule> {
        if let Some(m) = self.modules.get(location) {
            return Ok(m.clone());
        }
        let m = self.client.load_module(&self.job.location(location)).await?;
        self.modules.insert(location.to_string(), m.clone());
        Ok(m)
    }
}

/// `{ name = ["column", "func"] | "SQL", ... }` in file order.
fn parse_aggs(dataset: &str, table: &toml::Table) -> Result<Vec<Agg>> {
    if table.is_empty() {
        return Err(Error::Invalid(format!("dataset '{dataset}': agg is empty")));
    }
    table
        .iter()
        .map(|(out, v)| match v {
            toml::Value::String(sql) => Ok(Agg::sql(out, sql)),
            toml::Value::Array(pair) => match pair.as_slice() {
                [toml::Value::String(col), toml::Value::String(func)] => {
                    Ok(Agg { name: out.clone(), sql: agg_sql(col, func)? })
                }
                _ => Err(Error::Invalid(format!(
                    "dataset '{dataset}': agg.{out} must be [\"column\", \"function\"] or an SQL string"
                ))),
            },
            _ => Err(Error::Invalid(format!(
                "dataset '{dataset}': agg.{out} must be [\"column\", \"function\"] or an SQL string"
            ))),
        })
        .map(|r| {
            r.map_err(|e| match e {
                Error::Invalid(m) if !m.starts_with("dataset") => {
                    Error::Invalid(format!("dataset '{dataset}': {m}"))
                }
                other => other,
            })
        })
        .collect()
}

fn merge_options(dataset: &str, m: &MergeSpec) -> Result<Merge> {
    let bad = |msg: String| Error::Invalid(format!("dataset '{dataset}': merge: {msg}"));
    let mut merge = match (&m.on, &m.left_on, &m.right_on) {
        (Some(on), None, None) => Merge::on(on),
        (None, Some(l), Some(r)) => Merge::left_right(l, r),
        _ => return Err(bad("give `on`, or both `left_on` and `right_on`".into())),
    };
    if let Some(how) = &m.how {
        merge = merge
            .how(JoinHow::parse(how).ok_or_else(|| {
                bad(format!("unknown how '{how}' (inner, left, right, outer, semi, anti)"))
            })?);
    }
    if let Some((l, r)) = &m.suffixes {
        merge = merge.suffixes(l, r);
    }
    if let Some(s) = &m.strategy {
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
    if let Some(n) = m.npartitions {
        merge = merge.npartitions(n);
    }
    Ok(merge)
}

fn sort_keys(dataset: &str, s: &SortSpec) -> Result<Vec<SortKey>> {
    let bad = |msg: String| Error::Invalid(format!("dataset '{dataset}': sort_values: {msg}"));
    let ascending: Vec<bool> = match &s.ascending {
        None => vec![true; s.by.len()],
        Some(toml::Value::Boolean(b)) => vec![*b; s.by.len()],
        Some(toml::Value::Array(v)) if v.len() == s.by.len() => v
            .iter()
            .map(|x| x.as_bool().ok_or_else(|| bad("ascending must hold booleans".into())))
            .collect::<Result<_>>()?,
        Some(_) => return Err(bad("ascending must be a boolean or one boolean per `by` column".into())),
    };
    let nulls_first = match s.na_position.as_deref() {
        None | Some("last") => false,
        Some("first") => true,
        Some(other) => return Err(bad(format!("na_position must be 'first' or 'last', not '{other}'"))),
    };
    Ok(s.by
        .iter()
        .zip(ascending)
        .map(|(c, ascending)| SortKey { column: c.clone(), ascending, nulls_first })
        .collect())
}

/// `"100MB"`, `"1.5 GB"`, `"64MiB"`, `"4096"` → bytes.
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| Error::Invalid(format!("size '{text}': expected a number and a unit like 100MB")))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(Error::Invalid(format!(
                "size '{text}': unknown unit '{other}' (B, KB, MB, GB, KiB, MiB, GiB)"
            )));
        }
    };
    Ok((n * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("100MB").unwrap(), 100_000_000);
        assert_eq!(parse_size("1.5 GB").unwrap(), 1_500_000_000);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").unwrap_err().to_string().contains("lots"));
        assert!(parse_size("3 parsecs").unwrap_err().to_string().contains("parsecs"));
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
        let g = &job.datasets["g"];
        let aggs = parse_aggs("g", g.agg.as_ref().unwrap()).unwrap();
        assert_eq!(aggs, [Agg::sql("total", "sum(\"v\")"), Agg::sql("n", "count(*)")]);
        let keys = sort_keys("s", job.datasets["s"].sort_values.as_ref().unwrap()).unwrap();
        assert_eq!(keys[1], SortKey { column: "v".into(), ascending: false, nulls_first: true });
        let m = merge_options("m", job.datasets["m"].merge.as_ref().unwrap()).unwrap();
        assert_eq!((m.how, m.strategy), (JoinHow::Left, Some(JoinHint::Hash)));
        let bad = MergeSpec { on: None, ..job.datasets["m"].merge.clone().unwrap() };
        assert!(merge_options("m", &bad).unwrap_err().to_string().contains("left_on"));
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
        let keys: Vec<_> = job.datasets["a"].assign.as_ref().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["z", "a"]);
    }
}
