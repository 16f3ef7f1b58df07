//! `nunique` by group (`count(DISTINCT x)` in a grouped aggregation) with the distinct values
//! kept per group.
//!
//! DataFusion's grouped `count(DISTINCT x)` keeps one hash set of `(group, value)` pairs for all
//! groups of a task. When the groups are many and each has few values (TPC-H Q21 counts the
//! suppliers of each of 1.5 million orders: one to seven each), every row is a probe into a set
//! of millions of entries, which grows by rehashing all of them: 35% of Q21's time. Here each
//! group holds its own values: up to [`INLINE`] in the group's own slot (no allocation), then
//! a list of up to [`FEW`] searched in place, then a hash set of its own. A row costs a search
//! of one small list, the groups grow independently, and emitting some groups
//! (`EmitTo::First`) takes those groups' values instead of rebuilding the whole set.
//!
//! [`Nunique`] is DataFusion's `count` in every respect but the grouped accumulator of a distinct
//! count over primitive values: the same name (so plans display `count(DISTINCT x)`), return
//! type, state (the list of a group's distinct values, so states merge with DataFusion's own
//! accumulators) and ungrouped accumulator. [`rewrite`] swaps it into an aggregate expression
//! where it applies.

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, Int64Array, ListArray, PrimitiveArray,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::hash_utils::RandomState;
use datafusion::common::{DFSchema, HashSet, Result as DfResult, ScalarValue, exec_err};
use datafusion::functions_aggregate::count::Count;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, Expr, ExprSchemable, GroupsAccumulator,
    ReversedUDAF, SetMonotonicity, Signature,
};
use std::hash::Hash;
use std::sync::{Arc, LazyLock};

/// Values a group holds in its own slot before it allocates a list.
const INLINE: usize = 4;

/// Most values a group keeps in a list before it moves them to a hash set: a search of 16
/// values in one or two cache lines is cheaper than a hash probe.
const FEW: usize = 16;

/// DataFusion's `count`, with a per-group accumulator for `count(DISTINCT x)` of primitive `x`.
#[derive(Debug, PartialEq, Eq, Hash, Default)]
pub struct Nunique {
    count: Count,
}

/// `expr` with DataFusion's `count(DISTINCT x)` replaced by [`Nunique`] when `x` is of a type
/// [`Nunique`] keeps per group (integers, dates, timestamps, decimals) and the call has no
/// `FILTER` or `ORDER BY`; any other expression unchanged.
pub fn rewrite(expr: Expr, schema: &DFSchema) -> Expr {
    static NUNIQUE: LazyLock<Arc<AggregateUDF>> =
        LazyLock::new(|| Arc::new(AggregateUDF::from(Nunique::default())));
    match expr {
        Expr::AggregateFunction(f)
            if (f.func.inner().as_ref() as &dyn std::any::Any).is::<Count>()
                && f.params.distinct
                && f.params.filter.is_none()
                && f.params.order_by.is_empty()
                && f.params.args.len() == 1
                && f.params.args[0].get_type(schema).is_ok_and(|t| supported(&t)) =>
        {
            Expr::AggregateFunction(AggregateFunction { func: NUNIQUE.clone(), params: f.params })
        }
        other => other,
    }
}

/// Whether [`Nunique`] keeps the distinct values of `data_type` per group.
fn supported(data_type: &DataType) -> bool {
    groups(data_type).is_some()
}

/// The per-group accumulator of a distinct count of `data_type`, if it is one [`Nunique`] keeps.
fn groups(data_type: &DataType) -> Option<Box<dyn GroupsAccumulator>> {
    use arrow::datatypes::*;
    let t = data_type.clone();
    Some(match data_type {
        DataType::Int8 => Box::new(DistinctGroups::<Int8Type>::new(t)),
        DataType::Int16 => Box::new(DistinctGroups::<Int16Type>::new(t)),
        DataType::Int32 => Box::new(DistinctGroups::<Int32Type>::new(t)),
        DataType::Int64 => Box::new(DistinctGroups::<Int64Type>::new(t)),
        DataType::UInt8 => Box::new(DistinctGroups::<UInt8Type>::new(t)),
        DataType::UInt16 => Box::new(DistinctGroups::<UInt16Type>::new(t)),
        DataType::UInt32 => Box::new(DistinctGroups::<UInt32Type>::new(t)),
        DataType::UInt64 => Box::new(DistinctGroups::<UInt64Type>::new(t)),
        DataType::Date32 => Box::new(DistinctGroups::<Date32Type>::new(t)),
        DataType::Date64 => Box::new(DistinctGroups::<Date64Type>::new(t)),
        DataType::Timestamp(TimeUnit::Second, _) => Box::new(DistinctGroups::<TimestampSecondType>::new(t)),
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            Box::new(DistinctGroups::<TimestampMillisecondType>::new(t))
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Box::new(DistinctGroups::<TimestampMicrosecondType>::new(t))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            Box::new(DistinctGroups::<TimestampNanosecondType>::new(t))
        }
        DataType::Decimal64(_, _) => Box::new(DistinctGroups::<Decimal64Type>::new(t)),
        DataType::Decimal128(_, _) => Box::new(DistinctGroups::<Decimal128Type>::new(t)),
        _ => return None,
    })
}

impl AggregateUDFImpl for Nunique {
    fn name(&self) -> &str {
        self.count.name()
    }

    fn signature(&self) -> &Signature {
        self.count.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.count.return_type(arg_types)
    }

    fn is_nullable(&self) -> bool {
        self.count.is_nullable()
    }

    fn state_fields(&self, args: StateFieldsArgs<'_>) -> DfResult<Vec<FieldRef>> {
        self.count.state_fields(args)
    }

    fn accumulator(&self, args: AccumulatorArgs<'_>) -> DfResult<Box<dyn Accumulator>> {
        self.count.accumulator(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs<'_>) -> bool {
        if args.is_distinct && args.exprs.len() == 1 {
            supported(args.expr_fields[0].data_type())
        } else {
            self.count.groups_accumulator_supported(args)
        }
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs<'_>) -> DfResult<Box<dyn GroupsAccumulator>> {
        if !args.is_distinct || args.exprs.len() != 1 {
            return self.count.create_groups_accumulator(args);
        }
        let data_type = args.expr_fields[0].data_type();
        match groups(data_type) {
            Some(acc) => Ok(acc),
            None => exec_err!("nunique: no per-group accumulator for values of type {data_type}"),
        }
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        self.count.reverse_expr()
    }

    fn default_value(&self, data_type: &DataType) -> DfResult<ScalarValue> {
        self.count.default_value(data_type)
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.count.set_monotonicity(data_type)
    }
}

/// The distinct values of one group.
enum Distinct<V> {
    /// At most [`INLINE`] values, held in the group's own slot: most groups never allocate.
    Inline(u8, [V; INLINE]),
    /// At most [`FEW`] values, searched in place.
    Few(Vec<V>),
    /// More: a set of their own.
    Many(Box<HashSet<V, RandomState>>),
}

impl<V: Copy + Eq + Hash + Default> Distinct<V> {
    fn empty() -> Self {
        Distinct::Inline(0, [V::default(); INLINE])
    }

    /// Adds `v`; whether the group did not have it yet.
    #[inline]
    fn insert(&mut self, v: V) -> bool {
        match self {
            Distinct::Inline(len, values) => {
                let n = usize::from(*len);
                if values[..n].contains(&v) {
                    return false;
                }
                if n < INLINE {
                    values[n] = v;
                    *len += 1;
                } else {
                    let mut few = Vec::with_capacity(FEW);
                    few.extend_from_slice(values);
                    few.push(v);
                    *self = Distinct::Few(few);
                }
                true
            }
            Distinct::Few(values) => {
                if values.contains(&v) {
                    return false;
                }
                if values.len() < FEW {
                    values.push(v);
                    return true;
                }
                let mut set = HashSet::with_capacity_and_hasher(FEW * 2, RandomState::default());
                set.extend(values.drain(..));
                set.insert(v);
                *self = Distinct::Many(Box::new(set));
                true
            }
            Distinct::Many(set) => set.insert(v),
        }
    }

    fn len(&self) -> usize {
        match self {
            Distinct::Inline(len, _) => usize::from(*len),
            Distinct::Few(values) => values.len(),
            Distinct::Many(set) => set.len(),
        }
    }

    /// Appends the values to `out`, in no particular order.
    fn append_to(&self, out: &mut Vec<V>) {
        match self {
            Distinct::Inline(len, values) => out.extend_from_slice(&values[..usize::from(*len)]),
            Distinct::Few(values) => out.extend_from_slice(values),
            Distinct::Many(set) => out.extend(set.iter().copied()),
        }
    }
}

/// The distinct values of every group of a task's aggregation, each group's its own.
struct DistinctGroups<T: ArrowPrimitiveType> {
    /// The values' type, with its parameters (a timestamp's zone, a decimal's scale).
    data_type: DataType,
    groups: Vec<Distinct<T::Native>>,
    /// Values held over all groups, for [`GroupsAccumulator::size`].
    values: usize,
}

impl<T: ArrowPrimitiveType> DistinctGroups<T>
where
    T::Native: Eq + Hash,
{
    fn new(data_type: DataType) -> Self {
        Self { data_type, groups: Vec::new(), values: 0 }
    }

    #[inline]
    fn add(&mut self, group: usize, v: T::Native) {
        // `update_batch` and `merge_batch` size `groups` to the batch's group count first.
        if let Some(g) = self.groups.get_mut(group)
            && g.insert(v)
        {
            self.values += 1;
        }
    }

    /// Adds the values of `array` at the rows `filter` keeps (all when `None`) that are not
    /// null, each to the group `groups` gives for its row.
    fn add_array(&mut self, array: &PrimitiveArray<T>, groups: &[usize], filter: Option<&BooleanArray>) {
        let values = array.values();
        if filter.is_none() && array.null_count() == 0 {
            for (&g, &v) in groups.iter().zip(values.iter()) {
                self.add(g, v);
            }
            return;
        }
        for (row, &g) in groups.iter().enumerate() {
            let kept = filter.is_none_or(|f| f.is_valid(row) && f.value(row));
            if kept && array.is_valid(row) {
                self.add(g, values[row]);
            }
        }
    }

    /// The state column: lists of `items` cut at `offsets`, as DataFusion's `count(DISTINCT)`.
    fn lists(&self, offsets: OffsetBuffer<i32>, items: Vec<T::Native>) -> DfResult<Vec<ArrayRef>> {
        let items =
            PrimitiveArray::<T>::new(ScalarBuffer::from(items), None).with_data_type(self.data_type.clone());
        let field = Arc::new(Field::new_list_field(self.data_type.clone(), true));
        Ok(vec![Arc::new(ListArray::try_new(field, offsets, Arc::new(items), None)?)])
    }

    /// Takes the groups `emit_to` names out of the accumulator.
    fn take(&mut self, emit_to: EmitTo) -> Vec<Distinct<T::Native>> {
        let taken = emit_to.take_needed(&mut self.groups);
        self.values -= taken.iter().map(Distinct::len).sum::<usize>();
        taken
    }
}

impl<T: ArrowPrimitiveType + Send> GroupsAccumulator for DistinctGroups<T>
where
    T::Native: Eq + Hash,
{
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.groups.resize_with(total_num_groups, Distinct::empty);
        let Some(array) = values.first().and_then(|a| a.as_primitive_opt::<T>()) else {
            return exec_err!("nunique: expected one column of {}", self.data_type);
        };
        self.add_array(array, group_indices, opt_filter);
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        let counts: Int64Array = self.take(emit_to).iter().map(|g| g.len() as i64).collect();
        Ok(Arc::new(counts))
    }

    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        let taken = self.take(emit_to);
        let total: usize = taken.iter().map(Distinct::len).sum();
        if i32::try_from(total).is_err() {
            return exec_err!("nunique: {total} distinct values are more than one list of states holds");
        }
        let mut values = Vec::with_capacity(total);
        for g in &taken {
            g.append_to(&mut values);
        }
        self.lists(OffsetBuffer::from_lengths(taken.iter().map(Distinct::len)), values)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.groups.resize_with(total_num_groups, Distinct::empty);
        let Some(lists) = values.first().and_then(|a| a.as_list_opt::<i32>()) else {
            return exec_err!("nunique: expected one list column of {} states", self.data_type);
        };
        let Some(items) = lists.values().as_primitive_opt::<T>() else {
            return exec_err!("nunique: states are not lists of {}", self.data_type);
        };
        let offsets = lists.value_offsets();
        for (row, &g) in group_indices.iter().enumerate() {
            if lists.is_null(row) {
                continue;
            }
            for i in offsets[row] as usize..offsets[row + 1] as usize {
                if items.is_valid(i) {
                    self.add(g, items.value(i));
                }
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        let Some(array) = values.first().and_then(|a| a.as_primitive_opt::<T>()) else {
            return exec_err!("nunique: expected one column of {}", self.data_type);
        };
        // Each row its own group: a list of its value, empty where it is null or filtered out.
        let kept: Vec<bool> = (0..array.len())
            .map(|row| array.is_valid(row) && opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row)))
            .collect();
        let items: Vec<T::Native> =
            kept.iter().zip(array.values().iter()).filter(|(k, _)| **k).map(|(_, v)| *v).collect();
        self.lists(OffsetBuffer::from_lengths(kept.iter().map(|&k| usize::from(k))), items)
    }

    fn size(&self) -> usize {
        // Lists grow by doubling and sets keep spare slots: count each value twice.
        self.groups.capacity() * size_of::<Distinct<T::Native>>() + self.values * 2 * size_of::<T::Native>()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow::array::{Int32Array, RecordBatch, StringArray};
    use arrow::datatypes::{Int32Type, Schema};
    use datafusion::prelude::SessionContext;

    fn counts(array: &ArrayRef) -> Vec<i64> {
        array.as_primitive::<arrow::datatypes::Int64Type>().values().to_vec()
    }

    /// Hand-checked: nulls and filtered rows are not counted, repeats are counted once, a group
    /// past [`FEW`] values keeps counting in its set, and emitting the first groups leaves the
    /// others as they were.
    #[test]
    fn counts_distinct_values_per_group() {
        let mut acc = DistinctGroups::<Int32Type>::new(DataType::Int32);
        let values: ArrayRef =
            Arc::new(Int32Array::from(vec![Some(1), Some(1), None, Some(2), Some(7), Some(7)]));
        let filter =
            BooleanArray::from(vec![Some(true), Some(true), Some(true), Some(true), None, Some(false)]);
        acc.update_batch(&[values], &[0, 0, 0, 1, 1, 1], Some(&filter), 2).unwrap();
        // Group 2: 0..40 twice over, with a null each time.
        let many: ArrayRef =
            Arc::new((0..82).map(|i| (i % 41 != 40).then_some(i % 41)).collect::<Int32Array>());
        acc.update_batch(&[many], &[2; 82], None, 3).unwrap();
        assert_eq!(counts(&acc.evaluate(EmitTo::First(1)).unwrap()), [1]);
        let more: ArrayRef = Arc::new(Int32Array::from(vec![3, 2, 100]));
        acc.update_batch(&[more], &[0, 0, 1], None, 2).unwrap();
        // Group 1 (now 0): {2, 3}; group 2 (now 1): 0..39 and 100.
        assert_eq!(counts(&acc.evaluate(EmitTo::All).unwrap()), [2, 41]);
        assert_eq!(acc.size(), 0);
    }

    /// States taken from one accumulator (some groups at a time) and from `convert_to_state`
    /// merge into another to the same counts; the state is DataFusion's: a list per group.
    #[test]
    fn states_merge_to_the_same_counts() {
        let values: ArrayRef =
            Arc::new((0..300).map(|i| (i % 7 != 0).then_some(i % 23)).collect::<Int32Array>());
        let groups: Vec<usize> = (0..300).map(|i| i % 3).collect();
        let mut direct = DistinctGroups::<Int32Type>::new(DataType::Int32);
        direct.update_batch(std::slice::from_ref(&values), &groups, None, 3).unwrap();
        let mut first = direct.state(EmitTo::First(2)).unwrap();
        first.extend(direct.state(EmitTo::All).unwrap());
        assert_eq!(first[0].data_type(), &DataType::new_list(DataType::Int32, true));
        let mut merged = DistinctGroups::<Int32Type>::new(DataType::Int32);
        merged.merge_batch(&first[..1], &[0, 1], 3).unwrap();
        merged.merge_batch(&first[1..], &[2], 3).unwrap();
        let rows = direct_reference(&values, &groups);
        assert_eq!(counts(&merged.evaluate(EmitTo::All).unwrap()), rows);
        let converted = DistinctGroups::<Int32Type>::new(DataType::Int32)
            .convert_to_state(std::slice::from_ref(&values), None);
        let mut merged = DistinctGroups::<Int32Type>::new(DataType::Int32);
        merged.merge_batch(&converted.unwrap(), &groups, 3).unwrap();
        assert_eq!(counts(&merged.evaluate(EmitTo::All).unwrap()), rows);
    }

    /// States are DataFusion's: its own grouped `count(DISTINCT)` accumulator merges ours, and
    /// ours merges its.
    #[test]
    fn states_merge_with_datafusions_accumulator() {
        let values: ArrayRef =
            Arc::new((0..300).map(|i| (i % 7 != 0).then_some(i % 23)).collect::<Int32Array>());
        let groups: Vec<usize> = (0..300).map(|i| i % 3).collect();
        let schema = Schema::new(vec![Field::new("x", DataType::Int32, true)]);
        let column: Arc<dyn datafusion::physical_expr::PhysicalExpr> =
            Arc::new(datafusion::physical_expr::expressions::Column::new("x", 0));
        let fields = [Arc::new(schema.field(0).clone())];
        let theirs = || {
            let args = AccumulatorArgs {
                return_field: Arc::new(Field::new("n", DataType::Int64, false)),
                schema: &schema,
                ignore_nulls: false,
                order_bys: &[],
                is_reversed: false,
                name: "n",
                is_distinct: true,
                exprs: std::slice::from_ref(&column),
                expr_fields: &fields,
            };
            Count::new().create_groups_accumulator(args).unwrap()
        };
        let expected = direct_reference(&values, &groups);
        let mut df = theirs();
        df.update_batch(std::slice::from_ref(&values), &groups, None, 3).unwrap();
        let mut ours = DistinctGroups::<Int32Type>::new(DataType::Int32);
        ours.merge_batch(&df.state(EmitTo::All).unwrap(), &[0, 1, 2], 3).unwrap();
        assert_eq!(counts(&ours.evaluate(EmitTo::All).unwrap()), expected);
        let mut ours = DistinctGroups::<Int32Type>::new(DataType::Int32);
        ours.update_batch(std::slice::from_ref(&values), &groups, None, 3).unwrap();
        let mut df = theirs();
        df.merge_batch(&ours.state(EmitTo::All).unwrap(), &[0, 1, 2], 3).unwrap();
        assert_eq!(counts(&df.evaluate(EmitTo::All).unwrap()), expected);
    }

    /// `batches` pretty-printed, their lines sorted: a table's rows in no particular order.
    /// Also `aggregate.rs`'s tests'.
    pub(crate) fn sorted_lines(batches: &[RecordBatch]) -> Vec<String> {
        let table = arrow::util::pretty::pretty_format_batches(batches).unwrap().to_string();
        let mut lines: Vec<String> = table.lines().map(String::from).collect();
        lines.sort();
        lines
    }

    /// The distinct non-null values per group, counted by a `BTreeSet` per group.
    fn direct_reference(values: &ArrayRef, groups: &[usize]) -> Vec<i64> {
        let mut sets = vec![std::collections::BTreeSet::new(); 3];
        for (v, &g) in values.as_primitive::<Int32Type>().iter().zip(groups) {
            sets[g].extend(v);
        }
        sets.iter().map(|s| s.len() as i64).collect()
    }

    /// Through SQL against DataFusion's own `count(DISTINCT)`: groups of one to a hundred values
    /// with nulls, rewritten only where the column's type is kept per group.
    #[tokio::test]
    async fn agrees_with_datafusions_count_distinct() {
        let rows = 20_000;
        let g: Int32Array = (0..rows).map(|i| Some((i * 7919) % 997)).collect();
        let x: Int32Array =
            (0..rows).map(|i| (i % 13 != 0).then_some((i * 31) % (1 + (i % 997) / 10))).collect();
        let s: StringArray = (0..rows).map(|i| Some(format!("s{}", i % 5))).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int32, false),
            Field::new("x", DataType::Int32, true),
            Field::new("s", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(g), Arc::new(x), Arc::new(s)]).unwrap();
        let ctx = SessionContext::new();
        ctx.register_batch("t", batch).unwrap();
        let sql = "SELECT g, count(DISTINCT x) AS n, count(DISTINCT s) AS m FROM t GROUP BY g";
        let reference = ctx.sql(sql).await.unwrap();
        let df = ctx.table("t").await.unwrap();
        let schema = df.schema().clone();
        let exprs: Vec<Expr> = ["count(DISTINCT x)", "count(DISTINCT s)"]
            .iter()
            .map(|e| rewrite(df.parse_sql_expr(e).unwrap(), &schema))
            .collect();
        let kept = |e: &Expr| matches!(e, Expr::AggregateFunction(f) if f.func.inner().as_ref().type_id() == std::any::TypeId::of::<Nunique>());
        assert!(kept(&exprs[0]) && !kept(&exprs[1]));
        let ours = df
            .aggregate(
                vec![datafusion::prelude::col("g")],
                vec![exprs[0].clone().alias("n"), exprs[1].clone().alias("m")],
            )
            .unwrap();
        let (a, b) =
            (sorted_lines(&ours.collect().await.unwrap()), sorted_lines(&reference.collect().await.unwrap()));
        assert_eq!(a.len(), 997 + 4);
        assert_eq!(a, b);
    }
}
