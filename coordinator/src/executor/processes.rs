use super::Executor;
use async_trait::async_trait;
use shoal_protocol::{FailureKind, TaskFailure, TaskOutcome, TaskSpec};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Semaphore;

/// A pool of local `shoal-worker` processes. Each process runs one task at a time, reading a
/// JSON spec line on stdin and answering a JSON outcome line on stdout. A process that dies
/// mid-task yields a retryable failure and is replaced by a fresh one on the next task.
#[derive(Debug)]
pub struct Processes {
    binary: PathBuf,
    workers: usize,
    idle: Mutex<Vec<WorkerProcess>>,
    slots: Semaphore,
    env: Vec<(String, String)>,
}

#[derive(Debug)]
struct WorkerProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Processes {
    /// A pool of `workers` processes of `binary` (see [`find_worker_binary`]), started lazily.
    pub fn new(binary: PathBuf, workers: usize, env: Vec<(String, String)>) -> Self {
        let workers = workers.max(1);
        Self { binary, workers, idle: Mutex::new(Vec::new()), slots: Semaphore::new(workers), env }
    }

    fn spawn(&self) -> std::io::Result<WorkerProcess> {
        let mut cmd = Command::new(&self.binary);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take().ok_or_else(|| std::io::Error::other("no stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
        Ok(WorkerProcess { child, stdin, stdout: BufReader::new(stdout).lines() })
    }

    fn take_idle(&self) -> Option<WorkerProcess> {
        self.idle.lock().ok()?.pop()
    }

    fn put_idle(&self, p: WorkerProcess) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(p);
        }
    }

    /// Process ids of the idle workers (for tests that kill workers).
    pub fn idle_pids(&self) -> Vec<u32> {
        self.idle.lock().map(|v| v.iter().filter_map(|p| p.child.id()).collect()).unwrap_or_default()
    }
}

async fn roundtrip(p: &mut WorkerProcess, line: &[u8]) -> Result<String, String> {
    p.stdin.write_all(line).await.map_err(|e| format!("writing to worker: {e}"))?;
    p.stdin.flush().await.map_err(|e| format!("writing to worker: {e}"))?;
    match p.stdout.next_line().await {
        Ok(Some(reply)) => Ok(reply),
        Ok(None) => {
            let status = p.child.wait().await.map(|s| s.to_string()).unwrap_or_default();
            Err(format!("worker process exited mid-task ({status})"))
        }
        Err(e) => Err(format!("reading from worker: {e}")),
    }
}

#[async_trait]
impl Executor for Processes {
    fn name(&self) -> &str {
        "processes"
    }

    fn concurrency(&self) -> usize {
        self.workers
    }

    async fn execute(&self, spec: TaskSpec) -> TaskOutcome {
        let fail = |kind, message: String| TaskFailure {
            kind,
            task_key: spec.task_key.clone(),
            input: None,
            message,
        };
        let _permit = self
            .slots
            .acquire()
            .await
            .map_err(|e| fail(FailureKind::Fatal, format!("worker pool closed: {e}")))?;
        let mut line = serde_json::to_vec(&spec).map_err(|e| fail(FailureKind::Fatal, e.to_string()))?;
        line.push(b'\n');
        let mut process = match self.take_idle() {
            Some(p) => p,
            None => self.spawn().map_err(|e| {
                fail(FailureKind::Fatal, format!("cannot start worker {}: {e}", self.binary.display()))
            })?,
        };
        match roundtrip(&mut process, &line).await {
            Ok(reply) => {
                self.put_idle(process);
                serde_json::from_str::<TaskOutcome>(&reply)
                    .map_err(|e| fail(FailureKind::Retryable, format!("bad reply from worker: {e}")))?
            }
            // The process is gone or broken: drop it (kill_on_drop) and let the scheduler retry.
            Err(message) => Err(fail(FailureKind::Retryable, message)),
        }
    }
}

/// Finds the `shoal-worker` binary: `$SHOAL_WORKER_BIN`, else next to the running executable
/// (or one directory up, for test binaries in `target/*/deps/`), else on `PATH`.
pub fn find_worker_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SHOAL_WORKER_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    for candidate in [dir.join("shoal-worker"), dir.parent()?.join("shoal-worker")] {
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join("shoal-worker")).find(|p| p.is_file()))
}
