//! The CLI's errors and the one place that decides how each is shown and
//! which exit status it gives (0 success, 1 command failed, 2 usage error).

use std::fmt;

use client::wire::{ErrorCode, RpcError};

/// Exit status of a successful run.
pub const EXIT_OK: i32 = 0;
/// Exit status when a command failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit status of a usage error.
pub const EXIT_USAGE: i32 = 2;

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line itself is wrong (unknown command or argument,
    /// unbalanced quotes, ...). Exit status 2.
    #[error("{0}")]
    Usage(String),
    /// The API refused the call. `hints` are printed after its message (the
    /// nearest valid names of misspelled arguments). Exit status 1.
    #[error("{}", render_rpc(.error, .hints))]
    Rpc {
        error: Box<RpcError>,
        hints: Vec<String>,
    },
    /// Anything else that made the command fail (connection, files). Exit
    /// status 1.
    #[error("Error: {0}")]
    Failed(String),
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        Self::Usage(message.into())
    }

    pub fn failed(message: impl fmt::Display) -> Self {
        Self::Failed(message.to_string())
    }

    /// The local state (embedded mode) failed in a call: what failed and
    /// what to do, never SQL or secrets.
    pub fn state(e: &api::host::StoreError) -> Self {
        Self::Failed(format!("{e}{}", state_hint(e)))
    }

    /// The local state could not be opened.
    pub fn state_open(dir: &std::path::Path, e: &api::host::StoreError) -> Self {
        // An empty directory is "no default could be found": the error says why.
        if dir.as_os_str().is_empty() {
            return Self::Failed(format!("cannot open the state: {e}"));
        }
        Self::Failed(format!(
            "cannot open the state in {}: {e}{}",
            dir.display(),
            state_hint(e)
        ))
    }

    pub fn rpc(error: RpcError) -> Self {
        Self::Rpc {
            error: Box::new(error),
            hints: Vec::new(),
        }
    }

    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) => EXIT_USAGE,
            Self::Rpc { .. } | Self::Failed(_) => EXIT_FAILED,
        }
    }
}

/// What to do about a failed state, when there is something to say.
fn state_hint(e: &api::host::StoreError) -> &'static str {
    use api::host::DbErrorKind as K;
    match e.db_kind() {
        Some(K::Full) => "; free space on the file system of the state directory and retry",
        Some(K::Corrupt) => {
            "; restore the state directory (database and key file together) from a backup"
        }
        Some(K::ReadOnly) => "; the state directory and its database must be writable",
        Some(K::Busy) => "; another process holds the database, retry",
        Some(K::Io | K::Other | K::Unavailable) | None => "",
    }
}

/// How an API error reads on the terminal:
/// a validation error lists every problem, a call error prints its message
/// without the `[ERRNAME]` prefix. The server's texts (which may echo a
/// name someone else chose) show control characters escaped, as tables do.
fn render_rpc(error: &RpcError, hints: &[String]) -> String {
    use crate::render::escape_controls as shown;
    let mut text = String::new();
    match (&error.data, error.kind()) {
        (Some(data), Some(ErrorCode::InvalidParams)) => {
            text.push_str("Validation errors:");
            let problems = data.problems();
            if problems.is_empty() {
                text.push_str("\n* ");
                text.push_str(&shown(data.message().trim_end()));
            }
            for (attribute, message, _) in problems {
                text.push_str(&format!("\n* {}: {}", shown(&attribute), shown(&message)));
            }
        }
        (Some(data), _) => {
            text.push_str("Error: ");
            text.push_str(&shown(data.message().trim_end()));
        }
        (None, _) => {
            text.push_str("Error: ");
            text.push_str(&shown(&error.message));
        }
    }
    for hint in hints {
        text.push('\n');
        text.push_str(hint);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use client::wire::Errno;

    #[test]
    fn server_texts_show_control_characters_escaped() {
        let e = RpcError::call(Errno::EPERM, "x\x1b[2J\ry: may not");
        assert_eq!(
            CliError::rpc(e).to_string(),
            "Error: x\\x1b[2J\\ry: may not"
        );
        let e = RpcError::validation(&[("a.\x07".into(), "bad\nline".into(), Errno::EINVAL)]);
        assert_eq!(
            CliError::rpc(e).to_string(),
            "Validation errors:\n* a.\\x07: bad\\nline"
        );
    }

    #[test]
    fn validation_errors_list_every_problem() {
        let e = RpcError::validation(&[
            ("a.x".into(), "Not a boolean".into(), Errno::EINVAL),
            (
                "a.y".into(),
                "Should be between 6 and 8".into(),
                Errno::EINVAL,
            ),
        ]);
        assert_eq!(
            CliError::rpc(e).to_string(),
            "Validation errors:\n* a.x: Not a boolean\n* a.y: Should be between 6 and 8"
        );
    }

    #[test]
    fn call_errors_lose_their_errname() {
        let e = RpcError::call(
            Errno::EFAULT,
            "Please enable Two Factor Authentication first.",
        );
        let err = CliError::rpc(e);
        assert_eq!(
            err.to_string(),
            "Error: Please enable Two Factor Authentication first."
        );
        assert_eq!(err.exit_code(), EXIT_FAILED);
    }

    #[test]
    fn state_failures_say_what_failed() {
        use api::host::{DbErrorKind, StoreError};
        let db = |kind| StoreError::Database {
            kind,
            message: "what SQLite said".into(),
        };
        let full = CliError::state(&db(DbErrorKind::Full)).to_string();
        assert!(full.starts_with("Error: database is full"), "{full}");
        assert!(full.contains("free space"), "{full}");
        let damaged = CliError::state_open(std::path::Path::new("/s"), &db(DbErrorKind::Corrupt));
        let text = damaged.to_string();
        assert!(
            text.starts_with("Error: cannot open the state in /s: database file is damaged"),
            "{text}"
        );
        assert!(text.contains("from a backup"), "{text}");
        assert_eq!(damaged.exit_code(), EXIT_FAILED);
        assert!(
            CliError::state(&db(DbErrorKind::ReadOnly))
                .to_string()
                .contains("database is read-only")
        );
    }

    #[test]
    fn bare_errors_and_hints() {
        let e = RpcError::bare(ErrorCode::MethodNotFound, "Method does not exist");
        let err = CliError::Rpc {
            error: Box::new(e),
            hints: vec!["Did you mean `x`?".into()],
        };
        assert_eq!(
            err.to_string(),
            "Error: Method does not exist\nDid you mean `x`?"
        );
        assert_eq!(CliError::usage("u").exit_code(), EXIT_USAGE);
    }
}
