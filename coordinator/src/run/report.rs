//! The run report: what a run did and what it would cost on cloud functions, printed at the end
//! of every run and written as JSON next to the job's manifests (`jobs/<job_id>.report.json`).
//!
//! The cost is an estimate from list prices (configurable in [`Prices`]): function time is
//! billed per GB-second of the configured function memory over the workers' wall time, plus a
//! price per invocation; storage requests per thousand. Data transfer inside one region is free
//! and not counted. For the local executors it answers "what would this run cost on Lambda".

use serde::{Deserialize, Serialize};

/// Totals of one run. Resource counters add up every attempt that returned metrics, including
/// duplicates whose result was discarded: they did the work.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub tasks: usize,
    pub executed: usize,
    pub already_committed: usize,
    /// Tasks not run because all their inputs were empty (an empty manifest was committed).
    pub skipped: usize,
    pub attempts: u64,
    pub retries: u64,
    /// Backup attempts launched (stragglers, forced duplicates).
    pub speculative: u64,
    /// Attempts that ended after their task had committed.
    pub discarded: u64,
    /// Attempts that failed (retried or not).
    pub failed_attempts: u64,
    pub rows_written: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub objects_read: u64,
    pub objects_written: u64,
    /// Object-storage requests made by workers.
    pub requests: u64,
    /// Input records left out as malformed (JSON lines read with `errors = "skip"`).
    pub records_skipped: u64,
    /// Worker wall time, summed over attempts.
    pub worker_ms: u64,
    /// Time spent in user functions, summed over attempts.
    pub guest_ms: u64,
    /// WebAssembly components compiled by workers (not found in a memory or disk cache).
    pub components_compiled: u64,
    /// Cloud-function processes that started for this run, and their slowest start (ms).
    pub cold_starts: u64,
    pub cold_start_max_ms: u64,
    /// The run's report (set by [`Client`](crate::Client) runs, which also write it).
    pub report: Option<Box<RunReport>>,
}

impl RunSummary {
    pub(crate) fn add(&mut self, m: &shoal_protocol::TaskMetrics) {
        self.bytes_read += m.bytes_read;
        self.bytes_written += m.bytes_written;
        self.objects_read += m.objects_read;
        self.objects_written += m.objects_written;
        self.requests += m.requests;
        self.records_skipped += m.records_skipped;
        self.worker_ms += m.wall_ms;
        self.guest_ms += m.guest_ms;
        self.components_compiled += m.components_compiled;
        if let Some(ms) = m.cold_start_ms {
            self.cold_starts += 1;
            self.cold_start_max_ms = self.cold_start_max_ms.max(ms);
        }
    }
}

/// Unit prices, in USD. Defaults: AWS list prices for Lambda (x86, us-east-1) and S3 Standard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    pub per_gb_second: f64,
    pub per_million_invocations: f64,
    pub per_thousand_get: f64,
    pub per_thousand_put: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Self {
            per_gb_second: 0.000_016_666_7,
            per_million_invocations: 0.20,
            per_thousand_get: 0.000_4,
            per_thousand_put: 0.005,
        }
    }
}

/// Estimated cost of a run, in USD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub compute: f64,
    pub invocations: f64,
    pub requests: f64,
    pub total: f64,
}

/// Everything a run did, for people and for machines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub job_id: String,
    pub executor: String,
    pub wall_seconds: f64,
    pub tasks: usize,
    pub tasks_run: usize,
    pub tasks_reused: usize,
    /// Tasks not run because all their inputs were empty.
    pub tasks_skipped: usize,
    pub attempts: u64,
    pub retries: u64,
    pub failed_attempts: u64,
    pub speculative_attempts: u64,
    pub discarded_attempts: u64,
    pub rows_written: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub objects_read: u64,
    pub objects_written: u64,
    pub storage_requests: u64,
    /// Of the requests: writes (data objects and commit manifests); the rest are reads.
    pub storage_puts: u64,
    pub worker_seconds: f64,
    pub guest_seconds: f64,
    /// WebAssembly components compiled by workers (a warm worker finds them cached).
    pub components_compiled: u64,
    /// Cloud-function processes started (process start to ready, slowest).
    pub cold_starts: u64,
    pub cold_start_max_ms: u64,
    pub function_memory_mb: u64,
    pub function_gb_seconds: f64,
    pub prices: Prices,
    pub estimated_cost_usd: Cost,
}

impl RunReport {
    pub fn new(
        summary: &RunSummary,
        job_id: &str,
        executor: &str,
        wall_seconds: f64,
        function_memory_mb: u64,
        prices: &Prices,
    ) -> Self {
        let worker_seconds = summary.worker_ms as f64 / 1000.0;
        let gb_seconds = worker_seconds * function_memory_mb as f64 / 1024.0;
        // Every attempt that got as far as writing put its data objects and tried one
        // conditional manifest put.
        let puts =
            (summary.objects_written + summary.objects_written.min(summary.attempts)).min(summary.requests);
        let gets = summary.requests - puts;
        let compute = gb_seconds * prices.per_gb_second;
        let invocations = summary.attempts as f64 / 1e6 * prices.per_million_invocations;
        let requests =
            gets as f64 / 1000.0 * prices.per_thousand_get + puts as f64 / 1000.0 * prices.per_thousand_put;
        RunReport {
            job_id: job_id.to_string(),
            executor: executor.to_string(),
            wall_seconds,
            tasks: summary.tasks,
            tasks_run: summary.executed,
            tasks_reused: summary.already_committed,
            tasks_skipped: summary.skipped,
            attempts: summary.attempts,
            retries: summary.retries,
            failed_attempts: summary.failed_attempts,
            speculative_attempts: summary.speculative,
            discarded_attempts: summary.discarded,
            rows_written: summary.rows_written,
            bytes_read: summary.bytes_read,
            bytes_written: summary.bytes_written,
            objects_read: summary.objects_read,
            objects_written: summary.objects_written,
            storage_requests: summary.requests,
            storage_puts: puts,
            worker_seconds,
            guest_seconds: summary.guest_ms as f64 / 1000.0,
            components_compiled: summary.components_compiled,
            cold_starts: summary.cold_starts,
            cold_start_max_ms: summary.cold_start_max_ms,
            function_memory_mb,
            function_gb_seconds: gb_seconds,
            prices: prices.clone(),
            estimated_cost_usd: Cost {
                compute,
                invocations,
                requests,
                total: compute + invocations + requests,
            },
        }
    }

    /// A few lines for the terminal.
    pub fn display(&self) -> String {
        let mb = |b: u64| b as f64 / 1e6;
        format!(
            "tasks: {} ({} run, {} reused, {} skipped); attempts: {} ({} retries, {} failed, {} speculative, {} discarded)\n\
             data: read {:.1} MB in {} objects, wrote {:.1} MB in {} objects, {} rows; {} storage requests\n\
             time: {:.2} s wall, {:.2} s worker, {:.2} s in functions; {:.3} GB-s at {} MB{}\n\
             estimated cost on cloud functions: ${:.6} (compute ${:.6}, invocations ${:.6}, requests ${:.6})",
            self.tasks,
            self.tasks_run,
            self.tasks_reused,
            self.tasks_skipped,
            self.attempts,
            self.retries,
            self.failed_attempts,
            self.speculative_attempts,
            self.discarded_attempts,
            mb(self.bytes_read),
            self.objects_read,
            mb(self.bytes_written),
            self.objects_written,
            self.rows_written,
            self.storage_requests,
            self.wall_seconds,
            self.worker_seconds,
            self.guest_seconds,
            self.function_gb_seconds,
            self.function_memory_mb,
            if self.cold_starts > 0 {
                format!("; {} cold starts (slowest {} ms)", self.cold_starts, self.cold_start_max_ms)
            } else {
                String::new()
            },
            self.estimated_cost_usd.total,
            self.estimated_cost_usd.compute,
            self.estimated_cost_usd.invocations,
            self.estimated_cost_usd.requests,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_follows_the_prices() {
        let summary = RunSummary {
            tasks: 10,
            executed: 8,
            already_committed: 2,
            attempts: 9,
            retries: 1,
            objects_written: 8,
            requests: 40,
            worker_ms: 20_000,
            ..Default::default()
        };
        let prices = Prices {
            per_gb_second: 1.0,
            per_million_invocations: 1e6,
            per_thousand_get: 1000.0,
            per_thousand_put: 2000.0,
        };
        let r = RunReport::new(&summary, "j", "threads", 3.0, 2048, &prices);
        // 20 worker-seconds at 2 GB; 9 invocations; 16 puts (8 objects, 8 manifests), 24 gets.
        assert_eq!(r.function_gb_seconds, 40.0);
        assert_eq!(r.storage_puts, 16);
        assert_eq!(
            r.estimated_cost_usd,
            Cost { compute: 40.0, invocations: 9.0, requests: 56.0, total: 105.0 }
        );
        assert!(r.display().contains("9 (1 retries"), "{}", r.display());
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["estimated_cost_usd"]["total"], 105.0);
    }
}
