//! A local Lambda on loopback: the Invoke API (what `aws-sdk-lambda` calls) and the Runtime API
//! (what `lambda_runtime` handlers poll), driving real handler processes.
//!
//! Each handler process gets a Runtime API port of its own, so the emulator knows which process
//! holds which invocation: when a process dies mid-invocation, that invocation fails with a
//! function error (`X-Amz-Function-Error: Unhandled`, as on AWS), and the process is restarted
//! (a new cold start). Invocations wait in one queue that every process polls. Tests can kill a
//! busy process and make the next invocations throttled (429 `TooManyRequestsException`).
//! Plain HTTP/1.1 with `Connection: close`, one thread per connection; loopback only.

use anyhow::{Context, Result, bail};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// What an invocation came back with: body, and the function error kind if any.
type Reply = (Vec<u8>, Option<String>);

struct Pending {
    id: String,
    payload: Vec<u8>,
    reply: Sender<Reply>,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<Pending>>,
    ready: Condvar,
    /// Invocations handed to a process and not answered yet, by request id, with the process.
    in_flight: Mutex<HashMap<String, (usize, Sender<Reply>)>>,
    children: Mutex<Vec<Option<Child>>>,
    /// Per process slot, bumped when its process exits: a `next` request made by a process
    /// that has since died must not take an invocation.
    generations: Mutex<Vec<u64>>,
    throttle: AtomicUsize,
    throttled: AtomicU64,
    invocations: AtomicU64,
    function_errors: AtomicU64,
    starts: AtomicU64,
    next_id: AtomicU64,
    stopping: AtomicBool,
}

/// A running local Lambda. Dropping it stops the servers and kills the processes.
pub struct LocalLambda {
    pub function: String,
    /// `http://127.0.0.1:<port>`: the Invoke API endpoint.
    pub endpoint: String,
    shared: Arc<Shared>,
    runtime_ports: Vec<u16>,
    invoke_port: u16,
}

impl std::fmt::Debug for LocalLambda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLambda")
            .field("function", &self.function)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// Method, path and body of one request.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

fn read_request(stream: &mut TcpStream) -> Result<Request> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) =
        (parts.next().unwrap_or_default().to_string(), parts.next().unwrap_or_default().to_string());
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok(Request { method, path, body })
}

fn respond(stream: &mut TcpStream, status: u16, headers: &[(&str, String)], body: &[u8]) -> Result<()> {
    let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    Ok(())
}

fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    handle: impl Fn(&mut TcpStream) -> Result<()> + Send + Sync + 'static,
) {
    let handle = Arc::new(handle);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if shared.stopping.load(Ordering::SeqCst) {
                break;
            }
            let Ok(mut stream) = stream else { continue };
            let handle = handle.clone();
            std::thread::spawn(move || {
                let _ = handle(&mut stream);
            });
        }
    });
}

impl LocalLambda {
    /// Starts `processes` copies of the handler `binary` for function `function`.
    pub fn start(
        binary: &Path,
        function: &str,
        processes: usize,
        env: &[(String, String)],
    ) -> Result<LocalLambda> {
        let shared = Arc::new(Shared::default());
        let invoke = TcpListener::bind("127.0.0.1:0")?;
        let invoke_port = invoke.local_addr()?.port();
        let name = function.to_string();
        let s = shared.clone();
        serve(invoke, shared.clone(), move |stream| {
            let Request { method, path, body } = read_request(stream)?;
            let prefix = "/2015-03-31/functions/";
            let Some(rest) = path.strip_prefix(prefix).filter(|_| method == "POST") else {
                return respond(stream, 404, &[], b"{}");
            };
            let target = rest.split('/').next().unwrap_or_default();
            if target != name {
                let body = format!(r#"{{"Type":"User","message":"Function not found: {target}"}}"#);
                return respond(
                    stream,
                    404,
                    &[("x-amzn-ErrorType", "ResourceNotFoundException".into())],
                    body.as_bytes(),
                );
            }
            if s.throttle.load(Ordering::SeqCst) > 0 {
                s.throttle.fetch_sub(1, Ordering::SeqCst);
                s.throttled.fetch_add(1, Ordering::SeqCst);
                let body = br#"{"Type":"User","message":"Rate Exceeded.","Reason":"ReservedFunctionConcurrentInvocationLimitExceeded"}"#;
                return respond(
                    stream,
                    429,
                    &[("x-amzn-ErrorType", "TooManyRequestsException".into())],
                    body,
                );
            }
            let (tx, rx) = channel();
            let id = format!("req-{}", s.next_id.fetch_add(1, Ordering::SeqCst));
            s.queue.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push_back(Pending {
                id,
                payload: body,
                reply: tx,
            });
            s.ready.notify_one();
            s.invocations.fetch_add(1, Ordering::SeqCst);
            let (body, error) = rx.recv().context("invocation dropped")?;
            let mut headers = vec![("Content-Type", "application/json".to_string())];
            if let Some(kind) = error {
                s.function_errors.fetch_add(1, Ordering::SeqCst);
                headers.push(("X-Amz-Function-Error", kind));
            }
            respond(stream, 200, &headers, &body)
        });

        let mut runtime_ports = Vec::new();
        for slot in 0..processes {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            runtime_ports.push(listener.local_addr()?.port());
            let s = shared.clone();
            serve(listener, shared.clone(), move |stream| runtime_api(&s, slot, stream));
        }
        shared.children.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.resize_with(processes, || None);
        shared.generations.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.resize(processes, 0);
        let lambda = LocalLambda {
            function: function.to_string(),
            endpoint: format!("http://127.0.0.1:{invoke_port}"),
            shared,
            runtime_ports,
            invoke_port,
        };
        for slot in 0..processes {
            lambda.spawn(binary, slot, env)?;
        }
        // Supervisor: a process that exits fails its invocation and is started again.
        let (s, binary, env) = (lambda.shared.clone(), binary.to_path_buf(), env.to_vec());
        let (ports, function) = (lambda.runtime_ports.clone(), function.to_string());
        std::thread::spawn(move || supervise(&s, &binary, &function, &env, &ports));
        Ok(lambda)
    }

    fn spawn(&self, binary: &Path, slot: usize, env: &[(String, String)]) -> Result<()> {
        spawn_handler(&self.shared, binary, slot, self.runtime_ports[slot], &self.function, env)
    }

    /// Kills (SIGKILL) a process that is running an invocation; returns whether one was busy.
    pub fn kill_busy(&self) -> bool {
        let busy: Option<usize> =
            self.shared.in_flight.lock().ok().and_then(|m| m.values().map(|(p, _)| *p).next());
        let Some(slot) = busy else { return false };
        if let Ok(mut children) = self.shared.children.lock()
            && let Some(Some(child)) = children.get_mut(slot)
        {
            return child.kill().is_ok();
        }
        false
    }

    /// Kills (SIGKILL) a process that is not running an invocation; returns whether one was.
    pub fn kill_idle(&self) -> bool {
        let busy: Vec<usize> =
            self.shared.in_flight.lock().map(|m| m.values().map(|(p, _)| *p).collect()).unwrap_or_default();
        if let Ok(mut children) = self.shared.children.lock() {
            for (slot, child) in children.iter_mut().enumerate() {
                if let Some(child) = child
                    && !busy.contains(&slot)
                {
                    return child.kill().is_ok();
                }
            }
        }
        false
    }

    /// Answers the next `n` invocations with 429 TooManyRequestsException.
    pub fn throttle_next(&self, n: usize) {
        self.shared.throttle.store(n, Ordering::SeqCst);
    }

    pub fn invocations(&self) -> u64 {
        self.shared.invocations.load(Ordering::SeqCst)
    }
    pub fn throttled(&self) -> u64 {
        self.shared.throttled.load(Ordering::SeqCst)
    }
    pub fn function_errors(&self) -> u64 {
        self.shared.function_errors.load(Ordering::SeqCst)
    }
    /// Handler processes started (cold starts), restarts included.
    pub fn starts(&self) -> u64 {
        self.shared.starts.load(Ordering::SeqCst)
    }
    pub fn busy(&self) -> usize {
        self.shared.in_flight.lock().map(|m| m.len()).unwrap_or(0)
    }
}

fn spawn_handler(
    shared: &Shared,
    binary: &Path,
    slot: usize,
    port: u16,
    function: &str,
    env: &[(String, String)],
) -> Result<()> {
    let mut cmd = Command::new(binary);
    cmd.env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "2048")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().with_context(|| format!("starting {}", binary.display()))?;
    shared.starts.fetch_add(1, Ordering::SeqCst);
    let mut children = shared.children.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    children[slot] = Some(child);
    Ok(())
}

fn supervise(shared: &Shared, binary: &Path, function: &str, env: &[(String, String)], ports: &[u16]) {
    while !shared.stopping.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
        let mut exited = Vec::new();
        if let Ok(mut children) = shared.children.lock() {
            for (slot, c) in children.iter_mut().enumerate() {
                if let Some(child) = c
                    && matches!(child.try_wait(), Ok(Some(_)))
                {
                    *c = None;
                    exited.push(slot);
                }
            }
        }
        for slot in exited {
            if let Ok(mut generations) = shared.generations.lock() {
                generations[slot] += 1;
            }
            if let Ok(mut in_flight) = shared.in_flight.lock() {
                let lost: Vec<String> =
                    in_flight.iter().filter(|(_, (p, _))| *p == slot).map(|(id, _)| id.clone()).collect();
                for id in lost {
                    if let Some((_, tx)) = in_flight.remove(&id) {
                        let body = br#"{"errorType":"Runtime.ExitError","errorMessage":"RequestId: the runtime exited during the invocation"}"#;
                        let _ = tx.send((body.to_vec(), Some("Unhandled".into())));
                    }
                }
            }
            if !shared.stopping.load(Ordering::SeqCst) {
                let _ = spawn_handler(shared, binary, slot, ports[slot], function, env);
            }
        }
    }
}

fn runtime_api(s: &Shared, slot: usize, stream: &mut TcpStream) -> Result<()> {
    let Request { method, path, body } = read_request(stream)?;
    let base = "/2018-06-01/runtime/";
    let Some(route) = path.strip_prefix(base) else { return respond(stream, 404, &[], b"{}") };
    if method == "GET" && route == "invocation/next" {
        let generation = |s: &Shared| s.generations.lock().map(|g| g[slot]).unwrap_or_default();
        let asked_by = generation(s);
        let pending = {
            let mut queue = s.queue.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            loop {
                if generation(s) != asked_by {
                    bail!("the process that asked has exited");
                }
                if let Some(p) = queue.pop_front() {
                    break p;
                }
                if s.stopping.load(Ordering::SeqCst) {
                    bail!("stopping");
                }
                queue = s
                    .ready
                    .wait_timeout(queue, Duration::from_millis(200))
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .0;
            }
        };
        let (id, payload) = (pending.id.clone(), pending.payload.clone());
        s.in_flight
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .insert(id.clone(), (slot, pending.reply));
        // The process may have died between taking the invocation and registering it, after
        // the supervisor looked: hand it back to the queue for another process.
        if generation(s) != asked_by {
            if let Some((_, reply)) = s.in_flight.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.remove(&id)
            {
                s.queue.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push_front(Pending {
                    id,
                    payload,
                    reply,
                });
                s.ready.notify_one();
            }
            bail!("the process that asked has exited");
        }
        let deadline = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() + 900_000)
            .unwrap_or_default();
        let headers = [
            ("Lambda-Runtime-Aws-Request-Id", id.clone()),
            ("Lambda-Runtime-Deadline-Ms", deadline.to_string()),
            (
                "Lambda-Runtime-Invoked-Function-Arn",
                "arn:aws:lambda:us-east-1:000000000000:function:local".into(),
            ),
            ("Content-Type", "application/json".into()),
        ];
        return respond(stream, 200, &headers, &payload);
    }
    if method == "POST" && route.starts_with("invocation/") {
        let mut parts = route.trim_start_matches("invocation/").split('/');
        let (id, what) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        if let Some((_, tx)) = s.in_flight.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.remove(id) {
            let error = (what == "error").then(|| "Unhandled".to_string());
            let _ = tx.send((body, error));
        }
        return respond(stream, 202, &[], b"{}");
    }
    // init/error and anything else: acknowledge.
    respond(stream, 202, &[], b"{}")
}

impl Drop for LocalLambda {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.ready.notify_all();
        if let Ok(mut children) = self.shared.children.lock() {
            for mut child in children.drain(..).flatten() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // Wake the accept loops so their threads end.
        for port in self.runtime_ports.iter().chain([&self.invoke_port]) {
            let _ = TcpStream::connect(("127.0.0.1", *port));
        }
    }
}
