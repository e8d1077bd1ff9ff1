//! `tfa`: the midcli-compatible command line and shell of the two-factor
//! system (SPEC §4).
//!
//! Owns the argument syntax ([`syntax`], [`args`]), the namespace tree read
//! from the API's introspection ([`tree`]), output ([`render`], [`qr`]), the
//! shell ([`shell`]) and where calls go ([`backend`]: the daemon, or the API
//! in-process). It holds no copy of any method's arguments or rules: those
//! come from `core.get_methods`.

pub mod args;
pub mod backend;
pub mod complete;
pub mod error;
pub mod exec;
pub mod help;
pub mod qr;
pub mod render;
pub mod schema;
pub mod shell;
pub mod suggest;
pub mod syntax;
pub mod tree;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

pub use error::{CliError, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
pub use exec::Engine;
pub use render::Mode;

/// The global options.
#[derive(Debug, clap::Parser)]
#[command(
    name = "tfa",
    version,
    about = "Two-factor authentication: command line and interactive shell",
    long_about = "Two-factor authentication: command line and interactive shell.\n\n\
        `tfa` alone starts the shell; `tfa auth two_factor config` or `tfa -c \"auth two_factor config\"` \
        run one command; `tfa call METHOD [JSON ...]` calls an API method directly. Commands are read \
        line by line from standard input when it is not a terminal."
)]
pub struct Args {
    /// Run this command line and exit.
    #[arg(short = 'c', long = "command", value_name = "COMMAND")]
    pub command: Option<String>,
    /// Output format.
    #[arg(short = 'm', long, value_enum, default_value_t = Mode::Table)]
    pub mode: Mode,
    /// The daemon: ws+unix:///path/to/socket or ws://host:port/api/current.
    #[arg(long)]
    pub url: Option<String>,
    /// Run the API in-process on this state directory (embedded mode).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Configuration file (default /etc/twofactor/twofactord.toml, if present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Embedded mode: start a fresh state where the key file is present but
    /// the database is gone (otherwise refused as a lost state). Never
    /// deletes anything.
    #[arg(long)]
    pub init: bool,
    /// Log in as this user first (password from TFA_PASSWORD or a prompt;
    /// code from TFA_OTP or a prompt).
    #[arg(long)]
    pub user: Option<String>,
    /// Seconds to wait for the daemon.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// Print the completions of the command line given as the words (the
    /// last one is completed); used by the generated completion scripts.
    #[arg(long = "complete-words", hide = true)]
    pub complete_words: bool,
    /// A command and its arguments (joined into one line), or `call METHOD [JSON ...]`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub words: Vec<String>,
}

/// The longest `--timeout`: a day. Longer waits are no time-out at all, and
/// far longer ones (1e19 s) cannot be added to a clock reading.
pub const MAX_TIMEOUT_SECS: f64 = 86_400.0;

/// `--timeout`: seconds, more than 0 and at most [`MAX_TIMEOUT_SECS`].
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= MAX_TIMEOUT_SECS) {
        return Err(format!(
            "`{s}` is out of range: give more than 0 and at most {MAX_TIMEOUT_SECS} seconds"
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{s}`: {e}"))
}

/// Prints an error on standard error; returns its exit status.
fn report(e: &CliError) -> i32 {
    eprintln!("{e}");
    e.exit_code()
}

/// Runs `tfa` with parsed options; returns the exit status.
pub fn run(args: Args) -> i32 {
    if args.command.is_some() && !args.words.is_empty() {
        return report(&CliError::usage(
            "give either -c COMMAND or a command, not both",
        ));
    }
    if args.complete_words {
        return match complete::candidates(&args.words) {
            Ok(found) => {
                let mut out = std::io::stdout().lock();
                for c in found {
                    let _ = writeln!(out, "{c}");
                }
                EXIT_OK
            }
            Err(e) => report(&e),
        };
    }
    // Options after the first command word are the command's; before it,
    // a word starting with `-` that clap did not know is an unknown option.
    if let Some(first) = args.words.first()
        && first.starts_with('-')
        && first.len() > 1
    {
        return report(&CliError::usage(format!(
            "Unknown option `{first}` (see tfa --help)"
        )));
    }
    let target = backend::Target {
        url: args.url,
        state_dir: args.state_dir,
        config: args.config,
        user: args.user,
        timeout: args.timeout,
        init: args.init,
    };
    let backend = match backend::open(&target, &mut backend::TerminalPrompter) {
        Ok(b) => b,
        Err(e) => return report(&e),
    };
    let location = backend.location();
    let mut engine = Engine::new(backend, args.mode);
    engine.location = location;
    engine.stdout_is_tty = std::io::stdout().is_terminal();
    engine.palette = qr::Palette::from_env();
    if engine.stdout_is_tty && std::io::stdin().is_terminal() {
        engine.code_prompt = Some(Box::new(|_uri: &str| {
            let mut stdout = std::io::stdout();
            let _ = stdout.write_all(exec::CODE_PROMPT.as_bytes());
            let _ = stdout.flush();
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| CliError::failed(format!("cannot read from the terminal: {e}")))?;
            Ok(line.trim().to_owned())
        }));
    }
    let mut out = std::io::stdout().lock();
    let result = if let Some(line) = &args.command {
        engine.run_line(line, false, &mut out).map(drop)
    } else if let Some((first, rest)) = args.words.split_first() {
        if first == "call" {
            match rest.split_first() {
                Some((method, params)) => engine.call_raw(method, params, &mut out),
                None => Err(CliError::usage("usage: tfa call METHOD [JSON params...]")),
            }
        } else {
            engine
                .run_line(&args.words.join(" "), false, &mut out)
                .map(drop)
        }
    } else if std::io::stdin().is_terminal() {
        drop(out);
        return shell::interactive(&mut engine);
    } else {
        let status = shell::run_script(&mut engine, &mut std::io::stdin().lock(), &mut out);
        let _ = out.flush();
        return status;
    };
    // Whatever was printed comes before the error.
    let flushed = out
        .flush()
        .map_err(|e| CliError::failed(format!("cannot write the output: {e}")));
    match result.and(flushed) {
        Ok(()) => EXIT_OK,
        Err(e) => report(&e),
    }
}
