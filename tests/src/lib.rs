//! Test harness for shoal's end-to-end tests.
//!
//! - [`data`]: generated test data and whole-table comparison.
//! - [`localstack`]: a private LocalStack (S3, host mode, no Docker) on a free loopback port,
//!   stopped when dropped.
//! - [`python`]: the test-only Python venv with DuckDB and PyArrow, the reference engine of the
//!   differential tests.
//! - [`read_parquet_dir`]: reads the Parquet output of a job back into Arrow batches.
//! - [`init_test_env`]: sets the dummy AWS credentials the S3 client reads from the environment.
//!
//! Nothing here is mocked: missing tools make tests **fail** with a message naming the install
//! script (`bash localstack/install.sh`, `bash scripts/test-venv.sh`; `bash scripts/test.sh`
//! runs both).

use anyhow::{Context, Result};
use arrow::record_batch::RecordBatch;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub mod data;
pub mod faults;
pub mod lambda;

/// Dummy credentials LocalStack accepts; the S3 client reads them from the environment.
pub const AWS_TEST_ENV: [(&str, &str); 2] =
    [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")];

/// Once per test process, sets `AWS_ACCESS_KEY_ID=test` and `AWS_SECRET_ACCESS_KEY=test` where
/// they are unset, so that `s3://` stores built from the environment can talk to LocalStack.
///
/// Call it first thing in every test that uses S3, before the test spawns threads or builds a
/// runtime that could read the environment.
pub fn init_test_env() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let missing: Vec<(&str, &str)> =
            AWS_TEST_ENV.into_iter().filter(|(key, _)| std::env::var_os(key).is_none()).collect();
        if missing.is_empty() {
            return;
        }
        #[allow(unsafe_code)]
        // SAFETY: `set_var` is unsound only when another thread reads or writes the environment
        // at the same time. This runs once per process (OnceLock), at the start of a test and
        // before it spawns any thread; the only variables set are ones the tests themselves read
        // later. `scripts/test.sh` exports them beforehand, so under it nothing is set here.
        unsafe {
            for (key, value) in missing {
                std::env::set_var(key, value);
            }
        }
    });
}

/// `$SHOAL_CACHE`, or `~/.cache/shoal`.
pub fn shoal_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("SHOAL_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache").join("shoal")
}

/// Reads every `*.parquet` file of a directory (sorted by name; `_`/`.` files skipped), or one
/// Parquet file, into record batches.
pub fn read_parquet_dir(path: impl AsRef<Path>) -> Result<Vec<RecordBatch>> {
    let path = path.as_ref();
    let files = if path.is_dir() {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))? {
            let file = entry?.path();
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.ends_with(".parquet") && !name.starts_with(['_', '.']) && file.is_file() {
                files.push(file);
            }
        }
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut batches = Vec::new();
    for file in files {
        let f = std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .with_context(|| format!("reading Parquet footer of {}", file.display()))?
            .build()?;
        for batch in reader {
            batches.push(batch.with_context(|| format!("decoding {}", file.display()))?);
        }
    }
    Ok(batches)
}

/// Storage options for an S3-compatible server (LocalStack, or the fault proxy in front of it)
/// at `endpoint`.
pub fn s3_options(endpoint: &str) -> shoal_protocol::StorageOptions {
    shoal_protocol::StorageOptions {
        endpoint: Some(endpoint.to_string()),
        region: Some("us-east-1".into()),
        ..Default::default()
    }
}

pub mod localstack {
    //! A private LocalStack per test (binary): S3 on a free `127.0.0.1` port with its own
    //! temporary data directory. Dropping the value stops its whole process group.
    //!
    //! Tests pass the endpoint to storage through
    //! `StorageOptions { endpoint: Some(ls.endpoint.clone()), region: Some("us-east-1".into()) }`
    //! (see [`LocalStack::storage_options`]) and take credentials from the environment: call
    //! [`crate::init_test_env`] first.

    use anyhow::{Context, Result, bail};
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, TcpListener, TcpStream};
    use std::os::unix::process::CommandExt;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// How long LocalStack may take to answer its health check (it usually needs ~2 s).
    pub const START_TIMEOUT: Duration = Duration::from_secs(60);

    /// A running LocalStack; stopped (whole process group) on drop.
    #[derive(Debug)]
    pub struct LocalStack {
        /// `http://127.0.0.1:PORT`
        pub endpoint: String,
        pub port: u16,
        child: Child,
        dir: tempfile::TempDir,
    }

    /// The LocalStack venv: `$SHOAL_LOCALSTACK_VENV`, or `$SHOAL_CACHE/localstack-venv`
    /// (default `~/.cache/shoal/localstack-venv`).
    pub fn venv() -> PathBuf {
        match std::env::var_os("SHOAL_LOCALSTACK_VENV").filter(|v| !v.is_empty()) {
            Some(v) => PathBuf::from(v),
            None => crate::shoal_cache().join("localstack-venv"),
        }
    }

    impl LocalStack {
        /// Starts LocalStack with S3 only.
        pub fn start() -> Result<LocalStack> {
            Self::start_with_services("s3")
        }

        /// Starts LocalStack with the given `SERVICES` list (e.g. `"s3,lambda"`).
        pub fn start_with_services(services: &str) -> Result<LocalStack> {
            let venv = venv();
            let python = venv.join("bin").join("python");
            if !python.exists() {
                bail!(
                    "LocalStack is not installed ({} does not exist): run `bash localstack/install.sh` \
                     (or `bash scripts/test.sh`, which installs everything the tests need)",
                    python.display()
                );
            }
            let port = free_port()?;
            let dir = tempfile::Builder::new()
                .prefix("shoal-localstack-")
                .tempdir()
                .context("creating LocalStack's temporary directory")?;
            let data = dir.path().join("data");
            std::fs::create_dir_all(&data)?;
            let log = std::fs::File::create(dir.path().join("localstack.log"))?;
            let child = Command::new(&python)
                .args(["-m", "localstack.runtime.main"])
                .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
                .env("SERVICES", services)
                .env("DISABLE_EVENTS", "1")
                .env("SKIP_SSL_CERT_DOWNLOAD", "1")
                .env("DNS_ADDRESS", "0")
                .env("OVERRIDE_IN_DOCKER", "0")
                .env("FILESYSTEM_ROOT", &data)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .process_group(0)
                .spawn()
                .with_context(|| format!("spawning {} -m localstack.runtime.main", python.display()))?;
            // From here on, Drop stops the process on every path, errors included.
            let mut ls = LocalStack { endpoint: format!("http://127.0.0.1:{port}"), port, child, dir };
            ls.wait_healthy(START_TIMEOUT)?;
            Ok(ls)
        }

        fn wait_healthy(&mut self, timeout: Duration) -> Result<()> {
            let deadline = Instant::now() + timeout;
            loop {
                if let Ok((200, _)) = http(self.port, "GET", "/_localstack/health") {
                    return Ok(());
                }
                if let Some(status) = self.child.try_wait()? {
                    bail!("LocalStack exited during start ({status}); log tail:\n{}", self.log_tail(40));
                }
                if Instant::now() >= deadline {
                    bail!(
                        "LocalStack did not answer {}/_localstack/health within {timeout:?}; log tail:\n{}",
                        self.endpoint,
                        self.log_tail(40)
                    );
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }

        /// Options for `shoal_worker::io::storage::Storage` pointing at this server.
        pub fn storage_options(&self) -> shoal_protocol::StorageOptions {
            crate::s3_options(&self.endpoint)
        }

        /// Environment a child process (a worker, the CLI) needs to reach this server.
        pub fn aws_env(&self) -> Vec<(String, String)> {
            let mut env: Vec<(String, String)> = crate::AWS_TEST_ENV
                .iter()
                .map(|(k, v)| (k.to_string(), std::env::var(k).unwrap_or_else(|_| v.to_string())))
                .collect();
            env.push(("AWS_REGION".into(), "us-east-1".into()));
            env.push(("AWS_ENDPOINT_URL".into(), self.endpoint.clone()));
            env
        }

        /// Creates a bucket (unsigned `PUT /name`, which LocalStack accepts). Names follow S3's
        /// rules: 3 to 63 lowercase letters, digits, `-` and `.`.
        pub fn create_bucket(&self, name: &str) -> Result<()> {
            let (status, body) = http(self.port, "PUT", &format!("/{name}"))?;
            if status != 200 {
                bail!("creating bucket '{name}' on {} answered {status}: {body}", self.endpoint);
            }
            Ok(())
        }

        /// The server's log so far (last `lines` lines), for error messages.
        pub fn log_tail(&self, lines: usize) -> String {
            let text = std::fs::read_to_string(self.dir.path().join("localstack.log")).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }

        /// PID of the LocalStack process (also its process group).
        pub fn pid(&self) -> u32 {
            self.child.id()
        }
    }

    impl Drop for LocalStack {
        fn drop(&mut self) {
            use rustix::process::{Pid, Signal, kill_process_group};
            let group = Pid::from_child(&self.child);
            // Ask politely, then insist; either way reap the child and clear the group.
            let _ = kill_process_group(group, Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                match self.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
            let _ = kill_process_group(group, Signal::KILL);
            let _ = self.child.wait();
        }
    }

    /// A port nobody listens on right now (bind `127.0.0.1:0`, read it, close).
    fn free_port() -> Result<u16> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
        Ok(listener.local_addr()?.port())
    }

    /// A bodiless HTTP/1.1 request to `127.0.0.1:port`; returns the status and the body.
    pub fn http(port: u16, method: &str, path: &str) -> Result<(u16, String)> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        )?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        let text = String::from_utf8_lossy(&response);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("malformed HTTP response: {text:.200}"))?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Ok((status, body))
    }
}

pub mod python {
    //! The test-only Python venv (`scripts/test-venv.sh`) with DuckDB and PyArrow.

    use anyhow::{Context, Result, bail};
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// The test venv's interpreter: `$SHOAL_TEST_PYTHON`, or
    /// `$SHOAL_CACHE/test-venv/bin/python` (default `~/.cache/shoal/test-venv/bin/python`).
    pub fn test_python() -> Result<PathBuf> {
        let python = match std::env::var_os("SHOAL_TEST_PYTHON").filter(|v| !v.is_empty()) {
            Some(p) => PathBuf::from(p),
            None => crate::shoal_cache().join("test-venv").join("bin").join("python"),
        };
        if !python.exists() {
            bail!(
                "the test Python venv is not installed ({} does not exist): run `bash scripts/test-venv.sh` \
                 (or `bash scripts/test.sh`, which installs everything the tests need)",
                python.display()
            );
        }
        Ok(python)
    }

    const DUCKDB_COPY: &str = r#"
import sys
import duckdb
sql, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("COPY (" + sql + ") TO '" + out.replace("'", "''") + "' (FORMAT parquet)")
"#;

    /// Runs `sql` in DuckDB (in the test venv) and writes its result to `out_parquet` with
    /// `COPY (<sql>) TO '<out>' (FORMAT parquet)`. Errors carry DuckDB's message.
    pub fn duckdb_query(sql: &str, out_parquet: &Path) -> Result<()> {
        let python = test_python()?;
        let out = out_parquet.to_str().context("output path is not UTF-8")?;
        let output = Command::new(&python)
            .args(["-c", DUCKDB_COPY, sql, out])
            .output()
            .with_context(|| format!("running {}", python.display()))?;
        if !output.status.success() {
            bail!(
                "DuckDB query failed ({}):\n  sql: {sql}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            );
        }
        Ok(())
    }

    /// DuckDB's answer to `sql` over views of Parquet tables: each `(alias, table)` of `views`
    /// names `dir/<table>/*.parquet`. The result goes to `dir/duckdb-<name>.parquet` and is read
    /// back; `name` also labels a failure.
    pub fn duckdb_over_tables(
        dir: &Path,
        views: &[(&str, &str)],
        name: &str,
        sql: &str,
    ) -> Result<Vec<arrow::record_batch::RecordBatch>> {
        let d = dir.display();
        let with: Vec<String> = views
            .iter()
            .map(|(alias, table)| format!("{alias} AS (SELECT * FROM read_parquet('{d}/{table}/*.parquet'))"))
            .collect();
        let out = dir.join(format!("duckdb-{name}.parquet"));
        duckdb_query(&format!("WITH {} {sql}", with.join(", ")), &out).with_context(|| name.to_string())?;
        crate::read_parquet_dir(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array};

    #[test]
    fn duckdb_writes_parquet_we_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("part-0.parquet");
        python::duckdb_query("SELECT range AS x FROM range(5)", &out).unwrap();
        std::fs::write(dir.path().join("_SUCCESS"), b"").unwrap();
        for batches in [read_parquet_dir(dir.path()).unwrap(), read_parquet_dir(&out).unwrap()] {
            let xs: Vec<i64> = batches
                .iter()
                .flat_map(|b| {
                    let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().clone();
                    (0..col.len()).map(move |i| col.value(i)).collect::<Vec<_>>()
                })
                .collect();
            assert_eq!(xs, vec![0, 1, 2, 3, 4]);
        }
    }

    #[test]
    fn duckdb_errors_carry_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let err = python::duckdb_query("SELECT * FROM no_such_table", &dir.path().join("x.parquet"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no_such_table"), "{err}");
    }

    #[test]
    fn localstack_starts_creates_buckets_and_stops() {
        let ls = localstack::LocalStack::start().unwrap();
        let port = ls.port;
        assert_eq!(ls.endpoint, format!("http://127.0.0.1:{port}"));
        ls.create_bucket("harness-test").unwrap();
        let (status, body) = localstack::http(port, "GET", "/harness-test").unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(ls.create_bucket("x").is_err(), "an invalid bucket name must fail");
        let pid = ls.pid();
        drop(ls);
        assert!(localstack::http(port, "GET", "/_localstack/health").is_err(), "still listening");
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "process {pid} still exists");
    }
}
