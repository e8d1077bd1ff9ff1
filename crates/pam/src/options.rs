//! The module's arguments in the PAM service file, e.g.
//! `auth required pam_twofactor.so socket=/run/x.sock timeout=3 unreachable=ignore debug`.

use std::path::PathBuf;
use std::time::Duration;

/// How long connecting and each call may take unless `timeout=` says otherwise.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest `timeout=` accepted: sshd's LoginGraceTime defaults to 120 s.
const MAX_TIMEOUT_SECS: f64 = 120.0;

/// What to do when the daemon cannot be reached before a code was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unreachable {
    /// Fail closed: `PAM_AUTH_ERR` (the default).
    Fail,
    /// Behave as if the module were not in the stack: `PAM_IGNORE`.
    Ignore,
}

/// Every argument the module takes: (form, example, what it does). The
/// manual page pam_twofactor(8) is made from this table, and a test holds
/// each example to the parser.
pub const DOCS: &[(&str, &str, &str)] = &[
    (
        "socket=PATH",
        "socket=/run/twofactor/twofactord.sock",
        "The daemon's Unix socket (an absolute path). Default: /run/twofactor/twofactord.sock. \
         The daemon must run as root or as the owner of the process using the module.",
    ),
    (
        "timeout=SECONDS",
        "timeout=5",
        "How long connecting and each call may take, in seconds (fractions allowed; above 0, \
         at most 120). Default: 5.",
    ),
    (
        "unreachable=fail|ignore",
        "unreachable=ignore",
        "What to do when the daemon cannot be reached before a code was asked for: fail \
         (the default) fails the login closed, with the message \"two-factor service \
         unavailable; ask an administrator\"; ignore behaves as if the module were not in \
         the stack (PAM_IGNORE). Once a code was asked for, losing the daemon always fails.",
    ),
    (
        "debug",
        "debug",
        "Logs each outcome (never the code) to syslog at debug level.",
    ),
];

/// The parsed arguments.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Options {
    pub(crate) socket: PathBuf,
    pub(crate) timeout: Duration,
    pub(crate) unreachable: Unreachable,
    pub(crate) debug: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(client::wire::SYSTEM_SOCKET),
            timeout: DEFAULT_TIMEOUT,
            unreachable: Unreachable::Fail,
            debug: false,
        }
    }
}

impl Options {
    /// Parses the arguments. A bad or unknown argument never loosens
    /// anything: it is reported (for the log) and the default stays.
    pub(crate) fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> (Self, Vec<String>) {
        let mut opts = Self::default();
        let mut problems = Vec::new();
        for arg in args {
            let (name, value) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (arg, None),
            };
            match (name, value) {
                ("debug", None) => opts.debug = true,
                ("socket", Some(v)) if v.starts_with('/') => opts.socket = PathBuf::from(v),
                ("socket", _) => problems.push(format!("{arg}: the socket must be an absolute path")),
                ("timeout", Some(v)) => match parse_timeout(v) {
                    Some(t) => opts.timeout = t,
                    None => problems.push(format!(
                        "{arg}: the timeout must be a number of seconds above 0 and at most {MAX_TIMEOUT_SECS}"
                    )),
                },
                ("unreachable", Some("fail")) => opts.unreachable = Unreachable::Fail,
                ("unreachable", Some("ignore")) => opts.unreachable = Unreachable::Ignore,
                ("unreachable", _) => problems.push(format!("{arg}: expected unreachable=fail or unreachable=ignore")),
                _ => problems.push(format!("{arg}: unknown option")),
            }
        }
        (opts, problems)
    }

    /// The daemon's address in the form the client takes.
    pub(crate) fn url(&self) -> String {
        format!("ws+unix://{}", self.socket.display())
    }
}

fn parse_timeout(v: &str) -> Option<Duration> {
    let secs: f64 = v.parse().ok()?;
    (secs > 0.0 && secs <= MAX_TIMEOUT_SECS).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let (o, problems) = Options::parse([]);
        assert!(problems.is_empty());
        assert_eq!(o.socket, PathBuf::from("/run/twofactor/twofactord.sock"));
        assert_eq!(o.timeout, Duration::from_secs(5));
        assert_eq!(o.unreachable, Unreachable::Fail);
        assert!(!o.debug);
        assert_eq!(o.url(), "ws+unix:///run/twofactor/twofactord.sock");
    }

    #[test]
    fn every_documented_example_parses() {
        for (form, example, _) in DOCS {
            let (_, problems) = Options::parse([*example]);
            assert!(problems.is_empty(), "{form}: {problems:?}");
        }
    }

    #[test]
    fn every_option() {
        let (o, problems) = Options::parse([
            "socket=/tmp/t.sock",
            "timeout=2",
            "unreachable=ignore",
            "debug",
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(o.socket, PathBuf::from("/tmp/t.sock"));
        assert_eq!(o.timeout, Duration::from_secs(2));
        assert_eq!(o.unreachable, Unreachable::Ignore);
        assert!(o.debug);
        assert_eq!(
            Options::parse(["timeout=0.5"]).0.timeout,
            Duration::from_millis(500)
        );
        assert_eq!(
            Options::parse(["unreachable=ignore", "unreachable=fail"])
                .0
                .unreachable,
            Unreachable::Fail
        );
    }

    #[test]
    fn bad_options_keep_the_safe_defaults() {
        for bad in [
            "unreachable=ingore",
            "unreachable",
            "timeout=0",
            "timeout=-1",
            "timeout=abc",
            "timeout=NaN",
            "timeout=1000",
            "socket=relative.sock",
            "socket",
            "debug=1",
            "nullok",
        ] {
            let (o, problems) = Options::parse([bad]);
            assert_eq!(problems.len(), 1, "{bad}");
            assert!(problems[0].starts_with(bad), "{bad}: {problems:?}");
            assert_eq!(o, Options::default(), "{bad}");
        }
    }
}
