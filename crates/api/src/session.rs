//! Per-connection state: who is logged in, a login waiting for its code,
//! event subscriptions. Calls on one connection may run concurrently, so the
//! state sits behind a mutex.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

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
    state: Arc<Mutex<State>>,
    /// The method a call's view of the session serves ([`Session::for_call`]):
    /// what its callers' `via` says. `None` for the connection's own.
    via: Option<&'static str>,
}

/// A login, as [`Session::transition`] takes it.
#[derive(Debug)]
struct LogIn {
    user: Authenticated,
    /// The login took a code of the account's own secret: proof of that
    /// secret for as long as the login lasts.
    proved_code: bool,
}

impl Session {
    /// A session nobody has logged into yet.
    pub fn anonymous(origin: Origin) -> Self {
        Self {
            origin,
            state: Arc::new(Mutex::new(State::default())),
            via: None,
        }
    }

    /// A session already logged in (root over the Unix socket, the embedded
    /// CLI's local user).
    pub fn logged_in(origin: Origin, user: Authenticated) -> Self {
        let s = Self::anonymous(origin);
        s.log_in(user, false);
        s
    }

    /// The view of this session that one call of `method` runs with: the
    /// same state (logins, subscriptions), and callers whose `via` is the
    /// method, as the method table names it.
    pub(crate) fn for_call(&self, method: &'static str) -> Self {
        Self {
            origin: self.origin.clone(),
            state: Arc::clone(&self.state),
            via: Some(method),
        }
    }

    /// The one change of who is logged in: a login (`Some`) or a logout
    /// (`None`). Either way the pending login and the event subscriptions
    /// of what came before end; a login keeps proof of the code it took, a
    /// logout ends that proof and hands back the session tokens the session
    /// made or logged in with, for revoking.
    fn transition(&self, to: Option<LogIn>) -> Vec<u64> {
        let mut st = self.state();
        st.pending = None;
        st.subscriptions.clear();
        match to {
            Some(LogIn { user, proved_code }) => {
                st.step_up = proved_code.then(|| StepUp {
                    name: user.account.name.clone(),
                    uid: user.account.uid,
                    at_ms: None,
                });
                st.user = Some(user);
                Vec::new()
            }
            None => {
                st.user = None;
                st.step_up = None;
                std::mem::take(&mut st.tokens)
            }
        }
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

    /// Logs `user` in (over whoever was logged in); `proved_code`: the
    /// login took a code of the account's own secret.
    pub(crate) fn log_in(&self, user: Authenticated, proved_code: bool) {
        let ended = self.transition(Some(LogIn { user, proved_code }));
        debug_assert!(ended.is_empty(), "a login ends no tokens");
    }

    /// Logs out; the session tokens to revoke.
    #[must_use = "a logout's tokens must be revoked"]
    pub(crate) fn log_out(&self) -> Vec<u64> {
        self.transition(None)
    }

    /// The audit identity of this session: who is logged in (and whether
    /// an administrator), from where, through which method.
    pub fn caller(&self) -> Caller {
        let st = self.state();
        let user = st.user.as_ref();
        Caller {
            user: user.map(|u| u.account.name.clone()),
            origin: self.origin.clone(),
            via: self.via.map(str::to_owned),
            admin: user.is_some_and(|u| u.admin),
        }
    }

    /// The caller of a login attempt as `name`: that account, not yet
    /// logged in, so no administrator whoever this session is now.
    pub(crate) fn login_caller(&self, name: &str) -> Caller {
        Caller {
            user: Some(name.to_owned()),
            admin: false,
            ..self.caller()
        }
    }

    /// Whether this session subscribed to `collection` (or to `*`).
    pub fn is_subscribed(&self, collection: crate::Collection) -> bool {
        self.state()
            .subscriptions
            .values()
            .any(|s| s.covers(collection))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uid: u32, admin: bool) -> Authenticated {
        Authenticated {
            account: Account::bare(uid),
            admin,
        }
    }

    fn tcp() -> Origin {
        Origin::Tcp {
            addr: [192, 0, 2, 1].into(),
            port: 4000,
        }
    }

    #[test]
    fn a_calls_caller_says_who_whether_admin_and_through_which_method() {
        let s = Session::logged_in(tcp(), user(1000, true));
        let c = s.for_call("auth.twofactor.update").caller();
        assert_eq!(c.user.as_deref(), Some("uid1000"));
        assert!(
            c.admin,
            "an administrator's session caller is an administrator"
        );
        assert_eq!(c.via.as_deref(), Some("auth.twofactor.update"));
        assert_eq!(c.origin, tcp());
        // The connection's own session serves no method.
        assert_eq!(s.caller().via, None);
        let plain = Session::logged_in(tcp(), user(1001, false)).caller();
        assert!(!plain.admin);
        assert!(!Session::anonymous(tcp()).caller().admin);
    }

    #[test]
    fn a_login_attempt_is_not_an_administrator_whoever_is_logged_in() {
        let s = Session::logged_in(tcp(), user(1000, true)).for_call("auth.login_ex");
        let c = s.login_caller("alice");
        assert_eq!(c.user.as_deref(), Some("alice"));
        assert!(!c.admin);
        assert_eq!(c.via.as_deref(), Some("auth.login_ex"));
    }

    #[test]
    fn a_calls_view_shares_the_connections_state() {
        let s = Session::anonymous(tcp());
        s.for_call("auth.login_ex").log_in(user(1001, false), true);
        assert_eq!(s.user(), Some(user(1001, false)));
        assert!(s.state().step_up.is_some());
    }

    #[test]
    fn logging_in_or_out_ends_what_came_before() {
        let s = Session::logged_in(tcp(), user(1000, true));
        {
            let mut st = s.state();
            st.subscriptions
                .insert("1".into(), crate::Subscription::User);
            st.tokens = vec![7, 9];
        }
        s.log_in(user(1001, false), true);
        {
            let st = s.state();
            assert!(st.subscriptions.is_empty());
            assert!(st.pending.is_none());
            let proof = st.step_up.as_ref().expect("the code is proof");
            assert_eq!((proof.name.as_str(), proof.uid), ("uid1001", 1001));
        }
        // A login without a code of its own leaves no proof behind.
        s.log_in(user(1000, true), false);
        assert!(s.state().step_up.is_none());
        s.state()
            .subscriptions
            .insert("2".into(), crate::Subscription::All);
        assert_eq!(s.log_out(), [7, 9]);
        let st = s.state();
        assert!(st.user.is_none() && st.step_up.is_none() && st.pending.is_none());
        assert!(st.subscriptions.is_empty() && st.tokens.is_empty());
    }
}
