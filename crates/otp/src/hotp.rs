//! HOTP (RFC 4226 §5) and TOTP (RFC 6238 §4).
//!
//! The verify path keys the HMAC once and clones the keyed state for each
//! candidate step, formats codes into stack buffers, and compares every
//! candidate in constant time without stopping at a match.

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::params::{Digits, Interval, Window};
use crate::secret::Secret;

/// The HMAC hash. SHA-1 is what every authenticator app assumes by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    #[default]
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The Key URI spelling (`SHA1`, `SHA256`, `SHA512`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    /// Reads the Key URI spelling, case-insensitively, with or without a dash.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Some(Self::Sha1),
            "SHA256" => Some(Self::Sha256),
            "SHA512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

/// A code: its value and how many digits it is written with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Code {
    value: u32,
    digits: Digits,
}

impl Code {
    /// The numeric value (below 10^digits).
    pub const fn value(self) -> u32 {
        self.value
    }

    /// The code as ASCII digits with leading zeros, in a stack buffer.
    pub fn to_ascii(self) -> ([u8; 8], usize) {
        let n = usize::from(self.digits.get());
        let mut buf = [b'0'; 8];
        let mut v = self.value;
        for slot in buf[..n].iter_mut().rev() {
            // v % 10 < 10, so the addition stays in ASCII digits.
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
        (buf, n)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (buf, n) = self.to_ascii();
        // Only ASCII digits were written.
        f.write_str(std::str::from_utf8(&buf[..n]).map_err(|_| std::fmt::Error)?)
    }
}

/// Codes are secrets for their lifetime; `Debug` does not show them.
impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Code(<{} digits>)", self.digits)
    }
}

/// A keyed HMAC state, cloned per counter so the key is processed once.
#[derive(Clone)]
enum Keyed {
    Sha1(Hmac<sha1::Sha1>),
    Sha256(Hmac<sha2::Sha256>),
    Sha512(Hmac<sha2::Sha512>),
}

impl Keyed {
    fn new(secret: &Secret, algorithm: Algorithm) -> Self {
        let key = secret.expose();
        // HMAC accepts keys of any length; new_from_slice cannot fail for it.
        match algorithm {
            Algorithm::Sha1 => Self::Sha1(
                <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!()),
            ),
            Algorithm::Sha256 => Self::Sha256(
                <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!()),
            ),
            Algorithm::Sha512 => Self::Sha512(
                <Hmac<sha2::Sha512> as KeyInit>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!()),
            ),
        }
    }

    fn code(&self, counter: u64, digits: Digits) -> Code {
        let msg = counter.to_be_bytes();
        let value = match self {
            Self::Sha1(m) => truncate(&finish(m.clone(), &msg)),
            Self::Sha256(m) => truncate(&finish(m.clone(), &msg)),
            Self::Sha512(m) => truncate(&finish(m.clone(), &msg)),
        };
        Code {
            value: value % digits.modulus(),
            digits,
        }
    }
}

fn finish<M: Mac>(mut mac: M, msg: &[u8]) -> hmac::digest::Output<M> {
    mac.update(msg);
    mac.finalize().into_bytes()
}

/// RFC 4226 §5.3 dynamic truncation to a 31-bit number.
fn truncate(hash: &[u8]) -> u32 {
    let offset = usize::from(hash[hash.len() - 1] & 0x0f);
    u32::from_be_bytes([
        hash[offset] & 0x7f,
        hash[offset + 1],
        hash[offset + 2],
        hash[offset + 3],
    ])
}

/// HOTP(K, C) per RFC 4226.
pub fn hotp(secret: &Secret, counter: u64, digits: Digits, algorithm: Algorithm) -> Code {
    Keyed::new(secret, algorithm).code(counter, digits)
}

/// A TOTP generator/verifier for one secret and parameter set.
#[derive(Clone)]
pub struct Totp {
    keyed: Keyed,
    digits: Digits,
    interval: Interval,
}

impl std::fmt::Debug for Totp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Totp")
            .field("digits", &self.digits)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Totp {
    pub fn new(secret: &Secret, digits: Digits, interval: Interval, algorithm: Algorithm) -> Self {
        Self {
            keyed: Keyed::new(secret, algorithm),
            digits,
            interval,
        }
    }

    /// The time step containing `unix_time` (RFC 6238: T0 = 0).
    pub fn step(&self, unix_time: u64) -> u64 {
        unix_time / u64::from(self.interval.get())
    }

    /// The code of one time step.
    pub fn code_at_step(&self, step: u64) -> Code {
        self.keyed.code(step, self.digits)
    }

    /// The code valid at `unix_time`.
    pub fn code(&self, unix_time: u64) -> Code {
        self.code_at_step(self.step(unix_time))
    }

    /// Checks `token` against every step in `[now - window, now + window]`.
    ///
    /// Returns the highest matching step, or `None`. A token that is not
    /// exactly `digits` ASCII digits never matches. All candidate steps are
    /// computed and compared in constant time; no early exit on a match.
    pub fn verify(&self, token: &[u8], unix_time: u64, window: Window) -> Option<u64> {
        let n = usize::from(self.digits.get());
        let well_formed = token.len() == n && token.iter().all(u8::is_ascii_digit);
        let now = self.step(unix_time);
        let w = u64::from(window.get());
        let mut found = subtle::Choice::from(0);
        let mut best = 0u64;
        for step in now.saturating_sub(w)..=now.saturating_add(w) {
            let (buf, _) = self.code_at_step(step).to_ascii();
            let hit = if well_formed {
                buf[..n].ct_eq(token)
            } else {
                subtle::Choice::from(0)
            };
            // Steps ascend, so the last hit is the highest.
            best = u64::conditional_select(&best, &step, hit);
            found |= hit;
        }
        bool::from(found).then_some(best)
    }
}
