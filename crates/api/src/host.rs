//! What a host of the API needs from the layers below to build and run an
//! [`Api`](crate::Api) — `twofactord`, and the CLI in its embedded mode:
//! the configuration and its limits, the account and password traits it
//! implements, the caller's origin, the storage error that
//! [`ApiError::Storage`](crate::ApiError::Storage) carries, and where the
//! daemon's socket and the user's data directory are.
//!
//! Re-exported here so that the hosts depend on `api` alone
//! (ARCHITECTURE: `daemon → api`, `cli → client, api`), not on `service`
//! or `store`.

use std::path::PathBuf;

/// What a recovery code is, for a client that tells a code from a typo
/// before asking (the one definition the service makes and checks them by).
pub use service::RecoveryCode;
/// The shape rule of codes, for a client that says how many digits were
/// expected instead of sending a typo (the rule the check itself applies).
pub use service::is_malformed_code;
pub use service::{
    Account, Accounts, Config, DEFAULT_CONFIG_PATH, DbErrorKind, Labels, Limits, ListedAccount,
    Listen, NoAccounts, Origin, PasswordCheck, StoreError, TlsFiles, current_uid, user_data_dir,
};
/// `twofactord backup`: a consistent copy of the state's database.
pub use service::{BackupReport, SqliteStore, backup_state};
/// Moving a state between engines (`twofactord migrate`).
pub use service::{MigrateReport, migrate_state};
pub use wire::SYSTEM_SOCKET;

/// The Unix socket of `config`: the one it names, else the system
/// daemon's ([`SYSTEM_SOCKET`], root's default).
pub fn socket_path(config: &Config) -> PathBuf {
    config
        .socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(SYSTEM_SOCKET))
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
