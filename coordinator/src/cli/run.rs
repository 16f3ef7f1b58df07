//! `shoal run`: plan every output, check its location, then compute them in order.

use super::progress::Progress;
use super::{RunArgs, client};
use anyhow::Context;
use shoal::Delayed;
use shoal::dashboard::server::Live;
use shoal::events::Events;
use shoal::jobfile::{Builder, JobFile};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub(super) async fn run(args: RunArgs) -> anyhow::Result<()> {
    let dashboard = match &args.dashboard {
        Some(addr) => {
            let (live, server) = Live::serve(addr, args.dashboard_public).await?;
            if !server.url.contains("127.0.0.1") && !server.url.contains("[::1]") {
                eprintln!("warning: the dashboard has no authentication and is served beyond loopback");
            }
            eprintln!("dashboard: {}", server.url);
            Some((live, server))
        }
        None => None,
    };
    let result = run_outputs(&args, dashboard.as_ref().map(|(live, _)| live)).await;
    if let Some((_, server)) = dashboard {
        if args.dashboard_linger > 0.0 {
            eprintln!("dashboard: staying up for {} s at {}", args.dashboard_linger, server.url);
            tokio::time::sleep(Duration::from_secs_f64(args.dashboard_linger)).await;
        }
        server.stop().await;
    }
    result
}

/// The subscribers of one run: the progress bar, and the live dashboard if there is one.
fn subscribers(label: &str, dashboard: Option<&Live>) -> (Events, Progress) {
    let mut events = Events::new();
    let progress = Progress::start(label, &mut events);
    if let Some(live) = dashboard {
        live.watch(events.subscribe());
    }
    (events, progress)
}

async fn run_outputs(args: &RunArgs, dashboard: Option<&Live>) -> anyhow::Result<()> {
    let job = JobFile::load(&args.job)?;
    let client = client(args)?;
    let mut builder = Builder::new(&job, &client);
    // Every output is planned and its location checked before the first one runs.
    let mut planned = Vec::with_capacity(job.outputs.len());
    for output in job.outputs.iter().filter(|o| o.dataset.is_some()) {
        let df = builder.dataset(output.name()).await?;
        if let Some((format, loc)) = output.destination() {
            df.check_output(&job.location(loc), format).await?;
        }
        planned.push((output, df));
    }
    let values = builder.values().await?;
    let mut bags = Vec::new();
    for output in job.outputs.iter().filter(|o| o.bag.is_some()) {
        bags.push((output, builder.bag(output.name()).await?));
    }
    let mut arrays = Vec::new();
    for output in job.outputs.iter().filter(|o| o.array.is_some()) {
        let array = builder.array(output.name()).await?;
        // Planned in full now when an output runs before it: a task over the memory limit stops
        // the job before anything runs. The first output to run is planned as it starts (a
        // second lowering of a graph of a million tasks costs seconds).
        if !planned.is_empty() || !bags.is_empty() || !arrays.is_empty() {
            array.check_plan()?;
        }
        arrays.push((output, array));
    }
    for (output, df) in planned {
        let started = Instant::now();
        if let Some((format, loc)) = output.destination() {
            let loc = job.location(loc);
            let (events, progress) = subscribers(output.name(), dashboard);
            let written = df.write_with(&loc, format, events).await;
            progress.finish();
            let written = written?;
            eprintln!(
                "{}: wrote {} rows in {} parts to {loc} {}",
                output.name(),
                written.rows,
                written.parts.len(),
                tally(&written.run, started)
            );
            print_report(&written.run);
        }
        if output.show {
            let (events, progress) = subscribers(output.name(), dashboard);
            let computed = df.compute_with(events).await;
            progress.finish();
            let (batches, summary) = computed?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            let limit = output.rows.unwrap_or(20);
            let shown = take_rows(&batches, limit)?;
            println!(
                "{}",
                arrow::util::pretty::pretty_format_batches(&shown).context("formatting the table")?
            );
            if rows > limit {
                println!("... {} more rows", rows - limit);
            }
            eprintln!("{}: {rows} rows {}", output.name(), tally(&summary, started));
            print_report(&summary);
        }
    }
    for (output, bag) in bags {
        run_bag(&job, output, &bag, dashboard).await?;
    }
    for (output, array) in arrays {
        run_array(&job, output, &array, dashboard).await?;
    }
    if !values.is_empty() {
        run_values(&job, &client, &values, dashboard).await?;
    }
    Ok(())
}

/// Writes a bag with `to_textfiles`, or prints its items (one JSON per line).
async fn run_bag(
    job: &JobFile,
    output: &shoal::jobfile::OutputSpec,
    bag: &shoal::Bag,
    dashboard: Option<&Live>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (events, progress) = subscribers(output.name(), dashboard);
    if let Some(loc) = &output.to_textfiles {
        let loc = job.location(loc);
        let written = bag.to_textfiles_with(&loc, output.gzip, events).await;
        progress.finish();
        let written = written?;
        eprintln!(
            "{}: wrote {} parts to {loc} {}",
            output.name(),
            written.parts.len(),
            tally(&written.run, started)
        );
        print_report(&written.run);
        return Ok(());
    }
    let computed = bag.compute_with(events).await;
    progress.finish();
    let (items, summary) = computed?;
    let limit = output.rows.unwrap_or(20);
    for item in items.iter().take(limit) {
        println!("{item}");
    }
    if items.len() > limit {
        println!("... {} more items", items.len() - limit);
    }
    eprintln!("{}: {} items {}", output.name(), items.len(), tally(&summary, started));
    if summary.records_skipped > 0 {
        eprintln!("{}: {} malformed records skipped", output.name(), summary.records_skipped);
    }
    print_report(&summary);
    Ok(())
}

/// Writes an array with `to_zarr`, or prints it (NumPy-like, summarised when large).
async fn run_array(
    job: &JobFile,
    output: &shoal::jobfile::OutputSpec,
    array: &shoal::Array,
    dashboard: Option<&Live>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (events, progress) = subscribers(output.name(), dashboard);
    let what = format!("{} {:?} in {} chunks", array.dtype(), array.shape(), array.nblocks());
    if let Some(loc) = &output.to_zarr {
        let loc = job.location(loc);
        let written = array.to_zarr_with(&loc, output.codec.as_deref().unwrap_or("zstd"), events).await;
        progress.finish();
        let summary = written?;
        eprintln!("{}: wrote {what} to {loc} {}", output.name(), tally(&summary, started));
        print_report(&summary);
        return Ok(());
    }
    let computed = array.compute_with(events).await;
    progress.finish();
    let (value, summary) = computed?;
    println!("{}", shoal::collections::array::display(&value));
    eprintln!("{}: {what} {}", output.name(), tally(&summary, started));
    print_report(&summary);
    Ok(())
}

/// Computes every value of the job in one graph, prints each (`NAME = JSON`), and writes the
/// ones an output names to their `to_json` path (one JSON document, written whole).
async fn run_values(
    job: &JobFile,
    client: &shoal::Client,
    values: &BTreeMap<String, Delayed>,
    dashboard: Option<&Live>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (names, list): (Vec<&String>, Vec<&Delayed>) = values.iter().unzip();
    let (events, progress) = subscribers("values", dashboard);
    let computed = shoal::collections::delayed::compute_with(&list, events).await;
    progress.finish();
    let (computed, summary) = computed?;
    let by_name: BTreeMap<&str, &serde_json::Value> =
        names.iter().map(|n| n.as_str()).zip(&computed).collect();
    for (name, value) in &by_name {
        println!("{name} = {value}");
    }
    for output in job.outputs.iter().filter(|o| o.value.is_some()) {
        if let (Some((_, loc)), Some(value)) = (output.destination(), by_name.get(output.name())) {
            let url = client.storage().resolve(&job.location(loc))?.url;
            let body = serde_json::to_vec_pretty(value).context("encoding a value")?;
            client.storage().put(&url, bytes::Bytes::from(body)).await?;
            eprintln!("{}: wrote {url}", output.name());
        }
    }
    eprintln!(
        "values: {} computed ({} tasks run, {} reused, {:.2}s)",
        computed.len(),
        summary.executed,
        summary.already_committed,
        started.elapsed().as_secs_f64()
    );
    print_report(&summary);
    Ok(())
}

/// `, N skipped (empty inputs)` when tasks were skipped.
/// `(3 tasks run, 1 reused, 0.45s)`: what an output's run did, for its summary line.
fn tally(summary: &shoal::run::report::RunSummary, started: Instant) -> String {
    let skipped = match summary.skipped {
        0 => String::new(),
        n => format!(", {n} skipped (empty inputs)"),
    };
    format!(
        "({} tasks run, {} reused{skipped}, {:.2}s)",
        summary.executed,
        summary.already_committed,
        started.elapsed().as_secs_f64()
    )
}

/// The run report, indented under the output's line (also in `jobs/<id>.report.json`).
fn print_report(summary: &shoal::run::report::RunSummary) {
    if let Some(report) = &summary.report {
        for line in report.display().lines() {
            eprintln!("  {line}");
        }
    }
}

fn take_rows(
    batches: &[arrow::record_batch::RecordBatch],
    n: usize,
) -> anyhow::Result<Vec<arrow::record_batch::RecordBatch>> {
    let mut out = Vec::new();
    let mut left = n;
    for b in batches {
        if left == 0 {
            break;
        }
        let take = b.num_rows().min(left);
        out.push(b.slice(0, take));
        left -= take;
    }
    Ok(out)
}
