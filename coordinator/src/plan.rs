//! The logical plan that collections record lazily, and the optimizer that rewrites it.
//!
//! A plan is a tree of operators over scans. Per-partition operators (`Map`) keep the
//! partitioning of their input; `Head` changes it (and so starts a new stage when lowered).
//! The optimizer pushes projections and predicates into scans; lowering fuses runs of
//! per-partition operators into one task.

use crate::error::{Error, Result};
use arrow::datatypes::SchemaRef;
use datafusion::common::DFSchema;
use shoal_protocol::{FileFormat, FileSlice, ObjectRef, Operator};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

/// One file of a scan, as planned from its footer (Parquet) or listing.
#[derive(Debug, Clone)]
pub struct FileInfo {
    pub object: ObjectRef,
    /// Compressed bytes and rows of each row group (Parquet); empty for other formats.
    pub row_groups: Vec<(u64, u64)>,
}

/// A scan of files in object storage.
#[derive(Debug, Clone)]
pub struct ScanNode {
    /// What the user named (`data/*.parquet`), for messages.
    pub source: String,
    pub format: FileFormat,
    /// Schema of the files.
    pub file_schema: SchemaRef,
    pub files: Vec<FileInfo>,
    /// The partitions: each a list of files or row-group subsets of files.
    pub partitions: Vec<Vec<FileSlice>>,
    /// Columns to read (set by projection pushdown); `None` reads all.
    pub projection: Option<Vec<String>>,
    /// Predicate used to prune row groups (set by predicate pushdown).
    pub predicate: Option<String>,
}

impl ScanNode {
    pub fn schema(&self) -> Result<SchemaRef> {
        match &self.projection {
            None => Ok(self.file_schema.clone()),
            Some(cols) => {
                let ix = cols
                    .iter()
                    .map(|c| self.file_schema.index_of(c).map_err(|e| Error::Schema(e.to_string())))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Arc::new(self.file_schema.project(&ix).map_err(|e| Error::Schema(e.to_string()))?))
            }
        }
    }

    pub fn estimated_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.object.size).sum()
    }
}

/// A node of the logical plan.
#[derive(Debug, Clone)]
pub enum Plan {
    Scan(ScanNode),
    /// A per-partition operator; `schema` is its validated output schema.
    Map {
        input: Arc<Plan>,
        op: Operator,
        schema: SchemaRef,
    },
    /// The first `n` rows of the whole collection: one output partition.
    Head {
        input: Arc<Plan>,
        n: usize,
    },
}

impl Plan {
    pub fn schema(&self) -> Result<SchemaRef> {
        match self {
            Plan::Scan(s) => s.schema(),
            Plan::Map { schema, .. } => Ok(schema.clone()),
            Plan::Head { input, .. } => input.schema(),
        }
    }

    /// Number of output partitions.
    pub fn partitions(&self) -> usize {
        match self {
            Plan::Scan(s) => s.partitions.len(),
            Plan::Map { input, .. } => input.partitions(),
            Plan::Head { .. } => 1,
        }
    }

    /// An indented tree, for `explain`.
    pub fn display(&self) -> String {
        let mut out = String::new();
        self.fmt_tree(&mut out, 0);
        out
    }

    fn fmt_tree(&self, out: &mut String, depth: usize) {
        let pad = "  ".repeat(depth);
        match self {
            Plan::Scan(s) => {
                let fmt = match &s.format {
                    FileFormat::Parquet => "parquet",
                    FileFormat::Csv(_) => "csv",
                    FileFormat::ArrowIpc => "arrow",
                };
                let _ = write!(
                    out,
                    "{pad}Scan {fmt} {} [{} files, {} partitions, {}]",
                    s.source,
                    s.files.len(),
                    s.partitions.len(),
                    human_bytes(s.estimated_bytes())
                );
                if let Some(p) = &s.projection {
                    let _ = write!(out, " columns=[{}]", p.join(", "));
                }
                if let Some(p) = &s.predicate {
                    let _ = write!(out, " prune_by=({p})");
                }
                out.push('\n');
            }
            Plan::Map { input, op, .. } => {
                let _ = writeln!(out, "{pad}{}", describe(op));
                input.fmt_tree(out, depth + 1);
            }
            Plan::Head { input, n } => {
                let _ = writeln!(out, "{pad}Head n={n}");
                input.fmt_tree(out, depth + 1);
            }
        }
    }
}

/// One line describing an operator.
pub fn describe(op: &Operator) -> String {
    match op {
        Operator::Filter { predicate } => format!("Filter {predicate}"),
        Operator::Select { columns } => format!("Select {}", columns.join(", ")),
        Operator::Assign { columns } => format!(
            "Assign {}",
            columns.iter().map(|(n, e)| format!("{n} = {e}")).collect::<Vec<_>>().join(", ")
        ),
        Operator::MapPartitions { module, function, args } => {
            format!(
                "MapPartitions {function}({args}) [wasm {}]",
                &module.sha256[..12.min(module.sha256.len())]
            )
        }
        Operator::Head { n } => format!("Head n={n}"),
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// Columns an SQL expression refers to, resolved against `schema`.
fn referenced_columns(sql: &str, schema: &SchemaRef) -> Result<BTreeSet<String>> {
    let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| Error::Schema(e.to_string()))?;
    let ctx = shoal_worker::pipeline::session();
    let expr = ctx
        .parse_sql_expr(sql, &df_schema)
        .map_err(|e| Error::Schema(format!("invalid expression '{sql}': {e}")))?;
    Ok(expr.column_refs().into_iter().map(|c| c.name.clone()).collect())
}

/// Rewrites a plan: projection pushdown (scans read only the columns later operators use) and
/// predicate pushdown (filters right above a scan prune its row groups).
pub fn optimize(plan: &Plan) -> Result<Plan> {
    let all: Option<BTreeSet<String>> = None;
    let plan = push_projection(plan, all)?;
    Ok(push_predicates(&plan, &[]))
}

/// `needed`: columns required from this node's output (`None`: all of them).
fn push_projection(plan: &Plan, needed: Option<BTreeSet<String>>) -> Result<Plan> {
    match plan {
        Plan::Scan(scan) => {
            let mut scan = scan.clone();
            if let Some(needed) = needed {
                let cols: Vec<String> = scan
                    .file_schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .filter(|n| needed.contains(n))
                    .collect();
                // Keep at least one column so row counts survive (`SELECT count(*)`-like plans).
                let cols = if cols.is_empty() {
                    scan.file_schema.fields().iter().take(1).map(|f| f.name().clone()).collect()
                } else {
                    cols
                };
                if cols.len() < scan.file_schema.fields().len() {
                    scan.projection = Some(cols);
                }
            }
            Ok(Plan::Scan(scan))
        }
        Plan::Head { input, n } => Ok(Plan::Head { input: Arc::new(push_projection(input, needed)?), n: *n }),
        Plan::Map { input, op, schema } => {
            let input_schema = input.schema()?;
            let upstream: Option<BTreeSet<String>> = match op {
                Operator::Select { columns } => Some(columns.iter().cloned().collect()),
                Operator::Filter { predicate } => needed
                    .map(|mut n| -> Result<_> {
                        n.extend(referenced_columns(predicate, &input_schema)?);
                        Ok(n)
                    })
                    .transpose()?,
                Operator::Assign { columns } => match needed {
                    None => None,
                    Some(mut n) => {
                        // Later assignments may use earlier ones: walk them backwards.
                        for (name, sql) in columns.iter().rev() {
                            n.remove(name);
                            n.extend(referenced_columns(sql, schema)?);
                        }
                        Some(n)
                    }
                },
                Operator::Head { .. } => needed,
                // User code may read any column.
                Operator::MapPartitions { .. } => None,
            };
            Ok(Plan::Map {
                input: Arc::new(push_projection(input, upstream)?),
                op: op.clone(),
                schema: schema.clone(),
            })
        }
    }
}

/// Collects filters on the way down; a scan directly below them (through selects and other
/// filters only) prunes by their conjunction. The filters stay in place: pruning only skips row
/// groups that cannot match, it never changes the answer.
fn push_predicates(plan: &Plan, pending: &[String]) -> Plan {
    match plan {
        Plan::Scan(scan) => {
            let mut scan = scan.clone();
            if !pending.is_empty() && matches!(scan.format, FileFormat::Parquet) {
                let mut all: Vec<String> = scan.predicate.iter().cloned().collect();
                all.extend(pending.iter().map(|p| format!("({p})")));
                scan.predicate = Some(all.join(" AND "));
            }
            Plan::Scan(scan)
        }
        Plan::Map { input, op, schema } => {
            let below = match op {
                Operator::Filter { predicate } => {
                    let mut v = pending.to_vec();
                    v.push(predicate.clone());
                    v
                }
                Operator::Select { .. } => pending.to_vec(),
                _ => Vec::new(),
            };
            Plan::Map {
                input: Arc::new(push_predicates(input, &below)),
                op: op.clone(),
                schema: schema.clone(),
            }
        }
        Plan::Head { input, n } => Plan::Head { input: Arc::new(push_predicates(input, &[])), n: *n },
    }
}
