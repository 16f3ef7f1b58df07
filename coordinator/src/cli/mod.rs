//! The `shoal` command line: arguments and dispatch. One file per command (`run`, `explain`,
//! `status`, `function`) with its execution; the progress bar is a subscriber of a run's events.

mod explain;
mod function;
mod progress;
mod run;
mod status;

use clap::{Parser, Subcommand};
use shoal::scheduler::Speculation;
use shoal::{Client, Config, ExecutorKind};
use std::path::PathBuf;

/// shoal: lazy DataFrames over object storage, run as WebAssembly tasks on stateless workers.
///
/// A job file (TOML) names datasets — each read from storage or built from another by one
/// operation — and outputs. Nothing runs until an output needs it. Tasks commit idempotently
/// under the job root, so re-running a job resumes where it stopped.
#[derive(Parser, Debug)]
#[command(name = "shoal", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
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
    /// Take S3 credentials, region and endpoint from this profile of the shared AWS config
    /// files (~/.aws/config, ~/.aws/credentials), as `aws --profile` does: over AWS_PROFILE and
    /// over keys in the environment.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
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
    /// Memory one task may hold (`512MiB`, `4GB`): its decoded inputs must fit, DataFrame
    /// operators spill beyond it, and an Array plan with a task projected over it is refused
    /// before anything runs.
    #[arg(long, value_name = "SIZE", default_value = "4GiB", value_parser = parse_task_memory)]
    task_memory: u64,
    /// Memory of one cloud-function worker in MB, for the run report's GB-seconds and cost.
    #[arg(long, default_value_t = 2048)]
    function_memory: u64,
    /// Unit prices (USD) of the run report's cost estimate, as KEY=VALUE pairs separated by
    /// commas: gb_second, million_invocations, thousand_gets, thousand_puts. Unnamed ones keep
    /// their defaults (AWS Lambda x86 and S3 Standard list prices).
    #[arg(long, value_parser = parse_prices)]
    prices: Option<shoal::run::report::Prices>,
    /// Serve a live dashboard while the job runs, on ADDR (default 127.0.0.1:8787; port 0 picks
    /// a free one). The URL is printed on stderr. Every run also saves its page as
    /// jobs/<job_id>.report.html under the job root.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = shoal::dashboard::server::DEFAULT_ADDR)]
    dashboard: Option<String>,
    /// Keep the dashboard up this many seconds after the job ends (default: stop at once).
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    dashboard_linger: f64,
    /// Allow a dashboard address beyond loopback. The dashboard has no authentication.
    #[arg(long)]
    dashboard_public: bool,
}

fn parse_prices(text: &str) -> Result<shoal::run::report::Prices, String> {
    let mut prices = shoal::run::report::Prices::default();
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
pub enum Command {
    /// Run a job file: compute its outputs, print `show` outputs as tables.
    Run(RunArgs),
    /// Print each output's logical plan, optimized plan and task graph (stages, task counts,
    /// estimated bytes) without running anything.
    Explain(RunArgs),
    /// Show the jobs recorded under a job root: per stage, committed and missing tasks. A job
    /// that was interrupted resumes by running it again with the same root.
    Status(StatusArgs),
    /// Serve the recorded runs under a job root (local or s3://): a list of jobs, then each
    /// one's dashboard, from its events file. Stops on Ctrl-C.
    Dashboard(DashboardArgs),
    /// Build Python functions into a WebAssembly component (`shoal function build app.py -o
    /// app.wasm`, with componentize-py), or list a component's functions.
    #[command(subcommand)]
    Function(function::FunctionCommand),
}

#[derive(clap::Args, Debug, Clone)]
pub struct DashboardArgs {
    /// The job root (a local folder or s3://bucket/prefix).
    #[arg(default_value = ".shoal")]
    root: String,
    /// Where to serve (port 0 picks a free one).
    #[arg(long, default_value = shoal::dashboard::server::DEFAULT_ADDR)]
    addr: String,
    /// Allow an address beyond loopback. The dashboard has no authentication.
    #[arg(long)]
    public: bool,
    /// S3 endpoint override (LocalStack, MinIO). Also read from AWS_ENDPOINT_URL.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint: Option<String>,
    /// Take S3 credentials, region and endpoint from this profile of the shared AWS config
    /// files (~/.aws/config, ~/.aws/credentials), as `aws --profile` does: over AWS_PROFILE and
    /// over keys in the environment.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct StatusArgs {
    /// The job root (a local folder or s3://bucket/prefix).
    #[arg(default_value = ".shoal")]
    root: String,
    /// S3 endpoint override (LocalStack, MinIO). Also read from AWS_ENDPOINT_URL.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint: Option<String>,
    /// Take S3 credentials, region and endpoint from this profile of the shared AWS config
    /// files (~/.aws/config, ~/.aws/credentials), as `aws --profile` does: over AWS_PROFILE and
    /// over keys in the environment.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
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
            profile: args.profile.clone(),
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
    config.limits.task_memory_bytes = args.task_memory;
    if let Some(w) = args.workers {
        anyhow::ensure!(w > 0, "--workers must be at least 1");
        config.workers = w;
    }
    config.storage.endpoint = args.endpoint.clone();
    config.storage.profile = args.profile.clone();
    Ok(Client::new(config)?)
}

fn parse_task_memory(text: &str) -> Result<u64, String> {
    match shoal::units::parse_size(text) {
        Ok(0) => Err("the task memory must be more than 0".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

impl Command {
    /// Runs the command.
    pub async fn execute(self) -> anyhow::Result<()> {
        match self {
            Command::Run(args) => run::run(args).await,
            Command::Explain(args) => explain::explain(args).await,
            Command::Status(args) => status::status(args).await,
            Command::Dashboard(args) => status::dashboard(args).await,
            Command::Function(command) => command.execute().await,
        }
    }
}

/// The error and its causes, joined as anyhow's `{:#}` joins them, except that a cause whose
/// text the error before it already ends with is not repeated (`dataset 'x': <cause>`, or an
/// error that shows its source as its own message).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if parts.last().is_some_and(|p| p.ends_with(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let inner = shoal::Error::Invalid("filter: unknown column 'x'".into());
        let e = anyhow::Error::new(shoal::Error::Dataset { name: "d".into(), source: Box::new(inner) });
        assert_eq!(super::error_text(&e), "dataset 'd': filter: unknown column 'x'");
        let e = anyhow::anyhow!("no such file").context("reading job.toml");
        assert_eq!(super::error_text(&e), "reading job.toml: no such file");
    }
}
