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
    /// The code asked for is root's (`legacy_shared_code`), not the
    /// account's own.
    pub legacy_shared_code: bool,
}

/// Proof, on this connection, of a current code (or recovery code) of an
/// account's own secret: what lets a caller who is not an administrator
/// read, replace or remove that secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StepUp {
    pub name: String,
    pub uid: u32,
    /// When a `user.verify_twofactor_token` proved it (it lasts
    /// [`STEP_UP_TTL_MS`]); `None` for a login that took the code (it
    /// lasts as long as that login).
    pub at_ms: Option<i64>,
}

/// How long a code proved by `user.verify_twofactor_token` lets the
/// caller manage the account's secret.
pub(crate) const STEP_UP_TTL_MS: i64 = 5 * 60 * 1000;

impl StepUp {
    /// Whether this proof covers the account `name`/`uid` at `now_ms`.
    pub fn covers(&self, name: &str, uid: u32, now_ms: i64) -> bool {
        self.name == name
            && self.uid == uid
            && self
                .at_ms
                .is_none_or(|at| now_ms >= at && now_ms - at < STEP_UP_TTL_MS)
    }
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub user: Option<Authenticated>,
    pub pending: Option<PendingLogin>,
    pub step_up: Option<StepUp>,
    pub subscriptions: BTreeMap<String, crate::Subscription>,
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
    pub fn is_subscribed(&self, collection: crate::Collection) -> bool {
        self.state()
            .subscriptions
            .values()
            .any(|s| s.covers(collection))
    }
}
