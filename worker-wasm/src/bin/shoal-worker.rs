//! `shoal-worker`: serves tasks to a local process pool. Reads one JSON `TaskSpec` per line on
//! stdin, writes one JSON `TaskOutcome` per line on stdout, in order, until stdin closes.
//! Logs go to stderr.
//!
//! The process runs one task at a time, so the pipes are read and written on the main thread,
//! with plain blocking calls between tasks: tokio's own stdin and stdout would hand every read
//! and write to a thread of its blocking pool and back, two thread wake-ups per line.

use anyhow::Context;
use shoal_worker::sandbox::SandboxConfig;
use shoal_worker::{Worker, WorkerConfig};
use std::io::{BufRead, Write};

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!(
            "shoal-worker: runs shoal tasks for the `processes` executor.\n\n\
             Reads one JSON TaskSpec per line on stdin and answers one JSON result per line on\n\
             stdout. Environment: SHOAL_CACHE_DIR (compiled-component cache), AWS_* (storage)."
        );
        return Ok(());
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    let cache_dir = std::env::var_os("SHOAL_CACHE_DIR").map(std::path::PathBuf::from);
    let worker = {
        let _entered = runtime.enter();
        Worker::new(WorkerConfig { sandbox: SandboxConfig { cache_dir, ..Default::default() } })
            .context("starting the worker")?
    };
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    let mut line = String::new();
    loop {
        line.clear();
        if stdin.lock().read_line(&mut line).context("reading stdin")? == 0 {
            return Ok(());
        }
        if line.trim().is_empty() {
            continue;
        }
        let outcome = runtime.block_on(worker.run_json(line.as_bytes()));
        let mut reply = serde_json::to_vec(&outcome).context("encoding the result")?;
        reply.push(b'\n');
        stdout.write_all(&reply).context("writing stdout")?;
        stdout.flush().context("flushing stdout")?;
    }
}
