//! `shoal explain`: each output's logical plan, optimized plan and task graph.

use super::{RunArgs, client};
use shoal::jobfile::{Builder, JobFile};

pub(super) async fn explain(args: RunArgs) -> anyhow::Result<()> {
    let job = JobFile::load(&args.job)?;
    let client = client(&args)?;
    let mut builder = Builder::new(&job, &client);
    for output in &job.outputs {
        let df = builder.dataset(&output.dataset).await?;
        println!(
            "#### output: {} ({})",
            output.dataset,
            output
                .destination()
                .map(|(format, loc)| format!("to_{} {loc}", format.name()))
                .unwrap_or_else(|| "show".into())
        );
        println!("{}", df.explain()?);
    }
    Ok(())
}
