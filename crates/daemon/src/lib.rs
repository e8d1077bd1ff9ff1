//! `twofactord`: serves the API over WebSocket on a Unix socket
//! and on TCP.
//!
//! Owns: the transports (axum on both listeners, the same router), peer
//! credentials (SO_PEERCRED → the session's origin; root is logged in),
//! message limits and close codes, at most 20 calls in flight per
//! connection, the hostile-load limits (connection caps with a reserve for
//! root, handshake, login and send time-outs, a separate small capacity for
//! the blocking work of unauthenticated sessions, the open-file limit
//! checked against the caps, rate-limited repeated log lines), the fan-out
//! of events to subscribed connections, signals and
//! a clean shutdown, logging, the command line over the configuration file,
//! the production [`api::host::Accounts`] (NSS) and
//! [`api::host::PasswordCheck`] (PAM), and the web page's HTTP surface: its
//! files at `/ui/` on the TCP listener, the safety headers on every
//! response, the `Origin` rule of WebSocket upgrades and optional TLS.
//!
//! Does not own: any business rule, schema or error text; those are the
//! `api`, `service` and `wire` crates', reached through [`api::Api::call`]
//! and `wire::parse_incoming`.

mod accounts;
mod args;
mod connection;
mod listen;
mod pam;
mod server;
mod throttle;
mod tls;
mod web;

use std::sync::Arc;

use anyhow::Context;

pub use accounts::NssAccounts;
pub use args::{Args, Command};
pub use connection::{MAX_ANONYMOUS_MESSAGE, MAX_IN_FLIGHT, MAX_MESSAGE};
pub use listen::{Conn, Peer};
pub use pam::PamPasswords;
pub use server::{Endpoints, SHUTDOWN_GRACE, Surface, VERSION, router, serve, serve_until};
pub use web::{CONTENT_SECURITY_POLICY, STRICT_TRANSPORT_SECURITY};

/// Threads for blocking calls (PAM password checks, SQLite writes with
/// their fsync). Sessions nobody has logged into use at most
/// `[limits] unauthenticated_workers` of them; wrong-password answers wait
/// on a timer, not on a thread. The event loop itself is one thread: measured on two
/// cores shared with the load generator, `current_thread` answered
/// `auth.twofactor.config` at ~65k calls/s (p99 0.5 ms) against ~52k (p99
/// 0.8 ms) for a two-worker runtime, and equally well while writes contend
/// for the store (see `scripts/daemon-bench`).
const MAX_BLOCKING_THREADS: usize = 64;

/// An error with its causes, each said once: `what: why: ...`. Causes
/// whose text the message already holds (an error that names its own
/// source in its message, as the store's file errors do) are left out
/// rather than repeated.
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Logs to standard error: `RUST_LOG` filters (default `info`); no colours
/// unless on a terminal, no timestamps under systemd (the journal has them).
pub fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

/// Descriptors besides connections: the listeners, the database and its
/// journal, the key file, PAM's and NSS's files, logging.
const OTHER_FILES: u64 = 64;

/// Descriptors the connection caps of `limits` can hold at once: both
/// listeners full, root's reserve, and the rest of the process.
pub fn files_needed(limits: &api::host::Limits) -> u64 {
    2 * u64::from(limits.max_connections.get())
        + u64::from(limits.root_reserved_connections.get())
        + OTHER_FILES
}

/// Under hostile load `accept` must never hit EMFILE. Raises the soft open-file
/// limit up to the hard one if the caps need it, and refuses a configuration
/// whose caps cannot fit under the hard limit.
fn fit_open_files(limits: &api::host::Limits) -> anyhow::Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let need = files_needed(limits);
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("cannot read RLIMIT_NOFILE")?;
    if soft >= need {
        return Ok(());
    }
    if hard < need {
        anyhow::bail!(
            "the open-file limit ({hard}) cannot hold the connection limits: [limits] \
             max_connections = {} and root_reserved_connections = {} need {need} descriptors; \
             raise LimitNOFILE (or ulimit -n) or lower max_connections",
            limits.max_connections,
            limits.root_reserved_connections
        );
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).context("cannot raise RLIMIT_NOFILE")?;
    Ok(())
}

/// Says at every start that the transition mode of an upgraded state is
/// on, and how to end it: an administrator should not forget it.
fn warn_legacy_shared_code(api: &api::Api) {
    match api.twofactor().legacy_shared_code() {
        Ok(true) => tracing::warn!(
            "legacy_shared_code is on: accounts without their own secret use root's code; \
             end it with `tfa auth two_factor end_legacy_shared_code` once each account \
             has enrolled (tfa account user twofactor_enroll username=NAME)"
        ),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read legacy_shared_code"),
    }
}

/// `twofactord backup --to DIR`: a consistent copy of the configured
/// state's database in `to`; what was written, for standard output.
pub fn backup(args: &Args, to: &std::path::Path) -> anyhow::Result<String> {
    let config = args.config()?;
    let report = api::host::backup_state(&config.state_dir, to).with_context(|| {
        format!(
            "cannot back up the state in {} to {}",
            config.state_dir.display(),
            to.display()
        )
    })?;
    Ok(format!(
        "wrote {} ({} bytes, schema version {}), a consistent copy of {}\n\
         secrets in it are sealed under {}: keep that key file apart from this backup \
         (restoring needs both)\n",
        report.database.display(),
        report.bytes,
        report.schema_version,
        config.state_dir.display(),
        config
            .state_dir
            .join(api::host::SqliteStore::KEY_FILE)
            .display(),
    ))
}

/// Reads the configuration, opens the state and serves until a signal.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let config = args.config()?;
    if let Some(Command::Migrate { from, to, key }) = &args.command {
        let report = api::host::migrate_state(&config, from, to, key.as_deref())
            .context("cannot migrate the state")?;
        println!(
            "migrated: {} secrets ({} of accounts), {} pending enrolments, {} recovery codes, \
             {} counters, {} audit rows",
            report.secrets,
            report.user_secrets,
            report.pending,
            report.recovery_codes,
            report.counters,
            report.audit_rows
        );
        return Ok(());
    }
    let accounts = Arc::new(NssAccounts);
    let passwords = Arc::new(PamPasswords::new(config.pam_service.clone()));
    let api = api::Api::open_node(&config, accounts, passwords).with_context(|| {
        match &config.database {
            Some(db) => format!(
                "cannot open the shared state (node {}, key file in {})",
                db.node,
                config.state_dir.display()
            ),
            None => format!("cannot open the state in {}", config.state_dir.display()),
        }
    })?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        state_dir = %config.state_dir.display(),
        pam_service = %config.pam_service,
        admin_group = config.admin_group.as_deref().unwrap_or("-"),
        "starting"
    );
    warn_legacy_shared_code(&api);
    fit_open_files(&config.limits)?;
    let endpoints = Endpoints {
        socket: api::host::socket_path(&config),
        listen: config.listen.clone(),
        limits: config.limits,
        tls: config.tls.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .thread_name("twofactord")
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let served = runtime.block_on(serve(api, &endpoints));
    // Calls still running past the grace period do not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store error that names its OS error in its own message, under a
    /// context: the OS error is said once, the context and path too.
    #[test]
    fn each_cause_is_said_once() {
        let e = anyhow::Error::new(api::host::StoreError::Io {
            path: "/nowhere/twofactor.db".into(),
            source: std::io::Error::from_raw_os_error(2),
        })
        .context("cannot back up the state in /nowhere to /tmp/b");
        let shown = error_chain(&e);
        assert_eq!(shown.matches("(os error 2)").count(), 1, "{shown}");
        assert!(
            shown.starts_with(
                "cannot back up the state in /nowhere to /tmp/b: cannot use /nowhere/twofactor.db: "
            ),
            "{shown}"
        );
        // Causes that add something are all kept.
        let e = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(error_chain(&e), "outer: middle: inner");
    }
}
