//! `shoal`: run and explain job files.

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use shoal::events::{EventKind, Events};
use shoal::job::{Builder, JobFile};
use shoal::scheduler::Speculation;
use shoal::{Client, Config, ExecutorKind};
use std::path::PathBuf;
use std::time::Instant;

/// shoal: lazy DataFrames over object storage, run as WebAssembly tasks on stateless workers.
///
/// A job file (TOML) names datasets — each read from storage or built from another by one
/// operation — and outputs. Nothing runs until an output needs it. Tasks commit idempotently
/// under the job root, so re-running a job resumes where it stopped.
#[derive(Parser, Debug)]
#[command(name = "shoal", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug, Clone)]
struct RunArgs {
    /// The job file (TOML).
    job: PathBuf,
    /// Where tasks run: in this process one at a time (sync), in a pool of threads (threads),
    /// in local `shoal-worker` processes (processes), or as invocations of a cloud function
    /// (lambda, with --function).
    #[arg(long, value_enum, default_value_t = ExecutorKind::Threads)]
    executor: ExecutorKind,
    /// Tasks running at once (default: the number of cores; 64 invocations for lambda).
    #[arg(long)]
    workers: Option<usize>,
    /// Job root for intermediate data and commit manifests: a local folder or s3://bucket/prefix.
    #[arg(long, default_value = ".shoal", env = "SHOAL_ROOT")]
    root: String,
    /// S3 endpoint override (LocalStack, MinIO). Also read from AWS_ENDPOINT_URL.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint: Option<String>,
    /// Attempts per task before a retryable failure fails the job.
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
    /// The worker function of the lambda executor (name or ARN; see infra/README.md).
    #[arg(long, env = "SHOAL_LAMBDA_FUNCTION")]
    function: Option<String>,
    /// Lambda endpoint override (LocalStack, a local emulator).
    #[arg(long, env = "AWS_ENDPOINT_URL_LAMBDA")]
    lambda_endpoint: Option<String>,
    /// Launch a backup of a task once it has run this many times the median of its stage's
    /// finished tasks (and at least 2 s); the first attempt to commit wins. 0 turns it off.
    #[arg(long, default_value_t = 2.0)]
    speculate_after: f64,
    /// Memory of one cloud-function worker in MB, for the run report's GB-seconds and cost.
    #[arg(long, default_value_t = 2048)]
    function_memory: u64,
    /// Unit prices (USD) of the run report's cost estimate, as KEY=VALUE pairs separated by
    /// commas: gb_second, million_invocations, thousand_gets, thousand_puts. Unnamed ones keep
    /// their defaults (AWS Lambda x86 and S3 Standard list prices).
    #[arg(long, value_parser = parse_prices)]
    prices: Option<shoal::report::Prices>,
}

fn parse_prices(text: &str) -> Result<shoal::report::Prices, String> {
    let mut prices = shoal::report::Prices::default();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| format!("'{pair}' is not KEY=VALUE"))?;
        let value: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("{key}: '{value}' is not a price"))?;
        match key.trim() {
            "gb_second" => prices.per_gb_second = value,
            "million_invocations" => prices.per_million_invocations = value,
            "thousand_gets" => prices.per_thousand_get = value,
            "thousand_puts" => prices.per_thousand_put = value,
            other => {
                return Err(format!(
                    "unknown price '{other}' (gb_second, million_invocations, thousand_gets, thousand_puts)"
                ));
            }
        }
    }
    Ok(prices)
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a job file: compute its outputs, print `show` outputs as tables.
    Run(RunArgs),
    /// Print each output's logical plan, optimized plan and task graph (stages, task counts,
    /// estimated bytes) without running anything.
    Explain(RunArgs),
    /// Show the jobs recorded under a job root: per stage, committed and missing tasks. A job
    /// that was interrupted resumes by running it again with the same root.
    Status(StatusArgs),
}

#[derive(clap::Args, Debug, Clone)]
struct StatusArgs {
    /// The job root (a local folder or s3://bucket/prefix).
    #[arg(default_value = ".shoal")]
    root: String,
    /// S3 endpoint override (LocalStack, MinIO). Also read from AWS_ENDPOINT_URL.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint: Option<String>,
    /// List every missing task key.
    #[arg(long, short)]
    verbose: bool,
}

fn client(args: &RunArgs) -> anyhow::Result<Client> {
    let mut config = Config {
        root: args.root.clone(),
        executor: args.executor,
        max_attempts: args.max_attempts,
        lambda: args.function.as_ref().map(|f| shoal::executor::LambdaOptions {
            endpoint: args.lambda_endpoint.clone().or_else(|| args.endpoint.clone()),
            // Cloud functions scale out: 64 invocations at once unless --workers says otherwise.
            concurrency: args.workers.unwrap_or(64),
            ..shoal::executor::LambdaOptions::new(f)
        }),
        speculation: (args.speculate_after > 0.0)
            .then(|| Speculation { multiple: args.speculate_after, ..Speculation::default() }),
        function_memory_mb: args.function_memory,
        prices: args.prices.clone().unwrap_or_default(),
        ..Config::default()
    };
    if let Some(w) = args.workers {
        anyhow::ensure!(w > 0, "--workers must be at least 1");
        config.workers = w;
    }
    config.storage.endpoint = args.endpoint.clone();
    Ok(Client::new(config)?)
}

/// A progress bar fed by one run's events on a thread of its own, so drawing it never slows
/// the scheduler. [`Progress::finish`] waits until it has shown the last event.
struct Progress(std::thread::JoinHandle<()>);

impl Progress {
    fn start(label: &str) -> (Events, Progress) {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} tasks {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        let mut events = Events::new();
        let mut subscription = events.subscribe();
        let thread = std::thread::spawn(move || {
            while let Some(event) = subscription.blocking_recv() {
                show(&bar, &event.kind);
            }
            bar.finish_and_clear();
        });
        (events, Progress(thread))
    }

    fn finish(self) {
        // A panic in the bar's thread has already printed itself; the run's result stands.
        let _ = self.0.join();
    }
}

/// `suspend` + eprintln rather than `println`: these lines must show up even when stderr is
/// not a terminal and the bar itself is hidden.
fn show(b: &ProgressBar, event: &EventKind) {
    match event {
        EventKind::JobStarted { graph, already_committed, .. } => {
            let tasks = graph.tasks;
            b.set_length(tasks as u64);
            b.set_position(*already_committed as u64);
            if *already_committed > 0 {
                b.suspend(|| eprintln!("resuming: {already_committed} of {tasks} tasks already committed"));
            }
            if let Some(warning) = shoal::lower::many_tasks_warning(tasks) {
                b.suspend(|| eprintln!("warning: {warning}"));
            }
        }
        EventKind::TaskCommitted { .. } => b.inc(1),
        EventKind::TaskRetrying { failure, delay_ms, attempt, .. } => {
            b.suspend(|| eprintln!("retrying after attempt {attempt} in {delay_ms}ms: {failure}"));
        }
        EventKind::TaskFailed { failure, .. } => b.suspend(|| eprintln!("failed: {failure}")),
        EventKind::BackupLaunched { attempt, .. } => {
            b.suspend(|| eprintln!("straggler: launched backup attempt {attempt}"));
        }
        _ => {}
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let job = JobFile::load(&args.job)?;
    let client = client(&args)?;
    let mut builder = Builder::new(&job, &client);
    // Every output is planned and its location checked before the first one runs.
    let mut planned = Vec::with_capacity(job.outputs.len());
    for output in &job.outputs {
        let df = builder.dataset(&output.dataset).await?;
        if let Some(loc) = &output.to_parquet {
            df.check_output(&job.location(loc)).await?;
        }
        planned.push((output, df));
    }
    for (output, df) in planned {
        let started = Instant::now();
        if let Some(loc) = &output.to_parquet {
            let loc = job.location(loc);
            let (events, progress) = Progress::start(&output.dataset);
            let written = df.to_parquet_with(&loc, events).await;
            progress.finish();
            let written = written?;
            eprintln!(
                "{}: wrote {} rows in {} parts to {loc} ({} tasks run, {} reused{}, {:.2}s)",
                output.dataset,
                written.rows,
                written.parts.len(),
                written.run.executed,
                written.run.already_committed,
                skipped(&written.run),
                started.elapsed().as_secs_f64()
            );
            print_report(&written.run);
        }
        if output.show {
            let (events, progress) = Progress::start(&output.dataset);
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
            eprintln!(
                "{}: {rows} rows ({} tasks run, {} reused{}, {:.2}s)",
                output.dataset,
                summary.executed,
                summary.already_committed,
                skipped(&summary),
                started.elapsed().as_secs_f64()
            );
            print_report(&summary);
        }
    }
    Ok(())
}

/// `, N skipped (empty inputs)` when tasks were skipped.
fn skipped(summary: &shoal::report::RunSummary) -> String {
    match summary.skipped {
        0 => String::new(),
        n => format!(", {n} skipped (empty inputs)"),
    }
}

/// The run report, indented under the output's line (also in `jobs/<id>.report.json`).
fn print_report(summary: &shoal::report::RunSummary) {
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

async fn explain(args: RunArgs) -> anyhow::Result<()> {
    let job = JobFile::load(&args.job)?;
    let client = client(&args)?;
    let mut builder = Builder::new(&job, &client);
    for output in &job.outputs {
        let df = builder.dataset(&output.dataset).await?;
        println!(
            "#### output: {} ({})",
            output.dataset,
            output.to_parquet.as_deref().map(|p| format!("to_parquet {p}")).unwrap_or_else(|| "show".into())
        );
        println!("{}", df.explain()?);
    }
    Ok(())
}

async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let mut config = Config { root: args.root.clone(), ..Config::default() };
    config.storage.endpoint = args.endpoint.clone();
    let client = Client::new(config)?;
    let jobs = client.status().await?;
    if jobs.is_empty() {
        println!("no jobs recorded under {}", client.root());
    }
    for job in jobs {
        let done = job.tasks - job.missing.len();
        let state = if job.missing.is_empty() { "complete" } else { "incomplete" };
        println!("job {}: {done}/{} tasks committed ({state})", job.job_id, job.tasks);
        for (name, committed, total) in &job.stages {
            println!("  stage {name}: {committed}/{total}");
        }
        let shown = if args.verbose { job.missing.len() } else { job.missing.len().min(5) };
        for key in &job.missing[..shown] {
            println!("  missing {key}");
        }
        if shown < job.missing.len() {
            println!("  ... {} more missing (--verbose lists all)", job.missing.len() - shown);
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("SHOAL_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Explain(args) => explain(args).await,
            Command::Status(args) => status(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
