//! RFC 4648 base32. Reading is lenient the way people paste secrets (lower
//! case, spaces, dashes-free groups, `=` padding); writing is strict (upper
//! case, no padding), the form the Key URI format asks for.

use std::sync::LazyLock;

use data_encoding::{BASE32_NOPAD, DecodeKind, Encoding};
use zeroize::Zeroizing;

/// Why text is not base32. Positions count characters after spaces are
/// removed; the offending character itself is never echoed (it may be part
/// of a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Base32Error {
    #[error("empty")]
    Empty,
    #[error("character {position} is not in the base32 alphabet (A-Z, 2-7)")]
    Symbol { position: usize },
    #[error("{len} characters is not a possible base32 length")]
    Length { len: usize },
    #[error("misplaced '=' padding")]
    Padding,
}

/// Accepts trailing bits that are not zero, as every authenticator app does.
static LENIENT: LazyLock<Encoding> = LazyLock::new(|| {
    let mut spec = BASE32_NOPAD.specification();
    spec.check_trailing_bits = false;
    spec.translate.from.push_str("abcdefghijklmnopqrstuvwxyz");
    spec.translate.to.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    // The specification is a fixed, valid one: a failure is a programming error.
    #[allow(clippy::expect_used)]
    spec.encoding()
        .expect("lenient base32 specification is valid")
});

/// Decodes base32, ignoring ASCII white space, case and trailing `=` padding.
pub fn decode_base32(text: &str) -> Result<Vec<u8>, Base32Error> {
    let mut clean = Zeroizing::new(Vec::with_capacity(text.len()));
    clean.extend(text.bytes().filter(|b| !b.is_ascii_whitespace()));
    let unpadded_len = clean.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    if clean[..unpadded_len].contains(&b'=') {
        return Err(Base32Error::Padding);
    }
    clean.truncate(unpadded_len);
    if clean.is_empty() {
        return Err(Base32Error::Empty);
    }
    LENIENT.decode(&clean).map_err(|e| match e.kind {
        DecodeKind::Length => Base32Error::Length { len: clean.len() },
        DecodeKind::Padding => Base32Error::Padding,
        DecodeKind::Symbol | DecodeKind::Trailing => Base32Error::Symbol {
            position: e.position,
        },
    })
}

/// Encodes as upper-case base32 without padding.
pub fn encode_base32(bytes: &[u8]) -> String {
    BASE32_NOPAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors_without_padding() {
        for (plain, enc) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(encode_base32(plain.as_bytes()), enc);
            if !enc.is_empty() {
                assert_eq!(decode_base32(enc).unwrap(), plain.as_bytes());
            }
        }
    }

    #[test]
    fn reads_the_way_people_paste() {
        let want = b"foobar".to_vec();
        assert_eq!(decode_base32("mzxw6ytboi").unwrap(), want);
        assert_eq!(decode_base32("MZXW 6YTB OI").unwrap(), want);
        assert_eq!(decode_base32("MZXW6YTBOI======").unwrap(), want);
        assert_eq!(decode_base32(" mzxw\t6ytb oi== \n").unwrap(), want);
    }

    #[test]
    fn rejects_with_reasons() {
        assert_eq!(decode_base32(""), Err(Base32Error::Empty));
        assert_eq!(decode_base32("  ==  "), Err(Base32Error::Empty));
        assert_eq!(
            decode_base32("MZXW1"),
            Err(Base32Error::Symbol { position: 4 })
        );
        assert_eq!(decode_base32("MZX"), Err(Base32Error::Length { len: 3 }));
        assert_eq!(decode_base32("MZ=XW"), Err(Base32Error::Padding));
    }
}
