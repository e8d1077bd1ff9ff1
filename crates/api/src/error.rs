//! API errors and their one mapping onto the wire.

use service::ServiceError;
use wire::{Errno, RpcError};

use crate::schema::Problem;

/// The call error when a shared database cannot be reached.
pub const DB_UNAVAILABLE: &str = "the database is unavailable";

/// Why a call failed, before it is put on the wire.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<Problem>),
    #[error("{message}")]
    Call { errno: Errno, message: String },
    #[error("Method does not exist")]
    MethodNotFound,
    /// Logged on the server; the client sees only "Internal error".
    #[error("internal error: {0}")]
    Internal(String),
    /// The state failed (database full or damaged, ...): logged on the
    /// server, "Internal error" to a client like any internal error; the
    /// embedded CLI, whose user owns the state, says what failed.
    #[error("{0}")]
    Storage(service::StoreError),
}

impl ApiError {
    pub fn call(errno: Errno, message: impl Into<String>) -> Self {
        Self::Call {
            errno,
            message: message.into(),
        }
    }

    pub fn not_authenticated() -> Self {
        Self::call(Errno::ENOTAUTHENTICATED, "Not authenticated")
    }

    pub fn not_authorized() -> Self {
        Self::call(Errno::EACCES, "Not authorized")
    }

    /// The single place where API errors become JSON-RPC errors.
    pub fn to_rpc(&self) -> RpcError {
        match self {
            Self::Validation(problems) => {
                let triples: Vec<_> = problems
                    .iter()
                    .map(|(a, m)| (a.clone(), m.clone(), Errno::EINVAL))
                    .collect();
                RpcError::validation(&triples)
            }
            Self::Call { errno, message } => RpcError::call(*errno, message),
            Self::MethodNotFound => {
                RpcError::bare(wire::ErrorCode::MethodNotFound, "Method does not exist")
            }
            Self::Internal(detail) => {
                tracing::error!(detail = %detail, "internal error in a call");
                RpcError::internal()
            }
            Self::Storage(e) => {
                tracing::error!(error = %e, "the state failed in a call");
                RpcError::internal()
            }
        }
    }
}

/// The single place where service errors get their errnos.
impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotEnabled => Self::call(Errno::EFAULT, e.to_string()),
            ServiceError::NoSecret => Self::call(Errno::EFAULT, e.to_string()),
            ServiceError::LockedOut { retry_after_secs } => Self::call(
                Errno::EBUSY,
                wire::LockedOut::after(retry_after_secs).to_string(),
            ),
            ServiceError::Uri(_) => Self::call(Errno::EINVAL, e.to_string()),
            ServiceError::NotConfigured => Self::call(Errno::EFAULT, e.to_string()),
            ServiceError::UserHasNoSecret { .. } => Self::call(Errno::ENOENT, e.to_string()),
            ServiceError::InvalidEnrolmentCode => Self::call(Errno::EINVAL, e.to_string()),
            ServiceError::NoPendingEnrolment => Self::call(Errno::EINVAL, e.to_string()),
            ServiceError::EnrolmentExpired => Self::call(Errno::ESTALE, e.to_string()),
            // A shared database out of reach: the caller is told so
            // (without any detail of the connection) and may try again;
            // the node logs the loss once, not per call.
            ServiceError::Store(inner)
                if inner.db_kind() == Some(service::DbErrorKind::Unavailable) =>
            {
                tracing::debug!(error = %inner, "a call failed: the database is unavailable");
                Self::call(Errno::EIO, DB_UNAVAILABLE)
            }
            ServiceError::Store(inner) => Self::Storage(inner),
        }
    }
}
