//! The `tollgate` binary's library: configuration, first-start setup, and
//! the wiring that runs one service or all of them in one process.

pub mod admin;
pub mod app;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod secrets;
pub mod serve;

use cli::{Cli, Command};
use config::{Config, Role};

/// Runs the target named on the command line until it is stopped.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let (role, args) = match cli.command {
        Command::MockUpstream(args) => {
            tollgate_telemetry::init_logging(tollgate_telemetry::LogFormat::Text);
            return runtime()?.block_on(async {
                let shutdown = tollgate_shutdown::Shutdown::new(std::time::Duration::ZERO);
                shutdown.on_signals();
                tollgate_mock_upstream::serve(args, shutdown.wait()).await?;
                Ok(())
            });
        }
        Command::Admin(args) => return runtime()?.block_on(admin::run(args)),
        Command::All(args) => (Role::All, args),
        Command::Edge(args) => (Role::Edge, args),
        Command::Router(args) => (Role::Router, args),
        Command::Quota(args) => (Role::Quota, args),
        Command::Worker(args) => (Role::Worker, args),
        Command::Analytics(args) => (Role::Analytics, args),
    };
    let config = Config::load(role, args)?;
    tollgate_telemetry::init_logging(config.log_format);
    runtime()?.block_on(app::run(config))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
