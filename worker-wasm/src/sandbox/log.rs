//! Capture of the guest's stdout and stderr: one bounded in-memory log, wired into WASI as both
//! output streams.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Guest stdout+stderr: keeps the first `capacity` bytes, counts the rest. Never blocks or
/// fails the guest's writes (a guest's `println!` panics if stdout errors).
#[derive(Clone)]
pub(super) struct BoundedLog {
    inner: Arc<Mutex<LogBuffer>>,
}

struct LogBuffer {
    data: Vec<u8>,
    capacity: usize,
    dropped: u64,
}

impl BoundedLog {
    pub(super) fn new(capacity: usize) -> Self {
        Self { inner: Arc::new(Mutex::new(LogBuffer { data: Vec::new(), capacity, dropped: 0 })) }
    }

    fn append(&self, bytes: &[u8]) {
        if let Ok(mut buf) = self.inner.lock() {
            let room = buf.capacity.saturating_sub(buf.data.len());
            let keep = room.min(bytes.len());
            buf.data.extend_from_slice(&bytes[..keep]);
            buf.dropped += (bytes.len() - keep) as u64;
        }
    }

    /// The captured text, with a note when output was dropped.
    pub(super) fn text(&self) -> String {
        match self.inner.lock() {
            Ok(buf) => {
                let mut text = String::from_utf8_lossy(&buf.data).into_owned();
                if buf.dropped > 0 {
                    if !text.ends_with('\n') && !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&format!(
                        "[log truncated: {} more bytes dropped after {} bytes]",
                        buf.dropped, buf.capacity
                    ));
                }
                text
            }
            Err(_) => String::new(),
        }
    }
}

impl IsTerminal for BoundedLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for BoundedLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for BoundedLog {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(1 << 20)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for BoundedLog {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for BoundedLog {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
