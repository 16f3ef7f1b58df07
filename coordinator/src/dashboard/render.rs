//! The dashboard's pages, drawn on the server as HTML with inline SVG: no script library, no
//! stylesheet or font from anywhere, so the saved report opens offline and the live page needs
//! nothing but the server. Every section is drawn from a [`RunView`] in time proportional to
//! the attempts, into at most a fixed number of time buckets per worker slot.

use super::model::{Outcome, RunView, Segment, StageView};
use crate::units::human_bytes;
use std::fmt::Write as _;

/// Time buckets across the task stream and the concurrency chart.
const BUCKETS: usize = 240;
/// Worker slots drawn as rows; above this, slots share rows.
const MAX_ROWS: usize = 64;

const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#bab0ac", "#ff9da7",
    "#86bcb6",
];

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse}td,th{padding:2px 8px;text-align:right;border-bottom:1px solid #eee}\
td:first-child,th:first-child{text-align:left}.bar{display:inline-block;height:10px}\
.err{color:#b00020}.ok{color:#2e7d32}code{font-size:12px}svg{background:#fafafa}";

/// Escapes text for HTML.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn color(stage: usize) -> &'static str {
    PALETTE[stage % PALETTE.len()]
}

/// A whole page around `body`. `script`: the live page's updater (the report has none).
pub fn page(title: &str, body: &str, script: Option<&str>) -> String {
    let script = script.map(|s| format!("<script>{s}</script>")).unwrap_or_default();
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>{STYLE}</style></head><body>{body}{script}</body></html>",
        esc(title)
    )
}

/// Every section of the run, as the inside of `<main id="run">`.
pub fn sections(v: &RunView) -> String {
    let mut out = String::new();
    header(&mut out, v);
    progress(&mut out, v);
    task_stream(&mut out, v);
    concurrency(&mut out, v);
    durations(&mut out, v);
    failures(&mut out, v);
    data(&mut out, v);
    totals(&mut out, v);
    stage_graph(&mut out, v);
    out
}

fn header(out: &mut String, v: &RunView) {
    let elapsed = v.latest_us.saturating_sub(v.started_us) as f64 / 1e6;
    let state = match &v.finished {
        None => "<span id=\"state\">running</span>".to_string(),
        Some((true, _)) => "<span id=\"state\" class=\"ok\">succeeded</span>".to_string(),
        Some((false, e)) => format!(
            "<span id=\"state\" class=\"err\">failed</span>: <span class=\"err\">{}</span>",
            esc(e.as_deref().unwrap_or("unknown error"))
        ),
    };
    let _ = write!(
        out,
        "<h1>shoal job {}</h1><p>{state} · <span id=\"done\">{}</span>/<span id=\"total\">{}</span> tasks \
         committed · {:.1} s · executor {} ({} slots)</p>",
        esc(&v.job_id),
        v.done(),
        v.tasks(),
        elapsed,
        esc(&v.executor),
        v.concurrency
    );
}

fn progress(out: &mut String, v: &RunView) {
    out.push_str(
        "<h2 id=\"progress\">Progress per stage</h2><table><tr><th>stage</th><th>tasks</th><th>waiting</th>\
         <th>running</th><th>committed</th><th>failed</th><th>reused</th><th></th></tr>",
    );
    for (i, s) in v.stages.iter().enumerate() {
        let width = |n: usize| if s.tasks == 0 { 0.0 } else { 200.0 * n as f64 / s.tasks as f64 };
        let _ = write!(
            out,
            "<tr class=\"stage\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td><span class=\"bar\" style=\"width:{:.0}px;background:{}\"></span><span class=\"bar\" \
             style=\"width:{:.0}px;background:#ccc\"></span></td></tr>",
            esc(&s.name),
            s.tasks,
            s.waiting(),
            s.running,
            s.committed,
            s.failed,
            s.reused,
            width(s.committed + s.reused),
            color(i),
            width(s.running)
        );
    }
    out.push_str("</table>");
}

/// The run's span in microseconds (at least 1), for bucketing.
fn span(v: &RunView) -> u64 {
    v.latest_us.saturating_sub(v.started_us).max(1)
}

fn all_segments(v: &RunView) -> impl Iterator<Item = Segment> + '_ {
    v.segments.iter().copied().chain(v.running_segments())
}

fn task_stream(out: &mut String, v: &RunView) {
    let slots = v.concurrency.max(1);
    let per_row = slots.div_ceil(MAX_ROWS);
    let rows = slots.div_ceil(per_row);
    // Per (row, bucket): the time each stage occupied it, and whether anything went wrong.
    let mut occupied = vec![HashMapLite::default(); rows * BUCKETS];
    let mut marks: Vec<(usize, usize, Outcome, bool)> = Vec::new();
    let span = span(v);
    for s in all_segments(v) {
        let row = (s.slot / per_row).min(rows - 1);
        let (b0, b1) = (bucket(s.start_us, span), bucket(s.end_us, span));
        for b in b0..=b1 {
            let lo = s.start_us.max(b as u64 * span / BUCKETS as u64);
            let hi = s.end_us.min((b as u64 + 1) * span / BUCKETS as u64);
            occupied[row * BUCKETS + b].add(s.stage, hi.saturating_sub(lo).max(1));
        }
        if !matches!(s.outcome, Outcome::Committed | Outcome::Running) || s.speculative {
            marks.push((row, b1, s.outcome, s.speculative));
        }
    }
    let (w, h) = (3, 8);
    let _ = write!(
        out,
        "<h2 id=\"stream\">Task stream</h2><p>worker slot × time ({} per row{}); red: failed or retried, \
         grey: discarded, outlined: backup</p><svg width=\"{}\" height=\"{}\">",
        if per_row == 1 { "1 slot".to_string() } else { format!("{per_row} slots") },
        if per_row > 1 { ", the stage that used it most" } else { "" },
        BUCKETS * w,
        rows * h
    );
    for (i, cell) in occupied.iter().enumerate() {
        if let Some(stage) = cell.top() {
            let _ = write!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{w}\" height=\"{}\" fill=\"{}\"/>",
                (i % BUCKETS) * w,
                (i / BUCKETS) * h,
                h - 1,
                color(stage)
            );
        }
    }
    for (row, b, outcome, speculative) in marks {
        let fill = match outcome {
            Outcome::Failed | Outcome::Retried => "#d00",
            Outcome::Discarded => "#777",
            _ => "none",
        };
        let stroke = if speculative { " stroke=\"#000\" stroke-width=\"1\"" } else { "" };
        let _ = write!(
            out,
            "<rect class=\"mark\" x=\"{}\" y=\"{}\" width=\"{w}\" height=\"{}\" fill=\"{fill}\"{stroke}/>",
            b * w,
            row * h,
            h - 1
        );
    }
    out.push_str("</svg>");
}

fn bucket(t: u64, span: u64) -> usize {
    ((t as u128 * BUCKETS as u128 / span as u128) as usize).min(BUCKETS - 1)
}

/// Time per stage in one cell; a handful of stages at most per cell, so a small vector.
#[derive(Debug, Clone, Default)]
struct HashMapLite(Vec<(usize, u64)>);

impl HashMapLite {
    fn add(&mut self, stage: usize, us: u64) {
        match self.0.iter_mut().find(|(s, _)| *s == stage) {
            Some((_, t)) => *t += us,
            None => self.0.push((stage, us)),
        }
    }

    fn top(&self) -> Option<usize> {
        self.0.iter().max_by_key(|(_, t)| *t).map(|(s, _)| *s)
    }
}

fn concurrency(out: &mut String, v: &RunView) {
    let span = span(v);
    let width = span as f64 / BUCKETS as f64;
    let mut busy = vec![0f64; BUCKETS];
    for s in all_segments(v) {
        for (b, slot) in
            busy.iter_mut().enumerate().take(bucket(s.end_us, span) + 1).skip(bucket(s.start_us, span))
        {
            let lo = s.start_us.max((b as f64 * width) as u64);
            let hi = s.end_us.min(((b + 1) as f64 * width) as u64);
            *slot += hi.saturating_sub(lo) as f64 / width;
        }
    }
    let top = (v.concurrency.max(1) as f64).max(busy.iter().copied().fold(0.0, f64::max));
    let (w, h) = (720.0, 80.0);
    let points: Vec<String> = busy
        .iter()
        .enumerate()
        .map(|(b, n)| format!("{:.1},{:.1}", b as f64 * w / BUCKETS as f64, h - n / top * h))
        .collect();
    let _ = write!(
        out,
        "<h2 id=\"concurrency\">Concurrency over time</h2><p>attempts running (of {} slots; peak {:.1})</p>\
         <svg width=\"{w}\" height=\"{h}\"><polyline fill=\"none\" stroke=\"#4e79a7\" points=\"{}\"/></svg>",
        v.concurrency,
        busy.iter().copied().fold(0.0, f64::max),
        points.join(" ")
    );
}

/// The `q` quantile of sorted values.
fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

fn durations(out: &mut String, v: &RunView) {
    out.push_str(
        "<h2 id=\"durations\">Task durations per stage (ms)</h2><table><tr><th>stage</th><th>n</th>\
         <th>p50</th><th>p90</th><th>p99</th><th>max</th><th>stragglers (over 2× the median)</th></tr>",
    );
    for s in &v.stages {
        let mut d: Vec<u64> = s.durations.iter().map(|(us, _)| *us).collect();
        d.sort_unstable();
        let median = quantile(&d, 0.5);
        let mut slow: Vec<&(u64, String)> =
            s.durations.iter().filter(|(us, _)| *us > 2 * median && *us > 1000).collect();
        slow.sort_by_key(|d| std::cmp::Reverse(d.0));
        let named: Vec<String> = slow
            .iter()
            .take(3)
            .map(|(us, key)| format!("<code>{}</code> {} ms", esc(key), ms(*us)))
            .collect();
        let more = if slow.len() > 3 { format!(" and {} more", slow.len() - 3) } else { String::new() };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{more}</td></tr>",
            esc(&s.name),
            d.len(),
            ms(median),
            ms(quantile(&d, 0.9)),
            ms(quantile(&d, 0.99)),
            ms(d.last().copied().unwrap_or(0)),
            named.join(", ")
        );
    }
    out.push_str("</table>");
}

fn failures(out: &mut String, v: &RunView) {
    let _ = write!(
        out,
        "<h2 id=\"failures\">Failures and retries</h2><p>{} retries, {} failed attempts, {} discarded</p>",
        v.summary.retries, v.summary.failed_attempts, v.summary.discarded
    );
    if v.failures.is_empty() {
        out.push_str("<p>none</p>");
        return;
    }
    out.push_str(
        "<table><tr><th>stage</th><th>task</th><th>attempt</th><th></th><th>message</th><th>input</th></tr>",
    );
    for f in &v.failures {
        let stage = v.stages.get(f.stage).map_or("?", |s| s.name.as_str());
        let _ = write!(
            out,
            "<tr class=\"failure\"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td>\
             <td class=\"err\">{}</td><td>{}</td></tr>",
            esc(stage),
            esc(f.failure.task_key.as_str()),
            f.attempt,
            if f.retried { "retried" } else { "failed" },
            esc(&f.failure.message),
            esc(f.failure.input.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</table>");
    if v.failures_dropped > 0 {
        let _ = write!(out, "<p>… and {} more not shown</p>", v.failures_dropped);
    }
}

fn data(out: &mut String, v: &RunView) {
    out.push_str(
        "<h2 id=\"data\">Data per stage</h2><table><tr><th>stage</th><th>read</th><th>written</th>\
         <th>rows in</th><th>rows out</th><th>requests</th><th>shuffled or passed on</th></tr>",
    );
    let feeds: Vec<bool> =
        (0..v.stages.len()).map(|i| v.stages.iter().any(|s: &StageView| s.upstream.contains(&i))).collect();
    for (i, s) in v.stages.iter().enumerate() {
        let passed = if feeds[i] { human_bytes(s.bytes_written) } else { "-".into() };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{passed}</td></tr>",
            esc(&s.name),
            human_bytes(s.bytes_read),
            human_bytes(s.bytes_written),
            s.rows_in,
            s.rows_out,
            s.requests
        );
    }
    out.push_str("</table>");
}

fn totals(out: &mut String, v: &RunView) {
    let r = v.report.clone().unwrap_or_else(|| v.cost_so_far());
    let _ = write!(
        out,
        "<h2 id=\"totals\">Storage, cold starts and cost</h2><table>\
         <tr><td>storage requests</td><td id=\"requests\">{}</td></tr>\
         <tr><td>objects read / written</td><td>{} / {}</td></tr>\
         <tr><td>worker time</td><td>{:.2} s</td></tr>\
         <tr><td>cold starts (slowest)</td><td>{} ({} ms)</td></tr>\
         <tr><td>function GB-seconds</td><td>{:.3} at {} MB</td></tr>\
         <tr><td>estimated cost {}</td><td id=\"cost\">${:.6}</td></tr></table>",
        r.storage_requests,
        r.objects_read,
        r.objects_written,
        r.worker_seconds,
        r.cold_starts,
        r.cold_start_max_ms,
        r.function_gb_seconds,
        r.function_memory_mb,
        if v.report.is_some() { "of the run" } else { "so far" },
        r.estimated_cost_usd.total
    );
}

fn stage_graph(out: &mut String, v: &RunView) {
    // Layers by depth: a stage sits one column right of its deepest upstream.
    let mut depth = vec![0usize; v.stages.len()];
    for (i, s) in v.stages.iter().enumerate() {
        depth[i] = s.upstream.iter().filter(|&&u| u < i).map(|&u| depth[u] + 1).max().unwrap_or(0);
    }
    let mut row_in_layer = vec![0usize; v.stages.len()];
    let mut filled: Vec<usize> = Vec::new();
    for (i, &d) in depth.iter().enumerate() {
        if filled.len() <= d {
            filled.resize(d + 1, 0);
        }
        row_in_layer[i] = filled[d];
        filled[d] += 1;
    }
    let (bw, bh, gx, gy) = (170, 34, 60, 16);
    let pos = |i: usize| (depth[i] * (bw + gx) + 4, row_in_layer[i] * (bh + gy) + 4);
    let width = (filled.len().max(1)) * (bw + gx);
    let height = filled.iter().copied().max().unwrap_or(1) * (bh + gy) + 8;
    let _ = write!(out, "<h2 id=\"graph\">Stage graph</h2><svg width=\"{width}\" height=\"{height}\">");
    for (i, s) in v.stages.iter().enumerate() {
        for &u in &s.upstream {
            if u < v.stages.len() {
                let ((x0, y0), (x1, y1)) = (pos(u), pos(i));
                let _ = write!(
                    out,
                    "<line class=\"edge\" x1=\"{}\" y1=\"{}\" x2=\"{x1}\" y2=\"{}\" stroke=\"#999\"/>",
                    x0 + bw,
                    y0 + bh / 2,
                    y1 + bh / 2
                );
            }
        }
    }
    for (i, s) in v.stages.iter().enumerate() {
        let (x, y) = pos(i);
        let _ = write!(
            out,
            "<g class=\"stage-node\"><title>{}</title><rect x=\"{x}\" y=\"{y}\" width=\"{bw}\" height=\"{bh}\" \
             rx=\"4\" fill=\"{}\" fill-opacity=\"0.25\" stroke=\"{}\"/><text x=\"{}\" y=\"{}\" font-size=\"11\">{} \
             ({})</text></g>",
            esc(&s.operators.join("\n")),
            color(i),
            color(i),
            x + 6,
            y + 20,
            esc(&truncate(&s.name, 22)),
            s.tasks
        );
    }
    out.push_str("</svg><ul>");
    for s in &v.stages {
        let _ = write!(
            out,
            "<li><b>{}</b> ({} tasks, ~{}): {}</li>",
            esc(&s.name),
            s.tasks,
            human_bytes(s.estimated_bytes),
            esc(&s.operators.join("; "))
        );
    }
    out.push_str("</ul>");
}

fn truncate(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(n).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn quantiles_of_a_hand_checked_list() {
        let d = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
        assert_eq!((quantile(&d, 0.5), quantile(&d, 0.9), quantile(&d, 1.0)), (60, 90, 100));
        assert_eq!(quantile(&[], 0.5), 0);
    }

    #[test]
    fn buckets_cover_the_span() {
        assert_eq!(bucket(0, 1000), 0);
        assert_eq!(bucket(999, 1000), BUCKETS - 1);
        assert_eq!(bucket(5000, 1000), BUCKETS - 1);
    }
}
