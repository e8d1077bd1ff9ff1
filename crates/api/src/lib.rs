//! The API: a registry of methods with one schema each (used both to
//! validate input and to describe the method for `core.get_methods`),
//! dispatch onto the `service` crate, sessions and authorization, the
//! single mapping of errors onto the wire, and the configuration file both
//! hosts read ([`config`]).
//!
//! Transport-free: the daemon calls [`Api::call`] for each request it reads
//! from a socket, and the CLI calls it in-process in its embedded mode.

mod code;
pub mod config;
mod config_rules;
mod error;
mod events;
pub mod host;
mod limits;
mod methods;
pub mod qr;
mod registry;
pub mod schema;
mod session;
mod tokens;
pub mod typed;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::Value;
use service::{Accounts, PasswordCheck, TwoFactor};

pub use code::Code;
pub use error::ApiError;
pub use events::{Collection, Event, Subscription};
pub use registry::{Access, Method, ServiceDef, ServiceKind};
pub use session::{Authenticated, Session};
use typed::Answer;
/// The protocol's types, for the daemon (ARCHITECTURE: `daemon → api`).
pub use wire;

type Listener = Box<dyn Fn(&Event) + Send + Sync>;

/// Settings of the API layer itself.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Members of this group are administrators (besides uid 0).
    pub admin_group: Option<String>,
    /// PAM services whose logins count as `ssh`.
    pub ssh_pam_services: Vec<String>,
    /// When a wrong password is answered (`AUTH_ERR`), counted from the
    /// start of the check: one fixed deadline, however long PAM took, so
    /// the timing does not tell existing accounts from others.
    pub failed_login_delay: Duration,
    /// Logins of accounts without a secret are refused while 2FA is on,
    /// and users may not unset their own secret.
    pub require_secret: bool,
    /// Unauthenticated login calls allowed per address and method within
    /// `login_window`.
    pub login_attempts: u32,
    pub login_window: Duration,
    /// The state directory, when the API was opened on one (shown by
    /// `system.twofactor_status`).
    pub state_dir: Option<std::path::PathBuf>,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            admin_group: None,
            ssh_pam_services: vec!["sshd".into()],
            failed_login_delay: Duration::from_secs(1),
            require_secret: false,
            login_attempts: 20,
            login_window: Duration::from_secs(60),
            state_dir: None,
        }
    }
}

/// The API. Cheap to clone; share one between all connections.
#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

struct Inner {
    twofactor: TwoFactor,
    accounts: Arc<dyn Accounts>,
    passwords: Arc<dyn PasswordCheck>,
    options: ApiOptions,
    registry: registry::Registry,
    listeners: RwLock<Vec<Listener>>,
    /// Set once the API listens to the store's changes (with its first
    /// event listener: a process nobody listens in pays nothing).
    hearing: std::sync::Once,
    login_limiter: Mutex<limits::LoginLimiter>,
    tokens: Mutex<tokens::Tokens>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("methods", &self.inner.registry.methods.len())
            .finish_non_exhaustive()
    }
}

impl Api {
    pub fn new(
        twofactor: TwoFactor,
        accounts: Arc<dyn Accounts>,
        passwords: Arc<dyn PasswordCheck>,
        options: ApiOptions,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                twofactor,
                accounts,
                passwords,
                options,
                registry: methods::registry(),
                listeners: RwLock::new(Vec::new()),
                hearing: std::sync::Once::new(),
                login_limiter: Mutex::new(limits::LoginLimiter::default()),
                tokens: Mutex::new(tokens::Tokens::default()),
            }),
        }
    }

    /// Opens the state of `config` with the system clock and randomness:
    /// the local (SQLite) state the embedded CLI works on. A configuration
    /// whose state is a shared database (`[database]`) is refused, naming
    /// the daemon: only `twofactord` connects to it.
    pub fn open(
        config: &config::Config,
        accounts: Arc<dyn Accounts>,
        passwords: Arc<dyn PasswordCheck>,
    ) -> Result<Self, host::StoreError> {
        if config.database.is_some() {
            return Err(host::StoreError::Config(
                "this configuration keeps the two-factor state in a shared PostgreSQL \
                 database ([database]); the embedded mode works only on a local state: \
                 start twofactord and use it through its socket"
                    .into(),
            ));
        }
        let store = service::open_store(&config.state_dir, config.init)?;
        Ok(Self::with_store(config, store, accounts, passwords))
    }

    /// Opens the state a daemon node serves: the shared database of
    /// `[database]` when there is one, else as [`Api::open`].
    pub fn open_node(
        config: &config::Config,
        accounts: Arc<dyn Accounts>,
        passwords: Arc<dyn PasswordCheck>,
    ) -> Result<Self, host::StoreError> {
        let store =
            service::open_node_store(&config.state_dir, config.init, config.database.as_ref())?;
        Ok(Self::with_store(config, store, accounts, passwords))
    }

    fn with_store(
        config: &config::Config,
        store: Arc<dyn service::Store>,
        accounts: Arc<dyn Accounts>,
        passwords: Arc<dyn PasswordCheck>,
    ) -> Self {
        let labels = service::Labels {
            issuer: config.issuer.clone(),
            product: config.product.clone(),
            hostname: service::Labels::system_hostname(),
        };
        let twofactor = TwoFactor::new(
            store,
            Arc::new(service::SystemClock),
            Arc::new(service::OsRandom),
            labels,
            config.rate_limits,
        )
        .with_audit_retention(config.audit);
        let options = ApiOptions {
            admin_group: config.admin_group.clone(),
            ssh_pam_services: config.ssh_pam_services.clone(),
            require_secret: config.require_secret,
            failed_login_delay: Duration::from_millis(
                config.limits.failed_login_deadline_ms.into(),
            ),
            login_attempts: config.limits.login_attempts.get(),
            login_window: Duration::from_secs(config.limits.login_window_secs.get().into()),
            state_dir: Some(config.state_dir.clone()),
        };
        Self::new(twofactor, accounts, passwords, options)
    }

    pub fn twofactor(&self) -> &TwoFactor {
        &self.inner.twofactor
    }

    /// The method table.
    pub fn methods(&self) -> &[Method] {
        &self.inner.registry.methods
    }

    pub fn method(&self, name: &str) -> Option<&Method> {
        self.inner.registry.method(name)
    }

    /// Registers a callback for every event (the daemon fans them out).
    ///
    /// Events come from the store's change notices, not from the methods:
    /// whatever commits a change (a method here, an embedded `tfa` on the
    /// same state, another node on a shared database), the store tells it
    /// once after the commit and the API turns it into the
    /// events of the collections it touches. The first listener starts
    /// that hearing.
    pub fn on_event(&self, listener: impl Fn(&Event) + Send + Sync + 'static) {
        self.inner
            .listeners
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Box::new(listener));
        self.inner.hearing.call_once(|| {
            let api = Arc::downgrade(&self.inner);
            self.inner.twofactor.on_change(Box::new(move |changes| {
                // The store outlives no API: nothing to tell once it is gone.
                if let Some(inner) = api.upgrade() {
                    methods::announce(&Api { inner }, changes);
                }
            }));
        });
    }

    /// Sends `event` to the listeners. Events never carry a secret: a
    /// `secret` field that is set goes out as `"********"`.
    pub(crate) fn emit(&self, event: &Event) {
        let mut event = event.clone();
        if let Some(secret) = event.fields.get_mut("secret")
            && !secret.is_null()
        {
            *secret = Value::String("********".into());
        }
        let event = &event;
        for l in self
            .inner
            .listeners
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            l(event);
        }
    }

    /// Whether `session` may call `method` at all (used by `core.get_methods`).
    pub fn may_call(&self, session: &Session, method: &Method) -> bool {
        registry::authorize(session, method).is_ok()
    }

    /// Calls `method` with positional `params` on behalf of `session`,
    /// waiting out any answer delay (a wrong password) on this thread.
    pub fn call(
        &self,
        session: &Session,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Value, ApiError> {
        let (result, delay) = self.call_deferred(session, method, params);
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        result
    }

    /// Like [`Api::call`], but returns the delay to keep before answering
    /// instead of sleeping: a transport can wait without holding a thread,
    /// so slow wrong-password answers cannot exhaust its worker pool.
    pub fn call_deferred(
        &self,
        session: &Session,
        method: &str,
        params: Vec<Value>,
    ) -> (Result<Value, ApiError>, Duration) {
        let (outcome, delay) = self.call_outcome(session, method, params);
        (outcome.and_then(|o| o.to_value()), delay)
    }

    /// Like [`Api::call_deferred`], with the result as the handler gave it,
    /// for a transport that writes it into a response
    /// ([`typed::Outcome::response`]).
    pub fn call_outcome(
        &self,
        session: &Session,
        method: &str,
        params: Vec<Value>,
    ) -> (Result<typed::Outcome, ApiError>, Duration) {
        let answer = self.dispatch(session, method, params);
        (answer.result, answer.delay)
    }

    fn dispatch(
        &self,
        session: &Session,
        method: &str,
        params: Vec<Value>,
    ) -> Answer<typed::Outcome> {
        let Some(m) = self.inner.registry.method(method) else {
            return Answer::from(Err(ApiError::MethodNotFound));
        };
        if let Err(e) = registry::authorize(session, m) {
            return Answer::from(Err(e));
        }
        let answer = match m.validate(params) {
            Ok(values) => (m.handler)(self, &session.for_call(m.name), m, values),
            Err(e) => Answer::from(Err(e)),
        };
        // Every result is checked against what the method says it returns
        // (a result that is not JSON at all fails where it is written out).
        #[cfg(debug_assertions)]
        if let Ok(outcome) = &answer.result
            && let Ok(result) = outcome.to_value()
        {
            m.check_result(&result);
        }
        answer
    }

    /// A logged-in session for the local user of the embedded CLI.
    pub fn embedded_session(&self, uid: u32) -> Session {
        let account = self
            .inner
            .accounts
            .by_uid(uid)
            .unwrap_or_else(|| service::Account::bare(uid));
        // Whoever can open the state directory already holds every secret in
        // it: the embedded caller is an administrator of that state.
        Session::logged_in(
            service::Origin::Embedded { uid },
            Authenticated {
                account,
                admin: true,
            },
        )
    }

    /// A session for a Unix-socket peer: root is logged in before its first
    /// message; any other peer with an account is logged in as
    /// that account with a user's rights (its own two-factor
    /// settings, nothing else), whatever groups it is in — administrator
    /// rights need a password login. A uid without an account must log in.
    pub fn unix_session(&self, uid: u32, pid: Option<i32>) -> Session {
        let origin = service::Origin::Unix { uid, pid };
        if uid == 0 {
            let account = self
                .inner
                .accounts
                .by_uid(0)
                .unwrap_or_else(|| service::Account::bare(0));
            Session::logged_in(
                origin,
                Authenticated {
                    account,
                    admin: true,
                },
            )
        } else {
            match self.inner.accounts.by_uid(uid) {
                Some(account) => Session::logged_in(
                    origin,
                    Authenticated {
                        account,
                        admin: false,
                    },
                ),
                None => Session::anonymous(origin),
            }
        }
    }

    /// Hostile-load limit: counts an unauthenticated login call of `session` to
    /// `method`; refuses with `Rate Limit Exceeded` (EBUSY) past the limit.
    /// Administrators and sessions without an address are not limited. A
    /// session logged in as a non-administrator is counted with its address
    /// like an anonymous one: logging in as any user must not open unlimited
    /// password guessing at other accounts.
    pub(crate) fn admit_login(
        &self,
        session: &Session,
        method: &'static str,
    ) -> Result<(), ApiError> {
        if session.user().is_some_and(|u| u.admin) {
            return Ok(());
        }
        let key = match session.origin() {
            // One key per party: all loopback addresses are one, an IPv6
            // address counts by its /64.
            origin @ service::Origin::Tcp { .. } => origin.rate_limit_key(),
            service::Origin::Unix { uid, .. } => format!("uid:{uid}"),
            _ => return Ok(()),
        };
        let o = &self.inner.options;
        let window_ms = i64::try_from(o.login_window.as_millis()).unwrap_or(i64::MAX);
        let now = self.twofactor().clock().now_ms();
        let admitted = self
            .inner
            .login_limiter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .admit(&key, method, now, o.login_attempts, window_ms);
        if admitted {
            Ok(())
        } else {
            Err(ApiError::call(wire::Errno::EBUSY, "Rate Limit Exceeded"))
        }
    }

    /// Audits a failed login. Repeats of one caller for one name beyond
    /// the audit's rate are counted in one row per interval (the service
    /// aggregates them as it does code checks), so a flood of wrong
    /// passwords neither fills the trail nor holds the writer.
    pub(crate) fn record_failed_login(
        &self,
        caller: &service::Caller,
        session: &Session,
    ) -> Result<(), ApiError> {
        self.record_failed_login_as(caller, session, service::AuditOutcome::WrongPassword)
    }

    /// [`Api::record_failed_login`] with another outcome (a refused token).
    /// Repeats are aggregated by the audit itself.
    pub(crate) fn record_failed_login_as(
        &self,
        caller: &service::Caller,
        _session: &Session,
        outcome: service::AuditOutcome,
    ) -> Result<(), ApiError> {
        self.twofactor()
            .record(caller, service::AuditEvent::AuthLogin, outcome, None)?;
        Ok(())
    }

    /// The live session tokens.
    pub(crate) fn tokens(&self) -> std::sync::MutexGuard<'_, tokens::Tokens> {
        self.inner
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn is_admin(&self, account: &service::Account) -> bool {
        account.uid == 0
            || self
                .inner
                .options
                .admin_group
                .as_ref()
                .is_some_and(|g| account.group_names.iter().any(|n| n == g))
    }
}

#[cfg(test)]
mod shared_state_tests {
    use super::*;

    /// The embedded mode never opens a shared database: it says to use the
    /// daemon, and creates nothing in the state directory.
    #[test]
    fn the_embedded_api_refuses_a_shared_database_naming_the_daemon() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = config::Config::parse(
            "[database]\nurl = \"postgresql://tf@127.0.0.1:1/tf\"\n",
            "t.toml",
        )
        .expect("config");
        config.state_dir = dir.path().join("state");
        let err = Api::open(
            &config,
            Arc::new(service::NoAccounts),
            Arc::new(service::NoAccounts),
        )
        .expect_err("refused");
        assert!(err.to_string().contains("start twofactord"), "{err}");
        assert!(!config.state_dir.exists());
    }
}
