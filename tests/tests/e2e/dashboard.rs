//! The dashboard in a real browser (Debian's chromium, headless, installed by
//! scripts/chromium.sh): the live page of a running job shows progress that grows between two
//! reads, then completion; a failing job shows its failure; the saved report renders every
//! section offline and asks for nothing over the network; `shoal dashboard` serves history,
//! including a truncated events file; a busy port is a clear error. Screenshots are kept in
//! `$CARGO_TARGET_DIR/test-artifacts/dashboard/`.

use crate::cli::{shoal, shoal_bin};
use shoal_tests::data::{trips_batch, write_csv};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn chromium() -> PathBuf {
    let path =
        std::env::var_os("SHOAL_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/chromium".into());
    assert!(
        path.is_file(),
        "{} is missing: scripts/chromium.sh installs it (scripts/test.sh runs it)",
        path.display()
    );
    path
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("test-artifacts/dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Headless chromium on `url` with a fresh profile and the background services off; `extra`
/// chooses what it does (dump the DOM, take a screenshot, log the network).
fn browse(url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
            "--window-size=1200,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DOM after the page's scripts ran for a moment. The live page's event stream never ends,
/// so the page never finishes loading: `--timeout` stops waiting after a while.
fn dom(url: &str) -> String {
    browse(url, &["--timeout=1500".into(), "--dump-dom".into()])
}

fn screenshot(url: &str, name: &str) {
    let path = artifacts().join(name);
    browse(url, &["--timeout=1500".into(), format!("--screenshot={}", path.display())]);
    assert!(path.is_file(), "screenshot {name} was written");
}

/// The number inside `<span id="{id}">…</span>`.
fn number(dom: &str, id: &str) -> Option<usize> {
    let start = dom.find(&format!("id=\"{id}\">"))? + id.len() + 6;
    dom[start..].split('<').next()?.trim().parse().ok()
}

/// A job of `parts` partitions whose map tasks sleep `ms` each (or trap, if `trap`).
fn job(dir: &Path, parts: usize, function: &str, ms: u64) {
    std::fs::create_dir_all(dir.join("in")).unwrap();
    for i in 0..parts {
        write_csv(&dir.join(format!("in/p-{i:02}.csv")), &trips_batch(i as i64 * 50, 50, i as u64).unwrap())
            .unwrap();
    }
    let toml = format!(
        "[datasets.trips]\nread_csv = \"in/*.csv\"\n\
         [datasets.slow]\nfrom = \"trips\"\nmap_partitions = {{ module = \"builtin:testing\", function = \"{function}\", args = {{ ms = {ms} }} }}\n\
         [[outputs]]\ndataset = \"slow\"\nto_parquet = \"out\"\n"
    );
    std::fs::write(dir.join("job.toml"), toml).unwrap();
}

/// `shoal run` with a dashboard on a free port; returns the process and the dashboard's URL.
fn run_with_dashboard(dir: &Path, linger: &str) -> (Child, String) {
    let mut child = Command::new(shoal_bin())
        .args(["run", "job.toml", "--root", "root", "--executor", "sync", "--dashboard", "127.0.0.1:0"])
        .args(["--dashboard-linger", linger])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("dashboard: ").filter(|u| u.starts_with("http")) {
                let _ = tx.send(url.to_string());
            }
        }
    });
    let url = rx.recv_timeout(Duration::from_secs(120)).expect("the dashboard URL on stderr");
    (child, url)
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_live_dashboard_shows_progress_then_completion() {
    let tmp = tempfile::tempdir().unwrap();
    job(tmp.path(), 8, "slow", 400);
    let (child, url) = run_with_dashboard(tmp.path(), "30");
    let started = Instant::now();
    // Two reads a while apart, both during the run: progress grows.
    let mut first = None;
    let mut second = None;
    while started.elapsed() < Duration::from_secs(120) && second.is_none() {
        let page = dom(&url);
        match (first, number(&page, "done")) {
            (None, Some(n)) if n < 8 && page.contains("id=\"state\">running") => {
                first = Some(n);
                screenshot(&url, "live-running.png");
            }
            (Some(a), Some(b)) if b > a => second = Some(b),
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let (a, b) = (first.expect("a read while running"), second.expect("a later read with more done"));
    assert!(b > a, "{a} then {b}");
    // Then completion, while the dashboard lingers.
    let mut page = String::new();
    while started.elapsed() < Duration::from_secs(120) {
        page = dom(&url);
        if page.contains("succeeded") {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(page.contains("succeeded"), "{page}");
    assert_eq!((number(&page, "done"), number(&page, "total")), (Some(8), Some(8)));
    for section in ["progress", "stream", "concurrency", "durations", "failures", "data", "totals", "graph"] {
        assert!(page.contains(&format!("id=\"{section}\"")), "section {section}");
    }
    screenshot(&url, "live-done.png");
    stop(child);
}

#[test]
fn a_failing_job_shows_its_failure() {
    let tmp = tempfile::tempdir().unwrap();
    job(tmp.path(), 2, "trap", 0);
    let (child, url) = run_with_dashboard(tmp.path(), "30");
    let started = Instant::now();
    let mut page = String::new();
    while started.elapsed() < Duration::from_secs(120) && !page.contains("failed</span>") {
        page = dom(&url);
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(page.contains("id=\"state\" class=\"err\">failed"), "{page}");
    assert!(page.contains("class=\"failure\""), "the failures table lists it");
    assert!(page.contains("trap") || page.contains("unreachable"), "the guest's message is shown");
    screenshot(&url, "live-failed.png");
    stop(child);
}

#[test]
fn the_saved_report_renders_offline_without_requests() {
    let tmp = tempfile::tempdir().unwrap();
    job(tmp.path(), 3, "slow", 10);
    let out = shoal(&["run", "job.toml", "--root", "root", "--executor", "sync"], tmp.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let jobs = tmp.path().join("root/jobs");
    let report = std::fs::read_dir(&jobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".report.html"))
        .expect("jobs/<id>.report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    // Self-contained: nothing to fetch, nothing to run.
    for needle in ["<script", "<link", "src=", "http://", "https://", "@import", "url("] {
        assert!(!html.contains(needle), "the report contains {needle}");
    }
    let url = format!("file://{}", report.display());
    let netlog = tmp.path().join("net.json");
    // An unusable proxy: any request the page made would fail, and show in the net log.
    let page = browse(
        &url,
        &[
            "--proxy-server=127.0.0.1:9".into(),
            format!("--log-net-log={}", netlog.display()),
            "--dump-dom".into(),
        ],
    );
    for section in ["progress", "stream", "concurrency", "durations", "failures", "data", "totals", "graph"] {
        assert!(page.contains(&format!("id=\"{section}\"")), "section {section} rendered");
    }
    assert!(page.contains("succeeded"));
    assert_eq!((number(&page, "done"), number(&page, "total")), (Some(3), Some(3)));
    // The net log names every URL the browser asked for: only the report itself, apart from
    // the browser's own Google services (sign-in, time), which no page causes.
    let log = std::fs::read_to_string(&netlog).unwrap();
    let urls: Vec<&str> = log.split("\"url\":\"").skip(1).filter_map(|s| s.split('"').next()).collect();
    let from_page: Vec<&&str> =
        urls.iter().filter(|u| !u.starts_with("file://") && !google_service(u)).collect();
    assert!(from_page.is_empty(), "requests: {from_page:?}");
    screenshot(&url, "report.png");
}

fn google_service(url: &str) -> bool {
    // Chromium 156.0.8078.114 also asks its component updater despite --disable-component-update.
    [
        "https://accounts.google.com/",
        "http://clients2.google.com/",
        "https://www.google.com/",
        "https://update.googleapis.com/",
        "http://update.googleapis.com/",
    ]
    .iter()
    .any(|p| url.starts_with(p))
}

#[test]
fn history_lists_jobs_and_shows_a_truncated_events_file() {
    let tmp = tempfile::tempdir().unwrap();
    job(tmp.path(), 3, "slow", 10);
    let out = shoal(&["run", "job.toml", "--root", "root", "--executor", "sync"], tmp.path());
    assert!(out.status.success());
    let jobs = tmp.path().join("root/jobs");
    let dir = std::fs::read_dir(&jobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".events"))
        .unwrap();
    let job_id = dir.file_name().unwrap().to_string_lossy().trim_end_matches(".events").to_string();
    let mut segments: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    segments.sort();
    let last = segments.last().unwrap();
    // Cut the last segment in the middle of its last line: a truncated copy of the root.
    let lines: usize = segments.iter().map(|p| std::fs::read_to_string(p).unwrap().lines().count()).sum();
    let text = std::fs::read_to_string(last).unwrap();
    std::fs::write(last, &text[..text.len() - 40]).unwrap();

    let mut server = Command::new(shoal_bin())
        .args(["dashboard", "root", "--addr", "127.0.0.1:0"])
        .current_dir(tmp.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(server.stderr.take().unwrap());
    let line = stderr.lines().map_while(Result::ok).find(|l| l.contains("http://")).expect("the URL");
    let url = line[line.find("http://").unwrap()..].trim().to_string();
    let list = dom(&url);
    assert!(list.contains(&format!("href=\"job/{job_id}\"")), "{list}");
    let page = dom(&format!("{url}job/{job_id}"));
    assert!(page.contains("id=\"damaged\""), "says the file is damaged: {page}");
    assert!(page.contains(&format!("from line {lines} on")), "{page}");
    assert!(page.contains("id=\"progress\""), "shows what it has");
    screenshot(&format!("{url}job/{job_id}"), "history-truncated.png");

    // A second server on the same port is a clear error.
    let port = url.trim_end_matches('/').rsplit(':').next().unwrap().to_string();
    let again = shoal(&["dashboard", "root", "--addr", &format!("127.0.0.1:{port}")], tmp.path());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(err.contains("in use") && err.contains(&port), "{err}");
    // And a non-loopback address needs --public.
    let public = shoal(&["dashboard", "root", "--addr", "0.0.0.0:0"], tmp.path());
    assert!(!public.status.success());
    assert!(
        String::from_utf8_lossy(&public.stderr).contains("--public"),
        "{}",
        String::from_utf8_lossy(&public.stderr)
    );
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn history_of_an_unreadable_root_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("not-a-dir"), "x").unwrap();
    std::fs::create_dir_all(tmp.path().join("empty")).unwrap();
    for (root, says) in
        [("missing", "no runs recorded"), ("not-a-dir", "Not a directory"), ("empty", "no runs recorded")]
    {
        let out = shoal(&["dashboard", root, "--addr", "127.0.0.1:0"], tmp.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{root}: {err}");
        assert!(err.contains(root) && err.contains(says), "{root}: {err}");
        assert!(!err.contains("dashboard of"), "nothing served for {root}: {err}");
    }

    // A bucket that does not exist on a real S3 server is named in the error.
    let ls = shoal_tests::localstack::LocalStack::start().unwrap();
    let out = Command::new(shoal_bin())
        .args(["dashboard", "s3://no-such-bucket/root", "--addr", "127.0.0.1:0", "--endpoint", &ls.endpoint])
        .envs(ls.aws_env())
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("no-such-bucket"), "{err}");
    assert!(!err.contains("dashboard of"), "nothing served: {err}");
}
