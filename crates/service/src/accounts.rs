//! System accounts and password checking, behind traits: PAM and NSS in
//! production (in the daemon), fixed tables in tests.

use secrecy::SecretString;

/// A system account as `auth.me` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub home: String,
    pub shell: String,
    /// Every group the account is in (primary included), by id.
    pub groups: Vec<u32>,
    /// The same groups by name.
    pub group_names: Vec<String>,
}

impl Account {
    /// A stand-in for a uid with no passwd entry (e.g. in a container).
    pub fn bare(uid: u32) -> Self {
        Self {
            name: if uid == 0 {
                "root".into()
            } else {
                format!("uid{uid}")
            },
            uid,
            gid: uid,
            gecos: String::new(),
            home: "/".into(),
            shell: String::new(),
            groups: vec![uid],
            group_names: Vec::new(),
        }
    }
}

/// What a listing shows of an account: its passwd entry's name, uid and
/// GECOS field, without the group look-ups a full [`Account`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedAccount {
    pub name: String,
    pub uid: u32,
    pub gecos: String,
}

impl From<&Account> for ListedAccount {
    fn from(a: &Account) -> Self {
        Self {
            name: a.name.clone(),
            uid: a.uid,
            gecos: a.gecos.clone(),
        }
    }
}

/// Looks accounts up (NSS in production).
pub trait Accounts: Send + Sync + std::fmt::Debug {
    fn by_name(&self, name: &str) -> Option<Account>;
    /// The account's name (as the system spells it) and uid, without its
    /// groups: all a code check needs of it. The default looks the whole
    /// account up; NSS answers this from the password database alone.
    fn identity(&self, name: &str) -> Option<(String, u32)> {
        self.by_name(name).map(|a| (a.name, a.uid))
    }
    fn by_uid(&self, uid: u32) -> Option<Account>;
    /// Every account (`getpwent`), for listings; none by default.
    fn all(&self) -> Vec<Account> {
        Vec::new()
    }
    /// Hands every account the system enumerates to `each`, one at a time
    /// in the enumeration's order, until `each` returns `false`: a listing
    /// without holding every account at once or looking each up again.
    /// The default walks [`Accounts::all`].
    fn for_each_listed(&self, each: &mut dyn FnMut(ListedAccount) -> bool) {
        for a in self.all() {
            if !each(ListedAccount::from(&a)) {
                break;
            }
        }
    }
}

/// Checks a password (PAM in production). Must not log the password.
pub trait PasswordCheck: Send + Sync + std::fmt::Debug {
    /// `rhost` is the remote address of the login, when there is one (PAM
    /// modules see it as `PAM_RHOST`). The password stays a
    /// [`SecretString`] (wiped on drop, redacted in `Debug`) all the way
    /// down; an implementation reads it with `expose_secret()` only where
    /// it hands it on.
    fn check(&self, user: &str, password: &SecretString, rhost: Option<&str>) -> bool;
}

/// No accounts and no passwords: everything is refused. The embedded CLI
/// uses it (it never logs in; the local user is the caller).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAccounts;

impl Accounts for NoAccounts {
    /// Only root (uid 0), so that the embedded CLI's administrator can
    /// manage root's secret through the per-user methods too.
    fn by_name(&self, name: &str) -> Option<Account> {
        (name == "root").then(|| Account::bare(0))
    }
    fn by_uid(&self, uid: u32) -> Option<Account> {
        Some(Account::bare(uid))
    }
}

impl PasswordCheck for NoAccounts {
    fn check(&self, _: &str, _: &SecretString, _: Option<&str>) -> bool {
        false
    }
}
