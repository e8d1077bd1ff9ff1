//! The method table. Each method's schema, description and handler are
//! written once, here; validation, `core.get_methods` and the CLI all read
//! them from this table.

mod audit;
mod auth;
mod core;
mod interface;
mod system;
mod twofactor;
mod user;

use crate::registry::{Registry, ServiceDef, ServiceKind};
#[cfg(test)]
pub(crate) use auth::LoginArgs;

pub(crate) fn registry() -> Registry {
    let services = vec![
        ServiceDef {
            name: "core",
            kind: ServiceKind::Service,
            cli_namespace: None,
            cli_description: "Connection and introspection",
            private: false,
        },
        ServiceDef {
            name: "auth",
            kind: ServiceKind::Service,
            cli_namespace: Some("auth"),
            cli_description: "Authentication",
            private: false,
        },
        ServiceDef {
            name: "auth.twofactor",
            kind: ServiceKind::Config,
            cli_namespace: Some("auth.two_factor"),
            cli_description: "Two-factor authentication (TOTP codes at API and SSH login)",
            private: false,
        },
        ServiceDef {
            name: "audit",
            kind: ServiceKind::Service,
            cli_namespace: Some("audit"),
            cli_description: "Audit records of changes, code checks and logins",
            private: false,
        },
        ServiceDef {
            name: "system",
            kind: ServiceKind::Service,
            cli_namespace: Some("system"),
            cli_description: "The system the daemon runs on",
            private: false,
        },
        ServiceDef {
            name: "user",
            kind: ServiceKind::Service,
            cli_namespace: Some("account.user"),
            cli_description: "Local accounts",
            private: false,
        },
        ServiceDef {
            name: "interface",
            kind: ServiceKind::Service,
            cli_namespace: Some("network.interface"),
            cli_description: "Network interfaces",
            private: false,
        },
    ];
    let mut methods = Vec::new();
    methods.extend(core::methods());
    methods.extend(auth::methods());
    methods.extend(twofactor::methods());
    methods.extend(audit::methods());
    methods.extend(system::methods());
    methods.extend(user::methods());
    methods.extend(interface::methods());
    Registry { services, methods }
}

/// For a login (API or PAM) of an account with 2FA on but no secret of
/// its own: under `require_secret` it is refused and audited
/// (`auth.login` / `refused`). Returns whether it is refused.
fn refused_without_secret(
    api: &crate::Api,
    caller: &service::Caller,
) -> Result<bool, crate::ApiError> {
    if !api.inner.options.require_secret {
        return Ok(false);
    }
    api.twofactor().record(
        caller,
        service::AuditEvent::AuthLogin,
        service::AuditOutcome::Refused,
        Some(serde_json::json!({"reason": "no second factor configured"})),
    )?;
    Ok(true)
}

/// Turns one batch of committed changes (see [`crate::Api::on_event`])
/// into events, each once: `auth.twofactor` when the entry changed (its
/// settings, or root's secret, which `config` shows), `user` for each
/// account whose secret, recovery codes or lock-out changed. The events
/// read the state as it is now. Nothing is sent for what cannot be read, nor for an
/// account this system does not know.
pub(crate) fn announce(api: &crate::Api, changes: &[service::Change]) {
    use service::Change;
    let mut entry = false;
    let mut accounts = std::collections::BTreeMap::new();
    for change in changes {
        let account = match change {
            Change::Entry => {
                entry = true;
                None
            }
            Change::User { username } => api.inner.accounts.by_name(username),
        };
        if let Some(account) = account {
            accounts.entry(account.uid).or_insert(account);
        }
    }
    if entry {
        twofactor::announce_entry(api);
    }
    for account in accounts.values() {
        user::announce_user(api, account);
    }
}
