//! The provisioning URI as a type: it carries the secret in base32.

use std::fmt;
use std::ops::Deref;

use zeroize::Zeroizing;

/// A Key URI (`otpauth://totp/...?secret=...`): wiped when dropped, and its
/// `Debug` shows nothing of it. Reads as `&str` (`as_str`, or deref) where
/// it is handed on, and serialises as that string (the API's answer).
#[derive(Clone, PartialEq, Eq)]
pub struct ProvisioningUri(Zeroizing<String>);

impl ProvisioningUri {
    /// Takes the built URI; from here on it is wiped on drop.
    pub(crate) fn new(uri: String) -> Self {
        Self(Zeroizing::new(uri))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for ProvisioningUri {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for ProvisioningUri {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl fmt::Debug for ProvisioningUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProvisioningUri(<redacted>)")
    }
}

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
    }
}
