//! Who is calling and from where: for audit records and rate-limit scopes.

use std::fmt;
use std::net::IpAddr;

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

impl Origin {
    /// The address to rate-limit by, when there is one.
    pub fn remote_address(&self) -> Option<String> {
        match self {
            Self::Tcp { addr, .. } => Some(addr.to_string()),
            Self::Pam { rhost: Some(h) } if !h.is_empty() => Some(h.clone()),
            _ => None,
        }
    }
}

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
}

impl Caller {
    pub fn new(user: Option<&str>, origin: Origin) -> Self {
        Self {
            user: user.map(str::to_owned),
            origin,
            via: None,
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
        event: &str,
        outcome: &str,
        detail: Option<serde_json::Value>,
    ) -> store::AuditRecord {
        store::AuditRecord {
            at_ms,
            event: event.into(),
            outcome: outcome.into(),
            user: self.user.clone(),
            origin: self.origin.to_string(),
            service: self.via.clone(),
            detail,
        }
    }
}
