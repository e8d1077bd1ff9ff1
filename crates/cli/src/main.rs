//! `tfa`: parse the options, run, map to an exit status.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let status = cli::run(cli::Args::parse());
    std::process::ExitCode::from(u8::try_from(status).unwrap_or(1))
}
