//! A fault-injecting HTTP proxy for S3 traffic on loopback: workers talk to it instead of the
//! S3 server, and it answers some requests itself with `503 SlowDown` or `500 InternalError`,
//! cuts some responses off in the middle of the body, and delays others.
//!
//! One request per connection: the proxy reads a request (headers and a `Content-Length`
//! body), forwards it with `Connection: close`, and relays the response until the server closes
//! it, so it never needs to parse response framing. Faults are drawn from a seeded generator.

use crate::data::Rng;
use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often each fault happens, per request (0.0 to 1.0).
#[derive(Debug, Clone, Copy)]
pub struct FaultRates {
    /// Answered by the proxy with 503 SlowDown or 500 InternalError, not forwarded.
    pub error: f64,
    /// Forwarded, but the response is cut off mid-body and the connection dropped.
    pub drop_mid_body: f64,
    /// Forwarded after a delay of 50-300 ms.
    pub delay: f64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    drops: AtomicU64,
    delays: AtomicU64,
    /// Responses with a body still to be cut off whatever the rates say ([`FaultProxy::cut_next`]).
    cut_pending: AtomicU64,
}

/// A running proxy; dropping it stops accepting connections.
#[derive(Debug)]
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`: use as the S3 endpoint.
    pub endpoint: String,
    port: u16,
    counters: Arc<Counters>,
    enabled: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Proxies to `upstream` (`127.0.0.1:PORT`) with the given fault rates.
    pub fn start(upstream_port: u16, rates: FaultRates, seed: u64) -> Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let counters = Arc::new(Counters::default());
        let enabled = Arc::new(AtomicBool::new(true));
        let stopping = Arc::new(AtomicBool::new(false));
        let rng = Arc::new(Mutex::new(Rng::new(seed)));
        let (c, e, s) = (counters.clone(), enabled.clone(), stopping.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (c, e, rng) = (c.clone(), e.clone(), rng.clone());
                std::thread::spawn(move || {
                    let _ = handle(stream, upstream_port, rates, &c, &e, &rng);
                });
            }
        });
        Ok(FaultProxy { endpoint: format!("http://127.0.0.1:{port}"), port, counters, enabled, stopping })
    }

    /// Options for `shoal_worker::io::storage::Storage` whose S3 requests go through the proxy.
    pub fn storage_options(&self) -> shoal_protocol::StorageOptions {
        crate::s3_options(&self.endpoint)
    }

    /// Stops or resumes injecting faults (requests are always forwarded).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::SeqCst);
    }

    /// Cuts off the next `n` responses that have a body (mid-body, then a dropped connection),
    /// whatever the rates: a deterministic fault for one request and its retries.
    pub fn cut_next(&self, n: u64) {
        self.counters.cut_pending.store(n, Ordering::SeqCst);
    }

    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::SeqCst)
    }
    pub fn errors(&self) -> u64 {
        self.counters.errors.load(Ordering::SeqCst)
    }
    pub fn drops(&self) -> u64 {
        self.counters.drops.load(Ordering::SeqCst)
    }
    pub fn delays(&self) -> u64 {
        self.counters.delays.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

enum Fault {
    None,
    Error,
    Drop,
    Delay(Duration),
}

fn handle(
    mut client: TcpStream,
    upstream_port: u16,
    rates: FaultRates,
    counters: &Counters,
    enabled: &AtomicBool,
    rng: &Mutex<Rng>,
) -> Result<()> {
    // The request: its head (with Connection forced to close) and its body.
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = String::new();
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:") {
            continue;
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body)?;
    counters.requests.fetch_add(1, Ordering::SeqCst);

    let fault = if enabled.load(Ordering::SeqCst) {
        let mut r = rng.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let x = r.below(1_000_000) as f64 / 1e6;
        if x < rates.error {
            Fault::Error
        } else if x < rates.error + rates.drop_mid_body {
            Fault::Drop
        } else if x < rates.error + rates.drop_mid_body + rates.delay {
            Fault::Delay(Duration::from_millis(50 + r.below(250)))
        } else {
            Fault::None
        }
    } else {
        Fault::None
    };
    match fault {
        Fault::Error => {
            counters.errors.fetch_add(1, Ordering::SeqCst);
            let (status, code) = if counters.errors.load(Ordering::SeqCst).is_multiple_of(2) {
                ("503 Slow Down", "SlowDown")
            } else {
                ("500 Internal Server Error", "InternalError")
            };
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected</Message></Error>"
            );
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                xml.len()
            );
            client.write_all(reply.as_bytes())?;
            return Ok(());
        }
        Fault::Delay(d) => {
            counters.delays.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(d);
        }
        Fault::Drop | Fault::None => {}
    }
    let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port)).context("connecting upstream")?;
    upstream.write_all(head.as_bytes())?;
    upstream.write_all(&body)?;
    let mut response = Vec::new();
    upstream.read_to_end(&mut response)?;
    let header_end = response.windows(4).position(|w| w == b"\r\n\r\n").map_or(response.len(), |p| p + 4);
    let body_len = response.len() - header_end;
    let forced = || {
        counters.cut_pending.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    };
    if body_len > 1 && (forced() || matches!(fault, Fault::Drop)) {
        // Headers and half of the body, then a dropped connection.
        counters.drops.fetch_add(1, Ordering::SeqCst);
        client.write_all(&response[..header_end + body_len / 2])?;
        let _ = client.shutdown(std::net::Shutdown::Both);
        return Ok(());
    }
    client.write_all(&response)?;
    Ok(())
}
