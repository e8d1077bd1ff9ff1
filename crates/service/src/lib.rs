//! The `auth.twofactor` domain.
//!
//! Owns: what `config`, `update`, `provisioning_uri`, `renew_secret` and
//! `verify` mean; the one code-check path ([`TwoFactor::check_code`]) shared
//! by `verify`, API login and PAM, with replay protection, rate limiting and
//! audit; the injected [`Clock`] and [`Randomness`]; opening the state a
//! host names.
//!
//! Does not know the configuration file: a host reads it (`api::config`)
//! and hands over plain values — the [`Labels`], [`RateLimits`] and
//! [`AuditRetention`] of [`TwoFactor::new`], and the state directory and
//! [`NodeDatabase`] of [`open_store`]/[`open_node_store`].
//!
//! Does not know the wire format: inputs arrive as typed values (parsed at
//! the API boundary), errors leave as [`ServiceError`] and the API maps them
//! to errnos in one place.

mod accounts;
mod audit;
mod caller;
mod check;
mod clock;
mod provisioning;
mod retention;
mod status;
mod twofactor;
mod users;

pub use accounts::{Account, Accounts, ListedAccount, NoAccounts, PasswordCheck};
pub use audit::{AuditEvent, AuditOutcome};
pub use caller::{Caller, LOCAL_ORIGIN, LOOPBACK_ORIGIN, Origin, address_key};
pub use check::{CheckOutcome, RateLimits};
pub use clock::{Clock, ManualClock, SystemClock};
/// The checked parameter types of the domain, for the layers above (which
/// depend on `service`, not on `otp`).
pub use otp::{Digits, Interval, ParamError, Window};
pub use provisioning::{ProvisioningUri, RecoveryCode, is_code_shaped, is_malformed_code};
pub use retention::{AuditRetention, PRUNE_PERIOD_MS};
/// The password type of [`PasswordCheck`], for its callers and implementors.
pub use secrecy::{ExposeSecret, SecretString};
pub use status::{LockOut, Status};
/// The audit trail's query and rows, as `TwoFactor::audit` takes and gives
/// them, and what can go wrong with the state (carried by
/// [`ServiceError::Store`] and by [`open_store`]).
pub use store::{AuditEntry, AuditQuery, DbErrorKind, StoreError};

/// Opens (or with `init`, starts afresh) the SQLite state in `state_dir`,
/// drawing its key from the system's randomness: what a host hands to
/// [`TwoFactor::new`]. An empty `state_dir` (no default could be found:
/// no HOME or XDG variable) is refused, never taken as the working
/// directory.
pub fn open_store(
    state_dir: &std::path::Path,
    init: bool,
) -> Result<std::sync::Arc<dyn store::Store>, StoreError> {
    if state_dir.as_os_str().is_empty() {
        return Err(StoreError::Io {
            path: "the default state directory".into(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "neither HOME nor XDG_DATA_HOME is set, so there is none (give --state-dir)",
            ),
        });
    }
    let store = store::SqliteStore::open_with(state_dir, store::StoreOptions { init })?;
    Ok(std::sync::Arc::new(store))
}
/// A consistent copy of the SQLite state's database in `state_dir`, made
/// while other processes (a running daemon) write, into `to` (a new or
/// empty directory); secrets stay sealed and the key file is not copied.
pub fn backup_state(
    state_dir: &std::path::Path,
    to: &std::path::Path,
) -> Result<store::BackupReport, StoreError> {
    store::SqliteStore::backup(state_dir, to)
}
/// What [`backup_state`] wrote; the names of the state's files.
pub use store::{BackupReport, SqliteStore};
/// The shared PostgreSQL database a node keeps its state in: where it is,
/// how to log in and how many connections to hold (what a host read from
/// its configuration's `[database]`).
#[derive(Clone, PartialEq, Eq)]
pub struct NodeDatabase {
    /// `postgresql://user@host1,host2/db?...`; may hold a password.
    pub url: String,
    /// A file holding the password (first line), when the URL has none.
    pub password_file: Option<std::path::PathBuf>,
    /// This node's name in audit rows.
    pub node: String,
    pub pool_size: std::num::NonZeroU32,
    pub connect_timeout_ms: std::num::NonZeroU64,
    pub statement_timeout_ms: std::num::NonZeroU64,
}

impl std::fmt::Debug for NodeDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeDatabase")
            .field("url", &store::redact_url(&self.url))
            .field("password_file", &self.password_file)
            .field("node", &self.node)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .finish()
    }
}

/// Opens the state a node serves: the shared PostgreSQL `database` when
/// there is one (the key file in `state_dir`), else the SQLite state as
/// [`open_store`]. Only the daemon calls this, so the embedded CLI does not
/// carry the PostgreSQL client.
pub fn open_node_store(
    state_dir: &std::path::Path,
    init: bool,
    database: Option<&NodeDatabase>,
) -> Result<std::sync::Arc<dyn store::Store>, StoreError> {
    let Some(db) = database else {
        return open_store(state_dir, init);
    };
    let password = database_password(&db.url, db.password_file.as_deref())?;
    let store = store::PgStore::open(&store::PgOptions {
        url: db.url.clone(),
        password,
        node: db.node.clone(),
        pool_size: db.pool_size.get(),
        connect_timeout_ms: db.connect_timeout_ms.get(),
        statement_timeout_ms: db.statement_timeout_ms.get(),
        key_file: state_dir.join(store::SqliteStore::KEY_FILE),
    })?;
    Ok(std::sync::Arc::new(store))
}

/// The password for the database `url`: the first line of `password_file`
/// when the configuration names one; else, for a URL without a password,
/// what PostgreSQL's password file gives it, found as libpq finds it
/// (`PGPASSFILE`, else `~/.pgpass` of the daemon's user; a file group or
/// others may read is refused).
fn database_password(
    url: &str,
    password_file: Option<&std::path::Path>,
) -> Result<Option<String>, StoreError> {
    match password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| StoreError::Io {
                path: path.display().to_string(),
                source,
            })?;
            Ok(Some(text.lines().next().unwrap_or_default().to_owned()))
        }
        None => match store::pgpass::default_file() {
            Some(file) => store::pgpass::password_for(url, &file),
            None => Ok(None),
        },
    }
}

/// `twofactord migrate --from FROM --to TO`: copies a whole state between
/// a SQLite state directory and a PostgreSQL database (a `postgresql://`
/// URL; its password, node name and time-outs as `database` gives them,
/// when given). The key file is `key`, else the SQLite side's
/// `secret.key`, else `state_dir`'s. Nothing is unsealed; the target must
/// be empty.
pub fn migrate_state(
    state_dir: &std::path::Path,
    database: Option<&NodeDatabase>,
    from: &str,
    to: &str,
    key: Option<&std::path::Path>,
) -> Result<MigrateReport, StoreError> {
    let is_url = |s: &str| s.starts_with("postgresql://") || s.starts_with("postgres://");
    let location = |s: &str| -> Result<StateLocation, StoreError> {
        if !is_url(s) {
            return Ok(StateLocation::Dir(s.into()));
        }
        let db = database;
        let password = database_password(s, db.and_then(|d| d.password_file.as_deref()))?;
        Ok(StateLocation::Postgres(store::PgOptions {
            url: s.to_owned(),
            password,
            node: db.map_or_else(Labels::system_hostname, |d| d.node.clone()),
            pool_size: 2,
            connect_timeout_ms: db.map_or(5000, |d| d.connect_timeout_ms.get()),
            statement_timeout_ms: db.map_or(60_000, |d| d.statement_timeout_ms.get().max(60_000)),
            key_file: std::path::PathBuf::new(),
        }))
    };
    let key_file = match key {
        Some(k) => k.to_owned(),
        None if !is_url(from) => std::path::Path::new(from).join(store::SqliteStore::KEY_FILE),
        None if !is_url(to)
            && std::path::Path::new(to)
                .join(store::SqliteStore::KEY_FILE)
                .is_file() =>
        {
            std::path::Path::new(to).join(store::SqliteStore::KEY_FILE)
        }
        None => state_dir.join(store::SqliteStore::KEY_FILE),
    };
    migrate(&location(from)?, &location(to)?, &key_file)
}

/// What a committed change names (for the API's events).
pub use store::{Change, ChangeListener, MigrateReport, StateLocation, Store, migrate};
pub use store::{OsRandom, RandomError, Randomness};
pub use twofactor::{Entry, Labels, Services, TwoFactor, UpdateRequest};
pub use users::{
    ENROLMENT_TTL_SECS, Enrolment, LoginFactor, RECOVERY_CODES, SecretHolder, SecretOptions,
    UserConfig, UserRef,
};

/// What went wrong in a service call. The API decides how each is shown.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// `renew_secret`/`verify` while 2FA is disabled.
    #[error("Please enable Two Factor Authentication first.")]
    NotEnabled,
    /// `provisioning_uri` before any secret exists.
    #[error(
        "Two Factor Authentication secret has not been generated. Enable Two Factor Authentication first."
    )]
    NoSecret,
    /// A per-user check for an account without a secret.
    #[error("Two Factor Authentication is not configured for this user")]
    NotConfigured,
    /// `user.provisioning_uri` for an account without a secret.
    #[error("'{username}' user does not have two factor authentication configured")]
    UserHasNoSecret { username: String },
    /// `user.twofactor_enroll_confirm` with a code that is not right for
    /// the pending secret.
    #[error("Invalid code; the pending secret stays pending")]
    InvalidEnrolmentCode,
    /// `user.twofactor_enroll_confirm` with no enrolment pending (or it
    /// expired).
    #[error(
        "No enrolment is pending for this user (or it expired after 10 minutes); run twofactor_enroll first"
    )]
    NoPendingEnrolment,
    /// `user.twofactor_enroll_confirm` after the pending secret expired:
    /// asking for another code cannot help, only a new enrolment.
    #[error("The pending secret expired after 10 minutes; run twofactor_enroll again")]
    EnrolmentExpired,
    /// Too many wrong codes; checks fail at once until the back-off ends.
    /// (The API words it with the protocol's text, `wire::LockedOut`.)
    #[error("locked out for {retry_after_secs} more seconds after failed attempts")]
    LockedOut { retry_after_secs: u64 },
    /// The host name or issuer cannot go into a Key URI label.
    #[error("cannot build the provisioning URI: {0}")]
    Uri(#[from] otp::UriError),
    /// Storage failed; details are for the log, not the client.
    #[error(transparent)]
    Store(#[from] store::StoreError),
}
