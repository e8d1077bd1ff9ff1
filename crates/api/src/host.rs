//! What a host of the API needs from the layers below to build and run an
//! [`Api`](crate::Api) — `twofactord`, and the CLI in its embedded mode:
//! the configuration and its limits, the account and password traits it
//! implements, the caller's origin, and the storage error that
//! [`ApiError::Storage`](crate::ApiError::Storage) carries.
//!
//! Re-exported here so that the hosts depend on `api` alone
//! (ARCHITECTURE: `daemon → api`, `cli → client, api`), not on `service`
//! or `store`.

pub use service::{
    Account, Accounts, Config, DEFAULT_CONFIG_PATH, DbErrorKind, Labels, Limits, NoAccounts,
    Origin, PasswordCheck, SYSTEM_SOCKET, StoreError, current_uid,
};
