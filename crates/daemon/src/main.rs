//! `twofactord`: parse, log, run; map the error to the exit status.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = daemon::Args::parse();
    daemon::init_logging();
    match daemon::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
