//! Distributed aggregation with DataFusion's own accumulator states.
//!
//! One logical `groupby(keys).agg(...)` runs as DataFusion `AggregateExec`s in several tasks:
//! `Partial` on raw rows (per input partition) emits accumulator *states*; `Combine`
//! (DataFusion's `PartialReduce`) merges states into states, for the inner levels of a tree
//! reduction; `Final` merges states into results. States are exact (Welford for `var`/`std`,
//! distinct sets for `nunique`, t-digests for `quantile`), so any split of the rows over tasks
//! gives the answer one task would.
//!
//! The `AggregateExec` of every mode is built from the same template: the logical aggregate
//! planned (analyzed and type-coerced, but not rewritten by the optimizer) against the raw input
//! schema. Later modes swap in the states they were sent as input.

use super::conjunction::WholeBooleans;
use super::{nunique, program, session};
use crate::error::{Error, Result};
use crate::io::{Stream, Table};
use arrow::array::{Array, AsArray, Int64Array, RecordBatch, make_array};
use arrow::buffer::NullBuffer;
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Int64Type, SchemaRef};
use datafusion::common::Column;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::SessionStateBuilder;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode as DfMode};
use datafusion::prelude::{DataFrame, Expr, SessionConfig, SessionContext};
use futures::StreamExt;
use shoal_protocol::AggregateMode;
use std::sync::Arc;

/// The logical aggregate `keys` / `aggs` over `df`, output columns named as asked.
pub fn logical(df: DataFrame, keys: &[String], aggs: &[(String, String)]) -> Result<DataFrame> {
    let exprs = aggregate_exprs(&df, aggs)?;
    grouped(df, keys, exprs)
}

/// The aggregate calls `aggs` over `df`'s columns, each named as asked.
fn aggregate_exprs(df: &DataFrame, aggs: &[(String, String)]) -> Result<Vec<Expr>> {
    let mut exprs = Vec::with_capacity(aggs.len());
    for (name, sql) in aggs {
        let expr = df
            .parse_sql_expr(sql)
            .map_err(|e| session::expr_error(&format!("agg {name}"), sql, e))?
            .unalias_nested()
            .data;
        if !matches!(expr, Expr::AggregateFunction(_)) {
            return Err(Error::Schema(format!(
                "agg {name}: '{sql}' is not an aggregate function call (such as sum(x) or count(*))"
            )));
        }
        exprs.push(nunique::rewrite(expr, df.schema()).alias(name));
    }
    Ok(exprs)
}

/// `df` grouped by exactly `keys` into `exprs`.
fn grouped(df: DataFrame, keys: &[String], exprs: Vec<Expr>) -> Result<DataFrame> {
    let mut groups = Vec::with_capacity(keys.len());
    for k in keys {
        if !df.schema().fields().iter().any(|f| f.name() == k) {
            return Err(session::unknown_column("groupby", k, df.schema().as_arrow()));
        }
        groups.push(Expr::Column(Column::new_unqualified(k)));
    }
    // Not `DataFrame::aggregate`: it also groups by every column the keys functionally
    // determine (all columns of an aggregated input grouped by its keys again), which would
    // change the columns, and the states, with the input's lineage. The steps of one aggregation
    // run over inputs of different lineage (a fused plan, rows read back from storage, the
    // template), so they must group by exactly `keys`.
    let schema_error =
        |e: datafusion::error::DataFusionError| Error::Schema(format!("groupby: {}", e.strip_backtrace()));
    let (state, plan) = df.into_parts();
    let plan = LogicalPlanBuilder::from(plan)
        .aggregate(groups, exprs)
        .and_then(LogicalPlanBuilder::build)
        .map_err(schema_error)?;
    Ok(DataFrame::new(state, plan))
}

/// Runs an aggregation step over `input` (raw rows for `Single`/`Partial`, states otherwise).
pub async fn run(
    ctx: &SessionContext,
    input: DataFrame,
    mode: AggregateMode,
    keys: &[String],
    aggs: &[(String, String)],
    raw: SchemaRef,
) -> Result<Table> {
    let exec: Arc<dyn ExecutionPlan> = match mode {
        AggregateMode::Single => {
            let df = logical(input, keys, aggs)?;
            let schema = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await?;
            return Ok((schema, batches));
        }
        AggregateMode::Partial => partial_step(input, keys, aggs).await?,
        AggregateMode::Combine | AggregateMode::Final => {
            let template = session::frame(&session::session(), raw, vec![])?;
            let (_, plan) = logical(template, keys, aggs)?.into_parts();
            let partial = partial_exec(plan).await?;
            let partial = partial
                .downcast_ref::<AggregateExec>()
                .ok_or_else(|| Error::Execution("aggregate template has no partial step".into()))?;
            // The states are merged by position: columns of other types would panic in an
            // accumulator, other names mean other states.
            check_states(input.schema().as_arrow(), &partial.schema())?;
            let states = input.collect().await?;
            let source = MemorySourceConfig::try_new_exec(&[states], partial.schema(), None)
                .map_err(|e| Error::Schema(format!("aggregate states: {}", e.strip_backtrace())))?;
            let df_mode = if mode == AggregateMode::Final { DfMode::Final } else { DfMode::PartialReduce };
            Arc::new(AggregateExec::try_new(
                df_mode,
                partial.group_expr().as_final(),
                partial.aggr_expr().to_vec(),
                partial.filter_expr().to_vec(),
                source,
                partial.input_schema(),
            )?)
        }
    };
    let schema = exec.schema();
    let batches = datafusion::physical_plan::collect(exec, ctx.task_ctx()).await?;
    Ok((schema, batches))
}

/// The aggregate functions that skip null values: a row a filter drops reaches them as a null.
const MARKABLE: [&str; 5] = ["sum", "count", "min", "max", "avg"];

/// The calls of `aggs`, each with its name, when the `Partial` step of `keys` / `aggs` over rows
/// of `schema` can read rows marked by a filter ([`run_marked`]): grouped, and every call a
/// plain one of [`MARKABLE`] over a column that is not a key (or `count(*)`); `None` otherwise.
pub fn marked_calls(
    schema: &SchemaRef,
    keys: &[String],
    aggs: &[(String, String)],
) -> Option<Vec<(String, AggregateFunction)>> {
    if keys.is_empty() || schema.index_of(program::KEEP).is_ok() {
        return None;
    }
    let template = session::frame(&session::session(), schema.clone(), vec![]).ok()?;
    let exprs = aggregate_exprs(&template, aggs).ok()?;
    let calls = aggs.iter().zip(exprs).map(|((name, _), e)| match e.unalias() {
        Expr::AggregateFunction(f) => Some((name.clone(), f)),
        _ => None,
    });
    let calls = calls.collect::<Option<Vec<_>>>()?;
    calls
        .iter()
        .all(|(_, f)| {
            let name = f.func.name();
            let plain = MARKABLE.contains(&name)
                && !f.params.distinct
                && f.params.filter.is_none()
                && f.params.order_by.is_empty();
            plain
                && f.params.args.iter().all(|arg| match arg {
                    Expr::Column(c) => !keys.contains(&c.name),
                    Expr::Literal(..) => name == "count",
                    _ => false,
                })
        })
        .then_some(calls)
}

/// The `Partial` step of `keys` and `calls` (from [`marked_calls`]) over `marked`, rows whose
/// last column [`program::KEEP`] says whether a filter keeps them
/// ([`Program::run_marked`](program::Program::run_marked)): the columns the calls read are null
/// where a row is not kept (a bitwise AND of the validity, no copy of values), `count(*)` counts
/// the kept rows, and a group none of whose rows is kept (counted by one more call) is left
/// out. The states are those of the step over the kept rows alone, of the same columns.
pub async fn run_marked(
    ctx: &SessionContext,
    marked: Stream,
    keys: &[String],
    calls: Vec<(String, AggregateFunction)>,
) -> Result<Table> {
    let keep = Expr::Column(Column::new_unqualified(program::KEEP));
    let mut read = Vec::new();
    let mut exprs = Vec::with_capacity(calls.len() + 1);
    for (name, mut f) in calls {
        for arg in f.params.args.iter_mut() {
            match arg {
                Expr::Column(c) => {
                    read.push(marked.schema.index_of(&c.name).map_err(Error::arrow("aggregate"))?)
                }
                _ => *arg = keep.clone(),
            }
        }
        exprs.push(Expr::AggregateFunction(f).alias(name));
    }
    exprs.push(count(keep).alias(program::KEEP));
    let last = marked.schema.fields().len() - 1;
    read.push(last);
    read.sort_unstable();
    read.dedup();
    let fields = marked.schema.fields().iter().enumerate().map(|(i, f)| {
        let f = f.as_ref().clone();
        if read.contains(&i) { f.with_nullable(true) } else { f }
    });
    let schema = Arc::new(arrow::datatypes::Schema::new(fields.collect::<Vec<_>>()));
    let nulled = schema.clone();
    let batches = marked.batches.map(move |batch| null_unkept(batch?, &read, &nulled)).boxed();
    let input = session::stream_frame(ctx, Stream { schema, batches })?;
    let (_, plan) = grouped(input, keys, exprs)?.into_parts();
    let exec = partial_exec(plan).await?;
    let schema = exec.schema();
    let batches = datafusion::physical_plan::collect(exec, ctx.task_ctx()).await?;
    // The last state is the count of kept rows: groups without any are not the step's.
    let last = schema.fields().len() - 1;
    let states: SchemaRef =
        Arc::new(schema.project(&(0..last).collect::<Vec<_>>()).map_err(Error::arrow("aggregate: states"))?);
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let counts = batch.column(last).as_primitive_opt::<Int64Type>().ok_or_else(|| {
            Error::Execution(format!(
                "aggregate: the count of kept rows is {}",
                batch.column(last).data_type()
            ))
        })?;
        let any = arrow::compute::kernels::cmp::gt(counts, &Int64Array::new_scalar(0))
            .map_err(Error::arrow("aggregate: groups with kept rows"))?;
        let batch = RecordBatch::try_new(states.clone(), batch.columns()[..last].to_vec())
            .map_err(Error::arrow("aggregate: states"))?;
        out.push(
            filter_record_batch(&batch, &any).map_err(Error::arrow("aggregate: groups with kept rows"))?,
        );
    }
    Ok((states, out))
}

/// `batch` with the columns `read` (the last is [`program::KEEP`]) null where `KEEP` is false.
fn null_unkept(batch: RecordBatch, read: &[usize], schema: &SchemaRef) -> Result<RecordBatch> {
    let last = batch.num_columns() - 1;
    let keep = batch
        .column(last)
        .as_boolean_opt()
        .ok_or_else(|| Error::Execution("aggregate: the marks of kept rows are not booleans".into()))?;
    let mut columns = batch.columns().to_vec();
    if keep.true_count() < batch.num_rows() {
        let kept = NullBuffer::new(keep.values().clone());
        for &i in read {
            let nulls = NullBuffer::union(columns[i].nulls(), Some(&kept));
            let data = columns[i].to_data().into_builder().nulls(nulls).build();
            columns[i] = make_array(data.map_err(Error::arrow("aggregate: nulls of rows not kept"))?);
        }
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(Error::arrow("aggregate: rows marked"))
}

/// The `Partial` step over `input`. The rows feeding the aggregation (a fused filter, join, ...)
/// are optimized as usual (a join needs its equi-join keys extracted to be a hash join); only
/// the aggregation on top is kept from optimizer rewrites.
async fn partial_step(
    input: DataFrame,
    keys: &[String],
    aggs: &[(String, String)],
) -> Result<Arc<dyn ExecutionPlan>> {
    let (state, plan) = input.into_parts();
    let optimized = state.optimize(&plan)?;
    let input = DataFrame::new(state, optimized);
    let (_, plan) = logical(input, keys, aggs)?.into_parts();
    partial_exec(plan).await
}

/// Plans `plan` (an aggregate over an already optimized input) without optimizer rewrites, so it
/// keeps the plain `Partial` → `Final` shape, and returns the `Partial` node with its input
/// subtree. Its filters' predicates are still rewritten as every task plan's are
/// ([`WholeBooleans`], which changes no plan's shape).
async fn partial_exec(plan: datafusion::logical_expr::LogicalPlan) -> Result<Arc<dyn ExecutionPlan>> {
    let config = SessionConfig::new().with_target_partitions(1);
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_optimizer_rules(vec![])
        .with_physical_optimizer_rules(vec![Arc::new(WholeBooleans)])
        .build();
    let physical = state.create_physical_plan(&plan).await?;
    let mut stack = vec![physical];
    while let Some(node) = stack.pop() {
        if let Some(agg) = node.downcast_ref::<AggregateExec>()
            && *agg.mode() == DfMode::Partial
        {
            return Ok(node);
        }
        stack.extend(node.children().into_iter().cloned());
    }
    Err(Error::Execution("aggregate plan has no partial step".into()))
}

/// Refuses `states` unless they are the columns `expected` (the template's `Partial` output):
/// the same names and types, in the same order.
fn check_states(states: &arrow::datatypes::Schema, expected: &arrow::datatypes::Schema) -> Result<()> {
    let same = states.fields().len() == expected.fields().len()
        && states
            .fields()
            .iter()
            .zip(expected.fields().iter())
            .all(|(s, e)| s.name() == e.name() && s.data_type().equals_datatype(e.data_type()));
    if same {
        return Ok(());
    }
    let list = |s: &arrow::datatypes::Schema| {
        s.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect::<Vec<_>>().join(", ")
    };
    Err(Error::Schema(format!(
        "aggregation states do not match the aggregation: got [{}], expected [{}]",
        list(states),
        list(expected)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::table::join;
    use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use shoal_protocol::TableOp;

    fn table(rows: std::ops::Range<i64>) -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Utf8, true),
            Field::new("x", DataType::Float64, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let g: StringArray = rows.clone().map(|i| Some(if i % 3 == 0 { "a" } else { "b" })).collect();
        let x: Float64Array = rows.clone().map(|i| Some(i as f64 * 1.5)).collect();
        let n: Int64Array = rows.map(|i| Some(i % 5)).collect();
        let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(g), Arc::new(x), Arc::new(n)]).unwrap();
        (schema, vec![b])
    }

    const AGGS: [(&str, &str); 5] = [
        ("total", "sum(x)"),
        ("sd", "stddev(x)"),
        ("distinct", "count(DISTINCT n)"),
        ("rows", "count(*)"),
        ("med", "approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY x)"),
    ];

    async fn step(t: Table, mode: AggregateMode, raw: &SchemaRef) -> Table {
        let aggs: Vec<(String, String)> = AGGS.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        let ctx = session::session();
        let df = session::frame(&ctx, t.0, t.1).unwrap();
        run(&ctx, df, mode, &["g".to_string()], &aggs, raw.clone()).await.unwrap()
    }

    /// The exact columns (all but the approximate median), as sorted lines.
    fn sorted(t: &Table) -> String {
        let b = arrow::compute::concat_batches(&t.0, &t.1).unwrap().project(&[0, 1, 2, 3, 4]).unwrap();
        super::nunique::tests::sorted_lines(&[b]).join("\n")
    }

    #[tokio::test]
    async fn a_fused_join_below_a_partial_aggregate_is_a_hash_join() {
        let ctx = session::session();
        let (schema, batches) = table(0..100);
        let left = session::frame(&ctx, schema.clone(), batches.clone()).unwrap();
        let right = session::frame(&ctx, schema, batches).unwrap();
        let suffixes = ("_l".to_string(), "_r".to_string());
        let joined = join::join(
            left,
            right,
            shoal_protocol::JoinHow::Inner,
            (&["n".into()], &["n".into()]),
            &suffixes,
            Default::default(),
        )
        .unwrap();
        let aggs = [("total".to_string(), "sum(x_l)".to_string())];
        let exec = partial_step(joined, &["g_l".to_string()], &aggs).await.unwrap();
        let plan = datafusion::physical_plan::displayable(exec.as_ref()).indent(true).to_string();
        assert!(plan.contains("HashJoinExec") && !plan.contains("NestedLoopJoinExec"), "{plan}");
    }

    #[tokio::test]
    async fn partial_combine_final_equals_single() {
        let raw = table(0..0).0;
        let single = step(table(0..1000), AggregateMode::Single, &raw).await;
        // Four partitions, combined in two pairs, then finalized.
        let mut parts = Vec::new();
        for r in [0..100, 100..500, 500..501, 501..1000] {
            parts.push(step(table(r), AggregateMode::Partial, &raw).await);
        }
        let mut level = Vec::new();
        for pair in parts.chunks(2) {
            let schema = pair[0].0.clone();
            let batches = pair.iter().flat_map(|t| t.1.clone()).collect();
            level.push(step((schema, batches), AggregateMode::Combine, &raw).await);
        }
        let schema = level[0].0.clone();
        let states = level.into_iter().flat_map(|t| t.1).collect();
        let fin = step((schema, states), AggregateMode::Final, &raw).await;
        assert_eq!(fin.0.fields().len(), 6);
        assert_eq!(sorted(&fin), sorted(&single));
        // The t-digest median is approximate, but close to the exact one on either path.
        for t in [&fin, &single] {
            let b = arrow::compute::concat_batches(&t.0, &t.1).unwrap();
            let med = b.column(5).as_any().downcast_ref::<Float64Array>().unwrap();
            for (i, m) in med.iter().enumerate() {
                assert!((m.unwrap() - 749.25).abs() < 749.25 * 0.01, "row {i}: median {m:?}");
            }
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    /// Grouping an aggregation's output by its keys again: the input's keys determine all its
    /// columns, which must not become group keys of the `Partial` step (its states would not be
    /// the template's; the `Final` step read a key as the count of `avg` and panicked).
    #[tokio::test]
    async fn an_aggregated_input_is_grouped_by_the_keys_only() {
        let ctx = session::session();
        let g = ["g".to_string()];
        let (schema, batches) = table(0..100);
        let inner = logical(session::frame(&ctx, schema, batches).unwrap(), &g, &pairs(&[("top", "max(x)")]))
            .unwrap();
        let raw = Arc::new(inner.schema().as_arrow().clone());
        let aggs = pairs(&[("m", "avg(CAST(top AS DOUBLE))")]);
        let single = logical(inner.clone(), &g, &aggs).unwrap();
        let names: Vec<_> = single.schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["g", "m"]);
        let states = run(&ctx, inner, AggregateMode::Partial, &g, &aggs, raw.clone()).await.unwrap();
        let names: Vec<_> = states.0.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["g", "m[count]", "m[sum]"]);
        let df = session::frame(&ctx, states.0, states.1).unwrap();
        let fin = run(&ctx, df, AggregateMode::Final, &g, &aggs, raw).await.unwrap();
        let b = arrow::compute::concat_batches(&fin.0, &fin.1).unwrap();
        let g = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let m = b.column(1).as_any().downcast_ref::<Float64Array>().unwrap();
        let mut rows: Vec<_> = g.iter().zip(m.iter()).collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        // One row per group: the mean of its maximum x (i = 99 for 'a', i = 98 for 'b').
        assert_eq!(rows, [(Some("a"), Some(148.5)), (Some("b"), Some(147.0))]);
    }

    /// Rows marked by a filter give the states of the rows it keeps; a group of dropped rows only
    /// (`n = 4`) has none.
    #[tokio::test]
    async fn marked_rows_give_the_states_of_the_rows_kept() {
        let ctx = session::session();
        let (schema, batches) = table(0..1000);
        let keys = ["g".to_string(), "n".to_string()];
        let aggs = pairs(&[
            ("total", "sum(x)"),
            ("rows", "count(*)"),
            ("lo", "min(x)"),
            ("hi", "max(x)"),
            ("m", "avg(x)"),
        ]);
        let calls = marked_calls(&schema, &keys, &aggs);
        assert!(calls.is_some());
        for other in [
            "stddev(x)",
            "count(DISTINCT n)",
            "sum(x) FILTER (WHERE n > 1)",
            "sum(x + 1)",
            "max(n)",
            "sum(1)",
        ] {
            assert!(
                marked_calls(&schema, &keys, &pairs(&[("a", "sum(x)"), ("b", other)])).is_none(),
                "{other}"
            );
        }
        assert!(
            marked_calls(&schema, &[], &aggs).is_none(),
            "an aggregation without keys copies its filter's rows"
        );

        let filter = TableOp::Filter { predicate: "n <> 4".into() };
        let program = program::compiled(&schema, &[&filter]).unwrap();
        let stream = crate::io::Data::Table((schema.clone(), batches.clone())).into_stream();
        let got = run_marked(&ctx, program.run_marked(stream).unwrap(), &keys, calls.unwrap()).await.unwrap();

        let kept = session::frame(&ctx, schema.clone(), batches)
            .unwrap()
            .filter(datafusion::prelude::col("n").not_eq(datafusion::prelude::lit(4i64)))
            .unwrap();
        let want = run(&ctx, kept, AggregateMode::Partial, &keys, &aggs, schema).await.unwrap();
        let columns = |t: &Table| {
            t.0.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect::<Vec<_>>()
        };
        assert_eq!(columns(&got), columns(&want), "the same state columns");
        let lines = |t: &Table| super::nunique::tests::sorted_lines(&t.1).join("\n");
        assert_eq!(lines(&got), lines(&want));
        assert_eq!(got.1.iter().map(RecordBatch::num_rows).sum::<usize>(), 8, "two g by four n");
    }

    /// States that are not the aggregation's are refused, not merged (which may panic).
    #[tokio::test]
    async fn foreign_states_are_refused() {
        let raw = table(0..0).0;
        let ctx = session::session();
        let aggs = pairs(&AGGS);
        let (schema, batches) = table(0..10);
        for mode in [AggregateMode::Combine, AggregateMode::Final] {
            let df = session::frame(&ctx, schema.clone(), batches.clone()).unwrap();
            let err = run(&ctx, df, mode, &["g".to_string()], &aggs, raw.clone()).await.unwrap_err();
            assert!(matches!(err, Error::Schema(_)), "{err}");
            assert!(err.to_string().contains("aggregation states do not match"), "{err}");
        }
    }
}
