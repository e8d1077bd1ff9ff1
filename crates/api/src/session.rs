//! Per-connection state: who is logged in, a login waiting for its code,
//! event subscriptions. Calls on one connection may run concurrently, so the
//! state sits behind a mutex.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use service::{Account, Caller, Origin};

/// A logged-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub account: Account,
    pub admin: bool,
}

/// A password login waiting for its code.
#[derive(Debug, Clone)]
pub(crate) struct PendingLogin {
    /// Tells this login from a later one on the same session.
    pub login: u64,
    pub account: Account,
    pub admin: bool,
    /// Codes tried so far (counted before each check, so concurrent tries
    /// cannot exceed the limit).
    pub wrong_codes: u8,
    pub user_info: bool,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub user: Option<Authenticated>,
    pub pending: Option<PendingLogin>,
    pub subscriptions: BTreeMap<String, String>,
    pub next_subscription: u64,
    pub next_login: u64,
    /// Session tokens this session made or logged in with: they end when
    /// it logs out.
    pub tokens: Vec<u64>,
}

/// One connection's session.
#[derive(Debug)]
pub struct Session {
    origin: Origin,
    state: Mutex<State>,
}

impl Session {
    /// A session nobody has logged into yet.
    pub fn anonymous(origin: Origin) -> Self {
        Self {
            origin,
            state: Mutex::new(State::default()),
        }
    }

    /// A session already logged in (root over the Unix socket, the embedded
    /// CLI's local user).
    pub fn logged_in(origin: Origin, user: Authenticated) -> Self {
        let s = Self::anonymous(origin);
        s.state().user = Some(user);
        s
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not lock a connection out; the state stays valid.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The logged-in user, if any.
    pub fn user(&self) -> Option<Authenticated> {
        self.state().user.clone()
    }

    /// The audit identity of this session.
    pub fn caller(&self) -> Caller {
        let user = self.state().user.as_ref().map(|u| u.account.name.clone());
        Caller::new(user.as_deref(), self.origin.clone())
    }

    /// Whether this session subscribed to `collection` (or to `*`).
    pub fn is_subscribed(&self, collection: &str) -> bool {
        self.state()
            .subscriptions
            .values()
            .any(|n| n == collection || n == "*")
    }
}
