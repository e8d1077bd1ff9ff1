//! The one-time-password core: HOTP (RFC 4226), TOTP (RFC 6238), the
//! [`Secret`] type, lenient base32, and Google Authenticator Key URIs.
//!
//! This crate owns the arithmetic and the parsing rules and nothing else. It
//! never reads a clock (time is an argument), never touches the file system,
//! and does not allocate on the verify path.
//!
//! The parameter types ([`Digits`], [`Interval`], [`Window`]) are checked on
//! construction; past that boundary nothing re-checks them.

mod base32;
mod hotp;
mod params;
mod secret;
mod uri;

pub use base32::{Base32Error, decode_base32, encode_base32};
pub use hotp::{Algorithm, Code, Totp, hotp};
pub use params::{Digits, Interval, ParamError, Window};
pub use secret::{Secret, SecretError};
pub use uri::{KeyUri, OtpKind, UriError};
