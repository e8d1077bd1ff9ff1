//! `twofactord`: parse, log, run; map the error to the exit status.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = daemon::Args::parse();
    daemon::init_logging();
    if let Some(daemon::Command::Backup { to }) = &args.command {
        return match daemon::backup(&args, to) {
            Ok(done) => {
                print!("{done}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!("{}", daemon::error_chain(&e));
                ExitCode::FAILURE
            }
        };
    }
    match daemon::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}", daemon::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
