//! The TrueNAS JSON-RPC 2.0 wire format: request envelope validation with
//! TrueNAS's exact messages, responses, notifications, the TrueNAS error
//! object, and errno names. Tiny on purpose: the daemon, the CLI and the PAM
//! module's client all share it, and none of them should pull in more.

#[cfg(feature = "proptest")]
pub mod arbitrary;
mod envelope;
mod errno;
mod error;

pub use envelope::{
    Id, Incoming, Request, notification, parse_incoming, response_error, response_ok,
};
pub use errno::Errno;
pub use error::{ErrorCode, RpcError, TruenasError};
