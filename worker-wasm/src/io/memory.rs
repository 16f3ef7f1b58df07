//! Memory accounting of in-memory tables: what a task's inputs hold against its limit.

use arrow::record_batch::RecordBatch;

/// Memory held by `batches`: every distinct buffer allocation once. (Batches decoded from one
/// Parquet column chunk share buffers, so summing `get_array_memory_size` per batch would
/// count those many times.)
pub fn held_bytes<'a>(batches: impl IntoIterator<Item = &'a RecordBatch>) -> usize {
    let mut held = Held::default();
    for batch in batches {
        held.add(batch);
    }
    held.bytes()
}

/// [`held_bytes`] counted as batches arrive: a buffer two batches share is counted once.
#[derive(Debug, Default)]
pub struct Held {
    seen: std::collections::HashSet<usize>,
    total: usize,
}

impl Held {
    /// Counts the buffers of `batch` not counted yet.
    pub fn add(&mut self, batch: &RecordBatch) {
        for column in batch.columns() {
            self.visit(&column.to_data());
        }
    }

    fn visit(&mut self, data: &arrow::array::ArrayData) {
        let buffers = data.buffers().iter().chain(data.nulls().map(|n| n.buffer()));
        for b in buffers {
            if self.seen.insert(b.data_ptr().as_ptr() as usize) {
                self.total += b.capacity();
            }
        }
        for child in data.child_data() {
            self.visit(child);
        }
    }

    /// The bytes counted so far.
    pub fn bytes(&self) -> usize {
        self.total
    }
}
