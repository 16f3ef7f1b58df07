//! Conjunctions of simple comparisons evaluated whole: `a AND b AND c` as one expression that
//! evaluates every term over the whole batch and combines the masks.
//!
//! DataFusion evaluates `l AND r` by evaluating `l`, and when it keeps at most a fifth of the
//! rows, copies *every column of the batch* to those rows (`filter_record_batch`), evaluates `r`
//! on the copy and scatters the result back; a chain of terms does so at each level. For TPC-H
//! q6 (five comparisons over four columns, two of them 16-byte decimals) those copies were about
//! a fifth of the query's samples. A comparison of a column with a literal costs about a
//! nanosecond a row over the whole batch, less than copying the batch once, and cannot fail, so
//! a conjunction made only of such terms evaluates each over the whole batch and ANDs the masks
//! (SQL's three-valued AND, as the chain would give). It stops at the first term after which no
//! row can be true. Any other conjunction (one with a term that could fail or costs more, such
//! as a cast, arithmetic, a function or `LIKE`) is left as it is.
//!
//! Applied where a task evaluates a filter: to programs' filter steps (`program.rs`) and,
//! as a physical optimizer rule ([`WholeConjunctions`]) that runs after DataFusion's own, to
//! the filters of task plans. Not to what the coordinator estimates selectivity with: the
//! rewritten expression gives the same rows but no interval analysis, so an estimate from
//! column ranges would fall back to an assumed fraction (and change plans).

use arrow::array::{Array, ArrayRef, BooleanArray};
use arrow::compute::kernels::boolean::and_kleene;
use arrow::datatypes::{DataType, Field, FieldRef, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Result as DfResult, internal_err};
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{
    BinaryExpr, Column, InListExpr, IsNotNullExpr, IsNullExpr, Literal,
};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use std::fmt;
use std::sync::Arc;

/// The AND of `terms` (at least two), each evaluated over the whole batch.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct WholeConjunction {
    terms: Vec<Arc<dyn PhysicalExpr>>,
}

/// `expr` with every conjunction of only simple terms (see the module) made a
/// [`WholeConjunction`], wherever it is in the expression; `expr` itself when there is none.
pub fn rewrite(expr: Arc<dyn PhysicalExpr>) -> Arc<dyn PhysicalExpr> {
    let mut terms = Vec::new();
    if conjuncts(&expr, &mut terms) && terms.len() >= 2 && terms.iter().all(simple) {
        return Arc::new(WholeConjunction { terms });
    }
    let children: Vec<Arc<dyn PhysicalExpr>> = expr.children().into_iter().cloned().collect();
    if children.is_empty() {
        return expr;
    }
    let rewritten: Vec<Arc<dyn PhysicalExpr>> = children.iter().cloned().map(rewrite).collect();
    if rewritten.iter().zip(&children).all(|(r, c)| Arc::ptr_eq(r, c)) {
        return expr;
    }
    Arc::clone(&expr).with_new_children(rewritten).unwrap_or(expr)
}

/// Collects the terms of a chain of ANDs into `terms`; false when `expr` is no AND.
fn conjuncts(expr: &Arc<dyn PhysicalExpr>, terms: &mut Vec<Arc<dyn PhysicalExpr>>) -> bool {
    match expr.downcast_ref::<BinaryExpr>() {
        Some(and) if *and.op() == Operator::And => {
            for side in [and.left(), and.right()] {
                if !conjuncts(side, terms) {
                    terms.push(Arc::clone(side));
                }
            }
            true
        }
        _ => false,
    }
}

/// A term that costs about a nanosecond a row and cannot fail: a comparison of columns and
/// literals, a column `IN` a list of literals, `IS [NOT] NULL` of a column, a boolean column.
fn simple(term: &Arc<dyn PhysicalExpr>) -> bool {
    let operand = |e: &Arc<dyn PhysicalExpr>| e.is::<Column>() || e.is::<Literal>();
    if let Some(b) = term.downcast_ref::<BinaryExpr>() {
        return matches!(
            b.op(),
            Operator::Eq | Operator::NotEq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
        ) && operand(b.left())
            && operand(b.right());
    }
    if let Some(list) = term.downcast_ref::<InListExpr>() {
        return list.expr().is::<Column>() && list.list().iter().all(|e| e.is::<Literal>());
    }
    if let Some(e) = term.downcast_ref::<IsNullExpr>() {
        return e.arg().is::<Column>();
    }
    if let Some(e) = term.downcast_ref::<IsNotNullExpr>() {
        return e.arg().is::<Column>();
    }
    term.is::<Column>()
}

impl WholeConjunction {
    /// The terms, each written by `term`, joined by `AND`.
    fn write_terms(
        &self,
        f: &mut fmt::Formatter<'_>,
        term: impl Fn(&Arc<dyn PhysicalExpr>, &mut fmt::Formatter<'_>) -> fmt::Result,
    ) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                write!(f, " AND ")?;
            }
            term(t, f)?;
        }
        Ok(())
    }
}

impl fmt::Display for WholeConjunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_terms(f, |t, f| write!(f, "{t}"))
    }
}

impl PhysicalExpr for WholeConjunction {
    fn return_field(&self, input_schema: &Schema) -> DfResult<FieldRef> {
        let mut nullable = false;
        for term in &self.terms {
            nullable |= term.nullable(input_schema)?;
        }
        Ok(Arc::new(Field::new("and", DataType::Boolean, nullable)))
    }

    fn evaluate(&self, batch: &RecordBatch) -> DfResult<ColumnarValue> {
        let rows = batch.num_rows();
        let mut mask: Option<BooleanArray> = None;
        for term in &self.terms {
            let value: ArrayRef = term.evaluate(batch)?.into_array(rows)?;
            let Some(value) = value.as_any().downcast_ref::<BooleanArray>() else {
                return internal_err!("a term of a conjunction is not boolean: {term}");
            };
            let combined = match mask {
                None => value.clone(),
                Some(m) => and_kleene(&m, value)?,
            };
            // No row can be true any more: every later term leaves it false.
            let settled = combined.null_count() == 0 && combined.true_count() == 0;
            mask = Some(combined);
            if settled {
                break;
            }
        }
        match mask {
            Some(mask) => Ok(ColumnarValue::Array(Arc::new(mask))),
            None => internal_err!("a conjunction without terms"),
        }
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        self.terms.iter().collect()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> DfResult<Arc<dyn PhysicalExpr>> {
        if children.len() != self.terms.len() {
            return internal_err!(
                "a conjunction of {} terms given {} children",
                self.terms.len(),
                children.len()
            );
        }
        Ok(Arc::new(WholeConjunction { terms: children }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_terms(f, |t, f| t.fmt_sql(f))
    }
}

/// The physical optimizer rule that gives task plans' filters [`rewrite`]'s predicates.
#[derive(Debug, Default)]
pub struct WholeConjunctions;

impl PhysicalOptimizerRule for WholeConjunctions {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else {
                return Ok(Transformed::no(node));
            };
            let predicate = rewrite(Arc::clone(filter.predicate()));
            if Arc::ptr_eq(&predicate, filter.predicate()) {
                return Ok(Transformed::no(node));
            }
            let rebuilt = FilterExecBuilder::from(filter).with_predicate(predicate).build()?;
            Ok(Transformed::yes(Arc::new(rebuilt) as Arc<dyn ExecutionPlan>))
        })
        .data()
    }

    fn name(&self) -> &str {
        "shoal_whole_conjunctions"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringViewArray};
    use datafusion::common::DFSchema;
    use datafusion::logical_expr::simplify::SimplifyContext;
    use datafusion::optimizer::simplify_expressions::ExprSimplifier;
    use datafusion::prelude::SessionContext;

    /// Six rows of `a` (Int64) and `b` (Utf8View), nulls in both; also `session.rs`'s tests'.
    pub(crate) fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8View, true),
        ]));
        let a = Int64Array::from(vec![Some(1), Some(5), None, Some(7), Some(3), Some(9)]);
        let b = StringViewArray::from(vec![Some("x"), Some("y"), Some("x"), None, Some("x"), Some("y")]);
        RecordBatch::try_new(schema, vec![Arc::new(a), Arc::new(b)]).unwrap()
    }

    /// DataFusion's physical expression of `sql` over `batch`'s schema, rewritten.
    fn task_expr(batch: &RecordBatch, sql: &str) -> Arc<dyn PhysicalExpr> {
        let ctx = SessionContext::new();
        let schema = Arc::new(DFSchema::try_from(batch.schema().as_ref().clone()).unwrap());
        let expr = ctx.parse_sql_expr(sql, &schema).unwrap();
        // Literals folded to the column's type, as a plan's optimizer leaves them.
        let simplify = SimplifyContext::builder().with_schema(schema.clone()).build();
        let simplifier = ExprSimplifier::new(simplify);
        let expr = simplifier.simplify(simplifier.coerce(expr, &schema).unwrap()).unwrap();
        rewrite(ctx.create_physical_expr(expr, &schema).unwrap())
    }

    fn mask(expr: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Vec<Option<bool>> {
        let value = expr.evaluate(batch).unwrap().into_array(batch.num_rows()).unwrap();
        value.as_any().downcast_ref::<BooleanArray>().unwrap().iter().collect()
    }

    /// SQL's three-valued AND, checked by hand row by row, from one expression over the batch.
    #[test]
    fn a_conjunction_of_comparisons_is_evaluated_whole_with_sql_nulls() {
        let b = batch();
        let expr = task_expr(&b, "a >= 3 AND a < 9 AND b = 'x' AND a IN (1, 3, 7, 11)");
        let whole = expr.downcast_ref::<WholeConjunction>().expect("rewritten");
        assert_eq!(whole.terms.len(), 4);
        // 1: a >= 3 false. 5: b = 'x' false. null: a null, b = 'x' true: null. 7: b null: null.
        // 3: all true. 9: a < 9 false.
        assert_eq!(mask(&expr, &b), [Some(false), Some(false), None, None, Some(true), Some(false)]);
        // The null row stays null until `a IS NOT NULL` makes it false.
        let none = task_expr(&b, "a > 100 AND b = 'x' AND a IS NOT NULL");
        assert_eq!(mask(&none, &b), [Some(false); 6]);
        let some = task_expr(&b, "a > 100 AND b = 'x'");
        assert_eq!(mask(&some, &b), [Some(false), Some(false), None, Some(false), Some(false), Some(false)]);
    }

    /// A term that could fail or costs more keeps the chain as DataFusion evaluates it; a
    /// conjunction inside an OR is rewritten where it stands.
    #[test]
    fn only_conjunctions_of_simple_terms_are_rewritten() {
        let b = batch();
        let arithmetic = task_expr(&b, "a > 1 AND a * 2 > 7");
        assert!(!arithmetic.is::<WholeConjunction>(), "{arithmetic}");
        assert_eq!(
            mask(&arithmetic, &b),
            [Some(false), Some(true), None, Some(true), Some(false), Some(true)]
        );
        let either = task_expr(&b, "(a = 1 AND b = 'x') OR (a >= 5 AND b = 'y')");
        let or = either.downcast_ref::<BinaryExpr>().expect("an OR");
        assert!(or.left().is::<WholeConjunction>() && or.right().is::<WholeConjunction>(), "{either}");
        assert_eq!(mask(&either, &b), [Some(true), Some(true), None, None, Some(false), Some(true)]);
    }
}
