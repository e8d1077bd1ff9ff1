//! Who is calling and from where: for audit records and rate-limit scopes.

use std::fmt;
use std::net::IpAddr;

use crate::audit::{AuditEvent, AuditOutcome};

/// Where a call came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The CLI's in-process mode.
    Embedded { uid: u32 },
    /// A Unix-socket peer (SO_PEERCRED).
    Unix { uid: u32, pid: Option<i32> },
    /// A TCP peer.
    Tcp { addr: IpAddr, port: u16 },
    /// A PAM conversation relayed by the module: the remote host sshd saw.
    Pam { rhost: Option<String> },
}

/// The rate-limit origin of every caller without a remote address: the
/// Unix socket, the embedded CLI, a PAM check without `PAM_RHOST`.
pub const LOCAL_ORIGIN: &str = "local";

impl Origin {
    /// The address to rate-limit by, when there is one.
    pub fn remote_address(&self) -> Option<String> {
        match self {
            Self::Tcp { addr, .. } => Some(addr.to_string()),
            Self::Pam { rhost: Some(h) } if !h.is_empty() => Some(h.clone()),
            _ => None,
        }
    }

    /// The origin wrong codes and login attempts are counted under (the
    /// per-origin lock-out tier): the TCP peer's address, or `PAM_RHOST` for
    /// PAM checks (the same key as TCP when it is an address, so one host is
    /// one origin; `host:NAME` when it is a name), or [`LOCAL_ORIGIN`].
    /// Addresses are keyed by who controls them ([`address_key`]). Never
    /// [`store::ALL_ORIGINS`].
    pub fn rate_limit_key(&self) -> String {
        match self {
            Self::Tcp { addr, .. } => address_key(*addr),
            Self::Pam { rhost: Some(h) } if !h.trim().is_empty() => {
                let h = h.trim();
                match h.parse::<IpAddr>() {
                    Ok(ip) => address_key(ip),
                    Err(_) => format!("host:{}", h.to_ascii_lowercase()),
                }
            }
            _ => LOCAL_ORIGIN.to_owned(),
        }
    }

    /// Who is calling, for telling repeats of one caller apart from other
    /// callers' records: the uid on the socket, the rate-limit origin
    /// otherwise. A new connection (another port or pid) is the same caller.
    pub fn caller_key(&self) -> String {
        match self {
            Self::Unix { uid, .. } => format!("uid:{uid}"),
            Self::Embedded { uid } => format!("embedded:{uid}"),
            Self::Tcp { .. } => format!("tcp:{}", self.rate_limit_key()),
            Self::Pam { .. } => format!("pam:{}", self.rate_limit_key()),
        }
    }

    /// Whether this is the local Unix socket (or the in-process CLI).
    pub fn is_local_socket(&self) -> bool {
        matches!(self, Self::Unix { .. } | Self::Embedded { .. })
    }
}

/// The rate-limit key of an address: what one party can vary freely counts
/// as one origin. Every loopback address (all of 127.0.0.0/8, `::1`, and
/// loopback seen on an IPv6 socket as `::ffff:127.x.y.z`) is `loopback`: a
/// local user can bind any of them. An IPv6 address is keyed by its /64,
/// the smallest network a site is given; an IPv4 peer seen on an IPv6
/// socket (`::ffff:a.b.c.d`) is the IPv4 address, so it cannot count twice.
pub fn address_key(ip: IpAddr) -> String {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() {
        return LOOPBACK_ORIGIN.to_owned();
    }
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !u128::from(u64::MAX);
            format!("{}/64", std::net::Ipv6Addr::from(network))
        }
    }
}

/// The rate-limit origin of every loopback address.
pub const LOOPBACK_ORIGIN: &str = "loopback";

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Embedded { uid } => write!(f, "embedded:uid={uid}"),
            Self::Unix {
                uid,
                pid: Some(pid),
            } => write!(f, "unix:uid={uid},pid={pid}"),
            Self::Unix { uid, pid: None } => write!(f, "unix:uid={uid}"),
            Self::Tcp { addr, port } => {
                write!(f, "tcp:{}", std::net::SocketAddr::new(*addr, *port))
            }
            Self::Pam { rhost: Some(h) } => write!(f, "pam:rhost={h}"),
            Self::Pam { rhost: None } => write!(f, "pam:local"),
        }
    }
}

/// The user (when logged in) and origin of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: Option<String>,
    pub origin: Origin,
    /// The PAM service or API method on whose behalf a code is checked.
    pub via: Option<String>,
    /// A logged-in administrator (root on the Unix socket always is).
    pub admin: bool,
}

impl Caller {
    pub fn new(user: Option<&str>, origin: Origin) -> Self {
        Self {
            user: user.map(str::to_owned),
            origin,
            via: None,
            admin: false,
        }
    }

    /// Marks the caller as a logged-in administrator (or not).
    pub fn as_admin(mut self, admin: bool) -> Self {
        self.admin = admin;
        self
    }

    /// An administrator on the Unix socket (root there always is, and so is
    /// the in-process CLI, whose user owns the state): the per-secret
    /// lock-out does not apply, so root can always recover. Such
    /// a caller can read the secret anyway, so nothing is guessed this way.
    pub fn bypasses_lockout(&self) -> bool {
        match self.origin {
            Origin::Unix { uid: 0, .. } | Origin::Embedded { .. } => true,
            Origin::Unix { .. } => self.admin,
            Origin::Tcp { .. } | Origin::Pam { .. } => false,
        }
    }

    pub fn via(mut self, via: impl Into<String>) -> Self {
        self.via = Some(via.into());
        self
    }

    /// An audit record of something this caller did at `at_ms`.
    pub(crate) fn audit(
        &self,
        at_ms: i64,
        event: AuditEvent,
        outcome: AuditOutcome,
        detail: Option<serde_json::Value>,
    ) -> store::AuditRecord {
        store::AuditRecord {
            at_ms,
            event: event.as_str().into(),
            outcome: outcome.as_str().into(),
            user: self.user.clone(),
            origin: self.origin.to_string(),
            service: self.via.clone(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> String {
        address_key(text.parse().expect("an address"))
    }

    #[test]
    fn loopback_is_one_origin() {
        for a in [
            "127.0.0.1",
            "127.0.0.2",
            "127.255.255.254",
            "::1",
            "::ffff:127.3.4.5",
        ] {
            assert_eq!(key(a), LOOPBACK_ORIGIN, "{a}");
        }
    }

    #[test]
    fn ipv6_is_keyed_by_its_64_and_mapped_ipv4_by_the_address() {
        assert_eq!(key("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:3::1"), "2001:db8:1:3::/64");
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }

    #[test]
    fn pam_rhost_and_tcp_share_the_key() {
        let pam = Origin::Pam {
            rhost: Some("2001:db8::5".into()),
        };
        let tcp = Origin::Tcp {
            addr: "2001:db8::9".parse().expect("address"),
            port: 1,
        };
        assert_eq!(pam.rate_limit_key(), tcp.rate_limit_key());
        let lo = Origin::Tcp {
            addr: [127, 0, 0, 9].into(),
            port: 2,
        };
        assert_eq!(lo.rate_limit_key(), LOOPBACK_ORIGIN);
    }
}
