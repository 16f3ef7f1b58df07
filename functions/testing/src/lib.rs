//! Sandbox test guests: functions that misbehave on purpose, so the host's limits and
//! isolation can be tested for real. Not for production jobs.
//!
//! `trap`, `spin` and `alloc_bomb` misbehave only on a partition with rows: on an empty one
//! (what the coordinator passes to learn a function's output schema) they return it unchanged,
//! like real code that fails on some data.
//!
//! - `identity` — returns its input; prints one line to stdout and one to stderr.
//! - `slow` — sleeps `{ms}` milliseconds, then returns its input (for kill-and-resume tests).
//! - `chatty` — prints about 1 MB to stdout (`{bytes?}`), then returns its input.
//! - `trap` — panics (`{message?}`), which traps the instance.
//! - `spin` — loops forever (for epoch-deadline tests).
//! - `alloc_bomb` — allocates and touches memory until the instance dies.
//! - `probe_sandbox` — reports what the guest can see: file system, a file, environment,
//!   a credential variable and the network, as a one-row batch of Utf8 columns
//!   `fs`, `file`, `env_count`, `secret`, `net`.

use std::io::Write;
use std::sync::Arc;

use arrow_array::{ArrayRef, StringArray};
use shoal_guest::{Args, RecordBatch};

shoal_guest::register! {
    "identity" => ("returns its input; logs one line to stdout and stderr", identity),
    "slow" => ("sleeps {ms} milliseconds, then returns its input", slow),
    "chatty" => ("prints about 1 MB to stdout, then returns its input: {bytes?}", chatty),
    "trap" => ("panics: {message?}", trap),
    "spin" => ("loops forever", spin),
    "alloc_bomb" => ("allocates memory until the instance dies", alloc_bomb),
    "probe_sandbox" => ("reports which files, env vars, secrets and network the guest sees", probe_sandbox),
}

fn identity(batch: RecordBatch, _args: &Args) -> Result<RecordBatch, String> {
    println!("identity: {} rows on stdout", batch.num_rows());
    eprintln!("identity: {} rows on stderr", batch.num_rows());
    Ok(batch)
}

fn slow(batch: RecordBatch, args: &Args) -> Result<RecordBatch, String> {
    let ms = args.opt_i64("ms")?.unwrap_or(100).max(0) as u64;
    if batch.num_rows() > 0 {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    Ok(batch)
}

fn chatty(batch: RecordBatch, args: &Args) -> Result<RecordBatch, String> {
    let total = args.opt_i64("bytes")?.unwrap_or(1 << 20).max(0) as usize;
    let line = "chatty chatty chatty chatty chatty chatty chatty chatty chatty chatty chatty\n";
    let mut out = std::io::stdout().lock();
    let mut written = 0;
    while written < total {
        // A closed or full pipe is the host's business; keep going like a real chatty guest.
        let _ = out.write_all(line.as_bytes());
        written += line.len();
    }
    let _ = out.flush();
    Ok(batch)
}

fn trap(batch: RecordBatch, args: &Args) -> Result<RecordBatch, String> {
    if batch.num_rows() == 0 {
        return Ok(batch);
    }
    let message = args.opt_str("message")?.unwrap_or("trap requested");
    panic!("{message}");
}

fn spin(batch: RecordBatch, _args: &Args) -> Result<RecordBatch, String> {
    if batch.num_rows() == 0 {
        return Ok(batch);
    }
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn alloc_bomb(batch: RecordBatch, _args: &Args) -> Result<RecordBatch, String> {
    if batch.num_rows() == 0 {
        return Ok(batch);
    }
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; 8 << 20];
        // Touch every page so nothing can be lazily elided.
        for i in (0..chunk.len()).step_by(4096) {
            chunk[i] = (i % 251) as u8;
        }
        hoard.push(std::hint::black_box(chunk));
    }
}

fn describe<T, E: std::fmt::Display>(r: Result<T, E>, ok: impl FnOnce(T) -> String) -> String {
    match r {
        Ok(v) => ok(v),
        Err(e) => format!("error: {e}"),
    }
}

fn probe_sandbox(_batch: RecordBatch, _args: &Args) -> Result<RecordBatch, String> {
    let fs = describe(std::fs::read_dir("/"), |dir| {
        let names: Vec<String> =
            dir.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        format!("listed: {}", names.join(","))
    });
    let file = describe(std::fs::read("/etc/hostname"), |bytes| {
        format!("read: {}", String::from_utf8_lossy(&bytes).trim())
    });
    let env_count = std::env::vars_os().count().to_string();
    let secret = describe(std::env::var("AWS_SECRET_ACCESS_KEY"), |v| format!("found: {v}"));
    let net =
        describe(std::net::TcpStream::connect("127.0.0.1:1"), |s| format!("connected: {:?}", s.peer_addr()));
    let columns: Vec<(&str, ArrayRef)> =
        [("fs", fs), ("file", file), ("env_count", env_count), ("secret", secret), ("net", net)]
            .into_iter()
            .map(|(name, value)| (name, Arc::new(StringArray::from(vec![value])) as ArrayRef))
            .collect();
    RecordBatch::try_from_iter(columns).map_err(|e| e.to_string())
}
