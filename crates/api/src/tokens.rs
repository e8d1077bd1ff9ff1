//! Session tokens (`auth.generate_token`, `auth.login_ex` with
//! `TOKEN_PLAIN`): what lets the web page survive a reload without keeping
//! the password.
//!
//! Tokens live in this process's memory only, so a restart ends every one.
//! A token is 256 bits from the operating system's random source, written
//! as 64 hexadecimal digits; it is wiped when dropped, never shown by
//! `Debug`, and looked up by comparing it in constant time with every live
//! token (no early exit, no hash table keyed by the token). A token expires
//! `ttl` seconds after it was last used (the injected clock), may be bound
//! to the address that asked for it, may work only once, and ends when the
//! session that made it or logged in with it logs out.

use service::{Account, Origin};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Live tokens kept at most; when full, the one unused longest goes first.
const MAX_TOKENS: usize = 4096;
/// Live tokens one account may hold; when full, its oldest goes first.
const MAX_PER_ACCOUNT: usize = 64;
/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;

/// What a token was made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    pub account: Account,
    /// Whether the session that made the token had administrator rights
    /// (a Unix-socket peer in the admin group has a user's rights only).
    pub admin: bool,
    /// Whether the session that made the token logged in with a code of
    /// the account's own secret: a login with the token then counts as
    /// one that took the code (it can do no more than that session could).
    pub took_code: bool,
    pub ttl_ms: i64,
    /// The address key ([`origin_key`]) the token is bound to, if any.
    pub bound_to: Option<String>,
    pub single_use: bool,
}

struct Entry {
    id: u64,
    token: Zeroizing<String>,
    grant: Grant,
    last_used_ms: i64,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.id)
            .field("token", &"<redacted>")
            .field("account", &self.grant.account.name)
            .finish_non_exhaustive()
    }
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Unknown, expired or ended (they look the same from outside).
    Unknown,
    /// Bound to another address.
    WrongOrigin,
}

impl Refusal {
    /// The audit outcome.
    pub(crate) fn outcome(self) -> service::AuditOutcome {
        match self {
            Self::Unknown => service::AuditOutcome::BadToken,
            Self::WrongOrigin => service::AuditOutcome::TokenWrongOrigin,
        }
    }
}

/// The live tokens.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    entries: Vec<Entry>,
    next_id: u64,
}

/// The address a token is bound to: the TCP peer's address (an IPv4 peer
/// on an IPv6 socket counts as the IPv4 address), the Unix-socket peer's
/// uid, or the origin as written.
pub(crate) fn origin_key(origin: &Origin) -> String {
    match origin {
        // The exact address, not the rate limiter's grouping (all of
        // loopback as one, IPv6 by /64): a token is bound to the one
        // address it was made from.
        Origin::Tcp { addr, .. } => format!("ip:{}", addr.to_canonical()),
        Origin::Unix { uid, .. } => format!("unix:uid={uid}"),
        other => other.to_string(),
    }
}

impl Tokens {
    fn sweep(&mut self, now_ms: i64) {
        self.entries
            .retain(|e| now_ms < e.last_used_ms.saturating_add(e.grant.ttl_ms));
    }

    /// A new token for `grant`, with its id (for [`Tokens::revoke`]).
    pub(crate) fn issue(
        &mut self,
        grant: Grant,
        now_ms: i64,
        random: &dyn service::Randomness,
    ) -> Result<(u64, Zeroizing<String>), service::RandomError> {
        let mut bytes = Zeroizing::new([0u8; TOKEN_BYTES]);
        random.fill(&mut *bytes)?;
        let mut token = Zeroizing::new(String::with_capacity(TOKEN_BYTES * 2));
        for b in bytes.iter() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            token.push(char::from(HEX[usize::from(b >> 4)]));
            token.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        self.sweep(now_ms);
        let of_account = |e: &Entry, a: &Account| e.grant.account.uid == a.uid;
        if self
            .entries
            .iter()
            .filter(|e| of_account(e, &grant.account))
            .count()
            >= MAX_PER_ACCOUNT
            && let Some(i) = self
                .entries
                .iter()
                .position(|e| of_account(e, &grant.account))
        {
            self.entries.remove(i);
        }
        if self.entries.len() >= MAX_TOKENS
            && let Some((i, _)) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_used_ms)
        {
            self.entries.remove(i);
        }
        self.next_id += 1;
        let id = self.next_id;
        self.entries.push(Entry {
            id,
            token: token.clone(),
            grant,
            last_used_ms: now_ms,
        });
        Ok((id, token))
    }

    /// The grant of `token` used from `origin_key`, with the token's id. A
    /// use restarts its time to live; a single-use token ends here.
    pub(crate) fn redeem(
        &mut self,
        token: &str,
        origin_key: &str,
        now_ms: i64,
    ) -> Result<(u64, Grant), Refusal> {
        self.sweep(now_ms);
        // Every live token is compared, whatever matched before.
        let mut found = None;
        for (i, e) in self.entries.iter().enumerate() {
            let same: bool = e.token.as_bytes().ct_eq(token.as_bytes()).into();
            if same {
                found = Some(i);
            }
        }
        let i = found.ok_or(Refusal::Unknown)?;
        let entry = &mut self.entries[i];
        if entry
            .grant
            .bound_to
            .as_deref()
            .is_some_and(|b| b != origin_key)
        {
            return Err(Refusal::WrongOrigin);
        }
        entry.last_used_ms = now_ms;
        let answer = (entry.id, entry.grant.clone());
        if answer.1.single_use {
            self.entries.remove(i);
        }
        Ok(answer)
    }

    /// Ends the tokens with these ids.
    pub(crate) fn revoke(&mut self, ids: &[u64]) {
        self.entries.retain(|e| !ids.contains(&e.id));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn grant(uid: u32, ttl_ms: i64, bound_to: Option<&str>, single_use: bool) -> Grant {
        Grant {
            account: Account::bare(uid),
            admin: false,
            took_code: false,
            ttl_ms,
            bound_to: bound_to.map(str::to_owned),
            single_use,
        }
    }

    #[test]
    fn a_token_is_bound_to_the_exact_address_not_the_rate_limiters_group() {
        let tcp = |a: [u8; 4]| Origin::Tcp {
            addr: a.into(),
            port: 1,
        };
        // The rate limiter counts all of loopback as one origin; a token
        // made from 127.0.0.1 must still not work from 127.0.0.2.
        assert_eq!(
            tcp([127, 0, 0, 1]).rate_limit_key(),
            tcp([127, 0, 0, 2]).rate_limit_key()
        );
        assert_ne!(
            origin_key(&tcp([127, 0, 0, 1])),
            origin_key(&tcp([127, 0, 0, 2]))
        );
        let mapped = Origin::Tcp {
            addr: "::ffff:192.0.2.7".parse().expect("address"),
            port: 2,
        };
        assert_eq!(origin_key(&mapped), origin_key(&tcp([192, 0, 2, 7])));
    }

    #[test]
    fn tokens_are_random_hex_of_256_bits() {
        let mut t = Tokens::default();
        let (_, a) = t
            .issue(grant(1, 1000, None, false), 0, &service::OsRandom)
            .unwrap();
        let (_, b) = t
            .issue(grant(1, 1000, None, false), 0, &service::OsRandom)
            .unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(*a, *b);
    }

    #[test]
    fn expiry_counts_from_the_last_use() {
        let mut t = Tokens::default();
        let (_, tok) = t
            .issue(grant(1, 10_000, None, false), 0, &service::OsRandom)
            .unwrap();
        assert!(t.redeem(&tok, "x", 9_999).is_ok());
        assert!(t.redeem(&tok, "x", 19_998).is_ok());
        assert_eq!(t.redeem(&tok, "x", 29_998), Err(Refusal::Unknown));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn bound_single_use_and_revoked_tokens() {
        let mut t = Tokens::default();
        let (_, bound) = t
            .issue(
                grant(1, 10_000, Some("10.0.0.1"), false),
                0,
                &service::OsRandom,
            )
            .unwrap();
        assert_eq!(t.redeem(&bound, "10.0.0.2", 1), Err(Refusal::WrongOrigin));
        assert!(t.redeem(&bound, "10.0.0.1", 2).is_ok());
        let (_, once) = t
            .issue(grant(1, 10_000, None, true), 0, &service::OsRandom)
            .unwrap();
        assert!(t.redeem(&once, "a", 1).is_ok());
        assert_eq!(t.redeem(&once, "a", 2), Err(Refusal::Unknown));
        let (id, ended) = t
            .issue(grant(1, 10_000, None, false), 0, &service::OsRandom)
            .unwrap();
        t.revoke(&[id]);
        assert_eq!(t.redeem(&ended, "a", 1), Err(Refusal::Unknown));
        assert_eq!(t.redeem("", "a", 1), Err(Refusal::Unknown));
    }

    #[test]
    fn one_account_holds_a_bounded_number() {
        let mut t = Tokens::default();
        let (_, first) = t
            .issue(grant(7, 10_000, None, false), 0, &service::OsRandom)
            .unwrap();
        for _ in 1..MAX_PER_ACCOUNT {
            t.issue(grant(7, 10_000, None, false), 0, &service::OsRandom)
                .unwrap();
        }
        assert!(t.redeem(&first, "a", 1).is_ok());
        t.issue(grant(7, 10_000, None, false), 0, &service::OsRandom)
            .unwrap();
        assert_eq!(t.len(), MAX_PER_ACCOUNT);
        assert_eq!(t.redeem(&first, "a", 2), Err(Refusal::Unknown));
    }
}
