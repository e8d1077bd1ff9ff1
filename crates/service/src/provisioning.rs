//! Texts that carry a secret and are shown to their owner: the
//! provisioning URI (the secret in base32) and recovery codes.

use std::fmt;
use std::ops::Deref;

use zeroize::Zeroizing;

/// A text that carries a secret and is shown to its owner once: wiped when
/// dropped, and its `Debug` shows nothing of it. Reads as `&str` (`as_str`,
/// or deref) where it is handed on, and serialises as that string (the
/// API's answer).
macro_rules! shown_secret {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(Zeroizing<String>);

        impl $name {
            /// Takes the text; from here on it is wiped on drop.
            pub(crate) fn new(text: String) -> Self {
                Self(Zeroizing::new(text))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

shown_secret!(
    /// A Key URI (`otpauth://totp/...?secret=...`).
    ProvisioningUri
);

shown_secret!(
    /// A one-time recovery code (`abcde-fghij`), shown once when made.
    RecoveryCode
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_nothing_of_the_uri() {
        let uri = ProvisioningUri::new(
            "otpauth://totp/i:h@p?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=i".into(),
        );
        let shown = format!("{uri:?} {:?}", Some(&uri));
        assert!(!shown.contains("GEZDG"), "{shown}");
        assert!(!shown.contains("otpauth"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
        assert!(uri.starts_with("otpauth://") && uri.as_str().contains("GEZDG"));
        assert_eq!(serde_json::json!(uri), serde_json::json!(uri.as_str()));
        let code = RecoveryCode::new("abcde-fghij".into());
        let shown = format!("{:?}", vec![code.clone()]);
        assert!(!shown.contains("abcde"), "{shown}");
        assert_eq!(serde_json::json!(code), serde_json::json!("abcde-fghij"));
    }
}
