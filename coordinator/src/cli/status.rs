//! `shoal status`: the jobs recorded under a job root, committed and missing tasks per stage.

use super::{DashboardArgs, StatusArgs};
use shoal::{Client, Config};

pub(super) async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let mut config = Config { root: args.root.clone(), ..Config::default() };
    config.storage.endpoint = args.endpoint.clone();
    config.storage.profile = args.profile.clone();
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

/// `shoal dashboard`: the history of a job root, until Ctrl-C.
pub(super) async fn dashboard(args: DashboardArgs) -> anyhow::Result<()> {
    let mut config = Config { root: args.root.clone(), ..Config::default() };
    config.storage.endpoint = args.endpoint.clone();
    config.storage.profile = args.profile.clone();
    let client = Client::new(config)?;
    let server = shoal::dashboard::server::serve_history(
        client.storage().clone(),
        client.root(),
        &args.addr,
        args.public,
    )
    .await?;
    eprintln!("dashboard of {}: {}", client.root(), server.url);
    tokio::signal::ctrl_c().await?;
    server.stop().await;
    Ok(())
}
