//! The TrueNAS JSON-RPC 2.0 wire format: request envelope validation with
//! TrueNAS's exact messages, responses, notifications, the TrueNAS error
//! object, errno names, and the protocol's named values (the system
//! socket, login and PAM answers, the lock-out text, service membership).
//! Tiny on purpose: the daemon, the CLI and the PAM
//! module's client all share it, and none of them should pull in more.

#[cfg(feature = "proptest")]
pub mod arbitrary;
mod describe;
mod envelope;
mod errno;
mod error;
mod protocol;
mod rpc;
mod shown;
mod wiping;

pub use describe::{
    Discriminator, Examples, JsonSchema, JsonType, MethodDoc, MethodDocs, Ordered, ServiceConfig,
    ServiceDoc, ServiceDocs, ServiceType, Types,
};
pub use envelope::{
    Id, Incoming, Request, notification, parse_incoming, response_error, response_ok,
    response_ok_of, response_ok_wiping,
};
pub use errno::Errno;
pub use error::{ErrorCode, RpcError, TruenasError};
pub use protocol::{
    ATTRIBUTE_REQUIRED, Authenticator, FIELD_NOT_EXPECTED, LockedOut, LoginAnswer, LoginResponse,
    MAX_WRONG_CODES, PamOutcome, PamRequired, ResponseType, SYSTEM_SOCKET, in_service, service_of,
};
pub use protocol::{STEP_UP_ERRNO, STEP_UP_REQUIRED};
pub use rpc::{ClientRequest, Notification, Response, ServerMessage, Version};
pub use shown::{MAX_SHOWN_CHARS, shown};
pub use wiping::{WipingBuffer, to_wiping, wipe_strings};
