//! JSON-RPC error objects, with TrueNAS's `data` object.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Errno;

/// The only error codes the API uses (SPEC §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    ParseError,
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    Internal,
    TooManyConcurrentCalls,
    CallError,
}

impl ErrorCode {
    pub const fn code(self) -> i64 {
        match self {
            Self::ParseError => -32700,
            Self::InvalidRequest => -32600,
            Self::MethodNotFound => -32601,
            Self::InvalidParams => -32602,
            Self::Internal => -32603,
            Self::TooManyConcurrentCalls => -32000,
            Self::CallError => -32001,
        }
    }

    pub const fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            -32700 => Self::ParseError,
            -32600 => Self::InvalidRequest,
            -32601 => Self::MethodNotFound,
            -32602 => Self::InvalidParams,
            -32603 => Self::Internal,
            -32000 => Self::TooManyConcurrentCalls,
            -32001 => Self::CallError,
            _ => return None,
        })
    }
}

/// TrueNAS's `error.data`: `{"error", "errname", "reason", "trace", "extra"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruenasError {
    pub error: i32,
    pub errname: String,
    pub reason: String,
    pub trace: Option<Value>,
    pub extra: Option<Value>,
}

impl TruenasError {
    /// A call error: `reason` is `[ERRNAME] message`, `extra` null.
    pub fn call(errno: Errno, message: &str) -> Self {
        Self {
            error: errno.0,
            errname: errno.name().to_owned(),
            reason: format!("[{}] {message}", errno.name()),
            trace: None,
            extra: None,
        }
    }

    /// A validation error: one `[EINVAL] attribute: message\n` per problem.
    pub fn validation(problems: &[(String, String, Errno)]) -> Self {
        let reason = problems
            .iter()
            .map(|(attr, msg, errno)| format!("[{}] {attr}: {msg}\n", errno.name()))
            .collect();
        let extra = problems
            .iter()
            .map(|(attr, msg, errno)| serde_json::json!([attr, msg, errno.0]))
            .collect();
        Self {
            error: Errno::EINVAL.0,
            errname: Errno::EINVAL.name().to_owned(),
            reason,
            trace: None,
            extra: Some(Value::Array(extra)),
        }
    }

    /// The message without its `[ERRNAME] ` prefix, as the CLI prints it.
    pub fn message(&self) -> &str {
        let prefix_len = self.errname.len() + 3;
        if self.reason.starts_with('[')
            && self.reason.get(1..=self.errname.len()) == Some(&self.errname)
        {
            self.reason.get(prefix_len..).unwrap_or(&self.reason)
        } else {
            &self.reason
        }
    }

    /// The `[attribute, message, errno]` triples of a validation error.
    pub fn problems(&self) -> Vec<(String, String, i64)> {
        let Some(Value::Array(items)) = &self.extra else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| {
                let a = item.as_array()?;
                Some((
                    a.first()?.as_str()?.to_owned(),
                    a.get(1)?.as_str()?.to_owned(),
                    a.get(2).and_then(Value::as_i64).unwrap_or(22),
                ))
            })
            .collect()
    }
}

/// A JSON-RPC `error` member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<TruenasError>,
}

impl RpcError {
    /// An error with no `data` (envelope problems).
    pub fn bare(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: code.code(),
            message: message.into(),
            data: None,
        }
    }

    /// -32602 `Invalid params` with the full validation object.
    pub fn validation(problems: &[(String, String, Errno)]) -> Self {
        Self {
            code: ErrorCode::InvalidParams.code(),
            message: "Invalid params".to_owned(),
            data: Some(TruenasError::validation(problems)),
        }
    }

    /// -32001 `Method call error` with the full call-error object.
    pub fn call(errno: Errno, message: &str) -> Self {
        Self {
            code: ErrorCode::CallError.code(),
            message: "Method call error".to_owned(),
            data: Some(TruenasError::call(errno, message)),
        }
    }

    /// -32603, with no detail for the client (details go to the server log).
    pub fn internal() -> Self {
        Self {
            code: ErrorCode::Internal.code(),
            message: "Internal error".to_owned(),
            data: Some(TruenasError::call(Errno::EFAULT, "Internal error")),
        }
    }

    pub fn kind(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_object_is_truenas_shaped() {
        let e = RpcError::validation(&[(
            "auth_twofactor_update.otp_digits".into(),
            "Should be between 6 and 8".into(),
            Errno::EINVAL,
        )]);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"code": -32602, "message": "Invalid params", "data": {
                "error": 22, "errname": "EINVAL",
                "reason": "[EINVAL] auth_twofactor_update.otp_digits: Should be between 6 and 8\n",
                "trace": null,
                "extra": [["auth_twofactor_update.otp_digits", "Should be between 6 and 8", 22]]}})
        );
        let problems = e.data.unwrap().problems();
        assert_eq!(problems[0].1, "Should be between 6 and 8");
    }

    #[test]
    fn call_error_reason_and_message() {
        let e = RpcError::call(
            Errno::EFAULT,
            "Please enable Two Factor Authentication first.",
        );
        let d = e.data.unwrap();
        assert_eq!(
            d.reason,
            "[EFAULT] Please enable Two Factor Authentication first."
        );
        assert_eq!(
            d.message(),
            "Please enable Two Factor Authentication first."
        );
        assert_eq!(d.extra, None);
        assert_eq!(e.code, -32001);
    }
}
