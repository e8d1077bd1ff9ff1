//! What a host of the API needs to build and run an [`Api`](crate::Api) —
//! `twofactord`, and the CLI in its embedded mode: the configuration file
//! ([`crate::config`]) and its limits, the account and password traits it
//! implements, the caller's origin, the storage error that
//! [`ApiError::Storage`](crate::ApiError::Storage) carries, and where the
//! daemon's socket and the user's data directory are.
//!
//! Re-exported here so that the hosts depend on `api` alone
//! (ARCHITECTURE: `daemon → api`, `cli → client, api`), not on `service`
//! or `store`.

use std::path::PathBuf;

pub use crate::config::{
    Config, DEFAULT_CONFIG_PATH, Limits, Listen, TlsFiles, current_uid, user_data_dir,
};
/// What [`migrate_state`] copied.
pub use service::MigrateReport;
/// What a recovery code is, for a client that tells a code from a typo
/// before asking (the one definition the service makes and checks them by).
pub use service::RecoveryCode;
/// The shape rule of codes, for a client that says how many digits were
/// expected instead of sending a typo (the rule the check itself applies).
pub use service::is_malformed_code;
pub use service::{
    Account, Accounts, DbErrorKind, Labels, ListedAccount, NoAccounts, Origin, PasswordCheck,
    StoreError,
};
/// `twofactord backup`: a consistent copy of the state's database.
pub use service::{BackupReport, SqliteStore, backup_state};
pub use wire::SYSTEM_SOCKET;

/// The Unix socket of `config`: the one it names, else the system
/// daemon's ([`SYSTEM_SOCKET`], root's default).
pub fn socket_path(config: &Config) -> PathBuf {
    config
        .socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(SYSTEM_SOCKET))
}

/// `twofactord migrate --from FROM --to TO`: copies a whole state between
/// a SQLite state directory and a PostgreSQL database (a `postgresql://`
/// URL, logged in to as `[database]` of `config` says). The key file is
/// `key`, else the SQLite side's, else the state directory's of `config`.
pub fn migrate_state(
    config: &Config,
    from: &str,
    to: &str,
    key: Option<&std::path::Path>,
) -> Result<MigrateReport, StoreError> {
    service::migrate_state(&config.state_dir, config.database.as_ref(), from, to, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_socket_is_the_system_daemons() {
        let mut config = Config::defaults();
        config.socket = None;
        assert_eq!(socket_path(&config), PathBuf::from(SYSTEM_SOCKET));
        config.socket = Some("/tmp/own.sock".into());
        assert_eq!(socket_path(&config), PathBuf::from("/tmp/own.sock"));
    }
}
