//! `shoal`: run, explain and inspect job files. The commands live in [`cli`].

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
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
    // The command runs as a task of the runtime, not on this thread: the scheduler then wakes
    // and is woken by the tasks it runs inside the runtime's own queues, not through this
    // thread's futex at every launch and every completion.
    let command = runtime.spawn(cli.command.execute());
    let result =
        runtime.block_on(command).unwrap_or_else(|e| Err(anyhow::anyhow!("the command stopped: {e}")));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", cli::error_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
