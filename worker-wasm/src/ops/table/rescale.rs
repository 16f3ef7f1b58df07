//! Decimal literals brought to the scale of the decimal they are added to or subtracted from.
//!
//! SQL's `1 - l_discount` is coerced to `Decimal128(20, 0) - Decimal128(15, 2)`, and Arrow adds
//! or subtracts decimals of different scales by multiplying *every* value of both sides by a power
//! of ten, with overflow checks, before the operation itself (two checked 128-bit multiplications
//! per row: a sixth of TPC-H Q1's time). Written at the column's scale, as
//! `Decimal128(22, 2) 100`, the literal needs no rescaling and Arrow only adds or subtracts.
//!
//! The result is the same value of the same type: the result's scale is the larger of the two,
//! and its precision `scale + max(p1 - s1, p2 - s2) + 1` is unchanged because the literal keeps
//! its integer digits (`p1 - s1`). A literal that would need more than 38 digits is left alone.
//!
//! Applied to the expressions of programs (`program`) and, as an optimizer rule, to the
//! projections and filters of every task's DataFusion plans (`session`).

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// Most digits of a `Decimal128`.
const MAX_PRECISION: u8 = 38;

/// `expr` with every decimal literal that is added to or subtracted from a decimal of a larger
/// scale written at that scale. Sub-expressions whose type cannot be found are left as they are.
pub fn rescale_literals(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    expr.transform_up(|e| {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
            return Ok(Transformed::no(e));
        };
        if !matches!(op, Operator::Plus | Operator::Minus) {
            return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right })));
        }
        if let Some(l) = at_scale_of(&left, &right, schema) {
            return Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr { left: Box::new(l), op, right })));
        }
        if let Some(r) = at_scale_of(&right, &left, schema) {
            return Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr { left, op, right: Box::new(r) })));
        }
        Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right })))
    })
}

/// `literal` written at `other`'s scale, when `literal` is a decimal literal of a smaller scale
/// and `other` a decimal expression, and the rescaled literal fits 38 digits.
fn at_scale_of(literal: &Expr, other: &Expr, schema: &DFSchema) -> Option<Expr> {
    let Expr::Literal(ScalarValue::Decimal128(value, precision, scale), metadata) = literal else {
        return None;
    };
    let arrow::datatypes::DataType::Decimal128(_, to) = other.get_type(schema).ok()? else {
        return None;
    };
    let shift = u8::try_from(i16::from(to) - i16::from(*scale)).ok().filter(|s| *s > 0)?;
    let precision = precision.checked_add(shift).filter(|p| *p <= MAX_PRECISION)?;
    let factor = 10i128.checked_pow(u32::from(shift))?;
    let value = match value {
        Some(v) => Some(v.checked_mul(factor)?),
        None => None,
    };
    Some(Expr::Literal(ScalarValue::Decimal128(value, precision, to), metadata.clone()))
}

/// [`rescale_literals`] as an optimizer rule over projections and filters, the nodes whose
/// expressions are evaluated once per row of their single input.
#[derive(Debug, Default)]
pub struct RescaleLiterals;

impl OptimizerRule for RescaleLiterals {
    fn name(&self) -> &str {
        "shoal_rescale_decimal_literals"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        if !matches!(plan, LogicalPlan::Projection(_) | LogicalPlan::Filter(_)) {
            return Ok(Transformed::no(plan));
        }
        let Some(input) = plan.inputs().first().map(|i| i.schema().clone()) else {
            return Ok(Transformed::no(plan));
        };
        plan.map_expressions(|e| rescale_literals(e, &input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::table::program;
    use crate::ops::table::session::{TaskSession, frame, session};
    use arrow::array::{Decimal128Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
    use std::sync::Arc;

    fn table() -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("price", DataType::Decimal128(15, 2), false),
            Field::new("disc", DataType::Decimal128(15, 2), true),
        ]));
        // 1000.00, 25.50 and the largest value of 15 digits.
        let price = Decimal128Array::from(vec![100_000_i128, 2_550, 999_999_999_999_999])
            .with_precision_and_scale(15, 2)
            .unwrap();
        let disc =
            Decimal128Array::from(vec![Some(5i128), None, Some(10)]).with_precision_and_scale(15, 2).unwrap();
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(price), Arc::new(disc)]).unwrap();
        (schema, vec![batch])
    }

    /// Each with a literal of a smaller scale than the decimal it is added to or subtracted from.
    const EXPRS: [&str; 4] = [
        "price * (1 - disc)",
        "(1 + disc) * price - 2.5",
        "disc - 0.125 + (1 - disc)",
        "price + 1 + (3 - disc)",
    ];

    /// The literals `expr` holds, by type.
    fn literal_types(expr: &Expr) -> Vec<(Option<i128>, u8, i8)> {
        let mut found = Vec::new();
        expr.apply(|e| {
            if let Expr::Literal(ScalarValue::Decimal128(v, p, s), _) = e {
                found.push((*v, *p, *s));
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })
        .unwrap();
        found
    }

    #[test]
    fn literals_take_the_scale_of_the_decimal_beside_them() {
        let (schema, _) = table();
        let df_schema = DFSchema::try_from(schema.as_ref().clone()).unwrap();
        let ctx = session();
        let coerced = |sql: &str| {
            let e = ctx.parse_sql_expr(sql, &df_schema).unwrap();
            let simplify = datafusion::logical_expr::simplify::SimplifyContext::builder()
                .with_schema(Arc::new(df_schema.clone()))
                .build();
            let simplifier = datafusion::optimizer::simplify_expressions::ExprSimplifier::new(simplify);
            simplifier.simplify(simplifier.coerce(e, &df_schema).unwrap()).unwrap()
        };
        let before = coerced("price * (1 - disc)");
        assert_eq!(literal_types(&before), [(Some(1), 20, 0)], "SQL's 1 is coerced to a scale of 0");
        let after = rescale_literals(before.clone(), &df_schema).unwrap();
        assert!(after.transformed);
        assert_eq!(literal_types(&after.data), [(Some(100), 22, 2)]);
        assert_eq!(after.data.get_type(&df_schema).unwrap(), before.get_type(&df_schema).unwrap());
        // A literal of a larger scale than the column's, or one multiplied, is left as it is.
        let kept = coerced("disc - 0.125 + price * 3");
        assert!(!rescale_literals(kept, &df_schema).unwrap().transformed);
    }

    #[tokio::test]
    async fn the_values_and_types_are_those_of_the_expression_as_written() {
        let (schema, batches) = table();
        for sql in EXPRS {
            // DataFusion's own plan, without the rule: the reference.
            let plain = frame(&session(), schema.clone(), batches.clone()).unwrap();
            let expr = plain.parse_sql_expr(sql).unwrap();
            let want = plain.with_column("v", expr).unwrap().collect().await.unwrap();
            // A task's session, with the rule.
            let task = TaskSession::take(64 << 20).unwrap();
            let df = frame(task.ctx(), schema.clone(), batches.clone()).unwrap();
            let expr = df.parse_sql_expr(sql).unwrap();
            let df = df.with_column("v", expr).unwrap();
            let optimized = df.clone().into_optimized_plan().unwrap();
            let mut rescaled = false;
            optimized
                .apply(|node| {
                    node.apply_expressions(|e| {
                        rescaled |= literal_types(e).iter().any(|(_, _, s)| *s == 2);
                        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
                    })
                })
                .unwrap();
            assert!(rescaled, "{sql}: the task's optimizer rescales a literal:\n{optimized}");
            assert_eq!(df.collect().await.unwrap(), want, "{sql} in a task's plan");
            // A program, with the rule.
            let compiled = program::physical_expr(&schema, sql).unwrap();
            let value = compiled.evaluate(&batches[0]).unwrap().into_array(3).unwrap();
            assert_eq!(&value, want[0].column_by_name("v").unwrap(), "{sql} in a program");
        }
    }
}
