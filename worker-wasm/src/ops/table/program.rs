//! Runs of filter, select and assign as a *program*: their expressions compiled once to physical
//! expressions and applied to each batch as it arrives, without a DataFusion plan. Planning a
//! plan (the optimizer's passes, physical planning and its optimizer) costs far more than running
//! such a run over a small table, and a large input streams through a batch at a time.
//!
//! A program is compiled per input schema and run of operators and kept for the later tasks of
//! this process that run the same (the tasks of one stage). Its output schema is the one the
//! DataFusion plan of the same run declares ([`output_schema`](super::output_schema), what the
//! coordinator validated against), so both paths produce identical tables. A run the program
//! cannot express exactly — an expression that does not compile here, one that is not
//! deterministic, a result type other than the plan's — is left to the DataFusion plan, which
//! also reports any error in it.

use crate::error::{Error, Result};
use crate::io::{Data, Stream, schema};
use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::buffer::BooleanBuffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::DFSchema;
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, Volatility};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use futures::StreamExt;
use shoal_protocol::TableOp;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

/// A compiled run of filter, select and assign.
#[derive(Debug)]
pub struct Program {
    steps: Vec<Step>,
    /// The plan's output schema.
    schema: SchemaRef,
}

#[derive(Debug)]
enum Step {
    /// Keep the rows where the predicate is true.
    Filter(Arc<dyn PhysicalExpr>),
    /// Keep these columns, in this order; the schema after.
    Select(Vec<usize>, SchemaRef),
    /// Put the expression's value in column `index` (replacing it) or at the end; the schema after.
    Assign { index: Option<usize>, expr: Arc<dyn PhysicalExpr>, schema: SchemaRef },
}

/// The column of a marking run ([`Program::run_marked`]): whether the filter keeps the row.
pub const KEEP: &str = "__shoal_keep";

/// The share of a batch's rows its filter must keep for the batch to be marked rather than
/// copied. Marked rows the filter drops still go through the later steps and whatever reads the
/// marks (an aggregation's group lookup); copying is what such a filter costs otherwise, every
/// column of every batch (TPC-H q1's date filter keeps 98.5% of the rows, spread over all
/// batches).
pub const MARK_AT_LEAST: f64 = 0.75;

/// Whether `ops` are all steps a program runs.
pub fn eligible(ops: &[&TableOp]) -> bool {
    !ops.is_empty()
        && ops
            .iter()
            .all(|op| matches!(op, TableOp::Filter { .. } | TableOp::Select { .. } | TableOp::Assign { .. }))
}

/// Programs compiled in this process, by input schema and operators (`None`: not expressible).
static COMPILED: LazyLock<Mutex<HashMap<String, Option<Arc<Program>>>>> = LazyLock::new(Default::default);
/// Most programs kept; the cache starts over beyond it.
const COMPILED_MAX: usize = 256;

/// The program of `ops` over `input`, compiled once per process; `None` when the run is left to
/// a DataFusion plan.
pub fn compiled(input: &SchemaRef, ops: &[&TableOp]) -> Option<Arc<Program>> {
    let key = serde_json::to_string(&(schema::to_fields(input), ops)).ok()?;
    let mut cache = COMPILED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = cache.get(&key) {
        return found.clone();
    }
    let program = compile(input, ops).map(Arc::new);
    if cache.len() >= COMPILED_MAX {
        cache.clear();
    }
    cache.insert(key, program.clone());
    program
}

/// The physical expression of the SQL expression `sql` over `schema`, coerced and simplified as
/// the plan's optimizer would (some functions only run in the form the simplifier rewrites them
/// to: `coalesce` into `CASE`), its decimal literals at the scale of what they are added to
/// ([`super::rescale`]); `None` when it does not compile here or is not deterministic.
/// The coordinator estimates filters' selectivity with the same expressions.
pub fn physical_expr(schema: &SchemaRef, sql: &str) -> Option<Arc<dyn PhysicalExpr>> {
    let ctx = super::session::session();
    let df_schema = DFSchema::try_from(schema.as_ref().clone()).ok()?;
    let expr = ctx.parse_sql_expr(sql, &df_schema).ok()?;
    if !deterministic(&expr) {
        return None;
    }
    let simplify = SimplifyContext::builder()
        .with_schema(Arc::new(df_schema.clone()))
        .with_config_options(Arc::clone(ctx.state().config_options()))
        .build();
    let simplifier = ExprSimplifier::new(simplify);
    let expr = simplifier.simplify(simplifier.coerce(expr, &df_schema).ok()?).ok()?;
    let expr = super::rescale::rescale_literals(expr, &df_schema).ok()?.data;
    ctx.create_physical_expr(expr, &df_schema).ok()
}

fn compile(input: &SchemaRef, ops: &[&TableOp]) -> Option<Program> {
    let owned: Vec<TableOp> = ops.iter().map(|op| (*op).clone()).collect();
    let planned = super::output_schema(input.clone(), &owned, &BTreeMap::new()).ok()?;
    let mut current = input.clone();
    let mut steps = Vec::new();
    for op in ops {
        match op {
            TableOp::Filter { predicate } => {
                let expr = physical_expr(&current, predicate)?;
                (expr.data_type(&current).ok()? == DataType::Boolean).then_some(())?;
                steps.push(Step::Filter(super::conjunction::rewrite(expr)));
            }
            TableOp::Select { columns } => {
                let indices = columns.iter().map(|c| current.index_of(c).ok()).collect::<Option<Vec<_>>>()?;
                current = Arc::new(current.project(&indices).ok()?);
                steps.push(Step::Select(indices, current.clone()));
            }
            TableOp::Assign { columns } => {
                for (name, sql) in columns {
                    let expr = physical_expr(&current, sql)?;
                    let field =
                        Field::new(name, expr.data_type(&current).ok()?, expr.nullable(&current).ok()?);
                    let index = current.index_of(name).ok();
                    let mut fields: Vec<Field> =
                        current.fields().iter().map(|f| f.as_ref().clone()).collect();
                    match index {
                        Some(i) => fields[i] = field,
                        None => fields.push(field),
                    }
                    current = Arc::new(Schema::new(fields));
                    steps.push(Step::Assign { index, expr, schema: current.clone() });
                }
            }
            _ => return None,
        }
    }
    // The same columns of the same types as the plan's; its nullability is what the table declares.
    let same = current.fields().len() == planned.fields().len()
        && current
            .fields()
            .iter()
            .zip(planned.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    let program = same.then_some(Program { steps, schema: planned })?;
    // A program that cannot even run an empty batch is the plan's to run (and to report).
    program.apply(RecordBatch::new_empty(input.clone())).ok()?;
    Some(program)
}

/// Whether `expr` gives the same value whenever it is evaluated (no `random()`, no `now()`):
/// a program outlives the task it was compiled for.
fn deterministic(expr: &Expr) -> bool {
    let varies = expr.exists(|e| {
        Ok(matches!(e, Expr::ScalarFunction(f) if f.func.signature().volatility != Volatility::Immutable))
    });
    matches!(varies, Ok(false))
}

impl Program {
    /// The rows of `data` through the program: a table batch by batch, a stream as it arrives.
    pub fn run(self: Arc<Self>, data: Data) -> Result<Data> {
        match data {
            Data::Table((_, batches)) => {
                let out = batches.into_iter().map(|b| self.apply(b)).collect::<Result<Vec<_>>>()?;
                Ok(Data::Table((self.schema.clone(), out)))
            }
            Data::Stream(stream) => {
                let schema = self.schema.clone();
                let batches = stream.batches.map(move |b| b.and_then(|b| self.apply(b))).boxed();
                Ok(Data::Stream(Stream { schema, batches }))
            }
        }
    }

    /// The schema of the program's output.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Whether the program is one filter followed by selections and assignments only: the
    /// programs [`run_marked`](Self::run_marked) runs.
    pub fn markable(&self) -> bool {
        matches!(self.steps.split_first(), Some((Step::Filter(_), rest))
            if !rest.iter().any(|step| matches!(step, Step::Filter(_))))
    }

    /// The rows of `stream` through a [`markable`](Self::markable) program, its filter turned
    /// into the last column [`KEEP`], true for the rows it keeps. Where the filter keeps at least
    /// [`MARK_AT_LEAST`] of a batch, the batch is not copied to those rows: the later steps run
    /// on all of them and `KEEP` marks the ones kept. Other batches are filtered as
    /// [`run`](Self::run) filters them, all their rows marked kept; so is a batch where a later
    /// step fails over all its rows (a division by zero in a row the filter drops is no error).
    pub fn run_marked(self: Arc<Self>, stream: Stream) -> Result<Stream> {
        let Some(Step::Filter(predicate)) = self.steps.first().filter(|_| self.markable()) else {
            return Err(Error::Execution("only a program with one leading filter marks rows".into()));
        };
        let predicate = predicate.clone();
        let mut fields: Vec<Field> = self.schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(KEEP, DataType::Boolean, false));
        let schema = Arc::new(Schema::new(fields));
        let marked = schema.clone();
        let batches = stream
            .batches
            .map(move |batch| {
                let batch = batch?;
                let mask = evaluate(&predicate, &batch)?;
                let mask =
                    mask.as_boolean_opt().ok_or_else(|| Error::Execution("filter: not a boolean".into()))?;
                let steps = &self.steps[1..];
                let rows = batch.num_rows();
                let kept = mask.true_count();
                if kept < rows
                    && kept as f64 >= rows as f64 * MARK_AT_LEAST
                    && let Ok(out) = self.run_steps(steps, batch.clone())
                {
                    let keep = match mask.null_count() {
                        0 => mask.clone(),
                        _ => arrow::compute::prep_null_mask_filter(mask),
                    };
                    return with_keep(&marked, out, keep);
                }
                let filtered = arrow::compute::filter_record_batch(&batch, mask)
                    .map_err(Error::arrow("filter: selecting rows"))?;
                let out = self.run_steps(steps, filtered)?;
                let keep = BooleanArray::new(BooleanBuffer::new_set(out.num_rows()), None);
                with_keep(&marked, out, keep)
            })
            .boxed();
        Ok(Stream { schema, batches })
    }

    fn apply(&self, batch: RecordBatch) -> Result<RecordBatch> {
        self.run_steps(&self.steps, batch)
    }

    /// `batch` through `steps`, the program's own or the ones after its first filter.
    fn run_steps(&self, steps: &[Step], batch: RecordBatch) -> Result<RecordBatch> {
        let mut batch = batch;
        for step in steps {
            batch = match step {
                Step::Filter(predicate) => {
                    let mask = evaluate(predicate, &batch)?;
                    arrow::compute::filter_record_batch(&batch, mask.as_boolean())
                        .map_err(Error::arrow("filter: selecting rows"))?
                }
                Step::Select(indices, schema) => {
                    let columns = indices.iter().map(|&i| batch.column(i).clone()).collect();
                    with_rows(schema, columns, batch.num_rows())?
                }
                Step::Assign { index, expr, schema } => {
                    let value = evaluate(expr, &batch)?;
                    let mut columns = batch.columns().to_vec();
                    match index {
                        Some(i) => columns[*i] = value,
                        None => columns.push(value),
                    }
                    with_rows(schema, columns, batch.num_rows())?
                }
            };
        }
        with_rows(&self.schema, batch.columns().to_vec(), batch.num_rows())
    }
}

/// `batch` with `keep` as its last column, of `schema` (the program's and [`KEEP`]).
fn with_keep(schema: &SchemaRef, batch: RecordBatch, keep: BooleanArray) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(keep));
    with_rows(schema, columns, rows)
}

/// A batch of `columns` and `rows` rows (also when there are no columns).
fn with_rows(schema: &SchemaRef, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
    // Nullability is the plan's declaration, not checked again per batch.
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options)
        .map_err(Error::arrow("a program's step"))
}

fn evaluate(expr: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<ArrayRef> {
    Ok(expr.evaluate(batch)?.into_array(batch.num_rows())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::table::{Sides, relational, session};
    use arrow::array::{Int64Array, StringArray};

    fn table() -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Int64, true),
            Field::new("s", DataType::Utf8, false),
        ]));
        let batch = |xs: Vec<Option<i64>>, ss: Vec<&str>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from(xs)), Arc::new(StringArray::from(ss))],
            )
            .unwrap()
        };
        let batches =
            vec![batch(vec![Some(1), None, Some(3)], vec!["a", "b", "c"]), batch(vec![Some(7)], vec!["d"])];
        (schema, batches)
    }

    /// The same run as a DataFusion plan: what the program must reproduce.
    async fn planned(ops: &[TableOp]) -> (SchemaRef, Vec<RecordBatch>) {
        let (schema, batches) = table();
        let mut df = session::frame(&session::session(), schema, batches).unwrap();
        for op in ops {
            df = relational::apply(df, op, &Sides::new()).unwrap();
        }
        let schema = Arc::new(df.schema().as_arrow().clone());
        (schema, df.collect().await.unwrap())
    }

    fn concat((schema, batches): &(SchemaRef, Vec<RecordBatch>)) -> RecordBatch {
        arrow::compute::concat_batches(schema, batches).unwrap()
    }

    #[tokio::test]
    async fn a_program_gives_the_table_of_the_plan() {
        let ops = vec![
            TableOp::Filter { predicate: "x > 1 OR x IS NULL".into() },
            TableOp::Assign {
                columns: vec![("y".into(), "x * 2 + 0.5".into()), ("s".into(), "upper(s) || 'z'".into())],
            },
            TableOp::Select { columns: vec!["y".into(), "s".into(), "x".into()] },
        ];
        let refs: Vec<&TableOp> = ops.iter().collect();
        let (schema, _) = table();
        let program = compiled(&schema, &refs).expect("filter, assign and select compile");
        let got = program.run(Data::Table(table())).unwrap().into_table().await.unwrap();
        let want = planned(&ops).await;
        assert_eq!(got.0, want.0, "the plan's schema");
        assert_eq!(concat(&got), concat(&want));
        assert_eq!(concat(&got).num_rows(), 3, "null and 3 and 7 pass");
        // A stream gives the same rows.
        let stream = Data::Table(table()).into_stream();
        let streamed = compiled(&schema, &refs).unwrap().run(Data::Stream(stream)).unwrap();
        assert_eq!(concat(&streamed.into_table().await.unwrap()), concat(&want));
    }

    #[tokio::test]
    async fn a_marking_run_marks_the_rows_its_filter_keeps() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Int64, true),
            Field::new("d", DataType::Int64, false),
        ]));
        let batch = |x: Vec<Option<i64>>, d: Vec<i64>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from(x)), Arc::new(Int64Array::from(d))],
            )
            .unwrap()
        };
        let batches = vec![
            // Keeps 3 of 4 (a null is not kept): marked, not copied.
            batch(vec![Some(1), Some(2), Some(3), None], vec![1, 2, 5, 1]),
            // Keeps 1 of 4: copied.
            batch(vec![Some(1), Some(7), Some(8), Some(9)], vec![1, 1, 1, 1]),
            // Keeps 3 of 4, but `10 / d` fails on the row it drops: copied, and no error.
            batch(vec![Some(1), Some(2), Some(3), Some(9)], vec![1, 1, 1, 0]),
        ];
        let ops = [
            TableOp::Filter { predicate: "x < 4".into() },
            TableOp::Assign { columns: vec![("q".into(), "10 / d".into())] },
            TableOp::Select { columns: vec!["q".into(), "x".into()] },
        ];
        let refs: Vec<&TableOp> = ops.iter().collect();
        let program = compiled(&schema, &refs).expect("compiles");
        assert!(program.markable());
        let plain = program.clone().run(Data::Table((schema.clone(), batches.clone()))).unwrap();
        let plain = plain.into_table().await.unwrap();
        let stream = Data::Table((schema, batches)).into_stream();
        let marked = Data::Stream(program.run_marked(stream).unwrap()).into_table().await.unwrap();
        let fields: Vec<&str> = marked.0.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(fields, ["q", "x", KEEP]);
        let rows: Vec<usize> = marked.1.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(rows, [4, 1, 3]);
        let keep = marked.1[0].column(2).as_boolean();
        assert_eq!(keep.iter().collect::<Vec<_>>(), [Some(true), Some(true), Some(true), Some(false)]);
        // The marked rows are the program's rows, batch by batch.
        for (marked, plain) in marked.1.iter().zip(&plain.1) {
            let kept = arrow::compute::filter_record_batch(marked, marked.column(2).as_boolean()).unwrap();
            assert_eq!(kept.project(&[0, 1]).unwrap().columns(), plain.columns());
        }
        // Only a leading filter is marked.
        let late = [TableOp::Assign { columns: vec![("y".into(), "x".into())] }, ops[0].clone()];
        let late: Vec<&TableOp> = late.iter().collect();
        assert!(!compiled(&table().0, &late).unwrap().markable());
    }

    #[test]
    fn runs_a_program_cannot_express_exactly_are_left_to_the_plan() {
        let (schema, _) = table();
        let compiles = |op: TableOp| compiled(&schema, &[&op]).is_some();
        assert!(compiles(TableOp::Filter { predicate: "s = 'a'".into() }));
        // Runs only once simplified into CASE.
        assert!(compiles(TableOp::Assign { columns: vec![("c".into(), "COALESCE(x, -1)".into())] }));
        // Not deterministic: a program outlives its task.
        assert!(!compiles(TableOp::Assign { columns: vec![("r".into(), "random()".into())] }));
        assert!(!compiles(TableOp::Assign { columns: vec![("t".into(), "now()".into())] }));
        // Errors are the plan's to report.
        assert!(!compiles(TableOp::Filter { predicate: "nope > 1".into() }));
        assert!(!compiles(TableOp::Filter { predicate: "x + 1".into() }));
        assert!(!compiles(TableOp::Select { columns: vec!["zzz".into()] }));
        assert!(!eligible(&[&TableOp::Head { n: 3 }]));
    }
}
