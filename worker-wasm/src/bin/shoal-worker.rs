//! `shoal-worker`: serves tasks to a local process pool. Reads one JSON `TaskSpec` per line on
//! stdin, writes one JSON `TaskOutcome` per line on stdout, in order, until stdin closes.
//! Logs go to stderr.

use anyhow::Context;
use shoal_worker::sandbox::SandboxConfig;
use shoal_worker::{Worker, WorkerConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!(
            "shoal-worker: runs shoal tasks for the `processes` executor.\n\n\
             Reads one JSON TaskSpec per line on stdin and answers one JSON result per line on\n\
             stdout. Environment: SHOAL_CACHE_DIR (compiled-component cache), AWS_* (storage)."
        );
        return Ok(());
    }
    let cache_dir = std::env::var_os("SHOAL_CACHE_DIR").map(std::path::PathBuf::from);
    let worker = Worker::new(WorkerConfig { sandbox: SandboxConfig { cache_dir, ..Default::default() } })
        .context("starting the worker")?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    while let Some(line) = lines.next_line().await.context("reading stdin")? {
        if line.trim().is_empty() {
            continue;
        }
        let outcome = worker.run_json(line.as_bytes()).await;
        let mut reply = serde_json::to_vec(&outcome).context("encoding the result")?;
        reply.push(b'\n');
        stdout.write_all(&reply).await.context("writing stdout")?;
        stdout.flush().await.context("flushing stdout")?;
    }
    Ok(())
}
