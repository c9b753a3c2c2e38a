//! `tollgate-load`: a small HTTP load generator used to benchmark Tollgate
//! against calling its upstream directly (see `scripts/bench`).
//!
//! ```text
//! tollgate-load --url http://127.0.0.1:8080/v1/chat/completions \
//!     -H "Authorization: Bearer $KEY" --rate 500 --connections 8 \
//!     --duration 10s --warmup 2s --json
//! tollgate-load --url http://127.0.0.1:9100/v1/chat/completions --max -c 32
//! ```

mod args;
mod conn;
mod report;
mod run;
mod schedule;
mod stats;
mod target;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use crate::args::Args;
use crate::report::Summary;
use crate::target::Target;

fn main() -> ExitCode {
    let args = Args::parse();
    match execute(&args) {
        Ok(summary) => {
            if args.json {
                eprint!("{}", summary.human());
                println!("{}", summary.json());
            } else {
                print!("{}", summary.human());
            }
            if summary.ok == 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            eprintln!("tollgate-load: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn execute(args: &Args) -> anyhow::Result<Summary> {
    let plan = args.plan()?;
    let body = args.body_bytes()?;
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(async {
        let target = Target::resolve(&args.url, args.method.clone(), &args.headers, body).await?;
        let result = run::run(Arc::new(target), &plan).await?;
        Ok(Summary::new(
            args.label.clone(),
            &args.url,
            &plan,
            &result.stats,
            result.elapsed,
        ))
    })
}
