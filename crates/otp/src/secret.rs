//! The shared secret. Its bytes are wiped on drop, never printed by `Debug`,
//! and compared in constant time.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::base32::{Base32Error, decode_base32, encode_base32};

/// Why bytes or text could not become a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret is not valid base32: {0}")]
    Base32(#[from] Base32Error),
    #[error("secret is {0} bytes; at least {min} are required", min = Secret::MIN_LEN)]
    TooShort(usize),
    #[error("secret is {0} bytes; at most {max} are allowed", max = Secret::MAX_LEN)]
    TooLong(usize),
}

/// An HMAC key shared with the authenticator app.
#[derive(Clone)]
pub struct Secret {
    bytes: Zeroizing<Vec<u8>>,
}

impl Secret {
    /// Size of a newly generated secret: 160 bits, RFC 4226 §4 R6.
    pub const GENERATED_LEN: usize = 20;
    /// RFC 4226 asks for at least 128 bits, but 80-bit secrets are common in
    /// the wild (Google Authenticator's own example); reading them must work.
    pub const MIN_LEN: usize = 10;
    /// Generous upper bound (RFC 6238's SHA-512 seed is 64 bytes).
    pub const MAX_LEN: usize = 128;

    /// Takes ownership of raw key bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SecretError> {
        let bytes = Zeroizing::new(bytes);
        match bytes.len() {
            n if n < Self::MIN_LEN => Err(SecretError::TooShort(n)),
            n if n > Self::MAX_LEN => Err(SecretError::TooLong(n)),
            _ => Ok(Self { bytes }),
        }
    }

    /// Builds a fresh secret from the caller's CSPRNG (randomness is injected).
    pub fn generate(fill: impl FnOnce(&mut [u8])) -> Self {
        let mut bytes = Zeroizing::new(vec![0u8; Self::GENERATED_LEN]);
        fill(&mut bytes);
        Self { bytes }
    }

    /// Reads base32 leniently (lower case, spaces, `=` padding).
    pub fn from_base32(text: &str) -> Result<Self, SecretError> {
        Self::from_bytes(decode_base32(text)?)
    }

    /// Upper-case base32 without padding; the returned text is wiped on drop.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(encode_base32(&self.bytes))
    }

    /// The raw key, for HMAC and for sealing.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// Constant-time equality (`==` uses it too).
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.bytes.len() == other.bytes.len() && bool::from(self.bytes.ct_eq(&other.bytes))
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Zeroize for Secret {
    fn zeroize(&mut self) {
        self.bytes.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let s = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        let shown = format!("{s:?} {:?}", Some(&s));
        assert!(!shown.contains("GEZDG"), "{shown}");
        assert!(!shown.contains("49"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn generate_takes_160_bits_from_the_injected_source() {
        let s = Secret::generate(|b| b.iter_mut().enumerate().for_each(|(i, x)| *x = i as u8));
        assert_eq!(s.expose().len(), 20);
        assert_eq!(s.expose()[19], 19);
        assert_eq!(s.to_base32().len(), 32);
    }

    #[test]
    fn length_limits() {
        assert_eq!(
            Secret::from_bytes(vec![0; 9]),
            Err(SecretError::TooShort(9))
        );
        assert!(Secret::from_bytes(vec![0; 10]).is_ok());
        assert_eq!(
            Secret::from_bytes(vec![0; 129]),
            Err(SecretError::TooLong(129))
        );
    }

    #[test]
    fn ct_eq_distinguishes() {
        let a = Secret::from_bytes(vec![1; 20]).unwrap();
        let b = Secret::from_bytes(vec![1; 20]).unwrap();
        let c = Secret::from_bytes(vec![2; 20]).unwrap();
        let d = Secret::from_bytes(vec![1; 21]).unwrap();
        assert!(a.ct_eq(&b));
        assert!(!a.ct_eq(&c));
        assert!(!a.ct_eq(&d));
    }
}
