//! ANDs and ORs of simple comparisons evaluated whole: `a AND (b OR c)` as one expression that
//! evaluates every term over the whole batch and combines the masks.
//!
//! DataFusion evaluates `l AND r` by evaluating `l`, and when it keeps at most a fifth of the
//! rows, copies *every column of the batch* to those rows (`filter_record_batch`), evaluates `r`
//! on the copy and scatters the result back; a chain of terms does so at each level. `l OR r`
//! does the same when `l` is true on at least four fifths of the rows. For TPC-H q6 (five
//! comparisons over four columns, two of them 16-byte decimals) those copies were about a fifth
//! of the query's samples; q19's filters (an `IN` list the optimizer turns into ORs of
//! equalities, ANDed with another test; three ORed conjunctions after its join) copied the
//! batch's decimal columns the same way. A comparison of a column with a literal or another
//! column costs about a nanosecond a row over the whole batch, less than copying the batch
//! once, and cannot fail, so a tree of ANDs and ORs over only such terms evaluates each term
//! over the whole batch and combines the masks with SQL's three-valued AND and OR, as the
//! chain would. A node stops at the first term after which every row is false (AND) or true
//! (OR), with no nulls: later terms could not change a row. Any other tree (one with a term
//! that could fail or costs more, such as a cast, arithmetic, a function or `LIKE`) is left as
//! it is, and only its subtrees are rewritten.
//!
//! Applied where a task evaluates a filter: to programs' filter steps (`program.rs`) and,
//! as a physical optimizer rule ([`WholeBooleans`]) that runs after DataFusion's own, to
//! the filters of task plans. Not to what the coordinator estimates selectivity with: the
//! rewritten expression gives the same rows but no interval analysis, so an estimate from
//! column ranges would fall back to an assumed fraction (and change plans).

use arrow::array::{Array, ArrayRef, BooleanArray};
use arrow::compute::kernels::boolean::{and_kleene, or_kleene};
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

/// The AND or OR of `terms` (at least two), each evaluated over the whole batch: a simple term
/// (see the module) or another such node.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct WholeBoolean {
    /// `Operator::And` or `Operator::Or`.
    op: Operator,
    terms: Vec<Arc<dyn PhysicalExpr>>,
}

/// `expr` with every tree of ANDs and ORs over only simple terms (see the module) made a
/// [`WholeBoolean`], wherever it is in the expression; `expr` itself when there is none.
pub fn rewrite(expr: Arc<dyn PhysicalExpr>) -> Arc<dyn PhysicalExpr> {
    if let Some(whole) = whole(&expr) {
        return Arc::new(whole);
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

/// `expr` as a [`WholeBoolean`] when it is an AND or an OR whose terms are all simple or
/// themselves such trees.
fn whole(expr: &Arc<dyn PhysicalExpr>) -> Option<WholeBoolean> {
    let op = *expr.downcast_ref::<BinaryExpr>()?.op();
    if !matches!(op, Operator::And | Operator::Or) {
        return None;
    }
    let mut chain = Vec::new();
    operands(expr, op, &mut chain);
    let mut terms = Vec::with_capacity(chain.len());
    for term in chain {
        if simple(&term) {
            terms.push(term);
        } else {
            terms.push(Arc::new(whole(&term)?) as Arc<dyn PhysicalExpr>);
        }
    }
    Some(WholeBoolean { op, terms })
}

/// Collects the operands of a chain of `op` (`a op b op c`, however grouped) into `terms`.
fn operands(expr: &Arc<dyn PhysicalExpr>, op: Operator, terms: &mut Vec<Arc<dyn PhysicalExpr>>) {
    match expr.downcast_ref::<BinaryExpr>() {
        Some(node) if *node.op() == op => {
            operands(node.left(), op, terms);
            operands(node.right(), op, terms);
        }
        _ => terms.push(Arc::clone(expr)),
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

impl WholeBoolean {
    /// The terms, each written by `term` (a nested node in parentheses), joined by the operator.
    fn write_terms(
        &self,
        f: &mut fmt::Formatter<'_>,
        term: impl Fn(&Arc<dyn PhysicalExpr>, &mut fmt::Formatter<'_>) -> fmt::Result,
    ) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                write!(f, " {} ", self.op)?;
            }
            if t.is::<WholeBoolean>() {
                write!(f, "(")?;
                term(t, f)?;
                write!(f, ")")?;
            } else {
                term(t, f)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for WholeBoolean {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_terms(f, |t, f| write!(f, "{t}"))
    }
}

impl PhysicalExpr for WholeBoolean {
    fn return_field(&self, input_schema: &Schema) -> DfResult<FieldRef> {
        let mut nullable = false;
        for term in &self.terms {
            nullable |= term.nullable(input_schema)?;
        }
        Ok(Arc::new(Field::new(self.op.to_string().to_lowercase(), DataType::Boolean, nullable)))
    }

    fn evaluate(&self, batch: &RecordBatch) -> DfResult<ColumnarValue> {
        let rows = batch.num_rows();
        let mut mask: Option<BooleanArray> = None;
        for term in &self.terms {
            let value: ArrayRef = term.evaluate(batch)?.into_array(rows)?;
            let Some(value) = value.as_any().downcast_ref::<BooleanArray>() else {
                return internal_err!("a term of {} is not boolean: {term}", self.op);
            };
            let and = self.op == Operator::And;
            let combined = match mask {
                None => value.clone(),
                Some(m) if and => and_kleene(&m, value)?,
                Some(m) => or_kleene(&m, value)?,
            };
            // Every row false (AND) or every row true (OR): no later term changes any row.
            let settled = combined.null_count() == 0 && combined.true_count() == if and { 0 } else { rows };
            mask = Some(combined);
            if settled {
                break;
            }
        }
        match mask {
            Some(mask) => Ok(ColumnarValue::Array(Arc::new(mask))),
            None => internal_err!("{} without terms", self.op),
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
                "{} of {} terms given {} children",
                self.op,
                self.terms.len(),
                children.len()
            );
        }
        Ok(Arc::new(WholeBoolean { op: self.op, terms: children }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_terms(f, |t, f| t.fmt_sql(f))
    }
}

/// The physical optimizer rule that gives task plans' filters [`rewrite`]'s predicates.
#[derive(Debug, Default)]
pub struct WholeBooleans;

impl PhysicalOptimizerRule for WholeBooleans {
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
        "shoal_whole_booleans"
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
        let whole = expr.downcast_ref::<WholeBoolean>().expect("rewritten");
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

    /// A term that could fail or costs more keeps its tree as DataFusion evaluates it; a tree
    /// of ANDs and ORs over simple terms is one node with nested nodes.
    #[test]
    fn only_trees_of_simple_terms_are_rewritten() {
        let b = batch();
        let arithmetic = task_expr(&b, "a > 1 AND a * 2 > 7");
        assert!(!arithmetic.is::<WholeBoolean>(), "{arithmetic}");
        assert_eq!(
            mask(&arithmetic, &b),
            [Some(false), Some(true), None, Some(true), Some(false), Some(true)]
        );
        let either = task_expr(&b, "(a = 1 AND b = 'x') OR (a >= 5 AND b = 'y')");
        let or = either.downcast_ref::<WholeBoolean>().expect("rewritten");
        assert_eq!(or.op, Operator::Or);
        assert!(
            or.terms.iter().all(|t| t.downcast_ref::<WholeBoolean>().is_some_and(|t| t.op == Operator::And))
        );
        assert_eq!(either.to_string(), "(a@0 = 1 AND b@1 = x) OR (a@0 >= 5 AND b@1 = y)");
        assert_eq!(mask(&either, &b), [Some(true), Some(true), None, None, Some(false), Some(true)]);
        // Arithmetic under an OR: the OR stays DataFusion's, the AND beside it is rewritten.
        let mixed = task_expr(&b, "a * 2 > 7 OR (a = 1 AND b = 'x')");
        let or = mixed.downcast_ref::<BinaryExpr>().expect("an OR");
        assert!(!or.left().is::<WholeBoolean>() && or.right().is::<WholeBoolean>(), "{mixed}");
        assert_eq!(mask(&mixed, &b), [Some(true), Some(true), None, Some(true), Some(false), Some(true)]);
    }

    /// SQL's three-valued OR, and a NOT over a rewritten AND, checked by hand row by row.
    #[test]
    fn ors_and_negations_keep_sql_nulls() {
        let b = batch();
        // (1,x) T. (5,y) T. (null,x): null, F, T. (7,null): F, null, F. (3,x) T. (9,y) T.
        let or = task_expr(&b, "a < 4 OR b = 'y' OR a IS NULL");
        assert_eq!(or.downcast_ref::<WholeBoolean>().map(|w| w.terms.len()), Some(3));
        assert_eq!(mask(&or, &b), [Some(true), Some(true), Some(true), None, Some(true), Some(true)]);
        // Every row true after two terms: the third is not needed for any row.
        let settled = task_expr(&b, "a IS NULL OR a IS NOT NULL OR b = 'q'");
        assert_eq!(mask(&settled, &b), [Some(true); 6]);
        // A null AND stays null under NOT (false would have made it true).
        let not = task_expr(&b, "NOT (a > 3 AND b = 'x')");
        assert_eq!(mask(&not, &b), [Some(true), Some(true), None, None, Some(true), Some(true)]);
    }
}
