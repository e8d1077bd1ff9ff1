//! The configuration file: TOML, every key optional, unknown keys
//! refused by name. Read by both hosts — the daemon and the CLI's embedded
//! mode — so both see the same state directory, labels and limits.
//!
//! The whole layout is here: the host settings (paths, listeners, TLS
//! files, transport limits), which only the hosts act on, and the sections
//! whose values the domain takes (`[rate_limit]`, `[audit]`, `[database]`),
//! read into `service`'s plain types ([`RateLimits`], [`AuditRetention`],
//! [`NodeDatabase`]) that know nothing of the file. Both programs refuse
//! unknown keys, so each must know every key, and the CLI cannot depend on
//! the daemon: this crate is the one both reach (`docs/architecture.md`,
//! "The configuration file").

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use std::num::{NonZeroU32, NonZeroU64};

use serde::Deserialize;

use service::{AuditRetention, NodeDatabase, RateLimits};

use crate::config_rules as rules;
/// Where in the configuration file an error is.
pub use crate::config_rules::Location;

/// The default configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/twofactor/twofactord.toml";

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The OS error is part of the message, not a source of its own, so
    /// that a report of the whole chain says it once.
    #[error("cannot read {path}: {reason}")]
    Read {
        path: String,
        reason: std::io::Error,
    },
    /// Not TOML, or a value of the wrong type or an unknown key: TOML's
    /// message, at the line and column it names.
    #[error("{path}{}: {message}", at_location(.at))]
    Parse {
        path: String,
        at: Option<Location>,
        message: String,
    },
    /// A value that breaks a rule; `at` where it is in the file (none
    /// for a rule between two keys).
    #[error("{path}{}: {key} must be {rule}", at_location(.at))]
    Invalid {
        path: String,
        at: Option<Location>,
        key: String,
        rule: String,
    },
}

/// `:LINE:COLUMN` after the file's name, when known.
fn at_location(at: &Option<Location>) -> String {
    at.map(|l| format!(":{l}")).unwrap_or_default()
}

/// `[database]`: the state is kept in a PostgreSQL database shared by
/// several nodes instead of the SQLite file in the state directory (which
/// then holds only the key file, the same on every node). Read straight
/// into a [`NodeDatabase`] (serde's remote derive: the fields listed here
/// are the domain type's, every one, so a field it adds cannot be
/// forgotten here).
#[derive(Deserialize)]
#[serde(
    remote = "NodeDatabase",
    default = "database_defaults",
    deny_unknown_fields
)]
struct DatabaseSection {
    /// `postgresql://user@host1,host2/db?target_session_attrs=read-write&sslmode=verify-full&sslrootcert=...`
    url: String,
    /// A file holding the password (first line), when the URL has none.
    password_file: Option<PathBuf>,
    /// This node's name in audit rows; default: the host name.
    #[serde(deserialize_with = "rules::one_line_name")]
    node: String,
    #[serde(deserialize_with = "rules::pool_size")]
    pool_size: NonZeroU32,
    #[serde(deserialize_with = "rules::at_least_one_u64")]
    connect_timeout_ms: NonZeroU64,
    #[serde(deserialize_with = "rules::at_least_one_u64")]
    statement_timeout_ms: NonZeroU64,
}

/// The defaults of a `[database]` section; `url` has none (empty is
/// refused).
fn database_defaults() -> NodeDatabase {
    NodeDatabase {
        url: String::new(),
        password_file: None,
        node: service::Labels::system_hostname(),
        pool_size: NonZeroU32::new(8).unwrap_or(NonZeroU32::MIN),
        connect_timeout_ms: NonZeroU64::new(2000).unwrap_or(NonZeroU64::MIN),
        statement_timeout_ms: NonZeroU64::new(2000).unwrap_or(NonZeroU64::MIN),
    }
}

/// A `[database]` section, when the file has one.
fn database_section<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<NodeDatabase>, D::Error> {
    DatabaseSection::deserialize(d).map(Some)
}

/// `[rate_limit]`, read straight into the domain's [`RateLimits`]; a
/// missing key takes the domain's default.
#[derive(Deserialize)]
#[serde(
    remote = "RateLimits",
    default = "RateLimits::default",
    deny_unknown_fields
)]
struct RateLimitSection {
    #[serde(deserialize_with = "rules::at_least_one")]
    max_failures: NonZeroU32,
    #[serde(deserialize_with = "rules::at_least_one")]
    secret_max_failures: NonZeroU32,
    #[serde(deserialize_with = "rules::at_least_one")]
    window_secs: NonZeroU32,
    #[serde(deserialize_with = "rules::at_least_one")]
    initial_backoff_secs: NonZeroU32,
    max_backoff_secs: u32,
    #[serde(deserialize_with = "rules::at_least_one")]
    lockout_decay_secs: NonZeroU32,
}

/// `[audit]`, read straight into the domain's [`AuditRetention`]; a
/// missing key takes the domain's default (and `batch`, not in the file,
/// always does).
#[derive(Deserialize)]
#[serde(
    remote = "AuditRetention",
    default = "AuditRetention::default",
    deny_unknown_fields
)]
struct AuditSection {
    #[serde(deserialize_with = "rules::at_least_one")]
    max_age_days: NonZeroU32,
    #[serde(deserialize_with = "rules::at_least_one_u64")]
    max_rows: NonZeroU64,
    #[serde(deserialize_with = "rules::at_least_one")]
    security_max_age_days: NonZeroU32,
    #[serde(deserialize_with = "rules::at_least_one_u64")]
    security_max_rows: NonZeroU64,
    aggregate_after: u32,
    #[serde(deserialize_with = "rules::at_least_one")]
    aggregate_interval_secs: NonZeroU32,
    #[serde(skip)]
    batch: usize,
}

/// The configuration, declared once: the file's keys are its fields
/// (every one optional, a missing one takes its default, an unknown one is
/// refused by name), each checked as it is read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub state_dir: PathBuf,
    /// The Unix socket; `None` is the system daemon's (root's default),
    /// whose path is the protocol's (`wire`'s, resolved by the hosts
    /// through [`crate::host::socket_path`]).
    pub socket: Option<PathBuf>,
    /// TCP: an address, or [`Listen::None`] (`listen = "none"`).
    pub listen: Listen,
    #[serde(deserialize_with = "rules::label")]
    pub issuer: String,
    #[serde(deserialize_with = "rules::label")]
    pub product: String,
    /// PAM service used to check API passwords.
    pub pam_service: String,
    /// Members of this group are administrators (besides root).
    pub admin_group: Option<String>,
    /// PAM services whose logins count as `ssh`.
    pub ssh_pam_services: Vec<String>,
    /// `[rate_limit]`.
    #[serde(
        rename = "rate_limit",
        deserialize_with = "RateLimitSection::deserialize"
    )]
    pub rate_limits: RateLimits,
    /// Audit retention (`[audit]`).
    #[serde(deserialize_with = "AuditSection::deserialize")]
    pub audit: AuditRetention,
    /// Every login needs a second factor: an account without a secret of
    /// its own is refused at API and SSH login.
    pub require_secret: bool,
    /// Start a fresh state where a key file has lost its database
    /// (`--init` of `twofactord` and `tfa`; never read from the file).
    #[serde(skip)]
    pub init: bool,
    /// The hostile-load limits: connection, time and login-attempt limits
    /// (`[limits]`).
    pub limits: Limits,
    /// The shared PostgreSQL state (`[database]`); `None`: SQLite.
    #[serde(deserialize_with = "database_section")]
    pub database: Option<NodeDatabase>,
    /// HTTPS on the TCP listener: the certificate chain and private key
    /// files (PEM), `tls_cert` and `tls_key`; both or neither.
    #[serde(skip)]
    pub tls: Option<TlsFiles>,
    /// The file's `tls_cert` and `tls_key`, paired into [`Config::tls`]
    /// once read (always `None` after that).
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

/// The PEM files the TCP listener's TLS uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self::defaults()
    }
}

impl Config {
    /// Defaults for the current user: root gets system paths, others XDG ones.
    pub fn defaults() -> Self {
        let (state_dir, socket) = default_paths(is_root(), &|k| std::env::var_os(k));
        Self {
            state_dir,
            socket,
            listen: Listen::Tcp("127.0.0.1:6000".into()),
            issuer: "iXsystems".into(),
            product: "TrueNAS".into(),
            pam_service: "twofactord".into(),
            admin_group: None,
            ssh_pam_services: vec!["sshd".into()],
            rate_limits: RateLimits::default(),
            audit: AuditRetention::default(),
            require_secret: false,
            init: false,
            limits: Limits::default(),
            database: None,
            tls: None,
            tls_cert: None,
            tls_key: None,
        }
    }

    /// Reads `path`; a missing file is only an error when `required`.
    pub fn load(path: &Path, required: bool) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, &shown),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(Self::defaults()),
            Err(reason) => Err(ConfigError::Read {
                path: shown,
                reason,
            }),
        }
    }

    /// Parses TOML text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &str) -> Result<Self, ConfigError> {
        let mut c: Self = toml::from_str(text).map_err(|e| read_error(&e, text, path))?;
        let invalid = |key: &str, rule: &str| ConfigError::Invalid {
            path: path.into(),
            at: None,
            key: key.into(),
            rule: rule.into(),
        };
        let l = &c.rate_limits;
        if l.initial_backoff_secs.get() > l.max_backoff_secs {
            return Err(invalid(
                "rate_limit.initial_backoff_secs",
                "at most max_backoff_secs",
            ));
        }
        if c.limits.max_connections_per_address > c.limits.max_connections {
            return Err(invalid(
                "limits.max_connections_per_address",
                "at most max_connections",
            ));
        }
        if c.database.as_ref().is_some_and(|d| d.url.is_empty()) {
            return Err(invalid("database.url", "set in a [database] section"));
        }
        c.tls = match (c.tls_cert.take(), c.tls_key.take()) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => return Err(invalid("tls_key", "set together with tls_cert")),
            (None, Some(_)) => return Err(invalid("tls_cert", "set together with tls_key")),
        };
        Ok(c)
    }
}

/// TOML's error as ours: where it is, and a broken rule as `KEY must be
/// RULE` with the key the value was given under.
fn read_error(e: &toml::de::Error, text: &str, path: &str) -> ConfigError {
    let at = e.span().map(|s| Location::of(text, s.start));
    let key = e.span().and_then(|s| rules::key_at(text, &s));
    match (e.message().strip_prefix(rules::MUST_BE), key) {
        (Some(rule), Some(key)) => ConfigError::Invalid {
            path: path.into(),
            at,
            key,
            rule: rule.into(),
        },
        _ => ConfigError::Parse {
            path: path.into(),
            at,
            message: e.message().to_owned(),
        },
    }
}

fn is_root() -> bool {
    current_uid() == 0
}

/// The effective uid of this process (`geteuid`). Not the owner of
/// `/proc/self`: a process that is not dumpable (after a set-uid exec or
/// `PR_SET_DUMPABLE`) has that owned by root, and would pass for root.
pub fn current_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

type Env<'a> = &'a dyn Fn(&str) -> Option<std::ffi::OsString>;

/// This program's directory under the user's XDG data directory:
/// `$XDG_DATA_HOME/twofactor`, else `$HOME/.local/share/twofactor`; `None`
/// when neither variable is set. A non-root user's default state
/// directory, and where `tfa` keeps its shell history.
pub fn user_data_dir() -> Option<PathBuf> {
    data_home(&|k| std::env::var_os(k)).map(|d| d.join(PROGRAM_DIR))
}

/// The directory this program's files go in under an XDG base directory.
const PROGRAM_DIR: &str = "twofactor";

/// `$XDG_DATA_HOME`, else `$HOME/.local/share` (empty values are unset).
fn data_home(env: Env<'_>) -> Option<PathBuf> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    set("XDG_DATA_HOME").or_else(|| set("HOME").map(|h| h.join(".local/share")))
}

/// The default paths: root uses system paths (the socket: the system
/// daemon's); others use XDG directories.
fn default_paths(root: bool, env: Env<'_>) -> (PathBuf, Option<PathBuf>) {
    if root {
        return (PathBuf::from("/var/lib/twofactor"), None);
    }
    let runtime = env("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    // Without a home there is no default state directory (never one
    // relative to the working directory: `service::open_store` refuses
    // it), and the socket is the runtime directory's or the system's.
    let Some(data) = data_home(env) else {
        return (
            PathBuf::new(),
            runtime.map(|r| r.join(PROGRAM_DIR).join("twofactord.sock")),
        );
    };
    let runtime = runtime.unwrap_or_else(|| data.clone());
    (
        data.join(PROGRAM_DIR),
        Some(runtime.join(PROGRAM_DIR).join("twofactord.sock")),
    )
}

/// The daemon's TCP listener (`listen` in the file, `--listen`): an
/// address, or `none` for no TCP at all.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Listen {
    /// `listen = "none"`: the Unix socket only.
    None,
    /// `host:port` to bind.
    Tcp(String),
}

impl FromStr for Listen {
    type Err = ListenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "" => Err(ListenError),
            addr => Ok(Self::Tcp(addr.to_owned())),
        }
    }
}

impl TryFrom<String> for Listen {
    type Error = ListenError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Tcp(addr) => f.write_str(addr),
        }
    }
}

/// An empty `listen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("listen must be host:port or \"none\", not empty")]
pub struct ListenError;

/// The hostile-load limits (`[limits]` in the file): what an unauthenticated or
/// unprivileged peer may hold of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Connections per listener (TCP; non-root Unix-socket peers).
    #[serde(deserialize_with = "rules::at_least_one")]
    pub max_connections: NonZeroU32,
    /// Connections per remote address (TCP) or per uid (Unix socket).
    #[serde(deserialize_with = "rules::at_least_one")]
    pub max_connections_per_address: NonZeroU32,
    /// Unix-socket connections kept for root beyond `max_connections`.
    #[serde(deserialize_with = "rules::at_least_one")]
    pub root_reserved_connections: NonZeroU32,
    /// Seconds to send the HTTP upgrade request.
    #[serde(deserialize_with = "rules::at_least_one")]
    pub handshake_timeout_secs: NonZeroU32,
    /// Seconds an unauthenticated connection may stay without logging in.
    #[serde(deserialize_with = "rules::at_least_one")]
    pub login_timeout_secs: NonZeroU32,
    /// Seconds a peer may leave an answer unread before it is dropped.
    #[serde(deserialize_with = "rules::at_least_one")]
    pub send_timeout_secs: NonZeroU32,
    /// Unauthenticated login calls per address and method per window.
    #[serde(deserialize_with = "rules::at_least_one")]
    pub login_attempts: NonZeroU32,
    #[serde(deserialize_with = "rules::at_least_one")]
    pub login_window_secs: NonZeroU32,
    /// Password checks of unauthenticated peers running at once.
    #[serde(deserialize_with = "rules::at_least_one")]
    pub unauthenticated_workers: NonZeroU32,
    /// Milliseconds from its start at which every failed login is answered.
    pub failed_login_deadline_ms: u32,
}

impl Default for Limits {
    fn default() -> Self {
        let n = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        Self {
            max_connections: n(1024),
            max_connections_per_address: n(64),
            root_reserved_connections: n(64),
            handshake_timeout_secs: n(10),
            login_timeout_secs: n(30),
            send_timeout_secs: n(10),
            login_attempts: n(20),
            login_window_secs: n(60),
            unauthenticated_workers: n(4),
            failed_login_deadline_ms: 1000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in the child process of the test below.
    const UID_CHILD: &str = "TWOFACTOR_TEST_UID_CHILD";
    /// The uid the child runs as when the tests run as root.
    const NOBODY: u32 = 65534;

    /// A process that is not dumpable (as a set-uid program is) has its
    /// `/proc/self` owned by root; it must not pass for root. Checked in a
    /// child process (not dumpable, and run as `nobody` when the tests run
    /// as root, since for root both readings agree).
    #[test]
    fn the_uid_is_the_effective_one_even_when_not_dumpable() {
        if let Some(expected) = std::env::var_os(UID_CHILD) {
            nix::sys::prctl::set_dumpable(false).expect("PR_SET_DUMPABLE");
            let expected: u32 = expected.to_str().and_then(|s| s.parse().ok()).expect("uid");
            assert_eq!(current_uid(), expected);
            assert_eq!(is_root(), expected == 0);
            return;
        }
        use std::os::unix::process::CommandExt;
        let me = nix::unistd::geteuid().as_raw();
        let as_uid = if me == 0 { NOBODY } else { me };
        let mut child = std::process::Command::new(std::env::current_exe().expect("exe"));
        child
            .args([
                "--exact",
                "config::tests::the_uid_is_the_effective_one_even_when_not_dumpable",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(UID_CHILD, as_uid.to_string());
        if me == 0 {
            child.uid(NOBODY).gid(NOBODY);
        }
        let out = child.output().expect("run the child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn the_database_section_has_defaults_and_rules_and_hides_the_password() {
        assert_eq!(Config::parse("", "t.toml").unwrap().database, None);
        let c = Config::parse(
            "[database]\nurl = \"postgresql://tf:s3cret@db1,db2/tf\"\nnode = \"nas-a\"\n",
            "t.toml",
        )
        .unwrap();
        let db = c.database.clone().unwrap();
        assert_eq!(
            (
                db.node.as_str(),
                db.pool_size.get(),
                db.connect_timeout_ms.get(),
                db.statement_timeout_ms.get()
            ),
            ("nas-a", 8, 2000, 2000)
        );
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("tf:***@db1,db2"),
            "{shown}"
        );
        for (text, key) in [
            ("[database]\nnode = \"a\"\n", "database.url"),
            (
                "[database]\nurl = \"postgresql://x/y\"\npool_size = 0\n",
                "database.pool_size",
            ),
            (
                "[database]\nurl = \"postgresql://x/y\"\nstatement_timeout_ms = 0\n",
                "database.statement_timeout_ms",
            ),
            (
                "[database]\nurl = \"postgresql://x/y\"\nnode = \"\"\n",
                "database.node",
            ),
            (
                "[database]\nurl = \"postgresql://x/y\"\nhost = \"x\"\n",
                "host",
            ),
        ] {
            let err = Config::parse(text, "t.toml").unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn tls_needs_both_files() {
        let c = Config::parse("tls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\n", "t.toml").unwrap();
        assert_eq!(
            c.tls,
            Some(TlsFiles {
                cert: "/c.pem".into(),
                key: "/k.pem".into()
            })
        );
        assert_eq!(Config::parse("", "t.toml").unwrap().tls, None);
        let err = Config::parse("tls_cert = \"/c.pem\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "t.toml: tls_key must be set together with tls_cert");
        let err = Config::parse("tls_key = \"/k.pem\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "t.toml: tls_cert must be set together with tls_key");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("isuer = \"x\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("isuer"), "{err}");
        let err = Config::parse("[rate_limit]\nmax = 3\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max"), "{err}");
    }

    #[test]
    fn values_override_defaults() {
        let c = Config::parse(
            "issuer = \"ACME\"\nlisten = \"none\"\nadmin_group = \"wheel\"\n[rate_limit]\nmax_failures = 3\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.issuer, "ACME");
        assert_eq!(c.listen, Listen::None);
        assert_eq!(c.admin_group.as_deref(), Some("wheel"));
        assert_eq!(c.rate_limits.max_failures.get(), 3);
        assert_eq!(c.rate_limits.window_secs.get(), 300);
        assert_eq!(c.product, "TrueNAS");
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Config::parse("issuer = \"a:b\"\n", "t").is_err());
        assert!(Config::parse("[rate_limit]\nmax_failures = 0\n", "t").is_err());
        for (text, key) in [
            (
                "[rate_limit]\nsecret_max_failures = 0\n",
                "rate_limit.secret_max_failures",
            ),
            ("[audit]\nmax_age_days = 0\n", "audit.max_age_days"),
            ("[audit]\nmax_rows = 0\n", "audit.max_rows"),
            ("[audit]\nmax_days = 3\n", "max_days"),
        ] {
            let err = Config::parse(text, "t").unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn two_tier_and_audit_numbers_are_settable() {
        let c = Config::defaults();
        assert_eq!(
            (
                c.rate_limits.max_failures.get(),
                c.rate_limits.secret_max_failures.get()
            ),
            (5, 20)
        );
        assert_eq!(
            (c.audit.max_age_days.get(), c.audit.max_rows.get()),
            (90, 100_000)
        );
        assert!(!c.init);
        let c = Config::parse(
            "[rate_limit]\nsecret_max_failures = 50\n[audit]\nmax_age_days = 7\nmax_rows = 500\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.rate_limits.secret_max_failures.get(), 50);
        assert_eq!(c.rate_limits.max_failures.get(), 5);
        assert_eq!(
            (c.audit.max_age_days.get(), c.audit.max_rows.get()),
            (7, 500)
        );
    }

    /// The file's `[rate_limit]`, `[audit]` and `[database]` keys land in
    /// the domain's fields of the same names, each its own, and a section
    /// left out is the domain's defaults.
    #[test]
    fn each_domain_key_reaches_its_own_field() {
        let c = Config::parse(
            "[rate_limit]\nmax_failures = 3\nsecret_max_failures = 1000\nwindow_secs = 10\n\
             initial_backoff_secs = 1\nmax_backoff_secs = 8\nlockout_decay_secs = 60\n\
             [audit]\nmax_age_days = 2\nmax_rows = 3\nsecurity_max_age_days = 4\n\
             security_max_rows = 5\naggregate_after = 6\naggregate_interval_secs = 7\n\
             [database]\nurl = \"postgresql://x/y\"\npassword_file = \"/p\"\nnode = \"n\"\n\
             pool_size = 9\nconnect_timeout_ms = 11\nstatement_timeout_ms = 12\n",
            "t.toml",
        )
        .expect("valid");
        let n = |v: u32| NonZeroU32::new(v).expect("not 0");
        let n64 = |v: u64| NonZeroU64::new(v).expect("not 0");
        assert_eq!(
            c.rate_limits,
            RateLimits {
                max_failures: n(3),
                secret_max_failures: n(1000),
                window_secs: n(10),
                initial_backoff_secs: n(1),
                max_backoff_secs: 8,
                lockout_decay_secs: n(60),
            }
        );
        assert_eq!(
            c.audit,
            AuditRetention {
                max_age_days: n(2),
                max_rows: n64(3),
                security_max_age_days: n(4),
                security_max_rows: n64(5),
                aggregate_after: 6,
                aggregate_interval_secs: n(7),
                batch: AuditRetention::default().batch,
            }
        );
        assert_eq!(
            c.database,
            Some(NodeDatabase {
                url: "postgresql://x/y".into(),
                password_file: Some("/p".into()),
                node: "n".into(),
                pool_size: n(9),
                connect_timeout_ms: n64(11),
                statement_timeout_ms: n64(12),
            })
        );
        let empty = Config::parse("[rate_limit]\n[audit]\n", "t.toml").expect("valid");
        assert_eq!(empty.rate_limits, RateLimits::default());
        assert_eq!(empty.audit, AuditRetention::default());
        assert_eq!(Config::defaults().rate_limits, RateLimits::default());
        assert_eq!(Config::defaults().audit, AuditRetention::default());
    }

    #[test]
    fn require_secret_defaults_off_and_must_be_a_boolean() {
        assert!(!Config::defaults().require_secret);
        assert!(
            Config::parse("require_secret = true\n", "t")
                .unwrap()
                .require_secret
        );
        let e = Config::parse("require_secret = \"yes\"\n", "t").unwrap_err();
        assert!(e.to_string().contains("t:"), "{e}");
    }

    #[test]
    fn xdg_defaults_for_non_root() {
        let env = |k: &str| match k {
            "HOME" => Some("/home/u".into()),
            "XDG_RUNTIME_DIR" => Some("/run/user/1000".into()),
            _ => None,
        };
        let (state, sock) = default_paths(false, &env);
        assert_eq!(state, PathBuf::from("/home/u/.local/share/twofactor"));
        assert_eq!(
            sock,
            Some(PathBuf::from("/run/user/1000/twofactor/twofactord.sock"))
        );
        let (state, sock) = default_paths(true, &env);
        assert_eq!(state, PathBuf::from("/var/lib/twofactor"));
        assert_eq!(sock, None, "root's is the system daemon's socket");
    }

    #[test]
    fn the_data_home_is_xdgs() {
        let data = |vars: &'static [(&'static str, &'static str)]| {
            data_home(&move |k: &str| {
                vars.iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| (*v).into())
            })
        };
        assert_eq!(
            data(&[("XDG_DATA_HOME", "/x"), ("HOME", "/home/u")]),
            Some(PathBuf::from("/x"))
        );
        assert_eq!(
            data(&[("XDG_DATA_HOME", ""), ("HOME", "/home/u")]),
            Some(PathBuf::from("/home/u/.local/share"))
        );
        assert_eq!(data(&[("HOME", "")]), None);
        assert_eq!(data(&[]), None);
        // Without a home: no state directory (opening refuses it) and the
        // system's socket; nothing relative to the working directory.
        let (state, sock) = default_paths(false, &|_| None);
        assert_eq!(state, PathBuf::new());
        assert_eq!(sock, None);
        let runtime = |k: &str| (k == "XDG_RUNTIME_DIR").then(|| "/run/user/7".into());
        let (state, sock) = default_paths(false, &runtime);
        assert_eq!(state, PathBuf::new());
        assert_eq!(
            sock,
            Some(PathBuf::from("/run/user/7/twofactor/twofactord.sock"))
        );
        let err = service::open_store(&state, false).expect_err("refused");
        assert!(err.to_string().contains("HOME"), "{err}");
    }

    #[test]
    fn listen_is_an_address_or_none() {
        let c = Config::parse("listen = \"[::1]:7000\"\n", "t").unwrap();
        assert_eq!(c.listen, Listen::Tcp("[::1]:7000".into()));
        assert_eq!(Config::defaults().listen.to_string(), "127.0.0.1:6000");
        assert_eq!("none".parse(), Ok(Listen::None));
        assert_eq!(Listen::None.to_string(), "none");
        let err = Config::parse("listen = \"\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen"), "{err}");
        assert!(Config::parse("listen = 6000\n", "t").is_err());
    }

    /// Every error TOML reports names the line and column; a broken rule
    /// names the key as before, wherever and however it was written.
    #[test]
    fn errors_say_where() {
        let err = |text: &str| Config::parse(text, "t.toml").unwrap_err().to_string();
        assert_eq!(
            err("issuer = \"ok\"\n[limits]\nlogin_attempts = 0\n"),
            "t.toml:3:18: limits.login_attempts must be at least 1"
        );
        assert_eq!(
            err("limits = { send_timeout_secs = 0 }\n"),
            "t.toml:1:32: limits.send_timeout_secs must be at least 1"
        );
        assert_eq!(
            err("\n\nproduct = \"a:b\"\n"),
            "t.toml:3:11: product must be a non-empty string without ':'"
        );
        assert_eq!(
            err("[audit]\nmax_rows = 0\n"),
            "t.toml:2:12: audit.max_rows must be at least 1"
        );
        let unknown = err("pam_service = \"x\"\nisuer = \"x\"\n");
        assert!(
            unknown.starts_with("t.toml:2:1: unknown field `isuer`"),
            "{unknown}"
        );
        let wrong_type = err("require_secret = \"yes\"\n");
        assert!(wrong_type.starts_with("t.toml:1:18: "), "{wrong_type}");
        let broken = err("issuer = \n");
        assert!(broken.starts_with("t.toml:1:"), "{broken}");
        // A rule between two keys has no one place.
        assert_eq!(
            err("[limits]\nmax_connections = 3\nmax_connections_per_address = 4\n"),
            "t.toml: limits.max_connections_per_address must be at most max_connections"
        );
    }

    #[test]
    fn limits_are_read_and_checked() {
        let c = Config::parse(
            "[limits]\nmax_connections = 100\nlogin_timeout_secs = 2\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.limits.max_connections.get(), 100);
        assert_eq!(c.limits.login_timeout_secs.get(), 2);
        assert_eq!(c.limits.handshake_timeout_secs.get(), 10);
        let err = Config::parse("[limits]\nlogin_attempts = 0\n", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("limits.login_attempts"), "{err}");
        let err = Config::parse("[limits]\nmax_conections = 3\n", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_conections"), "{err}");
        let err = Config::parse(
            "[limits]\nmax_connections = 3\nmax_connections_per_address = 4\n",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("max_connections_per_address"), "{err}");
    }
}
