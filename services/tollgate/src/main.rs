//! The `tollgate` command: parses the command line and runs the target.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = tollgate::cli::Cli::parse();
    match tollgate::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tollgate: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
