//! A code as it arrives in a method's parameters: a one-time code or a
//! recovery code (`verify`, logins, enrolment confirmation, the PAM
//! module's check). From the parameter struct on it is never a plain
//! string: it is wiped when dropped, `Debug` does not show it, and it is
//! read only through [`Code::expose`], where it is handed to the check.

use serde::Deserialize;
use service::{ExposeSecret, SecretString};

use crate::schema::Schema;
use crate::typed::Described;

/// A code typed by a user; see the module documentation.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct Code(SecretString);

impl Code {
    /// The code's text, for the check that compares it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Code([REDACTED])")
    }
}

/// On the wire a code is a string, like any other.
impl Described for Code {
    fn schema() -> Schema {
        Schema::Str { nullable: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_read_through_expose_and_never_shown() {
        let c: Code = serde_json::from_value(serde_json::json!("492039")).expect("a string");
        assert_eq!(c.expose(), "492039");
        assert_eq!(format!("{c:?}"), "Code([REDACTED])");
        assert!(!format!("{:?}", Some(&c)).contains("492039"));
    }
}
