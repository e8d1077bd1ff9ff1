//! The one source of secret randomness: new keys, sealing nonces (here) and
//! new OTP secrets (in `service`) all draw from an injected [`Randomness`].

use std::fmt;

/// A source of secret randomness. Fails closed: an error, never a weak or
/// partly filled buffer.
pub trait Randomness: Send + Sync + fmt::Debug {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError>;
}

/// The random source failed; nothing that needed it was made.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(pub String);

/// The operating system's CSPRNG (`getrandom`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl Randomness for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
        getrandom::fill(buf).map_err(|e| RandomError(e.to_string()))
    }
}

impl From<RandomError> for crate::StoreError {
    fn from(e: RandomError) -> Self {
        Self::Io {
            path: "the operating system's random source".into(),
            source: std::io::Error::other(e),
        }
    }
}
