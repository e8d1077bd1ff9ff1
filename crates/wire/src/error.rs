//! JSON-RPC error objects, with TrueNAS's `data` object.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Errno;

/// The one table of JSON-RPC error codes: each variant of [`ErrorCode`]
/// with its number, from which [`ErrorCode::code`] and
/// [`ErrorCode::from_code`] both read.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $name:ident = $n:literal,)*) => {
        /// The only error codes the API uses.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($(#[$doc])* $name,)*
        }

        impl ErrorCode {
            /// Every code, with its number.
            pub const TABLE: &'static [(ErrorCode, i64)] = &[$((ErrorCode::$name, $n),)*];

            pub const fn code(self) -> i64 {
                match self {
                    $(Self::$name => $n,)*
                }
            }
        }
    };
}

error_codes! {
    ParseError = -32700,
    InvalidRequest = -32600,
    MethodNotFound = -32601,
    InvalidParams = -32602,
    Internal = -32603,
    TooManyConcurrentCalls = -32000,
    CallError = -32001,
}

impl ErrorCode {
    pub fn from_code(code: i64) -> Option<Self> {
        Self::TABLE
            .iter()
            .find(|(_, n)| *n == code)
            .map(|(c, _)| *c)
    }
}

/// TrueNAS's `error.data`: `{"error", "errname", "reason", "trace", "extra"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruenasError {
    pub error: Errno,
    pub errname: String,
    pub reason: String,
    pub trace: Option<Value>,
    pub extra: Option<Value>,
}

impl TruenasError {
    /// A call error: `reason` is `[ERRNAME] message`, `extra` null.
    pub fn call(errno: Errno, message: &str) -> Self {
        Self {
            error: errno,
            errname: errno.name().to_owned(),
            reason: format!("[{}] {message}", errno.name()),
            trace: Some(trace(
                "CallError",
                &format!("[{}] {message}", errno.name()),
                &[py_repr(message), errno.0.to_string(), "None".to_owned()],
            )),
            extra: None,
        }
    }

    /// A validation error: one `[EINVAL] attribute: message\n` per problem.
    pub fn validation(problems: &[(String, String, Errno)]) -> Self {
        let reason: String = problems
            .iter()
            .map(|(attr, msg, errno)| format!("[{}] {attr}: {msg}\n", errno.name()))
            .collect();
        let extra = problems
            .iter()
            .map(|(attr, msg, errno)| serde_json::json!([attr, msg, errno.0]))
            .collect();
        let items: Vec<String> = problems
            .iter()
            .map(|(attr, msg, errno)| {
                format!(
                    "ValidationError({}, {}, {})",
                    py_repr(attr),
                    py_repr(msg),
                    errno.0
                )
            })
            .collect();
        let trace = trace(
            "ValidationErrors",
            &reason,
            &[format!("[{}]", items.join(", "))],
        );
        Self {
            error: Errno::EINVAL,
            errname: Errno::EINVAL.name().to_owned(),
            reason,
            trace: Some(trace),
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
    pub fn problems(&self) -> Vec<(String, String, Errno)> {
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
                    a.get(2)
                        .and_then(|n| serde_json::from_value(n.clone()).ok())
                        .unwrap_or(Errno::EINVAL),
                ))
            })
            .collect()
    }
}

/// TrueNAS's `trace` object: `{"class", "frames", "formatted", "repr"}`.
/// midcli reads `class` (it strips the `[ERRNAME] ` prefix only from a
/// `CallError`), prints `repr` for other classes and `formatted` with
/// `--stacks`. We send the exception's class and message as Python would
/// show them, and no frames: nothing internal leaves the server.
fn trace(class: &str, text: &str, args: &[String]) -> Value {
    serde_json::json!({
        "class": class,
        "frames": [],
        "formatted": format!("{class}: {text}"),
        "repr": format!("{class}({})", args.join(", ")),
    })
}

/// A string as Python's `repr` writes it (`'text'`, or `"it's"`).
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
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
                "trace": {"class": "ValidationErrors", "frames": [],
                    "formatted": "ValidationErrors: [EINVAL] auth_twofactor_update.otp_digits: Should be between 6 and 8\n",
                    "repr": "ValidationErrors([ValidationError('auth_twofactor_update.otp_digits', 'Should be between 6 and 8', 22)])"},
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
        assert_eq!(
            d.trace,
            Some(serde_json::json!({"class": "CallError", "frames": [],
                "formatted": "CallError: [EFAULT] Please enable Two Factor Authentication first.",
                "repr": "CallError('Please enable Two Factor Authentication first.', 14, None)"}))
        );
    }

    #[test]
    fn python_repr_of_strings() {
        assert_eq!(py_repr("plain"), "'plain'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("both ' and \""), "'both \\' and \"'");
        assert_eq!(py_repr("a\\b\nc\u{1b}"), "'a\\\\b\\nc\\x1b'");
    }
}
