//! Serving the dashboard on loopback with axum: the live page of the runs of one `shoal run`
//! (server-sent events carry each redrawn page, at most a few times a second), and the history
//! of a job root (a list of jobs, then any one of them, from their events files).

use super::model::RunView;
use super::render;
use crate::error::{Error, Result};
use crate::events::{Event, Subscription, read_events_lenient, recorded_jobs};
use axum::Router;
use axum::extract::{Path, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures::Stream;
use shoal_worker::io::storage::Storage;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// The default address of `--dashboard`.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8787";

/// How often the live page is redrawn at most.
const REDRAW_EVERY: Duration = Duration::from_millis(250);

/// A redraw waits at least this many times as long as the last one took: drawing a large run
/// takes at most 1/20 of a core per watching browser, which on a small machine is shared with
/// the workers.
const REDRAW_SHARE: u32 = 20;

/// The live page's only script: replace the sections with each redrawn copy.
const LIVE_SCRIPT: &str =
    "new EventSource('stream').onmessage=function(e){document.getElementById('run').innerHTML=e.data};";

/// Binds `addr`, refusing a non-loopback address unless `public`, with an error a user can act
/// on when the address is taken.
async fn bind(addr: &str, public: bool) -> Result<tokio::net::TcpListener> {
    let parsed: SocketAddr = addr.parse().map_err(|e| {
        Error::Invalid(format!("dashboard address '{addr}': {e} (expected IP:PORT, e.g. {DEFAULT_ADDR})"))
    })?;
    if !parsed.ip().is_loopback() && !public {
        return Err(Error::Invalid(format!(
            "dashboard address {addr} is not a loopback address: the dashboard has no authentication; \
             pass --dashboard-public (shoal run) or --public (shoal dashboard) to serve it there anyway"
        )));
    }
    tokio::net::TcpListener::bind(parsed).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            " (another dashboard is running there?): choose another port, or port 0 for any free one"
        } else {
            ""
        };
        Error::Invalid(format!("cannot serve the dashboard on {addr}: {e}{hint}"))
    })
}

/// A running server; dropping it (or [`stop`](Self::stop)) shuts it down.
#[derive(Debug)]
pub struct Server {
    /// `http://IP:PORT/`.
    pub url: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(listener: tokio::net::TcpListener, app: Router) -> Result<Self> {
        let local = listener.local_addr().map_err(|e| Error::Invalid(format!("dashboard address: {e}")))?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!("the dashboard stopped: {e}");
            }
        });
        Ok(Server { url: format!("http://{local}/"), shutdown: Some(tx), task })
    }

    /// Stops serving and waits until the server has closed.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Open event streams end with the server's shutdown; don't wait on slow clients.
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.task).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The live dashboard: what [`watch`](Self::watch)ed runs' events say, redrawn as they come.
#[derive(Debug, Clone)]
pub struct Live {
    view: Arc<RwLock<RunView>>,
    changed: watch::Sender<u64>,
}

impl Live {
    /// Serves the live dashboard on `addr` (port 0: any free port).
    pub async fn serve(addr: &str, public: bool) -> Result<(Live, Server)> {
        let listener = bind(addr, public).await?;
        let live = Live { view: Arc::default(), changed: watch::Sender::new(0) };
        let app = Router::new()
            .route("/", get(live_page))
            .route("/stream", get(live_stream))
            .with_state(live.clone());
        Ok((live, Server::start(listener, app).await?))
    }

    /// Folds a run's events into the page until the run ends. Runs on its own task: the
    /// subscription queues whatever the page has not drawn yet, so the run never waits.
    pub fn watch(&self, mut events: Subscription) -> tokio::task::JoinHandle<()> {
        let live = self.clone();
        tokio::spawn(async move {
            while let Some(batch) = events.recv_batch().await {
                live.apply(&batch);
            }
        })
    }

    fn apply(&self, events: &[Arc<Event>]) {
        if events.is_empty() {
            return;
        }
        if let Ok(mut view) = self.view.write() {
            for event in events {
                view.apply(event);
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }

    fn sections(&self) -> String {
        self.view.read().map(|v| render::sections(&v)).unwrap_or_default()
    }
}

async fn live_page(State(live): State<Live>) -> Html<String> {
    let body = format!("<main id=\"run\">{}</main>", live.sections());
    Html(render::page("shoal dashboard", &body, Some(LIVE_SCRIPT)))
}

async fn live_stream(State(live): State<Live>) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = live.changed.subscribe();
    let stream = futures::stream::unfold(
        (live, rx, None),
        |(live, mut rx, last): (_, _, Option<Duration>)| async move {
            if let Some(took) = last {
                rx.changed().await.ok()?;
                // Redraw at most every REDRAW_EVERY whatever the event rate, and less often when
                // drawing takes long.
                tokio::time::sleep(REDRAW_EVERY.max(took * REDRAW_SHARE)).await;
            }
            rx.mark_unchanged();
            let start = std::time::Instant::now();
            let event = SseEvent::default().data(live.sections());
            Some((Ok(event), (live, rx, Some(start.elapsed()))))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Folds a run's events into its view until the run ends (the saved report's subscriber).
pub async fn fold(mut events: Subscription) -> RunView {
    let mut view = RunView::default();
    while let Some(batch) = events.recv_batch().await {
        for event in batch {
            view.apply(&event);
        }
    }
    view
}

/// The history of a job root: every job with an events file, and each one's page.
#[derive(Debug, Clone)]
struct History {
    storage: Arc<Storage>,
    root: String,
}

/// Serves the past runs under `root` (a local folder or `s3://`) on `addr`.
pub async fn serve_history(storage: Arc<Storage>, root: &str, addr: &str, public: bool) -> Result<Server> {
    // An unreadable root fails now, not on the first page view; so does a root with no runs,
    // which is almost always a mistyped path or bucket.
    if recorded_jobs(&storage, root).await?.is_empty() {
        let root = root.trim_end_matches('/');
        return Err(Error::Invalid(format!(
            "no runs recorded under {root}: every `shoal run --root {root}` writes \
             {root}/jobs/<job id>.events/, and there is none (is this the root the jobs ran with?)"
        )));
    }
    let listener = bind(addr, public).await?;
    let app = Router::new()
        .route("/", get(history_list))
        .route("/job/{id}", get(history_job))
        .with_state(History { storage, root: root.to_string() });
    Server::start(listener, app).await
}

async fn history_list(State(h): State<History>) -> Response {
    match recorded_jobs(&h.storage, &h.root).await {
        Ok(jobs) => {
            let items: String = jobs
                .iter()
                .map(|(id, size)| {
                    format!(
                        "<li class=\"job\"><a href=\"job/{0}\">{0}</a> ({1} of events)</li>",
                        render::esc(id),
                        crate::units::human_bytes(*size)
                    )
                })
                .collect();
            let body = format!(
                "<h1>shoal jobs under {}</h1>{}",
                render::esc(&h.root),
                if jobs.is_empty() {
                    "<p>no recorded runs</p>".to_string()
                } else {
                    format!("<ul>{items}</ul>")
                }
            );
            Html(render::page("shoal jobs", &body, None)).into_response()
        }
        Err(e) => error_page(&e.to_string()),
    }
}

async fn history_job(State(h): State<History>, Path(id): Path<String>) -> Response {
    match read_events_lenient(&h.storage, &h.root, &id).await {
        Ok((events, damaged)) => {
            let view = RunView::from_events(&events);
            let note = match damaged {
                Some(line) => format!(
                    "<p class=\"err\" id=\"damaged\">the recorded events are damaged from line {line} on: \
                     showing the {} events before it; the rest is missing</p>",
                    events.len()
                ),
                None => String::new(),
            };
            let body = format!(
                "<p><a href=\"../\">all jobs</a></p>{note}<main id=\"run\">{}</main>",
                render::sections(&view)
            );
            Html(render::page(&format!("shoal job {id}"), &body, None)).into_response()
        }
        Err(e) => error_page(&e.to_string()),
    }
}

fn error_page(message: &str) -> Response {
    let body = format!("<h1>shoal</h1><p class=\"err\">{}</p>", render::esc(message));
    (axum::http::StatusCode::NOT_FOUND, Html(render::page("shoal", &body, None))).into_response()
}
