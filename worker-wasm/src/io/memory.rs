//! Memory accounting of in-memory tables: what a task's inputs hold against its limit.

use arrow::record_batch::RecordBatch;

/// Memory held by `batches`: every distinct buffer allocation once. (Batches decoded from one
/// Parquet column chunk share buffers, so summing `get_array_memory_size` per batch would
/// count those many times.)
pub fn held_bytes<'a>(batches: impl IntoIterator<Item = &'a RecordBatch>) -> usize {
    fn visit(data: &arrow::array::ArrayData, seen: &mut std::collections::HashSet<usize>, total: &mut usize) {
        let buffers = data.buffers().iter().chain(data.nulls().map(|n| n.buffer()));
        for b in buffers {
            if seen.insert(b.data_ptr().as_ptr() as usize) {
                *total += b.capacity();
            }
        }
        for child in data.child_data() {
            visit(child, seen, total);
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for batch in batches {
        for column in batch.columns() {
            visit(&column.to_data(), &mut seen, &mut total);
        }
    }
    total
}
