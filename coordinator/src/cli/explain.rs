//! `shoal explain`: each output's logical plan, optimized plan and task graph.

use super::{RunArgs, client};
use shoal::jobfile::{Builder, JobFile};

pub(super) async fn explain(args: RunArgs) -> anyhow::Result<()> {
    let job = JobFile::load(&args.job)?;
    let client = client(&args)?;
    let mut builder = Builder::new(&job, &client);
    for output in job.outputs.iter().filter(|o| o.dataset.is_some()) {
        let df = builder.dataset(output.name()).await?;
        println!(
            "#### output: {} ({})",
            output.name(),
            output
                .destination()
                .map(|(format, loc)| format!("to_{} {loc}", format.name()))
                .unwrap_or_else(|| "show".into())
        );
        println!("{}", df.explain()?);
    }
    for output in job.outputs.iter().filter(|o| o.bag.is_some()) {
        let bag = builder.bag(output.name()).await?;
        let what =
            output.to_textfiles.as_deref().map_or_else(|| "show".into(), |l| format!("to_textfiles {l}"));
        println!("#### output: bag {} ({what})", output.name());
        println!("{}", bag.explain()?);
    }
    for output in job.outputs.iter().filter(|o| o.array.is_some()) {
        let array = builder.array(output.name()).await?;
        let what = output.to_zarr.as_deref().map_or_else(|| "show".into(), |l| format!("to_zarr {l}"));
        println!("#### output: array {} ({what})", output.name());
        println!("{}", array.explain()?);
    }
    let values = builder.values().await?;
    if !values.is_empty() {
        let list: Vec<_> = values.values().collect();
        println!("#### values: {}", values.keys().cloned().collect::<Vec<_>>().join(", "));
        println!("{}", shoal::collections::delayed::explain(&list)?);
    }
    Ok(())
}
