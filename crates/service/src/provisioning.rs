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
    ///
    /// The one place that knows what a recovery code is: ten characters
    /// of the lower-case base32 alphabet, shown in two groups of five
    /// (`generate`, inside the service); typed in any case, with spaces and
    /// dashes anywhere ([`RecoveryCode::parse`]).
    RecoveryCode
);

impl ProvisioningUri {
    /// Takes the text; from here on it is wiped on drop.
    pub(crate) fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }
}

/// The characters of a recovery code (lower-case base32).
const RECOVERY_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Characters of a recovery code, dash aside.
const RECOVERY_LEN: usize = 10;

impl RecoveryCode {
    /// A new random code (`abcde-fghij`), or the random source's failure.
    pub(crate) fn generate(random: &dyn store::Randomness) -> Result<Self, store::RandomError> {
        let mut raw = Zeroizing::new([0u8; RECOVERY_LEN]);
        random.fill(&mut raw[..])?;
        let mut code = Zeroizing::new(String::with_capacity(RECOVERY_LEN + 1));
        for (i, b) in raw.iter().enumerate() {
            if i == RECOVERY_LEN / 2 {
                code.push('-');
            }
            code.push(char::from(RECOVERY_ALPHABET[usize::from(b & 31)]));
        }
        Ok(Self(code))
    }

    /// The code as stored and compared (`abcdefghij`): `token` with case,
    /// blanks and dashes ignored, or `None` when it is no recovery code.
    pub fn parse(token: &str) -> Option<Zeroizing<String>> {
        // Built in place at its final capacity (a code is 10 characters,
        // and a longer token is not one), so no unwiped copy is left behind.
        let mut code = Zeroizing::new(String::with_capacity(token.len().min(64)));
        for c in token.chars().filter(|c| !c.is_whitespace() && *c != '-') {
            if code.len() + c.len_utf8() > code.capacity() {
                return None;
            }
            code.push(c.to_ascii_lowercase());
        }
        (code.len() == RECOVERY_LEN && code.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)))
            .then_some(code)
    }
}

/// A code as typed, with the spaces an app shows inside it (`447 862`)
/// and blanks around it removed. Built at its final capacity, so no unwiped
/// copy is left behind.
pub(crate) fn compact_code(token: &str) -> zeroize::Zeroizing<String> {
    let mut code = zeroize::Zeroizing::new(String::with_capacity(token.len()));
    code.extend(token.chars().filter(|c| !c.is_whitespace()));
    code
}

/// Whether `compact` (a token with its blanks taken out) is shaped as a
/// code of `digits` digits. A token of another shape is never counted as
/// a guess: the check answers "malformed" (unless it is a recovery code),
/// and a client can say how many digits were expected before asking.
pub fn is_code_shaped(compact: &str, digits: u8) -> bool {
    compact.len() == usize::from(digits) && compact.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `token`, as typed, is neither a code of `digits` digits (blanks
/// inside aside) nor a recovery code: what the check refuses as malformed
/// when recovery codes are taken.
pub fn is_malformed_code(token: &str, digits: u8) -> bool {
    let compact = compact_code(token);
    !is_code_shaped(&compact, digits) && RecoveryCode::parse(&compact).is_none()
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
        let code = RecoveryCode(Zeroizing::new("abcde-fghij".into()));
        let shown = format!("{:?}", vec![code.clone()]);
        assert!(!shown.contains("abcde"), "{shown}");
        assert_eq!(serde_json::json!(code), serde_json::json!("abcde-fghij"));
    }

    #[test]
    fn recovery_codes_are_normalised_or_refused() {
        let n = |t: &str| RecoveryCode::parse(t).map(|c| c.as_str().to_owned());
        assert_eq!(n("ABCDE-FGHIJ").as_deref(), Some("abcdefghij"));
        assert_eq!(n(" abcde fghij\t").as_deref(), Some("abcdefghij"));
        assert_eq!(n("abc23-4567a").as_deref(), Some("abc234567a"));
        for bad in [
            "",
            "abcde-fghi",
            "abcde-fghijk",
            "abcde-fgh1j",
            "abcdé-fghij",
            &"a".repeat(500),
        ] {
            assert_eq!(n(bad), None, "{bad}");
        }
    }

    /// What is made is what parses: the shown form of every generated
    /// code reads back as the same code without its dash.
    #[test]
    fn generated_codes_parse() {
        for _ in 0..200 {
            let code = RecoveryCode::generate(&store::OsRandom).expect("random");
            let shown = code.as_str();
            assert_eq!(shown.len(), 11);
            assert_eq!(shown.as_bytes()[5], b'-');
            let parsed = RecoveryCode::parse(shown).expect("parses");
            assert_eq!(parsed.as_str(), shown.replace('-', ""));
        }
    }
}
